"""Bad or far-fetched input to planning and simulation: refused by name, or warned of, never answered silently.

Allocation tests use hand-made posteriors (``_fit_from_draws`` of test_allocation: rows at N 1e8..3e9, D
2e10..3e11) and a hitchhiker point fit, so no NUTS fit is run here.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayeslaw as bl
from bayeslaw.cli import app
from bayeslaw.laws import ExtrapolationWarning
from bayeslaw.plan import optimal_allocation, pilot_rows, rank_pilots
from bayeslaw.simulation import simulate, simulate_trajectories
from test_allocation import _draws, _fit_from_draws

runner = CliRunner()


@pytest.fixture(scope="module")
def chinchilla():
    """A one-family chinchilla posterior (fitted rows N 1e8..3e9, D 2e10..3e11) and its hitchhiker point fit."""
    fit = _fit_from_draws("chinchilla", _draws("chinchilla", n=30))
    point = bl.fit_point(fit.training_rows("fam0"), form="chinchilla", method="hitchhiker", warn_early=False)
    return fit, point


@pytest.fixture(scope="module")
def fit_file(chinchilla, tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "fit.nc"
    chinchilla[0].save(path)
    return path


# --- 1. a budget far outside the fit ---------------------------------------------------------------------

@pytest.mark.parametrize("flops", [True, np.bool_(True), [1e21, True], np.array([True])])
def test_a_bool_budget_is_refused_by_name(chinchilla, flops):
    fit, point = chinchilla
    with pytest.raises(ValueError, match=r"^flops=.*True.*a bool is not a FLOP budget"):
        optimal_allocation(fit, flops, family="fam0", point=point)


def test_a_budget_far_below_the_fit_warns_once_naming_budgets_and_range(chinchilla):
    fit, point = chinchilla
    with warnings.catch_warnings():  # among the fitted runs, or above them (the big run planned): silent
        warnings.simplefilter("error", ExtrapolationWarning)
        inside = optimal_allocation(fit, [1e20, 1e26], family="fam0", point=point)
    assert 1e8 / np.e < inside.summary["params_opt_q50"].iloc[0] < 3e9 * np.e
    assert inside.summary["params_opt_q50"].iloc[1] > 3e9 * np.e
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimal_allocation(fit, [1e20, 1e12, 1e13, 1e30], family="fam0", point=point)
    far = [w for w in caught if issubclass(w.category, ExtrapolationWarning)]
    assert len(far) == 1 and far[0].filename == __file__  # one per call, at the caller's line
    message = str(far[0].message)
    assert "flops 1e+12, 1e+13 put the compute-optimal N*" in message and "1e+20" not in message
    assert "1e+30" not in message
    assert "sizes (1e+08..3e+09)" in message and "tokens (2e+10..3e+11)" in message


def test_a_budget_whose_optimum_is_no_language_model_is_refused(chinchilla):
    fit, point = chinchilla
    with pytest.raises(ValueError, match=r"^flops=1e\+10: its compute-optimal split is N\* = .* below 10,000"):
        optimal_allocation(fit, [1e21, 1e10], family="fam0", point=point)


def test_cli_plan_shows_the_extrapolation_warning_on_one_line(fit_file):
    result = runner.invoke(app, ["plan", str(fit_file), "--flops", "1e12", "--point-method", "hitchhiker"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "optimal_allocation: flops 1e+12" in line]
    assert len(lines) == 1 and lines[0].startswith("warning:")


# --- 2. distinct sizes, distinct names ------------------------------------------------------------------

@pytest.mark.parametrize("sizes, labels", [((1e5, 2e5), ["0.1M", "0.2M"]), ((7.0e7, 7.04e7), ["70.0M", "70.4M"])])
def test_distinct_sizes_get_distinct_model_names(sizes, labels):
    data = simulate(families=1, sizes=sizes, seeds=1, checkpoints=4, seed=0).data
    assert sorted(data["model"].unique()) == [f"fam0-{label}" for label in labels]
    traj = simulate_trajectories(families=1, sizes=sizes, batch_sizes=(1e6, 1.0000001e6), seeds=1, checkpoints=3).data
    assert traj["model"].nunique() == 4 and traj["run"].nunique() == 4
    assert {m.rsplit("-b", 1)[1] for m in traj["model"]} == {"1M", "1.0000001M"}


def test_the_default_designs_keep_their_names():
    assert sorted(simulate(families=1, seeds=1).data["model"].unique()) == [
        "fam0-1000M", "fam0-160M", "fam0-2800M", "fam0-410M", "fam0-70M"]
    assert sorted(simulate_trajectories(families=1, seeds=1).data["model"].unique()) == sorted(
        f"traj0-{n}M-b{b}M" for n in (10, 30, 100, 300) for b in ("0.25", "1", "4"))


# --- 3. and 4. invalid design arguments, named -----------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"max_tokens": -1}, "max_tokens=-1"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"sizes": (0,)}, "sizes=(0,)"),
    ({"sizes": (1e8, 1e8)}, "sizes=(100000000.0, 100000000.0)"),
    ({"first_tokens": float("nan")}, "first_tokens=nan"),
    ({"first_tokens": 0}, "first_tokens=0"),
    ({"ell": 0}, "ell=0"),
    ({"batch_size": 1e10}, "batch_size=10000000000.0"),
    ({"max_tokens": 1e8}, "max_tokens=100000000.0 is not above first_tokens"),
    ({"checkpoints": 1000, "first_tokens": 1e9, "max_tokens": 2e9}, "checkpoints=1000"),
    ({"seeds": True}, "seeds=True"),
    ({"offset_start": 5}, "offset_start=5"),
    ({"families": "abc"}, "families='abc'"),
    ({"families": ["a", "a"]}, "families=['a', 'a']"),
])
def test_simulate_refuses_a_bad_design_by_name(options, message):
    with pytest.raises(ValueError, match=r"^simulate: ") as err:
        simulate(**options)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("options, message", [
    ({"families": -2}, "families=-2"),
    ({"families": "abc"}, "families='abc'"),
    ({"first_steps": 0}, "first_steps=0"),
    ({"max_steps": 100}, "max_steps=100 is below first_steps=200"),
    ({"batch_sizes": ()}, "batch_sizes=()"),
    ({"sigma_seed": -1}, "sigma_seed=-1"),
    ({"seeds": True}, "seeds=True"),
])
def test_simulate_trajectories_refuses_a_bad_design_by_name(options, message):
    with pytest.raises(ValueError, match=r"^simulate_trajectories: ") as err:
        simulate_trajectories(**options)
    assert message in str(err.value)


# --- 5. pilots ---------------------------------------------------------------------------------------------

def test_rank_pilots_names_a_bad_target_field(chinchilla):
    fit, _ = chinchilla
    candidates = pd.DataFrame({"params": [1e8], "tokens": [2e10]})
    with pytest.raises(ValueError, match=r"^rank_pilots: target: params='abc' is not a finite number > 0"):
        rank_pilots(fit, {"family": "fam0", "params": "abc", "tokens": 2e11}, candidates)
    with pytest.raises(ValueError, match=r"^rank_pilots: target lacks \['tokens'\]"):
        rank_pilots(fit, {"family": "fam0", "params": 1e9}, candidates)
    with pytest.raises(ValueError, match=r"^rank_pilots: target: tokens=-5 is not"):
        rank_pilots(fit, pd.DataFrame({"family": ["fam0"], "params": [1e9], "tokens": [-5]}), candidates)


def test_pilot_rows_refuses_a_non_positive_or_missing_size():
    with pytest.raises(ValueError, match=r"^pilot pilot: params=-1 is not a finite number > 0"):
        pilot_rows({"params": -1, "tokens": 3e10})
    with pytest.raises(ValueError, match=r"^pilot pilot: tokens=0 is not"):
        pilot_rows({"params": 1e9, "tokens": 0})
    with pytest.raises(ValueError, match=r"^pilot pilot: candidate lacks \['tokens'\]"):
        pilot_rows({"params": 1e9})
    assert pilot_rows({"params": 1e9, "tokens": 3e10})["params"].tolist() == [1e9]


# --- 6. the seed ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_a_bad_seed_is_named(seed):
    for draw, where in ((simulate, "simulate"), (simulate_trajectories, "simulate_trajectories")):
        with pytest.raises(ValueError, match=rf"^{where}: seed={seed!r}; need a whole number >= 0"):
            draw(seed=seed)


def test_cli_simulate_names_seed(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "s.csv"), "--seed", "-1"])
    assert result.exit_code == 2 and "--seed -1: need a whole number >= 0" in result.stderr
    assert not (tmp_path / "s.csv").exists()


# --- 7. and 8. plan's options, named as the CLI names them ----------------------------------------------------

def test_cli_plan_names_batch_size_for_a_law_that_reads_it(tmp_path):
    path = tmp_path / "su.nc"
    _fit_from_draws("su2024", _draws("su2024", n=5, scale=0.2)).save(path)
    result = runner.invoke(app, ["plan", str(path), "--flops", "1e20", "--family", "fam0"])
    assert result.exit_code == 2 and "--batch-size is needed with --flops" in result.stderr
    assert "batch_size=" not in result.stderr


def test_cli_plan_params_alone_says_it_goes_with_loss(fit_file):
    result = runner.invoke(app, ["plan", str(fit_file), "--params", "1e9"])
    assert result.exit_code == 2 and "--params goes with --loss" in result.stderr
    assert "nothing to plan" not in result.stderr
