"""Row selection shared by fits and backtests: early-checkpoint cut, thinning, the Hitchhiker split."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from bayeslaw.data.files import is_number, is_whole
from bayeslaw.data.importers import FIT_COLUMNS, as_table

__all__ = ["Split", "cut_early", "hitchhiker_split", "thin_checkpoints"]

DEFAULT_MIN_TOKENS = 1e10  # the Hitchhiker's Guide drops the first 10B tokens of every run
TEST_FROM = 0.7  # and scores the target's checkpoints from 70% of its run on (its last 30%)


def _run_max_tokens(df: pd.DataFrame) -> pd.Series:
    return df.groupby("run", sort=False)["tokens"].transform("max")


def _check_min_tokens(min_tokens, where: str) -> None:
    """min_tokens is a finite number or None: NaN compares False and would drop every row unannounced."""
    if min_tokens is None:
        return
    if not is_number(min_tokens) or not np.isfinite(min_tokens):
        raise ValueError(f"{where}: min_tokens={min_tokens!r} must be a finite number of tokens or None (no cut)")


def cut_early(
    df: pd.DataFrame, *, min_tokens: float | None = DEFAULT_MIN_TOKENS, min_fraction: float | None = None
) -> pd.DataFrame:
    """Drop early checkpoints: keep rows with tokens > ``min_tokens`` and tokens >= ``min_fraction`` x the run's last.

    Either bound may be ``None`` (no cut on it). Final-loss tables (one row per run) lose
    whole runs under ``min_tokens``: that is the protocol, and the caller sees it in the row count.
    """
    return df.loc[_early_mask(df, min_tokens=min_tokens, min_fraction=min_fraction)]


def _early_mask(df: pd.DataFrame, *, min_tokens: float | None, min_fraction: float | None) -> np.ndarray:
    """The rows :func:`cut_early` keeps, by position (a table's labels may repeat: concatenated frames)."""
    _check_min_tokens(min_tokens, "cut_early")
    keep = np.ones(len(df), dtype=bool)
    if min_tokens is not None or min_fraction is not None:
        unknown = np.flatnonzero(df["tokens"].isna().to_numpy())
        if unknown.size:
            runs = sorted(set(df["run"].iloc[unknown]))[:3]
            raise ValueError(f"cut_early: column 'tokens' is missing at rows {df.index[unknown[:5]].tolist()} "
                             f"({unknown.size} in all; runs {runs}); a cut in tokens needs them (min_tokens=None, "
                             f"min_fraction=None to keep every row)")
    if min_tokens is not None:
        keep &= df["tokens"].to_numpy() > min_tokens
    if min_fraction is not None:
        if not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"min_fraction={min_fraction} must lie in [0, 1]")
        keep &= df["tokens"].to_numpy() >= min_fraction * _run_max_tokens(df).to_numpy()
    return keep


def thin_checkpoints(df: pd.DataFrame, *, per_run: int = 20, by: str = "tokens") -> pd.DataFrame:
    """Keep about ``per_run`` checkpoints of each run, always the last one: evenly spaced in log tokens
    (``by="tokens"``), or in steps (``by="step"``, for laws that read the learning-rate schedule, whose
    changes late in a run matter as much as the early fall).

    Long trajectories (thousands of checkpoints) make NUTS slow while adding little
    information: neighbouring checkpoints are nearly the same point of the law.
    """
    if per_run < 1:
        raise ValueError(f"per_run={per_run} must be >= 1")
    if by not in ("tokens", "step"):
        raise ValueError(f"thin_checkpoints: by={by!r}; use 'tokens' or 'step'")

    if by not in df.columns:
        raise ValueError(f"thin_checkpoints: by={by!r} but the table has no {by!r} column")

    def pick(group: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
        """The positions (in ``df``) of the run's rows to keep."""
        if len(group) <= per_run:
            return positions
        # a missing position has no place on the axis: argmax/argmin over NaN would keep the run's first row
        unknown = group[by].isna().to_numpy() | (by == "step" and (group["step"].to_numpy(dtype=float) < 0))
        if unknown.any():
            hint = "; thin by='step' (a table that logs steps, not tokens)" if by == "tokens" else ""
            raise ValueError(f"thin_checkpoints: column {by!r} is missing at {int(unknown.sum())} row(s) of run "
                             f"{group['run'].iloc[0]!r} (rows {group.index[unknown][:5].tolist()}){hint}")
        axis = np.log(group["tokens"].to_numpy()) if by == "tokens" else group["step"].to_numpy(dtype=float)
        wanted = np.linspace(axis.min(), axis.max(), per_run)
        nearest = np.abs(axis[None, :] - wanted[:, None]).argmin(axis=1)
        return positions[np.unique(np.append(nearest, np.argmax(axis)))]

    if df.empty:
        return df
    # by position, not label: a table's labels may repeat (frames concatenated), and a label shared by two runs
    # would keep the other run's rows too; in the table's order
    keep = np.concatenate([pick(df.iloc[positions], positions)
                           for positions in df.groupby("run", sort=False).indices.values()])
    return df.iloc[np.sort(keep)]


class Split(NamedTuple):
    """Training rows, test rows (the target's late checkpoints), and the models chosen per family."""

    train: pd.DataFrame
    test: pd.DataFrame
    models: dict[str, list[str]]


def hitchhiker_split(
    df: pd.DataFrame,
    *,
    k: int | None = None,
    train_fraction: float = 1.0,
    target_fraction: float = 0.0,
    test_from: float = TEST_FROM,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    min_fraction: float | None = None,
) -> Split:
    """The split of Choshen et al. 2025, per family.

    - target: the family's largest model (all of its runs; every model tied at the largest size);
    - test: the target's checkpoints with tokens >= ``test_from`` x its run's last;
    - train: checkpoints of the ``k`` smallest other models (all of them if ``k`` is None) with
      tokens after the early cut (``min_tokens``, ``min_fraction``) and tokens <= ``train_fraction``
      x the run's last (``<=``: the paper's code used ``<`` and lost the final checkpoint);
    - plus the target's own checkpoints with tokens <= ``target_fraction`` x its last
      (and before the test window), after the same early cut: a partially trained target.

    A family without test rows, or a split without train rows in any family, raises; a family whose train
    alone comes out empty is returned so (its caller skips or refuses it).

    Train and test rows carry ``run_tokens``, each run's last tokens in ``df``, so that a partly
    seen run keeps its fractions of the whole run.
    """
    df = as_table(df, name="hitchhiker_split's table", needs=(*FIT_COLUMNS, "model", "tokens"))
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction={train_fraction} must lie in (0, 1]")
    if not is_number(test_from) or not 0.0 < test_from <= 1.0:
        raise ValueError(f"test_from={test_from!r} must lie in (0, 1] (the target's tested fraction of its run)")
    if k is not None and (not is_whole(k) or k < 1):
        raise ValueError(f"k={k!r} must be a positive whole number of smaller models (or None: all of them)")
    _check_min_tokens(min_tokens, "hitchhiker_split")
    if not 0.0 <= target_fraction < test_from:
        raise ValueError(f"target_fraction={target_fraction} must lie in [0, test_from={test_from})")
    train_parts, test_parts, chosen = [], [], {}
    if "run_tokens" not in df.columns:
        df = df.assign(run_tokens=_run_max_tokens(df))
    for family, rows in df.groupby("family", sort=True):
        sizes = rows.groupby("model")["params"].max().sort_values(kind="stable")
        if len(sizes) < 2:
            raise ValueError(
                f"family {family!r} has {len(sizes)} model(s) ({list(sizes.index)}); the split needs a "
                f"target and at least one smaller model"
            )
        # every model at the largest size is the target: a tie trained on would be the target's size seen
        targets = list(sizes.index[sizes == sizes.iloc[-1]])
        smaller = list(sizes.index[sizes < sizes.iloc[-1]])
        target = targets[0] if len(targets) == 1 else targets
        if not smaller:
            raise ValueError(f"family {family!r}: all its models {targets} share the largest size "
                             f"({sizes.iloc[-1]:g} params); the split needs at least one smaller model")
        if k is not None:
            if not 1 <= k <= len(smaller):
                raise ValueError(f"family {family!r}: k={k} but only {len(smaller)} model(s) below the target {target!r}")
            smaller = smaller[:k]
        chosen[family] = smaller
        # masks by position throughout: a table's labels may repeat
        fraction = rows["tokens"].to_numpy(dtype=float) / rows["run_tokens"].to_numpy(dtype=float)
        is_target = rows["model"].isin(targets).to_numpy()
        test = rows.loc[is_target & (fraction >= test_from)]
        early_ok = _early_mask(rows, min_tokens=min_tokens, min_fraction=min_fraction)
        in_train = rows["model"].isin(smaller).to_numpy() & (fraction <= train_fraction)
        if target_fraction > 0:
            in_train |= is_target & (fraction <= target_fraction)
        train = rows.loc[in_train & early_ok]
        if test.empty:  # nothing to score: say which family and why, not an empty score later
            raise ValueError(f"hitchhiker_split: family {family!r}: no test rows remain (test_from={test_from!r}; "
                             f"target {targets})")
        test_parts.append(test)
        train_parts.append(train)
    # one family's empty train is its caller's to handle (a grid leaves the cell unscored, a backtest refuses
    # naming the family); none at all is a cut that removed everything
    if all(part.empty for part in train_parts):
        raise ValueError(f"hitchhiker_split: no train rows remain in any family ({sorted(chosen)}) after "
                         f"min_tokens={min_tokens!r}, min_fraction={min_fraction!r}, train_fraction={train_fraction!r}")
    return Split(pd.concat(train_parts), pd.concat(test_parts), chosen)
