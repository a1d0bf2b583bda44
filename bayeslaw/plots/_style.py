"""Drawing helpers shared by the plots: panel grids, interval rows and half-violins."""

from __future__ import annotations

import functools

import matplotlib

matplotlib.use(matplotlib.get_backend() or "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402


def closes_on_error(draw):
    """``draw`` (a public plot) with the figures it opened closed when it raises: pyplot keeps every open
    figure until closed, and a notebook shows a half-drawn one beneath the traceback."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        before = set(plt.get_fignums())
        try:
            return draw(*args, **kwargs)
        except BaseException:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            raise

    return wrapper


def named(values, name: str, where: str, what: str = "a name") -> list:
    """``values`` as a list of names: one name alone is one entry (``list("fam0")`` would be its letters), a name
    given twice once; anything else refused, naming the argument."""
    if isinstance(values, str):
        return [values]
    if isinstance(values, (list, tuple, set, pd.Index, pd.Series, np.ndarray)):
        return list(dict.fromkeys(values))
    raise TypeError(f"{where}: {name}={values!r}; give {what} or a list of them")


def panel_grid(n: int, *, ncols: int = 3, width: float = 4.2, height: float = 3.2, **kwargs):
    """A figure with exactly ``n`` panels (the grid's unused cells removed), returned as a flat list."""
    ncols = min(ncols, max(1, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def log_axis(values: list[np.ndarray]) -> bool:
    """A parameter shown on a log axis: positive, its draws spanning more than a factor 20 (A, B, Nc, ...)."""
    values = np.concatenate([np.ravel(v) for v in values])
    values = values[np.isfinite(values)]
    return bool(values.size and values.min() > 0 and np.quantile(values, 0.95) > 20 * np.quantile(values, 0.05))


def intervals(ax, draws: list[np.ndarray], *, color="C0") -> None:
    """Median (dot), 50% (thick) and 90% (thin) equal-tailed intervals, one row per entry of ``draws`` (top down)."""
    for y, values in enumerate(draws):
        q05, q25, q50, q75, q95 = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        ax.hlines(y, q05, q95, color=color, lw=1)
        ax.hlines(y, q25, q75, color=color, lw=4)
        ax.plot(q50, y, "o", color="white", mec=color, ms=5, zorder=3)


def density(ax, values: np.ndarray, y: float, *, log: bool, color="C0", height: float = 0.4) -> None:
    """A half-violin above row ``y``: the kernel density of ``values`` (of their log on a log axis), peak ``height``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    scaled = np.log(values) if log else values
    if scaled.size < 2 or np.ptp(scaled) == 0:
        return
    grid = np.linspace(*np.quantile(scaled, [0.005, 0.995]), 120)
    kde = gaussian_kde(scaled)(grid)
    ax.fill_between(np.exp(grid) if log else grid, y, y - height * kde / kde.max(), color=color, alpha=0.25, lw=0)
