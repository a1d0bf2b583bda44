"""Evaluation stage: predict each family's largest model from its smaller ones and score it.

:func:`backtest` is the Hitchhiker's Guide study (Choshen et al. 2025) with uncertainty: per family,
fit on the k smallest models (and a fraction q of the target's own run), predict the target's last
30% of checkpoints, and score point fits and Bayesian fits side by side on the same points.
"""

from __future__ import annotations

import inspect
import numbers
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import arviz as az
import jax
import numpy as np
import pandas as pd
from numpyro.infer import Predictive

from bayeslaw.data.files import is_whole
from bayeslaw.data.importers import FIT_COLUMNS, as_table
from bayeslaw.data.runs import single_size_families
from bayeslaw.data.schedules import after_warmup
from bayeslaw.data.split import DEFAULT_MIN_TOKENS, TEST_FROM, cut_early, hitchhiker_split, thin_checkpoints
from bayeslaw.executor import CellError, StudyFolder, run_cells
from bayeslaw.inference import nuts
from bayeslaw.inference.batched import fit_many, release_compiled
from bayeslaw.inference.config import FitConfig, check_choice
from bayeslaw.inference.nuts import Fit, fit
from bayeslaw.inference.point import METHODS as POINT_METHODS
from bayeslaw.inference.point import PointFit, TooFewPoints, fit_point
from bayeslaw.laws import DEFAULT_FORM, get_law
from bayeslaw.metrics import are, crps
from bayeslaw.models import get_model, prepare
from bayeslaw.simulation import Simulation, simulate
from bayeslaw.results import Result

__all__ = [
    "Backtest",
    "PointBacktest",
    "backtest",
    "bayes_backtest",
    "CALIBRATION_BATCH",
    "CALIBRATION_FIT",
    "CALIBRATION_SIMULATE",
    "CALIBRATION_TRUTHS",
    "calibration_rows",
    "calibration_simulation",
    "calibration_study",
    "FormComparison",
    "compare_forms",
    "compare_poolings",
    "coverage_table",
    "fit_rows",
    "point_backtest",
    "point_fits_by_family",
    "prior_predictive_quantiles",
    "prior_simulation",
]


def coarse_starts(form: str = DEFAULT_FORM) -> np.ndarray | None:
    """The law's coarse start grid (``Law.coarse_grid``: chinchilla's 3^5 subset of the published
    4500 starts), for studies that run many point fits; None (the full grid) for a law without one."""
    law = get_law(form)
    return None if law.coarse_grid is None else law.grid(coarse=True)


def _listed(value, name: str, where: str, *, empty: bool = False) -> tuple:
    """``value`` (a list, tuple or array of names or numbers) as a tuple. A string is refused (iterated, it
    would be its letters: ``methods="epoch"`` ran methods 'e', 'p', ...), as are a scalar, an empty list
    (unless ``empty``) and an entry listed twice (its cells would collapse into one, unannounced)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or isinstance(value, dict):
        raise TypeError(f"{where}: {name}={value!r} must be a list or tuple (e.g. {name}=({value!r},))")
    items = tuple(value)
    if not items and not empty:
        raise ValueError(f"{where}: {name} is empty; give at least one")
    twice = sorted({repr(v) for i, v in enumerate(items) if v in items[:i]})
    if twice:
        raise ValueError(f"{where}: {name} lists {', '.join(twice)} more than once")
    return items


def _study_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a study in one order whatever order they came in (family, params, run, tokens, step, loss),
    indexed 0..n-1. A point fit's optimum moves with the order its sums run in (a flat valley: see the
    README's point-grid benchmark), and every fit starts there, so a shuffled table scored otherwise; and the
    early cut and thinning select rows by index label, which a table with repeated labels confused (a run
    kept rows of another run that shared their labels)."""
    keys = [c for c in ("family", "params", "run", "tokens", "step", "loss") if c in df.columns]
    rows = df.sort_values(keys, kind="stable", key=lambda c: c.astype(str) if c.dtype == object else c)
    return rows.reset_index(drop=True)


def _check_methods(methods, where: str, *, empty: bool = False) -> tuple:
    """Point methods as a tuple, each known: else every point fit failed on it, after the others had run."""
    methods = _listed(methods, "methods", where, empty=empty)
    unknown = [m for m in methods if m not in POINT_METHODS]
    if unknown:
        raise ValueError(f"{where}: unknown point method(s) {unknown}; known: {list(POINT_METHODS)}")
    return methods


@dataclass(frozen=True, repr=False)
class PointBacktest(Result):
    """Per (family, method): fitted parameters, per-checkpoint predictions, and ARE on the test points."""

    _main = "scores"

    fits: pd.DataFrame
    predictions: pd.DataFrame
    scores: pd.DataFrame


def point_backtest(
    df: pd.DataFrame,
    *,
    methods: tuple[str, ...] = ("epoch", "hitchhiker"),
    form: str = "chinchilla",
    k: int | None = None,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    train_fraction: float = 1.0,
    point_grid: str = "full",
) -> PointBacktest:
    """Hitchhiker protocol, per family: fit the smaller models, predict the target's last 30%, score ARE.

    ``point_grid="coarse"`` starts the ``epoch`` fits from :func:`coarse_starts` instead of the full grid."""
    methods = _check_methods(methods, "point_backtest")  # before any fit (an empty list ended in pandas' concat)
    if point_grid not in ("coarse", "full"):
        raise ValueError(f"point_grid={point_grid!r}; use 'coarse' or 'full'")
    starts = coarse_starts(form) if point_grid == "coarse" else None
    df = _study_rows(as_table(df, name="point_backtest's table", needs=(*FIT_COLUMNS, "model", "tokens")))
    split = hitchhiker_split(df, k=k, min_tokens=min_tokens, train_fraction=train_fraction)
    fits, predictions, scores = [], [], []
    for family, test in split.test.groupby("family", sort=True):
        train = split.train[split.train["family"] == family]
        if train.empty:
            raise ValueError(f"family {family!r}: no training rows left after the early cut (min_tokens={min_tokens})")
        for method in methods:
            fit = fit_point(train, form=form, method=method, starts=starts if method == "epoch" else None)
            predicted = fit.predict(test)  # the law's inputs from the test rows (e.g. su2024's steps)
            fits.append({"family": family, "method": method, "points": len(train), **fit.params})
            predictions.append(
                test[["family", "model", "run", "params", "tokens", "loss"]].assign(method=method, predicted=predicted)
            )
            scores.append(
                {"family": family, "method": method, "target": test["model"].iloc[0],
                 "train_models": len(split.models[family]), "test_points": len(test),
                 "are": are(test["loss"].to_numpy(), predicted)}
            )
    return PointBacktest(pd.DataFrame(fits), pd.concat(predictions, ignore_index=True), pd.DataFrame(scores))


def bayes_backtest(
    df: pd.DataFrame,
    *,
    pooling: str = "hierarchical",
    form: str = "chinchilla",
    k: int | None = None,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    train_fraction: float = 1.0,
    seed: int = 0,
    fit_options: dict | None = None,
):
    """Hitchhiker protocol with the Bayesian fit: all families fitted together on their smaller models.

    Scores each family's target (its last 30% of checkpoints) by the ARE of the posterior median of
    ``new_run`` and by the coverage of its 50% and 90% intervals. Returns (PointBacktest-like
    tables, the :class:`~bayeslaw.inference.nuts.Fit`).
    """
    fit_options = dict(fit_options or {})
    _check_fit_options((pooling,), fit_options, seed, where="bayes_backtest",
                       fixed={"df", "form", "pooling", "seed", "min_tokens"}, form=form)
    df = _study_rows(as_table(df, name="bayes_backtest's table", needs=(*FIT_COLUMNS, "model", "tokens")))
    split = hitchhiker_split(df, k=k, min_tokens=min_tokens, train_fraction=train_fraction)
    result = fit(split.train, form=form, pooling=pooling, seed=seed, min_tokens=min_tokens, **fit_options)
    test = split.test.reset_index(drop=True)
    law = get_law(form)
    optional = [c for c in (*law.inputs, "run_tokens") if c in test.columns]  # e.g. a given flops column
    columns = list(dict.fromkeys(["family", "run", "params", "tokens", *law.columns_needed, *optional]))
    prediction = result.predict(test[columns], kind="new_run", seed=seed)
    draws = prediction.draws.values
    lo50, hi50 = np.quantile(draws, [0.25, 0.75], axis=0)
    lo90, hi90 = np.quantile(draws, [0.05, 0.95], axis=0)
    method = f"bayes-{pooling}" if form == DEFAULT_FORM else f"bayes-{pooling}-{form}"
    predictions = test[["family", "model", "run", "params", "tokens", "loss"]].assign(
        method=method, predicted=np.median(draws, axis=0), q05=lo90, q25=lo50, q75=hi50, q95=hi90)
    covered50 = (predictions["loss"] >= lo50) & (predictions["loss"] <= hi50)
    covered90 = (predictions["loss"] >= lo90) & (predictions["loss"] <= hi90)
    predictions = predictions.assign(covered50=covered50, covered90=covered90)
    scores = []
    for family, rows in predictions.groupby("family", sort=True):
        scores.append({"family": family, "method": method, "target": rows["model"].iloc[0],
                       "train_models": len(split.models[family]), "test_points": len(rows),
                       "are": are(rows["loss"].to_numpy(), rows["predicted"].to_numpy()),
                       "coverage50": rows["covered50"].mean(), "coverage90": rows["covered90"].mean(),
                       "width90": float(np.mean(rows["q95"] - rows["q05"]))})
    fits = result.params().pivot(index="family", columns="parameter", values="median").reset_index()
    fits = fits.assign(method=method, points=result.idata.attrs["bayeslaw_rows_fitted"])
    return PointBacktest(fits, predictions, pd.DataFrame(scores)), result


def _interval(draws: np.ndarray, prob: float) -> tuple[float, float]:
    return float(np.quantile(draws, 0.5 - prob / 2)), float(np.quantile(draws, 0.5 + prob / 2))


#: The calibration study's simulator design and fit settings (``simulate_options``/``fit_options`` override them)
CALIBRATION_SIMULATE = {"families": 3, "sizes": (1e8, 3e8, 1e9, 3e9), "seeds": 2, "checkpoints": 8,
                        "first_tokens": 1e10, "max_tokens": 2e11}
# rising "keep": the data are drawn from the model's own prior, whose curves may rise along a run (a schedule
# shape or an offset that the prior allows and a real run would not show); fit refuses such runs as
# diverged, which here would drop the data sets SBC needs, so they are kept
CALIBRATION_FIT = {"chains": 2, "draws": 500, "warmup": 500, "thin": None, "min_tokens": None, "progress": False,
                   "rising": "keep"}
CALIBRATION_BATCH = 8  # data sets per cell, fitted as one program (fit_many)


CALIBRATION_TRUTHS = ("prior", "fixed")


def prior_simulation(design: pd.DataFrame, *, pooling: str = "hierarchical", form: str = DEFAULT_FORM,
                     seed: int = 0) -> Simulation:
    """One draw from the ``pooling`` model's prior predictive on ``design``'s rows: every latent site (the
    families' law, schedule shapes, seed and checkpoint noise, the population above them) from its prior,
    then the losses from the run-level likelihood (``Predictive`` with no data, PRNG key ``seed``).

    ``design`` is a table in the bayeslaw schema whose losses are replaced (its families, runs, sizes and
    checkpoints are kept). This is the truth of simulation-based calibration (Talts et al. 2018): data
    drawn from the model that fits them, so that the posterior's intervals cover it at their nominal rate.
    ``truth["families"][f]`` holds the law's ``theta`` and ``natural`` parameters and ``sigma_seed``;
    ``truth["sites"]`` every site drawn.
    """
    data = prepare(design, form)
    draw = Predictive(get_model(pooling), num_samples=1)(jax.random.PRNGKey(seed), data)
    draw = {name: np.asarray(value)[0] for name, value in draw.items()}
    law = get_law(form)
    truth = {"generator": "bayeslaw.evaluation.prior_simulation", "seed": seed, "form": law.name,
             "pooling": pooling, "families": {},
             "sites": {name: value.tolist() for name, value in draw.items() if name != "obs"}}
    for f, family in enumerate(data.families):
        theta = {name: float(draw[name][f]) for name in law.theta_names}
        truth["families"][family] = {"theta": theta, "natural": {k: float(v) for k, v in law.natural(theta).items()},
                                     "sigma_seed": float(draw["sigma_seed"][f])}
    table = design.assign(loss=np.exp(data.per_row(draw["obs"])), loss_name="simulated (prior)")
    return Simulation(table.drop(columns=["true_law"], errors="ignore"), truth)


def calibration_study(
    n_datasets: int = 50,
    *,
    seed: int = 0,
    probs: tuple[float, ...] = (0.5, 0.9),
    pooling: str = "hierarchical",
    truth: str = "prior",
    simulate_options: dict | None = None,
    fit_options: dict | None = None,
    batch: int = CALIBRATION_BATCH,
    progress: bool = False,
    workers: int = 1,
    client=None,
    scheduler: str | None = None,
    folder: str | Path | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Simulation-based check of the posterior's intervals against known truth.

    For each of ``n_datasets`` simulated data sets (seed ``seed + i``): hold out the largest model of
    the first family, fit the rest, and record whether the central ``probs`` intervals cover the true
    E, alpha, beta and sigma_seed of every family, and the held-out target's observed losses
    (``new_run`` predictive). Returns one row per (data set, quantity, family, prob) with ``covered``
    and ``width``; ``coverage_table`` aggregates it.

    ``truth="prior"`` (SBC): each data set's truth is drawn from the ``pooling`` model's priors and its
    losses from the model (:func:`prior_simulation`, on the design of :func:`bayeslaw.simulate`), so
    coverage is nominal when the sampler is right. ``truth="fixed"``: the simulator's stated population
    (Besiroglu et al.'s refit, its family spread, ``sigma_seed`` 0.01): a frequentist check at one
    truth, where intervals the data barely inform carry the prior's width.

    The data sets share one design, so ``batch`` of them make one cell, fitted as one program
    (:func:`bayeslaw.inference.batched.fit_many`; ``batch=1`` fits each with :func:`bayeslaw.fit`). The
    cells run through :func:`bayeslaw.executor.run_cells` (``workers``, ``client``, ``scheduler``,
    ``folder``, ``resume`` as in :func:`backtest`); a cell whose fit raised gives one row per data set with its
    ``error``.
    """
    where = "calibration_study"
    # each is checked before anything runs: else every cell raised with it, and the study returned a table of
    # errors (or, for probs in percent, fitted every data set first)
    if not is_whole(n_datasets) or n_datasets < 1:
        raise ValueError(f"{where}: n_datasets={n_datasets!r} must be a whole number >= 1")
    if not is_whole(batch) or batch < 1:
        raise ValueError(f"calibration_study: batch={batch}; it must be at least 1")
    probs = _listed(probs, "probs", where)
    bad = [p for p in probs if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p < 1]
    if bad:
        raise ValueError(f"{where}: probs {bad} must be central interval probabilities in (0, 1) (0.9, not 90)")
    check_choice(truth, CALIBRATION_TRUTHS, "calibration truth")
    for name, given in (("simulate_options", simulate_options), ("fit_options", fit_options)):
        if given is not None and not isinstance(given, dict):
            raise TypeError(f"{where}: {name}={given!r} must be a dict")
    design = set(inspect.signature(simulate).parameters) - {"seed"}  # each data set's seed is the study's
    unknown = sorted(set(simulate_options or {}) - design)
    if unknown:
        raise ValueError(f"{where}: simulate_options {unknown} are not options of bayeslaw.simulate the study "
                         f"passes on; valid: {', '.join(sorted(design))}")
    sim_opts = {**CALIBRATION_SIMULATE, **(simulate_options or {})}
    fit_opts = {**CALIBRATION_FIT, **(fit_options or {})}
    # the study sets form (the simulator's law), pooling and seed; its data sets are fitted by fit_many
    _check_fit_options((pooling,), fit_opts, seed, where=where, fixed={"df", "form", "pooling", "seed"})
    if batch > 1 and fit_opts.get("extend") not in (None, 0):
        raise ValueError(f"{where}: fit_options extend={fit_opts['extend']!r} with batch={batch}: data sets fitted "
                         f"together draw one block each (fit_many), none extended; batch=1 extends each fit")
    jobs = {}
    for first in range(0, n_datasets, batch):
        members = list(range(first, min(first + batch, n_datasets)))
        name = f"dataset={first}" if len(members) == 1 else f"datasets={first}-{members[-1]}"
        jobs[name] = {"datasets": members, "seeds": [seed + i for i in members], "probs": probs,
                      "pooling": pooling, "truth": truth, "simulate": sim_opts, "fit": fit_opts}
    store = None
    if folder is not None:
        config = {"study": "calibration", "n_datasets": n_datasets, "seed": seed, "probs": list(probs),
                  "pooling": pooling, "truth": truth, "simulate": sim_opts, "fit": fit_opts, "batch": batch}
        store = StudyFolder(folder, config, resume=resume)
    results = run_cells(_calibration_cell, jobs, workers=workers, client=client, scheduler=scheduler, folder=store,
                        progress=progress, desc="calibration data sets")
    rows = []
    for key, result in results.items():
        rows += ([{"dataset": i, "error": result.error} for i in jobs[key]["datasets"]]
                 if isinstance(result, CellError) else result)
    table = pd.DataFrame(rows)
    return table.assign(error=None) if "error" not in table.columns else table


def calibration_simulation(seed: int, *, truth: str = "prior", pooling: str = "hierarchical",
                           simulate_options: dict | None = None) -> Simulation:
    """Data set ``seed`` of :func:`calibration_study`: the simulator's design, with the truth of ``truth``."""
    check_choice(truth, CALIBRATION_TRUTHS, "calibration truth")
    sim = simulate(seed=seed, **{**CALIBRATION_SIMULATE, **(simulate_options or {})})
    return sim if truth == "fixed" else prior_simulation(sim.data, pooling=pooling, seed=seed)


def calibration_rows(sim) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A calibration data set split: (the rows fitted, the target's test rows). The target is the
    largest model of the first family; its test rows are its runs' last 30% of checkpoints."""
    df = sim.data
    first = sorted(df["family"].unique())[0]
    target_model = df.loc[df["family"] == first].sort_values("params")["model"].iloc[-1]
    held_out = df["model"] == target_model
    test = df.loc[held_out]
    return df.loc[~held_out], test.loc[test["tokens"] >= TEST_FROM * test.groupby("run")["tokens"].transform("max")]


def _calibration_cell(job: dict) -> list[dict]:
    """Data sets of :func:`calibration_study`: simulate, fit without the target (together when more than
    one), score the intervals."""
    sims = [calibration_simulation(s, truth=job["truth"], pooling=job["pooling"],
                                   simulate_options=job["simulate"]) for s in job["seeds"]]
    splits = [calibration_rows(sim) for sim in sims]
    if len(sims) == 1:
        results = [fit(splits[0][0], pooling=job["pooling"], seed=job["seeds"][0], posterior_predictive=False,
                       **job["fit"])]
    else:
        # fit_many's chains are vectorised, and it draws one block (extend None or 0: calibration_study refuses more)
        options = {k: v for k, v in job["fit"].items() if k not in ("chain_method", "extend")}
        results = fit_many([train for train, _ in splits], pooling=job["pooling"], seeds=job["seeds"],
                           batch_size=len(sims), **options)
    rows = []
    for i, s, sim, (_, test), result in zip(job["datasets"], job["seeds"], sims, splits, results, strict=True):
        rows += _calibration_scores(i, s, sim, test, result, job["probs"])
    release_compiled(len(sims))
    return rows


def _calibration_scores(i: int, seed: int, sim, test: pd.DataFrame, result: Fit, probs) -> list[dict]:
    """Coverage rows of one calibration data set: the law's parameters of every family, the target's losses."""
    post = {name: result.site_draws(name) for name in ("alpha", "beta", "sigma_seed")}
    post["E"] = np.exp(result.site_draws("e"))
    rows = []
    for f_index, family in enumerate(result.families):
        natural = sim.truth["families"][family]["natural"]
        truth = {"E": natural["E"], "alpha": natural["alpha"], "beta": natural["beta"],
                 "sigma_seed": sim.truth["families"][family].get("sigma_seed", sim.truth.get("sigma_seed"))}
        for quantity, value in truth.items():
            for prob in probs:
                lo, hi = _interval(post[quantity][:, f_index], prob)
                rows.append({"dataset": i, "quantity": quantity, "family": family, "prob": prob,
                             "covered": lo <= value <= hi, "width": hi - lo})
    targets = test[["family", "run", "params", "tokens"]]  # runs unseen by the fit: fresh offsets, their shape
    # the simulated law is exact (no form error): the study checks the inference, so the forecast
    # carries none either (Fit.form_error_sd is set from real held-out targets instead)
    prediction = result.predict(targets, kind="new_run", seed=seed, form_error=0.0)
    for j, observed in enumerate(test["loss"].to_numpy()):
        for prob in probs:
            lo, hi = _interval(prediction.draws.values[:, j], prob)
            rows.append({"dataset": i, "quantity": "target_loss", "family": test["family"].iloc[0], "prob": prob,
                         "covered": lo <= observed <= hi, "width": hi - lo})
    diagnostics = result.diagnostics(warn=False)
    return [{**row, "divergences": diagnostics.divergences, "max_rhat": diagnostics.max_rhat} for row in rows]


def coverage_table(study: pd.DataFrame) -> pd.DataFrame:
    """Observed coverage by quantity and nominal probability, with two standard errors (data sets whose
    fit failed are left out: ``study["error"]`` names them).

    ``se``: binomial, as if the ``n`` rows were independent. ``se_datasets``: the data sets are the
    independent units (a target's checkpoints share its run's offset; a data set's families share its
    population), so the sd of each data set's coverage over the ``datasets``, divided by their root;
    with one row per data set it is the binomial se at the nominal rate's observed value.
    """
    if not isinstance(study, pd.DataFrame):
        raise TypeError(f"coverage_table: study is a {type(study).__name__}; give calibration_study's table")
    if "error" in study.columns:
        failed = study["error"].notna()
        if failed.all():  # was a KeyError 'quantity': the failed rows carry no scores
            errors = sorted(set(study["error"].astype(str)))
            raise ValueError(f"coverage_table: no data set to score: every fit of the study failed "
                             f"({len(study)} row(s); {'; '.join(errors[:2])})")
        study = study[~failed]
    missing = [c for c in ("quantity", "prob", "dataset", "covered", "width") if c not in study.columns]
    if missing:
        raise ValueError(f"coverage_table: the table lacks column(s) {missing}; give calibration_study's table")
    keys = ["quantity", "prob"]
    table = study.groupby(keys).agg(n=("covered", "size"), datasets=("dataset", "nunique"),
                                    coverage=("covered", "mean"), median_width=("width", "median")).reset_index()
    table["se"] = np.sqrt(table["prob"] * (1 - table["prob"]) / table["n"])
    per_dataset = study.groupby([*keys, "dataset"])["covered"].mean()
    spread = per_dataset.groupby(keys).agg(lambda c: np.std(c, ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.nan)
    table["se_datasets"] = spread.reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy()
    return table


# --- the backtest study ---------------------------------------------------------------------------

DEFAULT_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5)
#: Every file :func:`bayeslaw.report.backtest_report` may write into a study's folder: a study started over in
#: that folder removes these (and only these, with its cell files), so that no report of the earlier study is left
BACKTEST_REPORT_FILES = ("cells.csv", "predictions.csv", "aggregate_by_method.csv", "aggregate_by_family.csv",
                         "aggregate_by_k.csv", "loo_comparison.csv", "are_heatmap.png", "trajectories.png",
                         "calibration.png", "transfer_trajectories.png", "report.md")
MAX_DEFAULT_K = 5  # default ks: 2 .. 5; bounds the study (Chinchilla alone has 105 models below its target)


@dataclass(frozen=True, repr=False)
class Backtest(Result):
    """Result of :func:`backtest`.

    ``cells``: one row per (case, family, k, q, method) with ARE, CRPS, interval coverage and width,
    ``error`` where it is unscored with a reason, and ``failed`` where that reason is its fit raising;
    ``predictions``: one row per test checkpoint and cell; ``comparison``: the ArviZ LOO comparison
    of the pooling variants on all rows (or None); ``settings`` and ``timing`` say how it ran
    (``settings["loo_failures"]``: pooling -> error of a LOO fit that raised, left out of the comparison).
    """

    _main = "cells"

    cells: pd.DataFrame
    predictions: pd.DataFrame
    comparison: pd.DataFrame | None
    settings: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    @property
    def failures(self) -> pd.DataFrame:
        """The cells whose fit raised, with the error (not those a method could not predict, e.g. an
        unpooled family seen at one size: their ``error`` says why, and a rerun would not change it)."""
        return self.cells[_failed_mask(self.cells)]

    def aggregate(self, by: tuple[str, ...] = ("case", "method"), *, common: bool = True) -> pd.DataFrame:
        """ARE (median, mean), CRPS, coverage and width per group of cells (``by``: columns of ``cells``).

        Each cell is counted once: in ``cells`` (scored and used), ``unscored`` or ``failed``.
        ``common``: only the (case, family, k, q) cells that every method could predict, so that methods
        are compared on the same cells; ``unscored`` counts each group's cells left out for a method that
        could not predict there (a point fit on fewer points than parameters). ``failed`` counts the cells
        whose fit raised: a failure is an accident of the run, not of the cell, so it does not take the
        other methods' scores of that cell out of the tables (rerun with resume to fill it in).
        """
        by = _listed(by, "by", "Backtest.aggregate")
        unknown = [c for c in by if c not in self.cells.columns]
        if unknown:  # was a KeyError
            raise ValueError(f"Backtest.aggregate: by={list(by)}: {unknown} not column(s) of cells; "
                             f"e.g. {[c for c in ('case', 'family', 'k', 'q', 'method') if c in self.cells.columns]}")
        given = self.cells.assign(**{c: np.nan for c in SCORE_COLUMNS if c not in self.cells.columns})
        if "method" in by and "case" not in by and "case" in given.columns:
            cases = given.groupby("method")["case"].agg(lambda c: "/".join(sorted(set(c))))
            if cases.nunique() > 1:  # e.g. bayes-none has no transfer cell: common=True does not see that
                warnings.warn(f"Backtest.aggregate: by={list(by)} pools the cases, where the methods have cells in "
                              f"different ones ({', '.join(f'{m}: {c}' for m, c in cases.items())}): their rows are "
                              f"of different cells; group by ('case', {', '.join(map(repr, by))})", RuntimeWarning,
                              stacklevel=2)
        failed = _failed_mask(given)
        unpredicted = given["are"].isna() & ~failed
        if common:
            unpredicted = unpredicted.groupby([given[c] for c in ("case", "family", "k", "q")]).transform("any")
        cells = given.assign(unscored=unpredicted & ~failed, failed=failed)
        cells_used = cells[~cells["unscored"] & ~cells["failed"]]
        table = cells_used.groupby(list(by), sort=True).agg(
            cells=("are", "size"), are_median=("are", "median"), are_mean=("are", "mean"),
            crps_mean=("crps", "mean"), coverage50=("coverage50", "mean"), coverage90=("coverage90", "mean"),
            width90=("width90", "mean"), max_rhat=("max_rhat", "max"), divergences=("divergences", "sum"),
        )
        counts = cells.groupby(list(by), sort=True)[["unscored", "failed"]].sum()
        table = table.join(counts, how="outer").fillna({"cells": 0, "unscored": 0, "failed": 0})
        return table.astype({"cells": int, "unscored": int, "failed": int}).reset_index()


#: The scores of a backtest cell (``Backtest.cells``): NaN where a cell has none (a point fit's coverage, a failed fit)
SCORE_COLUMNS = ("train_points", "wall_s", "converged", "max_rhat", "divergences", "target", "test_points", "are",
                 "crps", "coverage50", "coverage90", "width50", "width90")


def _failed_mask(cells: pd.DataFrame) -> pd.Series:
    """Which cells' fit raised: the ``failed`` column (a table of an older version has none: every error)."""
    if "failed" in cells.columns:
        return cells["failed"].eq(True)  # NaN (a row without the flag) is not a failure
    return cells["error"].notna() if "error" in cells.columns else pd.Series(False, index=cells.index)


def _family_split(rows: pd.DataFrame, k: int, q: float, *, min_tokens, test_from):
    """hitchhiker_split of one family with k capped at the number of models below its target. Its early cut is
    made here, on the training rows (the split's own, the same rows): a family the cut leaves without training
    rows is the backtest's to leave unscored at that cell, where the split of it alone raised for the study."""
    n_smaller = rows["model"].nunique() - 1
    split = hitchhiker_split(rows, k=min(k, n_smaller), target_fraction=q, test_from=test_from, min_tokens=None)
    return split._replace(train=cut_early(split.train, min_tokens=min_tokens))


def _score(test: pd.DataFrame, draws: np.ndarray | None, predicted: np.ndarray, cell: dict):
    """Cell row and per-point rows for predictions of ``test`` (draws: (sample, point) or None for a point fit)."""
    y = test["loss"].to_numpy(dtype=float)
    points = test[["family", "model", "run", "params", "tokens", "loss"]].reset_index(drop=True).assign(
        **{k: v for k, v in cell.items() if k in ("case", "k", "q", "method")}, predicted=predicted)
    row = {**cell, "target": test["model"].iloc[0], "test_points": len(test), "are": are(y, predicted)}
    if draws is None:
        row.update(crps=float(np.mean(np.abs(predicted - y))), coverage50=np.nan, coverage90=np.nan,
                   width50=np.nan, width90=np.nan)
        return row, points
    q05, q25, q75, q95 = np.quantile(draws, [0.05, 0.25, 0.75, 0.95], axis=0)
    points = points.assign(q05=q05, q25=q25, q75=q75, q95=q95)
    row.update(crps=float(np.mean(crps(draws, y))),
               coverage50=float(np.mean((y >= q25) & (y <= q75))), coverage90=float(np.mean((y >= q05) & (y <= q95))),
               width50=float(np.mean(q75 - q25)), width90=float(np.mean(q95 - q05)))
    return row, points


def _bayes_member(pooling: str, trains: list[pd.DataFrame], tests: dict, cells: dict):
    """The NUTS fit of one cell and pooling (its training rows, test sets and cells), and the rows of the
    cells it cannot score. Hierarchical: every family's rows (the population borrows from all). No
    pooling: each family is fitted on its own (one fit holds them side by side), so only the scored
    families enter, and one seen at a single model size has no forecast at another: its cell is kept,
    unscored, with the reason."""
    if not tests:
        return None, []
    method = f"bayes-{pooling}"
    train = pd.concat(trains)
    skipped = []
    if pooling == "none":
        single = single_size_families(train[train["family"].isin(list(tests))])
        skipped = [{**cells[f], "method": method, "are": np.nan,
                    "error": "no unpooled forecast: the family's training rows hold a single model size"}
                   for f in single]
        tests = {f: t for f, t in tests.items() if f not in single}
        train = train[train["family"].isin(list(tests))]
        if not tests:
            return None, skipped
    member = {"train": train, "tests": tests, "cells": {f: {**cells[f], "method": method} for f in tests}}
    return member, skipped


def _point_job(job: dict):
    """One point fit: a family's training rows (or, for transfer, A and alpha borrowed from the others)."""
    start = time.perf_counter()
    starts = job["starts"] if job["method"] == "epoch" else None
    fixed = None
    if job.get("borrow_from") is not None:
        # the Hitchhiker's transfer baseline: A and alpha from one fit of all other families
        donor = fit_point(job["borrow_from"], method=job["method"], starts=starts, across_families=True)
        fixed = {"a": donor.theta["a"], "alpha": donor.theta["alpha"]}
    test = job["test"]
    try:
        result = fit_point(job["train"], method=job["method"], starts=starts, fixed=fixed)
        predicted, converged = result.predict(test["params"].to_numpy(), test["tokens"].to_numpy()), result.converged
    except TooFewPoints as error:
        # fewer points than free parameters (a final-loss family seen through k models): no point
        # fit exists; the cell is kept with a NaN score so that the report counts it, not dropped, with the reason
        predicted, converged, reason = np.full(len(test), np.nan), False, str(error)
    else:
        reason = None
    cell = {**job["cell"], "train_points": len(job["train"]), "wall_s": time.perf_counter() - start,
            "converged": converged, "max_rhat": np.nan, "divergences": np.nan,
            **({"error": reason} if reason is not None else {})}
    row, points = _score(test, None, predicted, cell)
    return [row], [points]


def _bayes_job(job: dict):
    """NUTS fits of every family's training rows together, one per member (the cells of one k and pooling
    across q; fitted as one program, :func:`~bayeslaw.inference.batched.fit_many`, when there are several);
    scores each family's target. A member's ``wall_s`` is the job's wall time over its members."""
    start = time.perf_counter()
    members = job["members"]
    if len(members) == 1:
        # scored by its forecasts alone: no replicate of the training rows
        results = [fit(members[0]["train"], pooling=job["pooling"], seed=job["seed"], min_tokens=None, thin=None,
                       posterior_predictive=False, **job["fit_options"])]
    else:
        # a program's chains are vectorised, and its fits draw one block each (fit_many)
        options = {k: v for k, v in job["fit_options"].items() if k not in ("chain_method", "extend")}
        results = fit_many([m["train"] for m in members], pooling=job["pooling"], seeds=[job["seed"]] * len(members),
                           min_tokens=None, thin=None, **options)
    wall = (time.perf_counter() - start) / len(members)
    rows, points = [], []
    for member, result in zip(members, results, strict=True):
        diagnostics = result.diagnostics(warn=False)
        for family, test in member["tests"].items():
            test = test.reset_index(drop=True)
            targets = test[["family", "run", "params", "tokens", *(c for c in ("run_tokens",) if c in test.columns)]]
            draws = result.predict(targets, kind="new_run", seed=job["seed"]).draws.values
            cell = {**member["cells"][family], "train_points": int((member["train"]["family"] == family).sum()),
                    "wall_s": wall, "converged": diagnostics.max_rhat <= 1.01 and diagnostics.divergences == 0,
                    "max_rhat": diagnostics.max_rhat, "divergences": diagnostics.divergences,
                    "extensions": diagnostics.extensions}
            row, pts = _score(test, draws, np.median(draws, axis=0), cell)
            rows.append(row)
            points.append(pts)
    release_compiled(len(members))
    return rows, points


def _run(job: dict):
    return {"bayes": _bayes_job, "point": _point_job, "fit": _fit_cell}[job["kind"]](job)


def _job_key(job: dict) -> str:
    """The cell key of a job: case, k, q, method and (for a point fit or a transfer case) the family."""
    if job["kind"] == "fit":
        return f"loo/{job['pooling']}"
    if job["kind"] == "point":
        cell = job["cell"]
        return f"{cell['case']}/k={cell['k']}/q={cell['q']:g}/{cell['method']}/{cell['family']}"
    cells = [next(iter(m["cells"].values())) for m in job["members"]]
    cell = cells[0]
    qs = "+".join(format(c["q"], "g") for c in cells)
    key = f"{cell['case']}/k={cell['k']}/q={qs}/{cell['method']}"
    return key + f"/{cell['family']}" if cell["case"] == "transfer" else key


def _failed(job: dict, failure: CellError):
    """The cells of a job that raised: kept, unscored, with the error (the study goes on)."""
    cells = [job["cell"]] if job["kind"] == "point" else [c for m in job["members"] for c in m["cells"].values()]
    return [{**cell, "are": np.nan, "error": failure.error, "failed": True} for cell in cells], []


def data_hash(df: pd.DataFrame) -> str:
    """A hash of a table's values and column names (a study folder refuses a resume on other data). The rows and
    the columns may come in any order, and a number stored as int or float hashes alike: a study reads the same
    values from either (its rows are put in one order, its columns read by name)."""
    names = sorted(map(str, df.columns))
    table = df.set_axis(list(map(str, df.columns)), axis=1)[names]
    numeric = [c for c in names if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
    table = table.astype({c: "float64" for c in numeric})
    values = pd.util.hash_pandas_object(table, index=False).to_numpy()  # per row: a sum is the same in any order
    return f"{int(values.sum()) & (2**64 - 1):016x}-{len(df)}-{'|'.join(names)}"


#: What a study's NUTS fits get unless ``fit_options`` says otherwise: bl.fit's own defaults (4 chains x
#: 1000 draws after 1000 warmup), without the progress bar. Not fewer: r-hat is a statistic of the draws,
#: and at 2 x 500 its noise alone exceeds 1.01 on converged chains of ~60 parameters (benchmarks/rhat_noise.py),
#: so a study at 2 x 500 could not tell a cell that has not mixed from one that has.
STUDY_FIT = {"progress": False}


STUDY_SETS = frozenset({"df", "form", "pooling", "seed", "min_tokens", "thin"})  # a study's fits: set by the study


def _study_fit_options(fit_options, where: str) -> dict:
    """A study's NUTS options: ``STUDY_FIT`` updated by the user's (a dict of bayeslaw.fit's options, or None)."""
    if fit_options is not None and not isinstance(fit_options, dict):
        raise TypeError(f"{where}: fit_options={fit_options!r} must be a dict of bayeslaw.fit's options")
    return {**STUDY_FIT, **(fit_options or {})}


def _check_fit_options(poolings, fit_options: dict, seed: int, *, where: str = "backtest",
                       fixed=STUDY_SETS, form: str = DEFAULT_FORM) -> None:
    """bl.fit's own checks of each pooling and the NUTS options (FitConfig), made before any fit runs:
    else a study with ``chains=0`` or an unknown pooling ran its point fits and then failed every Bayesian cell.
    ``fixed``: the options the caller sets itself (given again, the fit raised "multiple values")."""
    if not isinstance(fit_options, dict):
        raise TypeError(f"{where}: fit_options={fit_options!r} must be a dict of bayeslaw.fit's options")
    known = set(inspect.signature(nuts.fit).parameters) - set(fixed)  # nuts.fit: the real one where a test patches ours
    taken = sorted(set(fit_options) & set(fixed))  # was "got multiple values for keyword argument" from the fit
    if taken:
        raise ValueError(f"{where}: fit_options {taken} are set by {where} itself (its own arguments where it has "
                         f"them); leave them out of fit_options")
    unknown = sorted(set(fit_options) - known)
    if unknown:
        raise ValueError(f"{where}: fit_options {unknown} are not options of bayeslaw.fit the study passes on; "
                         f"valid: {', '.join(sorted(known))}")
    config = {k: v for k, v in fit_options.items() if k in {f.name for f in fields(FitConfig)}}
    for pooling in poolings:
        try:
            FitConfig(form=form, pooling=pooling, seed=seed, **config)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None


def backtest(
    df: pd.DataFrame,
    *,
    ks: tuple[int, ...] | None = None,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    methods: tuple[str, ...] = ("epoch", "hitchhiker"),
    poolings: tuple[str, ...] = ("hierarchical", "none"),
    transfer: bool = True,
    families: list[str] | None = None,
    min_sizes: int = 3,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    test_from: float = TEST_FROM,
    thin: int | None = 8,
    point_grid: str = "coarse",
    fit_options: dict | None = None,
    compare: bool = True,
    workers: int = 1,
    client=None,
    scheduler: str | None = None,
    folder: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    batch: bool = False,
) -> Backtest:
    """The Hitchhiker's Guide backtest with uncertainty, point fits and Bayesian fits side by side.

    For every family with at least ``min_sizes`` model sizes: the target is its largest model and
    the test points its checkpoints with tokens >= ``test_from`` x the run's last. Each cell (k, q)
    trains on the family's k smallest models (k capped at the number below the target) plus the
    first fraction q of the target's run, all after the early cut at ``min_tokens`` and thinned to
    ``thin`` log-spaced checkpoints per run; every method sees the same training rows.

    - point fits (``methods``): one per family and cell, on that family's rows alone;
    - Bayesian fits (``poolings``): one NUTS fit per cell of all families' rows together (the
      hierarchy borrows across families; unpooled, only the scored families, and a family whose
      training rows hold one model size is left unscored with the reason), scored per family with the
      ``new_run`` predictive (posterior median for ARE, 50%/90% central intervals, CRPS); with ``batch=True``, the
      cells of one k and pooling (every q) are fitted together (:func:`~bayeslaw.inference.batched.fit_many`:
      those of one model structure as one program), meant for an accelerator: on 2 CPU cores, where a
      fit's two chains already fill the cores, it was slower (``benchmarks/backtest_study.py --batching``);
    - ``transfer``: the family seen through one model (the largest below the target) while
      every other family is seen in full. Point baseline: A and alpha from a fit of the other
      families, E, B, beta fitted on the one model (the Hitchhiker's trick); ours: the
      hierarchical posterior. With a single family there is nothing to borrow from: the case is
      skipped with a warning.

    ``ks`` defaults to 2 .. min(5, the most models below any target). ``point_grid="coarse"`` starts the
    ``epoch`` fits from 243 of the published grid's 4500 starts (a 3^5 subset: the study runs
    hundreds of fits; ``"full"`` uses all). ``fit_options`` go to :func:`bayeslaw.fit` (chains,
    draws, warmup, ...; default :data:`STUDY_FIT`, its own defaults). ``compare`` adds the PSIS-LOO
    comparison of ``poolings`` on all rows.

    Fits run through :func:`bayeslaw.executor.run_cells`: here one after another, or on a Dask
    cluster (``client``, ``scheduler`` address, or a LocalCluster of ``workers`` > 1 processes). A fit
    that raises leaves its cells unscored with the ``error`` and the study goes on. ``folder`` keeps
    each fit's cells as they finish; ``resume=True`` runs only those not there yet (same version,
    configuration and data, else refused naming the difference; the order of ``ks``, ``fractions``,
    ``methods``, ``poolings`` and ``families`` does not matter). An unknown point method is refused before
    anything runs.
    """
    # else every point cell failed with it, after the NUTS fits had run
    methods = _check_methods(methods, "backtest", empty=True)
    poolings = _listed(poolings, "poolings", "backtest", empty=True)
    fractions = _listed(fractions, "fractions", "backtest")
    if ks is not None:
        ks = _listed(ks, "ks", "backtest")
    if families is not None:
        families = list(_listed(families, "families", "backtest"))
    fit_options = _study_fit_options(fit_options, "backtest")
    _check_fit_options(poolings, fit_options, seed)
    if batch and len(fractions) > 1 and fit_options.get("extend") not in (None, 0):
        raise ValueError(f"backtest: fit_options extend={fit_options['extend']!r} with batch=True: the cells fitted "
                         f"together draw one block each (fit_many), none extended; batch=False extends them")
    df = _study_rows(as_table(df, name="backtest's table", needs=(*FIT_COLUMNS, "model", "tokens")))
    if point_grid not in ("coarse", "full"):
        raise ValueError(f"point_grid={point_grid!r}; use 'coarse' or 'full'")
    starts = coarse_starts() if point_grid == "coarse" else None
    sizes = df.groupby("family")["params"].nunique()
    # in one order however given: the Bayesian cells fit every family's rows together, in this order
    eligible = sorted(sizes.index[sizes >= min_sizes]) if families is None else sorted(families, key=str)
    unknown = sorted(set(eligible) - set(sizes.index))
    if unknown:
        raise ValueError(f"backtest: unknown family(ies) {unknown}; the data has {sorted(sizes.index)}")
    too_small = [f for f in eligible if sizes[f] < min_sizes]
    if too_small:
        raise ValueError(f"backtest: family(ies) {too_small} have fewer than min_sizes={min_sizes} model sizes")
    if not eligible:
        raise ValueError(f"backtest: no family has at least min_sizes={min_sizes} model sizes")
    by_family = {f: df[df["family"] == f] for f in eligible}
    n_models = {f: rows["model"].nunique() for f, rows in by_family.items()}
    given_ks = ks is not None
    ks = tuple(range(2, min(max(n_models.values()), MAX_DEFAULT_K + 1))) if ks is None else tuple(ks)
    # a k no family can take would leave a study of no cells: refuse it before anything runs; a k that
    # some families cannot take leaves them unscored there, which the report (and, for a k asked for, a
    # warning) names, rather than dropping them silently
    most = {f: n - 1 for f, n in n_models.items()}  # models below each family's target
    per_family = ", ".join(f"{f} {m}" for f, m in most.items())
    for k in ks:
        if not is_whole(k) or k < 1:
            raise ValueError(f"backtest: k={k!r} must be a whole number >= 1 (models below the target trained on)")
        if k > max(most.values()):
            raise ValueError(f"backtest: k={k} is more models than any family has below its target; the largest "
                             f"valid k is {max(most.values())} (per family: {per_family})")
    if not methods and not poolings:
        raise ValueError("backtest: no point methods and no poolings: nothing to fit")
    left_out = {int(k): [f for f, m in most.items() if k > m] for k in ks if any(k > m for m in most.values())}
    if left_out and given_ks:
        what = "; ".join(f"k={k}: {', '.join(fs)}" for k, fs in left_out.items())
        warnings.warn(f"backtest: not scored where a family has fewer models below its target than k ({what})",
                      RuntimeWarning, stacklevel=2)

    def thinned(rows):
        return rows if thin is None or rows.empty else thin_checkpoints(rows, per_run=thin)

    if transfer and len(eligible) < 2:
        # a transfer cell borrows from the other families: with none, every fit of it would fail
        warnings.warn(f"backtest: no transfer case: it borrows from the other families, and the study has one "
                      f"({eligible[0]})", RuntimeWarning, stacklevel=2)
        transfer = False

    jobs, unscored, uncut, unseen = [], [], [], set()
    for k in ks:
        members = {pooling: [] for pooling in poolings}  # the Bayesian cells of this k across q: one job per pooling
        for q in fractions:
            trains, tests, cells = [], {}, {}
            for f, rows in by_family.items():
                split = _family_split(rows, k, q, min_tokens=min_tokens, test_from=test_from)
                train = thinned(split.train)
                trains.append(train)
                if k > n_models[f] - 1:
                    continue  # this family has fewer models than k below its target: not scored here (left_out)
                cell = {"case": "scaling", "family": f, "k": k, "q": q, "train_models": len(split.models[f])}
                if train.empty:  # kept, unscored with the reason (was dropped unannounced, or the study refused)
                    reason = (f"no training rows: the early cut (min_tokens={min_tokens!r}) leaves none of the "
                              f"{len(split.models[f])} model(s) below the target")
                    uncut += [{**cell, "method": m, "are": np.nan, "error": reason}
                              for m in (*methods, *(f"bayes-{p}" for p in poolings))]
                    continue
                if q > 0 and train["model"].isin(split.models[f]).all():
                    unseen.add((f, q))  # the target's first q holds no checkpoint past the cut: the q=0 cell's rows
                tests[f], cells[f] = split.test, cell
                for method in methods:
                    jobs.append({"kind": "point", "method": method, "train": train, "test": split.test,
                                 "starts": starts, "cell": {**cell, "method": method}})
            for pooling in poolings:
                member, skipped = _bayes_member(pooling, trains, tests, cells)
                unscored += skipped
                if member is not None:
                    members[pooling].append(member)
        jobs += [{"kind": "bayes", "pooling": pooling, "members": part, "seed": seed, "fit_options": fit_options}
                 for pooling, group in members.items() for part in ([group] if batch else [[m] for m in group]) if part]
    if transfer:
        for f, rows in by_family.items():
            split = _family_split(rows, 1, 0.0, min_tokens=min_tokens, test_from=test_from)
            one = split.models[f][-1:]  # the largest model below the target
            own = thinned(cut_early(rows[rows["model"].isin(one)], min_tokens=min_tokens))
            others = thinned(cut_early(df[df["family"].isin([g for g in eligible if g != f])], min_tokens=min_tokens))
            cell = {"case": "transfer", "family": f, "k": 1, "q": 0.0, "train_models": 1}
            for method in methods:
                jobs.append({"kind": "point", "method": method, "train": own, "test": split.test, "starts": starts,
                             "borrow_from": others, "cell": {**cell, "method": method}})
            if "hierarchical" in poolings:
                member = {"train": pd.concat([others, own]), "tests": {f: split.test},
                          "cells": {f: {**cell, "method": "bayes-hierarchical"}}}
                jobs.append({"kind": "bayes", "pooling": "hierarchical", "members": [member], "seed": seed,
                             "fit_options": fit_options})

    settings = {"ks": list(ks), "fractions": list(fractions), "methods": list(methods), "poolings": list(poolings),
                "transfer": transfer, "families": eligible, "min_sizes": min_sizes, "min_tokens": min_tokens,
                "test_from": test_from, "thin": thin, "point_grid": point_grid, "fit_options": fit_options,
                "seed": seed, "batch": batch}
    store = None
    if folder is not None:
        # the recorded configuration does not depend on the order options were given in (a resume with ks
        # 3, 2 is the study of ks 2, 3): the sets are sorted
        recorded = {**settings, "ks": sorted(settings["ks"]), "fractions": sorted(settings["fractions"]),
                    **{name: sorted(settings[name], key=str) for name in ("methods", "poolings", "families")}}
        store = StudyFolder(folder, {**recorded, "study": "backtest", "data": data_hash(df)}, resume=resume,
                            outputs=BACKTEST_REPORT_FILES)
    if compare and len(poolings) > 1:  # the PSIS-LOO comparison's fits are cells of the study too
        all_rows = thinned(cut_early(df[df["family"].isin(eligible)], min_tokens=min_tokens))
        jobs += [{"kind": "fit", **job} for job in _pooling_jobs(all_rows, poolings, seed, fit_options).values()]
    if unseen:
        warnings.warn(f"backtest: the target's first q of its run holds no checkpoint after the early cut "
                      f"(min_tokens={min_tokens!r}) at (family, q) {sorted(unseen)}: those cells train on the rows "
                      f"of q=0", RuntimeWarning, stacklevel=2)
    if uncut:
        where = sorted({(c["family"], c["k"], c["q"]) for c in uncut})
        warnings.warn(f"backtest: {len(where)} cell(s) not scored: the early cut (min_tokens={min_tokens!r}) leaves "
                      f"no training rows (family, k, q: {where})", RuntimeWarning, stacklevel=2)
    if not any(job["kind"] != "fit" for job in jobs) and not unscored:  # refused before the folder is made
        raise ValueError(f"backtest: no cell to score: no family has training rows for any k in {list(ks)} "
                         f"after the early cut (min_tokens={min_tokens})")
    keyed = {_job_key(job): job for job in jobs}
    start = time.perf_counter()
    results = run_cells(_run, keyed, workers=workers, client=client, scheduler=scheduler, folder=store,
                        progress=progress, desc="backtest fits")
    rows, points, loo_fits, loo_failed = [*unscored, *uncut], [], {}, {}
    reused = store.reused if store is not None else set()
    fit_s_sum = 0.0
    for key, result in results.items():
        job = keyed[key]
        if job["kind"] == "fit":
            if isinstance(result, CellError):
                loo_failed[job["pooling"]] = result.error
            else:
                loo_fits[job["pooling"]] = result.idata
            continue
        r, p = _failed(job, result) if isinstance(result, CellError) else result
        if key not in reused:  # a member's families share its wall time (one per q): count it once
            fit_s_sum += sum(wall for _, wall in {(row["q"], row.get("wall_s", 0.0)) for row in r})
        rows += r
        points += p
    wall = time.perf_counter() - start
    order = ["case", "family", "k", "q", "method"]
    cells = pd.DataFrame(rows)
    # every score column, NaN where no cell has one: a study whose every fit failed had none, and its aggregate
    # and report raised KeyError 'crps' where they were to count the failures
    cells = cells.assign(**{c: np.nan for c in SCORE_COLUMNS if c not in cells.columns})
    if "error" not in cells.columns:
        cells["error"] = None
    # failed: the fit raised (a rerun may score it); an error without it: the method cannot predict there
    cells["failed"] = cells["failed"].eq(True) if "failed" in cells.columns else False
    cells = cells.sort_values(order, kind="stable").reset_index(drop=True)
    predictions = (pd.concat(points, ignore_index=True).sort_values(order, kind="stable").reset_index(drop=True)
                   if points else pd.DataFrame(columns=[*order, "model", "run", "params", "tokens", "loss",
                                                        "predicted"]))
    comparison = None
    if len(loo_fits) > 1:
        comparison = _loo_table(loo_fits)
    for pooling, error in loo_failed.items():
        warnings.warn(f"backtest: the {pooling} fit of the LOO comparison failed and is left out ({error})",
                      RuntimeWarning, stacklevel=2)
    settings["workers"] = workers
    settings["loo_failures"] = loo_failed
    settings["left_out"] = left_out  # k -> families not scored there (fewer models below their target)
    # fits run now, and those a resume read back from the folder: a reused cell took no time here
    fits = {key: len(job.get("members", [job])) for key, job in keyed.items()}
    timing = {"fits": sum(n for key, n in fits.items() if key not in reused), "wall_s": wall,
              "reused": sum(n for key, n in fits.items() if key in reused), "fit_s_sum": float(fit_s_sum)}
    return Backtest(cells, predictions, comparison, settings, timing)


def _fit_cell(job: dict) -> Fit:
    """One NUTS fit of a comparison (``job``: rows, form, pooling, seed, fit options)."""
    result = fit(job["rows"], form=job["form"], pooling=job["pooling"], seed=job["seed"], min_tokens=None, thin=None,
                 **job["fit_options"])
    release_compiled(1)
    return result


def _pooling_jobs(rows: pd.DataFrame, poolings, seed: int, fit_options: dict) -> dict[str, dict]:
    """One fit of the default law per pooling variant, on the same rows (cells of a LOO comparison)."""
    return {pooling: {"rows": rows, "form": DEFAULT_FORM, "pooling": pooling, "seed": seed, "fit_options": fit_options}
            for pooling in poolings}


def _loo_table(idatas: dict) -> pd.DataFrame:
    """``arviz.compare`` of the fits, one row per model (named in a ``model`` column), best first."""
    return az.compare(idatas, round_to="none").reset_index().rename(columns={"index": "model"})


def _fit_all(jobs: dict[str, dict], where: str, **executor) -> tuple[dict[str, Fit], dict[str, str]]:
    """The fits of ``jobs`` through run_cells, and the errors of those that raised (at least one must not)."""
    results = run_cells(_fit_cell, jobs, desc=f"{where} fits", **executor)
    fits = {name: r for name, r in results.items() if not isinstance(r, CellError)}
    failed = {name: r.error for name, r in results.items() if isinstance(r, CellError)}
    if not fits:
        raise RuntimeError(f"{where}: every fit failed: " + "; ".join(f"{n}: {e}" for n, e in failed.items()))
    return fits, failed


def _check_same_observations(fits: dict[str, Fit], where: str) -> None:
    """PSIS-LOO compares models on one set of observations, and ``by_family`` pairs their elpds run by run: a
    fit that kept other rows (or runs, or in another order) than the first is refused, naming both."""
    def seen(f: Fit):
        return list(f.idata.log_likelihood["run"].values), np.sort(f.idata.observed_data["obs"].values)

    (first, reference), *others = fits.items()
    runs0, obs0 = seen(reference)
    for name, f in others:
        runs, obs = seen(f)
        if runs != runs0 or obs.shape != obs0.shape or not np.array_equal(obs, obs0):
            raise ValueError(f"{where}: the {name} fit saw other observations than the {first} fit ({len(obs)} rows "
                             f"of {len(runs)} runs against {len(obs0)} of {len(runs0)}): their elpds are not "
                             f"comparable")


def compare_poolings(
    df: pd.DataFrame,
    *,
    poolings: tuple[str, ...] = ("hierarchical", "none", "complete"),
    seed: int = 0,
    fit_options: dict | None = None,
    workers: int = 1,
    client=None,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """PSIS-LOO comparison (``arviz.compare``) of pooling variants fitted to the same rows (no cut, no
    thinning here); a variant whose fit raised is left out with a warning naming its error."""
    poolings = _listed(poolings, "poolings", "compare_poolings")
    fit_options = _study_fit_options(fit_options, "compare_poolings")
    # before any fit: else a misspelt option or pooling failed every fit, and ended in "every fit failed"
    _check_fit_options(poolings, fit_options, seed, where="compare_poolings")
    rows = _study_rows(as_table(df, name="compare_poolings' table", needs=FIT_COLUMNS))
    jobs = _pooling_jobs(rows, poolings, seed, fit_options)
    fits, failed = _fit_all(jobs, "compare_poolings", workers=workers, client=client, scheduler=scheduler)
    for name, error in failed.items():
        warnings.warn(f"compare_poolings: the {name} fit failed and is left out ({error})", RuntimeWarning,
                      stacklevel=2)
    _check_same_observations(fits, "compare_poolings")
    return _loo_table({name: f.idata for name, f in fits.items()})


@dataclass(frozen=True, repr=False)
class FormComparison(Result):
    """PSIS-LOO comparison of laws (and pooling variants) fitted to the same rows.

    ``table``: ArviZ's comparison (rank, elpd, p, elpd_diff, weight, se, dse, warning), one row per
    model, best first; ``by_family``: each model's LOO elpd summed over each family's runs (the likelihood's
    unit: leave one run out; ``runs`` counts them), with the family's ``best`` model and its margin over the
    runner-up (``margin``, ``margin_se``: the se of the paired pointwise differences); ``pareto_k``: each
    model's largest Pareto k per family (above 0.7, PSIS-LOO is unreliable for that family); ``fits``: the
    fits; ``rows``: the rows they were fitted to; ``failures``: model name -> error of each fit that raised
    (left out of the comparison).
    """

    _main = "table"

    table: pd.DataFrame
    by_family: pd.DataFrame
    pareto_k: pd.DataFrame
    fits: dict[str, Fit]
    rows: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)


def compare_forms(
    df: pd.DataFrame,
    forms: tuple[str, ...] = ("chinchilla", "kaplan_e", "compute"),
    *,
    poolings: tuple[str, ...] = ("hierarchical",),
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    thin: int | None = 8,
    seed: int = 0,
    fit_options: dict | None = None,
    workers: int = 1,
    client=None,
    scheduler: str | None = None,
) -> FormComparison:
    """Fit each form (and pooling) by NUTS to the same rows and compare them by PSIS-LOO (``arviz.compare``).

    Every model sees the same rows (the early cut and thinning are applied once, here) and the same
    observations (log loss), so their elpds are comparable. Models are named ``form`` (or
    ``form/pooling`` when several poolings are compared). ``fit_options`` go to :func:`bayeslaw.fit`
    (default :data:`STUDY_FIT`: its own defaults, 4 chains x 1000 draws, 1000 warmup). The fits run
    through :func:`bayeslaw.executor.run_cells`
    (``workers``, ``client``, ``scheduler`` as in :func:`backtest`).
    """
    forms = _listed(forms, "forms", "compare_forms")
    poolings = _listed(poolings, "poolings", "compare_forms")
    fit_options = _study_fit_options(fit_options, "compare_forms")
    for form in forms:  # before any fit: else a misspelt option or pooling failed every fit
        _check_fit_options(poolings, fit_options, seed, where="compare_forms", form=form)
    rows = _study_rows(as_table(df, name="compare_forms' table", needs=(*FIT_COLUMNS, "tokens")))
    rows = cut_early(rows, min_tokens=min_tokens)
    for form in forms:  # every law can read the rows, before any fit starts
        get_law(form).columns(rows, where="compare_forms")
    if any(get_law(form).progress == "step" for form in forms):
        # a schedule law's fit leaves out its runs' warmup, which the other laws' fits kept: their elpds summed
        # other observations. Left out here, for every form
        kept = after_warmup(rows, where="compare_forms")
        if len(kept) < len(rows):
            warnings.warn(f"compare_forms: {len(rows) - len(kept)} row(s) inside their runs' warmup left out for every "
                          f"form (a schedule law describes a run after its warmup)", UserWarning, stacklevel=2)
        rows = kept
    if thin is not None:
        rows = thin_checkpoints(rows, per_run=thin)
    rows = rows.reset_index(drop=True)
    jobs = {form if len(poolings) == 1 else f"{form}/{pooling}":
            {"rows": rows, "form": form, "pooling": pooling, "seed": seed, "fit_options": fit_options}
            for form in forms for pooling in poolings}
    fits, failed = _fit_all(jobs, "compare_forms", workers=workers, client=client, scheduler=scheduler)
    for name, error in failed.items():  # as compare_poolings says it: was left out of the table unannounced
        warnings.warn(f"compare_forms: the {name} fit failed and is left out ({error})", RuntimeWarning, stacklevel=2)
    _check_same_observations(fits, "compare_forms")
    # LOO once per model, and the comparison of those (arviz.compare of the fits would run it again, and
    # warn of each Pareto k twice)
    loos = {name: az.loo(f.idata, pointwise=True) for name, f in fits.items()}
    table = _loo_table(loos)
    # the likelihood factorises over runs: one pointwise elpd per run (leave one run out)
    first = next(iter(fits.values()))
    family = np.asarray(first.families)[first.idata.constant_data["run_family"].values]
    pointwise = pd.DataFrame({name: np.asarray(loo.elpd_i).ravel() for name, loo in loos.items()})
    pointwise["family"] = family
    by_family = pointwise.groupby("family").sum()
    pareto_k = pd.DataFrame({name: np.asarray(loo.pareto_k).ravel() for name, loo in loos.items()})
    pareto_k = pareto_k.groupby(family).max()
    names = list(fits)
    best, margin, margin_se = [], [], []
    for fam, elpd in by_family.iterrows():
        order = elpd.sort_values(ascending=False).index.tolist()
        best.append(order[0])
        if len(order) < 2:
            margin.append(np.nan)
            margin_se.append(np.nan)
            continue
        diff = pointwise.loc[pointwise["family"] == fam, order[0]] - pointwise.loc[pointwise["family"] == fam, order[1]]
        margin.append(float(diff.sum()))
        margin_se.append(float(np.sqrt(len(diff)) * diff.std(ddof=1)) if len(diff) > 1 else np.nan)
    by_family = by_family[names].assign(best=best, margin=margin, margin_se=margin_se,
                                        runs=pointwise.groupby("family").size()).reset_index()
    return FormComparison(table, by_family, pareto_k.rename_axis("family").reset_index(), fits, rows, failed)


# --- what the plots draw but must not compute: point fits, prior draws, checked rows ------------------


def fit_rows(fit: Fit, data: pd.DataFrame | None = None, *, where: str) -> pd.DataFrame:
    """``data`` checked for the columns a picture of ``fit`` reads (``FIT_COLUMNS`` of
    :mod:`bayeslaw.data.importers` and the law's inputs, e.g. ``tokens``, su2024's ``batch_size``), index
    reset; None: the fit's own rows (after its early cut and thinning). Raises a ValueError that names
    ``where`` and the missing column(s). A schedule law's rows inside their runs' warmup are left out, with a
    warning."""
    if data is None:
        return fit.training_rows()
    missing = [c for c in FIT_COLUMNS if c not in data.columns]
    if missing:
        raise ValueError(f"{where}: the table lacks column(s) {missing}; it needs {list(FIT_COLUMNS)} "
                         f"(the bayeslaw schema), or pass data=None to use the fit's own rows")
    fit.spec.law.columns(data, where=where)  # raises naming the column and rows the law cannot read
    if fit.spec.law.progress == "step":  # a schedule law's picture is of its runs after their warmup, as fitted
        kept = after_warmup(data, where=where)
        if len(kept) < len(data):
            warnings.warn(f"{where}: {len(data) - len(kept)} row(s) inside their runs' warmup not shown (a schedule "
                          f"law describes a run after its warmup, as its fit did)", UserWarning, stacklevel=3)
        data = kept
    return data.reset_index(drop=True)


def point_fits_by_family(fit: Fit, data: pd.DataFrame | None = None, *,
                         method: str = "epoch") -> tuple[dict[str, PointFit], dict[str, str]]:
    """Point fits beside a Bayesian fit: ``fit_point(rows, form=fit.form, method=method)`` on each of the
    fit's families' rows of ``data`` (default: the fit's own rows), cut early as the fit's own rows were
    (its ``min_tokens`` / ``min_fraction``; a schedule law's, its runs' warmup): the two estimates then
    read the same checkpoints.

    Returns ``(point_fits, failures)``: family -> :class:`~bayeslaw.inference.point.PointFit`, and
    family -> the reason its point fit failed (e.g. fewer rows than the law's parameters), so that a
    picture can say which family has none rather than drop it silently.
    """
    if method not in POINT_METHODS:  # was caught per family: every family "failed" with the unknown method
        raise ValueError(f"point_fits_by_family: unknown point method {method!r}; known: {list(POINT_METHODS)}")
    rows = fit_rows(fit, data, where="point_fits_by_family: data")
    if data is not None and fit.spec.law.progress == "tokens":
        rows = cut_early(rows, min_tokens=fit.config["min_tokens"], min_fraction=fit.config["min_fraction"])
    rows = _study_rows(rows)  # a point fit's optimum moves with its rows' order: the same fits for a shuffled table
    point_fits, failures = {}, {}
    for family in fit.families:
        try:
            point_fits[family] = fit_point(rows[rows["family"] == family], form=fit.form, method=method,
                                           warn_early=False)  # cut as the fit's rows were
        except ValueError as err:  # TooFewPoints among them
            failures[family] = str(err)
    return point_fits, failures


def prior_predictive_quantiles(
    *,
    pooling: str = "hierarchical",
    sizes=(1e8, 1e9, 1e10, 1e11),
    tokens=np.geomspace(1e9, 1e13, 30),
    num_samples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Prior predictive final loss L(N, D) (nats per token) of a new run at each size N and token count D.

    Each (N, D) is its own run's final loss, drawn from the ``pooling`` model's priors with no data
    (``numpyro.infer.Predictive``, PRNG key ``seed``). Returns one row per (N, D), N-major: ``params``,
    ``tokens`` and the quantiles ``q05, q25, q50, q75, q95`` over ``num_samples`` draws.
    """
    where = "prior_predictive_quantiles"
    if not is_whole(num_samples) or num_samples < 1:
        raise ValueError(f"{where}: num_samples={num_samples!r} must be a whole number >= 1")
    axes = {}
    for name, value in (("sizes", sizes), ("tokens", tokens)):
        try:
            values = np.atleast_1d(np.asarray(value, dtype=float))
        except (TypeError, ValueError):
            values = np.array([np.nan])
        if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"{where}: {name} must be a non-empty list of positive, finite numbers; got {value!r}")
        axes[name] = values
    grid = pd.DataFrame([(n, d) for n in axes["sizes"] for d in axes["tokens"]], columns=["params", "tokens"])
    grid["family"] = "prior"
    # each (N, D) a run's final loss: one run per grid row (named by N and D to one digit, two D of a decade
    # were one run, the smaller its early checkpoint rather than a final loss)
    grid["run"] = [f"{i}:N{n:.6g}-D{d:.6g}" for i, (n, d) in enumerate(zip(grid["params"], grid["tokens"]))]
    data = prepare(grid)
    draws = Predictive(get_model(pooling), num_samples=num_samples)(jax.random.PRNGKey(seed), data)["obs"]
    loss = np.exp(data.per_row(draws))  # (sample, N-major grid row)
    quantiles = np.quantile(loss, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    return grid[["params", "tokens"]].assign(**dict(zip(("q05", "q25", "q50", "q75", "q95"), quantiles, strict=True)))
