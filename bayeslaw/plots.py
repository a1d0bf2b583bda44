"""Plots stage (matplotlib): pictures of priors, posteriors and predictions."""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib

matplotlib.use(matplotlib.get_backend() or "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro.infer import Predictive  # noqa: E402

from bayeslaw.data.files import write_atomic  # noqa: E402
from bayeslaw.models import get_model, prepare  # noqa: E402

__all__ = ["are_heatmap", "backtest_report", "calibration_plot", "form_curves", "prior_predictive", "trajectory_bands"]


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
    ncols = min(3, max(1, len(families)))
    nrows = int(np.ceil(len(families) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    elpd = comparison.by_family.set_index("family")
    styles = ["-", "--", ":", "-."]
    for ax, family in zip(axes.ravel(), families, strict=False):
        fam = rows[rows["family"] == family]
        runs = fam.groupby("run")["params"].first().sort_values()
        runs = runs.iloc[np.unique(np.linspace(0, len(runs) - 1, min(max_runs, len(runs))).round().astype(int))]
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
        for color, run in zip(colors, runs.index, strict=True):
            points = fam[fam["run"] == run].sort_values("tokens")
            ax.plot(points["tokens"], points["loss"], "o", ms=2.5, color=color)
            for style, (name, fitted) in zip(styles * 4, comparison.fits.items(), strict=False):
                targets = points.drop(columns=["run", "loss"])  # the law at the run's checkpoints
                summary = fitted.predict(targets, kind="law", seed=seed).summary
                label = f"{name} (elpd {elpd.loc[family, name]:.0f})" if run == runs.index[0] else None
                ax.plot(points["tokens"], summary["q50"], style, lw=1, color=color, label=label)
                ax.fill_between(points["tokens"], summary["q5"], summary["q95"], color=color, alpha=0.08, lw=0)
        ax.set(xscale="log", yscale="log", xlabel="tokens", ylabel="loss (nats per token)",
               title=f"{family}: best {elpd.loc[family, 'best']}")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(families):]:
        ax.axis("off")
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
