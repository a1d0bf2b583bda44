"""Data stage: the public scaling-law data sets as one validated long table.

>>> import bayeslaw.data as bd
>>> bd.sources()                       # doctest: +SKIP
>>> df = bd.load("chinchilla")         # doctest: +SKIP  (reads $BAYESLAW_DATA)
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from bayeslaw.data.files import read_csv_file, read_parquet_file
from bayeslaw.data.importers import (
    ImportFormatError,
    MissingExtraError,
    as_table,
    complete_minimal,
    detect_format,
    import_paths,
    loss_to_nats,
    read_tensorboard,
    read_wandb_csv,
    read_wandb_json,
)
from bayeslaw.data.runs import replicated_runs, run_configurations
from bayeslaw.data.schedules import Schedule, run_schedules
from bayeslaw.data.sources import SOURCES, Source
from bayeslaw.data.split import cut_early, hitchhiker_split, thin_checkpoints
from bayeslaw.data.validation import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    DataValidationError,
    DuplicateRowsError,
    validate,
)

__all__ = [
    "DATA_ENV",
    "DataNotFoundError",
    "DataValidationError",
    "DuplicateRowsError",
    "ImportFormatError",
    "MissingExtraError",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Schedule",
    "Source",
    "as_table",
    "complete_minimal",
    "cut_early",
    "data_root",
    "detect_format",
    "hitchhiker_split",
    "import_paths",
    "load",
    "load_all",
    "load_study",
    "loss_to_nats",
    "read_table",
    "read_tensorboard",
    "read_wandb_csv",
    "read_wandb_json",
    "replicated_runs",
    "run_configurations",
    "run_schedules",
    "sources",
    "thin_checkpoints",
    "validate",
]

DATA_ENV = "BAYESLAW_DATA"


class DataNotFoundError(FileNotFoundError):
    """The folder of public data sets is not where bayeslaw looked."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the public data (``colpret/``, ``polypythias_trainloss/``, ...).

    ``root`` if given, else ``$BAYESLAW_DATA``; raises :class:`DataNotFoundError` with the fix.
    """
    if root is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise DataNotFoundError(
                f"no data folder given: pass root=... (CLI: --root) or set {DATA_ENV} to the folder that holds "
                f"colpret/, polypythias_trainloss/ and olmo_ladder_runs/ (e.g. export {DATA_ENV}=../shared/data)"
            )
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(
            f"data folder {str(path)!r} {'is a file, not a folder' if path.exists() else 'does not exist'}; pass "
            f"root=... (CLI: --root) or set {DATA_ENV} to the folder "
            f"that holds colpret/, polypythias_trainloss/ and olmo_ladder_runs/"
        )
    return path


def sources() -> pd.DataFrame:
    """The known data sources: name, folder, files and a one-line description."""
    return pd.DataFrame(
        [
            {"name": s.name, "folder": s.folder, "files": ", ".join(s.files), "description": s.description,
             "schedules": s.schedules}
            for s in SOURCES.values()
        ]
    )


def load(name: str, root: str | os.PathLike | None = None, **options) -> pd.DataFrame:
    """Load one source (a name from :func:`sources`) as a validated long table.

    ``options`` go to the source's loader (e.g. ``loss_name=`` to pick another metric).
    """
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r}; known sources: {sorted(SOURCES)}")
    source = SOURCES[name]
    folder = data_root(root) / source.folder
    missing = [f for f in source.files if not (folder / f).exists()]
    if missing:
        raise DataNotFoundError(f"source {name!r}: file(s) {missing} not found in {str(folder)!r}")
    return validate(source.loader(folder, **options), name=f"source {name!r}")


def load_all(root: str | os.PathLike | None = None, *, schedules: bool = False) -> pd.DataFrame:
    """All sources concatenated (each with its default ``loss_name``).

    The learning-rate-schedule sources (``multipower``, ``wsd_horizons``: curves of a few sizes under
    many schedules, some without tokens per step) are for the schedule laws and join only with
    ``schedules=True``. The sources' ``attrs`` notes (``filtering``, ``corrections``) are kept, each
    prefixed by its source.
    """
    names = [name for name, source in SOURCES.items() if schedules or not source.schedules]
    frames = [load(name, root) for name in names]
    notes: dict[str, list[str]] = {}
    for name, frame in zip(names, frames, strict=True):
        for key, sentences in frame.attrs.items():
            notes.setdefault(key, []).extend(f"{name}: {s}" for s in sentences)
    for frame in frames:
        frame.attrs = {}
    table = pd.concat(frames, ignore_index=True)
    table.attrs = notes
    return validate(table, name="load_all()")


def load_study(root: str | os.PathLike | None = None, *, min_sizes: int = 3) -> pd.DataFrame:
    """The shared families a scaling study scores: those seen at ``min_sizes`` or more model sizes.

    From :func:`load_all`, leaving out repeated-data runs (``epochs`` > 1: datablations' multi-epoch runs
    and its contour; a law of unique tokens does not describe them) and PolyPythias outside lineage A (70m's
    non-standard configuration) or flagged as outliers (410m runs that spike after a resume). Model sizes
    that agree to three significant digits count as one.
    """
    if isinstance(min_sizes, bool) or not isinstance(min_sizes, int) or min_sizes < 1:
        raise ValueError(f"load_study: min_sizes={min_sizes!r} must be a whole number >= 1 (of model sizes)")
    df = load_all(root)
    pythia = df["source"] == "polypythias"
    keep = ~(df["epochs"] > 1) & ~(pythia & ((df["lineage"] != "A") | df["outlier"].fillna(False).astype(bool)))
    df = df[keep]
    sizes = df["params"].map(lambda p: float(f"{p:.3g}")).groupby(df["family"]).nunique()
    if not (sizes >= min_sizes).any():  # an empty study is no study: say so, not an empty table
        raise ValueError(f"load_study: no family has {min_sizes} or more model sizes (the most is {sizes.max()})")
    return df[df["family"].isin(sizes.index[sizes >= min_sizes])]


def read_table(path: str | os.PathLike, *, duplicates: bool = True) -> pd.DataFrame:
    """Read a user's table (CSV or parquet) in the bayeslaw schema, or a minimal one (``run, params, tokens,
    loss``; ``run, params, step, loss`` with a ``schedule`` for laws of steps), and validate it.

    The columns a minimal table lacks get :func:`complete_minimal`'s defaults (family 'default', model the
    size label, seed 0, step -1, flops 6 N D, loss_name 'loss', source the file name). Errors name the
    file, the column and the rows (line numbers of a CSV file). ``duplicates=False`` leaves rows of one run
    at one checkpoint to the caller (``bl.fit(df, duplicates="last")`` keeps a restart's), as in
    :func:`~bayeslaw.data.validation.validate`; True refuses them (:class:`DuplicateRowsError`).
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"file {str(path)!r} does not exist")
    if path.is_dir():
        raise DataValidationError(f"{str(path)!r} is a folder, not a table (.csv or .parquet)")
    suffix = path.suffix.lower()  # OUT.CSV, as `bayeslaw load --out` writes it, is a CSV file
    if suffix in (".parquet", ".pq"):
        df, first_row = read_parquet_file(path, "file", DataValidationError), 0
        label = f"file {str(path)!r} (rows counted from 0)"
    elif suffix in (".csv", ".txt", ".gz"):
        df, first_row = read_csv_file(path, "file", DataValidationError), 2
        label = f"file {str(path)!r} (rows are line numbers)"
    else:
        raise DataValidationError(f"{str(path)!r}: unknown file type {path.suffix!r}; use .csv or .parquet")
    return complete_minimal(df, source=path.name, name=label, first_row=first_row, duplicates=duplicates)
