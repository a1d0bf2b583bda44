"""The ``bayeslaw`` command line (typer). Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bayeslaw.data.files import write_atomic

app = typer.Typer(
    name="bayeslaw",
    help="Forecast the loss of a language model before training it: scaling laws with honest uncertainty.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _friendly_errors(command):
    """Turn the errors a user can cause into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from bayeslaw.data import DataNotFoundError, DataValidationError

        try:
            return command(*args, **kwargs)
        except (DataNotFoundError, DataValidationError, FileNotFoundError, KeyError, ValueError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _read_data(data: str, root: Path | None, loss_name: str | None) -> pd.DataFrame:
    """DATA is a CSV/parquet file in the bayeslaw schema, a known source name, or 'demo'."""
    from bayeslaw import data as bd
    from bayeslaw.simulation import load_demo

    if data == "demo":
        return load_demo().data
    if data in bd.SOURCES:
        return bd.load(data, root, **({"loss_name": loss_name} if loss_name else {}))
    if Path(data).suffix in (".csv", ".parquet", ".pq", ".gz"):
        return bd.read_table(data)
    raise ValueError(f"DATA {data!r} is neither a .csv/.parquet file nor a known source ({', '.join(bd.SOURCES)}) nor 'demo'")


def _table(df: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in df.columns:
        table.add_column(str(column), justify="right" if pd.api.types.is_numeric_dtype(df[column]) else "left")
    for _, row in df.iterrows():
        table.add_row(*(f"{v:.4g}" if isinstance(v, (float, np.floating)) else escape(str(v)) for v in row))
    return table


RootOption = Annotated[
    Path | None, typer.Option("--root", help="Folder of the public data (default: $BAYESLAW_DATA).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


@app.command()
@_friendly_errors
def sources(as_json: JsonOption = False) -> None:
    """List the public data sources bayeslaw can load."""
    from bayeslaw.data import sources as list_sources

    table = list_sources()
    if as_json:
        typer.echo(table.to_json(orient="records", indent=1))
    else:
        console.print(_table(table[["name", "folder", "description"]], "bayeslaw data sources"))


@app.command()
@_friendly_errors
def load(
    name: Annotated[str, typer.Argument(help="A source name (see `bayeslaw sources`).")],
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric, where the source has several.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the long table to this CSV or parquet file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Load one source into the long table and summarise it by family and model."""
    df = _read_data(name, root, loss_name)
    summary = (
        df.groupby(["family", "model"], sort=False)
        .agg(params=("params", "max"), runs=("run", "nunique"), rows=("loss", "size"), max_tokens=("tokens", "max"),
             min_loss=("loss", "min"))
        .reset_index()
    )
    if out is not None:
        writer = (lambda p: df.to_parquet(p, index=False)) if out.suffix in (".parquet", ".pq") else (
            lambda p: df.to_csv(p, index=False))
        write_atomic(out, writer)
    if as_json:
        typer.echo(json.dumps({"rows": len(df), "notes": df.attrs, "models": summary.to_dict(orient="records")}, indent=1))
        return
    console.print(_table(summary, f"{name}: {len(df)} rows, loss = {df['loss_name'].iloc[0]}"))
    for key, sentences in df.attrs.items():
        for sentence in sentences:
            console.print(f"[dim]{key}: {sentence}[/]")
    if out is not None:
        console.print(f"wrote {out}")


@app.command()
@_friendly_errors
def simulate(
    out: Annotated[Path, typer.Option(help="CSV to write; the truth goes beside it as <name>_truth.json.")],
    seed: Annotated[int, typer.Option(help="Random seed (equal seeds, identical data).")] = 0,
    families: Annotated[int, typer.Option(help="Number of families.")] = 3,
    seeds: Annotated[int, typer.Option(help="Training runs (seeds) per family and size.")] = 3,
    sigma_seed: Annotated[float, typer.Option(help="Run-to-run sd of log loss.")] = 0.01,
) -> None:
    """Simulate a multi-family, multi-seed data set with known true parameters."""
    from bayeslaw.simulation import simulate as draw

    sim = draw(seed=seed, families=families, seeds=seeds, sigma_seed=sigma_seed)
    truth_path = out.with_name(out.stem + "_truth.json")
    write_atomic(out, lambda p: sim.data.to_csv(p, index=False, float_format="%.10g"))
    write_atomic(truth_path, lambda p: p.write_text(json.dumps(sim.truth, indent=1) + "\n"))
    console.print(f"wrote {out} ({len(sim.data)} rows) and {truth_path}")


@app.command("fit-point")
@_friendly_errors
def fit_point_command(
    data: Annotated[str, typer.Argument(help="CSV/parquet in the bayeslaw schema, a source name, or 'demo'.")],
    method: Annotated[str, typer.Option(help="epoch (Huber + L-BFGS grid) or hitchhiker (least squares).")] = "epoch",
    family: Annotated[list[str] | None, typer.Option(help="Fit only these families (repeatable).")] = None,
    min_tokens: Annotated[float, typer.Option(help="Drop checkpoints with tokens <= this (0: keep all).")] = 1e10,
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric, for a source name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit a Chinchilla law to each family by a published point-estimate method."""
    from bayeslaw.data import cut_early
    from bayeslaw.inference.point import fit_point

    df = _read_data(data, root, loss_name)
    df = _select_families(df, family)
    df = cut_early(df, min_tokens=min_tokens or None)
    rows = []
    for fam, rows_f in df.groupby("family", sort=True):
        fit = fit_point(rows_f, method=method)
        rows.append({"family": fam, "points": len(rows_f), **fit.params, "objective": fit.objective})
    table = pd.DataFrame(rows)
    if as_json:
        typer.echo(table.to_json(orient="records", indent=1))
    else:
        console.print(_table(table, f"{method} point fits, L = E + A/N^alpha + B/D^beta"))


def _select_families(df: pd.DataFrame, families: list[str] | None) -> pd.DataFrame:
    if not families:
        return df
    unknown = sorted(set(families) - set(df["family"]))
    if unknown:
        raise ValueError(f"unknown family {unknown}; the data has {sorted(df['family'].unique())}")
    return df[df["family"].isin(families)]


@app.command()
@_friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo report.")] = Path("bayeslaw-demo"),
    chains: Annotated[int, typer.Option(help="NUTS chains.")] = 4,
    draws: Annotated[int, typer.Option(help="NUTS draws (and warmup) per chain.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Fit the embedded demo data (simulated, known truth) and predict each family's largest model.

    Point fits (epoch, hitchhiker) per family and the hierarchical Bayesian fit of all families,
    each on the smaller models; the target is each family's largest model (last 30% of its run).
    """
    from bayeslaw.evaluation import bayes_backtest, point_backtest
    from bayeslaw.simulation import load_demo

    sim = load_demo()
    status = (lambda text: console.status(text, spinner="dots")) if not as_json else (
        lambda text: contextlib.nullcontext())
    with status("point fits: epoch (4500-start L-BFGS grid) and hitchhiker (least squares)..."):
        point = point_backtest(sim.data, methods=("epoch", "hitchhiker"))
    with status(f"hierarchical NUTS fit ({chains} chains x {draws} draws)..."):
        bayes, result = bayes_backtest(sim.data, fit_options={"chains": chains, "draws": draws, "warmup": draws,
                                                               "progress": False})
    predictions = pd.concat([point.predictions, bayes.predictions], ignore_index=True)
    predictions["true_law"] = [float(sim.true_loss(f, p, t)) for f, p, t in
                               zip(predictions["family"], predictions["params"], predictions["tokens"], strict=True)]
    scores = pd.concat([point.scores, bayes.scores], ignore_index=True)
    headline = (predictions.groupby(["family", "method"], sort=True)
                .agg(observed=("loss", "mean"), predicted=("predicted", "mean"), q05=("q05", "mean"),
                     q95=("q95", "mean"))
                .reset_index()
                .merge(scores[["family", "method", "are"] + [c for c in ("coverage90",) if c in scores]],
                       on=["family", "method"]))
    diagnostics = result.diagnostics(warn=False)
    write_atomic(out / "predictions.csv", lambda p: predictions.to_csv(p, index=False))
    write_atomic(out / "scores.csv", lambda p: scores.to_csv(p, index=False))
    write_atomic(out / "fits.csv", lambda p: pd.concat([point.fits, bayes.fits]).to_csv(p, index=False))
    result.save(out / "fit.nc")
    if as_json:
        typer.echo(json.dumps({"scores": scores.to_dict(orient="records"), "diagnostics": str(diagnostics),
                               "out": str(out)}, indent=1, default=float))
        return
    console.print(_table(headline, "demo: each family's largest model, last 30% of its run (loss in nats; "
                                   "q05..q95 = 90% interval of a new run)"))
    console.print(f"NUTS diagnostics: {diagnostics}", highlight=False, markup=False)  # keeps 'tau[e]' whole
    console.print(f"report written to {out}/ (fits.csv, predictions.csv, scores.csv, fit.nc)")


@app.command()
@_friendly_errors
def backtest(
    data: Annotated[str, typer.Argument(help="CSV/parquet in the bayeslaw schema, a source name, or 'demo'.")],
    out: Annotated[Path, typer.Option(help="Report folder (cells.csv, aggregates, PNG figures, report.md).")] = Path(
        "bayeslaw-backtest"),
    family: Annotated[list[str] | None, typer.Option(help="Only these families (repeatable).")] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="Numbers of smallest models to train on (repeatable; "
                                                             "default 2 .. all below the target).")] = None,
    q: Annotated[list[float] | None, typer.Option("--q", help="Fractions of the target's run seen (repeatable; "
                                                               "default 0, 0.1, 0.2, 0.3, 0.5).")] = None,
    pooling: Annotated[list[str] | None, typer.Option(help="Bayesian variants (default hierarchical, none).")] = None,
    transfer: Annotated[bool, typer.Option(help="Also the one-model transfer case per family.")] = True,
    chains: Annotated[int, typer.Option(help="NUTS chains per Bayesian fit.")] = 2,
    draws: Annotated[int, typer.Option(help="NUTS draws (and warmup) per chain.")] = 500,
    thin: Annotated[int, typer.Option(help="Log-spaced checkpoints kept per run.")] = 8,
    workers: Annotated[int, typer.Option(help="Processes running fits in parallel.")] = 1,
    quick: Annotated[bool, typer.Option(help="Small study for a smoke test: k=2, q in {0, 0.3}, hierarchical "
                                             "only, 1 chain x 150 draws, no transfer or LOO.")] = False,
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric, for a source name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The Hitchhiker's Guide backtest with uncertainty: point fits vs Bayesian fits, and a report folder."""
    from bayeslaw.evaluation import DEFAULT_FRACTIONS
    from bayeslaw.evaluation import backtest as run_backtest
    from bayeslaw.plots import backtest_report

    df = _select_families(_read_data(data, root, loss_name), family)
    options = {"ks": tuple(k) if k else None, "fractions": tuple(q) if q else DEFAULT_FRACTIONS,
               "poolings": tuple(pooling) if pooling else ("hierarchical", "none"), "transfer": transfer,
               "thin": thin, "workers": workers, "fit_options": {"chains": chains, "draws": draws, "warmup": draws}}
    if quick:
        options.update(ks=tuple(k) if k else (2,), fractions=tuple(q) if q else (0.0, 0.3),
                       poolings=tuple(pooling) if pooling else ("hierarchical",), transfer=False,
                       fit_options={"chains": 1, "draws": 150, "warmup": 150})
    result = run_backtest(df, families=family or None, progress=not as_json, **options)
    report = backtest_report(result, out)
    table = result.aggregate(("case", "method"))
    if as_json:
        typer.echo(json.dumps({"aggregate": table.to_dict(orient="records"), "timing": result.timing,
                               "report": str(report)}, indent=1, default=float))
        return
    console.print(_table(table[["case", "method", "cells", "are_median", "are_mean", "crps_mean", "coverage50",
                                "coverage90"]], "backtest: ARE (fraction) and interval coverage on held-out targets"))
    console.print(f"{result.timing['fits']} fits in {result.timing['wall_s']:.0f} s; report written to {report}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
