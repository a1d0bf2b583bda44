"""The persistent compilation cache bayeslaw gives JAX on import (bayeslaw.COMPILATION_CACHE), in fresh
processes: where it goes, that a second process reads what the first compiled and gets the same numbers,
and that a user's own JAX setting, 'off' and an unwritable folder are respected."""

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, logging
import jax, jax.numpy as jnp
import bayeslaw
hits = []
class Hits(logging.Handler):
    def emit(self, record):
        hits.append("cache hit" in record.getMessage())
logging.getLogger("jax._src.compiler").addHandler(Hits())
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
x = jax.jit(lambda a: jnp.cumsum(jnp.sin(a) ** 2) / jnp.exp(a))(jnp.linspace(0.0, 1.0, 7))
print(json.dumps({"cache": bayeslaw.COMPILATION_CACHE, "dir": jax.config.jax_compilation_cache_dir,
                  "max": jax.config.jax_compilation_cache_max_size, "hits": sum(hits), "x": x.tolist(),
                  "min_s": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


def fresh(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process whose JAX and bayeslaw cache settings are only those given (never
    the suite's shared cache), its default cache folder under ``tmp_path / "xdg"``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "BAYESLAW_COMPILATION", "XDG_CACHE"))}
    base.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), **env)
    return subprocess.run([sys.executable, *args], env=base, capture_output=True, text=True)


def child(tmp_path, **env) -> dict:
    """CHILD in a fresh process (:func:`fresh`)."""
    out = fresh(tmp_path, "-c", CHILD, **env)
    out.check_returncode()
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_reads_the_programs_the_first_compiled(tmp_path):
    first = child(tmp_path)
    folder = tmp_path / "xdg" / "bayeslaw" / "jax"
    assert first["cache"] == first["dir"] == str(folder) and first["max"] == -1  # no size bound: see _compilation_cache
    # CHILD's program compiles in milliseconds: kept all the same (JAX's threshold is a second)
    assert first["min_s"] == 0 and first["hits"] == 0 and any(p.name.endswith("-cache") for p in folder.iterdir())
    second = child(tmp_path)
    assert second["hits"] >= 1 and second["x"] == first["x"]


@pytest.mark.parametrize("setting", ["mine", "off", "unwritable", "jax"])
def test_the_folder_is_the_users_choice(tmp_path, setting):
    (tmp_path / "a_file").write_text("")
    env = {"mine": {"BAYESLAW_COMPILATION_CACHE": str(tmp_path / "mine"),
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2"},
           "off": {"BAYESLAW_COMPILATION_CACHE": "off"},
           "unwritable": {"BAYESLAW_COMPILATION_CACHE": str(tmp_path / "a_file" / "below")},
           # JAX's own setting wins over bayeslaw's, with JAX's other settings (no size bound) as they are
           "jax": {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax"), "BAYESLAW_COMPILATION_CACHE": "off"}}[setting]
    got = child(tmp_path, **env)
    expected = {"mine": str(tmp_path / "mine"), "jax": str(tmp_path / "jax")}.get(setting)
    assert got["cache"] == got["dir"] == expected
    assert got["min_s"] == {"mine": 2.0}.get(setting, 1.0)  # the user's threshold, or JAX's where it chose
    assert not (tmp_path / "xdg" / "bayeslaw").exists()  # the default folder is never made when another is chosen


def entries(folder, sizes_kb: dict) -> None:
    """Fake cache entries KEY-cache of the given sizes, each used (accessed and modified) at its own time:
    the i-th written is the i-th most recently used, an hour apart."""
    folder.mkdir(parents=True, exist_ok=True)
    for hour, (key, kb) in enumerate(sizes_kb.items()):
        for name, size in ((f"{key}-cache", kb * 1024), (f"{key}-atime", 8)):
            (folder / name).write_bytes(b"x" * size)
            os.utime(folder / name, (1e9 + 3600 * hour, 1e9 + 3600 * hour))


def test_the_least_recently_used_programs_go_first_down_to_three_quarters_of_the_bound(tmp_path):
    from bayeslaw import _prune_compilation_cache

    folder = tmp_path / "cache"
    entries(folder, {"a": 400, "b": 300, "c": 200, "d": 100})
    (folder / "notes.txt").write_bytes(b"y" * 500_000)  # not a program: never counted, never deleted
    assert _prune_compilation_cache(folder, 1000 * 1024) == 0  # within the bound: nothing touched
    assert len(list(folder.iterdir())) == 9
    # a bound of 800 KB: the programs (1,000 KB) are pruned to 600 KB, oldest first (a, then nothing more)
    assert _prune_compilation_cache(folder, 800 * 1024) == 400 * 1024
    assert sorted(p.name for p in folder.iterdir()) == ["b-atime", "b-cache", "c-atime", "c-cache", "d-atime",
                                                        "d-cache", "notes.txt"]
    # a program read since (its access time now) outlives older ones that were not
    os.utime(folder / "b-cache", (2e9, 1e9))
    assert _prune_compilation_cache(folder, 400 * 1024) == 300 * 1024  # c, then d, until 300 KB or less
    assert sorted(p.name for p in folder.iterdir()) == ["b-atime", "b-cache", "notes.txt"]


def test_importing_bayeslaw_bounds_its_folder_and_refuses_a_bound_that_is_not_a_number(tmp_path):
    folder = tmp_path / "xdg" / "bayeslaw" / "jax"
    entries(folder, {"old": 1024, "new": 512})
    got = child(tmp_path, BAYESLAW_COMPILATION_CACHE_MAX_MB="1")
    names = {p.name for p in folder.iterdir()}
    assert got["cache"] == str(folder) and "old-cache" not in names and "new-cache" in names
    assert any(n.endswith("-cache") and not n.startswith(("old", "new")) for n in names)  # CHILD's own, written after
    out = fresh(tmp_path, "-c", "import bayeslaw", BAYESLAW_COMPILATION_CACHE_MAX_MB="1GB")
    assert out.returncode != 0 and "BAYESLAW_COMPILATION_CACHE_MAX_MB='1GB'" in out.stderr.strip().splitlines()[-1]
    assert "new-cache" in {p.name for p in folder.iterdir()}  # refused before anything was deleted


def cli(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    """``bayeslaw ARGS`` in a fresh process (:func:`fresh`)."""
    return fresh(tmp_path, "-c", "from bayeslaw.cli import main; main()", *args, **env)


def test_the_cache_command_reports_and_clears_the_programs_only(tmp_path):
    folder = tmp_path / "mine"
    entries(folder, {"a": 300, "b": 212})
    (folder / "notes.txt").write_text("mine")
    env = {"BAYESLAW_COMPILATION_CACHE": str(folder), "BAYESLAW_COMPILATION_CACHE_MAX_MB": "7"}
    info = json.loads(cli(tmp_path, "cache", "--json", **env).stdout)
    assert info == {"folder": str(folder), "programs": 2, "mb": 0.5, "bound_mb": 7.0, "cleared_mb": 0.0}
    assert "2 programs, 0.5 MB (bound: 7 MB)" in cli(tmp_path, "cache", **env).stdout
    cleared = json.loads(cli(tmp_path, "cache", "--clear", "--json", **env).stdout)
    assert cleared["cleared_mb"] == 0.5 and cleared["programs"] == 0
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    off = cli(tmp_path, "cache", BAYESLAW_COMPILATION_CACHE="off")
    assert off.returncode == 0 and off.stdout.startswith("no compilation cache")
    jax_own = json.loads(cli(tmp_path, "cache", "--json", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax")).stdout)
    assert jax_own["folder"] == str(tmp_path / "jax") and jax_own["bound_mb"] is None  # JAX's to bound
