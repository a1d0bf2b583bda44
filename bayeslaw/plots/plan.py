"""Figures of a plan (:mod:`bayeslaw.plan`): the compute-optimal allocation frontier."""

from __future__ import annotations

import numpy as np

from bayeslaw.plan.allocation import Allocation
from bayeslaw.plots._style import closes_on_error, plt

__all__ = ["allocation_frontier"]


@closes_on_error
def allocation_frontier(allocation):
    """The compute-optimal frontier of a :class:`bayeslaw.plan.Allocation`: N* (parameters) and D* (tokens)
    against the budget C = 6 N D (FLOPs), log-log, as the posterior median with 50% and 90% bands, and the
    point estimate's allocation (N_pt, D_pt) overlaid. Returns the matplotlib Figure (two Axes)."""
    # it reads the Allocation's draws, summary and point fit: anything else failed on a missing attribute
    if not isinstance(allocation, Allocation):
        raise TypeError(f"allocation_frontier: needs an Allocation (the result of bayeslaw.plan.optimal_allocation), "
                        f"found {type(allocation).__name__}")
    draws = allocation.draws
    budgets = allocation.summary["flops"].to_numpy(dtype=float)
    order = np.argsort(budgets)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharex=True)
    panels = (("params_opt", "point_params", "parameters N*"), ("tokens_opt", "point_tokens", "training tokens D*"))
    for ax, (column, point_column, label) in zip(axes, panels, strict=True):
        per_budget = draws[column].to_numpy(dtype=float).reshape(-1, len(budgets))[:, order]  # (sample, budget)
        q05, q25, q50, q75, q95 = np.quantile(per_budget, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        if len(budgets) == 1:  # a band over one budget has no area: interval bars, as wide as a band reads
            ax.vlines(budgets, q05, q95, color="C0", alpha=0.4, lw=2, label="posterior 90%", gid="band90")
            ax.vlines(budgets, q25, q75, color="C0", alpha=0.8, lw=6, label="posterior 50%", gid="band50")
        else:
            ax.fill_between(budgets[order], q05, q95, color="C0", alpha=0.15, lw=0, label="posterior 90%", gid="band90")
            ax.fill_between(budgets[order], q25, q75, color="C0", alpha=0.3, lw=0, label="posterior 50%", gid="band50")
        ax.plot(budgets[order], q50, color="C0", marker="o", ms=3, label="posterior median")
        ax.plot(budgets[order], allocation.summary[point_column].to_numpy(dtype=float)[order], color="C3", ls="--",
                marker="x", label=f"point fit ({allocation.point.method})")
        ax.set(xscale="log", yscale="log", xlabel="compute C = 6 N D (FLOPs)", ylabel=label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize="small")
    who = allocation.family if not allocation.population else f"population ({allocation.family or 'new family'})"
    batch = f", batch {allocation.batch_size:.3g} tokens/step" if allocation.batch_size is not None else ""
    fig.suptitle(f"compute-optimal allocation, {allocation.form} law, {who}{batch}")
    fig.tight_layout()
    return fig
