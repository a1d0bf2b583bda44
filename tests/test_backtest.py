"""The backtest harness on the demo data, in quick mode (small NUTS runs)."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayeslaw.cli import app
from bayeslaw.evaluation import backtest
from bayeslaw.plots import backtest_report
from bayeslaw.simulation import load_demo


FIT_MANY_CALLS = []  # (tables, pooling) of each fit_many call of the quick backtest


@pytest.fixture(scope="module")
def quick():
    from bayeslaw import evaluation

    df = load_demo().data
    real = evaluation.fit_many

    def recording(tables, **options):
        FIT_MANY_CALLS.append((len(tables), options["pooling"]))
        return real(tables, **options)

    evaluation.fit_many = recording
    try:
        return backtest(df, ks=(2,), fractions=(0.0, 0.3), methods=("hitchhiker",), poolings=("hierarchical",),
                        transfer=True, families=["fam0", "fam1"], thin=6, compare=False, progress=False,
                        fit_options={"chains": 1, "draws": 60, "warmup": 150}, batch=True)
    finally:
        evaluation.fit_many = real


def test_the_bayesian_cells_of_one_k_are_fitted_together(quick):
    # k=2 at q 0 and 0.3: one fit_many call of two tables; each transfer case is a fit of its own
    assert FIT_MANY_CALLS == [(2, "hierarchical")]
    bayes = quick.cells[(quick.cells["case"] == "scaling") & (quick.cells["method"] == "bayes-hierarchical")]
    assert sorted(bayes["q"].unique()) == [0.0, 0.3] and bayes["divergences"].notna().all()  # one chain: no r-hat
    # point fits: 2 families x 2 q, and 2 transfer; NUTS fits: one per q, and 2 transfer
    assert quick.timing["fits"] == 2 * 2 + 2 + 2 + 2


def test_cells_cover_every_family_k_q_and_method(quick):
    cells = quick.cells
    scaling = cells[cells["case"] == "scaling"]
    assert set(scaling["method"]) == {"hitchhiker", "bayes-hierarchical"}
    assert len(scaling) == 2 * 2 * 2  # families x q x methods
    transfer = cells[cells["case"] == "transfer"]
    assert set(transfer["family"]) == {"fam0", "fam1"} and set(transfer["method"]) == {"hitchhiker", "bayes-hierarchical"}
    assert (cells["train_models"][cells["case"] == "scaling"] == 2).all()
    # the demo's laws are smooth: from two sizes and one short chain every method predicts the target
    # within 15% (the transfer cases, one model each, are the furthest off: 4-11% across machines). The
    # one-size family is centred in its frame, whose ridge 60 warmup iterations do not find (26% off)
    assert (cells["are"] < 0.15).all()
    bayes = cells[cells["method"].str.startswith("bayes")]
    assert bayes["coverage90"].between(0, 1).all() and (bayes["width90"] > bayes["width50"]).all()
    assert cells.loc[cells["method"] == "hitchhiker", "coverage90"].isna().all()


def test_seeing_part_of_the_target_run_does_not_hurt_much(quick):
    # q = 0.3 adds the target's early checkpoints (the bayes fit then uses that run's own offset)
    b = quick.cells[(quick.cells["case"] == "scaling") & (quick.cells["method"] == "bayes-hierarchical")]
    by_q = b.groupby("q")["are"].mean()
    assert by_q[0.3] <= by_q[0.0] * 1.5


def test_predictions_are_the_targets_late_checkpoints(quick):
    demo = load_demo().data
    p = quick.predictions
    for family, rows in p.groupby("family"):
        target = demo[demo["family"] == family].sort_values("params")["model"].iloc[-1]
        assert (rows["model"] == target).all()
        fraction = rows["tokens"] / demo[demo["model"] == target]["tokens"].max()
        assert (fraction >= 0.7 - 1e-12).all()
    b = p[p["method"] == "bayes-hierarchical"]
    assert (b["q05"] <= b["predicted"]).all() and (b["predicted"] <= b["q95"]).all()


def test_report_folder_has_tables_figures_and_markdown(quick, tmp_path):
    report = backtest_report(quick, tmp_path / "report")
    folder = report.parent
    for name in ("cells.csv", "predictions.csv", "aggregate_by_family.csv", "aggregate_by_k.csv", "are_heatmap.png",
                 "trajectories.png", "calibration.png", "transfer_trajectories.png"):
        assert (folder / name).stat().st_size > 0, name
    text = report.read_text()
    assert "## Verdict" in text and "bayes-hierarchical: median ARE" in text
    again = pd.read_csv(folder / "cells.csv")
    assert len(again) == len(quick.cells)
    assert not list(folder.glob(".*.tmp"))


def test_backtest_refuses_families_it_cannot_score():
    df = load_demo().data
    with pytest.raises(ValueError, match=r"unknown family\(ies\) \['nope'\]"):
        backtest(df, families=["nope"], progress=False)
    small = df[df["params"] <= np.sort(df["params"].unique())[1]]
    with pytest.raises(ValueError, match="no family has at least min_sizes=3"):
        backtest(small, progress=False)


def test_cli_backtest_quick_writes_report(tmp_path):
    result = CliRunner().invoke(app, ["backtest", "demo", "--quick", "--q", "0", "--family", "fam2", "--out", str(tmp_path / "bt"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bt" / "report.md").exists()
    assert '"aggregate"' in result.output


def test_point_fit_on_fewer_points_than_parameters_is_counted_not_dropped():
    # a final-loss family (one row per model): k = 2 smallest models give 2 points for 5 parameters
    demo = load_demo().data
    fam0 = demo[demo["family"] == "fam0"]
    final = fam0.loc[fam0.groupby("model")["tokens"].idxmax()].assign(family="finals")
    df = pd.concat([demo[demo["family"] == "fam1"], final], ignore_index=True)
    result = backtest(df, ks=(2,), fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False,
                      thin=6, compare=False, progress=False)
    cells = result.cells.set_index("family")
    assert np.isnan(cells.loc["finals", "are"]) and np.isfinite(cells.loc["fam1", "are"])
    table = result.aggregate(("method",)).set_index("method")
    assert table.loc["hitchhiker", "cells"] == 1 and table.loc["hitchhiker", "unscored"] == 1
    everything = result.aggregate(("family", "method"), common=False).set_index("family")
    assert everything.loc["finals", "unscored"] == 1 and everything.loc["fam1", "cells"] == 1


def test_unpooled_cells_fit_only_the_scored_families_and_say_why_one_seen_at_a_single_size_is_not():
    from bayeslaw import evaluation

    df = load_demo().data
    # fam1's 160M and 410M models given the 70M model's size: its k=3 training rows hold a single size;
    # fam2 keeps three models, too few to be scored at k=3
    df = df.assign(params=df["params"].where(~df["model"].isin(["fam1-160M", "fam1-410M"]), 7e7))
    df = df[~df["model"].isin(["fam2-160M", "fam2-410M"])]
    seen = []
    real = evaluation.fit

    def recording(rows, **options):
        seen.append(sorted(rows["family"].unique()))
        return real(rows, **options)

    evaluation.fit = recording
    try:
        result = backtest(df, ks=(3,), fractions=(0.0,), methods=(), poolings=("none",), transfer=False,
                          thin=5, compare=False, progress=False,
                          fit_options={"chains": 1, "draws": 60, "warmup": 60})
    finally:
        evaluation.fit = real
    assert seen == [["fam0"]]  # fam2 is not scored at k=3, fam1 cannot be fitted on its own
    cells = result.cells.set_index("family")
    assert np.isfinite(cells.loc["fam0", "are"]) and pd.isna(cells.loc["fam0", "error"])
    assert np.isnan(cells.loc["fam1", "are"])
    assert cells.loc["fam1", "error"] == "no unpooled forecast: the family's training rows hold a single model size"
