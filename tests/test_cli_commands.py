"""The daily commands: fit, predict, diagnose, report, plan (one tiny NUTS fit through the CLI, shared)."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

import bayeslaw.plan
import bayeslaw.plots
from bayeslaw.cli import app

runner = CliRunner()
COMMANDS = ["fit", "predict", "diagnose", "report", "plan", "backtest"]
QUANTILES = ["q5", "q25", "q50", "q75", "q95"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """sim.csv from `bayeslaw simulate` and fit.nc from `bayeslaw fit` (complete pooling, 1 chain x 100 draws)."""
    folder = tmp_path_factory.mktemp("cli")
    data, fit_path = folder / "sim.csv", folder / "fit.nc"
    result = runner.invoke(app, ["simulate", "--out", str(data), "--families", "2", "--seeds", "1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["fit", str(data), "--out", str(fit_path), "--pooling", "complete", "--chains", "1",
                                 "--draws", "100", "--thin", "4", "--extend", "2", "--json"])  # progress bar on stderr
    assert result.exit_code == 0, result.output
    return {"data": data, "fit": fit_path, "summary": json.loads(result.stdout)}


def invoke_json(args):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and "--json" in result.output


def test_predict_help_documents_several_values():
    text = " ".join(runner.invoke(app, ["predict", "--help"]).output.split())
    assert "comma-separated" in text and "repeated" in text


def test_fit_writes_a_loadable_fit_and_json_summary(fitted):
    summary = fitted["summary"]
    assert summary["form"] == "chinchilla" and summary["pooling"] == "complete"
    assert summary["families"] == ["fam0", "fam1"]
    assert summary["diagnostics"]["warning"] is True  # one chain: r-hat cannot be computed
    assert summary["diagnostics"]["max_rhat"] is None and summary["diagnostics"]["divergences"] >= 0
    assert summary["diagnostics"]["extensions"] == 0  # --extend 2, but one chain has nothing to compare
    params = pd.DataFrame(summary["params"])
    assert set(params["parameter"]) >= {"E", "A", "B", "alpha", "beta"}
    assert (params["q05"] <= params["median"]).all() and (params["median"] <= params["q95"]).all()
    assert not list(fitted["fit"].parent.glob("*.tmp"))
    assert bayeslaw.load_fit(fitted["fit"]).form == "chinchilla"


def test_fit_prints_diagnostics_and_parameter_table(fitted, tmp_path):
    result = runner.invoke(app, ["fit", str(fitted["data"]), "--out", str(tmp_path / "f.nc"), "--pooling",
                                 "complete", "--chains", "1", "--draws", "20", "--thin", "3",
                                 "--family", "fam0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "NUTS diagnostics: max r-hat" in result.stdout and "alpha" in result.stdout
    assert "warning: one chain" in result.stderr  # warnings go to stderr
    assert (tmp_path / "f.nc").exists()


def test_predict_json_quantiles_ordered_and_loss_falls_with_size(fitted):
    out = invoke_json(["predict", str(fitted["fit"]), "--params", "1e9,2.8e9,7e9", "--tokens", "1e11",
                       "--kind", "law"])
    table = pd.DataFrame(out["predictions"])
    assert len(table) == 2 * 3 and set(table["family"]) == {"fam0", "fam1"}  # every family x every size
    assert (np.diff(table[QUANTILES].to_numpy(), axis=1) >= 0).all()
    assert table["q50"].between(1.0, 5.0).all()
    for _, rows in table.groupby("family"):
        assert (np.diff(rows.sort_values("params")["q50"].to_numpy()) < 0).all()  # more parameters, lower loss


def test_predict_new_run_is_wider_than_the_law(fitted):
    base = ["predict", str(fitted["fit"]), "--params", "2.8e9", "--tokens", "1e11", "--family", "fam0"]
    law = pd.DataFrame(invoke_json([*base, "--kind", "law"])["predictions"])
    run = pd.DataFrame(invoke_json([*base, "--kind", "new_run"])["predictions"])
    assert (run["q95"] - run["q5"]).item() > (law["q95"] - law["q5"]).item()


def test_predict_repeated_option_equals_comma_list_and_new_family(fitted):
    comma = invoke_json(["predict", str(fitted["fit"]), "--params", "1e9,7e9", "--tokens", "1e11"])
    repeated = invoke_json(["predict", str(fitted["fit"]), "--params", "1e9", "--params", "7e9", "--tokens", "1e11"])
    assert comma == repeated
    new = invoke_json(["predict", str(fitted["fit"]), "--params", "1e9", "--tokens", "1e11", "--new-family"])
    assert [row["family"] for row in new["predictions"]] == ["(new family)"]


def test_predict_table(fitted):
    result = runner.invoke(app, ["predict", str(fitted["fit"]), "--params", "7e9", "--tokens", "1.4e12"])
    assert result.exit_code == 0, result.output
    assert "q95" in result.stdout and "fam1" in result.stdout and "90% interval" in result.stdout


def test_diagnose_json_table_and_strict(fitted):
    out = invoke_json(["diagnose", str(fitted["fit"])])
    assert out["chains"] == 1 and out["draws"] == 100 and out["warning"] is True
    assert out["min_ess_bulk"] > 0 and len(out["bfmi"]) == 1 and out["worst"]
    ess = [row["ess_bulk"] for row in out["worst"]]
    assert ess == sorted(ess) and ess[0] == pytest.approx(out["min_ess_bulk"])
    relaxed = runner.invoke(app, ["diagnose", str(fitted["fit"])])
    assert relaxed.exit_code == 0 and "r-hat" in relaxed.stdout and "one chain" in relaxed.stderr
    strict = runner.invoke(app, ["diagnose", str(fitted["fit"]), "--strict"])
    assert strict.exit_code == 1  # one chain fails the diagnostics


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "missing.csv", "--out", "x.nc"], "does not exist"),
        (["fit", "demo", "--out", "x.nc", "--form", "cubic"], "unknown --form 'cubic'; valid: 'chinchilla'"),
        (["fit", "demo", "--out", "x.nc", "--pooling", "partial"], "unknown --pooling 'partial'"),
        (["fit", "demo", "--out", "x.nc", "--family", "famX"], "unknown family ['famX']; the data has ['fam0'"),
        (["fit", "demo", "--out", "."], "--out '.' is a folder"),
        (["predict", "nofit.nc", "--params", "1e9", "--tokens", "1e11"], "fit file 'nofit.nc' does not exist"),
        (["diagnose", "nofit.nc"], "does not exist"),
        (["report", "nofit.nc"], "does not exist"),
        (["plan", "nofit.nc", "--flops", "1e21"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output and not isinstance(result.exception, Exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "1e9", "--tokens", "1e11", "--family", "famX"], "unknown family ['famX']; the fit has families "
                                                                       "['fam0', 'fam1']"),
        (["--params", "big", "--tokens", "1e11"], "--params: 'big' is not a number"),
        (["--params", "-1e9", "--tokens", "1e11"], "--params: '-1e9' must be a positive"),
        (["--params", "1e9", "--tokens", "1e11", "--batch-size", "1e6"], "--batch-size applies to su2024 fits only"),
        (["--params", "1e9", "--tokens", "1e11", "--kind", "best"], "unknown --kind 'best'"),
    ],
)
def test_predict_bad_options(fitted, args, message):
    result = runner.invoke(app, ["predict", str(fitted["fit"]), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_fit_reports_the_draws_it_kept_after_an_extension(fitted, tmp_path, monkeypatch):
    """A fit that drew more blocks (--extend) reports the draws it holds, not the --draws asked for."""
    import bayeslaw.inference.nuts as nuts

    kept = nuts.load_fit(fitted["fit"])  # 1 chain x 100 draws
    monkeypatch.setattr(nuts, "fit", lambda *args, **kwargs: kept)
    out = invoke_json(["fit", str(fitted["data"]), "--out", str(tmp_path / "f.nc"), "--chains", "1", "--draws", "40"])
    assert (out["chains"], out["draws"]) == (1, 100)


def test_not_a_fit_file(fitted, tmp_path):
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_netcdf(other, engine="h5netcdf")
    for path, message in [(fitted["data"], "is not a fit file (a netCDF file written by `bayeslaw fit`"),
                          (other, "is a netCDF file but not a bayeslaw fit"),
                          (tmp_path, "is a folder, not a fit file")]:
        result = runner.invoke(app, ["diagnose", str(path)])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.stderr.split()) and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1  # HDF5's own report ran over several lines


def test_fit_bad_schema_names_column(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"family": ["f"], "model": ["m"], "run": ["r"], "params": [-1.0], "tokens": [1e9],
                  "loss": [3.0], "loss_name": ["x"]}).to_csv(path, index=False)
    result = runner.invoke(app, ["fit", str(path), "--out", str(tmp_path / "f.nc")])
    assert result.exit_code == 2
    assert "column 'params'" in " ".join(result.stderr.split())
    assert not (tmp_path / "f.nc").exists()


def test_fit_point_says_when_the_early_cut_leaves_nothing(tmp_path):
    path = tmp_path / "early.csv"
    n, d = np.repeat([1e8, 2e8, 4e8], 3), np.tile([1e9, 3e9, 9e9], 3)
    pd.DataFrame({"run": [f"r{x:g}" for x in n], "params": n, "tokens": d,
                  "loss": 1.8 + 400 / n ** 0.34 + 400 / d ** 0.28}).to_csv(path, index=False)
    result = runner.invoke(app, ["fit-point", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "none of the 9 rows has more than --min-tokens 1e+10 tokens" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["fit-point", str(path), "--min-tokens", "0", "--method", "hitchhiker", "--json"])
    assert result.exit_code == 0, result.output


def test_plan_needs_a_question_and_answers_tokens_to_a_loss(fitted):
    result = runner.invoke(app, ["plan", str(fitted["fit"])])
    assert result.exit_code == 2 and "nothing to plan" in result.stderr
    result = runner.invoke(app, ["plan", str(fitted["fit"]), "--loss", "2.5"])
    assert result.exit_code == 2 and "--loss needs --params" in result.stderr
    result = runner.invoke(app, ["plan", str(fitted["fit"]), "--flops", "1e21", "--params", "7e9"])
    assert result.exit_code == 2 and "--params goes with --loss" in result.stderr  # not left unused
    table = runner.invoke(app, ["plan", str(fitted["fit"]), "--loss", "2.6", "--params", "1e9", "--family", "fam0"])
    assert table.exit_code == 0 and "family fam0: training tokens" in " ".join(table.output.split())
    # a chinchilla fit: the tokens to each loss and the minimum with unlimited tokens (su2024's steps need su2024)
    out = invoke_json(["plan", str(fitted["fit"]), "--loss", "2.6,9", "--params", "1e9"])["trajectory"]
    assert set(out) == {"tokens", "minimum_loss"}
    floor = out["minimum_loss"][0]
    assert floor["q5"] < floor["q50"] < floor["q95"] < 9
    reach = {row["loss"]: row for row in out["tokens"]}
    assert reach[9.0]["p_reachable"] == 1.0 and 0 < reach[9.0]["q50"] < 1e9  # 9 nats: reached early in any run
    assert reach[2.6]["p_reachable"] < 1 or reach[2.6]["q50"] > reach[9.0]["q50"]
    result = runner.invoke(app, ["plan", str(fitted["fit"]), "--loss", "2.6", "--params", "1e9", "--batch-size", "1e6"])
    assert result.exit_code == 2 and "does not read the batch size" in result.stderr
    result = runner.invoke(app, ["plan", str(fitted["fit"]), "--flops", "1e21", "--family", "famX"])
    assert result.exit_code == 2 and "unknown family ['famX']" in " ".join(result.stderr.split())


# --- commands built on other modules' functions: skipped only while those functions are missing ----------


def test_plan_allocation(fitted):
    if not hasattr(bayeslaw.plan, "optimal_allocation"):
        pytest.skip("bayeslaw.plan.optimal_allocation is not written yet")
    out = invoke_json(["plan", str(fitted["fit"]), "--flops", "1e20,1e22", "--family", "fam0", "--point-method",
                       "hitchhiker"])
    summary = pd.DataFrame(out["allocation"]["summary"])
    assert summary["flops"].tolist() == [1e20, 1e22]
    assert (summary["params_opt_q5"] <= summary["params_opt_q95"]).all()
    assert (np.diff(summary["params_opt_q50"]) > 0).all()  # more compute, a bigger optimal model
    table = runner.invoke(app, ["plan", str(fitted["fit"]), "--flops", "1e21", "--point-method", "hitchhiker"])
    assert table.exit_code == 0, table.output
    assert "N* (parameters)" in table.stdout and "population" in table.stdout


def test_report_writes_folder(fitted, tmp_path):
    if not hasattr(bayeslaw.plots, "fit_report"):
        pytest.skip("bayeslaw.plots.fit_report is not written yet")
    (tmp_path / "rep" / "old").mkdir(parents=True)  # a folder with files of its own (--out .)
    (tmp_path / "rep" / "old" / "notes.txt").write_text("mine")
    out = invoke_json(["report", str(fitted["fit"]), "--out", str(tmp_path / "rep"), "--data", str(fitted["data"]),
                       "--point-method", "hitchhiker"])
    assert "report.md" in out["files"] and "params.csv" in out["files"]
    assert any(name.endswith(".png") for name in out["files"])
    assert (tmp_path / "rep" / "report.md").read_text().strip()
    # the files the report wrote, not every file under the folder
    written = {p.name for p in (tmp_path / "rep").iterdir() if p.is_file()}
    assert set(out["files"]) == written and "old/notes.txt" not in out["files"]
    assert "rank.png" not in out["files"]  # one chain: no rank plot


def test_fit_refuses_a_restart_logged_twice_and_leaves_no_file(fitted, tmp_path):
    df = pd.read_csv(fitted["data"])
    twice = pd.concat([df, df.iloc[[3]].assign(loss=df["loss"].iloc[3] + 0.1, step=-1)], ignore_index=True)
    path = tmp_path / "twice.csv"
    twice.to_csv(path, index=False)
    result = runner.invoke(app, ["fit", str(path), "--out", str(tmp_path / "f.nc"), "--chains", "1", "--draws", "5"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    # the file's validation finds it (at equal tokens, whatever the step) and names the CLI's option
    assert f"repeats row 5 at the same tokens: run '{df['run'].iloc[3]}'" in message, message
    assert message.endswith("--duplicates last keeps the last logged row of each (a restart's)")
    assert not (tmp_path / "f.nc").exists()


# --- paths checked before the work, diagnostics that cannot crash or pass silently --------------------------


def test_fit_checks_its_out_path_before_fitting(fitted, tmp_path, monkeypatch):
    """A --out under a file was found by the save, after the whole NUTS fit: now before it."""
    import bayeslaw.inference.nuts as nuts

    fits = []
    monkeypatch.setattr(nuts, "fit", lambda *args, **kwargs: fits.append(1))
    (tmp_path / "runs.csv").write_text("x")
    result = runner.invoke(app, ["fit", str(fitted["data"]), "--out", str(tmp_path / "runs.csv" / "fit.nc")])
    assert result.exit_code == 2 and "is a file, not a folder" in " ".join(result.stderr.split())
    assert not fits and len(result.stderr.strip().splitlines()) == 1


def test_fit_refuses_fewer_draws_than_the_diagnostics_need(fitted, tmp_path):
    result = runner.invoke(app, ["fit", str(fitted["data"]), "--out", str(tmp_path / "f.nc"), "--draws", "1"])
    assert result.exit_code == 2 and "--draws" in result.output and not (tmp_path / "f.nc").exists()


def test_diagnostics_of_one_draw_per_chain_are_nan_and_say_why(fitted, tmp_path):
    """A fit of one draw per chain (bayeslaw.fit(draws=1)): no sampled quantity varies, and the diagnostics
    crashed on the empty table ('zero-size array'), in `fit` after the file was written and in `diagnose`."""
    fit = bayeslaw.load_fit(fitted["fit"])
    one = bayeslaw.Fit(fit.idata.isel(draw=slice(0, 1)))
    diagnostics = one.diagnostics(warn=False)
    assert np.isnan(diagnostics.min_ess_bulk) and np.isnan(diagnostics.min_ess_tail) and np.isnan(diagnostics.max_rhat)
    assert diagnostics.warning and "1 draw(s) per chain: too few draws for ESS and r-hat" in diagnostics.messages[0]
    path = one.save(tmp_path / "one.nc")
    result = runner.invoke(app, ["diagnose", str(path)])
    assert result.exit_code == 0, result.output
    assert "too few draws" in " ".join(result.stderr.split())
    assert invoke_json(["diagnose", str(path)])["min_ess_bulk"] is None


def _synthetic_fit(source, path, chain_draws) -> None:
    """The fit at ``source`` with every posterior site's draws replaced by ``chain_draws`` (one chain's
    draws, the same in each of 4 chains and for every element), no divergence and independent energies
    (BFMI ~ 2), saved at ``path``: its r-hat, divergences and BFMI pass, and its ESS is what the draws make it."""
    fit = bayeslaw.load_fit(source)
    post = fit.idata.posterior.to_dataset()
    chains, n = 4, len(chain_draws)
    sites = {}
    for name, da in post.data_vars.items():
        shape = (chains, n, *da.shape[2:])
        values = np.broadcast_to(np.reshape(chain_draws, (1, n) + (1,) * (len(shape) - 2)), shape)
        sites[name] = (da.dims, values + np.arange(int(np.prod(shape[2:]))).reshape(shape[2:]))
    coords = {k: v for k, v in post.coords.items() if k not in ("chain", "draw")}
    tree = fit.idata.copy()
    tree["posterior"] = xr.Dataset(sites, coords={**coords, "chain": np.arange(chains), "draw": np.arange(n)})
    energy = np.random.default_rng(0).normal(size=(chains, n))
    tree["sample_stats"] = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, n), bool)),
                                       "energy": (("chain", "draw"), energy)},
                                      coords={"chain": np.arange(chains), "draw": np.arange(n)})
    for group in ("posterior_predictive", "log_likelihood"):
        del tree[group]
    bayeslaw.Fit(tree).save(path)


def test_diagnose_strict_fails_on_low_ess_alone_and_the_pass_line_names_ess(fitted, tmp_path):
    """README: `diagnose --strict` checks r-hat, ESS, divergences and BFMI; ESS was never checked. Chains that
    agree (r-hat < 1) but crawl (sorted halves: a few effective draws) fail on ESS alone, naming the worst site."""
    half = np.random.default_rng(1).permutation(np.linspace(-1.0, 1.0, 500))
    slow, mixed = tmp_path / "slow.nc", tmp_path / "mixed.nc"
    _synthetic_fit(fitted["fit"], slow, np.concatenate([np.sort(half), np.sort(half)]))
    _synthetic_fit(fitted["fit"], mixed, np.concatenate([half, half]))
    out = invoke_json(["diagnose", str(slow)])
    assert out["max_rhat"] <= 1.01 and out["divergences"] == 0 and min(out["bfmi"]) > 0.3
    assert out["min_ess_bulk"] < 400 and out["warning"] is True
    assert len(out["messages"]) == 1 and "ESS" in out["messages"][0] and "< 400 (worst: " in out["messages"][0]
    strict = runner.invoke(app, ["diagnose", str(slow), "--strict"])
    assert strict.exit_code == 1 and "ESS" in strict.stderr
    good = runner.invoke(app, ["diagnose", str(mixed), "--strict"])
    assert good.exit_code == 0, good.output
    assert "diagnostics pass: r-hat <= 1.01, bulk and tail ESS >= 400" in " ".join(good.stdout.split())


def test_simulate_checks_the_truth_path_before_writing_anything(tmp_path):
    (tmp_path / "s_truth.json").mkdir()
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "s.csv"), "--families", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert "s_truth.json" in message and "is a folder" in message and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_truth.json"]  # no s.csv, no temporary file


@pytest.mark.parametrize("name", ["sim.json", "sim.txt", "sim"])
def test_a_table_out_names_its_format(tmp_path, name):
    """A table is written as CSV or parquet; another name (.json, none) got CSV text under it."""
    for command in (["simulate", "--out", str(tmp_path / name), "--families", "1"],
                    ["load", "demo", "--out", str(tmp_path / name)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        message = " ".join(result.stderr.split())
        assert f"--out {str(tmp_path / name)!r}: a table is written as .csv, .parquet, .pq" in message
        assert not list(tmp_path.iterdir())
