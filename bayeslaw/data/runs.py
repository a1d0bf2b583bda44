"""Runs of one configuration: which runs of a table are replicates (seeds, reruns) of another.

The rule, used wherever bayeslaw asks it (the models' sigma_seed, the seed-variance plot, the benchmarks):
two runs are of one configuration when they share the family, the model size N (``params``, exactly) and
the token budget to 1% in log tokens, round(ln(budget) / 0.01). A run's budget is its ``run_tokens``
where the table has that column (a table may hold only part of a run), else its last checkpoint's tokens.
A run is *replicated* when another run shares its configuration: only such runs measure the run-to-run
(seed) spread of loss, since runs that differ in N or D also differ by the law.

Branches: a run resumed from another run's checkpoint (a cooldown branch of a WSD run) names it in
``parent_run``; its rows before the branch point repeat the parent's and are marked ``copied``. Runs of
one tree (a root and every branch below it) share their start, so they share one run offset (the
models' u_r), and a fit counts a copied checkpoint once (:func:`drop_copies`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BUDGET_LOG_TOLERANCE", "RISE_LIMIT", "drop_copies", "replicated_runs", "rising_runs", "run_configurations",
           "branch_roots", "one_metric_per_run", "single_size_families"]

BUDGET_LOG_TOLERANCE = 0.01  # token budgets within 1% (in ln tokens) are one budget
# a run whose last checkpoint's loss is this much above its first has diverged (a spike it never came back
# from: wsd_horizons' 124M cosine run at peak rate 5e-3 ends 55% up). Below it a rise is training the
# law does not describe but a run can show: the smallest models' late degradation (PolyPythias' 14M seed
# 4 ends 7.7% above its loss at 10B tokens, its other seeds -5% to +1%), kept and left to the run's offset
RISE_LIMIT = 0.25


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


def branch_roots(df: pd.DataFrame) -> pd.Series:
    """Per run (index ``run``, sorted): the root of its branch tree, following ``parent_run`` up (the run
    itself where it has no parent; a parent absent from the table still names the tree). A cycle raises."""
    runs = sorted(df["run"].unique())
    if "parent_run" not in df.columns:
        return pd.Series(runs, index=pd.Index(runs, name="run"), name="root")
    parents = df.groupby("run")["parent_run"].first()
    parent = {run: p for run, p in parents.items() if isinstance(p, str) and p and p != run}
    root = {}
    for run in runs:
        seen, top = [run], run
        while top in parent:
            top = parent[top]
            if top in seen:
                raise ValueError(f"parent_run: runs {seen} descend from each other in a cycle")
            seen.append(top)
        root[run] = top
    return pd.Series(root, name="root").rename_axis("run").loc[runs]


def one_metric_per_run(df: pd.DataFrame, *, where: str = "the table") -> None:
    """Refuse a run that logs two loss metrics (``loss_name``: a training log's train/loss beside its eval/loss),
    naming them: a law fits one, and two curves of one run at the same tokens look like a restart logged twice.
    Families of different sources may each have their own metric."""
    if "loss_name" not in df.columns:
        return
    counts = df.groupby("run")["loss_name"].nunique()
    mixed = counts.index[counts > 1]
    if len(mixed):
        names = sorted(df.loc[df["run"].isin(mixed), "loss_name"].astype(str).unique())
        raise ValueError(f"{where}: run {mixed[0]!r} logs {len(names)} loss metrics {names} (column 'loss_name'; "
                         f"{len(mixed)} run(s) so): a law fits one; keep one, e.g. df[df['loss_name'] == "
                         f"{names[0]!r}] (CLI: --loss-name {names[0]})")


def drop_copies(df: pd.DataFrame) -> pd.DataFrame:
    """The table without ``copied`` rows whose ``parent_run`` is in it: those checkpoints are the parent's
    and counted there (a branch whose parent is absent keeps its copies: they are the only record)."""
    if "copied" not in df.columns or "parent_run" not in df.columns:
        return df
    present = df["parent_run"].isin(set(df["run"]))
    return df.loc[~(df["copied"].fillna(False).astype(bool) & present)]


def single_size_families(df: pd.DataFrame) -> list[str]:
    """The families (sorted) whose rows hold a single model size (``params``): none of them tells a size
    exponent of its own, so a law in N fitted on such a family alone cannot forecast another size."""
    sizes = df.groupby("family")["params"].nunique()
    return sorted(sizes.index[sizes < 2])


def rising_runs(df: pd.DataFrame, by: str = "tokens", limit: float = RISE_LIMIT) -> pd.DataFrame:
    """The runs whose loss at their last checkpoint (in ``by``: tokens or step) is more than ``limit``
    above their first: one row per such run (index ``run``) with ``first``/``last`` (their ``by``),
    ``first_loss``, ``last_loss``, ``rise`` (the relative rise) and the two rows' labels ``rows``."""
    ordered = df.sort_values(["run", by], kind="stable")
    ends = ordered.groupby("run", sort=True)
    first, last = ends.head(1).set_index("run"), ends.tail(1).set_index("run")
    rise = last["loss"] / first["loss"] - 1
    out = pd.DataFrame({"first": first[by], "last": last[by], "first_loss": first["loss"], "last_loss": last["loss"],
                        "rise": rise, "rows": [[int(a), int(b)] for a, b in zip(ends.head(1).index, ends.tail(1).index)]},
                       index=first.index)
    return out[out["rise"] > limit]
