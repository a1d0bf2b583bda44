"""Runs of one configuration (bayeslaw.data.runs): the replication rule, in one place."""

import json

import numpy as np
import pandas as pd
import pytest

import bayeslaw.data as bd
from bayeslaw.models import prepare


def _runs(rows):
    """A table with one row per (run, tokens) checkpoint: (family, run, params, last tokens)."""
    table = []
    for family, run, params, budget in rows:
        for tokens in (budget / 10, budget):
            table.append({"family": family, "run": run, "params": params, "tokens": tokens, "loss": 3.0})
    return pd.DataFrame(table)


def test_two_seeds_of_one_configuration_are_replicated_and_a_different_budget_is_not():
    df = _runs([
        ("f", "f-s0", 1e8, 2e9),
        ("f", "f-s1", 1e8, 2e9 * 1.004),  # the same budget to 1% in log tokens: a second seed
        ("f", "f-long", 1e8, 4e9),  # the same size, twice the tokens: another configuration
        ("f", "f-big", 4e8, 2e9),  # the same tokens, another size
        ("g", "g-s0", 1e8, 2e9),  # the same size and tokens in another family
    ])
    replicated = bd.replicated_runs(df)
    assert replicated.to_dict() == {"f-big": False, "f-long": False, "f-s0": True, "f-s1": True, "g-s0": False}
    configs = bd.run_configurations(df)
    assert configs.loc["f-s0", "configuration"] == configs.loc["f-s1", "configuration"]
    assert configs["configuration"].nunique() == 4


def test_the_budget_is_run_tokens_where_given():
    """A table holding only part of a run: two runs cut at different tokens are one configuration if their
    run_tokens agree, and two runs cut at the same tokens are not if theirs differ."""
    df = _runs([("f", "a", 1e8, 1e9), ("f", "b", 1e8, 2e9), ("f", "c", 1e8, 2e9)])
    df["run_tokens"] = df["run"].map({"a": 4e9, "b": 4e9, "c": 8e9})
    assert bd.replicated_runs(df).to_dict() == {"a": True, "b": True, "c": False}


def test_the_models_use_the_same_rule():
    df = _runs([("f", "r0", 1e8, 2e9), ("f", "r1", 1e8, 2e9), ("f", "r2", 1e8, 4e9), ("g", "r3", 1e8, 2e9)])
    data = prepare(df)
    np.testing.assert_array_equal(data.run_replicated, bd.replicated_runs(df).loc[list(data.runs)].to_numpy())
    assert data.replicated_families.tolist() == [True, False]


def test_branch_roots_follow_parent_runs_up_and_copies_count_once():
    df = pd.DataFrame({
        "run": ["root", "root", "b1", "b1", "b2", "b2", "orphan", "orphan"],
        "parent_run": [None, None, "root", "root", "b1", "b1", "gone", "gone"],
        "copied": [False, False, True, False, True, False, True, False],
    })
    roots = bd.runs.branch_roots(df)
    assert roots.to_dict() == {"b1": "root", "b2": "root", "orphan": "gone", "root": "root"}
    # b1's and b2's copies are their parents' rows; the orphan's parent is absent: its copy is its only record
    assert bd.runs.drop_copies(df).index.tolist() == [0, 1, 3, 5, 6, 7]
    cycle = df.assign(parent_run=["b2", "b2", "root", "root", "b1", "b1", None, None])
    with pytest.raises(ValueError, match="cycle"):
        bd.runs.branch_roots(cycle)


def test_a_run_with_two_loss_metrics_is_refused_not_taken_for_a_restart(tmp_path):
    """A training log's train/loss and eval/loss of one run: bl.fit and fit_point name the metrics (before, the
    fit called them a restart logged twice and offered duplicates='last', which would have mixed them), and the
    CLI's --loss-name keeps one metric of a file."""
    from typer.testing import CliRunner

    from bayeslaw.cli import app
    from bayeslaw.inference.config import FitConfig
    from bayeslaw.inference.nuts import prepare_fit
    from bayeslaw.inference.point import fit_point

    tokens = np.geomspace(2e10, 2e11, 6)
    rows = [{"run": f"r{n:g}", "params": n, "tokens": d, "loss": 1.8 + 400 / n**0.34 + 400 / d**0.28 + shift,
             "loss_name": name} for n in (1e8, 3e8, 1e9) for d in tokens
            for name, shift in (("train/loss", 0.05), ("eval/loss", 0.0))]
    df = pd.DataFrame(rows)
    for call in (lambda: prepare_fit(df, FitConfig(duplicates="last")), lambda: fit_point(df, method="hitchhiker")):
        with pytest.raises(ValueError, match=r"run 'r1e\+08' logs 2 loss metrics \['eval/loss', 'train/loss'\].*"
                                             r"--loss-name eval/loss"):
            call()
    prepare_fit(df[df["loss_name"] == "eval/loss"], FitConfig())  # one metric: fine
    path = tmp_path / "two.csv"
    df.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit-point", str(path), "--method", "hitchhiker", "--loss-name", "eval/loss",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["points"] == 18
    result = CliRunner().invoke(app, ["fit-point", str(path), "--loss-name", "val"])
    assert result.exit_code == 2 and "no row of" in result.stderr and "'eval/loss', 'train/loss'" in result.stderr
