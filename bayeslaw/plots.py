"""Plots stage (matplotlib): pictures of priors, posteriors and predictions."""

from __future__ import annotations

import io
import os
from pathlib import Path

import jax
import matplotlib

matplotlib.use(matplotlib.get_backend() or "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro.infer import Predictive  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

from bayeslaw.data.files import write_atomic  # noqa: E402
from bayeslaw.inference.point import fit_point  # noqa: E402
from bayeslaw.models import get_model, prepare, seed_sd  # noqa: E402

__all__ = [
    "allocation_frontier", "are_heatmap", "backtest_report", "calibration_plot", "fit_report", "forest", "form_curves",
    "point_vs_posterior", "predictive_curves", "prior_predictive", "rank", "seed_variance", "trace",
    "trajectory_bands",
]


def prior_predictive(
    *,
    pooling: str = "hierarchical",
    sizes=(1e8, 1e9, 1e10, 1e11),
    tokens=np.geomspace(1e9, 1e13, 30),
    num_samples: int = 1000,
    seed: int = 0,
    ax=None,
):
    """Prior predictive final losses L(N, D) of new runs at several sizes: median and 50%/90% bands.

    Checks that the priors of :mod:`bayeslaw.models` describe language-model losses (a few nats
    per token falling with N and D), not any curve. Returns the matplotlib Axes and the quantiles table.
    """
    grid = pd.DataFrame([(n, d) for n in sizes for d in tokens], columns=["params", "tokens"])
    grid["family"] = "prior"
    grid["run"] = [f"N{n:.0e}-D{d:.0e}" for n, d in zip(grid["params"], grid["tokens"])]  # each a run's final loss
    data = prepare(grid)
    draws = Predictive(get_model(pooling), num_samples=num_samples)(jax.random.PRNGKey(seed), data)["obs"]
    loss = np.exp(data.per_row(draws)).reshape(num_samples, len(sizes), len(tokens))
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


# --- model choice -------------------------------------------------------------------------------

def form_curves(comparison, *, families=None, max_runs: int = 6, seed: int = 0):
    """Each form's fitted law (posterior median, 90% band) against the data, one panel per family.

    ``comparison``: a :class:`bayeslaw.evaluation.FormComparison`. Per family, up to ``max_runs``
    runs (spread over sizes) are drawn: observed loss against tokens, and each form's law at the
    run's own checkpoints (its size, and its batch size for su2024). The legend gives each form's
    LOO elpd on that family. Returns the figure.
    """
    rows = comparison.rows
    families = sorted(rows["family"].unique()) if families is None else list(families)
    fig, axes = _panel_grid(len(families))
    elpd = comparison.by_family.set_index("family")
    styles = ["-", "--", ":", "-."]
    for ax, family in zip(axes, families, strict=True):
        fam = rows[rows["family"] == family]
        runs = _spread_runs(fam, max_runs)
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
        for color, run in zip(colors, runs, strict=True):
            points = fam[fam["run"] == run].sort_values("tokens")
            ax.plot(points["tokens"], points["loss"], "o", ms=2.5, color=color)
            for style, (name, fitted) in zip(styles * 4, comparison.fits.items(), strict=False):
                targets = points.drop(columns=["run", "loss"])  # the law at the run's checkpoints
                summary = fitted.predict(targets, kind="law", seed=seed).summary
                label = f"{name} (elpd {elpd.loc[family, name]:.0f})" if run == runs[0] else None
                ax.plot(points["tokens"], summary["q50"], style, lw=1, color=color, label=label)
                ax.fill_between(points["tokens"], summary["q5"], summary["q95"], color=color, alpha=0.08, lw=0)
        ax.set(xscale="log", yscale="log", xlabel="tokens", ylabel="loss (nats per token)",
               title=f"{family}: best {elpd.loc[family, 'best']}")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


# --- backtest report ------------------------------------------------------------------------------

def are_heatmap(cells: pd.DataFrame, *, methods=None, family: str | None = None):
    """ARE over k (models below the target) and q (fraction of the target seen), one panel per method.

    The median over families of each cell (or one family's value), like the Hitchhiker's Guide's figures.
    """
    cells = cells[cells["case"] == "scaling"]
    if family is not None:
        cells = cells[cells["family"] == family]
    methods = list(methods or sorted(cells["method"].unique()))
    table = cells.groupby(["method", "k", "q"])["are"].median().unstack("q")
    vmax = float(np.nanmax(table.to_numpy())) if table.size else 1.0
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


# --- a fitted posterior: everyday plots and a report ----------------------------------------------

_FIT_COLUMNS = ("family", "run", "params", "tokens", "loss")


def _rows_of(fit, data, *, where: str) -> pd.DataFrame:
    """``data`` checked for the columns a plot reads (the law's inputs included), else the fit's own rows."""
    if data is None:
        return fit.training_rows()
    missing = [c for c in _FIT_COLUMNS if c not in data.columns]
    if missing:
        raise ValueError(f"{where}: the table lacks column(s) {missing}; it needs {list(_FIT_COLUMNS)} "
                         f"(the bayeslaw schema), or pass data=None to use the fit's own rows")
    fit.spec.law.columns(data, where=where)  # raises naming the column and rows the law cannot read
    return data.reset_index(drop=True)


def _families_of(fit, rows: pd.DataFrame, families, *, where: str) -> list[str]:
    """The families to draw: by default the fit's families that the rows have; asked for by name, any family
    of the rows (one the fit has not seen gets the population's prediction)."""
    if families is None:
        return [f for f in fit.families if f in set(rows["family"])]
    families = [families] if isinstance(families, str) else list(families)
    unknown = [f for f in families if f not in set(rows["family"])]
    if unknown:
        raise ValueError(f"{where}: famil(y/ies) {unknown} not in the data, which has "
                         f"{sorted(rows['family'].unique())}; pass data= with their rows")
    return families


def _panel_grid(n: int, *, ncols: int = 3, width: float = 4.2, height: float = 3.2, **kwargs):
    """A figure with exactly ``n`` panels (the grid's unused cells removed), returned as a flat list."""
    ncols = min(ncols, max(1, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _spread_runs(rows: pd.DataFrame, max_runs: int) -> list[str]:
    """Up to ``max_runs`` runs of a family, spread evenly over its sizes (sorted by N, then name)."""
    runs = rows.groupby("run")["params"].first().reset_index().sort_values(["params", "run"])["run"].tolist()
    keep = np.unique(np.linspace(0, len(runs) - 1, min(max_runs, len(runs))).round().astype(int))
    return [runs[i] for i in keep]


def predictive_curves(fit, data: pd.DataFrame | None = None, *, families=None, max_runs: int = 6,
                      kind: str = "new_run", seed: int = 0):
    """Observed loss against tokens per run, with the posterior predictive median and 50%/90% bands.

    One log-log panel per family; up to ``max_runs`` runs spread over its sizes. The bands are
    ``fit.predict(kind=kind)`` at each run's own checkpoints (its size N, tokens D and the law's other
    inputs, e.g. su2024's batch size): ``"new_run"`` (default) is what a run shows (a fitted run keeps its
    fitted seed offset), ``"law"`` the law's loss alone. ``data``: a table in the bayeslaw schema (default:
    the rows the fit saw, after its early cut and thinning); ``families`` (default: the fitted ones in
    ``data``) may name a family of ``data`` the fit has not seen. Loss in nats per token. Returns the figure;
    its median lines and bands carry gids ``median:<run>``, ``band50:<run>``, ``band90:<run>``.
    """
    if kind not in ("law", "new_run"):
        raise ValueError(f"predictive_curves: kind={kind!r}; use 'law' or 'new_run'")
    if max_runs < 1:
        raise ValueError(f"predictive_curves: max_runs={max_runs}; need at least 1 run per panel")
    rows = _rows_of(fit, data, where="predictive_curves: data")
    families = _families_of(fit, rows, families, where="predictive_curves")
    fig, axes = _panel_grid(len(families))
    for ax, family in zip(axes, families, strict=True):
        fam = rows[rows["family"] == family]
        runs = _spread_runs(fam, max_runs)
        targets = fam[fam["run"].isin(runs)].sort_values(["run", "tokens"])
        summary = fit.predict(targets.drop(columns="loss"), kind=kind, seed=seed).summary
        summary["loss"] = targets["loss"].to_numpy()
        for color, run in zip(plt.cm.viridis(np.linspace(0, 0.9, len(runs))), runs, strict=True):
            curve = summary[summary["run"] == run]
            n = float(curve["params"].iloc[0])
            ax.fill_between(curve["tokens"], curve["q5"], curve["q95"], color=color, alpha=0.12, lw=0,
                            gid=f"band90:{run}")
            ax.fill_between(curve["tokens"], curve["q25"], curve["q75"], color=color, alpha=0.3, lw=0,
                            gid=f"band50:{run}")
            ax.plot(curve["tokens"], curve["q50"], "-", color=color, lw=1.2, gid=f"median:{run}",
                    label=f"{run} (N = {n:.3g})")
            ax.plot(curve["tokens"], curve["loss"], "o", ms=3, color=color, mec="k", mew=0.3)
        title = family if family in fit.families else f"{family} (not fitted: the population's prediction)"
        ax.set(xscale="log", yscale="log", xlabel="tokens D", ylabel="loss (nats per token)", title=title)
        ax.legend(fontsize=6, title="dots observed; median, 50%/90% bands", title_fontsize=6)
    fig.suptitle(f"posterior predictive ({kind}) of the {fit.form} fit, {fit.pooling} pooling", fontsize=10)
    fig.tight_layout()
    return fig


def _natural_draws(fit, theta: np.ndarray) -> dict[str, np.ndarray]:
    """The law's parameters as usually reported (chinchilla: E, A, B, alpha, beta) from sampled-coordinate
    draws (S, K)."""
    law_theta = {k: np.asarray(v) for k, v in fit.spec.to_law(np.asarray(theta)).items()}
    return {k: np.asarray(v) for k, v in fit.spec.law.natural(law_theta).items()}


def _log_axis(values: list[np.ndarray]) -> bool:
    """A parameter shown on a log axis: positive, its draws spanning more than a factor 20 (A, B, Nc, ...)."""
    values = np.concatenate([np.ravel(v) for v in values])
    values = values[np.isfinite(values)]
    return bool(values.size and values.min() > 0 and np.quantile(values, 0.95) > 20 * np.quantile(values, 0.05))


def _intervals(ax, draws: list[np.ndarray], *, color="C0") -> None:
    """Median (dot), 50% (thick) and 90% (thin) equal-tailed intervals, one row per entry of ``draws`` (top down)."""
    for y, values in enumerate(draws):
        q05, q25, q50, q75, q95 = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        ax.hlines(y, q05, q95, color=color, lw=1)
        ax.hlines(y, q25, q75, color=color, lw=4)
        ax.plot(q50, y, "o", color="white", mec=color, ms=5, zorder=3)


def forest(fit, *, seed: int = 0):
    """Each family's law parameters (chinchilla: E, A, B, alpha, beta): median, 50% and 90% intervals.

    One panel per parameter, one row per family; a hierarchical fit adds the population mean
    (the law at mu) and a new family (theta ~ MVN(mu, Sigma), what an unseen family gets), a
    complete-pooling fit has one shared law (every family's row is the same). Parameters spanning
    more than a factor 20 (A, B, Nc, ...) on a log axis. Returns the figure.
    """
    # matplotlib, not arviz_plots.plot_forest: that draws every variable on one shared x axis, and the
    # law's parameters differ by orders of magnitude (E ~ 2, A ~ 500, alpha ~ 0.3); it also cannot
    # show the population rows, which are not posterior sites but functions of mu, tau and corr_chol.
    labels = list(fit.families)
    rows = [fit.spec.law.natural(fit.law_theta(family, seed=seed)) for family in fit.families]
    if fit.pooling == "hierarchical":
        labels += ["population mean (mu)", "new family"]
        rows += [_natural_draws(fit, fit._draws("mu")), fit.spec.law.natural(fit.law_theta(None, seed=seed))]
    names = list(rows[0])
    fig, axes = _panel_grid(len(names), ncols=len(names), width=2.6, height=0.45 * len(labels) + 1.5, sharey=True)
    for ax, name in zip(axes, names, strict=True):
        draws = [np.asarray(row[name]) for row in rows]
        _intervals(ax, draws)
        if fit.pooling == "hierarchical":
            ax.axhline(len(fit.families) - 0.5, color="0.7", lw=0.8)
        ax.set(xscale="log" if _log_axis(draws) else "linear", xlabel=name, title=name)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)
    fig.suptitle(f"{fit.form} parameters per family, {fit.pooling} pooling (median, 50% and 90% intervals)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def seed_variance(fit, data: pd.DataFrame | None = None):
    """Run-to-run sd of log loss per family: posterior sigma_seed(N) against the spread across seeds.

    Posterior: sigma_seed(N) = sigma_seed_f (N / 1e8)^-gamma_seed (flat unless the fit has
    ``seed_scaling="size"``), median and 90% band over the family's sizes, and the dashed
    sqrt(sigma_seed(N)^2 + sigma_obs^2), the scale of one checkpoint's deviation from the law.
    Data: per configuration (family, size N, token budget) with two or more runs, the sd (ddof 1)
    across runs of the log of each run's final loss, which carries both. ``data`` defaults to the
    fit's own rows. A family without replicated runs in the fit shows what its sigma_seed is without them
    (hierarchical: the population's; complete: the shared one; none: the prior).
    Returns the figure (one panel per family).
    """
    rows = _rows_of(fit, data, where="seed_variance: data")
    families = _families_of(fit, rows, None, where="seed_variance")
    posterior = fit.idata.posterior
    sigma_seed, sigma_obs = fit._draws("sigma_seed"), fit._draws("sigma_obs")
    gamma = fit._draws("gamma_seed") if "gamma_seed" in posterior else np.zeros(sigma_seed.shape[0])
    # families whose replicated runs (seeds, reruns of one configuration) pin their own sigma_seed
    const = fit.idata.constant_data
    informed = ({fit.families[i] for i in const["run_family"].values[const["run_replicated"].values.astype(bool)]}
                if "run_replicated" in const else set())
    # each run's final loss; runs of one configuration: same family, size and token budget (to 1%), as the models
    final = rows.sort_values("tokens").groupby("run").agg(family=("family", "first"), params=("params", "first"),
                                                          budget=("tokens", "last"), loss=("loss", "last"))
    final["budget"] = np.round(np.log(final["budget"].to_numpy(dtype=float)) / 0.01)
    final["log_loss"] = np.log(final["loss"].to_numpy(dtype=float))
    spread = (final.groupby(["family", "params", "budget"])["log_loss"].agg(["std", "size"]).reset_index())
    spread = spread[spread["size"] >= 2]
    fig, axes = _panel_grid(len(families), ncols=3, width=4.0, height=3.2)
    for ax, family in zip(axes, families, strict=True):
        i = fit.families.index(family)
        sizes = rows.loc[rows["family"] == family, "params"].to_numpy(dtype=float)
        grid = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 40)
        run_sd = np.asarray(seed_sd(sigma_seed[:, i, None], gamma[:, None], np.log(grid)))
        q05, q50, q95 = np.quantile(run_sd, [0.05, 0.5, 0.95], axis=0)
        label = "sigma_seed(N)" if family in informed else "sigma_seed(N), no replicated runs to pin it"
        ax.fill_between(grid, q05, q95, color="C0", alpha=0.2, lw=0)
        ax.plot(grid, q50, color="C0", label=f"{label}: median, 90%")
        with_obs = np.median(np.sqrt(run_sd**2 + sigma_obs[:, i, None] ** 2), axis=0)
        ax.plot(grid, with_obs, "--", color="C0", lw=1, label="sqrt(sigma_seed^2 + sigma_obs^2)")
        observed = spread[spread["family"] == family]
        if observed.empty:
            ax.text(0.5, 0.06, "no replicated runs in the data", transform=ax.transAxes, ha="center", fontsize=7)
        else:
            counts = sorted({int(n) for n in observed["size"]})
            runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            ax.plot(observed["params"], observed["std"], "o", color="C3", ms=5,
                    label=f"sd of final log loss across seeds ({runs} runs each)")
        ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="run-to-run sd of log loss", title=family)
    # one legend below the panels: inside, it hides points at the edges of the band
    legend = {}
    for ax in axes:
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.suptitle(f"seed variance, {fit.pooling} pooling, seed_scaling={fit.seed_scaling}", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=2, fontsize=7, frameon=False)
    return fig


def _main_sites(fit, var_names, *, where: str) -> list[str]:
    """Sites for the trace and rank plots: ``var_names``, or the law's parameters and the noise scales
    (sigma_obs, sigma_dev, sigma_seed, gamma_seed where sampled), not the per-row sites."""
    posterior = fit.idata.posterior
    if var_names is not None:
        var_names = [var_names] if isinstance(var_names, str) else list(var_names)
        unknown = [v for v in var_names if v not in posterior.data_vars]
        if unknown:
            raise ValueError(f"{where}: no posterior site(s) {unknown}; the fit has {sorted(posterior.data_vars)}")
        return var_names
    candidates = [*fit.spec.law.theta_names, "sigma_obs", "sigma_dev", "sigma_seed", "gamma_seed"]
    # a site fixed in the model (gamma_seed with constant scaling) has no trace worth drawing
    return [v for v in candidates if v in posterior.data_vars and float(posterior[v].std()) > 0]


def _arviz_figure(collection, title: str):
    """The matplotlib figure of an arviz_plots PlotCollection, titled."""
    figure = collection.get_viz("figure")
    figure = figure.item() if hasattr(figure, "item") else figure  # a 0-d DataArray in some versions
    figure.suptitle(title, fontsize=10)
    return figure


def trace(fit, var_names=None):
    """ArviZ's trace plot (``arviz_plots.plot_trace_dist``): each site's draws per chain and its marginal.

    Default sites: the law's parameters per family (fitting space, e.g. e, a, b, alpha, beta) and
    the noise scales; ``var_names`` names any posterior sites. Returns the matplotlib figure.
    """
    import arviz_plots as azp  # here: it takes a while to load, and only trace and rank use it

    sites = _main_sites(fit, var_names, where="trace")
    collection = azp.plot_trace_dist(fit.idata, var_names=sites, backend="matplotlib",
                                     figure_kwargs={"layout": "constrained"})
    return _arviz_figure(collection, f"trace: {fit.form}, {fit.pooling} pooling")


def rank(fit, var_names=None):
    """ArviZ's rank plot (``arviz_plots.plot_rank``: fractional rank delta-ECDF per chain, with its
    simultaneous envelope; chains that agree stay inside it). Sites as :func:`trace`. Returns the figure."""
    import arviz_plots as azp

    sites = _main_sites(fit, var_names, where="rank")
    posterior = fit.idata.posterior
    if posterior.sizes["chain"] < 2:
        raise ValueError("rank: a rank plot compares chains and this fit has one; refit with chains >= 2")
    panels = sum(int(np.prod([n for dim, n in posterior[v].sizes.items() if dim not in ("chain", "draw")]))
                 for v in sites)  # arviz_plots wraps them 4 to a row
    size = (12, 2.6 * int(np.ceil(panels / 4)))
    collection = azp.plot_rank(fit.idata, var_names=sites, backend="matplotlib",
                               figure_kwargs={"figsize": size, "layout": "constrained"})
    return _arviz_figure(collection, f"rank: {fit.form}, {fit.pooling} pooling")


def _density(ax, values: np.ndarray, y: float, *, log: bool, color="C0", height: float = 0.4) -> None:
    """A half-violin above row ``y``: the kernel density of ``values`` (of their log on a log axis), peak ``height``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    scaled = np.log(values) if log else values
    if scaled.size < 2 or np.ptp(scaled) == 0:
        return
    grid = np.linspace(*np.quantile(scaled, [0.005, 0.995]), 120)
    density = gaussian_kde(scaled)(grid)
    ax.fill_between(np.exp(grid) if log else grid, y, y - height * density / density.max(), color=color,
                    alpha=0.25, lw=0)


def point_vs_posterior(fit, point_fits: dict | None = None, data: pd.DataFrame | None = None, *,
                       method: str = "epoch", seed: int = 0):
    """Per law parameter, each family's posterior (density, median, 50%/90% intervals) with its point estimate.

    ``point_fits``: family -> :class:`~bayeslaw.inference.point.PointFit` of the fit's form; default:
    ``fit_point(rows, form=fit.form, method=method)`` on each family's rows of ``data`` (default:
    the fit's own rows). A family whose point fit fails (e.g. fewer rows than parameters) is drawn
    without one, and the figure says why. Returns the figure (one panel per parameter).
    """
    families = list(fit.families)
    failures = {}
    if point_fits is None:
        rows = _rows_of(fit, data, where="point_vs_posterior: data")
        point_fits = {}
        for family in families:
            try:
                point_fits[family] = fit_point(rows[rows["family"] == family], form=fit.form, method=method)
            except ValueError as err:  # TooFewPoints among them: shown on the figure, never dropped silently
                failures[family] = str(err)
    else:
        unknown = [f for f in point_fits if f not in families]
        wrong_form = [f for f, p in point_fits.items() if p.form != fit.form]
        if unknown or wrong_form:
            raise ValueError(f"point_vs_posterior: point_fits for famil(y/ies) {unknown} the fit does not have "
                             f"(fitted: {families}), or of another form than {fit.form!r}: {wrong_form}")
        failures = {f: "not given" for f in families if f not in point_fits}
    posterior = [fit.spec.law.natural(fit.law_theta(family, seed=seed)) for family in families]
    names = list(posterior[0])
    fig, axes = _panel_grid(len(names), ncols=len(names), width=2.6, height=0.6 * len(families) + 1.6, sharey=True)
    for ax, name in zip(axes, names, strict=True):
        draws = [np.asarray(row[name]) for row in posterior]
        log = _log_axis(draws)
        for y, values in enumerate(draws):
            _density(ax, values, y, log=log)
        _intervals(ax, draws)
        labelled = False
        for y, family in enumerate(families):
            if family in point_fits:
                ax.plot(point_fits[family].params[name], y, "x", color="C3", ms=8, mew=2,
                        label=None if labelled else f"point fit ({point_fits[family].method})")
                labelled = True
        ax.set(xscale="log" if log else "linear", xlabel=name, title=name)
    axes[0].set_yticks(range(len(families)), families)
    axes[0].set_ylim(len(families) - 0.5, -0.7)
    axes[0].legend(fontsize=6, loc="lower left")
    note = "; ".join(f"no point fit for {f}: {why}" for f, why in failures.items())
    fig.suptitle(f"{fit.form}: posterior ({fit.pooling} pooling; density, median, 50%/90%) vs point estimates"
                 + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    return fig


def fit_report(fit, out, *, data: pd.DataFrame | None = None, point_fits: dict | None = None) -> Path:
    """Write a fit's report folder: the plots above as PNGs, params.csv, diagnostics.csv/.txt and report.md.

    Every figure is drawn before anything is written, and each file is written to a temporary name and
    renamed, report.md last: a report that fails leaves no half-written file and no report.md of its own.
    An unwritable ``out`` raises a ValueError naming it before any plotting.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"fit_report: cannot make the report folder {str(out)!r} ({err}); "
                         f"pass a folder that can be created and written") from err
    if not os.access(out, os.W_OK):
        raise ValueError(f"fit_report: the report folder {str(out)!r} is not writable; pass a writable folder")
    figures = {
        "predictive_curves.png": lambda: predictive_curves(fit, data),
        "forest.png": lambda: forest(fit),
        "seed_variance.png": lambda: seed_variance(fit, data),
        "point_vs_posterior.png": lambda: point_vs_posterior(fit, point_fits, data),
        "trace.png": lambda: trace(fit),
        "rank.png": lambda: rank(fit),
    }
    chains = fit.idata.posterior.sizes["chain"]
    if chains < 2:  # a rank plot compares chains
        del figures["rank.png"]
    images = {}
    for name, draw in figures.items():
        figure = draw()
        try:
            buffer = io.BytesIO()
            figure.savefig(buffer, dpi=110, format="png")
            images[name] = buffer.getvalue()
        finally:
            plt.close(figure)
    diagnostics = fit.diagnostics(warn=False)
    params = fit.params()

    for name, image in images.items():
        write_atomic(out / name, lambda tmp, image=image: Path(tmp).write_bytes(image))
    write_atomic(out / "params.csv", lambda tmp: params.to_csv(tmp, index=False))
    write_atomic(out / "diagnostics.csv", lambda tmp: diagnostics.table.to_csv(tmp, index_label="site"))
    write_atomic(out / "diagnostics.txt", lambda tmp: Path(tmp).write_text(str(diagnostics) + "\n"))

    posterior = fit.idata.posterior
    rhat = "n/a (one chain)" if not np.isfinite(diagnostics.max_rhat) and posterior.sizes["chain"] < 2 \
        else f"{diagnostics.max_rhat:.4f}"
    parts = [
        f"# bayeslaw fit report: {fit.form}, {fit.pooling} pooling",
        "",
        f"- law: {fit.spec.law.formula}",
        f"- families ({len(fit.families)}): {', '.join(fit.families)}",
        f"- runs: {len(fit.runs)}; rows fitted: {fit.idata.attrs.get('bayeslaw_rows_fitted', '?')} "
        f"(of {fit.idata.attrs.get('bayeslaw_rows_in', '?')})",
        f"- NUTS: {posterior.sizes['chain']} chains x {posterior.sizes['draw']} draws; seed_scaling "
        f"{fit.seed_scaling}",
        f"- max r-hat {rhat}; divergences {diagnostics.divergences}; min bulk ESS {diagnostics.min_ess_bulk:.0f}, "
        f"min tail ESS {diagnostics.min_ess_tail:.0f}",
        *(f"- **warning**: {m}" for m in diagnostics.messages),
        "",
        "Files: `params.csv` (the law's parameters, sigma_seed and sigma_obs per family), `diagnostics.csv` "
        "(r-hat, ESS, MCSE per site), `diagnostics.txt`.",
        "",
        "## Parameters (median and 90% interval)",
        "",
        _markdown(params[["family", "parameter", "median", "q05", "q95"]]),
        "",
        "## Posterior predictive against the data",
        "",
        "![Posterior predictive curves](predictive_curves.png)",
        "",
        "## Parameters per family",
        "",
        "![Forest](forest.png)",
        "",
        "![Point fits vs posterior](point_vs_posterior.png)",
        "",
        "## Seed variance",
        "",
        "![Seed variance](seed_variance.png)",
        "",
        "## Convergence",
        "",
        "![Trace](trace.png)",
        "",
        "![Rank](rank.png)" if chains >= 2 else "No rank plot: it compares chains, and this fit has one.",
        "",
    ]
    report = out / "report.md"
    write_atomic(report, lambda tmp: Path(tmp).write_text("\n".join(parts)))
    return report


def _markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A DataFrame as a GitHub markdown table (pandas' to_markdown needs tabulate; this does not)."""
    def fmt(v):
        return format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def backtest_report(result, out) -> Path:
    """Write a backtest's report folder: cells.csv, predictions.csv, aggregate tables, PNG figures, report.md.

    Every file is written to a temporary name and renamed, so an interrupted report leaves no half-written file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells, predictions = result.cells, result.predictions
    by_method = result.aggregate(("case", "method"))
    by_family = result.aggregate(("case", "family", "method"))
    by_k = result.aggregate(("case", "k", "method"))
    tables = {"cells.csv": cells, "predictions.csv": predictions, "aggregate_by_method.csv": by_method,
              "aggregate_by_family.csv": by_family, "aggregate_by_k.csv": by_k}
    if result.comparison is not None:
        tables["loo_comparison.csv"] = result.comparison
    for name, table in tables.items():
        write_atomic(out / name, lambda tmp, table=table: table.to_csv(tmp, index=False))
    figures = {"are_heatmap.png": are_heatmap(cells), "trajectories.png": trajectory_bands(predictions),
               "calibration.png": calibration_plot(cells)}
    if (cells["case"] == "transfer").any():
        figures["transfer_trajectories.png"] = trajectory_bands(predictions, k=1, case="transfer")
    for name, figure in figures.items():
        write_atomic(out / name, lambda tmp, figure=figure: figure.savefig(tmp, dpi=110, format="png"))
        plt.close(figure)

    scaling = by_method[by_method["case"] == "scaling"].set_index("method")
    verdict = []
    point = scaling[scaling["coverage90"].isna()]
    bayes = scaling[scaling["coverage90"].notna()]
    if not point.empty and not bayes.empty:
        best_point = point["are_median"].idxmin()
        for method, row in bayes.iterrows():
            ratio = row["are_median"] / point.loc[best_point, "are_median"]
            word = "lower" if ratio < 1 else "higher"
            verdict.append(f"- {method}: median ARE {100 * row['are_median']:.2f}% vs {100 * point.loc[best_point, 'are_median']:.2f}% "
                           f"for the best point fit ({best_point}), {word} by a factor {max(ratio, 1 / ratio):.2f}; "
                           f"90% intervals cover {100 * row['coverage90']:.0f}% of test points (50%: "
                           f"{100 * row['coverage50']:.0f}%).")
    s = result.settings
    parts = [
        "# bayeslaw backtest report",
        "",
        f"Families: {', '.join(s['families'])}. Target: each family's largest model; test points: its checkpoints "
        f"with tokens >= {s['test_from']} x the run's last. Training: the k smallest models (k = {s['ks']}) "
        f"and a fraction q of the target's run (q = {s['fractions']}), early checkpoints cut at "
        f"{s['min_tokens']:g} tokens, thinned to {s['thin']} checkpoints per run; every method sees the same rows.",
        "",
        f"{result.timing['fits']} fits in {result.timing['wall_s']:.0f} s wall ({s['workers']} worker(s)); "
        f"Bayesian fits: {s['fit_options']}.",
        "",
        "## Verdict (scaling cells)",
        "",
        *(verdict or ["- no Bayesian and point methods to compare"]),
        "",
        "## By method",
        "",
        _markdown(by_method),
        "",
        "## By k",
        "",
        _markdown(by_k),
        "",
        "## By family",
        "",
        _markdown(by_family),
        "",
        "![ARE heatmap](are_heatmap.png)",
        "",
        "![Target trajectories](trajectories.png)",
        "",
        "![Calibration](calibration.png)",
        "",
    ]
    if "transfer_trajectories.png" in figures:
        parts += ["## Transfer: a family seen through one model", "", "![Transfer](transfer_trajectories.png)", ""]
    if result.comparison is not None:
        parts += ["## PSIS-LOO comparison of the pooling variants (all rows)", "",
                  _markdown(result.comparison.drop(columns=[c for c in ("warning",) if c in result.comparison])), ""]
    unscored = cells[cells["are"].isna()]
    if not unscored.empty:
        parts += ["## Cells a method could not predict", "",
                  "Left out of the tables above for every method (they compare methods on the same cells):", "",
                  _markdown(unscored[["case", "family", "k", "q", "method", "train_points"]]), ""]
    parts += ["Columns: ARE = mean |y - y_hat| / y over the test points (posterior median for Bayes); CRPS in nats; "
              "coverage = share of test points inside the new_run interval (point fits have none); width in nats.", ""]
    report = out / "report.md"
    write_atomic(report, lambda tmp: Path(tmp).write_text("\n".join(parts)))
    return report


# --- compute-optimal allocation -----------------------------------------------------------------

def allocation_frontier(allocation):
    """The compute-optimal frontier of a :class:`bayeslaw.plan.Allocation`: N* (parameters) and D* (tokens)
    against the budget C = 6 N D (FLOPs), log-log, as the posterior median with 50% and 90% bands, and the
    point estimate's allocation (N_pt, D_pt) overlaid. Returns the matplotlib Figure (two Axes)."""
    draws = allocation.draws
    budgets = allocation.summary["flops"].to_numpy(dtype=float)
    order = np.argsort(budgets)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharex=True)
    panels = (("params_opt", "point_params", "parameters N*"), ("tokens_opt", "point_tokens", "training tokens D*"))
    for ax, (column, point_column, label) in zip(axes, panels, strict=True):
        per_budget = draws[column].to_numpy(dtype=float).reshape(-1, len(budgets))[:, order]  # (sample, budget)
        q05, q25, q50, q75, q95 = np.quantile(per_budget, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(budgets[order], q05, q95, color="C0", alpha=0.15, lw=0, label="posterior 90%")
        ax.fill_between(budgets[order], q25, q75, color="C0", alpha=0.3, lw=0, label="posterior 50%")
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
