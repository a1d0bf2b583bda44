"""Learning-rate schedules, the schedule laws' precomputed terms, and the multipower/annealing laws."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bayeslaw.data.schedules import Schedule, lr_error, run_schedules
from bayeslaw.inference.point import fit_point
from bayeslaw.laws import get_law
from bayeslaw.laws.annealing import SLOPES as ANNEALING_SLOPES
from bayeslaw.laws.multipower import SLOPES as MULTIPOWER_SLOPES
from bayeslaw.laws.schedule_terms import annealing_area, drop_design, drop_exact, lr_area, schedule_inputs


def test_schedule_shapes_at_their_landmarks():
    cosine = Schedule("cosine", 3e-4, 1000, warmup_steps=100, final_lr=3e-5)
    assert cosine.lr(50) == pytest.approx(1.5e-4)  # linear warmup
    assert cosine.lr(100) == pytest.approx(3e-4)
    assert cosine.lr(550) == pytest.approx(1.65e-4)  # half way: the mean of peak and final
    assert cosine.lr(1000) == pytest.approx(3e-5)
    assert cosine.lr(5000) == pytest.approx(3e-5)  # beyond the end: the last value
    wsd = Schedule.wsd(1e-3, 1000, 0.2, warmup_steps=10, decay_type="1-sqrt")
    assert wsd.decay_start == 800
    assert wsd.lr(799) == 1e-3 and wsd.lr(1000) == pytest.approx(0.0)
    assert wsd.lr(900) == pytest.approx(1e-3 * (1 - np.sqrt(0.5)))
    exponential = Schedule("wsd", 3e-4, 24000, 2160, 3e-5, 20000, "exponential")
    assert exponential.lr(22000) == pytest.approx(3e-4 * 0.1**0.5)
    linear = Schedule("linear", 2e-4, 200, final_lr=0.0)
    assert linear.lr(200) == pytest.approx(0.0) and linear.lr(100) == pytest.approx(1e-4)
    two = Schedule("two_stage", 3e-4, 16000, 2160, decay_start=8000, second_lr=9e-5)
    assert two.lr(7999) == 3e-4 and two.lr(8000) == 9e-5
    assert Schedule("constant", 1e-3, 50).per_step().shape == (50,)
    # llm-baselines' wsd_twostage, as its logs show it: 1e-3 to step 40000, linear to 0.525 x 1e-3 by
    # 41000, held to the 20% cooldown at 80000, then linear to 0 at 100000
    staged = Schedule("wsd_two_stage", 1e-3, 100000, 300, decay_start=80000, second_lr=5.25e-4,
                      transition_start=40000, transition_steps=1000)
    np.testing.assert_allclose(staged.lr([40000, 40050, 40500, 41000, 60000, 80000, 80050, 99950]),
                               [1e-3, 9.7625e-4, 7.625e-4, 5.25e-4, 5.25e-4, 5.25e-4, 5.236875e-4, 1.3125e-6])
    assert "then 0.000525 from step 40000 (over 1000 steps)" in staged.describe()
    assert Schedule.from_json(staged.to_json()) == staged
    with pytest.raises(ValueError, match="transition_start"):
        Schedule("wsd_two_stage", 1e-3, 1000, 10, decay_start=500, second_lr=5e-4, transition_start=600)


def test_schedule_json_round_trip_and_bad_descriptions():
    schedule = Schedule.wsd(1e-3, 5000, 0.1, warmup_steps=100, final_lr=1e-5, decay_type="cosine")
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert "cosine cooldown from 4500" in schedule.describe()
    with pytest.raises(ValueError, match="unknown shape 'step'"):
        Schedule("step", 1e-3, 100)
    with pytest.raises(ValueError, match="needs decay_start"):
        Schedule("wsd", 1e-3, 100, 10)
    with pytest.raises(ValueError, match="not a JSON schedule"):
        Schedule.from_json("cosine please")
    with pytest.raises(ValueError, match="exponential cooldown needs final_lr > 0"):
        Schedule("wsd", 1e-3, 100, 0, 0.0, 50, "exponential")


def test_a_schedule_refuses_a_final_rate_above_its_peak_and_a_cooldown_inside_its_warmup():
    with pytest.raises(ValueError, match=r"final_lr \(0.003\) is above peak_lr \(0.0003\)"):
        Schedule("cosine", 3e-4, 24000, 2160, 3e-3)
    with pytest.raises(ValueError, match=r"second_lr \(0.001\) is above peak_lr \(0.0003\)"):
        Schedule("two_stage", 3e-4, 16000, 2160, decay_start=8000, second_lr=1e-3)
    assert Schedule("two_stage", 3e-4, 16000, 2160, decay_start=8000, second_lr=3e-4).second_lr == 3e-4
    # a cooldown that would start inside the warmup was moved to the warmup's end: 0.95 and 0.99 were one schedule
    assert Schedule.wsd(3e-4, 24000, 0.91, warmup_steps=2160).decay_start == 2160
    with pytest.raises(ValueError, match=r"cooldown_fraction 0.95 would start the cooldown at step 1200, inside the "
                                         r"warmup \(2160 steps\).*the largest fraction is 0.91"):
        Schedule.wsd(3e-4, 24000, 0.95, warmup_steps=2160)


def test_run_schedules_names_a_run_with_two_descriptions():
    a, b = Schedule("constant", 1e-3, 100).to_json(), Schedule("constant", 2e-3, 100).to_json()
    df = pd.DataFrame({"run": ["r1", "r1", "r2"], "schedule": [a, b, a]})
    with pytest.raises(ValueError, match=r"run 'r1' has 2 different schedules \(rows \[1\]\)"):
        run_schedules(df)
    with pytest.raises(ValueError, match="no 'schedule' column"):
        run_schedules(df.drop(columns="schedule"))


def test_areas_match_step_by_step_sums():
    schedule = Schedule("wsd", 1e-3, 400, 20, 1e-4, 300, "linear")
    eta = [schedule.lr(k) for k in range(1, 401)]
    steps = np.array([10, 150, 320, 400])
    np.testing.assert_allclose(lr_area(schedule, steps), [sum(eta[:t]) for t in steps])
    m, s2 = 0.0, []
    for k in range(1, 401):
        drop = eta[k - 2] - eta[k - 1] if k > 21 else 0.0  # decreases after the warmup only
        m = 0.999 * m + drop
        s2.append(m)
    np.testing.assert_allclose(annealing_area(schedule, steps), np.cumsum(s2)[steps - 1], rtol=1e-10, atol=1e-15)


def _binned(design, c, gamma, beta):
    return np.sum(design["drop_weight"] * (1 - (c * design["drop_lr"] ** -gamma * design["drop_area"] + 1) ** -beta), 1)


@pytest.mark.parametrize("schedule", [
    Schedule("cosine", 3e-4, 24000, 2160, 3e-5),
    Schedule("wsd", 3e-4, 24000, 2160, 3e-5, 20000, "exponential"),
    Schedule("wsd", 3e-4, 24000, 2160, 3e-5, 20000, "linear"),
])
def test_binned_loss_drop_is_within_1e4_nats_of_the_step_sum(schedule):
    steps = np.arange(2176, 24000, 128)
    design = drop_design(schedule, steps)
    b, c, gamma, beta = 450.0, 2.0, 0.6, 0.6  # the published fits' scale (B LD(t) in nats)
    error = b * np.abs(_binned(design, c, gamma, beta) - drop_exact(schedule, steps, gamma=gamma, c=c, beta=beta))
    assert error.max() < 1e-4
    assert design["drop_weight"].shape[1] < 0.05 * 24000  # bins, not steps


def test_binned_loss_drop_is_exact_at_a_jump():
    schedule = Schedule("two_stage", 3e-4, 16000, 0, decay_start=8000, second_lr=3e-5)
    steps = np.arange(128, 16000, 128)
    design = drop_design(schedule, steps)
    assert design["drop_weight"].shape[1] == 1
    for gamma in (0.3, 0.9):
        np.testing.assert_allclose(_binned(design, 3.0, gamma, 0.5), drop_exact(schedule, steps, gamma=gamma, c=3.0, beta=0.5),
                                   rtol=1e-12, atol=1e-15)
    assert (design["drop_weight"][steps < 8000] == 0).all()  # nothing drops before the switch


def test_the_warmup_rises_count_as_a_negative_drop():
    # Luo et al.'s code sums every change of the rate: once G saturates, the warmup adds about B eta_peak
    schedule = Schedule("constant", 3e-4, 24000, 2160)
    steps = np.array([2161, 2176, 12000, 24000])
    design = drop_design(schedule, steps)
    np.testing.assert_allclose(design["drop_weight"].sum(1), -3e-4, rtol=1e-12)  # eta_0 - eta_peak; nothing falls
    exact = drop_exact(schedule, steps, gamma=0.6, c=2.0, beta=0.6)
    assert np.all(exact < 0) and -exact[-1] == pytest.approx(3e-4, rel=0.02)  # G near 1 late in the run
    assert 450.0 * np.abs(_binned(design, 2.0, 0.6, 0.6) - exact).max() < 1e-4
    assert design["drop_weight"].shape[1] < 40  # the warmup in a few dozen bins, not 2,160 steps


def test_schedule_inputs_refuse_rows_without_a_step():
    text = Schedule("constant", 1e-3, 100).to_json()
    with pytest.raises(ValueError, match=r"column 'step'.*rows \[1\]"):
        schedule_inputs({"step": np.array([5.0, -1.0]), "schedule": np.array([text, text], dtype=object)})
    table = pd.DataFrame({"run": ["r"] * 3, "params": 1e8, "step": [10, 20, 30], "loss": [3.0, 2.9, 2.8]})
    with pytest.raises(ValueError, match=r"the multipower law needs column\(s\) \['schedule'\]"):
        get_law("multipower").columns(table)


SLOPES = {"multipower": MULTIPOWER_SLOPES, "annealing": ANNEALING_SLOPES}


def _curves(law_name, theta, schedules, every=100, params=1e8):
    law = get_law(law_name)
    frames = [pd.DataFrame({"run": name, "step": np.arange(every, s.total_steps + 1, every), "schedule": s.to_json()})
              for name, s in schedules.items()]
    df = pd.concat(frames, ignore_index=True).assign(params=params)
    theta = {**SLOPES[law_name], **theta}
    loss = np.asarray(law.loss({k: np.asarray(v) for k, v in theta.items()}, **law.columns(df)))
    return df.assign(loss=loss)


SCHEDULES = {
    "cosine": Schedule("cosine", 1e-3, 4000, 200, 1e-4),
    "constant": Schedule("constant", 1e-3, 4000, 200),
    "two_stage": Schedule("two_stage", 1e-3, 3000, 200, decay_start=1500, second_lr=3e-4),
    "wsd": Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5),
}


@pytest.mark.parametrize("law_name, truth", [
    ("multipower", {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "b": np.log(300.0), "c": np.log(2.0),
                    "beta": 0.55, "gamma": 0.6}),
    ("annealing", {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5)}),
])
def test_point_fit_on_three_schedules_predicts_a_fourth(law_name, truth):
    df = _curves(law_name, truth, SCHEDULES)
    train, test = df[df["run"] != "wsd"], df[(df["run"] == "wsd") & (df["step"] > 200)]  # forecast after the warmup
    # one size: no size slopes; epoch runs to the objective's minimum (adamw's path stops short, its own test)
    fit = fit_point(train, form=law_name, method="epoch", fixed=SLOPES[law_name])
    relative = np.abs(fit.predict(test) / test["loss"].to_numpy() - 1)
    assert relative.mean() < 5e-4
    # a law that ignored the cooldown (the constant schedule's curve) would miss the wsd run's end by more
    constant = _curves(law_name, truth, {"wsd": Schedule("constant", 1e-3, 4000, 200)})
    assert abs(constant["loss"].iloc[-1] / test["loss"].iloc[-1] - 1) > 10 * relative[-1]


RATE_SLOPES = {"l0_lr": 0.02, "a_lr": 0.25, "alpha_lr": 0.1}  # and the drop's scale (C, B): -0.5


@pytest.mark.parametrize("law_name, truth", [
    ("annealing", {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5), **RATE_SLOPES, "c_lr": -0.5}),
    ("multipower", {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "b": np.log(300.0), "c": np.log(2.0),
                    "beta": 0.55, "gamma": 0.6, **RATE_SLOPES, "b_lr": -0.5}),
])
def test_schedule_law_constants_move_with_the_peak_rate(law_name, truth):
    """Runs at two peak rates, a cooldown at a third: the law's rate slopes carry it; held at 0 (one set of
    constants for every rate, the schedule's terms alone reading the rate) the forecast is far off."""
    size_slopes = {k: v for k, v in SLOPES[law_name].items() if k.endswith("_n")}
    train = _curves(law_name, truth, {f"{kind}-{eta:g}": Schedule(kind, eta, 4000, 200, eta / 10)
                                      for kind in ("constant", "cosine") for eta in (5e-4, 2e-3)})
    test = _curves(law_name, truth, {"wsd": Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5)}).query("step > 200")
    errors = {}
    for name, fixed in (("rate slopes", size_slopes), ("one set of constants", SLOPES[law_name])):
        fit = fit_point(train, form=law_name, fixed=fixed)
        errors[name] = np.mean(np.abs(fit.predict(test) / test["loss"].to_numpy() - 1))
    assert errors["rate slopes"] < 5e-4
    assert errors["one set of constants"] > 5 * errors["rate slopes"]


def test_a_point_fit_holds_the_slopes_its_table_cannot_identify():
    """One size at one peak rate: the slopes in N and in the rate are flat directions of the objective, held
    at 0, so the constants reported are the data's; with two rates the rate slopes are fitted."""
    truth = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5)}
    one = _curves("annealing", truth, {k: Schedule(k, 3e-4, 4000, 200, 3e-5) for k in ("constant", "cosine")},
                  params=2.5e7)
    fit = fit_point(one, form="annealing")
    assert set(fit.details["fixed"]) == set(ANNEALING_SLOPES)
    assert all(fit.theta[k] == 0.0 for k in ANNEALING_SLOPES)
    assert fit.params["L0"] == pytest.approx(2.8, rel=1e-3) and fit.params["C"] == pytest.approx(0.5, rel=2e-2)
    two = _curves("annealing", {**truth, "c_lr": -0.5}, {f"{k}-{eta:g}": Schedule(k, eta, 4000, 200, eta / 10)
                                                        for k in ("constant", "cosine") for eta in (5e-4, 2e-3)})
    held = fit_point(two, form="annealing").details["fixed"]
    assert set(held) == {k for k in ANNEALING_SLOPES if k.endswith("_n")}


def test_cli_fits_a_schedule_law_over_the_sizes_of_a_family(tmp_path):
    import json

    from typer.testing import CliRunner

    from bayeslaw.cli import app

    truth = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5)}
    df = _curves("annealing", truth, SCHEDULES, every=200)
    df = pd.concat([df.assign(model="m1", params=1e8), df.assign(model="m2", params=2e8, loss=df["loss"] * 0.95)])
    df = df.assign(family="f", run=df["model"] + "-" + df["run"], tokens=df["step"] * 1e5, loss_name="loss")
    path = tmp_path / "curves.csv"
    df.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit-point", str(path), "--form", "annealing", "--json"])
    assert result.exit_code == 0, result.output
    (fit,) = json.loads(result.output)
    # 5% lower losses at twice the size: every log-constant falls by log(0.95) per doubling of N; the constants
    # are quoted at the rows' median size (as `bayeslaw fit` quotes them), between the two
    assert fit["family"] == "f" and 1e8 < fit["at_params"] < 2e8
    assert fit["L0"] == pytest.approx(2.8 * 0.95 ** np.log2(fit["at_params"] / 1e8), rel=1e-3)
    for slope in ("l0_n", "a_n", "c_n"):
        assert fit[slope] == pytest.approx(np.log(0.95) / np.log(2.0), abs=2e-3)
    assert fit["alpha_n"] == pytest.approx(0.0, abs=2e-3)


MPL_TRUTH = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "b": np.log(300.0), "c": np.log(2.0),
             "beta": 0.55, "gamma": 0.6}


def test_schedule_planning_with_a_multipower_fit():
    from bayeslaw.inference.point import PointFit
    from bayeslaw.plan import best_cooldown, cooldown_drop, schedule_loss

    fit = PointFit("multipower", "epoch", {k: float(v) for k, v in {**MULTIPOWER_SLOPES, **MPL_TRUTH}.items()},
                   0.0, 0, True)
    plans = {"constant": Schedule("constant", 1e-3, 6000, 200), "cosine": Schedule("cosine", 1e-3, 6000, 200, 1e-4)}
    final = schedule_loss(fit, plans, params=1e8).set_index("schedule")["loss"]
    assert final["cosine"] < final["constant"]  # annealing pays off at the end of the run
    curve = schedule_loss(fit, plans["cosine"], steps=[1000, 3000, 6000], params=1e8)
    assert curve["loss"].is_monotonic_decreasing and len(curve) == 3
    table = best_cooldown(fit, total_steps=6000, peak_lr=1e-3, warmup_steps=200, params=1e8,
                          fractions=np.linspace(0.0, 0.9, 19))
    best = table.loc[table["best"], "cooldown_fraction"].item()
    assert 0.0 < best < 0.9  # neither no cooldown nor a run that is almost all cooldown
    assert table["loss"].min() < final["constant"]
    drop = cooldown_drop(fit, branch_step=4000, cooldown_steps=800, peak_lr=1e-3, warmup_steps=200, params=1e8)
    assert drop["drop"] > 0 and drop["loss_cooldown"] < drop["loss_constant"]
    with pytest.raises(ValueError, match="steps must lie in 1..6000"):
        schedule_loss(fit, plans, steps=[7000], params=1e8)
    chinchilla = PointFit("chinchilla", "epoch", {"e": 0.5, "a": 6.0, "b": 7.0, "alpha": 0.3, "beta": 0.3}, 0.0, 0, True)
    with pytest.raises(ValueError, match="reads a run's step and schedule"):
        schedule_loss(chinchilla, plans, params=1e8)


def test_schedule_questions_refuse_what_they_would_drop_or_truncate():
    from bayeslaw.inference.point import PointFit
    from bayeslaw.plan import best_cooldown, schedule_loss

    fit = PointFit("multipower", "epoch", {k: float(v) for k, v in {**MULTIPOWER_SLOPES, **MPL_TRUTH}.items()},
                   0.0, 0, True)
    cosine = Schedule("cosine", 1e-3, 6000, 200, 1e-4)
    with pytest.raises(ValueError, match=r"steps must be whole optimizer steps, found \[3000.7\]"):
        schedule_loss(fit, cosine, steps=[1000, 3000.7], params=1e8)  # was step 3000
    with pytest.raises(ValueError, match="schedule_loss: steps is empty"):
        schedule_loss(fit, cosine, steps=[], params=1e8)
    with pytest.raises(ValueError, match="schedule_loss: no schedules"):
        schedule_loss(fit, {}, params=1e8)
    # fractions that round to one cooldown start are one schedule (a pandas length mismatch before)
    wsd = dict(total_steps=6000, peak_lr=1e-3, warmup_steps=200, params=1e8)
    for fractions in ([0.2, 0.2], [0.1, 0.2, 0.20001]):
        with pytest.raises(ValueError, match=r"fractions 0.2 and 0.2\S* \(CLI: --cooldown\) both start the cooldown "
                                             r"at step 4800 of 6000"):
            best_cooldown(fit, fractions=fractions, **wsd)
    with pytest.raises(ValueError, match="fractions is empty"):
        best_cooldown(fit, fractions=[], **wsd)
    # distinct starts, equal to 4 digits: each named in full
    table = best_cooldown(fit, fractions=[0.2, 0.20001], **{**wsd, "total_steps": 100000})
    assert table["schedule"].tolist() == ["0.2", "0.20001"] and table["cooldown_start"].tolist() == [80000, 79999]
    # the default grid stays after the warmup, one fraction per cooldown start
    table = best_cooldown(fit, **{**wsd, "warmup_steps": 5000})
    assert table["cooldown_start"].min() == 5000 and table["cooldown_start"].is_unique


# --- Bayesian schedule laws ----------------------------------------------------------------------

ANNEALING_TRUTH = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5),
                   "l0_n": -0.08, "a_n": 0.05, "alpha_n": -0.02, "c_n": 0.1,
                   "l0_lr": 0.0, "a_lr": 0.25, "alpha_lr": 0.0, "c_lr": -0.5}
ROOT = Schedule("constant", 1e-3, 4000, 200)
PLANS = {
    "constant": (ROOT, None),
    "cool2000": (Schedule.wsd(1e-3, 3000, 1 / 3, warmup_steps=200, final_lr=1e-5), "constant"),  # branch at 2000
    "cosine": (Schedule("cosine", 1e-3, 4000, 200, 1e-4), None),
    "cool3000": (Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5), "constant"),  # held out
    "cosine3000": (Schedule("cosine", 1e-3, 3000, 200, 1e-4), None),  # held out: a run of its own
}
HELD_OUT = ("cool3000", "cosine3000")
SIGMA_TREE, SIGMA_OBS = 0.004, 0.001


def _noisy_runs(seed=0):
    """Annealing-law curves of two sizes with a log-loss offset per branch tree and checkpoint noise; the
    branches repeat their parent's checkpoints before the branch point (copied)."""
    rng = np.random.default_rng(seed)
    law = get_law("annealing")
    frames = []
    for params in (1e8, 3e8):
        offsets = {name: rng.normal(0, SIGMA_TREE) for name, (_, parent) in PLANS.items() if parent is None}
        root_rows = None
        for name, (schedule, parent) in PLANS.items():
            rows = pd.DataFrame({"run": f"{params:.0e}-{name}", "step": np.arange(300, schedule.total_steps + 1, 100),
                                 "schedule": schedule.to_json(), "params": params})
            mean = np.asarray(law.log_loss({k: np.asarray(v) for k, v in ANNEALING_TRUTH.items()}, **law.columns(rows)))
            log_loss = mean + offsets[parent or name] + rng.normal(0, SIGMA_OBS, len(rows))
            rows = rows.assign(true_law=np.exp(mean), loss=np.exp(log_loss), copied=False, parent_run=None)
            if parent is not None:  # before the branch point the branch is its parent
                before = rows["step"] < schedule.decay_start
                rows.loc[before, "loss"] = root_rows.set_index("step").loc[rows.loc[before, "step"], "loss"].to_numpy()
                rows = rows.assign(copied=before, parent_run=f"{params:.0e}-{parent}")
            if name == "constant":
                root_rows = rows
            frames.append(rows)
    df = pd.concat(frames, ignore_index=True)
    return df.assign(family="f", model=df["params"].map(lambda p: f"{p:.0e}"), tokens=np.nan, seed=0,
                     flops=np.nan, loss_name="loss", source="test")


@pytest.fixture(scope="module")
def schedule_fit():
    from bayeslaw.inference.nuts import fit

    df = _noisy_runs()
    train = df[~df["run"].str.split("-").str[-1].isin(HELD_OUT)]
    return df, fit(train, form="annealing", chains=2, draws=250, warmup=250, progress=False)


def test_a_bayesian_schedule_law_counts_copies_once_and_recovers_the_law(schedule_fit):
    df, fitted = schedule_fit
    rows = fitted.training_rows()
    # the branches' copies of the constant run are left out; each run thinned to 20 checkpoints in steps
    assert not rows.duplicated(["step", "loss"]).any()
    assert rows.groupby("run").size().max() <= 21
    assert (fitted.site_draws("shape") == 0).all()  # the schedule law explains the run's shape: no g_f
    # and its slope: a run's offset is a constant level along the run (rho = 1), not a trend in t
    assert (fitted.site_draws("offset_start") == 1).all()
    roots = fitted._run_roots()
    assert roots["1e+08-cool2000"] == "1e+08-constant" and roots["1e+08-cosine"] == "1e+08-cosine"
    # three sizes at one peak rate: the rate slopes are the prior's alone, and say so
    table = fitted.params()
    assert set(table.loc[table["prior_only"], "parameter"]) == set(fitted.spec.law.held_alone["peak_lr"])
    # the constants are quoted where the family's rows are: its median size and peak rate, the slopes folded in
    rows = fitted.training_rows()
    size = float(np.exp(np.median(np.log(rows["params"]))))
    rate = float(np.exp(np.median(np.log(fitted.spec.law.columns(rows)["peak_lr"]))))
    at = table.set_index("parameter")
    assert at["at_params"].iloc[0] == pytest.approx(size) and at["at_peak_lr"].iloc[0] == pytest.approx(rate)
    law = fitted.law_theta(fitted.families[0])
    l0 = law["l0"] + law["l0_n"] * np.log(size / 1e8) + law["l0_lr"] * np.log(rate / 1e-3)
    assert at.loc["L0", "median"] == pytest.approx(np.median(np.exp(l0)), rel=1e-9)
    theta = fitted.site_draws("theta")[:, 0]
    names = fitted.spec.names
    for name, truth in (("l0", ANNEALING_TRUTH["l0"]), ("log_alpha", np.log(0.45)), ("l0_n", -0.08)):
        draws = theta[:, names.index(name)]
        assert np.quantile(draws, 0.005) < truth < np.quantile(draws, 0.995), name
    assert fitted.diagnostics(warn=False).divergences == 0


def test_a_schedule_law_pools_families_centred_with_only_its_constants_correlated_and_draws_new_ones_shapeless():
    # f at two sizes, g at one (its runs are f's 1e8 runs): under a schedule law both are centred (their
    # curves pin the constants at their own sizes), and the population's correlations are among the law's
    # constants only: its size and rate slopes spread independently
    import jax
    from numpyro import handlers
    from numpyro.infer import Predictive

    from bayeslaw.models import (MODELS, _theta_population, centered_families, get_parameterization, new_family,
                                 new_family_sites, prepare)

    f = _noisy_runs()
    g = f[f["params"] == 1e8].assign(family="g", run=lambda d: "g" + d["run"],
                                     parent_run=lambda d: d["parent_run"].map(lambda p: None if p is None else "g" + p))
    data = prepare(pd.concat([f, g], ignore_index=True), form="annealing")
    spec = get_parameterization("annealing")
    assert data.family_sizes.tolist() == [2, 1] and centered_families(data).tolist() == [True, True]
    assert spec.law.sampling.correlated_names == ("l0", "a", "log_alpha", "c")
    assert get_parameterization("multipower").law.sampling.correlated_names == (
        "l0", "a", "log_alpha", "b", "c", "log_beta", "log_gamma")

    trace = handlers.trace(handlers.seed(MODELS["hierarchical"], 3)).get_trace(data)
    assert trace["corr_chol"]["value"].shape == (4, 4)
    np.testing.assert_array_equal(np.asarray(trace["theta"]["value"]), np.asarray(trace["theta_raw"]["value"]))
    _, tril = handlers.seed(_theta_population, 4)(spec)
    cov, k = np.asarray(tril @ tril.T), len(spec.names)
    slopes = [i for i, n in enumerate(spec.names) if n not in spec.law.sampling.correlated_names]
    assert len(slopes) == 8 and np.allclose(np.asarray(tril), np.tril(np.asarray(tril)))
    off = ~np.eye(k, dtype=bool)
    assert np.all(cov[slopes][:, :][off[slopes]] == 0.0) and np.all(np.abs(cov[:4, :4][off[:4, :4]]) > 0)
    # a family the fit has not seen is drawn from what each variant's fit holds (a schedule law's fit has
    # no schedule shape: the new family's is 0 too), corr_chol draws of the constants' shape included
    for pooling in ("hierarchical", "complete", "none"):
        fitted = handlers.trace(handlers.seed(MODELS[pooling], 5)).get_trace(data)
        sites = new_family_sites(spec, pooling)
        assert set(sites) <= set(fitted), pooling
        draws = {name: np.repeat(np.asarray(fitted[name]["value"])[None], 3, axis=0) for name in sites}
        new = Predictive(new_family, posterior_samples=draws or None, num_samples=None if draws else 3)(
            jax.random.PRNGKey(0), spec, pooling, 2)
        assert new["theta_new"].shape == (3, k) and np.all(np.isfinite(new["theta_new"])), pooling
        np.testing.assert_array_equal(new["shape_new"], 0.0)


def test_a_fit_warns_where_a_schedule_laws_design_makes_nuts_run_for_hours(monkeypatch):
    # the multi-power law's loss drop is a rows x bins sum per evaluation: past DESIGN_TERMS_WARN terms the
    # fit says so (size, a rough time, remedies) before its start and sampling; annealing has no such sum
    import warnings

    import bayeslaw.inference.nuts as nuts

    monkeypatch.setattr(nuts, "DESIGN_TERMS_WARN", 1_000)
    monkeypatch.setattr(nuts, "_point_init", lambda *args: {})  # the warning comes before the start
    truth = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "b": np.log(300.0), "c": np.log(2.0), "beta": 0.55,
             "gamma": 0.6}
    df = _curves("multipower", truth, SCHEDULES).assign(family="f", tokens=np.nan)
    with pytest.warns(UserWarning, match=r"multipower law's design is \d+ rows x \d+ bins .* or use form='annealing'"):
        nuts.prepare_fit(df, nuts.FitConfig(form="multipower"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        nuts.prepare_fit(df, nuts.FitConfig(form="annealing"))


def test_a_sampling_names_only_its_own_coordinates_as_correlated():
    from bayeslaw.laws.base import Sampling

    with pytest.raises(ValueError, match=r"correlated coordinates \['z'\] are not among"):
        Sampling(priors={"e": (0.0, 1.0, 0.1)}, to_law=lambda t: t, from_law=lambda p: p, correlated=("e", "z"))


def test_a_fit_refuses_a_branch_tree_across_families():
    """bl.fit takes a full table without validating it again; its model still refuses a tree across families."""
    from bayeslaw.inference.config import FitConfig
    from bayeslaw.inference.nuts import prepare_fit

    df = _noisy_runs()
    df.loc[df["run"] == "1e+08-cool2000", "family"] = "g"
    with pytest.raises(ValueError, match=r"run '1e\+08-cool2000' \(family 'g'\) branches from '1e\+08-constant' of "
                                         r"family 'f'"):
        prepare_fit(df, FitConfig(form="annealing"))


def test_a_branch_of_a_trained_run_shares_its_offset_and_a_run_of_its_own_does_not(schedule_fit):
    df, fitted = schedule_fit
    test = df[df["run"].str.split("-").str[-1].isin(HELD_OUT)].reset_index(drop=True)
    prediction = fitted.predict(test, kind="new_run", seed=1)
    draws = np.log(prediction.draws.values)
    width = np.quantile(draws, 0.95, axis=0) - np.quantile(draws, 0.05, axis=0)
    branch = test["run"].str.endswith("cool3000").to_numpy()
    # the branch knows its tree's offset from the constant run; the new cosine run draws one of its own
    assert np.median(width[branch]) < 0.6 * np.median(width[~branch])
    inside = (test["loss"] >= prediction.summary["q5"]) & (test["loss"] <= prediction.summary["q95"])
    assert inside[branch].mean() > 0.7 and inside[~branch].mean() > 0.7
    # without parent_run the branch is a new run: as wide as the unrelated one
    alone = np.log(fitted.predict(test.drop(columns="parent_run"), kind="new_run", seed=1).draws.values)
    assert np.median(np.quantile(alone, 0.95, 0) - np.quantile(alone, 0.05, 0)) > 1.5 * np.median(width[branch])


def test_tree_conditioning_equals_dense_gaussian_conditioning(schedule_fit):
    """The closed-form conditioning of a trained run's late checkpoint on its tree (offset shared with its
    parent, loaded by tokens over the tree's end; its own deviation) equals conditioning the dense joint
    Gaussian of the tree's training rows."""
    from bayeslaw.models.runs import JITTER, bridge_kernel

    df, fitted = schedule_fit
    rows = fitted.training_rows()
    run = "1e+08-cool2000"
    tree = {r: np.flatnonzero(rows["run"].to_numpy() == r) for r in ("1e+08-constant", run)}
    target = rows.loc[tree[run]].iloc[[3]].reset_index(drop=True)
    x = float(target["step"].iloc[0] / PLANS["cool2000"][0].total_steps)
    draws = slice(0, 5)
    theta = fitted.site_draws("theta")[draws][:, [0]]
    noise = {k: v[draws] for k, v in fitted.noise_draws(["f"]).items()}  # (sample, target row, ...)
    # the offset's share at a run's start: 0.3 (the fit's is 1 under a schedule law), so that both parts
    # of the loading l = rho + (1 - rho) t are checked
    a, rho = noise["sigma_seed"][:, 0] ** 2, np.full(len(noise["sigma_seed"]), 0.3)
    residuals = fitted._tree_residuals(theta, 0, noise, 0, tree, rows)
    progress = fitted.idata.constant_data["loading"].values
    t = progress[tree[run][3]]  # the target row's own progress: it is a training row of the branch
    shift, reduction = fitted._condition_on_tree(residuals, run, np.array([x]), np.array([t]), a,
                                                 noise["sigma_dev"][:, 0] ** 2, start=rho)
    law = np.log(fitted.predict(rows, kind="law").draws.values[draws])  # seen family: the fit's draws in order
    observed = np.log(rows["loss"].to_numpy())
    fraction = fitted.idata.constant_data["fraction"].values
    order = np.concatenate(list(tree.values()))
    owner = np.concatenate([[r] * len(i) for r, i in tree.items()])
    for s in range(5):
        dev2, obs2 = noise["sigma_dev"][s, 0] ** 2, noise["sigma_obs"][s, 0] ** 2
        same = owner[:, None] == owner[None, :]
        k = np.asarray(bridge_kernel(fraction[order][:, None], fraction[order][None, :]))
        load = rho[s] + (1 - rho[s]) * progress[order]  # the offset's loading l = rho + (1 - rho) t
        cov = a[s] * np.outer(load, load) + same * (dev2 * k + (obs2 + JITTER) * np.eye(len(order)))
        cross = (a[s] * (rho[s] + (1 - rho[s]) * t) * load
                 + (owner == run) * dev2 * np.asarray(bridge_kernel(x, fraction[order])))
        resid = observed[order] - law[s, order]
        assert shift[s, 0] == pytest.approx(cross @ np.linalg.solve(cov, resid), rel=1e-6, abs=1e-9)
        assert reduction[s, 0] == pytest.approx(cross @ np.linalg.solve(cov, cross), rel=1e-6)


def test_a_run_that_outlasts_its_trained_tree_moves_the_tree_end(schedule_fit):
    """A branch of the trained constant run (tree end 4000 steps) that runs to 8000: the tree's end moves to
    8000, so the target's loading stays <= 1 and the trained runs' loadings halve; the closed-form
    conditioning then equals dense conditioning of the tree's Gaussian with those loadings."""
    from bayeslaw.models.runs import JITTER, bridge_kernel

    df, fitted = schedule_fit
    rows = fitted.training_rows()
    tree = {r: np.flatnonzero(rows["run"].to_numpy() == r) for r in ("1e+08-constant", "1e+08-cool2000")}
    steps = np.array([2000.0, 6000.0, 8000.0])
    targets = pd.DataFrame({"run": "1e+08-longer", "parent_run": "1e+08-constant", "params": 1e8, "step": steps})
    fraction = steps / 8000
    loading, scale = fitted._target_loading(targets, fraction, fitted._target_roots(targets))
    assert loading == pytest.approx(steps / 8000) and scale == pytest.approx([0.5] * 3)
    new_run, _ = fitted._target_loading(targets.assign(parent_run=None, run="other"), fraction,
                                        np.array([None] * 3, dtype=object))
    assert new_run == pytest.approx(fraction)

    draws = slice(0, 4)
    theta = fitted.site_draws("theta")[draws][:, [0]]
    noise = {k: v[draws] for k, v in fitted.noise_draws(["f"]).items()}
    a, dev2 = noise["sigma_seed"][:, 0] ** 2, noise["sigma_dev"][:, 0] ** 2
    rho = np.full(len(a), 0.3)  # as above: both parts of the loading
    residuals = fitted._tree_residuals(theta, 0, noise, 0, tree, rows)
    shift, reduction = fitted._condition_on_tree(residuals, "1e+08-longer", fraction, loading, a, dev2, scale=0.5,
                                                 start=rho)
    law = np.log(fitted.predict(rows, kind="law").draws.values[draws])
    fit_loading = fitted.idata.constant_data["loading"].values
    x = fitted.idata.constant_data["fraction"].values
    order = np.concatenate(list(tree.values()))
    owner = np.concatenate([[r] * len(i) for r, i in tree.items()])
    for s in range(4):
        l_obs = rho[s] + (1 - rho[s]) * 0.5 * fit_loading[order]  # the trained runs' progress halved
        same = owner[:, None] == owner[None, :]
        k = np.asarray(bridge_kernel(x[order][:, None], x[order][None, :]))
        cov = a[s] * np.outer(l_obs, l_obs) + same * (dev2[s] * k + (noise["sigma_obs"][s, 0] ** 2 + JITTER)
                                                     * np.eye(len(order)))
        # a run not trained: only the shared offset links it
        cross = a[s] * np.outer(rho[s] + (1 - rho[s]) * loading, l_obs)
        resid = np.log(rows["loss"].to_numpy())[order] - law[s, order]
        assert shift[s] == pytest.approx(cross @ np.linalg.solve(cov, resid), rel=1e-6, abs=1e-9)
        assert reduction[s] == pytest.approx(np.einsum("tn,tn->t", cross, np.linalg.solve(cov, cross.T).T),
                                             rel=1e-6)


def test_schedule_questions_with_bands_from_a_bayesian_fit(schedule_fit):
    from bayeslaw.plan import best_cooldown, cooldown_drop, schedule_loss

    df, fitted = schedule_fit
    plans = {"constant": Schedule("constant", 1e-3, 4000, 200), "cosine": Schedule("cosine", 1e-3, 4000, 200, 1e-4)}
    final = schedule_loss(fitted, plans, params=2e8)
    assert (final["q5"] < final["loss"]).all() and (final["loss"] < final["q95"]).all()
    assert final.set_index("schedule").loc["cosine", "loss"] < final.set_index("schedule").loc["constant", "loss"]
    # a branch of a trained run shares its offset: a narrower band than the same schedule as a new run
    branch = schedule_loss(fitted, plans["constant"], params=1e8, parent_run="1e+08-constant")
    fresh = schedule_loss(fitted, plans["constant"], params=1e8)
    assert (branch["q95"] - branch["q5"]).item() < 0.6 * (fresh["q95"] - fresh["q5"]).item()
    table = best_cooldown(fitted, total_steps=4000, peak_lr=1e-3, warmup_steps=200, final_lr=1e-5, params=2e8,
                          fractions=[0.05, 0.2, 0.5])
    assert table["p_best"].sum() == pytest.approx(1.0) and table.loc[table["best"], "p_best"].item() > 0.5
    # near a flat optimum the best is the posterior's, not the predictive draws' seed's (new-run medians moved it)
    flat = dict(total_steps=4000, peak_lr=1e-3, warmup_steps=200, final_lr=1e-5, params=2e8,
                fractions=np.linspace(0.6, 0.95, 20))  # 0.95: a cooldown after the warmup
    picks = {best_cooldown(fitted, seed=s, **flat).query("best")["cooldown_fraction"].item() for s in range(6)}
    assert len(picks) == 1, picks
    # the cooldown of a run in training: branches of it, narrower than the same fractions for a new run
    sweep = dict(total_steps=4000, peak_lr=1e-3, warmup_steps=200, final_lr=1e-5, params=1e8, fractions=[0.1, 0.3])
    branches, new = best_cooldown(fitted, parent_run="1e+08-constant", **sweep), best_cooldown(fitted, **sweep)
    assert ((branches["q95"] - branches["q5"]) < 0.6 * (new["q95"] - new["q5"])).all()
    drop = cooldown_drop(fitted, branch_step=2500, cooldown_steps=800, peak_lr=1e-3, warmup_steps=200, params=2e8)
    assert 0 < drop["drop_q5"] < drop["drop"] < drop["drop_q95"]


def test_planned_schedules_carry_the_laws_misfit_correlated_by_how_far_apart_they_are(schedule_fit):
    """The law's draws put every schedule's end on the law; a planned schedule's end carries the misfit
    sigma_dev, correlated as exp(-d / ELL): two nearly equal cooldowns are a toss-up, not a certainty."""
    from bayeslaw.laws.runs import ELL
    from bayeslaw.plan import best_cooldown, schedule_distance
    from bayeslaw.plan.schedules import _misfit, _targets

    df, fitted = schedule_fit
    wsd = {f: Schedule.wsd(1e-3, 4000, f) for f in (0.2, 0.21, 0.6)}
    assert schedule_distance(wsd[0.2], wsd[0.6]) == pytest.approx(0.2, abs=1e-3)  # |f1 - f2| / 2, linear to 0
    assert schedule_distance(wsd[0.2], wsd[0.2]) == 0.0
    misfit = _misfit(fitted, {str(k): v for k, v in wsd.items()}, None, 20000, seed=0)
    sd = np.sqrt(np.mean(fitted.site_draws("sigma_dev") ** 2))  # a scale mixture over the posterior's sigma_dev
    assert np.std(misfit[:, 0]) == pytest.approx(sd, rel=0.05)
    corr = np.corrcoef(misfit.T)
    assert corr[0, 2] == pytest.approx(np.exp(-0.2 / ELL), abs=0.03) and corr[0, 1] > 0.95
    # two cooldowns 1% of the run apart: the law alone gave one of them p_best near 1
    # near a flat optimum (the losses of 0.8-0.95 within 0.1%): the law's draws alone all but name one
    flat = dict(total_steps=4000, peak_lr=1e-3, warmup_steps=200, final_lr=1e-5, params=2e8)
    fractions = np.linspace(0.6, 0.95, 20)
    table = best_cooldown(fitted, fractions=fractions, **flat)
    plans = {f"{f:.4g}": Schedule.wsd(1e-3, 4000, float(f), warmup_steps=200, final_lr=1e-5) for f in fractions}
    law = fitted.predict(_targets(fitted, plans, None, 2e8, None, None), kind="law", seed=0).draws.values
    alone = np.bincount(np.argmin(law, axis=1), minlength=len(fractions)) / len(law)
    assert alone.max() > 0.8 > 0.5 > table["p_best"].max()  # 0.84 on this grid
    assert (table["p_best"] > 0.05).sum() >= 3 and table["p_best"].sum() == pytest.approx(1.0)
    # a new branch of a trained run: its tree's offset is known, its own schedule's misfit is not
    test = df[df["run"].str.split("-").str[-1].isin(HELD_OUT)]
    ends = test[test["run"].str.endswith("cool3000")].groupby("run").tail(1)
    spread = np.log(fitted.predict(ends, kind="new_run", seed=1).draws.values).var(axis=0)
    floor = np.mean(fitted.site_draws("sigma_obs") ** 2) + np.mean(fitted.site_draws("sigma_dev") ** 2)
    assert (spread > floor).all(), (spread, floor)  # without the misfit: 1.2e-6 against a floor of 1.4e-6


def test_live_forecast_of_a_run_in_flight_is_conditioned_on_its_checkpoints(monkeypatch):
    """A cosine run seen to step 2000 of 4000: its forecast to the end covers the rest of the run, is
    narrower than the forecast of the same schedule as a run not yet started, and carries the law's misfit
    of the half it has not run (wider than without it, with the same median)."""
    import bayeslaw.inference.nuts as nuts
    from bayeslaw.plan import live_forecast

    df = _noisy_runs(seed=2)
    run = "3e+08-cosine"
    in_flight = df[(df["run"] == run) & (df["step"] <= 2000)]
    rest = df[(df["run"] == run) & (df["step"] > 2000)]
    finished = df[~df["run"].str.split("-").str[-1].isin((*HELD_OUT, "cosine")) | (df["params"] == 1e8)]
    table, fitted = live_forecast(pd.concat([finished, in_flight]), run, steps=rest["step"].to_numpy(),
                                  chains=2, draws=250, warmup=250, progress=False)
    inside = (rest["loss"].to_numpy() >= table["q5"].to_numpy()) & (rest["loss"].to_numpy() <= table["q95"].to_numpy())
    assert inside.mean() > 0.7
    not_started = fitted.predict(rest.drop(columns="run").assign(run="new"), kind="new_run").summary
    assert np.median(table["q95"] - table["q5"]) < 0.7 * np.median(not_started["q95"] - not_started["q5"])
    assert table["observed"].isna().all()  # steps after the last logged checkpoint
    with monkeypatch.context() as patch:
        patch.setattr(nuts, "in_flight_misfit", lambda x, seen: np.zeros(np.shape(x)))
        pinned, _ = live_forecast(pd.concat([finished, in_flight]), run, steps=rest["step"].to_numpy(), fit=fitted)
    np.testing.assert_allclose(table["loss"], pinned["loss"], rtol=2e-3)  # the median stays
    widening = (table["q95"] - table["q5"]).to_numpy() / (pinned["q95"] - pinned["q5"]).to_numpy()
    assert (widening > 1.0).all() and widening.mean() > 1.02
    with pytest.raises(ValueError, match="run 'nope' is not in the table"):
        live_forecast(df, "nope", fit=fitted)


def test_cli_plans_a_schedule_and_forecasts_a_run_in_flight(tmp_path):
    import json

    from typer.testing import CliRunner

    from bayeslaw.cli import app

    runner = CliRunner()
    df = _noisy_runs(seed=3)
    run = "3e+08-cosine"
    df = df[~df["run"].str.split("-").str[-1].isin(HELD_OUT) & ((df["run"] != run) | (df["step"] <= 2500))]
    data = tmp_path / "runs.csv"
    df.to_csv(data, index=False)
    fit_file = tmp_path / "fit.nc"
    result = runner.invoke(app, ["fit", str(data), "--form", "annealing", "--out", str(fit_file), "--chains", "2",
                                 "--draws", "150", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["form"] == "annealing"
    result = runner.invoke(app, ["report", str(fit_file), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output  # curves against steps: the runs carry no tokens
    assert (tmp_path / "report" / "predictive_curves.png").exists()
    page = (tmp_path / "report" / "report.md").read_text()  # one peak rate: the rate slopes are the prior's
    assert "f: constants at its median size" in page and "l0_lr, a_lr, alpha_lr, c_lr from the prior alone" in page
    result = runner.invoke(app, ["predict", str(fit_file), "--params", "2e8", "--tokens", "1e10"])
    assert result.exit_code == 2 and "ask it with `bayeslaw schedule`" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["schedule", str(fit_file), "--params", "2e8", "--total-steps", "4000", "--peak-lr", "1e-3",
                                 "--warmup", "200", "--final-lr", "1e-5", "--cooldown", "0.05,0.2,0.5", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["cooldown"]
    assert [r["cooldown_fraction"] for r in rows] == [0.05, 0.2, 0.5]
    assert sum(r["p_best"] for r in rows) == pytest.approx(1.0) and all(r["q5"] < r["loss"] < r["q95"] for r in rows)
    # the cooldowns of a run in training (branches of it) against the same plan for a new run
    plan = ["schedule", str(fit_file), "--params", "3e8", "--total-steps", "4000", "--peak-lr", "1e-3", "--warmup",
            "200", "--final-lr", "1e-5", "--cooldown", "0.05,0.2,0.5", "--json"]
    new, branches = (json.loads(runner.invoke(app, plan + extra).output)["cooldown"]
                     for extra in ([], ["--parent-run", "3e+08-constant"]))
    assert all(b["q95"] - b["q5"] < r["q95"] - r["q5"] for b, r in zip(branches, new, strict=True))
    result = runner.invoke(app, ["schedule", str(fit_file), "--params", "2e8", "--total-steps", "4000", "--peak-lr",
                                 "1e-3", "--parent-run", "nope"])
    assert result.exit_code != 0 and "parent_run 'nope' is not a run of the fit" in result.output
    result = runner.invoke(app, ["schedule", str(fit_file), "--params", "2e8", "--peak-lr", "1e-3", "--branch-step",
                                 "2500"])
    assert result.exit_code != 0 and "--branch-step needs --cooldown-steps" in result.output
    out = tmp_path / "live.csv"
    result = runner.invoke(app, ["live", str(data), "--run", run, "--chains", "2", "--draws", "150", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["final_step"] == 4000 and payload["final_loss"]["q5"] < payload["final_loss"]["q95"]
    assert pd.read_csv(out)["step"].iloc[0] == 2500
    result = runner.invoke(app, ["live", str(data), "--run", "nope", "--chains", "2", "--draws", "50"])
    assert result.exit_code != 0 and "run 'nope' is not in the table" in result.output
    # a diverged finished run is left out as in `bayeslaw fit` (the error that refuses one names --rising drop)
    result = runner.invoke(app, ["live", str(data), "--run", run, "--rising", "sideways"])
    assert result.exit_code == 2 and "unknown --rising 'sideways'; valid: 'error', 'keep', 'drop'" in result.output


def test_live_forecast_refuses_a_run_its_fit_left_out(schedule_fit):
    # a run the fit does not hold (here a held-out one; in use, one left out as diverged) would be forecast
    # as a new run, unconditioned on its own checkpoints
    from bayeslaw.plan.schedules import live_forecast

    df, fitted = schedule_fit
    with pytest.raises(ValueError, match=r"run '1e\+08-cosine3000' is not among the fit's runs .*or fit= was made "
                                         r"without it"):
        live_forecast(df, "1e+08-cosine3000", fit=fitted)


def test_live_forecast_refuses_before_fitting_what_it_would_drop_or_truncate(schedule_fit):
    from bayeslaw.plan.schedules import live_forecast

    df, fitted = schedule_fit
    run = "1e+08-cosine"
    # not a schedule law: refused before a fit (which failed late, naming options live_forecast lacks)
    for form in ("chinchilla", "su2024"):
        with pytest.raises(ValueError, match=f"form '{form}' is not a schedule law.*the schedule laws: annealing, "
                                             f"multipower"):
            live_forecast(df, run, form=form, chains=1, draws=10, warmup=10, progress=False)
    # a given fit is used as it is: another form or fit options would be ignored
    with pytest.raises(ValueError, match=r"form='multipower' \(the fit's is 'annealing'\), chains= given with fit="):
        live_forecast(df, run, fit=fitted, form="multipower", chains=1)
    with pytest.raises(ValueError, match=r"rising= given with fit="):
        live_forecast(df, run, fit=fitted, form="annealing", rising="drop")
    with pytest.raises(ValueError, match=r"steps must be whole optimizer steps, found \[3000.7\]"):
        live_forecast(df, run, fit=fitted, steps=[3000.7])  # was step 3000
    with pytest.raises(ValueError, match="live_forecast: steps is empty"):
        live_forecast(df, run, fit=fitted, steps=[])
    with pytest.raises(ValueError, match=r"steps \[5000\] lie outside run .* schedule \(steps 1..4000"):
        live_forecast(df, run, fit=fitted, steps=[3000, 5000])  # was: 'a schedule must cover its checkpoints'
    # only warmup checkpoints: the fit leaves the run out (after_warmup), not as a diverged run
    early = df[df["run"] == run].head(2).assign(step=[100, 200])
    with pytest.raises(ValueError, match=r"run '1e\+08-cosine' has no checkpoint past its warmup \(step <= 200\)"):
        live_forecast(pd.concat([df[df["run"] != run], early]), run, fit=fitted)


def test_a_branch_is_refused_from_a_parent_of_another_size_or_peak_rate(schedule_fit):
    from bayeslaw.plan import best_cooldown

    df, fitted = schedule_fit
    sweep = dict(total_steps=4000, warmup_steps=200, final_lr=1e-5, fractions=[0.1], parent_run="1e+08-constant")
    with pytest.raises(ValueError, match=r"parent_run '1e\+08-constant' is a model of 1e\+08 parameters.*"
                                         r"params=1e\+09"):
        best_cooldown(fitted, peak_lr=1e-3, params=1e9, **sweep)
    with pytest.raises(ValueError, match=r"parent_run '1e\+08-constant' trained at peak_lr 0.001.*peak at 0.003"):
        best_cooldown(fitted, peak_lr=3e-3, params=1e8, **sweep)
    assert len(best_cooldown(fitted, peak_lr=1.005e-3, params=1.005e8, **sweep)) == 1  # within 1%
    # a branch follows its parent's rate up to its branch step: not a cosine parent, nor another warmup
    with pytest.raises(ValueError, match=r"branch '0.1' .* leaves its parent_run '1e\+08-cosine' .* at step 455, "
                                         r"before it branches at step 3599"):
        best_cooldown(fitted, peak_lr=1e-3, params=1e8, **{**sweep, "parent_run": "1e+08-cosine"})
    with pytest.raises(ValueError, match=r"leaves its parent_run '1e\+08-constant' .* at step 1, before it branches"):
        best_cooldown(fitted, peak_lr=1e-3, params=1e8, **{**sweep, "warmup_steps": 100})


def test_predict_checks_a_target_branch_against_its_parent(schedule_fit):
    df, fitted = schedule_fit
    branch = Schedule.wsd(1e-3, 4000, 0.1, warmup_steps=200, final_lr=1e-5)
    target = pd.DataFrame({"run": "b", "family": "f", "params": 1e8, "step": [4000], "schedule": branch.to_json()})
    assert np.isfinite(fitted.predict(target.assign(parent_run="1e+08-constant")).summary["q50"]).all()
    # a two-stage branch drops at decay_start, its first step at the second rate: it shares the steps before it
    # (multipower's wsdcon branches were refused: 'leaves its parent at step 2000, before it branches at step 2000')
    jump = Schedule("two_stage", 1e-3, 4000, 200, decay_start=2000, second_lr=3e-4)
    assert np.isfinite(fitted.predict(target.assign(schedule=jump.to_json(), parent_run="1e+08-constant"))
                       .summary["q50"]).all()
    with pytest.raises(ValueError, match=r"predict: run 'b' \(row 0\): parent_run 'no-such' is not a run of the fit"):
        fitted.predict(target.assign(parent_run="no-such"))  # was: a run of its own, without a word
    with pytest.raises(ValueError, match=r"parent_run '3e\+08-constant' is a model of 3e\+08 parameters"):
        fitted.predict(target.assign(parent_run="3e+08-constant"))
    # a branch of a planned branch: its tree is the other target's
    second = target.assign(run="c", parent_run="b")
    both = pd.concat([target.assign(parent_run="1e+08-constant"), second], ignore_index=True)
    assert np.isfinite(fitted.predict(both).summary["q50"]).all()


def test_lr_error_compares_each_logged_rate_except_the_last_iteration():
    schedule = Schedule("cosine", 1e-3, 1000, 100, final_lr=1e-4)
    steps = np.array([0, 50, 500, 999, 1000])
    logged = schedule.lr(steps.astype(float))
    logged[2] *= 1.01  # one rate 1% off
    logged[4] = 0.0  # the rate after the last step: never used, not compared
    error = lr_error(schedule, steps, logged)
    assert np.isnan(error[0]) and np.isnan(error[4])  # step 0 and the last iteration
    np.testing.assert_allclose(error[[1, 3]], 0.0, atol=1e-15)
    np.testing.assert_allclose(error[2], 0.01 / 1.01, rtol=1e-12)  # relative to the larger of the two
    assert np.isnan(lr_error(schedule, [10], [np.nan])[0])  # a missing log


def test_adamw_path_fits_one_size_from_its_linearised_start():
    df = _curves("multipower", MPL_TRUTH, SCHEDULES)
    train, test = df[df["run"] != "wsd"], df[(df["run"] == "wsd") & (df["step"] > 200)]  # forecast after the warmup
    fit = fit_point(train, form="multipower", method="adamw")
    assert fit.method == "adamw" and fit.converged and fit.details["steps"] <= 200
    relative = np.abs(fit.predict(test) / test["loss"].to_numpy() - 1)
    assert relative.mean() < 3e-3  # 200 AdamW steps: near, not at, the minimum (epoch's is 4e-5 here)
    # started at C = 1, beta = gamma = 0.5, the path has moved the loss drop's constants
    assert fit.params["C"] != pytest.approx(1.0, abs=0.1) and fit.params["beta"] != pytest.approx(0.5, abs=0.05)
    # the rows in another order: the same path to the last bit (the path reads the table and its inputs together)
    assert fit_point(train.iloc[::-1], form="multipower", method="adamw").theta == fit.theta
    few = train.iloc[::4]
    two_sizes = pd.concat([few, few.assign(params=2e8, run=few["run"] + "-2x")])
    with pytest.raises(ValueError, match=r"method='adamw' fits one model size, as Luo et al. 2025 do; the table has 2 "
                                         r"\(column 'params'\)"):
        fit_point(two_sizes, form="multipower", method="adamw")
    # nor a sweep of peak rates: the path would hold the rate slopes at 0 and fit one set of constants
    from dataclasses import replace as swap

    faster = few["schedule"].map(lambda text: swap(Schedule.from_json(text), peak_lr=2e-3).to_json())
    two_rates = pd.concat([few, few.assign(schedule=faster, run=few["run"] + "-fast")])
    with pytest.raises(ValueError, match=r"method='adamw' fits one peak learning rate, as Luo et al. 2025 do; the "
                                         r"table's runs have 2 \(from their schedules: 0.001, 0.002\)"):
        fit_point(two_rates, form="multipower", method="adamw")
    with pytest.raises(ValueError, match=r"the annealing law has none \(forms with one: \['multipower'\]\)"):
        fit_point(train, form="annealing", method="adamw")


def test_cli_follows_the_published_path_one_model_at_a_time(tmp_path):
    import json

    from typer.testing import CliRunner

    from bayeslaw.cli import app

    df = _curves("multipower", MPL_TRUTH, {k: SCHEDULES[k] for k in ("cosine", "constant", "wsd")}, every=200)
    df = pd.concat([df.assign(model="m1", params=1e8), df.assign(model="m2", params=2e8, loss=df["loss"] * 0.95)])
    df = df.assign(family="f", run=df["model"] + "-" + df["run"], tokens=df["step"] * 1e5, loss_name="loss")
    path = tmp_path / "curves.csv"
    df.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit-point", str(path), "--form", "multipower", "--method", "adamw", "--json"])
    assert result.exit_code == 0, result.output
    fits = json.loads(result.output)
    assert [(f["model"], f["method"]) for f in fits] == [("m1", "adamw"), ("m2", "adamw")]
    assert fits[1]["L0"] < fits[0]["L0"]  # the larger model's 5% lower curve


@pytest.mark.parametrize("size, target", [("25M", 0.15), ("100M", 0.20)])
def test_adamw_path_reaches_the_published_test_error(data_root, size, target):
    """Luo et al. fit cosine_24000, constant_24000 and wsdcon_9 and test on the other six schedules (published
    mean relative error 0.110% and 0.142%); the schedule issue asks for 0.15% and 0.20%: their protocol."""
    from bayeslaw.data import load

    rows = load("multipower", root=data_root)
    rows = rows[rows["model"] == size]
    train = rows["run"].str.split("-").str[-1].isin(["cosine_24000", "constant_24000", "wsdcon_9"])
    fit = fit_point(rows[train], form="multipower", method="adamw")
    test = rows[~train]
    assert 100 * np.mean(np.abs(fit.predict(test) / test["loss"].to_numpy() - 1)) < target
    published = {"25M": {"L0": 3.0405, "A": 0.5247, "alpha": 0.5079, "B": 363.79},
                 "100M": {"L0": 2.6514, "A": 0.6012, "alpha": 0.4530, "B": 437.95}}[size]
    for name, value in published.items():  # the same path as theirs (C, beta, gamma trade along a flat valley)
        assert fit.params[name] == pytest.approx(value, rel=0.03)


def test_a_schedule_description_names_its_unknown_or_missing_fields():
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['foo'\]; valid: \['shape', 'peak_lr'"):
        Schedule.from_json('{"shape": "constant", "peak_lr": 0.001, "total_steps": 10, "foo": 1}')
    with pytest.raises(ValueError, match=r"missing field\(s\) \['total_steps'\]"):
        Schedule.from_json('{"shape": "constant", "peak_lr": 0.001}')
    with pytest.raises(ValueError, match=r"not a JSON schedule description \(an object of fields\)"):
        Schedule.from_json("[1]")


def test_a_schedule_law_forecasts_after_the_warmup_within_the_run_and_warns_far_from_its_fit(schedule_fit):
    """Forecast rows inside the warmup (S1 -> 0: hundreds of nats) or past the schedule are refused, by the
    posterior and a point fit alike; sizes far outside the fitted ones and peak rates outside the fitted one
    are warned of, naming the rows; rows without a run are each a run of their own schedule."""
    import warnings

    df, fitted = schedule_fit
    point = fit_point(df[df["step"] > 200], form="annealing", method="hitchhiker")
    plan = Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5)
    target = pd.DataFrame({"family": "f", "params": 1e8, "step": [1000, 4000], "schedule": plan.to_json()})
    for predict in (fitted.predict, point.predict):
        with pytest.raises(ValueError, match=r"rows \[0\] ask for steps \[100\] outside wsd 0.001 .* from its warmup's "
                                             r"end to its end \(steps 200..4000\)"):
            predict(target.assign(step=[100, 4000]))
        with pytest.raises(ValueError, match=r"rows \[1\] ask for steps \[4100\] outside"):
            predict(target.assign(step=[1000, 4100]))
        with pytest.warns(UserWarning, match=r"rows \[0, 1\] ask for N = 1e\+10, more than 2.72 times outside the "
                                             r"fitted sizes \(1e\+08..3e\+08\)"):
            predict(target.assign(params=1e10))
        hot = Schedule.wsd(3e-2, 4000, 0.25, warmup_steps=200, final_lr=1e-5)
        with pytest.warns(UserWarning, match=r"ask for peak_lr 0.03, outside the fitted peak rates \(0.001\): the law's "
                                             r"slopes in the peak rate are its priors alone"):
            predict(target.assign(schedule=hot.to_json()))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            predict(target.assign(params=5e8))  # within a factor e of the fitted sizes
    # without a run column (was a KeyError): each row a checkpoint of its own schedule's run, at step / total
    alone = fitted.predict(target).summary
    assert np.all(np.isfinite(alone["q50"])) and alone["q50"].iloc[1] < alone["q50"].iloc[0]


def test_a_targets_draws_read_only_the_columns_that_define_it(schedule_fit):
    """An extra column, or the columns in another order, leave a target's draws as they were."""
    _, fitted = schedule_fit
    plan = Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5)
    target = pd.DataFrame({"run": "x", "family": "f", "params": 1e8, "step": [4000], "schedule": plan.to_json()})
    base = fitted.predict(target).draws.values
    np.testing.assert_array_equal(fitted.predict(target.assign(note="my plan", tokens=np.nan)).draws.values, base)
    np.testing.assert_array_equal(fitted.predict(target[target.columns[::-1]]).draws.values, base)
    # the name of a run of its own, the dtypes of its numbers: not what it asks
    np.testing.assert_array_equal(fitted.predict(target.assign(run="y")).draws.values, base)
    np.testing.assert_array_equal(fitted.predict(target.assign(params=100_000_000, step=np.int32(4000))).draws.values,
                                  base)
    assert not np.array_equal(fitted.predict(target.assign(params=1.5e8)).draws.values, base)  # another question


def test_a_fit_refuses_a_schedule_its_logged_lr_contradicts(schedule_fit):
    from bayeslaw.inference.nuts import fit

    df, _ = schedule_fit
    rows = df[df["step"] > 200].copy()
    rows["lr"] = [Schedule.from_json(text).lr(step) for text, step in zip(rows["schedule"], rows["step"])]
    assert fit_point(rows, form="annealing", method="hitchhiker").converged is not None  # logged = described
    run = rows["run"].iloc[0]
    wrong = rows.assign(lr=np.where(rows["run"] == run, rows["lr"] * 10, rows["lr"]))
    message = rf"run '{re.escape(run)}': its logged lr differs from its schedule .* by up to 0.9 \(relative\)"
    with pytest.raises(ValueError, match="fit_point: " + message):
        fit_point(wrong, form="annealing", method="hitchhiker")
    with pytest.raises(ValueError, match="fit: " + message):
        fit(wrong, form="annealing", chains=1, draws=4, warmup=4)


def test_the_posterior_and_the_point_fit_of_a_schedule_law_are_drawn_where_params_quotes_them(schedule_fit):
    from bayeslaw import plots

    df, fitted = schedule_fit
    point = fit_point(fitted.training_rows(), form="annealing", method="hitchhiker")
    at = fitted.reference_point("f")
    table = fitted.params().set_index("parameter")
    assert at == {"params": pytest.approx(table["at_params"].iloc[0]), "peak_lr": pytest.approx(table["at_peak_lr"].iloc[0])}
    figure = plots.point_vs_posterior(fitted, {"f": point})
    law = fitted.spec.law
    expected = law.natural(law.constants_at(point.theta, at))
    marks = {ax.get_title(): [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "x"] for ax in figure.axes}
    assert marks["L0"] == [pytest.approx(float(expected["L0"]))]
    assert float(expected["L0"]) != pytest.approx(point.params["L0"], rel=1e-6)  # not the reference size's
    assert "f at params" in figure.get_suptitle()


def test_best_cooldown_names_its_step_counts_and_a_point_fit_says_it_ignores_parent_run(schedule_fit):
    from bayeslaw.plan import best_cooldown

    df, fitted = schedule_fit
    sweep = dict(peak_lr=1e-3, params=1e8, fractions=[0.1, 0.2], final_lr=1e-5)
    with pytest.raises(ValueError, match=r"best_cooldown: total_steps \(CLI: --total-steps\) must be a whole number "
                                         r"of steps >= 201 \(the run's length, past its warmup of 200 steps\), found 150"):
        best_cooldown(fitted, total_steps=150, warmup_steps=200, **sweep)
    with pytest.raises(ValueError, match=r"best_cooldown: warmup_steps \(CLI: --warmup\) must be a whole number of "
                                         r"steps >= 0"):
        best_cooldown(fitted, total_steps=4000, warmup_steps=-5, **sweep)
    point = fit_point(df[df["step"] > 200], form="annealing", method="hitchhiker")
    with pytest.warns(UserWarning, match=r"a point fit has no run offsets; parent_run='1e\+08-constant' is ignored"):
        table = best_cooldown(point, total_steps=4000, warmup_steps=200, parent_run="1e+08-constant", **sweep)
    assert table["best"].sum() == 1
