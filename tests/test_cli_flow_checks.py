"""The CLI's option checks a new user meets first: each refused in the option's words, before the slow part
(a fit, the demo's minutes), and no output written over the data read. Fits are stubbed where they would run."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

import bayeslaw.cli as cli
import bayeslaw.evaluation
import bayeslaw.inference.nuts
import bayeslaw.inference.point
import bayeslaw.plan.schedules
from bayeslaw.cli import app
from bayeslaw.inference.config import RETRY_TARGET_ACCEPT
from bayeslaw.laws import get_law
from bayeslaw.simulation import simulate

runner = CliRunner()


def _never(*args, **kwargs):
    raise AssertionError("the slow part ran before the options were checked")


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in text, text
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def _fake_fit(form="chinchilla", families=("fam0", "fam1")):
    law = get_law(form)
    return SimpleNamespace(spec=SimpleNamespace(law=law), form=law.name, pooling="hierarchical",
                           families=list(families), family_or_only=lambda family: family,
                           training_rows=lambda family: f"rows of {family}")


@pytest.fixture
def small_table():
    """Two families, one seed each, from the simulator (a few hundred rows)."""
    return simulate(seed=2, families=2, seeds=1).data


def test_demo_checks_its_out_folder_and_counts_before_fitting(tmp_path, monkeypatch):
    """A file at --out failed only after minutes of fitting ('File exists'); --chains 0 was named as the
    library's bayes_backtest chains=."""
    monkeypatch.setattr(bayeslaw.evaluation, "bayes_backtest", _never)
    monkeypatch.setattr(bayeslaw.evaluation, "point_backtest", _never)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    _one_line_error(runner.invoke(app, ["demo", "--out", str(afile), "--chains", "1", "--draws", "10"]),
                    f"--out {str(afile)!r} is a file")
    _one_line_error(runner.invoke(app, ["demo", "--out", str(afile / "sub")]),
                    f"{str(afile)!r} is a file, not a folder")
    for option in ("--chains", "--draws"):
        _one_line_error(runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), option, "0"]),
                        f"{option} 0: need a whole number >= 1")
    assert afile.read_text() == "keep" and not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", [["backtest", "demo", "--quick"], ["study", "demo"]])
def test_a_study_names_a_file_at_out_before_reading_or_fitting(tmp_path, monkeypatch, command):
    monkeypatch.setattr(bayeslaw.evaluation, "backtest", _never)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    _one_line_error(runner.invoke(app, [*command, "--out", str(afile)]), f"--out {str(afile)!r} is a file")


def test_fit_refuses_a_retry_acceptance_it_would_never_use(tmp_path, monkeypatch):
    """retry_target_accept at or below target_accept never retries (the library's rule): it was accepted and
    ignored. Not given: the library's default, also with a --target-accept at or above it."""
    calls = []

    def record(df, **options):
        calls.append(options)
        raise ValueError("stub: no fit")

    monkeypatch.setattr(bayeslaw.inference.nuts, "fit", record)
    out = str(tmp_path / "f.nc")
    for value in ("0.5", "0.97"):
        _one_line_error(runner.invoke(app, ["fit", "demo", "--out", out, "--retry-target-accept", value]),
                        f"--retry-target-accept {value} is not above --target-accept 0.97")
    assert calls == []
    for extra, expected in (([], RETRY_TARGET_ACCEPT), (["--target-accept", "0.99"], RETRY_TARGET_ACCEPT),
                            (["--retry-target-accept", "0.995"], 0.995), (["--retry-target-accept", "0"], None)):
        _one_line_error(runner.invoke(app, ["fit", "demo", "--out", out, *extra]), "stub: no fit")
        assert calls.pop()["retry_target_accept"] == expected


def test_plan_refuses_batch_size_for_a_law_without_it_before_the_point_fit(monkeypatch):
    monkeypatch.setattr(cli, "_load_fit", lambda path: _fake_fit())
    monkeypatch.setattr(bayeslaw.inference.point, "fit_point", _never)
    for question in (["--flops", "1e21"], ["--loss", "2.6", "--params", "1e9"]):
        result = runner.invoke(app, ["plan", "fit.nc", *question, "--family", "fam0", "--point-method", "hitchhiker",
                                     "--batch-size", "1e6"])
        _one_line_error(result, "--batch-size: the chinchilla law does not read the batch size; drop it")


def test_the_population_point_fit_is_one_law_across_families_without_fit_points_warning(monkeypatch):
    """plan without --family compares the population with a point fit of every family's rows: one law across
    them on purpose (as optimal_allocation's epoch fit), not fit_point's warning to fit them apart."""
    seen = []
    monkeypatch.setattr(bayeslaw.inference.point, "fit_point",
                        lambda rows, **options: seen.append((rows, options)) or "point")
    fake = _fake_fit()
    assert cli._point_fits(fake, "hitchhiker", [None]) == {None: "point"}
    assert cli._point_fits(fake, "hitchhiker", ["fam0"]) == {"fam0": "point"}
    assert [(rows, options["across_families"]) for rows, options in seen] == [("rows of None", True),
                                                                            ("rows of fam0", False)]


def test_predict_with_new_family_and_an_unknown_family_does_not_advise_new_family(monkeypatch):
    monkeypatch.setattr(cli, "_load_fit", lambda path: _fake_fit())
    result = runner.invoke(app, ["predict", "fit.nc", "--family", "famX", "--new-family", "--params", "7e9",
                                 "--tokens", "1e11"])
    _one_line_error(result, "unknown family ['famX']", "--new-family predicts the population", "drop that --family")
    assert "--new-family predicts a family the fit has not seen" not in result.stderr


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--params", "-1", "--params -1: need a positive number"),
    ("--params", "nan", "--params nan: need a positive number"),
    ("--peak-lr", "0", "--peak-lr 0: need a positive number"),
    ("--final-lr", "-1", "--final-lr -1: need a learning rate >= 0"),
])
def test_schedule_names_its_bad_numbers_before_the_fit_is_read(tmp_path, option, value, message):
    """--params -1 was named as 'predict: targets: column params ... rows [0, 1, 2, 3, 4] (30 in all)'."""
    options = {"--params": "1e8", "--peak-lr": "3e-4", "--final-lr": "0", option: value}
    args = [x for pair in options.items() for x in pair]
    result = runner.invoke(app, ["schedule", str(tmp_path / "missing.nc"), "--total-steps", "24000", *args])
    _one_line_error(result, message)


def test_fit_point_names_a_column_the_law_reads_that_the_table_lacks(tmp_path, small_table):
    """A table without tokens was named by the early cut (cut_early, min_tokens=None), and with --min-tokens 0
    by one family's rows ('240 in all'), not as the column the law needs."""
    path = tmp_path / "notokens.csv"
    small_table.drop(columns=["tokens"]).to_csv(path, index=False)
    for extra in ([], ["--min-tokens", "0"]):
        result = runner.invoke(app, ["fit-point", str(path), "--method", "hitchhiker", *extra])
        _one_line_error(result, f"fit-point: column(s) ['tokens'] missing in {str(path)!r}; the chinchilla law needs "
                                f"them")


def test_a_table_without_family_is_said_to_be_one_family(tmp_path, small_table):
    """A table that left out 'family' had its families fitted as one, 'default', without a word (read_table's
    report was printed by `load` only); the note is on stderr, so --json stays one document."""
    path = tmp_path / "nofamily.csv"
    small_table.drop(columns=["family"]).to_csv(path, index=False)
    result = runner.invoke(app, ["fit-point", str(path), "--method", "hitchhiker", "--json"])
    assert result.exit_code == 0, result.output
    runs = small_table["run"].nunique()
    assert f"note: {str(path)!r} has no 'family' column: its {runs} run(s) are read as one family, 'default'" in (
        " ".join(result.stderr.split()))
    assert [row["family"] for row in json.loads(result.stdout)] == ["default"]
    given = tmp_path / "family.csv"
    small_table.to_csv(given, index=False)
    result = runner.invoke(app, ["fit-point", str(given), "--method", "hitchhiker", "--json"])
    assert result.exit_code == 0 and "no 'family' column" not in result.stderr


def test_an_out_that_is_the_data_read_is_refused(tmp_path, small_table, monkeypatch):
    """`load X --out X` replaced the user's table by its completed form; `live X --out X` would have replaced the
    runs by the forecast after the fit (`import` refused this already)."""
    path = tmp_path / "runs.csv"
    small_table.drop(columns=["family"]).to_csv(path, index=False)
    before = path.read_text()
    _one_line_error(runner.invoke(app, ["load", str(path), "--out", str(path)]),
                    f"--out {str(path)!r} is the DATA file read")
    monkeypatch.setattr(bayeslaw.plan.schedules, "live_forecast", _never)
    monkeypatch.chdir(tmp_path)  # the same file by another name
    _one_line_error(runner.invoke(app, ["live", str(path), "--run", "r", "--out", "runs.csv"]),
                    "--out 'runs.csv' is the DATA file read")
    assert path.read_text() == before
    out = tmp_path / "copy.csv"
    assert runner.invoke(app, ["load", str(path), "--out", str(out)]).exit_code == 0
    assert len(pd.read_csv(out)) == len(small_table)


def test_predict_refuses_form_error_with_kind_law(tmp_path):
    """--kind law has no form error: --form-error 0.5 was accepted and the quantiles came out as without it."""
    result = runner.invoke(app, ["predict", str(tmp_path / "missing.nc"), "--params", "7e9", "--tokens", "1e11",
                                 "--kind", "law", "--form-error", "0.5"])
    _one_line_error(result, "--form-error applies to --kind new_run", "drop --form-error")


def test_demo_json_is_strict_json(tmp_path, monkeypatch):
    """A point fit's coverage (NaN) came out as a bare NaN, which strict JSON parsers refuse (every other
    command's --json writes null). The fits are stubbed: the demo's output is what is checked."""
    import bayeslaw.report

    rows = {"family": ["fam0"], "params": [1e9], "tokens": [2e10], "loss": [2.5], "predicted": [2.52],
            "q05": [2.4], "q95": [2.6]}

    def backtest(method, coverage):
        return SimpleNamespace(predictions=pd.DataFrame({**rows, "method": [method]}),
                               scores=pd.DataFrame({"family": ["fam0"], "method": [method], "are": [0.01],
                                                    "coverage90": [coverage]}),
                               fits=pd.DataFrame({"method": [method]}))

    result_fit = SimpleNamespace(diagnostics=lambda warn: "fine", save=lambda path: path.write_text("fit"),
                                 training_rows=lambda: None, families=["fam0"])
    monkeypatch.setattr(bayeslaw.evaluation, "point_backtest", lambda *a, **k: backtest("epoch", float("nan")))
    monkeypatch.setattr(bayeslaw.evaluation, "bayes_backtest", lambda *a, **k: (backtest("bayes", 1.0), result_fit))
    monkeypatch.setattr(bayeslaw.report, "fit_report", lambda *a, **k: None)
    monkeypatch.setattr(cli, "_point_fits", lambda *a, **k: None)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))
    assert [(row["method"], row["coverage90"]) for row in payload["scores"]] == [("epoch", None), ("bayes", 1.0)]


def test_the_commands_do_not_repeat_a_convergence_warning_of_fit_or_fit_many(monkeypatch):
    """The commands print the diagnostics themselves: fit's and fit_many's one-line warnings are not repeated,
    while any other warning still reaches the user as one line."""
    import warnings

    from bayeslaw import cli
    from bayeslaw.inference.nuts import ConvergenceWarning

    shown = []
    monkeypatch.setattr(cli, "_show_warning", lambda message, *args, **kwargs: shown.append(str(message)))

    @cli._friendly_errors
    def command():
        warnings.warn("fit: not converged (4 chains x 1000 draws): r-hat 1.02", ConvergenceWarning)
        warnings.warn("fit_many: not converged: fit(s) [1] of 3 (4 chains x 1000 draws)", ConvergenceWarning)
        warnings.warn("fit: the early cut left out 2 run(s)", UserWarning)

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # not the suite's own filters, which ignore ConvergenceWarning
        command()
    assert shown == ["fit: the early cut left out 2 run(s)"]


def test_a_family_option_with_no_name_in_it_is_refused(tmp_path):
    # was read as no --family at all: every family fitted, unsaid
    for given in ("", ",", " , "):
        result = CliRunner().invoke(cli.app, ["fit-point", "demo", "--family", given, "--method", "hitchhiker"])
        assert result.exit_code == 2 and "names no family" in result.output
