"""Learning-rate schedules, the schedule laws' precomputed terms, and the multipower/annealing laws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayeslaw.data.schedules import Schedule, run_schedules
from bayeslaw.inference.point import fit_point
from bayeslaw.laws import get_law
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
    schedule = Schedule("two_stage", 3e-4, 16000, 2160, decay_start=8000, second_lr=3e-5)
    steps = np.arange(2176, 16000, 128)
    design = drop_design(schedule, steps)
    assert design["drop_weight"].shape[1] == 1
    for gamma in (0.3, 0.9):
        np.testing.assert_allclose(_binned(design, 3.0, gamma, 0.5), drop_exact(schedule, steps, gamma=gamma, c=3.0, beta=0.5),
                                   rtol=1e-12, atol=1e-15)
    assert (design["drop_weight"][steps < 8000] == 0).all()  # nothing drops before the switch


def test_schedule_inputs_refuse_rows_without_a_step():
    text = Schedule("constant", 1e-3, 100).to_json()
    with pytest.raises(ValueError, match=r"column 'step'.*rows \[1\]"):
        schedule_inputs({"step": np.array([5.0, -1.0]), "schedule": np.array([text, text], dtype=object)})
    table = pd.DataFrame({"run": ["r"] * 3, "step": [10, 20, 30], "loss": [3.0, 2.9, 2.8]})
    with pytest.raises(ValueError, match=r"the multipower law needs column\(s\) \['schedule'\]"):
        get_law("multipower").columns(table)


def _curves(law_name, theta, schedules, every=100):
    law = get_law(law_name)
    frames = [pd.DataFrame({"run": name, "step": np.arange(every, s.total_steps + 1, every), "schedule": s.to_json()})
              for name, s in schedules.items()]
    df = pd.concat(frames, ignore_index=True)
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
    ("annealing", {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(50.0)}),
])
def test_point_fit_on_three_schedules_predicts_a_fourth(law_name, truth):
    df = _curves(law_name, truth, SCHEDULES)
    train, test = df[df["run"] != "wsd"], df[df["run"] == "wsd"]
    fit = fit_point(train, form=law_name)
    relative = np.abs(fit.predict(test) / test["loss"].to_numpy() - 1)
    assert relative.mean() < 5e-4
    # a law that ignored the cooldown (the constant schedule's curve) would miss the wsd run's end by more
    constant = _curves(law_name, truth, {"wsd": Schedule("constant", 1e-3, 4000, 200)})
    assert abs(constant["loss"].iloc[-1] / test["loss"].iloc[-1] - 1) > 10 * relative[-1]


def test_cli_fits_a_schedule_law_per_model(tmp_path):
    import json

    from typer.testing import CliRunner

    from bayeslaw.cli import app

    truth = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(50.0)}
    df = _curves("annealing", truth, SCHEDULES, every=200)
    df = pd.concat([df.assign(model="m1", params=1e8), df.assign(model="m2", params=2e8, loss=df["loss"] * 0.95)])
    df = df.assign(family="f", run=df["model"] + "-" + df["run"], tokens=df["step"] * 1e5, loss_name="loss")
    path = tmp_path / "curves.csv"
    df.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit-point", str(path), "--form", "annealing", "--json"])
    assert result.exit_code == 0, result.output
    fits = {row["model"]: row for row in json.loads(result.output)}
    assert set(fits) == {"m1", "m2"}
    assert fits["m1"]["L0"] == pytest.approx(2.8, rel=1e-3)
    assert fits["m2"]["L0"] == pytest.approx(2.8 * 0.95, rel=1e-3)


MPL_TRUTH = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "b": np.log(300.0), "c": np.log(2.0),
             "beta": 0.55, "gamma": 0.6}


def test_schedule_planning_with_a_multipower_fit():
    from bayeslaw.inference.point import PointFit
    from bayeslaw.plan import best_cooldown, cooldown_drop, schedule_loss

    fit = PointFit("multipower", "epoch", {k: float(v) for k, v in MPL_TRUTH.items()}, 0.0, 0, True)
    plans = {"constant": Schedule("constant", 1e-3, 6000, 200), "cosine": Schedule("cosine", 1e-3, 6000, 200, 1e-4)}
    final = schedule_loss(fit, plans).set_index("schedule")["loss"]
    assert final["cosine"] < final["constant"]  # annealing pays off at the end of the run
    curve = schedule_loss(fit, plans["cosine"], steps=[1000, 3000, 6000])
    assert curve["loss"].is_monotonic_decreasing and len(curve) == 3
    table = best_cooldown(fit, total_steps=6000, peak_lr=1e-3, warmup_steps=200, fractions=np.linspace(0.0, 0.9, 19))
    best = table.loc[table["best"], "cooldown_fraction"].item()
    assert 0.0 < best < 0.9  # neither no cooldown nor a run that is almost all cooldown
    assert table["loss"].min() < final["constant"]
    drop = cooldown_drop(fit, branch_step=4000, cooldown_steps=800, peak_lr=1e-3, warmup_steps=200)
    assert drop["drop"] > 0 and drop["loss_cooldown"] < drop["loss_constant"]
    chinchilla = PointFit("chinchilla", "epoch", {"e": 0.5, "a": 6.0, "b": 7.0, "alpha": 0.3, "beta": 0.3}, 0.0, 0, True)
    with pytest.raises(ValueError, match="reads a run's step and schedule; the chinchilla law reads"):
        schedule_loss(chinchilla, plans)
