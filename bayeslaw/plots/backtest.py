"""Figures of a backtest (:func:`bayeslaw.evaluation.backtest`): ARE heatmaps, target bands, calibration.

Each takes the backtest's tidy tables (``cells``, ``predictions``) and returns a matplotlib Figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayeslaw.plots._style import plt

__all__ = ["are_heatmap", "calibration_plot", "trajectory_bands"]


def are_heatmap(cells: pd.DataFrame, *, methods=None, family: str | None = None):
    """ARE over k (models below the target) and q (fraction of the target seen), one panel per method.

    The median over families of each cell (or one family's value), like the Hitchhiker's Guide's figures.
    """
    cells = cells[cells["case"] == "scaling"]
    if family is not None:
        cells = cells[cells["family"] == family]
    methods = list(methods or sorted(cells["method"].unique()))
    table = cells.groupby(["method", "k", "q"])["are"].median().unstack("q")
    scored = table.to_numpy(dtype=float)
    # a method whose every cell failed has only NaNs here: its panel is drawn empty, the scale from the others
    vmax = float(np.nanmax(scored)) if np.isfinite(scored).any() else 1.0
    fig, axes = plt.subplots(1, len(methods), figsize=(3.3 * len(methods) + 1, 3.2), squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods, strict=True):
        grid = table.loc[method] if method in table.index.get_level_values(0) else pd.DataFrame()
        image = ax.imshow(100 * grid.to_numpy(dtype=float), vmin=0, vmax=100 * vmax, cmap="viridis_r", aspect="auto",
                          origin="lower")
        for (i, j), value in np.ndenumerate(100 * grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 60 * vmax else "black")
        ax.set_xticks(range(grid.shape[1]), [f"{q:g}" for q in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(k) for k in grid.index])
        ax.set(title=method, xlabel="q: fraction of target run seen")
    axes[0, 0].set_ylabel("k: smallest models used")
    fig.colorbar(image, ax=axes[0].tolist(), label="ARE (%)" + ("" if family else ", median over families"))
    return fig


def trajectory_bands(predictions: pd.DataFrame, *, k: int | None = None, q: float = 0.0, case: str = "scaling"):
    """Each family's target: observed late checkpoints against the Bayesian 90%/50% bands and the point predictions."""
    rows = predictions[(predictions["case"] == case) & np.isclose(predictions["q"], q)]
    if k is None and not rows.empty:
        k = int(rows["k"].max())
    rows = rows[rows["k"] == k]
    families = sorted(rows["family"].unique())
    ncols = min(4, max(1, len(families)))
    nrows = int(np.ceil(len(families) / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax, family in zip(axes.ravel(), families, strict=False):
        fam = rows[rows["family"] == family].sort_values("tokens")
        observed = fam.drop_duplicates(["run", "tokens"])
        ax.plot(observed["tokens"], observed["loss"], "k.", ms=3, label="observed")
        for method, group in fam.groupby("method"):
            if "q05" in group and group["q05"].notna().any():
                line = ax.plot(group["tokens"], group["predicted"], lw=1.2, label=f"{method} median")[0]
                ax.fill_between(group["tokens"], group["q05"], group["q95"], color=line.get_color(), alpha=0.15, lw=0)
                ax.fill_between(group["tokens"], group["q25"], group["q75"], color=line.get_color(), alpha=0.25, lw=0)
            else:
                ax.plot(group["tokens"], group["predicted"], lw=1, ls="--", label=method)
        ax.set(xscale="log", title=f"{family} (k={k}, q={q:g})", xlabel="tokens", ylabel="loss")
        ax.title.set_fontsize(9)
    for ax in axes.ravel()[len(families):]:
        ax.axis("off")
    if families:
        axes.ravel()[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def calibration_plot(cells: pd.DataFrame):
    """Nominal vs observed coverage of the Bayesian 50% and 90% intervals, per method (mean over cells)."""
    bayes = cells[cells["coverage90"].notna()]
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":", label="nominal")
    for method, group in bayes.groupby("method"):
        observed = [group["coverage50"].mean(), group["coverage90"].mean()]
        ax.plot([0.5, 0.9], observed, "o-", label=f"{method} ({len(group)} cells)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="nominal coverage", ylabel="observed coverage (mean over cells)",
           title="interval calibration on held-out targets")
    ax.legend(fontsize="small")
    return fig
