"""The long table every bayeslaw stage reads, and its checks at the pandas boundary.

One row per (run, checkpoint):

========== ======= =========================================================
column     dtype   meaning
========== ======= =========================================================
family     str     model family: runs that share an architecture, data and recipe
model      str     model configuration (a size) inside the family
run        str     one training run (model x token budget x seed); unique key
seed       int     seed of the run (0 where the source gives none)
params     float   parameters N
tokens     float   training tokens seen at the checkpoint D
step       int     optimizer step of the checkpoint (-1 where unknown)
flops      float   training FLOPs C, 6 N D unless the source gives it
loss       float   loss in nats per token
loss_name  str     which metric ``loss`` is (e.g. ``c4_en-validation``)
source     str     where the row comes from (a name of ``bayeslaw.data.sources()``)
========== ======= =========================================================

Optional columns where a source has them: ``batch_size`` (tokens per step),
``lr``, ``epochs``, ``unique_tokens``, ``outlier`` (bool), ``lineage``, ``run_tokens`` (the run's final
tokens, where a table holds only part of a run: the fraction of the run a checkpoint sits at is
tokens / run_tokens; default: the run's last checkpoint in the table), ``schedule`` (the run's learning-rate
schedule as JSON: :mod:`bayeslaw.data.schedules`). ``tokens`` and ``flops`` may be missing (NaN) on rows
whose ``step`` is known, for sources that log steps but not tokens per step; laws that read tokens
refuse those rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "DataValidationError",
    "DuplicateRowsError",
    "check_branch_families",
    "validate",
]

REQUIRED_COLUMNS: dict[str, str] = {
    "family": "str",
    "model": "str",
    "run": "str",
    "seed": "int",
    "params": "float",
    "tokens": "float",
    "step": "int",
    "flops": "float",
    "loss": "float",
    "loss_name": "str",
    "source": "str",
}
OPTIONAL_COLUMNS: dict[str, str] = {
    "batch_size": "float",
    "lr": "float",
    "epochs": "float",
    "unique_tokens": "float",
    "outlier": "bool",
    "lineage": "str",
    "run_tokens": "float",
    "schedule": "str",
    "parent_run": "str",
    "copied": "bool",
}
_POSITIVE = ("params", "tokens", "flops", "loss")
#: values no language-model table holds in its units, each with the slip that usually writes them:
#: (column, bound, "above"/"below", the likely cause). A loss of 20 nats per token would need a vocabulary
#: of e^20 (485 million) tokens; a run under 1,000 tokens or a model under 10,000 parameters is not one.
PLAUSIBLE = (
    ("loss", 20.0, "above", "a perplexity written as loss? (loss = ln(perplexity), in nats per token)"),
    ("tokens", 1e3, "below", "token counts in billions? (3e11 tokens, not 300)"),
    ("params", 1e4, "below", "parameter counts in millions or billions? (7e9 parameters, not 7 or 7000)"),
    ("lr", 0.0, "below", "a learning rate is never negative"),
)
_KNOWN_FROM_STEP = ("tokens", "flops")  # may be missing (NaN) on rows whose step is known
_SHOW = 5  # how many offending rows an error message lists


class DataValidationError(ValueError):
    """A table does not follow the bayeslaw schema; the message names column, rows and fix."""


class DuplicateRowsError(DataValidationError):
    """Two rows of one run at one checkpoint: a caller with an option that keeps the last (``bl.fit``'s
    ``duplicates``, the CLI's ``--duplicates``) catches this one and adds it to the message."""


def _rows(index: pd.Index, first_row: int = 0) -> str:
    shown = ", ".join(str(i + first_row) for i in index[:_SHOW])
    more = f" and {len(index) - _SHOW} more" if len(index) > _SHOW else ""
    return f"rows {shown}{more}"


def _where(name: str | None) -> str:
    return f" in {name}" if name else ""


_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no", ""}


def _as_bool(values: pd.Series, column: str, name: str | None, first_row: int) -> pd.Series:
    """A bool column from bools, 0/1 or the words true/false/yes/no (any case); empty is False. Anything
    else refused: astype(bool) reads every non-empty text, 'no' and 'false' included, as True."""
    text = values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                      else str(v).strip().lower())
    bad = values.index[~text.isin(_TRUE | _FALSE)]
    if len(bad):
        examples = ", ".join(repr(v) for v in values.loc[bad[:_SHOW]])
        raise DataValidationError(
            f"column '{column}'{_where(name)}: {len(bad)} value(s) that are not true/false "
            f"({_rows(bad, first_row)}: {examples}); use true/false, 1/0 or yes/no"
        )
    return text.isin(_TRUE).astype(bool)


#: columns that describe a run, not a checkpoint: one value on every row of a run (a run whose size changes
#: between rows is two runs under one name, and every law would read the first row's value)
_PER_RUN = ("params", "family", "model", "seed")  # params first: a minimal table derives model from it
_POSITIVE_OPTIONAL = ("batch_size", "epochs")  # tokens per step and passes over the data: never <= 0
#: flops beyond this factor of 6ND (either side) is no training compute of that N and D: a slip of units
#: (olmo_ladder's counted flops sit at 1.2-1.7 x 6ND, attention and embeddings included)
FLOPS_FACTOR = 10.0


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else repr(v.item() if isinstance(v, np.generic) else v)


def _check_per_run(out: pd.DataFrame, name: str | None, first_row: int) -> None:
    """Refuse a run whose run-level columns change between rows, or whose ``run_tokens`` is below its
    checkpoints' tokens; refuse flops far from 6ND."""
    for column in _PER_RUN:
        firsts = out.groupby("run", sort=False)[column].transform("first")
        changed = out.index[out[column] != firsts]
        if len(changed):
            run = out.loc[changed[0], "run"]
            own = out.index[out["run"] == run]
            raise DataValidationError(
                f"column '{column}'{_where(name)}: run {run!r} changes {column} between rows "
                f"({_value(out.loc[own[0], column])} at row {own[0] + first_row}, "
                f"{_value(out.loc[changed[0], column])} at row {changed[0] + first_row}; "
                f"{len(changed)} such row(s): {_rows(changed, first_row)}); a run has one {column}: give each "
                "configuration its own run name"
            )
    if "run_tokens" in out.columns:
        with np.errstate(invalid="ignore"):
            below = out.index[(out["run_tokens"] < out["tokens"]).to_numpy()]
        if len(below):
            i = below[0]
            raise DataValidationError(
                f"column 'run_tokens'{_where(name)}: {len(below)} row(s) with run_tokens below their tokens "
                f"({_rows(below, first_row)}; run {out.loc[i, 'run']!r}: run_tokens {out.loc[i, 'run_tokens']:g}, "
                f"tokens {out.loc[i, 'tokens']:g}); run_tokens is the run's final tokens, at least every checkpoint's"
            )
    ratio = (out["flops"] / (6.0 * out["params"] * out["tokens"])).to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):  # NaN flops and tokens where the step is known
        far = out.index[(ratio > FLOPS_FACTOR) | (ratio < 1.0 / FLOPS_FACTOR)]
    if len(far):
        examples = ", ".join(f"{r:.3g}" for r in ratio[far[:3]])
        raise DataValidationError(
            f"column 'flops'{_where(name)}: {len(far)} value(s) outside {1 / FLOPS_FACTOR:g}-{FLOPS_FACTOR:g} x 6ND "
            f"({_rows(far, first_row)}: {examples} x 6ND); training FLOPs are about 6 x params x tokens: check the "
            "units, or leave the column out (6ND is filled in)"
        )


def _check_parent_cycles(out: pd.DataFrame, name: str | None, first_row: int) -> None:
    """Refuse a run that names itself, or a descendant, as its ``parent_run``: a branch tree has a root."""
    parents = out.groupby("run", sort=False)["parent_run"].first().dropna().astype(str).to_dict()
    for run in parents:
        seen, top = [run], parents[run]
        while top in parents and top not in seen:
            seen.append(top)
            top = parents[top]
        if top in seen:
            row = out.index[out["run"] == run][0]
            what = "names itself" if parents[run] == run else f"descends from itself ({' -> '.join(seen + [top])})"
            raise DataValidationError(
                f"column 'parent_run'{_where(name)}: run {run!r} {what} (row {row + first_row}); a branch's "
                "parent is the run it continues, not itself or a branch of its own"
            )


def _check_duplicates(out: pd.DataFrame, name: str | None, first_row: int) -> None:
    """Refuse two rows of one run and loss_name at one checkpoint: the same tokens (where known), or the same
    step (where known): a checkpoint has one loss, whatever its other columns say."""
    for axis, known in (("tokens", out["tokens"].notna()), ("step", out["step"] >= 0)):
        key = ["run", axis, "loss_name"]
        rows = out.loc[known, key]
        dup = rows.duplicated(keep="first")
        if not dup.any():
            continue
        second = rows.index[dup]
        first = rows.index[rows.duplicated(keep=False) & ~dup]
        i = second[0]
        repeated = first[(rows.loc[first, key] == rows.loc[i, key]).all(axis=1).to_numpy()][0]
        raise DuplicateRowsError(
            f"{len(second)} duplicated (run, {axis}) row(s){_where(name)} ({_rows(second, first_row)}; row "
            f"{i + first_row} repeats row {repeated + first_row} at the same {axis}: run {out.loc[i, 'run']!r}, "
            f"{axis} {out.loc[i, axis]:g}, loss_name {out.loc[i, 'loss_name']!r}, losses "
            f"{out.loc[repeated, 'loss']:g} and {out.loc[i, 'loss']:g}); each run has one loss per checkpoint and "
            "loss_name"
        )


def check_branch_families(out: pd.DataFrame, name: str | None = None, first_row: int = 0) -> None:
    """A branch (``parent_run``) is of its parent's family: it continues that run and shares its run offset,
    whose size is its family's seed spread (a tree across families has no one prior for it)."""
    family_of = out.groupby("run")["family"].first()
    branches = out[out["parent_run"].notna()].drop_duplicates("run")
    parent_family = branches["parent_run"].astype(object).map(family_of)
    crossed = branches[parent_family.notna() & (parent_family != branches["family"])]
    if len(crossed):
        run, parent = crossed["run"].iloc[0], crossed["parent_run"].iloc[0]
        raise DataValidationError(
            f"column 'family'{_where(name)}: run {run!r} (family {crossed['family'].iloc[0]!r}) branches from "
            f"{parent!r} of family {family_of[parent]!r} ({len(crossed)} such branch(es); "
            f"{_rows(crossed.index[:1], first_row)}); a branch continues its parent's run and shares its offset: "
            "give it the parent's family"
        )


def validate(df: pd.DataFrame, *, name: str | None = None, first_row: int = 0,
             duplicates: bool = True) -> pd.DataFrame:
    """Check ``df`` against the schema and return a clean copy with canonical dtypes.

    Parameters
    ----------
    df : pandas.DataFrame
        A table in the long format described in this module.
    name : str, optional
        What to call the table in error messages (a file path, a source name).
    first_row : int, default 0
        Number that error messages give the first row (2 for CSV line numbers under a header).
    duplicates : bool, default True
        Refuse two rows of one run and loss_name at the same tokens (where known) or the same step (where
        known); False leaves them to the caller (``bl.fit``, whose ``duplicates`` option keeps a restart's
        last value).

    Returns
    -------
    pandas.DataFrame
        The same rows, in the same order, with a fresh ``RangeIndex``; required
        columns first, then optional ones, then anything else unchanged.

    Raises
    ------
    DataValidationError
        On a missing column, a non-numeric, NaN, or non-positive value, a value outside what the
        column's units allow (:data:`PLAUSIBLE`: a loss above 20 nats, tokens below 1,000, params below
        10,000, each with its likely cause), a bool column holding other text than true/false/1/0/yes/no, a
        run whose family, model, seed or params change between rows, a non-positive batch_size or epochs,
        run_tokens below the run's tokens, flops outside 0.1-10 x 6ND, a duplicated checkpoint
        (:class:`DuplicateRowsError`), or a branch (``parent_run``) of another family than its parent, of
        itself, or in a cycle. Nothing is dropped silently.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"expected a pandas DataFrame{_where(name)}, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}{_where(name)}; a bayeslaw table needs "
            f"{list(REQUIRED_COLUMNS)} (see bayeslaw.data.validation)"
        )
    if len(df) == 0:
        raise DataValidationError(f"the table{_where(name)} has no rows")
    out = df.reset_index(drop=True).copy()

    for column, kind in {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}.items():
        if column not in out.columns:
            continue
        values = out[column]
        missing_rows = out.index[values.isna()]
        if column in _KNOWN_FROM_STEP and "step" in out.columns:
            # a source that logs steps but not tokens per step (laws of steps and learning-rate sums need none)
            missing_rows = missing_rows[pd.to_numeric(out.loc[missing_rows, "step"], errors="coerce").fillna(-1) < 0]
        if len(missing_rows) and column in REQUIRED_COLUMNS:
            raise DataValidationError(
                f"column '{column}'{_where(name)}: {len(missing_rows)} missing (NaN) value(s) "
                f"({_rows(missing_rows, first_row)}); fill or remove those rows"
            )
        if kind == "str":
            out[column] = values.astype(str) if column in REQUIRED_COLUMNS else values.astype("string")
        elif kind in ("float", "int"):
            numeric = pd.to_numeric(values, errors="coerce")
            bad = out.index[numeric.isna() & values.notna()]
            if len(bad):
                examples = ", ".join(repr(v) for v in values.loc[bad[:_SHOW]])
                raise DataValidationError(
                    f"column '{column}'{_where(name)}: {len(bad)} non-numeric value(s) "
                    f"({_rows(bad, first_row)}: {examples}); need numbers"
                )
            finite = np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan)) | numeric.isna().to_numpy()
            inf_rows = out.index[~finite]
            if len(inf_rows):
                raise DataValidationError(
                    f"column '{column}'{_where(name)}: {len(inf_rows)} infinite value(s) ({_rows(inf_rows, first_row)})"
                )
            if kind == "int" and column in REQUIRED_COLUMNS:
                fractional = out.index[numeric != np.round(numeric)]
                if len(fractional):
                    raise DataValidationError(
                        f"column '{column}'{_where(name)}: {len(fractional)} non-integer value(s) "
                        f"({_rows(fractional, first_row)}); need whole numbers"
                    )
                out[column] = numeric.astype("int64")
            else:
                out[column] = numeric.astype("float64")
        elif kind == "bool":
            out[column] = _as_bool(values, column, name, first_row)

    for column in _POSITIVE + _POSITIVE_OPTIONAL:
        if column not in out.columns:
            continue
        bad = out.index[out[column] <= 0]
        if len(bad):
            raise DataValidationError(
                f"column '{column}'{_where(name)}: {len(bad)} non-positive value(s) "
                f"({_rows(bad, first_row)}); need {column} > 0"
            )

    if "schedule" in out.columns and out["schedule"].notna().any():
        from bayeslaw.data.schedules import run_schedules  # schedules reads the validated table's columns

        given = out[out["run"].isin(out.loc[out["schedule"].notna(), "run"])]
        try:
            run_schedules(given, where=f"column 'schedule'{_where(name)}", first_row=first_row)
        except ValueError as error:
            raise DataValidationError(str(error)) from None

    if "parent_run" in out.columns and out["parent_run"].notna().any():
        _check_parent_cycles(out, name, first_row)
        check_branch_families(out, name, first_row)

    for column, bound, side, cause in PLAUSIBLE:
        if column not in out.columns:  # lr: optional
            continue
        values = out[column].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):  # NaN tokens where the step is known
            bad = out.index[values > bound if side == "above" else values < bound]
        if len(bad):
            examples = ", ".join(f"{v:g}" for v in out.loc[bad[:3], column])
            raise DataValidationError(
                f"column '{column}'{_where(name)}: {len(bad)} value(s) {side} {bound:g} ({_rows(bad, first_row)}: "
                f"{examples}); {cause}"
            )

    _check_per_run(out, name, first_row)  # after PLAUSIBLE: a value in the wrong units is named as such first
    if duplicates:
        _check_duplicates(out, name, first_row)

    ordered = list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in out.columns]
    out = out[ordered + [c for c in out.columns if c not in ordered]]
    out.attrs = dict(df.attrs)  # loaders report their filtering here; keep it
    return out
