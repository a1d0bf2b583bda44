"""Running a study's independent fits: in this process or on a Dask cluster, kept as they arrive.

A study (a backtest, the calibration study, pilot refits, a comparison of forms) is a set of *cells*,
each one call ``fn(job)`` with no dependence on the others. :func:`run_cells` runs them

- in this process, one after another (``workers=1`` and no client);
- on a Dask ``distributed`` cluster: an existing one (``client=`` a ``distributed.Client``, or
  ``scheduler=`` its address), or a ``LocalCluster`` of ``workers`` processes with one thread each
  (a NUTS fit's XLA code is not thread-safe to share, and a process per fit gives its memory back).

A cell that raises is returned as a :class:`CellError` (its error on one line, and the traceback) and
the study goes on. With a :class:`StudyFolder`, each result is written as it arrives, atomically (one
pickle per cell, written, synced and renamed into place), so an interrupted study resumes from the cells
already done (a cell file that cannot be read back is run again, with a warning naming it); the folder
records the package version and a hash of the study's configuration, and a resume with either different
is refused, naming the difference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bayeslaw.data.files import write_atomic

__all__ = ["CellError", "StudyFolder", "connect", "run_cells"]

SCHEDULER_TIMEOUT_S = 5.0  # the bound is 10 s in all, with the imports
WORKERS_TIMEOUT_S = 30.0  # how long a scheduler that answered may take to have a worker (they may be starting too)


@dataclass(frozen=True)
class CellError:
    """A cell that raised: ``error`` is ``Type: message`` on one line, ``traceback`` the whole trace."""

    key: str
    error: str
    traceback: str


def _package_version() -> str:
    try:
        return version("bayeslaw")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _call(fn: Callable, key: str, job: Any):
    """Run one cell where it lands (this process or a worker); an exception becomes a CellError."""
    try:
        return fn(job)
    except Exception as error:  # noqa: BLE001 - every failure of a cell is reported, and the study goes on
        return CellError(key, _one_line(error), traceback.format_exc())


def _plain(value):
    """JSON-able form of a configuration value (tuples as lists, numpy scalars as numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def config_hash(config: Mapping) -> str:
    """sha256 (first 16 hex digits) of the configuration as sorted JSON."""
    text = json.dumps(_plain(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` whole or not at all (:func:`bayeslaw.data.files.write_atomic`)."""
    write_atomic(path, lambda tmp: tmp.write_bytes(payload))


def _file_name(key: str) -> str:
    """A file name for a cell key: readable, and unique by a short hash of the key itself."""
    readable = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)[:80]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.pkl"


# the names _file_name gives (and write_atomic's temporary names for them): the only files a start-over removes
_CELL_FILE = re.compile(r"(\.)?[A-Za-z0-9_.=-]{0,80}-[0-9a-f]{10}\.pkl(?(1)(\.[A-Za-z0-9_]+)?\.tmp|)")


def _flat(config, prefix: str = "") -> dict:
    """A nested configuration as ``{"a.b": value}``, so that a difference names the option that differs."""
    if not isinstance(config, Mapping):
        return {prefix: config}
    out = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(_flat(value, name) if isinstance(value, Mapping) and value else {name: value})
    return out


class StudyFolder:
    """A folder that keeps a study's cells as they finish: ``study.json`` and ``cells/<key>.pkl``.

    ``study.json`` holds the package version, the configuration and its hash. Opening a folder with
    ``resume=False`` starts the study over: an earlier study's cell files and its ``outputs`` (the report
    files it wrote, by name) are removed, and nothing else; a folder whose ``cells/`` holds files but
    which has no ``study.json`` is not a study and is refused (ValueError), as is a ``study.json`` that
    is not a study record. With ``resume=True`` the folder must have been written by this version with
    this configuration (else ``ValueError`` naming what differs) and its finished cells are kept. Failed
    cells are not kept, so a resume runs them again. Nothing is written until :meth:`start`. ``reused``:
    the keys that :func:`run_cells` read back from the folder instead of running (empty without resume).
    """

    MANIFEST = "study.json"

    def __init__(self, path: str | os.PathLike, config: Mapping, *, resume: bool = False,
                 outputs: Iterable[str] = ()):
        self.path = Path(path)
        self.config = _plain(config)
        self.hash = config_hash(self.config)
        self.version = _package_version()
        self.resume, self.started = resume, False
        self.outputs = tuple(outputs)
        self.reused: set[str] = set()
        record = self._record("resume" if resume else "study folder")
        if resume:
            if record is None:
                raise ValueError(f"resume: {self.path} holds no study ({self.MANIFEST} missing); run without --resume")
            self._check(record)
        self.earlier = record is not None  # a study of ours is there: starting over may remove its files
        cells = self.path / "cells"
        if cells.exists() and not cells.is_dir():
            raise ValueError(f"study folder: {cells} is a file, not a folder of cells; use another folder")
        if not self.earlier and cells.is_dir() and any(cells.iterdir()):
            # never delete what bayeslaw did not write: without study.json these files are not a study's
            raise ValueError(f"study folder: {cells} holds files but {self.path} has no {self.MANIFEST} (not a "
                             f"bayeslaw study); use another folder or move them away")

    def _record(self, where: str) -> dict | None:
        """The folder's study record, None when it has no study.json; a ValueError naming the file when
        that is not a study record (unreadable, not JSON, not the record :meth:`start` writes)."""
        manifest = self.path / self.MANIFEST
        if not manifest.exists():
            return None
        try:
            record = json.loads(manifest.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(f"{where}: {manifest} is not a study record ({_one_line(error)[:120]}); "
                             f"remove it to start the study over, or use another folder") from None
        if not isinstance(record, dict) or not {"bayeslaw_version", "config_hash"} <= set(record) \
                or not isinstance(record.get("config", {}), dict):
            what = type(record).__name__ if not isinstance(record, dict) else f"keys {sorted(record)[:6]}"
            raise ValueError(f"{where}: {manifest} is not a study record (a JSON {what}, not the bayeslaw_version, "
                             f"config_hash and config a study writes); remove it to start the study over, or use "
                             f"another folder")
        return record

    def start(self) -> None:
        """Write ``study.json``; without resume, first remove an earlier study's cell files and outputs. Called
        by :func:`run_cells` once its workers are up, so that a study that cannot start leaves the folder as it was."""
        if self.started:
            return
        cells = self.path / "cells"
        if not self.resume and self.earlier:
            # only the files a study writes, by their names: anything else in the folder is the user's
            for child in cells.iterdir() if cells.is_dir() else ():
                if child.is_file() and _CELL_FILE.fullmatch(child.name):
                    child.unlink()
            for name in self.outputs:
                if (self.path / name).is_file():
                    (self.path / name).unlink()
        cells.mkdir(parents=True, exist_ok=True)
        record = {"bayeslaw_version": self.version, "config_hash": self.hash, "config": self.config}
        _atomic_write(self.path / self.MANIFEST, json.dumps(record, indent=1, sort_keys=True).encode())
        self.started = self.earlier = True

    def _check(self, record: Mapping) -> None:
        if record.get("bayeslaw_version") != self.version:
            raise ValueError(f"resume: {self.path} was written by bayeslaw {record.get('bayeslaw_version')}, "
                             f"this is {self.version}; start it over without --resume")
        if record.get("config_hash") != self.hash:
            old, new = _flat(record.get("config", {})), _flat(self.config)
            missing = object()
            differ = sorted(k for k in set(old) | set(new) if old.get(k, missing) != new.get(k, missing))
            what = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in differ[:4])
            raise ValueError(f"resume: {self.path} holds a study with another configuration ({what}); "
                             f"start it over without --resume or use another folder")

    def _cell(self, key: str) -> Path:
        return self.path / "cells" / _file_name(key)

    def done(self, keys: Iterable[str]) -> dict[str, Any]:
        """The finished cells among ``keys``: key -> result. A cell file that cannot be read back (empty,
        truncated, from another program) counts as not done, with a warning naming it: the cell runs again."""
        out = {}
        for key in keys:
            path = self._cell(key)
            if not path.exists():
                continue
            try:
                stored_key, result = pickle.loads(path.read_bytes())
            except Exception as error:  # noqa: BLE001 - unpickling a damaged file raises almost anything
                warnings.warn(f"resume: cell file {path} cannot be read back ({_one_line(error)[:100]}); "
                              f"its cell runs again", RuntimeWarning, stacklevel=3)
                continue
            if stored_key == key:
                out[key] = result
        return out

    def save(self, key: str, result: Any) -> None:
        if not isinstance(result, CellError):
            _atomic_write(self._cell(key), pickle.dumps((key, result)))


def connect(scheduler: str, *, timeout: float = SCHEDULER_TIMEOUT_S, workers_timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``scheduler`` that has at least one worker; a one-line
    error naming the address if it does not answer as a Dask scheduler within about ``timeout`` seconds
    (at once where the connection is refused), or has no worker after ``workers_timeout`` seconds
    (default :data:`WORKERS_TIMEOUT_S`).

    distributed bounds the TCP connect but not its handshake (a listener that never replies, or an HTTP
    server, hangs ``Client()`` for good; a garbage reply can raise anything, e.g. a MemoryError on a bogus
    frame length), and it retries a refused connect until its timeout. So a TCP address is first probed with
    a plain socket (a refusal is named at once), then asked who it is under one hard deadline
    (``asyncio.wait_for``, in a thread of its own so that a caller's running event loop does not matter);
    only a scheduler that answered gets a Client.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed import Client
    from distributed.comm import connect as open_comm
    from distributed.comm.addressing import parse_address
    from distributed.comm.registry import get_backend
    from distributed.security import Security

    host_port = None
    try:
        scheme, location = parse_address(scheduler)
        host_port = get_backend(scheme).get_address_host_port(location)  # a tcp address without a port, say
    except NotImplementedError:  # a backend without host:port addresses (inproc)
        pass
    except ValueError as error:  # not an address distributed can parse
        raise ValueError(f"scheduler {scheduler!r}: {error}") from None
    hint = "check the address and that a Dask scheduler runs there"
    start = time.monotonic()
    if host_port is not None:
        _probe(scheduler, host_port, timeout, hint)

    async def identity():
        comm = await open_comm(scheduler, timeout=timeout, **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    left = max(timeout - (time.monotonic() - start), 1.0)
    pool = ThreadPoolExecutor(1, thread_name_prefix="bayeslaw-connect")
    try:
        reply = pool.submit(asyncio.run, asyncio.wait_for(identity(), left)).result(timeout=left + 1)
    except (OSError, TimeoutError) as error:  # refused, unreachable, or silent past the deadline
        raise ValueError(f"scheduler {scheduler} did not answer within {timeout:g} s; {hint}") from error
    except Exception as error:  # noqa: BLE001 - whatever a reply that is not Dask's protocol raises
        raise ValueError(f"scheduler {scheduler} did not answer as a Dask scheduler "
                         f"({_one_line(error)[:120]}); {hint}") from None
    finally:
        pool.shutdown(wait=False)
    if not isinstance(reply, Mapping) or reply.get("type") != "Scheduler":
        what = reply.get("type") if isinstance(reply, Mapping) else type(reply).__name__
        raise ValueError(f"scheduler {scheduler} answered as a {what}, not a Dask scheduler; {hint}")
    left = max(timeout - (time.monotonic() - start), 1.0)
    try:
        client = Client(scheduler, timeout=left)
    except Exception as error:  # noqa: BLE001 - it answered a moment ago; say so on one line, not a traceback
        raise ValueError(f"scheduler {scheduler} answered but a client could not connect "
                         f"({_one_line(error)[:120]}); {hint}") from None
    try:
        _wait_for_workers(client, scheduler, workers_timeout)
    except BaseException:
        _close_quietly(client)
        raise
    return client


def _probe(scheduler: str, host_port: tuple, timeout: float, hint: str) -> None:
    """A plain TCP connect to the scheduler's host and port: a refusal is named at once (distributed would
    retry it until its timeout), a silence after ``timeout`` seconds as one."""
    host, port = host_port
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        # worded as before ("did not answer") so that callers matching it go on working, but said at once
        raise ValueError(f"scheduler {scheduler} did not answer within {timeout:g} s: connection refused "
                         f"(nothing listens on {host}:{port}); {hint}") from None
    except TimeoutError:
        raise ValueError(f"scheduler {scheduler} did not answer within {timeout:g} s; {hint}") from None
    except OSError as error:  # unknown host, unreachable network
        raise ValueError(f"scheduler {scheduler} did not answer ({_one_line(error)[:120]}); {hint}") from None


def _wait_for_workers(client, where: str, timeout: float | None = None) -> None:
    """Return once the client's scheduler has a worker; a one-line error after ``timeout`` seconds (default
    :data:`WORKERS_TIMEOUT_S`) if it has none: without workers the study's futures would wait for ever."""
    timeout = WORKERS_TIMEOUT_S if timeout is None else timeout
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise ValueError(f"scheduler {where} has no workers (waited {timeout:g} s); start some with "
                         f"`dask worker {where}`") from None


@contextmanager
def _quiet_distributed():
    """distributed's loggers silenced while a client and cluster shut down: a study stopped (Ctrl-C, SIGTERM)
    would otherwise print the heartbeats and connections that fail as the scheduler goes."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _close_quietly(client) -> None:
    """Close a client made here, and its LocalCluster if it has one, without distributed's shutdown noise."""
    with _quiet_distributed():
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def run_cells(
    fn: Callable[[Any], Any],
    jobs: Mapping[str, Any],
    *,
    workers: int = 1,
    client=None,
    scheduler: str | None = None,
    folder: StudyFolder | None = None,
    progress: bool = False,
    desc: str = "fits",
) -> dict[str, Any]:
    """``{key: fn(job)}`` for every ``jobs`` item, a :class:`CellError` where the call raised.

    Cells already in ``folder`` are not run again; the others are saved there as they finish.
    ``fn`` must be importable by name (a module-level function) when the cells run on Dask workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, found {workers}")
    results = folder.done(jobs) if folder is not None and folder.resume else {}
    if folder is not None:
        folder.reused = set(results)  # a caller counts and times only the cells run now
    todo = {key: job for key, job in jobs.items() if key not in results}
    bar = own_client = None

    def keep(key, result):
        results[key] = result
        if folder is not None:
            folder.save(key, result)
        if bar is not None:
            bar.update()

    try:
        if client is None and scheduler is not None:
            client = own_client = connect(scheduler)
        elif client is not None and todo:
            where = getattr(client.scheduler, "address", None) or "of the client"
            _wait_for_workers(client, where)  # a given client's scheduler may have none: else it waits for ever
        if client is None and workers > 1 and len(todo) > 1:
            client = own_client = _local_cluster(workers)
        if folder is not None:
            folder.start()
        if progress and todo:
            from tqdm.auto import tqdm  # a bar with rate and ETA

            bar = tqdm(total=len(jobs), initial=len(results), desc=desc)
        if client is None:
            for key, job in todo.items():
                keep(key, _call(fn, key, job))
        elif todo:
            from distributed import as_completed

            futures = {client.submit(_call, fn, key, job, key=f"bayeslaw-{key}-{time.time_ns()}", pure=False): key
                       for key, job in todo.items()}
            for future in as_completed(futures):
                key = futures[future]
                try:
                    result = future.result()
                except Exception as error:  # noqa: BLE001 - the worker died (KilledWorker) or the result did not arrive
                    result = CellError(key, _one_line(error), traceback.format_exc())
                keep(key, result)
    finally:
        if bar is not None:
            bar.close()
        if own_client is not None:
            _close_quietly(own_client)
    return {key: results[key] for key in jobs}


def _local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes, one thread each, and its client.

    The scheduler's HTTP server always starts (``dashboard_address=None`` means its default port 8787, with a
    warning when that is taken): ``":0"`` gives it a free port instead. Logs are silenced below CRITICAL in
    the workers too: a cell's error comes back as its CellError, and a worker whose scheduler goes (a study
    stopped) would print its failed heartbeats."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.CRITICAL)
    return Client(cluster)
