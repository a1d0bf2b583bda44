"""The ``bayeslaw`` command line (typer). Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, get_args

import numpy as np
import pandas as pd
import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bayeslaw.data.files import jsonable, write_atomic
from bayeslaw.data.schedules import DecayType
from bayeslaw.inference.config import (DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT, Duplicates, PointMethod, Pooling,
                                       PredictionKind, Rising, check_choice)
from bayeslaw.laws import DEFAULT_FORM, forms

app = typer.Typer(
    name="bayeslaw",
    help="Forecast the loss of a language model before training it: scaling laws with honest uncertainty.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning as one line on stderr, as an error is (Python's form adds the file, line and source)."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _friendly_errors(command):
    """Turn the errors a user can cause into one line on stderr and exit code 2, and warnings into one line."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from bayeslaw.data import DataNotFoundError, DataValidationError

        try:
            _import_laws()
            with warnings.catch_warnings():  # restores Python's own display when the command ends
                warnings.showwarning = _show_warning
                # the commands that fit (fit, demo, live) print the diagnostics table themselves, and backtest
                # and study their cells' r-hat: bayeslaw.fit's (and fit_many's) ConvergenceWarning would repeat it
                warnings.filterwarnings("ignore", message="fit(_many)?: not converged", category=RuntimeWarning)
                return command(*args, **kwargs)
        except (DataNotFoundError, DataValidationError, FileNotFoundError, KeyError, ValueError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except OSError as err:  # an --out that is a folder, a path under a file, no permission: the path and why
            where = err.filename if err.filename is not None else ""
            message = f"{str(where)!r}: {err.strerror or err}" if where else str(err)
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _import_laws() -> None:
    """Import the modules named in BAYESLAW_LAWS ("module[,module]"): laws registered outside bayeslaw
    (``bayeslaw.laws.register``), known to the commands as the built-in ones are."""
    import importlib
    import os

    from bayeslaw.laws import LAWS_ENV

    value = os.environ.get(LAWS_ENV, "")
    for name in (part.strip() for part in value.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"{LAWS_ENV}={value!r}: cannot import module {name!r} ({error}); name modules "
                             f"importable from PYTHONPATH, comma-separated") from None


def _check_number(value: float | None, option: str, what: str = "a number >= 0") -> None:
    """An option's number: finite and >= 0, else one line naming the option (the API's message names its argument)."""
    if value is not None and not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{option} {value:g}: need {what}")


TABLE_OUT_SUFFIXES = (".csv", ".parquet", ".pq")  # the tables _table_writer writes


FIT_OUT_SUFFIX = ".nc"  # a fit file is netCDF (Fit.save), whatever its name says


def _check_parents(out: Path, option: str) -> None:
    """No file where one of an output path's parents must be a folder."""
    blocker = next((p for p in out.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f"{option} {str(out)!r}: {str(blocker)!r} is a file, not a folder")


def _check_out_file(out: Path, option: str = "--out", *, table: bool = True, fit: bool = False,
                    example: str = "runs.csv") -> None:
    """An output file's path, checked before any work: not a folder, and no file where a folder must be; a
    table's (``table``, what _table_writer writes) name ends in one of TABLE_OUT_SUFFIXES, its format, and a
    fit file's (``fit``) in FIT_OUT_SUFFIX."""
    if out.is_dir():
        raise ValueError(f"{option} {str(out)!r} is a folder; give a file name, e.g. {str(out / example)!r}")
    _check_parents(out, option)
    if table:
        _table_suffix(out, option)
    if fit:
        _fit_suffix(out, option)


def _check_out_folder(out: Path, option: str = "--out") -> None:
    """An output folder's path, checked before any work (the demo's fits take minutes): not a file, and no file
    where one of its parents must be a folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {str(out)!r} is a file; the command writes a folder of files there: give a "
                         f"folder name (it is made if it does not exist)")
    _check_parents(out, option)


def _check_not_input(out: Path, inputs, option: str = "--out", *, what: str = "the DATA file read") -> None:
    """An output file that is one of the files read would be replaced by what the command writes (`load` by its
    completed table, `live` by its forecast after the fit, `import` by its converted table): refused."""
    same = [p for p in map(Path, inputs) if p.exists() and out.exists() and p.resolve() == out.resolve()]
    if same:
        raise ValueError(f"{option} {str(out)!r} is {what} ({str(same[0])!r}); writing it would replace the data "
                         f"being read: give another file name")


def _fit_suffix(out: Path, option: str = "--out") -> None:
    """A fit file's name ends in FIT_OUT_SUFFIX: any other (.json, .csv, none) is refused, as a table's is,
    since netCDF under a name that says JSON or CSV misleads whoever opens it."""
    if out.suffix.lower() != FIT_OUT_SUFFIX:
        ends = f"ends in {out.suffix!r}" if out.suffix else "has no suffix"
        raise ValueError(f"{option} {str(out)!r}: a fit file is written as netCDF ({FIT_OUT_SUFFIX}); its name {ends}, "
                         f"e.g. {str(out.with_suffix(FIT_OUT_SUFFIX))!r}")


def _table_suffix(out: Path, option: str = "--out") -> str:
    """The format a table's name says, one of TABLE_OUT_SUFFIXES; any other (.json, .txt, none) is refused: it
    would get CSV text under a name that says otherwise."""
    suffix = out.suffix.lower()
    if suffix not in TABLE_OUT_SUFFIXES:
        ends = f"ends in {out.suffix!r}" if out.suffix else "has no suffix"
        raise ValueError(f"{option} {str(out)!r}: a table is written as {', '.join(TABLE_OUT_SUFFIXES)}; its name "
                         f"{ends}")
    return suffix


def _table_writer(df: pd.DataFrame, out: Path, float_format: str | None = None):
    """Write ``df`` as parquet for a .parquet/.pq name, as CSV for a .csv name (another name: a ValueError)."""
    if _table_suffix(out) in (".parquet", ".pq"):
        return lambda p: df.to_parquet(p, index=False)
    return lambda p: df.to_csv(p, index=False, float_format=float_format)


TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".gz")


def _check_data_name(data: str, *, also: tuple[str, ...] = ()) -> None:
    """DATA names a CSV/parquet file, a known source, 'demo' or one of ``also`` (a command's own: study's
    'shared'); else one line listing what it may be, before anything is read or made."""
    from bayeslaw import data as bd

    if data in (*also, "demo", *bd.SOURCES) or Path(data).suffix.lower() in TABLE_SUFFIXES:
        return
    extra = "".join(f"{name!r}, " for name in also)
    raise ValueError(f"DATA {data!r} is neither {extra}a .csv/.parquet file nor a known source "
                     f"({', '.join(bd.SOURCES)}) nor 'demo'")


def _read_data(data: str, root: Path | None, loss_name: str | None, *, duplicates: str | None = None,
               note_family: bool = True) -> pd.DataFrame:
    """DATA is a CSV/parquet file in the bayeslaw schema, a known source name, or 'demo'. ``duplicates``: the
    command's --duplicates choice, where it has the option (None: it has not). ``note_family``: say on stderr
    that a table without a family column is read as one family (`load` prints the whole report itself)."""
    from bayeslaw import data as bd
    from bayeslaw.simulation import load_demo

    _check_data_name(data)
    if data in bd.SOURCES:
        return bd.load(data, root, **({"loss_name": loss_name} if loss_name else {}))
    if data == "demo":
        table = load_demo().data
    else:
        # 'last': a file's repeated checkpoints (a restart's) pass its validation and the fit keeps the last of
        # each; refused here, they never reached the option. 'error' still refuses here, naming the file's lines
        try:
            table = bd.read_table(data, duplicates=duplicates != "last")
        except bd.DuplicateRowsError as error:
            if duplicates is None:  # a command without the option: no advice it cannot follow
                raise
            raise bd.DuplicateRowsError(f"{error}; --duplicates last keeps the last logged row of each (a "
                                        f"restart's)") from None
        # a minimal table's family is filled (read_table's report, which only `load` printed): said on stderr,
        # since a table that left the column out by mistake had all its families fitted as one
        report = table.attrs.get("import_report", [])
        if note_family and any(line.startswith("filled with defaults: family") for line in report):
            err_console.print(f"note: {data!r} has no 'family' column: its {table['run'].nunique()} run(s) are read "
                              f"as one family, {table['family'].iloc[0]!r}", highlight=False, markup=False,
                              soft_wrap=True)
    if loss_name is None:
        return table
    kept = table[table["loss_name"] == loss_name]
    if kept.empty:
        raise ValueError(f"--loss-name {loss_name!r}: no row of {data!r} has it (column 'loss_name' holds "
                         f"{sorted(table['loss_name'].astype(str).unique())})")
    return kept.reset_index(drop=True)


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else escape(str(v))


def _cells(values: pd.Series) -> list[str]:
    """A column's cells, formatted by its own dtype (a row of mixed columns would turn steps into floats)."""
    return [str(v) for v in values] if pd.api.types.is_integer_dtype(values) else [_cell(v) for v in values]


def _table(df: pd.DataFrame, title: str) -> RenderableType:
    """``df`` as a Rich table under ``title``: in its title where it fits the table's width, else on a line of its
    own above it (Rich wraps a title to the table's width: a long run name came out a word per line)."""
    table = _bare_table(df)
    if console.measure(table).maximum >= len(title):
        table.title, table.title_justify = title, "left"
        return table
    return Group(Text(title, style="italic", overflow="fold"), table)  # a long run name folds, not a word a line


def _bare_table(df: pd.DataFrame) -> Table:
    table = Table()
    if len(df.columns) * 9 > console.width and len(df) < len(df.columns):
        # wider than the terminal (a schedule law's dozen constants): one row per column, else Rich cuts
        # every cell to an ellipsis
        text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        table.add_column("", justify="left")
        for i, (_, row) in enumerate(df.iterrows()):
            table.add_column(escape(" ".join(str(row[c]) for c in text)) or str(i), justify="right")
        for column in df.columns.drop(text):
            table.add_row(escape(str(column)), *_cells(df[column]))
        return table
    cells = [_cells(df[column]) for column in df.columns]
    widths = [max(len(str(column)), *map(len, values)) for column, values in zip(df.columns, cells, strict=True)]
    # wider than the terminal (3 characters of border per column): a number column takes its cells' width and
    # folds its header onto two lines, leaving the names their room; a name that still does not fit folds.
    # (Rich's own squeeze cut names and headers to an ellipsis: are_median and are_mean both "are_me…")
    narrow = sum(widths) + 3 * len(widths) + 1 > console.width
    for column, values in zip(df.columns, cells, strict=True):
        numeric = pd.api.types.is_numeric_dtype(df[column])
        fixed = max(*map(len, values), -(-len(str(column)) // 2)) if numeric and narrow else None
        table.add_column(escape(str(column)), justify="right" if numeric else "left", overflow="fold", width=fixed)
    for row in zip(*cells, strict=True):
        table.add_row(*row)
    return table


RootOption = Annotated[
    Path | None, typer.Option("--root", help="Folder of the public data (default: $BAYESLAW_DATA).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
DuplicatesOption = Annotated[str, typer.Option(help="Two rows of one run at the same checkpoint (tokens, or a "
                                                     "schedule law's step): 'error' (refuse, naming them) or 'last' "
                                                     "(keep the last logged, a restart's).")]
RisingOption = Annotated[str, typer.Option(help="A run whose loss ends over 25% above its first checkpoint after the "
                                                "cut (diverged): 'error' (refuse, naming it), 'keep', or 'drop' (leave "
                                                "it out, saying which).")]


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
def cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete every compiled program in it first (other files "
                                                        "stay); fits then compile again.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Where bayeslaw keeps compiled programs (BAYESLAW_COMPILATION_CACHE), how many and how much space, and
    the bound (BAYESLAW_COMPILATION_CACHE_MAX_MB) past which importing bayeslaw deletes the least recently used."""
    from bayeslaw import compilation_cache_info

    info = compilation_cache_info(clear=clear)
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    if info["folder"] is None:
        typer.echo("no compilation cache (BAYESLAW_COMPILATION_CACHE=off, or its folder cannot be written)")
        return
    bound = "set by JAX, not bayeslaw" if info["bound_mb"] is None else f"{info['bound_mb']:.0f} MB"
    if clear:
        typer.echo(f"cleared {info['cleared_mb']:.1f} MB")
    typer.echo(f"{info['folder']}: {info['programs']} programs, {info['mb']:.1f} MB (bound: {bound})")


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
    if out is not None:  # before the table is read (a large source takes a while)
        _check_out_file(out)
        _check_not_input(out, [name])
    df = _read_data(name, root, loss_name, note_family=False)
    summary = (
        df.groupby(["family", "model"], sort=False)
        .agg(params=("params", "max"), runs=("run", "nunique"), rows=("loss", "size"), max_tokens=("tokens", "max"),
             min_loss=("loss", "min"))
        .reset_index()
    )
    if out is not None:
        write_atomic(out, _table_writer(df, out))
    if as_json:
        typer.echo(_json({"rows": len(df), "notes": df.attrs, "models": summary.to_dict(orient="records")}))
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
    out: Annotated[Path, typer.Option(help="CSV (or .parquet) to write; the truth goes beside it as "
                                           "<name>_truth.json.")],
    seed: Annotated[int, typer.Option(help="Random seed (equal seeds, identical data).")] = 0,
    families: Annotated[int, typer.Option(help="Number of families.")] = 3,
    seeds: Annotated[int, typer.Option(help="Training runs (seeds) per family and size.")] = 3,
    sigma_seed: Annotated[float, typer.Option(help="Run-to-run sd of log loss.")] = 0.01,
) -> None:
    """Simulate a multi-family, multi-seed data set with known true parameters."""
    from bayeslaw.simulation import simulate as draw

    _check_number(seed, "--seed", "a whole number >= 0 (equal seeds, identical data)")  # the option, not the API's
    _check_out_file(out)
    truth_path = out.with_name(out.stem + "_truth.json")
    # both files are checked before either is written: a folder under the truth's name failed after the table
    if truth_path.is_dir():
        raise ValueError(f"--out {str(out)!r}: the truth goes beside it as {str(truth_path)!r}, which is a folder; "
                         f"move it or give --out another name")
    sim = draw(seed=seed, families=families, seeds=seeds, sigma_seed=sigma_seed)
    write_atomic(out, _table_writer(sim.data, out, "%.10g"))
    write_atomic(truth_path, lambda p: p.write_text(json.dumps(sim.truth, indent=1) + "\n"))
    console.print(f"wrote {out} ({len(sim.data)} rows) and {truth_path}")


@app.command("fit-point")
@_friendly_errors
def fit_point_command(
    data: Annotated[str, typer.Argument(help="CSV/parquet in the bayeslaw schema, a source name, or 'demo'.")],
    method: Annotated[str, typer.Option(
        help="epoch (Huber + L-BFGS grid), hitchhiker (least squares) or adamw (a law's published optimiser path: "
             "multipower's, fitted one model at a time).")] = "epoch",
    family: Annotated[list[str] | None, typer.Option(help="Fit only these families (repeatable or "
                                                           "comma-separated).")] = None,
    form: Annotated[str, typer.Option(help="The law (bayeslaw.laws.LAWS), e.g. chinchilla, multipower, annealing.")] = "chinchilla",
    min_tokens: Annotated[float, typer.Option(help="Drop checkpoints with tokens <= this (0: keep all); laws that "
                                                   "read tokens only.")] = 1e10,
    polish: Annotated[int, typer.Option(min=0, help="epoch: run the N best ends of the grid on to their basin's "
                                                    "minimum (0: the published protocol's answer, scipy's stopping "
                                                    "rule).")] = 0,
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric (loss_name), for a source name or a file with several.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit a law to each family (each model of a family, for a law without a size term) by a published
    point-estimate method."""
    from bayeslaw.data import cut_early
    from bayeslaw.inference.point import fit_point
    from bayeslaw.laws import get_law

    if method not in get_args(PointMethod):  # before the data are read
        raise ValueError(f"--method: unknown method {method!r}; valid: {', '.join(map(repr, get_args(PointMethod)))}")
    _check_number(min_tokens, "--min-tokens", "a number of tokens >= 0 (0 keeps all rows)")
    law = get_law(form)
    _check_point_method(method, law, polish)
    df = _read_data(data, root, loss_name)
    df = _select_families(df, _names(family))
    # a column the law reads, absent (a minimal table's tokens are filled as NaN): named as `fit` names it, not
    # by the early cut's message (min_tokens=None) or, with --min-tokens 0, by one family's rows
    absent = [c for c in law.columns_needed if c not in df.columns or df[c].isna().all()]
    if absent:
        raise ValueError(f"fit-point: column(s) {absent} missing in {data!r}; the {law.name} law needs them (it "
                         f"reads {list(law.columns_needed)})")
    if "tokens" in law.columns_needed:
        before, df = df, cut_early(df, min_tokens=min_tokens or None)
        if df.empty:
            raise ValueError(f"fit-point: none of the {len(before)} rows has more than --min-tokens {min_tokens:g} "
                             f"tokens (the early cut); lower it (0 keeps every row)")
        if len(df) < len(before):  # said, not dropped silently (on stderr: --json stays one document)
            whole = sorted(set(before["run"]) - set(df["run"])) if "run" in before else []
            runs = f", {len(whole)} run(s) whole (e.g. {whole[:2]})" if whole else ""
            typer.echo(f"fit-point: the early cut (--min-tokens {min_tokens:g}) left out {len(before) - len(df)} of "
                       f"{len(before)} rows{runs}; --min-tokens 0 keeps them", err=True)
    # a law without a size term (a schedule law) describes one model, and a published path fits one size
    # (Luo et al. fit each model alone): fit each model apart
    keys = ["family"] if "params" in law.columns_needed and method != "adamw" else ["family", "model"]
    rows = []
    for key, rows_f in df.groupby(keys, sort=True):
        # cut by --min-tokens above, as the user chose (said there): no advice to cut them
        fit = fit_point(rows_f, form=law, method=method, polish=polish, warn_early=False)
        # a schedule law's constants at the rows' median size and peak rate, as `bayeslaw fit` quotes them
        at = law.reference_point(law.columns(rows_f, where="fit-point")) if law.constants_at is not None else {}
        rows.append({**dict(zip(keys, key, strict=True)), "method": fit.method, "points": len(rows_f),
                     **fit.params_at(at), **{f"at_{k}": v for k, v in at.items()}, "objective": fit.objective})
    table = pd.DataFrame(rows)
    if as_json:
        typer.echo(_json(_records(table)))  # every digit (to_json kept 10 decimal places: 3e-12 came out 0.0)
    else:
        where = " at each row's at_params and at_peak_lr (the rows' median)" if any(
            c.startswith("at_") for c in table.columns) else ""
        console.print(_table(table, f"{', '.join(sorted(table['method'].unique()))} point fits, {law.formula} "
                                    f"(loss in nats per token){where}"))


def _check_point_method(method: str, law, polish: int = 0, option: str = "--method") -> None:
    """fit-point's --method (report's and plan's --point-method) against the law and --polish, in the options'
    words: fit_point's own checks say method='epoch' (the API's), and run after the table is read."""
    check_choice(method, get_args(PointMethod), option)
    if polish and method != "epoch":
        raise ValueError(f"--polish {polish} runs the epoch grid's best ends on; {option} {method} has no grid: drop "
                         f"--polish or use {option} epoch")
    if method == "hitchhiker" and law.point_start is None:
        raise ValueError(f"{option} hitchhiker (least squares from one start) needs a law with a start; the {law.name} "
                         f"law has none (forms with one: {forms(lambda law: law.point_start)}): use {option} epoch")
    if method == "adamw" and law.path is None:
        raise ValueError(f"{option} adamw follows a law's published optimiser path; the {law.name} law has none "
                         f"(forms with one: {forms(lambda law: law.path)}): use {option} epoch")


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

    # in the options' words, before minutes of fitting (the library's message named bayes_backtest's chains=;
    # a file at --out failed only when the first result was written)
    _check_study_options((), chains=chains, draws=draws)
    _check_out_folder(out)
    sim = load_demo()
    status = (lambda text: console.status(text, spinner="dots")) if not as_json else (
        lambda text: contextlib.nullcontext())
    # The point fits run in a thread beside NUTS: both spend much of their time in XLA's compiler, which
    # uses one core, so together they keep a 2-core machine busy. The epoch fits start from the grid's
    # coarse 3^5 subset: the full 4500 starts take minutes per family.
    with status(f"point fits (epoch from a 243-start L-BFGS grid, hitchhiker) and the hierarchical NUTS fit "
                f"({chains} chains x {draws} draws)..."), ThreadPoolExecutor(max_workers=1) as pool:
        point_job = pool.submit(point_backtest, sim.data, methods=("epoch", "hitchhiker"), point_grid="coarse")
        bayes, result = bayes_backtest(sim.data, fit_options={"chains": chains, "draws": draws, "warmup": draws,
                                                               "progress": False})
        point = point_job.result()
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
    with status("fit report: posterior predictive curves, forest, seed variance, trace and rank plots..."):
        from bayeslaw.report import fit_report

        # least squares from one start per family (seconds) for the point-fit overlay; the epoch grid fits
        # of every family are already in fits.csv
        fit_report(result, out / "report", data=result.training_rows(),
                   point_fits=_point_fits(result, "hitchhiker", result.families))
    if as_json:
        # _json: a point fit's coverage and width (NaN) as null, strict JSON as every other command's --json
        typer.echo(_json({"scores": _records(scores), "diagnostics": str(diagnostics), "out": str(out)}))
        return
    console.print(_table(headline, "demo: each family's largest model, last 30% of its run (loss in nats; "
                                   "q05..q95 = 90% interval of a new run)"))
    console.print(f"NUTS diagnostics: {diagnostics}", highlight=False, markup=False)  # keeps 'tau[e]' whole
    console.print(f"report written to {out}/ (fits.csv, predictions.csv, scores.csv, fit.nc; plots and "
                  f"diagnostics in report/report.md)")


SchedulerOption = Annotated[str | None, typer.Option(
    help="Address of a running Dask scheduler (e.g. tcp://host:8786) to run the fits on.")]
WorkersOption = Annotated[int, typer.Option(
    help="Without --scheduler: fits run on a local Dask cluster of this many processes (1: here, one by one).")]
ResumeOption = Annotated[bool, typer.Option(
    help="Keep the cells already in the --out folder (same version and configuration) and run only the rest.")]


def _check_study_options(poolings, **counts: int) -> None:
    """A study's options checked before the data is read or anything runs (the library checks them again
    before any fit, but a bad one named here as the user typed it saves reading a large table first)."""
    for pooling in poolings:
        check_choice(pooling, POOLINGS, "--pooling")
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"--{name} {value}: need a whole number >= 1")


def _run_study(load, out: Path, options: dict, *, families, scheduler, resume, as_json: bool) -> None:
    """Run a backtest study on the table ``load()`` reads, with its cells kept in ``out``/cells, write the
    report, print the summary."""
    from bayeslaw.evaluation import backtest as run_backtest
    from bayeslaw.executor import connect
    from bayeslaw.report import backtest_report

    _check_out_folder(out)  # a file at --out: named before the scheduler, the table and the fits
    # the scheduler first: an address that does not answer is named before a large table is read
    client = connect(scheduler) if scheduler is not None else None
    try:
        result = run_backtest(load(), families=families or None, progress=not as_json, client=client, folder=out,
                              resume=resume, **options)
    finally:
        if client is not None:
            client.close()
    report = backtest_report(result, out)
    table = result.aggregate(("case", "method"))
    failed = result.failures
    if as_json:
        # _json: a NaN (an unscored group's ARE, a point fit's coverage) is null, so the output is strict JSON
        typer.echo(_json({"aggregate": _records(table), "timing": result.timing,
                          "failed": _records(failed[["case", "family", "k", "q", "method", "error"]]),
                          "report": str(report)}))
        return
    console.print(_table(table[["case", "method", "cells", "unscored", "failed", "are_median", "are_mean", "crps_mean",
                                "coverage50", "coverage90"]],
                         "backtest: ARE (fraction) and interval coverage on held-out targets"))
    if not failed.empty:
        console.print(f"[yellow]{len(failed)} cell(s) failed (listed in the report; --resume retries them):[/]")
        for _, row in failed.head(5).iterrows():
            console.print(f"  {row['case']} {row['family']} k={row['k']} q={row['q']:g} {row['method']}: "
                          f"{escape(str(row['error']))}", highlight=False)
    timing = result.timing  # the fits run now; a resume's cells read back took no time here
    reused = f", {timing['reused']} read back from {out} (resumed)" if timing.get("reused") else ""
    console.print(f"{timing['fits']} fits in {timing['wall_s']:.0f} s{reused}; report written to {report}")


@app.command()
@_friendly_errors
def backtest(
    data: Annotated[str, typer.Argument(help="CSV/parquet in the bayeslaw schema, a source name, or 'demo'.")],
    out: Annotated[Path, typer.Option(help="Report folder (cells.csv, aggregates, PNG figures, report.md; the "
                                           "finished fits in cells/).")] = Path("bayeslaw-backtest"),
    family: Annotated[list[str] | None, typer.Option(help="Only these families (repeatable).")] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="Numbers of smallest models to train on (repeatable; "
                                                             "default 2 .. all below the target).")] = None,
    q: Annotated[list[float] | None, typer.Option("--q", help="Fractions of the target's run seen (repeatable; "
                                                               "default 0, 0.1, 0.2, 0.3, 0.5).")] = None,
    pooling: Annotated[list[str] | None, typer.Option(help="Bayesian variants (default hierarchical, none).")] = None,
    transfer: Annotated[bool | None, typer.Option(help="Also the one-model transfer case per family (default: "
                                                        "yes; no with --quick).")] = None,
    chains: Annotated[int | None, typer.Option(help="NUTS chains per Bayesian fit (default 4; 1 with --quick).")] = None,
    draws: Annotated[int | None, typer.Option(help="NUTS draws (and warmup) per chain (default 1000; 150 with "
                                                   "--quick).")] = None,
    thin: Annotated[int, typer.Option(help="Log-spaced checkpoints kept per run.")] = 8,
    workers: WorkersOption = 1,
    scheduler: SchedulerOption = None,
    resume: ResumeOption = False,
    quick: Annotated[bool, typer.Option(help="Small study for a smoke test: k=2, q in {0, 0.3}, hierarchical "
                                             "only, 1 chain x 150 draws, no transfer or LOO (an option given "
                                             "as well wins).")] = False,
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric (loss_name), for a source name or a file with several.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The Hitchhiker's Guide backtest with uncertainty: point fits vs Bayesian fits, and a report folder."""
    from bayeslaw.data.split import TEST_FROM
    from bayeslaw.evaluation import DEFAULT_FRACTIONS

    # --quick changes only the defaults: an option the user gave explicitly wins (None: not given)
    chains = chains if chains is not None else (1 if quick else 4)
    draws = draws if draws is not None else (150 if quick else 1000)
    _check_study_options(pooling or (), chains=chains, draws=draws, thin=thin, workers=workers)
    for fraction in q or ():  # the split's own check names target_fraction=, not the option typed
        if not 0.0 <= fraction < TEST_FROM:
            raise ValueError(f"--q {fraction:g}: need a fraction of the target's run seen in [0, {TEST_FROM:g}) (its "
                             f"last {1 - TEST_FROM:.0%} is the test)")
    options = {"ks": tuple(k) if k else None, "fractions": tuple(q) if q else DEFAULT_FRACTIONS,
               "poolings": tuple(pooling) if pooling else ("hierarchical", "none"),
               "transfer": transfer if transfer is not None else not quick,
               "thin": thin, "workers": workers, "fit_options": {"chains": chains, "draws": draws, "warmup": draws}}
    if quick:
        options.update(ks=tuple(k) if k else (2,), fractions=tuple(q) if q else (0.0, 0.3),
                       poolings=tuple(pooling) if pooling else ("hierarchical",), compare=False)
    _run_study(lambda: _select_families(_read_data(data, root, loss_name), family), out, options, families=family,
               scheduler=scheduler, resume=resume, as_json=as_json)


@app.command()
@_friendly_errors
def study(
    data: Annotated[str, typer.Argument(help="'shared' (every shared family with >= 3 sizes), a CSV/parquet "
                                             "file, a source name, or 'demo'.")] = "shared",
    out: Annotated[Path, typer.Option(help="Study folder: the finished fits (cells/), study.json, the report.")] = Path(
        "bayeslaw-study"),
    workers: WorkersOption = 1,
    scheduler: SchedulerOption = None,
    resume: ResumeOption = False,
    point_grid: Annotated[str, typer.Option(help="Start grid of the epoch point fits: coarse (243 starts) or "
                                                 "full (the published 4,500).")] = "coarse",
    chains: Annotated[int, typer.Option(help="NUTS chains per Bayesian fit.")] = 4,
    draws: Annotated[int, typer.Option(help="NUTS draws (and warmup) per chain.")] = 1000,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """The thousand-law study: every eligible family x k x q x method, point and Bayes, resumable.

    The backtest's full design (k = 2..5, q in 0..0.5, epoch and hitchhiker point fits, hierarchical
    and unpooled NUTS fits, the transfer case and the PSIS-LOO comparison), with a progress bar and ETA;
    each finished fit is kept in OUT/cells, so an interrupted study goes on with --resume.
    """
    from bayeslaw import data as bd

    check_choice(point_grid, ("coarse", "full"), "--point-grid")
    _check_study_options((), chains=chains, draws=draws, workers=workers)
    _check_data_name(data, also=("shared",))
    options = {"point_grid": point_grid, "workers": workers,
               "fit_options": {"chains": chains, "draws": draws, "warmup": draws}}
    _run_study(lambda: bd.load_study(root) if data == "shared" else _read_data(data, root, None), out, options,
               families=None, scheduler=scheduler, resume=resume, as_json=as_json)


# --- Bayesian fits: fit, predict, diagnose, report, plan -------------------------------------------

POOLINGS = get_args(Pooling)
FitArgument = Annotated[Path, typer.Argument(metavar="FIT", help="A fit file written by `bayeslaw fit` (netCDF).")]
ValuesHelp = "several: comma-separated or the option repeated; every combination is predicted"


def _json(payload) -> str:
    """JSON text with non-finite numbers (NaN, inf) as null: strict JSON, which every parser reads."""
    return json.dumps(jsonable(payload), indent=1)


def _records(df: pd.DataFrame) -> list[dict]:
    return df.astype(object).where(df.notna(), None).to_dict(orient="records")


def _numbers(values: list[str] | None, option: str, *, zero: bool = False) -> list[float]:
    """The positive numbers of a repeatable, comma-separated option (``--params 1e9,7e9 --params 3e10``);
    ``zero``: 0 too (a cooldown fraction of 0, no cooldown, as the API takes it)."""
    numbers = []
    for text in (part.strip() for value in values or [] for part in value.split(",")):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not a number; give e.g. {option} 7e9 or {option} 1e9,7e9"
                             ) from None
        if not np.isfinite(number) or number < 0 or (number == 0 and not zero):
            raise ValueError(f"{option}: {text!r} must be a {'non-negative' if zero else 'positive'} finite number")
        numbers.append(number)
    return numbers


def _names(values: list[str] | None, option: str = "--family") -> list[str]:
    """Names given as repeated or comma-separated options; an option given with no name in it (``--family ""``)
    is refused, since no name would mean every family."""
    names = [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
    if values and not names:
        raise ValueError(f"{option} {values[0]!r} names no family; give a name, or leave {option} out for all")
    return names


PointMethodOption = Annotated[str, typer.Option(
    help="The point fit compared with the posterior: epoch (4500-start grid, robust; tens of seconds), "
         "hitchhiker (least squares from one start; fast) or adamw (multipower's published path, one size).")]


def _point_fits(fit, method: str, families) -> dict | None:
    """Point fits (``method``) of the fit's own training rows per family; None for epoch, the library default."""
    _check_point_method(method, fit.spec.law, option="--point-method")
    if method == "epoch":
        return None
    from bayeslaw.inference.point import fit_point

    # the fit's own rows, as its early cut chose them: no advice to cut them. None (plan's population): one law
    # across the families, as optimal_allocation's own epoch fit is (not fit_point's warning to fit them apart)
    return {family: fit_point(fit.training_rows(family), form=fit.form, method=method, warn_early=False,
                              across_families=family is None)
            for family in families}


def _working(text: str):
    """A spinner on stderr while something slow runs (stdout stays clean for --json)."""
    return err_console.status(text, spinner="dots")


def _load_fit(path: Path):
    """A fit file; a missing file, a file that is not netCDF, or a netCDF file without bayeslaw's
    attributes end in one line naming the file."""
    from bayeslaw.inference.nuts import load_fit

    if not path.exists():
        raise FileNotFoundError(f"fit file {str(path)!r} does not exist; write one with "
                                f"`bayeslaw fit DATA --out {path}`")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not a fit file (a netCDF file written by `bayeslaw fit`)")
    return load_fit(path)  # a file that is not a fit: one line naming it


def _check_families(fit, families: list[str], *, new_family_hint: bool = True) -> None:
    unknown = sorted(set(families) - set(fit.families))
    if unknown:
        hint = "; --new-family predicts a family the fit has not seen" if new_family_hint else ""
        raise ValueError(f"unknown family {unknown}; the fit has families {fit.families}{hint}")


def _diagnostics_record(diagnostics) -> dict:
    return {"max_rhat": diagnostics.max_rhat, "min_ess_bulk": diagnostics.min_ess_bulk,
            "min_ess_tail": diagnostics.min_ess_tail, "divergences": diagnostics.divergences,
            "extensions": diagnostics.extensions,
            "bfmi": diagnostics.bfmi, "warning": diagnostics.warning, "messages": list(diagnostics.messages)}


def _print_diagnostics(diagnostics) -> None:
    """The diagnostics line on stdout, each warning (with its remedy) on stderr."""
    console.print(f"NUTS diagnostics: {str(diagnostics).splitlines()[0]}", highlight=False, markup=False,
                  soft_wrap=True)
    for message in diagnostics.messages:  # markup off: keeps names such as 'tau[e]' whole
        err_console.print(f"warning: {message}", highlight=False, markup=False, style="yellow", soft_wrap=True)


@app.command("fit")
@_friendly_errors
def fit_command(
    data: Annotated[str, typer.Argument(help="CSV/parquet in the bayeslaw schema, a source name, or 'demo'.")],
    out: Annotated[Path, typer.Option(help="Fit file to write (netCDF, written atomically).")],
    family: Annotated[list[str] | None, typer.Option(help="Fit only these families (repeatable or "
                                                           "comma-separated).")] = None,
    form: Annotated[str, typer.Option(help=f"The law: {', '.join(forms())}.")] = DEFAULT_FORM,
    pooling: Annotated[str, typer.Option(help="hierarchical (partial pooling across families), none, or complete "
                                              "(one law for all).")] = "hierarchical",
    chains: Annotated[int, typer.Option(min=1, help="NUTS chains.")] = 4,
    # 4: the fewest draws per chain ESS and r-hat can be computed from (nuts.MIN_DRAWS; fewer give no diagnostics)
    draws: Annotated[int, typer.Option(min=4, help="Kept draws per chain (4 or more: ESS and r-hat need "
                                                   "them).")] = 1000,
    warmup: Annotated[int | None, typer.Option(min=1, help="Warmup iterations per chain (default: = draws).")] = None,
    min_tokens: Annotated[float, typer.Option(help="Drop checkpoints with tokens <= this (0: keep all); a schedule "
                                                   "law drops the warmup instead.")] = 1e10,
    thin: Annotated[int, typer.Option(min=0, help="Checkpoints kept per run (0: keep all): log-spaced in tokens, "
                                                  "evenly in steps for a schedule law.")] = 20,
    seed: Annotated[int, typer.Option(help="PRNG seed (equal seeds, identical draws).")] = 0,
    target_accept: Annotated[float, typer.Option(min=0.5, max=0.999, help="NUTS target acceptance probability "
                                                                         "(raise it when NUTS diverges).")] = DEFAULT_TARGET_ACCEPT,
    duplicates: DuplicatesOption = "error",
    extend: Annotated[int | None, typer.Option(min=0, help="While r-hat > 1.01 or ESS < 400, draw up to this many "
                                                           "more blocks of --draws per chain, going on from the "
                                                           "chains (default 2; 0: never).")] = None,
    rising: RisingOption = "error",
    retry_target_accept: Annotated[float | None, typer.Option(
        min=0.0, max=0.999, help=f"With divergent draws, sample again from the start at this target acceptance, "
                                 f"above --target-accept (default {RETRY_TARGET_ACCEPT}; 0: never).")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="NUTS progress bar on stderr (default: on a terminal).")] = None,
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric (loss_name), for a source name or a file with several.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit a Bayesian scaling law by NUTS and save it; prints the diagnostics and the parameters.

    The law L = E + A/N^alpha + B/D^beta (chinchilla; see --form for the others) per family, loss in
    nats per token. Use the fit file with `bayeslaw predict`, `diagnose`, `report` and `plan`.
    """
    from bayeslaw.inference.nuts import fit as run_fit
    from bayeslaw.inference.nuts import parameter_notes
    from bayeslaw.laws import LAWS

    check_choice(form, list(LAWS), "--form")
    check_choice(pooling, POOLINGS, "--pooling")
    check_choice(duplicates, get_args(Duplicates), "--duplicates")
    check_choice(rising, get_args(Rising), "--rising")
    _check_number(min_tokens, "--min-tokens", "a number of tokens >= 0 (0 keeps all rows)")
    _check_number(seed, "--seed", "a whole number >= 0 (equal seeds, identical draws)")
    _check_out_file(out, table=False, fit=True, example="fit.nc")  # before the fit, which takes minutes
    if retry_target_accept is None:  # not given: the library's, which a --target-accept at or above it turns off
        retry_target_accept = RETRY_TARGET_ACCEPT
    elif 0 < retry_target_accept <= target_accept:  # given, and never used: the library retries only above it
        raise ValueError(f"--retry-target-accept {retry_target_accept:g} is not above --target-accept "
                         f"{target_accept:g}: a fit is sampled again only at a higher target acceptance; give one "
                         f"above it, or 0 for no retry")
    df = _select_families(_read_data(data, root, loss_name, duplicates=duplicates), _names(family))
    fitted = run_fit(df, form=form, pooling=pooling, chains=chains, draws=draws,
                     warmup=draws if warmup is None else warmup, min_tokens=min_tokens or None, thin=thin or None,
                     seed=seed, target_accept=target_accept, duplicates=duplicates, extend=extend,
                     retry_target_accept=retry_target_accept or None, rising=rising, progress=progress)
    path = fitted.save(out)
    diagnostics = fitted.diagnostics(warn=False)
    params = fitted.params()
    chains, draws = (int(fitted.idata.posterior.sizes[d]) for d in ("chain", "draw"))  # after any extension
    if as_json:
        typer.echo(_json({"out": str(path), "form": fitted.form, "pooling": fitted.pooling,
                          "families": fitted.families, "runs": len(fitted.runs),
                          "rows": int(fitted.idata.attrs["bayeslaw_rows_fitted"]), "chains": chains, "draws": draws,
                          "diagnostics": _diagnostics_record(diagnostics), "params": _records(params)}))
        return
    console.print(f"{fitted.form} law, {fitted.pooling} pooling: {len(fitted.families)} families, {len(fitted.runs)} "
                  f"runs, {fitted.idata.attrs['bayeslaw_rows_fitted']} rows; {chains} chain(s) x {draws} draws",
                  highlight=False, markup=False, soft_wrap=True)
    _print_diagnostics(diagnostics)
    # the parameters the data cannot identify are their priors: named below the table, not listed in it
    console.print(_table(params.loc[~params["prior_only"], ["family", "parameter", "median", "q05", "q95"]],
                         f"{fitted.spec.law.formula}: posterior median and 90% interval"))
    for note in parameter_notes(params, kept="not shown here: --json has them"):
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {path}", highlight=False, markup=False)


@app.command()
@_friendly_errors
def predict(
    fit_file: FitArgument,
    params: Annotated[list[str], typer.Option("--params", help=f"Model size N, parameters ({ValuesHelp}).")],
    tokens: Annotated[list[str], typer.Option("--tokens", help=f"Training tokens D ({ValuesHelp}).")],
    family: Annotated[list[str] | None, typer.Option(help="Families to predict (repeatable or comma-separated; "
                                                           "default: every family of the fit).")] = None,
    new_family: Annotated[bool, typer.Option(help="Predict a family the fit has not seen (the population's "
                                                  "prediction; meaningful for hierarchical fits).")] = False,
    batch_size: Annotated[list[str] | None, typer.Option(help=f"Tokens per step, su2024 fits only "
                                                               f"({ValuesHelp}).")] = None,
    kind: Annotated[str, typer.Option(help="new_run: what one new training run shows (+ seed and checkpoint "
                                           "noise); law: the law's loss (parameter uncertainty only).")] = "new_run",
    seed: Annotated[int, typer.Option(help="Seed of the predictive draws.")] = 0,
    form_error: Annotated[float | None, typer.Option(
        help="new_run: sd of log loss per e-fold of N beyond the family's fitted sizes (the law's form error; "
             "default the library's, 0 for none).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Predict the loss (nats per token) of models of --params parameters trained on --tokens tokens.

    Prints the posterior quantiles (q5 ... q95: the 90% interval) for every combination of family,
    params, tokens (and batch size). Several values: comma-separated or the option repeated, e.g.
    `bayeslaw predict fit.nc --params 1e9,7e9 --tokens 1.4e12` = `--params 1e9 --params 7e9 --tokens 1.4e12`.
    """
    check_choice(kind, get_args(PredictionKind), "--kind")
    _check_number(seed, "--seed", "a whole number >= 0")
    _check_number(form_error, "--form-error", "a number >= 0 (sd of log loss per e-fold of N; 0 for none)")
    if form_error is not None and kind != "new_run":  # the law's loss has no form error: it was dropped unsaid
        raise ValueError(f"--form-error applies to --kind new_run (a new run's spread beyond the fitted sizes); "
                         f"--kind {kind} is the law's loss, parameter uncertainty only: drop --form-error")
    fit = _load_fit(fit_file)
    if fit.spec.law.progress == "step":
        raise ValueError(f"{fit_file}: a fit of the {fit.form} law reads a run's step and learning-rate schedule, "
                         f"not its tokens: ask it with `bayeslaw schedule` (a planned run's final loss per cooldown "
                         f"fraction, or a branch's drop) or `bayeslaw live` (the rest of a run in flight)")
    sizes, token_counts, batches = _numbers(params, "--params"), _numbers(tokens, "--tokens"), _numbers(
        batch_size, "--batch-size")
    reads_batch = "batch_size" in fit.spec.law.columns_needed
    if reads_batch and not batches:
        raise ValueError(f"--batch-size (tokens per step) is needed: this fit's law is {fit.form}, whose loss depends "
                         f"on it")
    if batches and not reads_batch:
        readers = " and ".join(forms(lambda law: "batch_size" in law.columns_needed))
        raise ValueError(f"--batch-size applies to {readers} fits only; this fit's form is {fit.form!r}")
    if new_family and fit.pooling == "none":
        # an unpooled fit has no population law: a new family's forecast would be the prior's (the library's
        # own message names the family 'nan', the CLI's placeholder for it)
        one = " (a fit of one family is unpooled: a population needs two or more)" if len(fit.families) == 1 else ""
        raise ValueError(f"--new-family needs a hierarchical fit (`bayeslaw fit --pooling hierarchical`); "
                         f"{str(fit_file)!r} is fitted with pooling 'none'{one}, which has no population law for a "
                         f"family it has not seen: predict one of its families {fit.families} with --family")
    families = _names(family)
    if new_family and set(families) - set(fit.families):  # the hint below would advise the option given
        raise ValueError(f"unknown family {sorted(set(families) - set(fit.families))}; the fit has families "
                         f"{fit.families}. --new-family predicts the population (a family the fit has not seen) "
                         f"without a name: drop that --family")
    _check_families(fit, families)
    families = (families or ([] if new_family else fit.families)) + ([None] if new_family else [])
    columns = {"family": families, "params": sizes, "tokens": token_counts,
               **({"batch_size": batches} if batches else {})}
    targets = pd.MultiIndex.from_product(list(columns.values()), names=list(columns)).to_frame(index=False)
    # --new-family's rows: None (the population, asked for), not NaN (which predict warns of as unseen)
    targets["family"] = targets["family"].astype(object).where(targets["family"].notna(), None)
    summary = fit.predict(targets, kind=kind, seed=seed, form_error=form_error).summary
    summary["family"] = summary["family"].astype(object).fillna("(new family)")
    quantile_columns = [c for c in summary.columns if c.startswith("q")]
    summary = summary[[*columns, *quantile_columns, "mean", "sd"]]
    if as_json:
        typer.echo(_json({"form": fit.form, "kind": kind, "units": "nats per token", "predictions": _records(summary)}))
        return
    what = ("one new training run (parameters, seed offset, checkpoint noise, the law's form error beyond the "
            "fitted sizes)" if kind == "new_run"
            else "the law (parameter uncertainty only)")
    console.print(_table(summary.drop(columns=["mean", "sd"]),  # in --json; the quantiles fit 80 columns
                         f"predicted loss, nats per token, of {what}; q5..q95 = 90% interval"))


@app.command()
@_friendly_errors
def diagnose(
    fit_file: FitArgument,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 when the diagnostics fail (for scripts).")] = False,
    worst: Annotated[int, typer.Option(min=0, help="Show this many sites with the lowest bulk ESS.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Convergence of a fit: max r-hat, min bulk/tail ESS, divergences, BFMI, and a warning with a remedy.

    Exit code 0 even when they fail (the warning is printed), unless --strict.
    """
    from bayeslaw.inference.nuts import ESS_MIN, RHAT_MAX

    fit = _load_fit(fit_file)
    diagnostics = fit.diagnostics(warn=False)
    table = (diagnostics.table.sort_values("ess_bulk").head(worst).reset_index(names="site")
             [["site", *(c for c in ("r_hat", "ess_bulk", "ess_tail") if c in diagnostics.table)]])
    if as_json:
        typer.echo(_json({**_diagnostics_record(diagnostics), "chains": fit.idata.posterior.sizes["chain"],
                          "draws": fit.idata.posterior.sizes["draw"], "worst": _records(table)}))
    else:
        console.print(repr(fit), highlight=False, markup=False, soft_wrap=True)
        _print_diagnostics(diagnostics)
        if worst and len(table):  # none where no sampled quantity varies (one draw per chain): no empty table
            console.print(_table(table, f"the {len(table)} sites with the lowest bulk ESS"))
        if not diagnostics.warning:
            console.print(f"diagnostics pass: r-hat <= {RHAT_MAX}, bulk and tail ESS >= {ESS_MIN}, no divergences, "
                          f"BFMI >= 0.3")
    if strict and diagnostics.warning:
        raise typer.Exit(code=1)


@app.command()
@_friendly_errors
def report(
    fit_file: FitArgument,
    out: Annotated[Path, typer.Option(help="Report folder (PNG figures, params.csv, report.md).")] = Path(
        "bayeslaw-report"),
    data: Annotated[str | None, typer.Option(help="Data to draw against the fit: CSV/parquet, a source name, or "
                                                  "'demo' (default: the fitted rows only).")] = None,
    point_method: PointMethodOption = "epoch",
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric (loss_name), for a source name or a file with several.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a report folder for a fit: figures, the parameter table and report.md."""
    from bayeslaw.report import fit_report, fit_report_files

    fit = _load_fit(fit_file)
    df = None if data is None else _read_data(data, root, loss_name)
    with _working(f"point fits ({point_method}) and the report's figures..."):
        point_fits = _point_fits(fit, point_method, fit.families)
        written = fit_report(fit, out, data=df, point_fits=point_fits)
    folder = written.parent  # fit_report returns report.md
    files = fit_report_files(fit)  # the files it wrote, not whatever else the folder holds (--out .)
    if as_json:
        typer.echo(_json({"report": str(written), "folder": str(folder), "files": files}))
        return
    console.print(f"report written to {folder}/: {', '.join(files)}", highlight=False, markup=False, soft_wrap=True)


def _allocation_tables(summary: pd.DataFrame, family: str | None) -> list[tuple[pd.DataFrame, str]]:
    """One small table per FLOP budget: each quantity's 90% interval and median, and the point fit's split."""
    quantities = {"params_opt": ("N* (parameters)", "point_params"),
                  "tokens_opt": ("D* (tokens)", "point_tokens"),
                  "tokens_per_param": ("D* / N*", "point_tokens_per_param"),
                  "loss_law": ("loss of the law, nats", "expected_loss_at_point"),
                  "loss_new_run": ("loss of a new run, nats", None),
                  "regret": ("regret of the point split", "expected_regret")}
    tables = []
    for _, row in summary.iterrows():
        row = row.copy()
        row["point_tokens_per_param"] = row.get("point_tokens", np.nan) / row.get("point_params", np.nan)
        rows = [{"quantity": label, "q5": row.get(f"{key}_q5"), "q50": row.get(f"{key}_q50"),
                 "q95": row.get(f"{key}_q95"), "point fit": row[point] if point in row else np.nan}
                for key, (label, point) in quantities.items() if f"{key}_q50" in row]
        who = f"family {family}" if family is not None else "the population (a new family)"
        tables.append((pd.DataFrame(rows), f"compute-optimal allocation of C = {row['flops']:.3g} FLOPs (C = 6 N D), "
                                           f"{who}; 'point fit': the point estimate's split and its expected loss, "
                                           f"regret"))
    return tables


@app.command()
@_friendly_errors
def plan(
    fit_file: FitArgument,
    flops: Annotated[list[str] | None, typer.Option(help="Compute budgets, FLOPs: the loss-optimal parameters and "
                                                         "tokens for each (repeatable or comma-separated).")] = None,
    loss: Annotated[list[str] | None, typer.Option(help="Target losses, nats per token: the tokens to reach each "
                                                        "(and, for su2024 fits, the steps); needs --params.")] = None,
    params: Annotated[list[str] | None, typer.Option(help="With --loss: model sizes, parameters.")] = None,
    batch_size: Annotated[float | None, typer.Option(help="su2024 fits: tokens per step (required with --flops; with "
                                                          "--loss the default is Emin, the fewest tokens, at a batch "
                                                          "far below critical).")] = None,
    family: Annotated[str | None, typer.Option(help="The family to plan for (default: a one-family fit's family, "
                                                    "else the population, a family the fit has not seen).")] = None,
    point_method: PointMethodOption = "epoch",
    as_json: JsonOption = False,
) -> None:
    """Plan a training run from a fit: the compute-optimal split of a FLOP budget, or tokens to a loss.

    --flops C: the parameters N* and tokens D* (C = 6 N D) that minimise the loss, per posterior draw, and
    the regret of the point fit's split. --loss L --params N: the tokens to reach L and the minimum loss
    with unlimited data (chinchilla, kaplan, kaplan_e); for su2024 fits also the steps and the critical
    batch size.
    """
    fit = _load_fit(fit_file)
    budgets, losses, sizes = _numbers(flops, "--flops"), _numbers(loss, "--loss"), _numbers(params, "--params")
    # the most specific mistake first: --params alone is a half-given --loss question, not nothing
    if sizes and not losses:
        raise ValueError("--params goes with --loss (the model sizes to reach a loss with); --flops finds the "
                         "parameters itself")
    if not budgets and not losses:
        raise ValueError("nothing to plan: give --flops (compute budgets), or --loss and --params (tokens to a loss)")
    if losses and not sizes:
        raise ValueError("--loss needs --params: the model sizes to reach that loss with")
    if batch_size is not None and not (np.isfinite(batch_size) and batch_size > 0):
        raise ValueError(f"--batch-size must be a positive number of tokens per step, got {batch_size}")
    if batch_size is not None and "batch_size" not in fit.spec.law.columns_needed:
        # before any point fit (--flops found it only after them, in optimal_allocation's words)
        raise ValueError(f"--batch-size: the {fit.form} law does not read the batch size; drop it")
    if family is not None:
        _check_families(fit, [family], new_family_hint=False)
    family = fit.family_or_only(family)
    if family is None and fit.pooling == "none":  # no --family: the population, which an unpooled fit lacks
        raise ValueError(f"--family is needed: {str(fit_file)!r} is fitted with pooling 'none' over families "
                         f"{fit.families}, which has no population law to plan a new family with (`bayeslaw fit "
                         f"--pooling hierarchical`)")
    payload, tables = {"form": fit.form, "family": family}, []
    if budgets:
        from bayeslaw.plan import optimal_allocation

        if batch_size is None and "batch_size" in fit.spec.law.columns_needed:  # the CLI's name, not the API's
            raise ValueError(f"--batch-size is needed with --flops for a {fit.form} fit: its compute-optimal split "
                             f"depends on the tokens per optimizer step; give e.g. --batch-size 2097152 (2**21)")
        with _working("point fit and the compute-optimal split of each budget..."):
            point = _point_fits(fit, point_method, [family])
            allocation = optimal_allocation(fit, flops=budgets, family=family, batch_size=batch_size,
                                            point=None if point is None else point[family])
        payload["allocation"] = allocation.to_dict()
        tables.extend(_allocation_tables(allocation.summary, family))
    if losses:
        from bayeslaw.plan import critical_batch_size, minimum_loss, steps_to_loss, tokens_to_loss

        grid = pd.MultiIndex.from_product([sizes, losses], names=["params", "loss"]).to_frame(index=False)
        args = (fit, grid["params"].to_numpy(), grid["loss"].to_numpy())
        law = fit.spec.law
        if law.trajectory is None and law.data_to_loss is not None:  # a law of N and D, solved for D
            answers = {"tokens": tokens_to_loss(*args, family=family),
                       "minimum_loss": minimum_loss(fit, np.asarray(sizes), family=family)}
            titles = {"tokens": "training tokens to reach the loss",
                      "minimum_loss": "minimum loss with unlimited tokens"}
        else:
            answers = {"tokens": tokens_to_loss(*args, batch_size=batch_size, family=family),
                       "steps": steps_to_loss(*args, batch_size=batch_size, family=family),
                       "minimum_loss": minimum_loss(fit, np.asarray(sizes), family=family),
                       "critical_batch_size": critical_batch_size(fit, np.asarray(losses), family=family)}
            titles = {"tokens": "training tokens to reach the loss" + (" at the batch size" if batch_size else
                                                                         " (Emin: the fewest, at a small batch)"),
                      "steps": "optimizer steps to reach the loss" + (" at the batch size" if batch_size else
                                                                      " (Smin: the fewest, at a large batch)"),
                      "minimum_loss": "minimum loss L_inf(N) after unlimited steps",
                      "critical_batch_size": "critical batch size Bcrit(L)"}
        payload["trajectory"] = {}
        for quantity, answer in answers.items():
            summary = answer.summary
            keep = [c for c in ("params", "loss", "batch_size", "q5", "q50", "q95", "p_reachable") if c in summary]
            payload["trajectory"][quantity] = _records(summary.drop(columns=["family", "kind"], errors="ignore"))
            reachable = " (p_reachable: posterior probability the loss is reached)" if "p_reachable" in summary else ""
            who = f"family {family}" if family is not None else "the population (a new family)"
            tables.append((summary[keep], f"{fit.form}, {who}: {titles[quantity]}, {answer.draws.attrs['units']}"
                                          f"{reachable}"))
    if as_json:
        typer.echo(_json(payload))
        return
    for table, title in tables:
        console.print(_table(table, title))


def _check_schedule_mode(branch_step: int | None, **options) -> None:
    """`schedule`'s two questions take different options: one that the chosen one would not read is refused,
    not ignored (a --total-steps beside --branch-step would seem to set the branch's end)."""
    given = {f"--{name.replace('_', '-')}" for name, value in options.items() if value not in (None, [])}
    if branch_step is not None:
        extra = sorted(given & {"--total-steps", "--cooldown", "--parent-run"})
        if extra:
            raise ValueError(f"{', '.join(extra)} {'does' if len(extra) == 1 else 'do'} not apply with --branch-step "
                             f"(a branch of a constant-rate run, ending at --branch-step + --cooldown-steps); drop "
                             f"{'it' if len(extra) == 1 else 'them'}, or drop --branch-step")
        if "--cooldown-steps" not in given:
            raise ValueError("--branch-step needs --cooldown-steps (the length of the branch's cooldown)")
    elif "--cooldown-steps" in given:
        raise ValueError("--cooldown-steps goes with --branch-step (a cooldown branch from that step); for the best "
                         "cooldown of a run give --total-steps and --cooldown fractions")
    elif "--total-steps" not in given:
        raise ValueError("schedule needs --total-steps (the run's step budget, for the best cooldown fraction), or "
                         "--branch-step and --cooldown-steps (the drop of a cooldown branch)")


@app.command()
@_friendly_errors
def schedule(
    fit_file: FitArgument,
    params: Annotated[float, typer.Option(help="Model size N, parameters.")],
    peak_lr: Annotated[float, typer.Option(help="Peak (stable) learning rate.")],
    total_steps: Annotated[int | None, typer.Option(min=1, help="The run's step budget (not with "
                                                               "--branch-step).")] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Linear warmup steps.")] = 0,
    final_lr: Annotated[float, typer.Option(help="Learning rate at the end of the cooldown.")] = 0.0,
    decay_type: Annotated[str, typer.Option(help="Cooldown shape: linear, exponential, cosine or 1-sqrt.")] = "linear",
    cooldown: Annotated[list[str] | None, typer.Option(help="Cooldown fractions to compare (comma-separated or "
                                                             "repeated; 0: no cooldown; default 0.02-0.6, after "
                                                             "the warmup).")] = None,
    branch_step: Annotated[int | None, typer.Option(help="Instead: the drop a cooldown branch from this step of a "
                                                         "constant-rate run gives (with --cooldown-steps).")] = None,
    cooldown_steps: Annotated[int | None, typer.Option(help="Length of that branch's cooldown, steps.")] = None,
    family: Annotated[str | None, typer.Option(help="The family (default: the fit's only one, else a new family).")] = None,
    parent_run: Annotated[str | None, typer.Option(help="The cooldowns branch from this trained constant-rate run "
                                                        "(its level known): when to cool down a run in training.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the predictive draws.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Plan a WSD schedule with a schedule-law fit (multipower, annealing): the final loss per cooldown
    fraction for a step budget (median and 90% band of a new run, and the probability that each fraction
    is the best), or with --branch-step the drop a cooldown branch from a checkpoint will give.
    """
    from bayeslaw.plan.schedules import best_cooldown, cooldown_drop

    check_choice(decay_type, get_args(DecayType), "--decay-type")
    _check_number(seed, "--seed", "a whole number >= 0")
    for value, option in ((params, "--params"), (peak_lr, "--peak-lr")):  # the library's named predict's targets
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{option} {value:g}: need a positive number")
    _check_number(final_lr, "--final-lr", "a learning rate >= 0")
    _check_schedule_mode(branch_step, total_steps=total_steps, cooldown=cooldown, parent_run=parent_run,
                         cooldown_steps=cooldown_steps)
    fit = _load_fit(fit_file)
    if family is not None:  # schedule has no --new-family: leaving out --family plans for a new family
        _check_families(fit, [family], new_family_hint=False)
    if branch_step is not None:
        drop = cooldown_drop(fit, branch_step=branch_step, cooldown_steps=cooldown_steps, peak_lr=peak_lr, params=params,
                             family=family, warmup_steps=warmup, final_lr=final_lr, decay_type=decay_type, seed=seed)
        if as_json:
            typer.echo(_json({"form": fit.form, "units": "nats per token", "cooldown_drop": drop}))
            return
        console.print(_table(pd.DataFrame([drop]), f"cooldown branch from step {branch_step}: loss at step "
                                                   f"{drop['step']} (medians; drop with its 90% interval)"))
        return
    fractions = _numbers(cooldown, "--cooldown", zero=True) or None  # 0: the run without a cooldown, a baseline
    table = best_cooldown(fit, total_steps=total_steps, peak_lr=peak_lr, params=params, family=family,
                          warmup_steps=warmup, final_lr=final_lr, decay_type=decay_type, fractions=fractions,
                          parent_run=parent_run, seed=seed)
    keep = ["cooldown_fraction", "cooldown_start", "loss", "q5", "q95", "p_best", "best"]
    if as_json:
        typer.echo(_json({"form": fit.form, "units": "nats per token", "cooldown": _records(table[keep])}))
        return
    console.print(_table(table[keep], f"final loss of a {total_steps}-step WSD run per cooldown fraction, nats per "
                                      f"token (median, 90% band of a new run; p_best: probability it is the best)"))


@app.command()
@_friendly_errors
def live(
    data: Annotated[str, typer.Argument(help="CSV/parquet with the finished runs and the run in flight, each with "
                                             "its schedule (a source name works too).")],
    run: Annotated[str, typer.Option(help="The run in flight: its checkpoints so far; its schedule's total_steps "
                                          "is where it will end.")],
    form: Annotated[str, typer.Option(help="A schedule law: multipower or annealing.")] = "annealing",
    out: Annotated[Path | None, typer.Option(help="CSV (or .parquet) of the forecast (written atomically).")] = None,
    chains: Annotated[int, typer.Option(min=1, help="NUTS chains.")] = 4,
    draws: Annotated[int, typer.Option(min=1, help="Kept draws (and warmup) per chain.")] = 1000,
    seed: Annotated[int, typer.Option(help="PRNG seed.")] = 0,
    rising: RisingOption = "error",
    duplicates: DuplicatesOption = "error",
    root: RootOption = None,
    loss_name: Annotated[str | None, typer.Option(help="Which loss metric (loss_name), for a source name or a file with several.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Forecast the rest of a run in flight and its final loss, with 90% bands: a Bayesian fit of a schedule
    law to the finished runs and the run's own checkpoints, conditioned on both."""
    from bayeslaw.plan.schedules import check_schedule_form, live_forecast

    check_choice(rising, get_args(Rising), "--rising")
    check_choice(duplicates, get_args(Duplicates), "--duplicates")
    check_schedule_form(form, label="--form")  # before the data are read and fitted, as --out below
    _check_number(seed, "--seed", "a whole number >= 0")
    if out is not None:
        _check_out_file(out)
        _check_not_input(out, [data])  # the forecast, written after the fit, would replace the runs read
    # a run in flight that was restarted logs its checkpoints again: --duplicates last keeps the restart's
    df = _read_data(data, root, loss_name, duplicates=duplicates)
    with _working(f"fitting {form} to {df['run'].nunique()} runs ({chains} chains x {draws} draws)..."):
        table, fitted = live_forecast(df, run, form=form, chains=chains, draws=draws, warmup=draws, seed=seed,
                                      rising=rising, duplicates=duplicates)
    diagnostics = fitted.diagnostics(warn=False)
    if out is not None:
        write_atomic(out, _table_writer(table, out))
    final = table.iloc[-1]
    if as_json:
        typer.echo(_json({"run": run, "form": fitted.form, "units": "nats per token", "final_step": int(final["step"]),
                          "final_loss": {k: float(final[k]) for k in ("loss", "q5", "q95")},
                          "diagnostics": _diagnostics_record(diagnostics), "forecast": _records(table)}))
        return
    _print_diagnostics(diagnostics)
    shown = table.iloc[np.unique(np.linspace(0, len(table) - 1, 11).round().astype(int))]
    console.print(_table(shown[["step", "loss", "q5", "q95"]], f"run {run}: forecast to step {int(final['step'])}, "
                                                            f"nats per token (median, 90% band)"))
    console.print(f"final loss {final['loss']:.4f} (90%: {final['q5']:.4f}-{final['q95']:.4f})"
                  + (f"; wrote {out}" if out is not None else ""), highlight=False, markup=False)


def _run_numbers(values: list[str] | None, option: str) -> dict[str, float] | float | None:
    """``RUN=N`` pairs of a repeatable option as {run: N} (N may read '124M'); a bare N (one value) applies to all."""
    from bayeslaw.data.sources import parse_count

    if not values:
        return None
    pairs: dict[str, float] = {}
    for text in values:
        run, sep, number = text.rpartition("=")
        if not sep and len(values) == 1 and option == "--tokens-per-step":
            run, number = None, text
        elif not sep or not run.strip():
            raise ValueError(f"{option}: {text!r} is not RUN=N; give e.g. {option} my-run=124M")
        try:
            value = parse_count(number)
        except ValueError:
            raise ValueError(f"{option}: {text!r}: {number!r} is not a number (e.g. 1.2e8 or 124M)") from None
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{option}: {text!r} must be positive")
        if run is None:
            return value
        pairs[run.strip()] = value
    return pairs


@app.command("import")
@_friendly_errors
def import_command(
    paths: Annotated[list[Path], typer.Argument(
        help="W&B run exports (.json, or a folder of them), W&B chart exports (.csv), TensorBoard event files or "
             "folders, or minimal tables (run, params, tokens, loss as .csv/.parquet); the format is detected per "
             "path.")],
    out: Annotated[Path, typer.Option(help="The long table to write (.parquet or .csv), atomically.")],
    params: Annotated[list[str] | None, typer.Option(
        "--params", help="RUN=N: parameters of a run (needed for chart exports and TensorBoard; replaces a W&B "
                         "JSON export's summary.parameters); repeat per run. A RUN that names no run is "
                         "refused.")] = None,
    sidecar: Annotated[Path | None, typer.Option(
        help="CSV run,params[,tokens_per_step,family]: parameters (and tokens per step, family) per run, for "
             "every input format (counts as 1.2e8 or 124M).")] = None,
    tokens_per_step: Annotated[list[str] | None, typer.Option(
        "--tokens-per-step", help="Tokens per optimizer step: N for every chart-export and TensorBoard run (W&B "
                                  "JSON exports keep their config's; with JSON inputs alone N must match it), or "
                                  "RUN=N repeated (replaces a W&B run's). A RUN that names no run is refused.")] = None,
    tags: Annotated[list[str] | None, typer.Option(
        "--tags", help="TensorBoard scalar tags to import as losses (repeat, or comma-separated), instead of every "
                       "tag with 'loss', 'perplexity' or 'ppl' in its name.")] = None,
    family: Annotated[str | None, typer.Option(
        help="Family of the runs: for chart exports, TensorBoard and tables without a family (a sidecar's family "
             "wins); replaces W&B JSON exports' '<dataset>-<schedule shape>'.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Import real training logs into the bayeslaw long table, reporting what was read, converted and left out."""
    from bayeslaw.data.importers import import_paths

    # a bad --out (a folder, or a name not .csv/.parquet) is found before the inputs are read (which can take
    # minutes), not after
    _check_out_file(out)
    _check_not_input(out, [*paths, *([sidecar] if sidecar is not None else [])], what="an input")
    selected = [t.strip() for text in tags or [] for t in text.split(",") if t.strip()] or None
    try:
        df = import_paths(paths, params=_run_numbers(params, "--params"), sidecar=sidecar,
                          tokens_per_step=_run_numbers(tokens_per_step, "--tokens-per-step"), family=family,
                          tags=selected)
    except (FileNotFoundError, ValueError):
        raise
    except OSError as error:  # unreadable input (permissions, a device error): one line naming the file
        raise ValueError(f"cannot read {error.filename or 'an input'!s}: {error.strerror or error}") from None
    report = list(df.attrs.get("import_report", []))
    try:
        write_atomic(out, _table_writer(df, out))
    except OSError as error:  # write_atomic leaves no partial file; say which option to change
        raise ValueError(f"--out {str(out)!r}: cannot write ({error.strerror or error})") from None
    # only a True flag is a flagged schedule: runs from charts or TensorBoard have none to check
    flags = df["schedule_flag"].eq(True) if "schedule_flag" in df.columns else pd.Series(False, df.index)
    summary = (
        df.assign(flagged_run=df["run"].where(flags))
        .groupby(["family", "model"], sort=False)
        .agg(params=("params", "max"), runs=("run", "nunique"), rows=("loss", "size"), max_tokens=("tokens", "max"),
             min_loss=("loss", "min"), schedule_flagged=("flagged_run", "nunique"))
        .reset_index()
        .sort_values(["family", "params"], kind="stable")
    )
    flagged = sorted(df.loc[flags, "run"].unique())
    if as_json:
        typer.echo(_json({"out": str(out), "rows": len(df), "runs": int(df["run"].nunique()), "report": report,
                          "schedule_flagged": flagged, "models": _records(summary)}))
        return
    console.print(_table(summary, f"imported {df['run'].nunique()} runs, {len(df)} rows"))
    for line in report:
        console.print(f"[dim]{escape(line)}[/]", highlight=False, soft_wrap=True)
    console.print(f"wrote {escape(str(out))}")


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM (``timeout``, a job scheduler) ends the command as Ctrl-C does, by an exception: the
    ``finally`` blocks run, so an atomic write removes its temporary file instead of leaving it."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point. A usage error (an option the command does not have, a value of the wrong type,
    a missing argument) ends in one line on stderr naming the command, as the commands' own errors do; Typer's
    form is a usage line, a hint and a boxed message wrapped over several lines."""
    import signal

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        code = app(standalone_mode=False, prog_name="bayeslaw")
    except typer.TyperException as error:  # Typer's click exceptions (usage errors) derive from it
        if type(error).__name__ == "NoArgsIsHelpError":  # a group called bare: its help, as Typer shows it
            error.show()
        else:
            context = getattr(error, "ctx", None)
            where = context.command_path if context is not None else "bayeslaw"
            message = " ".join(error.format_message().split())
            err_console.print(f"[bold red]error:[/] {escape(where)}: {escape(message)}; {escape(where)} --help lists "
                              f"its options", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except typer.Abort:
        err_console.print("aborted", highlight=False)
        sys.exit(1)
    if isinstance(code, int) and code:  # a command that ended with typer.Exit(code)
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
