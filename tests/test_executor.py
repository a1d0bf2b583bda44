"""The study executor: failed cells reported, results kept as they arrive, resumes checked, Dask workers."""

import json
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest

import bayeslaw.evaluation as evaluation
from bayeslaw.evaluation import _run, backtest
from bayeslaw.executor import CellError, StudyFolder, connect, run_cells
from bayeslaw.simulation import load_demo

CALLS = []


def _square(job):
    CALLS.append(job)
    if job < 0:
        raise ValueError(f"negative job {job}\nsecond line")
    return job * job


def test_a_failing_cell_is_reported_and_the_study_goes_on():
    CALLS.clear()
    out = run_cells(_square, {"a": 2, "bad": -1, "c": 3})
    assert out["a"] == 4 and out["c"] == 9 and CALLS == [2, -1, 3]
    assert isinstance(out["bad"], CellError)
    assert out["bad"].error == "ValueError: negative job -1 second line"  # one line
    assert "Traceback" in out["bad"].traceback


def test_study_folder_keeps_cells_and_a_resume_runs_only_the_rest(tmp_path):
    CALLS.clear()
    folder = StudyFolder(tmp_path / "s", {"ks": (2, 3)})
    run_cells(_square, {"a": 2, "bad": -1, "c/odd key": 3}, folder=folder)
    assert len(list((tmp_path / "s" / "cells").glob("*.pkl"))) == 2  # failed cells are not kept
    assert not list((tmp_path / "s").rglob(".*.tmp"))
    manifest = json.loads((tmp_path / "s" / "study.json").read_text())
    assert manifest["config"] == {"ks": [2, 3]} and len(manifest["config_hash"]) == 16
    CALLS.clear()
    out = run_cells(_square, {"a": 2, "bad": -1, "c/odd key": 3, "d": 4},
                    folder=StudyFolder(tmp_path / "s", {"ks": [2, 3]}, resume=True))
    assert CALLS == [-1, 4]  # the failed cell again, and the new one
    assert out["a"] == 4 and out["c/odd key"] == 9 and out["d"] == 16
    CALLS.clear()
    run_cells(_square, {"a": 2}, folder=StudyFolder(tmp_path / "s", {"ks": [2, 3]}))  # no resume: starts over
    assert CALLS == [2]


def test_resume_refuses_another_configuration_or_version(tmp_path):
    StudyFolder(tmp_path / "unstarted", {"ks": [2]})
    assert not (tmp_path / "unstarted").exists()  # nothing written before the study starts
    StudyFolder(tmp_path / "s", {"ks": [2, 3], "thin": 8}).start()
    with pytest.raises(ValueError, match=r"another configuration \(ks: \[2, 3\] there, \[2\] now\)"):
        StudyFolder(tmp_path / "s", {"ks": [2], "thin": 8}, resume=True)
    manifest = tmp_path / "s" / "study.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "bayeslaw_version": "0.0.1"}))
    with pytest.raises(ValueError, match="written by bayeslaw 0.0.1, this is"):
        StudyFolder(tmp_path / "s", {"ks": [2, 3], "thin": 8}, resume=True)
    with pytest.raises(ValueError, match="holds no study"):
        StudyFolder(tmp_path / "empty", {}, resume=True)


def test_a_scheduler_that_does_not_answer_is_named_within_ten_seconds():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"scheduler tcp://127.0.0.1:9 did not answer within 5 s"):
        connect("tcp://127.0.0.1:9")
    assert time.perf_counter() - start < 10


def _listener(reply: bytes | None) -> str:
    """A local TCP server that accepts and then says nothing (``reply`` None) or ``reply`` and nothing more."""
    server = socket.create_server(("127.0.0.1", 0))
    kept = []

    def serve():
        while True:
            conn, _ = server.accept()
            kept.append(conn)  # held open: the client must give up by itself
            if reply is not None:
                conn.recv(4096)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("reply", [None, b"HTTP/1.0 400 Bad request\r\n\r\n", b"\xff" * 64],
                         ids=["silent", "http", "garbage"])
def test_an_address_that_is_not_a_dask_scheduler_is_named_within_ten_seconds(reply):
    # distributed bounds the connect, not its handshake: these hung Client() for good or raised a traceback
    address = _listener(reply)
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        connect(address)
    message = str(caught.value)
    assert message.startswith(f"scheduler {address} did not answer") and "\n" not in message
    assert time.perf_counter() - start < 10


def test_cli_names_a_scheduler_that_is_not_one_before_reading_the_data(tmp_path):
    from typer.testing import CliRunner

    from bayeslaw.cli import app

    address = _listener(b"HTTP/1.0 400 Bad request\r\n\r\n")  # was a 40-line traceback (a 3 EiB allocation)
    for command in ("backtest", "study"):
        result = CliRunner().invoke(app, [command, str(tmp_path / "missing.csv"), "--out", str(tmp_path / "bt"),
                                          "--scheduler", address])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert f"scheduler {address} did not answer as a Dask scheduler" in result.output
        assert not (tmp_path / "bt").exists()


def test_connect_gets_a_client_of_a_scheduler_and_refuses_a_worker_or_a_bad_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as cluster:
        with connect(cluster.scheduler_address) as client:
            assert client.submit(abs, -3).result() == 3
        worker = next(iter(cluster.scheduler_info["workers"]))
        with pytest.raises(ValueError, match="answered as a Worker, not a Dask scheduler"):
            connect(worker)
    with pytest.raises(ValueError, match="scheduler 'nonsense': missing port number"):
        connect("nonsense")


def test_backtest_reports_a_failed_fit_and_keeps_the_others(monkeypatch):
    real = evaluation.fit_point

    def flaky(df, **kwargs):
        if (df["family"] == "fam1").any():
            raise RuntimeError("worker lost")
        return real(df, **kwargs)

    monkeypatch.setattr(evaluation, "fit_point", flaky)
    result = backtest(load_demo().data, ks=(2,), fractions=(0.0,), methods=("hitchhiker",), poolings=(),
                      transfer=False, families=["fam0", "fam1"], thin=6, compare=False, progress=False)
    cells = result.cells.set_index("family")
    assert np.isfinite(cells.loc["fam0", "are"]) and pd.isna(cells.loc["fam0", "error"])
    assert np.isnan(cells.loc["fam1", "are"]) and cells.loc["fam1", "error"] == "RuntimeError: worker lost"
    assert list(result.failures["family"]) == ["fam1"]


@pytest.mark.slow
def test_a_study_on_a_two_worker_local_cluster(tmp_path):
    """Point cells of the demo on two Dask worker processes match the same cells run here, a cell that
    raises on a worker comes back as a CellError, and a resume of the finished study runs nothing."""
    df = load_demo().data
    options = dict(ks=(2, 3), fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False,
                   families=["fam0", "fam1"], thin=6, compare=False, progress=False)
    here = backtest(df, **options)
    there = backtest(df, workers=2, folder=tmp_path / "study", **options)
    key = ["family", "k"]
    assert np.allclose(here.cells.sort_values(key)["are"], there.cells.sort_values(key)["are"], rtol=1e-8)
    assert len(list((tmp_path / "study" / "cells").glob("*.pkl"))) == len(here.cells)
    start = time.perf_counter()
    again = backtest(df, folder=tmp_path / "study", resume=True, **options)
    assert time.perf_counter() - start < 5  # every cell read back, none refitted
    assert again.cells["are"].equals(there.cells["are"])
    out = run_cells(_run, {"bad": {"kind": "point"}, "also bad": {"kind": "bayes"}}, workers=2)
    assert isinstance(out["bad"], CellError) and out["bad"].error.startswith("KeyError")


def test_cli_backtest_resumes_its_folder_and_names_a_dead_scheduler(tmp_path):
    from typer.testing import CliRunner

    from bayeslaw.cli import app

    runner = CliRunner()
    args = ["backtest", "demo", "--quick", "--q", "0", "--family", "fam2", "--out", str(tmp_path / "bt"), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    kept = sorted((tmp_path / "bt" / "cells").glob("*.pkl"))
    assert kept and json.loads((tmp_path / "bt" / "study.json").read_text())["config"]["study"] == "backtest"
    stamps = [path.stat().st_mtime_ns for path in kept]
    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert [path.stat().st_mtime_ns for path in kept] == stamps  # read back, not refitted
    other = runner.invoke(app, [*args[:-1], "--thin", "5", "--resume"])
    assert other.exit_code == 2 and "another configuration (thin: 8 there, 5 now)" in " ".join(other.output.split())
    start = time.perf_counter()
    dead = runner.invoke(app, ["study", "demo", "--out", str(tmp_path / "st"), "--scheduler", "tcp://127.0.0.1:9"])
    assert dead.exit_code == 2 and "scheduler tcp://127.0.0.1:9 did not answer" in dead.output
    assert len(dead.output.strip().splitlines()) == 1 and time.perf_counter() - start < 20


def test_a_failed_bayesian_fit_is_reported_in_cells_loo_and_report(monkeypatch, tmp_path):
    from bayeslaw.report import backtest_report

    real = evaluation.fit

    def no_unpooled(df, *, pooling, **kwargs):
        if pooling == "none":
            raise RuntimeError("out of memory")
        return real(df, pooling=pooling, **kwargs)

    monkeypatch.setattr(evaluation, "fit", no_unpooled)
    with pytest.warns(RuntimeWarning, match="the none fit of the LOO comparison failed"):
        result = backtest(load_demo().data, ks=(2,), fractions=(0.0,), methods=(), poolings=("hierarchical", "none"),
                          transfer=False, families=["fam0", "fam1"], thin=5, progress=False,
                          fit_options={"chains": 1, "draws": 60, "warmup": 60})
    failed = result.failures
    assert set(failed["method"]) == {"bayes-none"} and set(failed["family"]) == {"fam0", "fam1"}
    assert (failed["error"] == "RuntimeError: out of memory").all()
    assert result.cells.loc[result.cells["method"] == "bayes-hierarchical", "are"].notna().all()
    assert result.settings["loo_failures"] == {"none": "RuntimeError: out of memory"} and result.comparison is None
    text = backtest_report(result, tmp_path / "bt").read_text()
    assert "## Cells whose fit failed" in text and "The none fit of the PSIS-LOO comparison failed" in text
