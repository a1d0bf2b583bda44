import os
import shutil
import tempfile
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


def pytest_configure(config):
    """One compilation cache for the whole run, empty at its start: the many small fits of the suite
    compile the same programs (the same simulated data, the same model) in different tests, workers,
    notebook kernels and CLI calls, and compiling is most of a small fit's time. Given as bayeslaw's own
    setting (``BAYESLAW_COMPILATION_CACHE``: every program kept, as users get it), in the
    controller before the xdist workers start, so that they and their subprocesses inherit it; a cache the
    caller set (bayeslaw's or JAX's) is left alone, and the one made here is removed at the end."""
    if hasattr(config, "workerinput") or os.environ.get("BAYESLAW_COMPILATION_CACHE") or \
            os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    config._bayeslaw_jax_cache = tempfile.mkdtemp(prefix="bayeslaw-jax-cache-")
    os.environ["BAYESLAW_COMPILATION_CACHE"] = config._bayeslaw_jax_cache


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
