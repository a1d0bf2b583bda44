"""Plots stage (matplotlib): pictures of priors, posteriors and predictions."""

from __future__ import annotations

import jax
import matplotlib

matplotlib.use(matplotlib.get_backend() or "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro.infer import Predictive  # noqa: E402

from bayeslaw.models import get_model, prepare  # noqa: E402

__all__ = ["prior_predictive"]


def prior_predictive(
    *,
    pooling: str = "hierarchical",
    sizes=(1e8, 1e9, 1e10, 1e11),
    tokens=np.geomspace(1e9, 1e13, 30),
    num_samples: int = 1000,
    seed: int = 0,
    ax=None,
):
    """Prior predictive loss curves L(N, D) for a new run at several sizes: median and 50%/90% bands.

    Checks that the priors of :mod:`bayeslaw.models` describe language-model losses (a few nats
    per token falling with N and D), not any curve. Returns the matplotlib Axes and the quantiles table.
    """
    grid = pd.DataFrame([(n, d) for n in sizes for d in tokens], columns=["params", "tokens"])
    grid["family"] = "prior"
    grid["run"] = [f"N{n:.0e}" for n in grid["params"]]
    draws = Predictive(get_model(pooling), num_samples=num_samples)(jax.random.PRNGKey(seed), prepare(grid))["obs"]
    loss = np.exp(np.asarray(draws)).reshape(num_samples, len(sizes), len(tokens))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = []
    for i, n in enumerate(sizes):
        q05, q25, q50, q75, q95 = np.quantile(loss[:, i], [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        line = ax.plot(tokens, q50, label=f"N = {n:.0e}")[0]
        ax.fill_between(tokens, q25, q75, color=line.get_color(), alpha=0.25, lw=0)
        ax.fill_between(tokens, q05, q95, color=line.get_color(), alpha=0.1, lw=0)
        rows.append(pd.DataFrame({"params": n, "tokens": tokens, "q05": q05, "q50": q50, "q95": q95}))
    ax.set(xscale="log", yscale="log", xlabel="training tokens D", ylabel="loss (nats per token)",
           title=f"prior predictive, {pooling} model (50% and 90% bands)")
    ax.legend(fontsize="small")
    return ax, pd.concat(rows, ignore_index=True)
