"""Runs of one configuration: which runs of a table are replicates (seeds, reruns) of another.

The rule, used wherever bayeslaw asks it (the models' sigma_seed, the seed-variance plot, the benchmarks):
two runs are of one configuration when they share the family, the model size N (``params``, exactly) and
the token budget to 1% in log tokens, round(ln(budget) / 0.01). A run's budget is its ``run_tokens``
where the table has that column (a table may hold only part of a run), else its last checkpoint's tokens.
A run is *replicated* when another run shares its configuration: only such runs measure the run-to-run
(seed) spread of loss, since runs that differ in N or D also differ by the law.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BUDGET_LOG_TOLERANCE", "replicated_runs", "run_configurations"]

BUDGET_LOG_TOLERANCE = 0.01  # token budgets within 1% (in ln tokens) are one budget


def run_configurations(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (index ``run``, sorted): ``family``, ``params``, ``budget`` (tokens),
    ``configuration`` (an integer label; runs sharing it are replicates) and ``replicated`` (bool).

    Reads the columns ``run``, ``family``, ``params``, ``tokens`` and, where present, ``run_tokens``.
    """
    budget = "run_tokens" if "run_tokens" in df.columns else "tokens"
    runs = df.groupby("run").agg(family=("family", "first"), params=("params", "first"), budget=(budget, "max"))
    log_budget = np.round(np.log(runs["budget"].to_numpy(dtype=float)) / BUDGET_LOG_TOLERANCE)
    keys = [runs["family"], runs["params"], pd.Series(log_budget, index=runs.index)]
    runs["configuration"] = runs.groupby(keys).ngroup()  # -1 where a key is missing: never a replicate
    size = runs.groupby("configuration")["family"].transform("size").to_numpy()
    runs["replicated"] = (runs["configuration"].to_numpy() >= 0) & (size >= 2)
    return runs


def replicated_runs(df: pd.DataFrame) -> pd.Series:
    """Per run (index ``run``, sorted): True when another run has the same family, the same size N and the
    same token budget to 1% in log tokens (see the module's rule), i.e. the run is a seed or rerun of a
    configuration seen twice or more."""
    return run_configurations(df)["replicated"]
