"""Figures of a backtest (:func:`bayeslaw.evaluation.backtest`): ARE heatmaps, target bands, calibration.

Each takes the backtest's tidy tables (``cells``, ``predictions``) and returns a matplotlib Figure.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bayeslaw.plots._style import closes_on_error, named, plt

__all__ = ["are_heatmap", "calibration_plot", "trajectory_bands"]

CASES = ("scaling", "transfer")  # the cases of a backtest's cells (evaluation.backtest)


def _table(table, name: str, columns, where: str) -> pd.DataFrame:
    """``table`` when it is a DataFrame with ``columns``; else a one-line error saying which of the backtest's
    tables to pass (``result.cells`` / ``result.predictions``; passing the other, or the Backtest, is easy)."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{where}: {name} must be the backtest's {name} table (result.{name}), found "
                        f"{type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: the {name} table lacks column(s) {missing}; pass the backtest's result.{name}")
    return table


@closes_on_error
def are_heatmap(cells: pd.DataFrame, *, methods=None, family: str | None = None):
    """ARE over k (models below the target) and q (fraction of the target seen), one panel per method.

    The median over families of each cell (or one family's value), like the Hitchhiker's Guide's figures.
    A cell where some families have no ARE (their fit failed, or the method could not predict there) says
    how many of them the median is over (``n/m fam.``); one where none has says ``no ARE``.
    """
    where = "are_heatmap"
    cells = _table(cells, "cells", ("case", "family", "k", "q", "method", "are"), where)
    cells = cells[cells["case"] == "scaling"]
    if cells.empty:
        raise ValueError(f"{where}: the cells table has no 'scaling' case to draw")
    if family is not None:
        if family not in set(cells["family"]):
            raise ValueError(f"{where}: family {family!r} not in the cells, which have "
                             f"{sorted(cells['family'].unique())}")
        cells = cells[cells["family"] == family]
    methods = sorted(cells["method"].unique()) if methods is None else named(methods, "methods", where)
    unknown = [m for m in methods if m not in set(cells["method"])]
    if unknown or not methods:  # else an empty panel per unknown name
        raise ValueError(f"{where}: methods {unknown or methods} not in the cells, which have "
                         f"{sorted(cells['method'].unique())}")
    grouped = cells.groupby(["method", "k", "q"])["are"]
    table = grouped.median().unstack("q")
    scored, total = grouped.count().unstack("q"), grouped.size().unstack("q")
    values = table.loc[methods].to_numpy(dtype=float)
    # a method whose every cell failed has only NaNs here: its panel shows "no ARE", the scale from the others
    vmax = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    fig, axes = plt.subplots(1, len(methods), figsize=(3.3 * len(methods) + 1, 3.2), squeeze=False, sharey=True)
    # every panel on the same k rows (the axes share them): a method without cells at some k (tables of two
    # backtests joined) has empty rows there, not its rows shifted under another k's label
    ks = sorted(cells["k"].unique())
    for ax, method in zip(axes[0], methods, strict=True):
        grid, n, m = (t.loc[method].reindex(ks) for t in (table, scored, total))
        image = ax.imshow(100 * grid.to_numpy(dtype=float), vmin=0, vmax=100 * vmax, cmap="viridis_r", aspect="auto",
                          origin="lower")
        for (i, j), value in np.ndenumerate(100 * grid.to_numpy(dtype=float)):
            n_ij, m_ij = int(np.nan_to_num(n.iat[i, j])), int(np.nan_to_num(m.iat[i, j]))
            if m_ij == 0:  # no cell of this method at (k, q)
                continue
            text = "no ARE" if not np.isfinite(value) else f"{value:.1f}"
            if 0 < n_ij < m_ij:  # the median of fewer families than the others: said, not hidden
                text += f"\n{n_ij}/{m_ij} fam."
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(value) and value > 60 * vmax else "black")
        ax.set_xticks(range(grid.shape[1]), [f"{q:g}" for q in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(k) for k in grid.index])
        ax.set(title=method, xlabel="q: fraction of target run seen")
    axes[0, 0].set_ylabel("k: smallest models used")
    fig.colorbar(image, ax=axes[0].tolist(), label="ARE (%)" + ("" if family else ", median over families"))
    return fig


@closes_on_error
def trajectory_bands(predictions: pd.DataFrame, *, k: int | None = None, q: float = 0.0, case: str = "scaling"):
    """Each family's target: observed late checkpoints against the Bayesian 90%/50% bands and the point predictions.

    A target of several runs (seeds of the largest model) is drawn run by run, each method in one colour.
    ``k`` (default: the largest of the case at ``q``), ``q`` and ``case`` choose the cells; where the
    predictions have none there (their cells failed, or were not run) the figure says so, with a warning.
    """
    where = "trajectory_bands"
    predictions = _table(predictions, "predictions", ("case", "family", "k", "q", "method", "run", "tokens", "loss",
                                                      "predicted"), where)
    if case not in CASES:
        raise ValueError(f"{where}: case={case!r}; use one of {list(CASES)}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"{where}: k={k!r}; need a whole number of models of at least 1, or None for the largest")
    if isinstance(q, bool) or not isinstance(q, (int, float, np.number)) or not 0 <= q < 1:
        raise ValueError(f"{where}: q={q!r}; need the fraction of the target seen, in [0, 1)")
    of_case = predictions[predictions["case"] == case]
    rows = of_case[np.isclose(of_case["q"].to_numpy(dtype=float), q)]
    if k is None and not rows.empty:
        k = int(rows["k"].max())
    rows = rows[rows["k"] == k]
    families = sorted(rows["family"].unique())
    ncols = min(4, max(1, len(families)))
    nrows = int(np.ceil(len(families) / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    if not families:  # every cell there failed, or none was run: an empty figure that says so
        have = of_case[["k", "q"]].drop_duplicates().sort_values(["k", "q"])
        note = (f"no predictions at case={case}, k={k}, q={q:g}; the {case} predictions have (k, q) "
                f"{list(have.itertuples(index=False, name=None))[:8]}")
        warnings.warn(f"{where}: {note}", UserWarning, stacklevel=3)
        axes[0, 0].text(0.5, 0.5, note.replace("; ", "\n"), ha="center", va="center", fontsize=7, wrap=True,
                        transform=axes[0, 0].transAxes)
    for ax, family in zip(axes.ravel(), families, strict=False):
        fam = rows[rows["family"] == family].sort_values("tokens")
        observed = fam.drop_duplicates(["run", "tokens"])
        ax.plot(observed["tokens"], observed["loss"], "k.", ms=3, label="observed")
        for i, (method, group) in enumerate(fam.groupby("method")):
            color = f"C{i}"
            # one line per run: the runs of a target share their checkpoints, and one line through all of
            # them would zigzag between the runs' predictions
            for j, (_, run) in enumerate(group.groupby("run", sort=True)):
                if "q05" in run and run["q05"].notna().any():
                    ax.plot(run["tokens"], run["predicted"], lw=1.2, color=color,
                            label=f"{method} median" if j == 0 else None)
                    ax.fill_between(run["tokens"], run["q05"], run["q95"], color=color, alpha=0.15, lw=0)
                    ax.fill_between(run["tokens"], run["q25"], run["q75"], color=color, alpha=0.25, lw=0)
                else:
                    ax.plot(run["tokens"], run["predicted"], lw=1, ls="--", color=color,
                            label=method if j == 0 else None)
        ax.set(xscale="log", title=f"{family} (k={k}, q={q:g})", xlabel="tokens", ylabel="loss")
        ax.title.set_fontsize(9)
    for ax in axes.ravel()[max(1, len(families)):]:
        ax.axis("off")
    if families:
        axes.ravel()[0].legend(fontsize=6)
    else:
        axes[0, 0].axis("off")
    fig.tight_layout()
    return fig


@closes_on_error
def calibration_plot(cells: pd.DataFrame):
    """Nominal vs observed coverage of the Bayesian 50% and 90% intervals, per method (mean over cells).

    Without a Bayesian cell that has a coverage (every one failed, or none ran) the figure says so."""
    cells = _table(cells, "cells", ("method", "coverage50", "coverage90"), "calibration_plot")
    bayes = cells[cells["coverage90"].notna()]
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":", label="nominal")
    for method, group in bayes.groupby("method"):
        observed = [group["coverage50"].mean(), group["coverage90"].mean()]
        ax.plot([0.5, 0.9], observed, "o-", label=f"{method} ({len(group)} cells)")
    if bayes.empty:
        ax.text(0.5, 0.3, "no Bayesian cell with a coverage\n(every one failed, or none was run)", ha="center",
                fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="nominal coverage", ylabel="observed coverage (mean over cells)",
           title="interval calibration on held-out targets")
    ax.legend(fontsize="small")
    return fig
