"""Report writers: a fit's or a backtest's folder of figures, tables and a report.md.

The report stage comes after plots: it asks :mod:`bayeslaw.evaluation` for what must be computed (point
fits beside a posterior, a backtest's aggregates), has :mod:`bayeslaw.plots` draw, and writes every file
atomically (:func:`bayeslaw.data.files.write_atomic`). Figures are drawn through the ``bayeslaw.plots``
package's names, so a caller (or a test) that replaces one there changes the report too.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayeslaw import plots
from bayeslaw.data.files import write_atomic
from bayeslaw.evaluation import point_fits_by_family
from bayeslaw.inference.nuts import parameter_notes

__all__ = ["backtest_report", "fit_report", "fit_report_files"]

FIT_FIGURES = ("predictive_curves.png", "forest.png", "seed_variance.png", "point_vs_posterior.png", "trace.png",
               "rank.png")


def _render(figures: dict) -> dict[str, bytes]:
    """Each figure drawn and saved as PNG bytes in memory, closed as it is done: a report's files are written
    only once every one of them has been made, so a failing figure leaves no half report."""
    images = {}
    for name, draw in figures.items():
        figure = draw()
        try:
            buffer = io.BytesIO()
            figure.savefig(buffer, dpi=110, format="png")
            images[name] = buffer.getvalue()
        finally:
            plt.close(figure)
    return images


def fit_report_files(fit) -> list[str]:
    """The names of the files :func:`fit_report` writes for ``fit`` into its folder, report.md last: what a caller
    lists (the folder may hold files of its own). No rank plot for a fit of one chain: it compares chains."""
    one_chain = fit.idata.posterior.sizes["chain"] < 2
    figures = [name for name in FIT_FIGURES if not (one_chain and name == "rank.png")]
    return [*figures, "params.csv", "diagnostics.csv", "diagnostics.txt", "report.md"]


def _check_folder(out: Path, writer: str) -> None:
    """A report folder that can be made and written, checked before any plotting and without making it (it is
    made once everything is drawn: a report that fails leaves no empty folder behind)."""
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise ValueError(f"{writer}: cannot make the report folder {str(out)!r} ({str(existing)!r} is a file); "
                         f"pass a folder that can be created and written")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == out else f" (cannot write in {str(existing)!r})"
        raise ValueError(f"{writer}: the report folder {str(out)!r} is not writable{where}; pass a writable folder")


def fit_report(fit, out, *, data: pd.DataFrame | None = None, point_fits: dict | None = None) -> Path:
    """Write a fit's report folder: its figures (:mod:`bayeslaw.plots.fit`) as PNGs, params.csv,
    diagnostics.csv/.txt and report.md. Returns the path of report.md.

    ``data``: rows to draw against the fit (default: its own rows). ``point_fits``: family -> PointFit for
    the point-vs-posterior figure; default: epoch point fits of each family's rows of ``data``
    (:func:`bayeslaw.evaluation.point_fits_by_family`), made while the figures are drawn.
    Every figure is drawn before anything is written (the folder is made then), and each file is written to a
    temporary name and renamed, report.md last: a report that fails leaves no half-written file, no report.md
    of its own and no empty folder. An unwritable ``out`` raises a ValueError naming it before any plotting.
    :func:`fit_report_files` names the files it writes.
    """
    out = Path(out)
    _check_folder(out, "fit_report")

    def point_figure():
        # point fits given, else epoch fits made here: the report owns this convenience, the plot only draws
        fits, failures = (point_fits, {}) if point_fits is not None else point_fits_by_family(fit, data)
        return plots.point_vs_posterior(fit, fits, failures=failures)

    figures = {
        "predictive_curves.png": lambda: plots.predictive_curves(fit, data),
        "forest.png": lambda: plots.forest(fit),
        "seed_variance.png": lambda: plots.seed_variance(fit, data),
        "point_vs_posterior.png": point_figure,
        "trace.png": lambda: plots.trace(fit),
        "rank.png": lambda: plots.rank(fit),
    }
    chains = fit.idata.posterior.sizes["chain"]
    names = fit_report_files(fit)
    images = _render({name: draw for name, draw in figures.items() if name in names})  # no rank plot for one chain
    diagnostics = fit.diagnostics(warn=False)
    params = fit.params()

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
        *(f"{note}.\n" for note in parameter_notes(params, kept="`prior_only` in params.csv")),
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
    writers = {name: (lambda tmp, image=image: Path(tmp).write_bytes(image)) for name, image in images.items()}
    writers["params.csv"] = lambda tmp: params.to_csv(tmp, index=False)
    writers["diagnostics.csv"] = lambda tmp: diagnostics.table.to_csv(tmp, index_label="site")
    writers["diagnostics.txt"] = lambda tmp: Path(tmp).write_text(str(diagnostics) + "\n")
    return _write_report(out, "fit_report", writers, parts, own=FIT_FIGURES)


def _markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A DataFrame as a GitHub markdown table (pandas' to_markdown needs tabulate; this does not)."""
    def fmt(v):
        return format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def backtest_report(result, out) -> Path:
    """Write a backtest's report folder: cells.csv, predictions.csv, aggregate tables, PNG figures, report.md.

    Every table, figure and line is made before anything is written (a report that fails writes nothing),
    then each file is written to a temporary name and renamed, report.md last: an interrupted report
    leaves no half-written file and no report.md of its own.
    """
    out = Path(out)
    cells, predictions = result.cells, result.predictions
    by_method = result.aggregate(("case", "method"))
    by_family = result.aggregate(("case", "family", "method"))
    by_k = result.aggregate(("case", "k", "method"))
    tables = {"cells.csv": cells, "predictions.csv": predictions, "aggregate_by_method.csv": by_method,
              "aggregate_by_family.csv": by_family, "aggregate_by_k.csv": by_k}
    if result.comparison is not None:
        tables["loo_comparison.csv"] = result.comparison
    figures = {"are_heatmap.png": lambda: plots.are_heatmap(cells),
               "trajectories.png": lambda: plots.trajectory_bands(predictions),
               "calibration.png": lambda: plots.calibration_plot(cells)}
    if (cells["case"] == "transfer").any():
        figures["transfer_trajectories.png"] = lambda: plots.trajectory_bands(predictions, k=1, case="transfer")
    images = _render(figures)

    scaling = by_method[by_method["case"] == "scaling"].set_index("method")
    verdict = []
    # a method is Bayesian by its name, not by having a coverage: one whose every cell failed has none
    is_bayes = scaling.index.str.startswith("bayes-")
    point = scaling[~is_bayes & (scaling["cells"] > 0)]
    bayes = scaling[is_bayes]
    if not point.empty and not bayes.empty:
        best_point = point["are_median"].idxmin()
        for method, row in bayes.iterrows():
            if row["cells"] == 0:  # said, not dropped: every scaling cell of it failed or was unscored
                verdict.append(f"- {method}: no scored scaling cell ({row['failed']} failed, {row['unscored']} "
                               f"unscored).")
                continue
            ratio = row["are_median"] / point.loc[best_point, "are_median"]
            word = "lower" if ratio < 1 else "higher"
            verdict.append(f"- {method}: median ARE {100 * row['are_median']:.2f}% vs {100 * point.loc[best_point, 'are_median']:.2f}% "
                           f"for the best point fit ({best_point}), {word} by a factor {max(ratio, 1 / ratio):.2f}; "
                           f"90% intervals cover {100 * row['coverage90']:.0f}% of test points (50%: "
                           f"{100 * row['coverage50']:.0f}%).")
    s = result.settings
    # None means the step was not applied (a study on every checkpoint): say so, not "cut at None"
    cut = ("early checkpoints cut at " + format(s["min_tokens"], "g") + " tokens" if s.get("min_tokens") is not None
           else "no early cut")
    thinned = f"thinned to {s['thin']} checkpoints per run" if s.get("thin") is not None else "not thinned"
    parts = [
        "# bayeslaw backtest report",
        "",
        f"Families: {', '.join(s['families'])}. Target: each family's largest model; test points: its checkpoints "
        f"with tokens >= {s['test_from']} x the run's last. Training: the k smallest models (k = {s['ks']}) "
        f"and a fraction q of the target's run (q = {s['fractions']}), {cut}, {thinned}; every method sees "
        f"the same rows.",
        "",
        f"{_timing_line(result.timing)} ({s['workers']} worker(s)); Bayesian fits: {s['fit_options']}.",
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
    for pooling, error in result.settings.get("loo_failures", {}).items():
        parts += [f"The {pooling} fit of the PSIS-LOO comparison failed and is left out of it: {error}", ""]
    left_out = s.get("left_out") or {}
    if left_out:
        parts += ["## Families not scored at some k", "",
                  "A family with fewer models below its target than k has no cell at that k (a hierarchical fit "
                  "still learns from its rows):", "", *(f"- k = {k}: {', '.join(fs)}" for k, fs in left_out.items()), ""]
    failed = result.failures
    if not failed.empty:
        parts += ["## Cells whose fit failed", "",
                  "Counted as `failed` in the tables above (the other methods' scores of the same cells are "
                  "kept); the study went on without them (rerun with resume to retry):", "",
                  _markdown(failed[["case", "family", "k", "q", "method", "error"]]), ""]
    unscored = cells[cells["are"].isna() & ~cells.index.isin(failed.index)]
    if not unscored.empty:
        columns = ["case", "family", "k", "q", "method", *(c for c in ("train_points", "error") if c in unscored)]
        parts += ["## Cells a method could not predict", "",
                  "Left out of the tables above for every method (they compare methods on the same cells):", "",
                  _markdown(unscored[columns].rename(columns={"error": "reason"}).fillna({"reason": ""})), ""]
    parts += ["Columns: ARE = mean |y - y_hat| / y over the test points (posterior median for Bayes); CRPS in nats; "
              "coverage = share of test points inside the new_run interval (point fits have none); width in nats.", ""]
    writers = {name: (lambda tmp, table=table: table.to_csv(tmp, index=False)) for name, table in tables.items()}
    writers.update({name: (lambda tmp, image=image: Path(tmp).write_bytes(image)) for name, image in images.items()})
    return _write_report(out, "backtest_report", writers, parts,
                         own=("loo_comparison.csv", "transfer_trajectories.png"))


def _write_report(out: Path, where: str, writers: dict, parts: list[str], own: tuple[str, ...] = ()) -> Path:
    """Make the report folder ``out`` (only now that everything in it is rendered: a failed report leaves
    none), write each file atomically (``writers``: name -> writer of a temporary path), then report.md.
    ``own``: the names this kind of report may write; those it does not write this time are removed (an earlier
    report's into the same folder, e.g. a 2-chain fit's rank.png, would otherwise stand beside this one)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{where}: cannot make the report folder {str(out)!r} ({err}); "
                         f"pass a folder that can be created and written") from err
    for name, writer in writers.items():
        write_atomic(out / name, writer)
    for name in sorted(set(own) - set(writers)):
        (out / name).unlink(missing_ok=True)
    report = out / "report.md"
    write_atomic(report, lambda tmp: Path(tmp).write_text("\n".join(parts)))
    return report


def _timing_line(timing: dict) -> str:
    """How many fits ran now, in how long, and how many cells a resume read back instead of fitting."""
    line = f"{timing['fits']} fits in {timing['wall_s']:.0f} s wall"
    if timing.get("reused"):
        line += f", {timing['reused']} more read back from the study folder (resumed)"
    return line
