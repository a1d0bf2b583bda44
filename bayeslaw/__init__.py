"""bayeslaw: hierarchical Bayesian scaling laws with honest uncertainty.

Importing bayeslaw switches JAX to float64: NUTS on these laws gets stuck chains in
float32 (see the project notes), and the point fits need the precision too. If JAX has not started
yet, it also gives the CPU at least four host devices, so that NUTS chains run in parallel
(``bayeslaw.fit`` warns when it finds fewer devices than chains). And unless JAX was given a
compilation cache of its own, compiled programs are kept on disk (:data:`COMPILATION_CACHE`), so that a
fit compiled once, in any process, is not compiled again.
"""

import os
from pathlib import Path

import jax


def _host_devices(wanted: int = 4) -> None:
    """Ask XLA for ``wanted`` CPU devices, unless JAX has started (then it is too late) or the user chose."""
    from jax._src import xla_bridge

    flags = os.environ.get("XLA_FLAGS", "")
    if xla_bridge.backends_are_initialized() or "xla_force_host_platform_device_count" in flags:
        return
    count = max(wanted, os.cpu_count() or 1)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def _compilation_cache() -> str | None:
    """The folder of JAX's persistent compilation cache, set here unless the user chose: JAX's own setting
    (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is kept as it is; otherwise ``$BAYESLAW_COMPILATION_CACHE``
    ('off' for none), else ``$XDG_CACHE_HOME/bayeslaw/jax`` (``~/.cache/bayeslaw/jax``). None
    where it is off or the folder cannot be written (a read-only home: fits compile as without it).

    Compiling is most of a small fit's time, and a fit compiles the same programs each time it runs with
    the same table and settings (a notebook or script run again, ``bayeslaw demo``): JAX keys a program by
    its code and constants (a table's values are constants of its fit's programs), so a cached program is
    the one compiling would give and the draws do not change. Every program is kept, not only those that
    take a second to compile (JAX's threshold, unless ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says
    otherwise): a fit runs hundreds of small eager operations, each compiled on its own, and reading them
    back made the demo's fit 2.1x faster where JAX's threshold gave 1.3x (benchmarks/compilation_cache.py).
    The folder is bounded here, once at import (:func:`_prune_compilation_cache`, at most
    ``$BAYESLAW_COMPILATION_CACHE_MAX_MB``, default 1024; about 2 MB per fit of a new table), not by JAX:
    JAX's own bound (``jax_compilation_cache_max_size``) rescans the whole folder under a lock at every
    write, 84 ms a write at 1,000 programs and 309 ms at 3,000 against 1.5 ms empty, which made a cold fit
    slower the more fits the folder held. Unlocked, two processes writing one program at once can leave the
    other a partial file to read: JAX warns and compiles it, the answer unchanged."""
    global _OWN_CACHE
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    chosen = os.environ.get("BAYESLAW_COMPILATION_CACHE", "").strip()
    if chosen.lower() in ("off", "0", "false", "no", "none"):
        return None
    try:  # Path.home() raises RuntimeError where no home can be found
        if chosen:
            folder = Path(chosen).expanduser()
        else:
            folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayeslaw" / "jax"
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    _prune_compilation_cache(folder, _cache_limit())
    jax.config.update("jax_compilation_cache_dir", str(folder))
    _OWN_CACHE = True
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return str(folder)


_OWN_CACHE = False  # whether bayeslaw chose the cache folder (and bounds it), not JAX's own setting
COMPILATION_CACHE_MAX_MB = 1024  # the default bound of bayeslaw's cache folder, in MB (2**20 bytes)
_ENTRY = "-cache"  # JAX's names: a program is KEY-cache, with KEY-atime beside it where JAX bounds the folder


def _cache_limit() -> int:
    """The cache folder's bound in bytes: ``$BAYESLAW_COMPILATION_CACHE_MAX_MB`` (a whole number of MB,
    refused in one line otherwise), else :data:`COMPILATION_CACHE_MAX_MB`."""
    text = os.environ.get("BAYESLAW_COMPILATION_CACHE_MAX_MB", "").strip()
    if not text:
        return COMPILATION_CACHE_MAX_MB * 2**20
    if not text.isdigit():
        raise ValueError(f"BAYESLAW_COMPILATION_CACHE_MAX_MB={text!r}: expected a whole number of megabytes "
                         f"(default {COMPILATION_CACHE_MAX_MB})")
    return int(text) * 2**20


def _cache_entries(folder: Path) -> list[tuple[float, str, int]]:
    """JAX's programs in a cache ``folder`` (its ``*-cache`` files) as (last used, name, bytes): "used" is
    the later of a file's access and modification times (JAX writes its own access stamps only where it
    bounds the folder itself, and most file systems update a read file's access time at least daily)."""
    entries = []
    with os.scandir(folder) as found:
        for entry in found:
            if entry.name.endswith(_ENTRY) and entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                entries.append((max(stat.st_atime, stat.st_mtime), entry.name, stat.st_size))
    return entries


def _prune_compilation_cache(folder: Path, limit: int) -> int:
    """Delete the least recently used programs of the cache ``folder`` (:func:`_cache_entries`) while they
    take more than ``limit`` bytes, down to three quarters of it (so that a folder at its bound is not
    pruned at every import; ``limit`` 0 deletes every program); the number of bytes deleted. Only JAX's
    entries (``*-cache`` and their ``*-atime``) are touched. One pass over the folder at import, a few
    milliseconds for thousands of programs; a program another process is reading stays readable (an open
    file outlives its name), and one it looks up after it is gone is compiled again."""
    try:
        entries = _cache_entries(folder)
    except OSError:
        return 0
    total = sum(size for _, _, size in entries)
    if total <= limit:
        return 0
    deleted = 0
    for _, name, size in sorted(entries):
        if total - deleted <= limit * 3 // 4:
            break
        for path in (folder / name, folder / (name[: -len(_ENTRY)] + "-atime")):
            try:
                path.unlink()
            except FileNotFoundError:  # another process pruned it first
                pass
            except OSError:
                return deleted
        deleted += size
    return deleted


def compilation_cache_info(*, clear: bool = False) -> dict:
    """The compilation cache this process uses (:data:`COMPILATION_CACHE`): its folder, the number of
    programs and their megabytes, and the bound it is pruned to at import (None where JAX's own setting
    chose the folder: JAX bounds it, or not). ``clear`` first deletes every program in it (only JAX's
    entries: other files stay); ``cleared_mb`` says how much. Folder None: no cache."""
    folder = COMPILATION_CACHE
    info = {"folder": folder, "programs": 0, "mb": 0.0, "bound_mb": None, "cleared_mb": 0.0}
    if folder is None:
        return info
    if _OWN_CACHE:
        info["bound_mb"] = _cache_limit() / 2**20
    if clear:
        info["cleared_mb"] = _prune_compilation_cache(Path(folder), 0) / 2**20
    try:
        entries = _cache_entries(Path(folder))
    except FileNotFoundError:  # JAX's own folder, before its first program
        entries = []
    info.update(programs=len(entries), mb=sum(size for _, _, size in entries) / 2**20)
    return info


def _numpyro_submodules() -> None:
    """Every loaded numpyro submodule an attribute of its package. ArviZ registers numpyro as a lazy module
    (``lazy_loader``) when it is imported first, and numpyro's first real import then leaves
    ``numpyro.distributions`` without its ``distribution`` attribute, which ``numpyro.factor`` reads: after
    ``import arviz``, every fit failed with an AttributeError."""
    import importlib
    import sys

    importlib.import_module("numpyro.infer")  # numpyro and the submodules the fits use, loaded

    for name, module in list(sys.modules.items()):
        parent, _, child = name.rpartition(".")
        if name.startswith("numpyro.") and module is not None and not hasattr(sys.modules[parent], child):
            setattr(sys.modules[parent], child, module)


_host_devices()
jax.config.update("jax_enable_x64", True)
COMPILATION_CACHE = _compilation_cache()
_numpyro_submodules()

from bayeslaw import data, laws, metrics  # noqa: E402
from bayeslaw.inference.nuts import Fit, Prediction, fit, load_fit  # noqa: E402
from bayeslaw.inference.batched import fit_many  # noqa: E402
from bayeslaw.inference.point import PointFit, fit_point  # noqa: E402
from bayeslaw.simulation import Simulation, load_demo, simulate, simulate_trajectories  # noqa: E402
from bayeslaw import plan  # noqa: E402
from bayeslaw.evaluation import compare_forms  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Fit",
    "PointFit",
    "Prediction",
    "Simulation",
    "compare_forms",
    "compilation_cache_info",
    "data",
    "fit",
    "fit_many",
    "fit_point",
    "laws",
    "load_demo",
    "load_fit",
    "metrics",
    "plan",
    "simulate",
    "simulate_trajectories",
]

# the last stages (evaluation, figures, reports) import on first use, so that ``bl.plots.forest(...)`` and
# ``bl.report.fit_report(...)`` work after ``import bayeslaw as bl`` without loading them for every fit
_LAZY = ("evaluation", "plots", "report")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"bayeslaw.{name}")
    raise AttributeError(f"module 'bayeslaw' has no attribute {name!r}")
