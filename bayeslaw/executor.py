"""Running a study's independent fits: in this process or on a Dask cluster, kept as they arrive.

A study (a backtest, the calibration study, pilot refits, a comparison of forms) is a set of *cells*,
each one call ``fn(job)`` with no dependence on the others. :func:`run_cells` runs them

- in this process, one after another (``workers=1`` and no client);
- on a Dask ``distributed`` cluster: an existing one (``client=`` a ``distributed.Client``, or
  ``scheduler=`` its address), or a ``LocalCluster`` of ``workers`` processes with one thread each
  (a NUTS fit's XLA code is not thread-safe to share, and a process per fit gives its memory back).

A cell that raises is returned as a :class:`CellError` (its error on one line, and the traceback) and
the study goes on. With a :class:`StudyFolder`, each result is written as it arrives, atomically (one
pickle per cell, renamed into place), so an interrupted study resumes from the cells already done;
the folder records the package version and a hash of the study's configuration, and a resume with
either different is refused, naming the difference.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["CellError", "StudyFolder", "connect", "run_cells"]

SCHEDULER_TIMEOUT_S = 5.0  # the bound is 10 s in all, with the imports


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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)  # a reader sees the old file or the whole new one, never half of it


def _file_name(key: str) -> str:
    """A file name for a cell key: readable, and unique by a short hash of the key itself."""
    readable = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)[:80]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.pkl"


class StudyFolder:
    """A folder that keeps a study's cells as they finish: ``study.json`` and ``cells/<key>.pkl``.

    ``study.json`` holds the package version, the configuration and its hash. Opening a folder with
    ``resume=False`` starts the study over (cells from an earlier run are removed); with
    ``resume=True`` the folder must have been written by this version with this configuration (else
    ``ValueError`` naming what differs) and its finished cells are kept. Failed cells are not kept, so
    a resume runs them again. Nothing is written until :meth:`start`. ``reused``: the keys that
    :func:`run_cells` read back from the folder instead of running (empty without resume).
    """

    MANIFEST = "study.json"

    def __init__(self, path: str | os.PathLike, config: Mapping, *, resume: bool = False):
        self.path = Path(path)
        self.config = _plain(config)
        self.hash = config_hash(self.config)
        self.version = _package_version()
        self.resume, self.started = resume, False
        self.reused: set[str] = set()
        manifest = self.path / self.MANIFEST
        if resume:
            if not manifest.exists():
                raise ValueError(f"resume: {self.path} holds no study ({self.MANIFEST} missing); run without --resume")
            self._check(json.loads(manifest.read_text()))

    def start(self) -> None:
        """Write ``study.json``; without resume, first remove the cells of an earlier study. Called by
        :func:`run_cells` once its workers are up, so that a study that cannot start leaves the folder as it was."""
        if self.started:
            return
        if not self.resume:
            shutil.rmtree(self.path / "cells", ignore_errors=True)
        (self.path / "cells").mkdir(parents=True, exist_ok=True)
        record = {"bayeslaw_version": self.version, "config_hash": self.hash, "config": self.config}
        _atomic_write(self.path / self.MANIFEST, json.dumps(record, indent=1, sort_keys=True).encode())
        self.started = True

    def _check(self, record: Mapping) -> None:
        if record.get("bayeslaw_version") != self.version:
            raise ValueError(f"resume: {self.path} was written by bayeslaw {record.get('bayeslaw_version')}, "
                             f"this is {self.version}; start it over without --resume")
        if record.get("config_hash") != self.hash:
            old = record.get("config", {})
            differ = sorted(k for k in set(old) | set(self.config) if old.get(k) != self.config.get(k))
            what = "; ".join(f"{k}: {old.get(k)!r} there, {self.config.get(k)!r} now" for k in differ[:4])
            raise ValueError(f"resume: {self.path} holds a study with another configuration ({what}); "
                             f"start it over without --resume or use another folder")

    def _cell(self, key: str) -> Path:
        return self.path / "cells" / _file_name(key)

    def done(self, keys: Iterable[str]) -> dict[str, Any]:
        """The finished cells among ``keys``: key -> result."""
        out = {}
        for key in keys:
            path = self._cell(key)
            if path.exists():
                stored_key, result = pickle.loads(path.read_bytes())
                if stored_key == key:
                    out[key] = result
        return out

    def save(self, key: str, result: Any) -> None:
        if not isinstance(result, CellError):
            _atomic_write(self._cell(key), pickle.dumps((key, result)))


def connect(scheduler: str, *, timeout: float = SCHEDULER_TIMEOUT_S):
    """A ``distributed.Client`` of the scheduler at ``scheduler``; a one-line error naming the address if it
    does not answer as a Dask scheduler within about ``timeout`` seconds.

    distributed bounds the TCP connect but not its handshake (a listener that never replies, or an HTTP
    server, hangs ``Client()`` for good; a garbage reply can raise anything, e.g. a MemoryError on a bogus
    frame length). So the address is first asked who it is under one hard deadline (``asyncio.wait_for``,
    in a thread of its own so that a caller's running event loop does not matter); only a scheduler that
    answered gets a Client.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed import Client
    from distributed.comm import connect as open_comm
    from distributed.comm.addressing import parse_address
    from distributed.comm.registry import get_backend
    from distributed.security import Security

    try:
        scheme, location = parse_address(scheduler)
        get_backend(scheme).get_address_host_port(location)  # a tcp address without a port, say
    except NotImplementedError:  # a backend without host:port addresses (inproc)
        pass
    except ValueError as error:  # not an address distributed can parse
        raise ValueError(f"scheduler {scheduler!r}: {error}") from None
    hint = "check the address and that a Dask scheduler runs there"

    async def identity():
        comm = await open_comm(scheduler, timeout=timeout, **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    start = time.monotonic()
    pool = ThreadPoolExecutor(1, thread_name_prefix="bayeslaw-connect")
    try:
        reply = pool.submit(asyncio.run, asyncio.wait_for(identity(), timeout)).result(timeout=timeout + 1)
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
        return Client(scheduler, timeout=left)
    except Exception as error:  # noqa: BLE001 - it answered a moment ago; say so on one line, not a traceback
        raise ValueError(f"scheduler {scheduler} answered but a client could not connect "
                         f"({_one_line(error)[:120]}); {hint}") from None


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
            cluster = own_client.cluster
            own_client.close()
            if cluster is not None:
                cluster.close()
    return {key: results[key] for key in jobs}


def _local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes, one thread each, and its client."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    return Client(cluster)
