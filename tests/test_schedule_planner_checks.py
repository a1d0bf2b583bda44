"""The schedule planners' checks: a given fit made on an earlier cut of a run in flight, a family the fit has
not seen (or a point fit, which has none), cooldown_drop's step arguments, and the allocation plot's argument.

One small Bayesian fit of synthetic annealing-law runs serves the module; the rest use a point fit. The fit
pools its two families completely: an unseen family then gets the shared law, not a refusal (as in a
hierarchical fit, whose population forecast it would get; a fit of one family, pooling='none', refuses it),
and it compiles in half a hierarchical fit's time."""

from __future__ import annotations

import warnings

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import bayeslaw as bl
from bayeslaw.data.schedules import Schedule
from bayeslaw.inference.point import PointFit
from bayeslaw.laws import get_law
from bayeslaw.laws.multipower import SLOPES as MULTIPOWER_SLOPES
from bayeslaw.plan import best_cooldown, cooldown_drop, live_forecast, schedule_loss

ANNEALING_TRUTH = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5),
                   "l0_n": -0.08, "a_n": 0.05, "alpha_n": -0.02, "c_n": 0.1,
                   "l0_lr": 0.0, "a_lr": 0.25, "alpha_lr": 0.0, "c_lr": -0.5}
MPL_TRUTH = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "b": np.log(300.0), "c": np.log(2.0),
             "beta": 0.55, "gamma": 0.6}
SCHEDULES = {"constant": Schedule("constant", 1e-3, 3000, 200),
             "cosine": Schedule("cosine", 1e-3, 3000, 200, 1e-4)}
RUN = "a-3e+08-cosine"  # the run in flight
CUT = 2000  # its last checkpoint when the fit was made
PLAN = Schedule("cosine", 1e-3, 3000, 200, 1e-4)


def _runs(seed: int = 0) -> pd.DataFrame:
    """Annealing-law curves of families a and b (b 3% higher), two sizes and two schedules each, with a
    log-loss offset per run and checkpoint noise."""
    rng = np.random.default_rng(seed)
    law = get_law("annealing")
    theta = {k: np.asarray(v) for k, v in ANNEALING_TRUTH.items()}
    frames = []
    for family, shift in (("a", 0.0), ("b", 0.03)):
        for params in (1e8, 3e8):
            for name, schedule in SCHEDULES.items():
                rows = pd.DataFrame({"run": f"{family}-{params:.0e}-{name}", "family": family, "params": params,
                                     "step": np.arange(100, schedule.total_steps + 1, 100),
                                     "schedule": schedule.to_json()})
                mean = np.asarray(law.log_loss(theta, **law.columns(rows)))
                noise = shift + rng.normal(0, 0.004) + rng.normal(0, 0.001, len(rows))
                frames.append(rows.assign(loss=np.exp(mean + noise)))
    df = pd.concat(frames, ignore_index=True)
    return df.assign(model=df["params"].map(lambda p: f"{p:.0e}"), tokens=np.nan, seed=0, flops=np.nan)


@pytest.fixture(scope="module")
def earlier_fit():
    """(the table now, the table the fit was made from: RUN cut at step CUT, the fit)."""
    df = _runs()
    earlier = df[(df["run"] != RUN) | (df["step"] <= CUT)]
    return df, earlier, bl.fit(earlier, form="annealing", pooling="complete", chains=1, draws=50, warmup=50, seed=0,
                               progress=False)


def _point_fit() -> PointFit:
    return PointFit("multipower", "epoch", {k: float(v) for k, v in {**MULTIPOWER_SLOPES, **MPL_TRUTH}.items()},
                    0.0, 0, True)


def _family_warnings(record) -> list[warnings.WarningMessage]:
    return [w for w in record if "famil" in str(w.message)]


# --- live_forecast with a fit made on an earlier cut of the run -----------------------------------

def test_live_forecast_refuses_a_fit_that_has_not_seen_the_runs_newest_checkpoints(earlier_fit):
    df, earlier, fit = earlier_fit
    # the table now holds RUN to step 3000; the fit saw it to step 2000 (its forecast ignored 2100-3000)
    with pytest.raises(ValueError, match=r"live_forecast: run 'a-3e\+08-cosine' has checkpoints the fit has not seen "
                                         r"\(the fit's last step of it 2000, the table's 3000\).*refit without fit= "
                                         r"\(or pass the table the fit was made from\)"):
        live_forecast(df, RUN, fit=fit)
    one_more = df[(df["run"] != RUN) | (df["step"] <= CUT + 100)]
    with pytest.raises(ValueError, match=r"the fit's last step of it 2000, the table's 2100"):
        live_forecast(one_more, RUN, fit=fit, steps=[2500, 3000])  # with steps given too
    # the table the fit was made from still works: forecast from its last checkpoint, which it observed
    table, same = live_forecast(earlier, RUN, fit=fit)
    assert same is fit and table["step"].iloc[0] == CUT and table["step"].iloc[-1] == 3000
    assert table["observed"].iloc[0] == pytest.approx(earlier.query("run == @RUN")["loss"].iloc[-1])
    assert (table["q5"] < table["loss"]).all() and (table["loss"] < table["q95"]).all()
    # a finished run's checkpoints, all seen (the fit thins them, keeping the last): no refusal
    live_forecast(earlier, "b-1e+08-cosine", fit=fit, steps=[3000])


# --- a family the fit has not seen ----------------------------------------------------------------

def test_schedule_planners_warn_of_a_family_the_bayesian_fit_has_not_seen(earlier_fit):
    _, _, fit = earlier_fit
    with pytest.warns(UserWarning, match=r"schedule_loss: 'aa' is not a family of the fit \(families: a, b\): "
                                         r"forecast for a new family from the population") as record:
        typo = schedule_loss(fit, PLAN, params=2e8, family="aa")
    assert [w.filename for w in _family_warnings(record)] == [__file__]  # one, at the caller's line
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        seen = schedule_loss(fit, PLAN, params=2e8, family="a")
        schedule_loss(fit, PLAN, params=2e8)  # None: the population, asked for by leaving family out
    assert not _family_warnings(record)
    assert typo["step"].item() == seen["step"].item() == 3000  # still answered, as a new family
    # best_cooldown builds its table through schedule_loss's body: one warning, in its own name
    with pytest.warns(UserWarning, match="best_cooldown: 'aa' is not a family of the fit") as record:
        best_cooldown(fit, total_steps=3000, peak_lr=1e-3, warmup_steps=200, params=2e8, family="aa",
                      fractions=[0.1, 0.3])
    assert [w.filename for w in _family_warnings(record)] == [__file__]
    with pytest.warns(UserWarning, match="cooldown_drop: 'aa' is not a family of the fit") as record:
        drop = cooldown_drop(fit, branch_step=2000, cooldown_steps=600, peak_lr=1e-3, warmup_steps=200, params=2e8,
                             family="aa")
    assert [w.filename for w in _family_warnings(record)] == [__file__] and drop["step"] == 2600


def test_a_point_fit_says_it_ignores_a_family():
    fit = _point_fit()
    with pytest.warns(UserWarning, match=r"schedule_loss: a point fit has no families; family='a' is ignored") as record:
        named = schedule_loss(fit, PLAN, params=1e8, family="a")
    assert [w.filename for w in _family_warnings(record)] == [__file__]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        plain = schedule_loss(fit, PLAN, params=1e8)
        cooldown_drop(fit, branch_step=2000, cooldown_steps=600, peak_lr=1e-3, warmup_steps=200, params=1e8)
    assert not _family_warnings(record)
    assert named["loss"].item() == plain["loss"].item()  # ignored indeed
    sweep = dict(total_steps=3000, peak_lr=1e-3, warmup_steps=200, params=1e8, fractions=[0.1, 0.3])
    with pytest.warns(UserWarning, match="best_cooldown: a point fit has no families; family='a'") as record:
        best_cooldown(fit, family="a", **sweep)
    assert len(_family_warnings(record)) == 1
    with pytest.warns(UserWarning, match="cooldown_drop: a point fit has no families; family='a'"):
        cooldown_drop(fit, branch_step=2000, cooldown_steps=600, peak_lr=1e-3, warmup_steps=200, params=1e8, family="a")


# --- cooldown_drop's step arguments ---------------------------------------------------------------

def test_cooldown_drop_names_a_bad_step_argument_and_its_option():
    fit = _point_fit()
    branch = dict(peak_lr=1e-3, warmup_steps=200, params=1e8)
    # was: "a wsd schedule needs decay_start between warmup_steps (200) and total_steps (12000), found 16000"
    with pytest.raises(ValueError, match=r"cooldown_drop: cooldown_steps \(CLI: --cooldown-steps\) must be a whole "
                                         r"number of steps >= 0 \(the length of the branch's cooldown; 0: no "
                                         r"cooldown\), found -4000"):
        cooldown_drop(fit, branch_step=16000, cooldown_steps=-4000, **branch)
    with pytest.raises(ValueError, match=r"cooldown_steps \(CLI: --cooldown-steps\) .* found 800.5"):
        cooldown_drop(fit, branch_step=2000, cooldown_steps=800.5, **branch)
    with pytest.raises(TypeError, match=r"cooldown_steps \(CLI: --cooldown-steps\) must be a whole number of steps, "
                                        r"found str '800'"):
        cooldown_drop(fit, branch_step=2000, cooldown_steps="800", **branch)
    with pytest.raises(ValueError, match=r"branch_step \(CLI: --branch-step\) must be a whole number of steps >= 200 "
                                         r"\(a step of the constant run at or after its warmup: warmup_steps=200, "
                                         r"CLI: --warmup\), found 100"):
        cooldown_drop(fit, branch_step=100, cooldown_steps=800, **branch)
    with pytest.raises(ValueError, match=r"warmup_steps \(CLI: --warmup\) must be a whole number of steps >= 0, "
                                         r"found -1"):
        cooldown_drop(fit, branch_step=2000, cooldown_steps=800, **{**branch, "warmup_steps": -1})
    with pytest.raises(ValueError, match=r"branch_step=200 \(CLI: --branch-step\) with cooldown_steps=0 ends the "
                                         r"branch at the warmup's end"):
        cooldown_drop(fit, branch_step=200, cooldown_steps=0, **branch)
    # valid calls: no cooldown is the constant run (a drop of 0); a cooldown right after the warmup; numpy ints
    same = cooldown_drop(fit, branch_step=2000, cooldown_steps=0, **branch)
    assert same["step"] == 2000 and same["drop"] == 0.0 and same["loss_cooldown"] == same["loss_constant"]
    early = cooldown_drop(fit, branch_step=200, cooldown_steps=800, **branch)
    assert early["step"] == 1000 and early["drop"] > 0
    numpy = cooldown_drop(fit, branch_step=np.int64(2000), cooldown_steps=np.float64(800.0), **branch)
    assert numpy == cooldown_drop(fit, branch_step=2000, cooldown_steps=800, **branch)


def test_cli_schedule_names_a_negative_cooldown_steps(earlier_fit, tmp_path):
    from typer.testing import CliRunner

    from bayeslaw.cli import app

    _, _, fit = earlier_fit
    fit_file = fit.save(tmp_path / "fit.nc")
    result = CliRunner().invoke(app, ["schedule", str(fit_file), "--params", "2e8", "--peak-lr", "1e-3", "--branch-step",
                                      "2000", "--cooldown-steps", "-400"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "cooldown_steps (CLI: --cooldown-steps) must be a whole number of steps >= 0" in text
    assert "found -400" in text


# --- the allocation plot -----------------------------------------------------------------------

def _allocation() -> bl.plan.Allocation:
    """A hand-made Allocation of two budgets and two draws (the plot reads only these fields)."""
    flops = np.array([1e20, 1e21])
    params = np.array([[1e9, 3e9], [1.2e9, 3.5e9]])  # (sample, budget)
    point_params = np.array([1.1e9, 3.2e9])
    summary = pd.DataFrame({"flops": flops, "point_params": point_params, "point_tokens": flops / (6 * point_params)})
    draws = pd.DataFrame({"flops": np.tile(flops, 2), "sample": np.repeat([0, 1], 2), "params_opt": params.ravel(),
                          "tokens_opt": (flops[None, :] / (6 * params)).ravel()})
    point = PointFit("chinchilla", "epoch", {"e": 0.5, "a": 6.0, "b": 7.0, "alpha": 0.3, "beta": 0.3}, 0.0, 0, True)
    return bl.plan.Allocation(summary, draws, "chinchilla", None, True, None, point)


def test_allocation_frontier_refuses_what_is_not_an_allocation():
    allocation = _allocation()
    for wrong, name in ((allocation.summary, "DataFrame"), ({"summary": allocation.summary}, "dict"), (None, "NoneType")):
        with pytest.raises(TypeError, match=rf"allocation_frontier: needs an Allocation \(the result of "
                                            rf"bayeslaw.plan.optimal_allocation\), found {name}$"):
            bl.plots.allocation_frontier(wrong)
    fig = bl.plots.allocation_frontier(allocation)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    plt.close(fig)
