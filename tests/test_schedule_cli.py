"""`bayeslaw schedule` and `bayeslaw live`: options refused in one line before any fit or draw (one tiny
annealing fit, shared)."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayeslaw.cli import app
from bayeslaw.data.schedules import Schedule
from bayeslaw.laws import get_law

runner = CliRunner()
TRUTH = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5), "l0_n": -0.08, "a_n": 0.05,
         "alpha_n": -0.02, "c_n": 0.1, "l0_lr": 0.0, "a_lr": 0.25, "alpha_lr": 0.0, "c_lr": -0.5}
SCHEDULES = {"constant": Schedule("constant", 1e-3, 4000, 200), "cosine": Schedule("cosine", 1e-3, 4000, 200, 1e-4),
             "wsd": Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5)}
IN_FLIGHT = "3e+08-cosine"  # seen to step 2000 of 4000


def _runs(seed=0) -> pd.DataFrame:
    """Annealing-law curves of two sizes and three schedules, with a log-loss offset per run."""
    rng = np.random.default_rng(seed)
    law = get_law("annealing")
    frames = []
    for params in (1e8, 3e8):
        for name, schedule in SCHEDULES.items():
            rows = pd.DataFrame({"run": f"{params:.0e}-{name}", "step": np.arange(300, 4001, 100),
                                 "schedule": schedule.to_json(), "params": params})
            mean = np.asarray(law.log_loss({k: np.asarray(v) for k, v in TRUTH.items()}, **law.columns(rows)))
            frames.append(rows.assign(loss=np.exp(mean + rng.normal(0, 0.004) + rng.normal(0, 0.001, len(rows)))))
    df = pd.concat(frames, ignore_index=True)
    df = df[(df["run"] != IN_FLIGHT) | (df["step"] <= 2000)]
    return df.assign(family="f", model=df["params"].map(lambda p: f"{p:.0e}"), tokens=np.nan, seed=0,
                     loss_name="loss", source="test").reset_index(drop=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """runs.csv (a run in flight among finished ones) and fit.nc, its annealing fit (1 chain x 60 draws)."""
    from bayeslaw.inference.nuts import fit

    folder = tmp_path_factory.mktemp("schedule_cli")
    df = _runs()
    df.to_csv(folder / "runs.csv", index=False)
    fit(df, form="annealing", chains=1, draws=60, warmup=60, progress=False).save(folder / "fit.nc")
    return folder


def refused(args) -> str:
    """The one line an option refused ends in (exit code 2), spaces normalised."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    return " ".join(result.stderr.split())


def plan(files, *extra) -> list[str]:
    return ["schedule", str(files / "fit.nc"), "--params", "3e8", "--peak-lr", "1e-3", "--warmup", "200", *extra]


def test_schedule_refuses_options_of_the_other_question(files):
    # --branch-step asks for a branch's drop: a budget, fractions or a parent would be ignored there
    branch = ["--branch-step", "2500", "--cooldown-steps", "800"]
    assert "--total-steps does not apply with --branch-step" in refused(plan(files, *branch, "--total-steps", "4000"))
    message = refused(plan(files, *branch, "--cooldown", "0.2", "--parent-run", "nope"))
    assert "--cooldown, --parent-run do not apply with --branch-step" in message
    # the best cooldown of a run: a branch's length would be ignored there
    message = refused(plan(files, "--total-steps", "4000", "--cooldown-steps", "800"))
    assert "--cooldown-steps goes with --branch-step" in message
    assert "schedule needs --total-steps" in refused(plan(files))
    result = runner.invoke(app, plan(files, *branch, "--json"))
    assert result.exit_code == 0, result.output


def test_schedule_refuses_cooldown_fractions_that_name_one_schedule(files):
    for fractions in ("0.2,0.2", "0.2,0.20001"):  # 4000 x 0.20001 rounds to step 800 as 0.2 does
        message = refused(plan(files, "--total-steps", "4000", "--cooldown", fractions))
        assert "(CLI: --cooldown) both start the cooldown at step 3200 of 4000" in message
    # a cooldown that would start inside the warmup was moved to its end: two fractions, one schedule
    message = refused(plan(files, "--total-steps", "4000", "--cooldown", "0.5,0.96,0.97"))
    assert "cooldown_fraction 0.96 would start the cooldown at step 160, inside the warmup (200 steps)" in message
    assert "the largest fraction is 0.95" in message


def test_schedule_refuses_a_parent_run_of_another_size_or_rate(files):
    parent = ["--total-steps", "4000", "--cooldown", "0.2", "--parent-run", "3e+08-constant"]
    message = refused(["schedule", str(files / "fit.nc"), "--params", "1e9", "--peak-lr", "1e-3", *parent])
    assert "parent_run '3e+08-constant' is a model of 3e+08 parameters" in message and "--params" in message
    message = refused(["schedule", str(files / "fit.nc"), "--params", "3e8", "--peak-lr", "3e-3", *parent])
    assert "parent_run '3e+08-constant' trained at peak_lr 0.001" in message and "--peak-lr" in message
    result = runner.invoke(app, plan(files, *parent, "--json"))
    assert result.exit_code == 0, result.output


def test_schedule_hints_no_option_it_lacks(files):
    message = refused(plan(files, "--total-steps", "4000", "--family", "nope"))
    assert "unknown family ['nope']" in message and "--new-family" not in message


@pytest.mark.parametrize("form", ["chinchilla", "su2024", "nope"])
def test_live_refuses_a_law_that_is_not_a_schedule_law_before_fitting(files, form):
    message = refused(["live", str(files / "runs.csv"), "--run", IN_FLIGHT, "--form", form])
    assert f"--form {form!r} is not a" in message and "the schedule laws: annealing, multipower" in message


def test_live_refuses_an_out_path_before_fitting(files, tmp_path):
    args = ["live", str(files / "runs.csv"), "--run", IN_FLIGHT, "--chains", "1", "--draws", "20"]
    assert f"--out {str(tmp_path)!r} is a folder" in refused([*args, "--out", str(tmp_path)])
    (tmp_path / "file").write_text("")
    assert "is a file, not a folder" in refused([*args, "--out", str(tmp_path / "file" / "live.csv")])


def test_live_refuses_a_run_seen_only_in_its_warmup(files, tmp_path):
    df = pd.read_csv(files / "runs.csv")
    early = df[df["run"] == IN_FLIGHT].head(2).assign(step=[100, 200])  # the warmup is 200 steps
    data = tmp_path / "warm.csv"
    pd.concat([df[df["run"] != IN_FLIGHT], early]).to_csv(data, index=False)
    message = refused(["live", str(data), "--run", IN_FLIGHT, "--chains", "1", "--draws", "20"])
    assert f"run {IN_FLIGHT!r} has no checkpoint past its warmup (step <= 200)" in message


def test_live_writes_parquet_for_a_parquet_out(files, tmp_path):
    out = tmp_path / "live.parquet"
    result = runner.invoke(app, ["live", str(files / "runs.csv"), "--run", IN_FLIGHT, "--chains", "1", "--draws",
                                 "40", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)  # the old writer wrote CSV text under a .parquet name
    assert table["step"].iloc[0] == 2000 and table["step"].iloc[-1] == 4000
    assert (table["q5"] <= table["q95"]).all()


def test_schedule_compares_no_cooldown_as_the_api_does(files):
    """--cooldown 0 is the run without a cooldown, the baseline a sweep is weighed against (the API's
    fractions=[0.0]; the CLI refused it); a negative fraction is refused."""
    import json

    result = runner.invoke(app, plan(files, "--total-steps", "4000", "--cooldown", "0,0.2", "--json"))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["cooldown"]
    assert [r["cooldown_fraction"] for r in rows] == [0.0, 0.2] and rows[0]["cooldown_start"] == 4000
    assert rows[1]["loss"] < rows[0]["loss"]  # a cooldown lowers the final loss
    assert "--cooldown: '-0.1' must be a non-negative finite number" in refused(
        plan(files, "--total-steps", "4000", "--cooldown", "-0.1"))


def test_live_takes_a_restarted_run_in_flight_with_duplicates_last(files, tmp_path):
    """A run in flight that restarted logs its last checkpoints again: refused, naming --duplicates last,
    which keeps the restart's (the forecast's observed loss is the last logged)."""
    df = pd.read_csv(files / "runs.csv")
    again = df[(df["run"] == IN_FLIGHT) & (df["step"] >= 1900)].assign(loss=lambda d: d["loss"] + 0.01)
    path = tmp_path / "restarted.csv"
    pd.concat([df, again]).to_csv(path, index=False)
    refused = runner.invoke(app, ["live", str(path), "--run", IN_FLIGHT, "--chains", "1", "--draws", "40"])
    assert refused.exit_code == 2 and "--duplicates last keeps the last logged row" in refused.stderr
    out = tmp_path / "live.csv"
    result = runner.invoke(app, ["live", str(path), "--run", IN_FLIGHT, "--chains", "1", "--draws", "40",
                                 "--duplicates", "last", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["observed"].iloc[0] == pytest.approx(again["loss"].iloc[-1], rel=1e-12)  # step 2000, restarted


def test_fit_point_quotes_a_schedule_laws_constants_where_fit_does(files):
    """`fit-point --form annealing` gives the constants at the rows' median size and peak rate (at_params,
    at_peak_lr), as `bayeslaw fit` and Fit.params do (they were at the law's 1e8 / 1e-3, read as a 6% gap),
    and its --json keeps every digit."""
    import json

    from bayeslaw.inference.nuts import load_fit
    from bayeslaw.inference.point import fit_point

    result = runner.invoke(app, ["fit-point", str(files / "runs.csv"), "--form", "annealing", "--method",
                                 "hitchhiker", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    params = load_fit(files / "fit.nc").params().set_index("parameter")
    assert row["at_params"] == pytest.approx(params["at_params"].iloc[0], rel=1e-12)
    assert row["at_peak_lr"] == pytest.approx(params["at_peak_lr"].iloc[0], rel=1e-12)
    df = pd.read_csv(files / "runs.csv")
    point = fit_point(df, form="annealing", method="hitchhiker", warn_early=False)
    at = {"params": row["at_params"], "peak_lr": row["at_peak_lr"]}
    assert row["L0"] == point.params_at(at)["L0"] and row["objective"] == point.objective  # every digit
    moved = point.params_at({"params": 5e7, "peak_lr": 3e-4})  # elsewhere the constants move with N and eta
    assert moved["L0"] != pytest.approx(point.params_at(at)["L0"], rel=1e-6)
