import os
import shutil
import tempfile
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

_JAX_CACHE = "JAX_COMPILATION_CACHE_DIR"


def pytest_configure(config):
    """One JAX compilation cache for the whole run, empty at its start: the many small fits of the suite
    compile the same programs (the same simulated data, the same model) in different tests, workers,
    notebook kernels and CLI calls, and compiling is most of a small fit's time. Set in the controller
    before the xdist workers start, so that they and their subprocesses inherit it; a cache the caller
    set is left alone, and the one made here is removed at the end."""
    if hasattr(config, "workerinput") or os.environ.get(_JAX_CACHE):
        return
    config._bayeslaw_jax_cache = tempfile.mkdtemp(prefix="bayeslaw-jax-cache-")
    os.environ[_JAX_CACHE] = config._bayeslaw_jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # also the eager single-op compilations
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"


def pytest_unconfigure(config):
    folder = getattr(config, "_bayeslaw_jax_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _no_extension():
    """The suite fits tiny chains, which always miss r-hat <= 1.01 and ESS >= 400: no automatic extra
    blocks of draws (``EXTEND_BLOCKS``) unless a test asks for them (tests/test_nuts.py checks them).
    Session-scoped, so that module-scoped fits see it too."""
    from bayeslaw.inference import nuts

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nuts, "EXTEND_BLOCKS", 0)
        yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The public data folder ($BAYESLAW_DATA); tests that need it skip when it is absent."""
    root = os.environ.get("BAYESLAW_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("BAYESLAW_DATA not set or folder missing: the public data lives beside the checkout in ../shared/data")
    return Path(root)
