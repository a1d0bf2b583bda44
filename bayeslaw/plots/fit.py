"""Figures of a fit: prior predictive, posterior predictive curves, parameters, seed variance, convergence.

Each takes a fitted posterior (:class:`bayeslaw.Fit`, which holds its DataTree) and optionally a tidy
table in the bayeslaw schema, and returns a matplotlib Figure. They read the posterior (draws,
``fit.predict``) but never fit: point fits come in as ``point_fits`` (see
:func:`bayeslaw.evaluation.point_fits_by_family`), prior draws from
:func:`bayeslaw.evaluation.prior_predictive_quantiles`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayeslaw import Fit, PointFit  # the public names: plots import no inference module (tests/test_layering.py)
from bayeslaw.data.runs import run_configurations
from bayeslaw.evaluation import FormComparison, fit_rows, prior_predictive_quantiles
from bayeslaw.laws import ExtrapolationWarning
from bayeslaw.models import seed_sd
from bayeslaw.plots._style import closes_on_error, density, intervals, log_axis, named, panel_grid, plt

__all__ = ["forest", "form_curves", "point_vs_posterior", "predictive_curves", "prior_predictive", "rank",
           "seed_variance", "trace"]

_QUANTILE_COLUMNS = ("params", "tokens", "q05", "q25", "q50", "q75", "q95")  # prior_predictive_quantiles' table


def _check_fit(fit, where: str) -> None:
    """Refuse anything but a fitted posterior: each plot reads its spec, families and draws."""
    if not isinstance(fit, Fit):
        raise TypeError(f"{where}: needs a bayeslaw Fit (the result of bayeslaw.fit, or of bayeslaw.load_fit on a "
                        f"saved one), found {type(fit).__name__}")


def _check_count(value, name: str, where: str) -> None:
    """A whole number of at least 1 (a float or text would fail deep in the drawing, naming nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name}={value!r}; need a whole number (int) of at least 1")
    if value < 1:
        raise ValueError(f"{where}: {name}={value}; need at least 1")


def _plot_rows(fit, data, *, where: str) -> pd.DataFrame:
    """The rows a picture of ``fit`` draws (:func:`bayeslaw.evaluation.fit_rows`), refused in one line when
    ``data`` is no table, has no rows, or holds a loss that is missing, non-numeric or <= 0 (named by the
    data's own row labels): the loss axis is logarithmic, and matplotlib would leave such a point out unsaid."""
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"{where}: data must be a pandas DataFrame in the bayeslaw schema, or None for the fit's "
                            f"own rows; found {type(data).__name__}")
        if data.empty:
            raise ValueError(f"{where}: data has no rows; pass a table with the runs to draw, or data=None for the "
                             f"fit's own rows")
        if "loss" in data.columns and not pd.api.types.is_numeric_dtype(data["loss"]):  # text plots as categories
            raise TypeError(f"{where}: data: column 'loss' holds {data['loss'].dtype} values, not numbers; convert it "
                            f"(pd.to_numeric) or read the table with bayeslaw.data")
        loss = data["loss"].to_numpy(dtype=float, na_value=np.nan) if "loss" in data.columns else np.ones(len(data))
        bad = data.index[~(np.isfinite(loss) & (loss > 0))]
        if len(bad):
            more = f" ({len(bad)} in all)" if len(bad) > 5 else ""
            raise ValueError(f"{where}: data: column 'loss' has missing, non-finite or non-positive values at rows "
                             f"{list(bad[:5])}{more}; the loss axis is logarithmic: fix or remove those rows")
    rows = fit_rows(fit, data, where=f"{where}: data")
    if rows.empty:  # a schedule law's table whose every row lies inside its runs' warmup
        raise ValueError(f"{where}: data has no row after its runs' warmup to draw")
    return rows


@closes_on_error
def prior_predictive(
    quantiles: pd.DataFrame | None = None,
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
    per token falling with N and D), not any curve. ``quantiles``: the table of
    :func:`bayeslaw.evaluation.prior_predictive_quantiles` (params, tokens, q05..q95); default: drawn
    from the ``pooling`` model's priors at ``sizes`` x ``tokens``. Returns the matplotlib Axes and the table.
    """
    if quantiles is None:
        for name, values in (("sizes", sizes), ("tokens", tokens)):
            values = np.atleast_1d(np.asarray(values, dtype=float))
            if values.size == 0 or not (np.isfinite(values) & (values > 0)).all():
                raise ValueError(f"prior_predictive: {name} must be one or more positive numbers (a log axis), "
                                 f"found {values.tolist()[:6]}")
        quantiles = prior_predictive_quantiles(pooling=pooling, sizes=sizes, tokens=tokens, num_samples=num_samples,
                                               seed=seed)
    elif not isinstance(quantiles, pd.DataFrame):
        raise TypeError(f"prior_predictive: quantiles must be the DataFrame of "
                        f"bayeslaw.evaluation.prior_predictive_quantiles, found {type(quantiles).__name__}")
    else:
        missing = [c for c in _QUANTILE_COLUMNS if c not in quantiles.columns]
        problem = f"lacks column(s) {missing}" if missing else "has no rows"
        if missing or quantiles.empty:
            raise ValueError(f"prior_predictive: quantiles {problem}; it needs {list(_QUANTILE_COLUMNS)}, as "
                             f"bayeslaw.evaluation.prior_predictive_quantiles gives")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    for n, rows in quantiles.groupby("params", sort=False):
        rows = rows.sort_values("tokens")
        line = ax.plot(rows["tokens"], rows["q50"], label=f"N = {n:.0e}")[0]
        ax.fill_between(rows["tokens"], rows["q25"], rows["q75"], color=line.get_color(), alpha=0.25, lw=0)
        ax.fill_between(rows["tokens"], rows["q05"], rows["q95"], color=line.get_color(), alpha=0.1, lw=0)
    ax.set(xscale="log", yscale="log", xlabel="training tokens D", ylabel="loss (nats per token)",
           title=f"prior predictive, {pooling} model (50% and 90% bands)")
    ax.legend(fontsize="small")
    return ax, quantiles


# --- model choice -------------------------------------------------------------------------------

@closes_on_error
def form_curves(comparison, *, families=None, max_runs: int = 6, seed: int = 0):
    """Each form's fitted law (posterior median, 90% band) against the data, one panel per family.

    ``comparison``: a :class:`bayeslaw.evaluation.FormComparison`. Per family, up to ``max_runs``
    runs (spread over sizes) are drawn: observed loss against tokens, and each form's law at the
    run's own checkpoints (its size, and its batch size for su2024). The legend gives each form's
    LOO elpd on that family. Returns the figure.
    """
    if not isinstance(comparison, FormComparison):
        raise TypeError(f"form_curves: needs a FormComparison (the result of bayeslaw.evaluation.compare_forms), found "
                        f"{type(comparison).__name__}")
    _check_count(max_runs, "max_runs", "form_curves")
    rows = comparison.rows
    elpd = comparison.by_family.set_index("family")
    families = (sorted(rows["family"].unique()) if families is None
                else _named_families(families, list(elpd.index), where="form_curves", among="compared families"))
    fig, axes = panel_grid(len(families))
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
                with warnings.catch_warnings():  # the picture's rows, drawn as they are
                    warnings.simplefilter("ignore", ExtrapolationWarning)
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


# --- a fitted posterior: everyday plots --------------------------------------------------------------

def _families_of(fit, rows: pd.DataFrame, families, *, where: str) -> list[str]:
    """The families to draw: by default the fit's families that the rows have; asked for by name, any family
    of the rows (one the fit has not seen gets the population's prediction)."""
    if families is None:
        shared = [f for f in fit.families if f in set(rows["family"])]
        if not shared:  # else an empty figure
            raise ValueError(f"{where}: the data's families {sorted(rows['family'].unique())[:6]} include none of "
                             f"the fit's {fit.families[:6]}; pass data= with their rows, or families= by name")
        return shared
    return _named_families(families, sorted(rows["family"].unique()), where=where, among="data's families",
                           fix="; pass data= with their rows")


def _named_families(families, available: list, *, where: str, among: str, fix: str = "") -> list:
    """``families`` as a list of names from ``available``: one name alone is one family (``list("fam0")``
    would be its letters), a name given twice one panel; none, or one not ``available``, refused."""
    families = named(families, "families", where, "a family name")
    if not families:  # else an empty figure
        raise ValueError(f"{where}: families is empty; name one or more of the {among} {available[:6]}, or leave "
                         f"it None")
    unknown = [f for f in families if f not in set(available)]
    if unknown:
        raise ValueError(f"{where}: famil(y/ies) {unknown} not among the {among} {available}{fix}")
    return families


def _spread_runs(rows: pd.DataFrame, max_runs: int) -> list[str]:
    """Up to ``max_runs`` runs of a family, spread evenly over its sizes (sorted by N, then name)."""
    runs = rows.groupby("run")["params"].first().reset_index().sort_values(["params", "run"])["run"].tolist()
    keep = np.unique(np.linspace(0, len(runs) - 1, min(max_runs, len(runs))).round().astype(int))
    return [runs[i] for i in keep]


def run_labels(runs, width: int = 36) -> list[str]:
    """Legend labels for ``runs``: each name without the ``_``-separated parts every one of them shares
    (a W&B sweep's names repeat the model, data and optimiser settings), its middle cut to keep ``width``
    characters (names tend to differ at both ends); numbered where two labels would read alike."""
    parts = [str(r).split("_") for r in runs]
    common = set.intersection(*map(set, parts)) if len(parts) > 1 else set()
    short = ["_".join(p for p in ps if p not in common) or str(r) for r, ps in zip(runs, parts, strict=True)]
    head = (width - 1) // 2
    short = [s if len(s) <= width else s[:head] + "…" + s[len(s) - (width - 1 - head):] for s in short]
    if len(set(short)) < len(short):
        short = [f"{i + 1}: {s}" for i, s in enumerate(short)]
    return short


@closes_on_error
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
    _check_fit(fit, "predictive_curves")
    if kind not in ("law", "new_run"):
        raise ValueError(f"predictive_curves: kind={kind!r}; use 'law' or 'new_run'")
    _check_count(max_runs, "max_runs", "predictive_curves")
    rows = _plot_rows(fit, data, where="predictive_curves")
    families = _families_of(fit, rows, families, where="predictive_curves")
    x = fit.spec.law.progress  # tokens (log axis), or a schedule law's steps (linear: the schedule's shape)
    fig, axes = panel_grid(len(families))
    for ax, family in zip(axes, families, strict=True):
        fam = rows[rows["family"] == family]
        runs = _spread_runs(fam, max_runs)
        targets = fam[fam["run"].isin(runs)].sort_values(["run", x])
        with warnings.catch_warnings():  # the picture's rows (a run's early checkpoints, the cut left out) are
            warnings.simplefilter("ignore", ExtrapolationWarning)  # drawn as they are, not asked for
            summary = fit.predict(targets.drop(columns="loss"), kind=kind, seed=seed).summary
        summary["loss"] = targets["loss"].to_numpy()
        labels = dict(zip(runs, run_labels(runs), strict=True))
        for color, run in zip(plt.cm.viridis(np.linspace(0, 0.9, len(runs))), runs, strict=True):
            curve = summary[summary["run"] == run]
            n = float(curve["params"].iloc[0])
            label = f"{labels[run]} (N = {n:.3g})"
            if len(curve) == 1:  # a final loss alone: a band over one point would not show, so interval bars
                at = curve[x].to_numpy()
                ax.vlines(at, curve["q5"], curve["q95"], color=color, alpha=0.4, lw=1.5, gid=f"band90:{run}")
                ax.vlines(at, curve["q25"], curve["q75"], color=color, alpha=0.8, lw=4, gid=f"band50:{run}")
                ax.plot(at, curve["q50"], "_", color=color, ms=10, mew=1.5, gid=f"median:{run}", label=label)
            else:
                ax.fill_between(curve[x], curve["q5"], curve["q95"], color=color, alpha=0.12, lw=0,
                                gid=f"band90:{run}")
                ax.fill_between(curve[x], curve["q25"], curve["q75"], color=color, alpha=0.3, lw=0,
                                gid=f"band50:{run}")
                ax.plot(curve[x], curve["q50"], "-", color=color, lw=1.2, gid=f"median:{run}", label=label)
            ax.plot(curve[x], curve["loss"], "o", ms=3, color=color, mec="k", mew=0.3)
        title = family if family in fit.families else f"{family} (not fitted: the population's prediction)"
        ax.set(xscale="log" if x == "tokens" else "linear", yscale="log",
               xlabel="tokens D" if x == "tokens" else "step",
               ylabel="loss (nats per token)", title=title)
        ax.legend(fontsize=6, title="dots observed; median, 50%/90% bands", title_fontsize=6)
    # two lines: one line is wider than a one-panel figure
    fig.suptitle(f"posterior predictive ({kind})\nof the {fit.form} fit, {fit.pooling} pooling", fontsize=10)
    fig.tight_layout()
    return fig


def _natural_draws(fit, theta: np.ndarray) -> dict[str, np.ndarray]:
    """The law's parameters as usually reported (chinchilla: E, A, B, alpha, beta) from sampled-coordinate
    draws (S, K)."""
    law_theta = {k: np.asarray(v) for k, v in fit.spec.to_law(np.asarray(theta)).items()}
    return {k: np.asarray(v) for k, v in fit.spec.law.natural(law_theta).items()}


@closes_on_error
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
    _check_fit(fit, "forest")
    labels = list(fit.families)
    rows = [fit.spec.law.natural(fit.law_theta(family, seed=seed)) for family in fit.families]
    if fit.pooling == "hierarchical":
        labels += ["population mean (mu)", "new family"]
        rows += [_natural_draws(fit, fit.site_draws("mu")), fit.spec.law.natural(fit.law_theta(None, seed=seed))]
    names = list(rows[0])
    fig, axes = panel_grid(len(names), ncols=len(names), width=2.6, height=0.45 * len(labels) + 1.5, sharey=True)
    for ax, name in zip(axes, names, strict=True):
        draws = [np.asarray(row[name]) for row in rows]
        intervals(ax, draws)
        if fit.pooling == "hierarchical":
            ax.axhline(len(fit.families) - 0.5, color="0.7", lw=0.8)
        ax.set(xscale="log" if log_axis(draws) else "linear", xlabel=name, title=name)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)
    fig.suptitle(f"{fit.form} parameters per family, {fit.pooling} pooling (median, 50% and 90% intervals)",
                 fontsize=10)
    fig.tight_layout()
    return fig


@closes_on_error
def seed_variance(fit, data: pd.DataFrame | None = None):
    """Run-to-run sd of log loss per family: posterior sigma_seed(N) against the spread across seeds.

    Posterior: sigma_seed(N) = sigma_seed_f (N / 1e8)^-gamma_seed (flat unless the fit has
    ``seed_scaling="size"``), median and 90% band over the family's sizes, and the dashed
    sqrt(sigma_seed(N)^2 + sigma_obs^2), the scale of one checkpoint's deviation from the law.
    Data: per configuration with two or more runs (:func:`bayeslaw.data.run_configurations`: same family,
    size N and token budget), the sd (ddof 1) across runs of the log of each run's final loss, which carries
    both. ``data`` defaults to the fit's own rows. A family without replicated runs in the fit shows what its
    sigma_seed is without them (hierarchical: the population's; complete: the shared one; none: the prior).
    Returns the figure (one panel per family).
    """
    _check_fit(fit, "seed_variance")
    rows = _plot_rows(fit, data, where="seed_variance")
    families = _families_of(fit, rows, None, where="seed_variance")
    posterior = fit.idata.posterior
    sigma_seed, sigma_obs = fit.site_draws("sigma_seed"), fit.site_draws("sigma_obs")
    gamma = fit.site_draws("gamma_seed") if "gamma_seed" in posterior else np.zeros(sigma_seed.shape[0])
    # families whose replicated runs (seeds, reruns of one configuration) pin their own sigma_seed, as fitted
    const = fit.idata.constant_data
    informed = ({fit.families[i] for i in const["run_family"].values[const["run_replicated"].values.astype(bool)]}
                if "run_replicated" in const else set())
    # the spread of each replicated configuration's final log losses (the last checkpoint of each run)
    final = run_configurations(rows)
    final["log_loss"] = np.log(rows.sort_values(fit.spec.law.progress).groupby("run")["loss"].last().loc[final.index]
                               .to_numpy(dtype=float))
    spread = (final[final["replicated"]].groupby(["family", "params", "configuration"])["log_loss"]
              .agg(["std", "size"]).reset_index())
    fig, axes = panel_grid(len(families), ncols=3, width=4.0, height=3.2)
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
    _check_fit(fit, where)
    posterior = fit.idata.posterior
    if var_names is not None:
        if isinstance(var_names, str):
            var_names = [var_names]
        elif isinstance(var_names, (list, tuple, pd.Index, np.ndarray)):
            var_names = list(dict.fromkeys(var_names))
        else:
            raise TypeError(f"{where}: var_names={var_names!r}; give a posterior site's name or a list of them")
        if not var_names:  # ArviZ would fail on an empty grid, naming nothing
            raise ValueError(f"{where}: var_names is empty; name posterior site(s), or leave it None for the law's "
                             f"parameters and noise scales")
        unknown = [v for v in var_names if v not in posterior.data_vars]
        if unknown:
            raise ValueError(f"{where}: no posterior site(s) {unknown}; the fit has {sorted(posterior.data_vars)}")
        return var_names
    candidates = [*fit.spec.law.theta_names, "sigma_obs", "sigma_dev", "offset_start", "sigma_seed", "gamma_seed"]
    # a site fixed in the model (gamma_seed with constant scaling) has no trace worth drawing
    return [v for v in candidates if v in posterior.data_vars and float(posterior[v].std()) > 0]


def _arviz_figure(collection, title: str):
    """The matplotlib figure of an arviz_plots PlotCollection, titled."""
    figure = collection.get_viz("figure")
    figure = figure.item() if hasattr(figure, "item") else figure  # a 0-d DataArray in some versions
    figure.suptitle(title, fontsize=10)
    return figure


@closes_on_error
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


@closes_on_error
def rank(fit, var_names=None):
    """ArviZ's rank plot (``arviz_plots.plot_rank``: fractional rank delta-ECDF per chain, with its
    simultaneous envelope; chains that agree stay inside it). Sites as :func:`trace`. Returns the figure."""
    import arviz_plots as azp

    sites = _main_sites(fit, var_names, where="rank")
    posterior = fit.idata.posterior
    if posterior.sizes["chain"] < 2:
        raise ValueError("rank: a rank plot compares chains and this fit has one; refit with chains >= 2")
    coords, note = _families_shown(fit, sites)
    shown = posterior if coords is None else posterior.sel(coords)
    panels = sum(int(np.prod([n for dim, n in shown[v].sizes.items() if dim not in ("chain", "draw")]))
                 for v in sites)  # arviz_plots wraps them 4 to a row
    size = (12, 2.6 * int(np.ceil(panels / 4)))
    collection = azp.plot_rank(fit.idata, var_names=sites, coords=coords, backend="matplotlib",
                               figure_kwargs={"figsize": size, "layout": "constrained"})
    return _arviz_figure(collection, f"rank: {fit.form}, {fit.pooling} pooling{note}")


def _families_shown(fit, sites) -> tuple[dict | None, str]:
    """(coords, title note) for a plot of one panel per site and family: every family where the panels fit
    under ArviZ's ``plot.max_subplots`` (it refuses more), else the families whose sites have the largest
    r-hat, as many as fit: where chains disagree is what the plot is for."""
    import arviz as az
    from arviz_base import rcParams

    posterior = fit.idata.posterior
    per_family = [v for v in sites if "family" in posterior[v].dims]
    if not per_family:
        return None, ""

    def panels(v):  # a site's panels per family
        return int(np.prod([n for d, n in posterior[v].sizes.items() if d not in ("chain", "draw", "family")]))

    fixed = sum(panels(v) for v in sites if v not in per_family)
    room = (rcParams["plot.max_subplots"] - fixed) // sum(panels(v) for v in per_family)
    families = list(posterior["family"].values)
    if len(families) <= room:
        return None, ""
    rhat = az.rhat(fit.idata, var_names=per_family)
    worst = np.max(np.stack([np.asarray(rhat[v].max([d for d in rhat[v].dims if d != "family"])) for v in per_family]),
                   axis=0)
    kept = [families[i] for i in sorted(np.argsort(-worst, kind="stable")[:max(room, 1)])]
    return {"family": kept}, f"; the {len(kept)} of {len(families)} families with the largest r-hat"


@closes_on_error
def point_vs_posterior(fit, point_fits: dict | None = None, *, failures: dict | None = None, seed: int = 0):
    """Per law parameter, each family's posterior (density, median, 50%/90% intervals) with its point estimate.

    ``point_fits``: family -> :class:`~bayeslaw.inference.point.PointFit` of the fit's form, made by the
    caller (e.g. ``bayeslaw.evaluation.point_fits_by_family(fit, data, method=...)``; this function draws,
    it does not fit). ``failures``: family -> why it has no point fit (the second value that returns).
    A family without a point fit is drawn without one, and the figure says why ("not given" where no
    reason came). A schedule law's constants are drawn at each family's median size and peak rate
    (:meth:`~bayeslaw.inference.nuts.Fit.reference_point`, as ``Fit.params`` quotes them), both sides, and
    the title says where. Returns the figure (one panel per parameter).
    """
    _check_fit(fit, "point_vs_posterior")
    families = list(fit.families)
    if point_fits is None:
        raise ValueError("point_vs_posterior: pass point_fits= (family -> PointFit); it draws them, it does not "
                         "fit them: make them with bayeslaw.evaluation.point_fits_by_family(fit, data, method=...)")
    if not isinstance(point_fits, Mapping):
        raise TypeError(f"point_vs_posterior: point_fits must be a dict family -> PointFit, found "
                        f"{type(point_fits).__name__}")
    not_fits = {f: type(p).__name__ for f, p in point_fits.items() if not isinstance(p, PointFit)}
    if not_fits:
        raise TypeError(f"point_vs_posterior: point_fits of famil(y/ies) {list(not_fits)} are not PointFits "
                        f"({sorted(set(not_fits.values()))}); make them with bayeslaw.fit_point or "
                        f"bayeslaw.evaluation.point_fits_by_family")
    if failures is not None and not isinstance(failures, Mapping):
        raise TypeError(f"point_vs_posterior: failures must be a dict family -> reason, found "
                        f"{type(failures).__name__}")
    unknown = [f for f in point_fits if f not in families]
    wrong_form = [f for f, p in point_fits.items() if p.form != fit.form]
    if unknown or wrong_form:
        raise ValueError(f"point_vs_posterior: point_fits for famil(y/ies) {unknown} the fit does not have "
                         f"(fitted: {families}), or of another form than {fit.form!r}: {wrong_form}")
    failures = {f: (failures or {}).get(f, "not given") for f in families if f not in point_fits}
    law = fit.spec.law
    # a schedule law's constants move with N and the peak rate: both sides at the family's median size and
    # rate, as Fit.params quotes them (at the law's reference point, slopes its rows leave to the prior would
    # move the posterior alone)
    at = {family: fit.reference_point(family) for family in families}

    def natural(theta, family):
        return law.natural(law.constants_at(theta, at[family]) if at[family] else theta)

    posterior = [natural(fit.law_theta(family, seed=seed), family) for family in families]
    points = {family: {k: float(v) for k, v in natural(p.theta, family).items()} for family, p in point_fits.items()}
    names = list(posterior[0])
    fig, axes = panel_grid(len(names), ncols=len(names), width=2.6, height=0.6 * len(families) + 1.6, sharey=True)
    for ax, name in zip(axes, names, strict=True):
        draws = [np.asarray(row[name]) for row in posterior]
        log = log_axis(draws)
        for y, values in enumerate(draws):
            density(ax, values, y, log=log)
        intervals(ax, draws)
        labelled = False
        for y, family in enumerate(families):
            if family in point_fits:
                ax.plot(points[family][name], y, "x", color="C3", ms=8, mew=2,
                        label=None if labelled else f"point fit ({point_fits[family].method})")
                labelled = True
        ax.set(xscale="log" if log else "linear", xlabel=name, title=name)
    axes[0].set_yticks(range(len(families)), families)
    axes[0].set_ylim(len(families) - 0.5, -0.7)
    axes[0].legend(fontsize=6, loc="lower left")
    note = "; ".join(f"no point fit for {f}: {why}" for f, why in failures.items())
    if any(at.values()):
        note = "; ".join([*(f"{f} at " + ", ".join(f"{k} {v:.3g}" for k, v in a.items()) for f, a in at.items()),
                          *([note] if note else [])])
    fig.suptitle(f"{fit.form}: posterior ({fit.pooling} pooling; density, median, 50%/90%) vs point estimates"
                 + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    return fig
