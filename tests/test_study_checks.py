"""A study's folder, its checks before anything runs, its tables of failed cells, and its Dask connection."""

import logging
import os
import pickle
import socket
import time

import numpy as np
import pandas as pd
import pytest

import bayeslaw.evaluation as evaluation
import bayeslaw.executor as executor
from bayeslaw.evaluation import BACKTEST_REPORT_FILES, Backtest, backtest
from bayeslaw.executor import StudyFolder, connect, run_cells
from bayeslaw.simulation import load_demo

# a point-only study of two fits: the machinery is tested, not the fits
TINY = dict(ks=(2,), fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False, families=["fam0", "fam1"],
            thin=6, compare=False, progress=False)


@pytest.fixture(scope="module")
def demo():
    return load_demo().data


def _double(job):
    return 2 * job


# --- the study folder: what a start-over removes, what a resume reads -----------------------------------------


def test_a_run_without_resume_never_deletes_files_of_a_folder_that_is_not_a_study(tmp_path, demo):
    notes = tmp_path / "U" / "cells" / "my_notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("precious")
    refusal = r"cells holds files but .*U has no study.json \(not a bayeslaw study\)"
    with pytest.raises(ValueError, match=refusal) as caught:
        backtest(demo, folder=tmp_path / "U", **TINY)
    assert "\n" not in str(caught.value)
    assert notes.read_text() == "precious" and not (tmp_path / "U" / "study.json").exists()


def test_starting_a_study_over_removes_its_own_cells_and_report_files_only(tmp_path, demo):
    folder = tmp_path / "S"
    backtest(demo, folder=folder, **TINY)
    assert len(list((folder / "cells").glob("*.pkl"))) == 2
    mine = {"cells/my_notes.txt": "keep", "notes.md": "keep", "cells/other.pkl.bak": "keep"}
    stale = ["report.md", "cells.csv", "transfer_trajectories.png", "aggregate_by_k.csv", "loo_comparison.csv"]
    for name, text in mine.items():
        (folder / name).write_text(text)
    for name in stale:
        (folder / name).write_text("of the earlier study")
    backtest(demo, folder=folder, **{**TINY, "fractions": (0.2,)})  # another study, started over
    assert all((folder / name).read_text() == text for name, text in mine.items())
    assert not any((folder / name).exists() for name in stale)
    kept = sorted(p.name for p in (folder / "cells").glob("*.pkl"))
    assert len(kept) == 2 and all("q=0.2" in name for name in kept)  # the earlier study's q=0 cells are gone


def test_the_report_writes_only_files_a_start_over_knows(tmp_path, demo):
    from bayeslaw.report import backtest_report

    result = backtest(demo, folder=tmp_path / "R", **{**TINY, "transfer": True})
    backtest_report(result, tmp_path / "R")
    written = {p.name for p in (tmp_path / "R").iterdir()} - {"cells", "study.json"}
    assert "transfer_trajectories.png" in written and written <= set(BACKTEST_REPORT_FILES)


@pytest.mark.parametrize("damage", [b"", b"\x80\x04\x95"], ids=["empty", "truncated"])
def test_a_damaged_cell_file_is_run_again_with_a_warning_naming_it(tmp_path, damage):
    folder = StudyFolder(tmp_path / "s", {"n": 1})
    run_cells(_double, {"a": 1, "b": 2}, folder=folder)
    damaged = folder._cell("a")
    damaged.write_bytes(damage)
    with pytest.warns(RuntimeWarning, match=rf"cell file {damaged} cannot be read back .*its cell runs again"):
        resumed = StudyFolder(tmp_path / "s", {"n": 1}, resume=True)
        out = run_cells(_double, {"a": 1, "b": 2}, folder=resumed)
    assert out == {"a": 2, "b": 4} and resumed.reused == {"b"}
    assert pickle.loads(damaged.read_bytes()) == ("a", 2)  # written again, whole


def test_a_cell_file_is_synced_before_and_after_its_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def recording(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) if os.path.exists("/proc/self/fd") else fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    executor._atomic_write(tmp_path / "x.pkl", b"payload")
    assert (tmp_path / "x.pkl").read_bytes() == b"payload" and not list(tmp_path.glob(".*.tmp"))
    assert len(synced) == 2
    if os.path.exists("/proc/self/fd"):  # the data (under a temporary name beside it), then the folder's entry
        assert synced[0].startswith(".x.pkl.") and synced[0].endswith(".tmp") and synced[1] == tmp_path.name


def test_a_start_over_removes_a_cell_file_half_written_by_a_crash_and_nothing_else(tmp_path):
    StudyFolder(tmp_path / "s", {"n": 1}).start()
    cells = tmp_path / "s" / "cells"
    name = executor._file_name("k=2 q=0.3")
    crashed = [f".{name}.k3_xz9ab.tmp", f".{name}.tmp"]  # write_atomic's temporary names, and the older fixed one
    kept = [f".{name}.txt", f"{name}.tmp", "notes.tmp"]
    for file in crashed + kept:
        (cells / file).write_bytes(b"partial")
    StudyFolder(tmp_path / "s", {"n": 2}).start()
    assert sorted(p.name for p in cells.iterdir()) == sorted(kept)


@pytest.mark.parametrize("text", ['{"bayeslaw_version\x01": 1}', "[1, 2]", '{"config": {}}', ""],
                         ids=["control-character", "list", "no-keys", "empty"])
def test_a_study_json_that_is_not_a_study_record_is_named_in_one_line(tmp_path, text):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text(text)
    for resume, where in ((True, "resume"), (False, "study folder")):
        with pytest.raises(ValueError, match=rf"^{where}: .*s/study.json is not a study record \(") as caught:
            StudyFolder(tmp_path / "s", {"n": 1}, resume=resume)
        assert "\n" not in str(caught.value)
    assert (tmp_path / "s" / "study.json").read_text() == text  # refused, not overwritten


def test_a_resume_ignores_the_order_of_options_and_names_a_nested_difference(tmp_path, demo):
    options = {**TINY, "ks": (2, 3)}
    backtest(demo, folder=tmp_path / "s", **options)
    reordered = {**options, "ks": (3, 2), "families": ["fam1", "fam0"]}
    again = backtest(demo, folder=tmp_path / "s", resume=True, **reordered)
    assert again.timing["reused"] == 4 and again.timing["fits"] == 0
    StudyFolder(tmp_path / "n", {"fit_options": {"draws": 100, "chains": 2}, "thin": 8}).start()
    with pytest.raises(ValueError, match=r"another configuration \(fit_options.draws: 100 there, 120 now\)"):
        StudyFolder(tmp_path / "n", {"fit_options": {"draws": 120, "chains": 2}, "thin": 8}, resume=True)


# --- failed cells in the tables and the report ------------------------------------------------------------


def _cells(rows):
    base = {"case": "scaling", "k": 2, "q": 0.0, "crps": 0.1, "coverage50": np.nan, "coverage90": np.nan,
            "width90": np.nan, "max_rhat": np.nan, "divergences": np.nan, "error": None, "failed": False}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_a_failed_cell_is_counted_as_failed_and_keeps_the_other_methods_scores():
    cells = _cells([
        {"family": "a", "method": "hitchhiker", "are": 0.01},
        {"family": "a", "method": "bayes-hierarchical", "are": np.nan, "error": "RuntimeError: boom", "failed": True},
        {"family": "b", "method": "hitchhiker", "are": np.nan},  # a point fit on too few points
        {"family": "b", "method": "bayes-hierarchical", "are": 0.02, "coverage90": 0.9},
        {"family": "c", "method": "hitchhiker", "are": 0.03},
        {"family": "c", "method": "bayes-hierarchical", "are": np.nan, "failed": False,
         "error": "no unpooled forecast: the family's training rows hold a single model size"},
    ])
    result = Backtest(cells, pd.DataFrame(), None)
    table = result.aggregate(("method",)).set_index("method")
    assert table.loc["hitchhiker", ["cells", "unscored", "failed"]].tolist() == [1, 2, 0]  # a (b, c unpredictable)
    assert table.loc["bayes-hierarchical", ["cells", "unscored", "failed"]].tolist() == [0, 2, 1]
    assert table.loc["hitchhiker", "are_median"] == pytest.approx(0.01)
    assert list(result.failures["family"]) == ["a"]  # not c: a rerun would not change its reason


def test_failed_bayesian_cells_do_not_erase_the_point_scores_in_tables_and_report(tmp_path, demo, monkeypatch):
    from bayeslaw.report import backtest_report

    def broken(job):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(evaluation, "_bayes_job", broken)
    result = backtest(demo, **{**TINY, "fractions": (0.0, 0.2), "poolings": ("hierarchical",)})
    table = result.aggregate(("case", "method")).set_index("method")
    assert table.loc["hitchhiker", ["cells", "unscored", "failed"]].tolist() == [4, 0, 0]
    assert np.isfinite(table.loc["hitchhiker", "are_median"])
    assert table.loc["bayes-hierarchical", ["cells", "unscored", "failed"]].tolist() == [0, 0, 4]
    text = backtest_report(result, tmp_path / "bt").read_text()
    assert "- bayes-hierarchical: no scored scaling cell (4 failed, 0 unscored)." in text
    assert "no Bayesian and point methods to compare" not in text
    saved = pd.read_csv(tmp_path / "bt" / "aggregate_by_method.csv").set_index("method")
    assert saved.loc["hitchhiker", "cells"] == 4 and saved.loc["bayes-hierarchical", "failed"] == 4


# --- checks before anything runs --------------------------------------------------------------------------


def test_an_unknown_point_method_is_refused_before_any_fit(demo, monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(evaluation, "fit", lambda *a, **k: ran.append("nuts"))
    monkeypatch.setattr(evaluation, "fit_point", lambda *a, **k: ran.append("point"))
    with pytest.raises(ValueError, match=r"^backtest: unknown point method\(s\) \['bogus'\]; known: \[") as caught:
        backtest(demo, folder=tmp_path / "s", **{**TINY, "methods": ("hitchhiker", "bogus"),
                                                  "poolings": ("hierarchical",)})
    assert "\n" not in str(caught.value) and ran == [] and not (tmp_path / "s").exists()


def test_a_transfer_case_with_one_family_is_skipped_with_a_warning(demo):
    with pytest.warns(RuntimeWarning, match=r"no transfer case: it borrows from the other families, and the study "
                                            r"has one \(fam0\)"):
        result = backtest(demo, **{**TINY, "families": ["fam0"], "transfer": True})
    assert set(result.cells["case"]) == {"scaling"} and result.failures.empty


# --- the Dask connection ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_port_is_named_at_once():
    address = f"tcp://127.0.0.1:{_free_port()}"  # bound and let go: nothing listens there
    start = time.perf_counter()
    with pytest.raises(ValueError, match="connection refused") as caught:
        connect(address)
    assert time.perf_counter() - start < 2 and str(caught.value).startswith(f"scheduler {address} did not answer")


def test_a_scheduler_without_workers_is_named_after_a_bounded_wait(tmp_path, demo, monkeypatch):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        start = time.perf_counter()
        with pytest.raises(ValueError, match=rf"^scheduler {address} has no workers \(waited 1 s\)"):
            connect(address, workers_timeout=1)
        assert time.perf_counter() - start < 8
        monkeypatch.setattr(executor, "WORKERS_TIMEOUT_S", 1.0)
        with pytest.raises(ValueError, match=r"has no workers \(waited 1 s\)"):
            backtest(demo, scheduler=address, folder=tmp_path / "s", **TINY)
        assert not (tmp_path / "s").exists()  # refused before the folder is touched
        with Client(address) as client, pytest.raises(ValueError, match=r"has no workers \(waited 1 s\)"):
            run_cells(abs, {"a": -1}, client=client)


def test_a_local_cluster_takes_a_free_http_port_without_a_warning(recwarn, capfd):
    try:  # hold distributed's default port, as another cluster would
        held = socket.create_server(("127.0.0.1", 8787))
    except OSError:
        held = None  # someone else holds it: the same test
    try:
        assert run_cells(abs, {"a": -1, "b": -2}, workers=2) == {"a": 1, "b": 2}
    finally:
        if held is not None:
            held.close()
    said = " ".join(str(w.message) for w in recwarn) + capfd.readouterr().err
    assert "already in use" not in said and "8787" not in said


def test_a_study_client_is_closed_without_distributed_logging(monkeypatch, caplog):
    class Noisy:
        """A client whose shutdown logs as distributed's does when its scheduler goes first."""

        def __init__(self):
            self.cluster = self

        def close(self):
            logging.getLogger("distributed.worker").error("Failed to communicate with scheduler during heartbeat.")
            logging.getLogger("distributed.core").warning("connection closed")

    monkeypatch.setattr(executor, "connect", lambda scheduler: Noisy())
    with caplog.at_level(logging.DEBUG):
        assert run_cells(abs, {}, scheduler="tcp://127.0.0.1:8786") == {}
    assert not [r for r in caplog.records if r.name.startswith("distributed")]
    assert logging.getLogger("distributed").level != logging.CRITICAL + 1  # restored after the shutdown


def test_the_local_cluster_silences_its_workers_logs(monkeypatch):
    made = {}

    class Recording:
        def __init__(self, **options):
            made.update(options)

    import distributed

    monkeypatch.setattr(distributed, "LocalCluster", Recording)
    monkeypatch.setattr(distributed, "Client", lambda cluster: cluster)
    executor._local_cluster(2)
    assert made["silence_logs"] >= logging.CRITICAL  # a worker whose scheduler went logs its heartbeats at ERROR
    assert made["dashboard_address"] == ":0"  # None is distributed's default port 8787
