import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The public data folder ($BAYESLAW_DATA); tests that need it skip when it is absent."""
    root = os.environ.get("BAYESLAW_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("BAYESLAW_DATA not set or folder missing: the public data lives beside the checkout in ../shared/data")
    return Path(root)
