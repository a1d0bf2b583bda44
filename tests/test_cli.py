import json
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayeslaw.cli import app

runner = CliRunner()
COMMANDS = ["sources", "load", "simulate", "fit-point", "demo", "backtest", "import", "schedule", "live", "cache"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_sources_json_lists_every_source():
    result = runner.invoke(app, ["sources", "--json"])
    assert result.exit_code == 0
    names = {row["name"] for row in json.loads(result.output)}
    assert {"chinchilla", "polypythias", "olmo_ladder", "t5_pile", "multipower", "wsd_horizons"} <= names


def test_simulate_writes_data_and_truth(tmp_path):
    out = tmp_path / "sim.csv"
    result = runner.invoke(app, ["simulate", "--out", str(out), "--seed", "4", "--families", "2"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    truth = json.loads((tmp_path / "sim_truth.json").read_text())
    assert set(df["family"]) == set(truth["families"]) == {"fam0", "fam1"}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["load", "nope"], "neither a .csv/.parquet file nor a known source"),
        (["fit-point", "missing.csv"], "does not exist"),
        (["fit-point", "demo", "--family", "famX"], "unknown family ['famX']"),
        (["fit-point", "demo", "--method", "lsq"], "unknown method 'lsq'"),
    ],
)
def test_bad_input_is_one_line_no_traceback(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_bad_schema_file_names_column_and_line(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"family": ["f"], "model": ["m"], "run": ["r"], "params": [-1.0], "tokens": [1e9],
                  "loss": [3.0], "loss_name": ["x"]}).to_csv(path, index=False)
    result = runner.invoke(app, ["fit-point", str(path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "column 'params'" in text and "runs.csv" in text and "rows 2" in text


def test_load_missing_data_folder_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("BAYESLAW_DATA", raising=False)
    result = runner.invoke(app, ["load", "chinchilla"])
    assert result.exit_code == 2 and "BAYESLAW_DATA" in result.output
    result = runner.invoke(app, ["load", "chinchilla", "--root", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_load_source_summary(data_root, tmp_path):
    out = tmp_path / "ladder.parquet"
    result = runner.invoke(app, ["load", "olmo_ladder", "--root", str(data_root), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"] == len(pd.read_parquet(out))
    assert len(summary["models"]) == 5


def test_fit_point_hitchhiker_on_demo():
    result = runner.invoke(app, ["fit-point", "demo", "--method", "hitchhiker", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["family"] for r in rows] == ["fam0", "fam1", "fam2"]
    # the demo's runs carry a schedule shape the point law does not model: a plausible law, not the truth
    assert all(0.5 < r["E"] < 3.5 and 0 < r["alpha"] < 1.5 for r in rows), rows


def test_fit_point_polish_never_ends_higher_than_the_protocol():
    runs = [json.loads(runner.invoke(app, ["fit-point", "demo", "--json", *extra]).stdout) for extra in ([], ["--polish", "4"])]
    protocol, polished = (pd.DataFrame(r).set_index("family")["objective"] for r in runs)
    assert list(protocol.index) == ["fam0", "fam1", "fam2"]
    assert (polished <= protocol).all(), (protocol, polished)
    assert (polished < protocol).any()  # scipy's rule stops at least one family short of its minimum


def test_demo_writes_report_and_scores(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--chains", "1", "--draws", "60", "--json"])
    assert result.exit_code == 0, result.output
    scores = pd.DataFrame(json.loads(result.output)["scores"])
    assert set(scores["method"]) == {"epoch", "hitchhiker", "bayes-hierarchical"} and len(scores) == 9
    assert (scores["are"] < 0.10).all()  # a few percent on the demo, as for real families
    bayes = scores[scores["method"] == "bayes-hierarchical"]
    assert bayes["coverage90"].between(0, 1).all() and (bayes["width90"] > 0).all()
    for name in ("fits.csv", "predictions.csv", "scores.csv", "fit.nc"):
        assert (tmp_path / "demo" / name).exists()


def test_simulate_refuses_an_empty_design(tmp_path):
    for option in ("--families", "--seeds"):
        result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "s.csv"), option, "0"])
        assert result.exit_code == 2 and f"simulate: {option[2:]}=0; need at least one" in result.stderr
    for option, value, message in (("--families", "-1", "families=-1"), ("--sigma-seed", "nan", "sigma_seed=nan"),
                                   ("--sigma-seed", "-0.5", "sigma_seed=-0.5")):  # the option's value, named
        result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "s.csv"), option, value])
        assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "s.csv").exists()


def test_outputs_are_written_in_the_format_their_name_says_and_bad_paths_are_one_line(tmp_path):
    out = tmp_path / "sim.parquet"
    assert runner.invoke(app, ["simulate", "--out", str(out), "--families", "1"]).exit_code == 0
    assert len(pd.read_parquet(out)) > 0  # parquet, not CSV text under a .parquet name
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    for path, message in ((tmp_path / "folder", "is a folder; give a file name"),
                          (tmp_path / "file" / "x.csv", "is a file, not a folder")):
        for command in (["simulate", "--out", str(path)], ["load", "demo", "--out", str(path)]):
            result = runner.invoke(app, command)
            assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
            assert len(result.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(app, ["fit-point", str(empty)])
    assert result.exit_code == 2 and f"file {str(empty)!r} is empty" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["load", "demo", "--loss-name", "xx"])  # was ignored for the demo
    assert result.exit_code == 2 and "--loss-name 'xx'" in result.stderr


def test_fit_point_says_what_the_early_cut_left_out_and_refuses_a_bad_polish(tmp_path):
    path = tmp_path / "finals.csv"
    n, d = np.repeat([1e8, 2e8, 4e8, 8e8], 3), np.tile([5e9, 2e10, 8e10], 4)
    pd.DataFrame({"run": [f"r{i}" for i in range(12)], "params": n, "tokens": d,
                  "loss": 1.8 + 400 / n ** 0.34 + 400 / d ** 0.28}).to_csv(path, index=False)
    result = runner.invoke(app, ["fit-point", str(path), "--method", "hitchhiker", "--json"])
    assert result.exit_code == 0, result.output
    assert "left out 4 of 12 rows, 4 run(s) whole" in " ".join(result.stderr.split())
    assert json.loads(result.stdout)[0]["points"] == 8  # the note is on stderr: the JSON stays one document
    for args, message in ((["--polish", "-3"], "greater than or equal to 0"),
                          (["--polish", "2", "--method", "hitchhiker"], "has no grid")):
        result = runner.invoke(app, ["fit-point", str(path), *args])
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_tables_keep_whole_numbers_and_fold_when_wider_than_the_terminal(monkeypatch):
    from rich.console import Console

    from bayeslaw import cli

    monkeypatch.setattr(cli, "console", Console(width=80))  # the terminal _table sizes itself against

    def render(df, title="t"):
        console = Console(width=80, record=True)
        console.print(cli._table(df, title))
        return console.export_text()

    # eight columns of long names in 80 characters: names fold onto a second line, no cell or header is cut
    scores = pd.DataFrame({"case": ["scaling"] * 2, "method": ["bayes-hierarchical", "hitchhiker"], "cells": [2, 2],
                           **{name: [0.020751, 0.012693] for name in ("are_median", "are_mean", "crps_mean",
                                                                        "coverage50", "coverage90")}})
    text = render(scores)
    assert "…" not in text and "0.02075" in text and "bayes-h" in text
    # a title longer than the table is one line above it, not wrapped to the table's width a word per line
    name = "ann0.2_openwebtext2_llama_norm_nlayers12_nhead14_lr0.0005_sched_wsd_warmup300"
    text = render(pd.DataFrame({"step": [36000, 72000], "loss": [3.2712, 3.2056]}), f"run {name}: forecast")
    assert any(f"{name}:" in line for line in text.splitlines()[:3]) and "forecast" in text.split("┏")[0]
    assert "forecast" in render(pd.DataFrame({"step": [1], "loss": [3.0]}), "forecast")

    # a step column beside float losses stays whole (row-wise formatting made it 7.2e+04)
    text = render(pd.DataFrame({"step": [36000, 72000], "loss": [3.2712, 3.2056]}))
    assert "72000" in text and "e+04" not in text
    # 14 columns in 80 characters: one row per column, every value readable
    wide = pd.DataFrame([{"family": "default", **{f"p{i}": 0.123456 + i for i in range(13)}}])
    text = render(wide)
    assert "…" not in text and "12.12" in text and "default" in text


def test_a_library_warning_is_one_line_on_stderr(monkeypatch):
    """As an error is: 'warning: ...', not Python's file:line: UserWarning and the source line that raised it."""
    import warnings

    from rich.console import Console

    from bayeslaw import cli

    stderr = Console(stderr=True, record=True, width=200)
    monkeypatch.setattr(cli, "err_console", stderr)

    @cli._friendly_errors
    def command():
        warnings.warn("fit: left out 1 diverged run(s)", UserWarning, stacklevel=2)
        return 3

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert command() == 3
    assert stderr.export_text().strip() == "warning: fit: left out 1 diverged run(s)"
    assert warnings.showwarning is not cli._show_warning  # Python's own display is back after the command


def test_sigterm_ends_a_command_like_ctrl_c_so_an_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import signal

    from bayeslaw import cli
    from bayeslaw.data.files import write_atomic

    seen = {}
    monkeypatch.setattr(cli, "app", lambda **kwargs: seen.setdefault("handler", signal.getsignal(signal.SIGTERM)))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        cli.main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen["handler"] is cli._exit_on_sigterm

    def killed_halfway(path):
        path.write_text("run,params\n")
        cli._exit_on_sigterm(signal.SIGTERM, None)  # what the handler does when the signal lands mid-write

    with pytest.raises(SystemExit) as stop:
        write_atomic(tmp_path / "out.csv", killed_halfway)
    assert stop.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


@pytest.mark.parametrize(("argv", "says"), [
    (["study", "--workers", "abc"], "bayeslaw study: Invalid value for '--workers'"),
    (["fit", "--bogus", "1"], "bayeslaw fit: No such option: --bogus"),
    (["fit"], "bayeslaw fit: Missing argument 'data'"),
    (["nosuch"], "bayeslaw: No such command 'nosuch'"),
])
def test_a_usage_error_is_one_line_naming_the_command(argv, says, monkeypatch, capsys):
    """The console script's usage errors, as its commands' own: one line on stderr, exit code 2 (Typer's form
    is a usage line, a hint and a box of wrapped lines); help and a bare call are Typer's as before."""
    from bayeslaw import cli

    monkeypatch.setattr(sys, "argv", ["bayeslaw", *argv])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: " + says), err
    assert f"; {' '.join(['bayeslaw', *argv[:1]]) if argv[0] != 'nosuch' else 'bayeslaw'} --help lists" in err
    monkeypatch.setattr(sys, "argv", ["bayeslaw", "fit", "--help"])
    assert cli.main() is None  # help: exit code 0
    shown = capsys.readouterr()
    assert "Usage" in shown.out + shown.err
    monkeypatch.setattr(sys, "argv", ["bayeslaw"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    shown = capsys.readouterr()
    assert stop.value.code == 2 and "Usage" in shown.out + shown.err
