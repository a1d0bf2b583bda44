"""Every notebook runs top to bottom in quick mode (BAYESLAW_QUICK=1: tiny NUTS runs), in a scratch folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the test extras: pip install -e '.[test]'")
from nbclient import NotebookClient  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NEEDS_DATA = {"02_hitchhiker_study.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_in_quick_mode(name, tmp_path, monkeypatch):
    data = os.environ.get("BAYESLAW_DATA")
    if name in NEEDS_DATA and not (data and Path(data).is_dir()):
        pytest.skip(f"{name} reads the public data: set BAYESLAW_DATA (the shared/data folder beside the checkout)")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{name} is stored with outputs: clear them before committing"
    monkeypatch.setenv("BAYESLAW_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if data:
        monkeypatch.setenv("BAYESLAW_DATA", str(Path(data).resolve()))
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors, errors
