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


def child(tmp_path, **env) -> dict:
    """CHILD in a fresh process, its JAX and bayeslaw cache settings only those given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "BAYESLAW_COMPILATION", "XDG_CACHE"))}
    base.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), **env)
    out = subprocess.run([sys.executable, "-c", CHILD], env=base, capture_output=True, text=True, check=True)
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
