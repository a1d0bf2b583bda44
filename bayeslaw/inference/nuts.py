"""NUTS driver: fit a NumPyro scaling-law model to a table, predict, diagnose, save.

``fit(df)`` returns a :class:`Fit` whose ``idata`` is an ArviZ 1.x ``xarray.DataTree`` with the
groups posterior, sample_stats, observed_data, log_likelihood, posterior_predictive and
constant_data (the two replicates left out with ``posterior_predictive=False``); coordinates are named
after the table's families and runs.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize
import xarray as xr
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import biject_to
from numpyro.infer import MCMC, NUTS, Predictive, init_to_value, log_likelihood
from numpyro.infer.util import initialize_model

from bayeslaw.data.files import is_whole, write_atomic
from bayeslaw.data.importers import FIT_COLUMNS, as_table
from bayeslaw.data.runs import (RISE_LIMIT, branch_roots, drop_copies, one_metric_per_run, rising_runs,
                                single_size_families)
from bayeslaw.data.schedules import Schedule, after_warmup, check_logged_lr
from bayeslaw.data.split import DEFAULT_MIN_TOKENS, cut_early, thin_checkpoints
from bayeslaw.inference.config import ATTR as CONFIG_ATTR
from bayeslaw.inference.config import (DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT, ChainMethod, Duplicates, FitConfig,
                                       Pooling, PredictionKind, Rising, SeedScaling, check_choice)
from bayeslaw.inference.point import UNITS, check_columns, fit_point
from bayeslaw.laws import ExtrapolationWarning
from bayeslaw.laws.schedule_terms import check_forecast_steps, warn_outside_fitted
from bayeslaw.models import (PRIORS, SHAPE_DEGREE, ModelData, Parameterization, get_model,
                             get_parameterization, new_family, new_family_sites, offset_shape, prepare,
                             run_fractions, seed_sd, site_dims, start_values)
from bayeslaw.models.runs import ELL, JITTER, bridge_kernel, run_basis, shape_basis
from bayeslaw.results import Result

__all__ = ["ConvergenceWarning", "Diagnostics", "Fit", "NewFamilyWarning", "PreparedFit", "Prediction",
           "check_checkpoints", "finish_fit", "fit", "load_fit", "parameter_notes", "prepare_fit", "sample_fit",
           "shape_weights", "summarize"]

EXTRA_FIELDS = ("potential_energy", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "diverging")
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
RHAT_MAX = 1.01
ESS_MIN = 400  # bulk and tail ESS a fit's every sampled quantity should reach (Vehtari et al. 2021)
#: blocks of ``draws`` more draws per chain that a fit draws, each chain going on from where it stopped
#: (the same step size and mass matrix), while its draws so far miss r-hat <= RHAT_MAX or ESS >= ESS_MIN
#: (``FitConfig.extend``; None there means this). The diagnostics' remedy, "run longer", done for the user:
#: r-hat is itself noisy (converged chains of 4 x 1000 correlated draws exceed 1.01 in a few fits in a
#: hundred, benchmarks/rhat_noise.py) and a family seen at two sizes mixes slowly along its token term
EXTEND_BLOCKS = 2
MAX_TREE_DEPTH = 10  # NUTS' default: at most 1023 leapfrog steps per draw
#: A schedule law's per-row design (the multi-power law's loss-drop sum: rows x quadrature bins) past which
#: a fit is warned of its cost. The cost of a gradient grows with the design's terms: the multipower test
#: split of benchmarks/schedule_laws.py (120 rows x 362 bins) takes about 344 s on 2 CPU cores at 4 x 1000.
DESIGN_TERMS_WARN = 1_000_000
DESIGN_REFERENCE = (120, 362, 344.0, 4 * 2000)  # (rows, bins, seconds, chains x iterations) of that fit


def _point_init(df: pd.DataFrame, data: ModelData, pooling: str, spec: Parameterization) -> dict:
    """Initial values from a point fit of all rows: least squares from the law's one start where it has
    one (fast); otherwise the Huber fit from its grid (single-start least squares stops in local minima)."""
    try:
        method = "hitchhiker" if spec.law.point_start is not None else "epoch"
        # the fit's rows, as its cut chose; one law through every family: a start, not an estimate
        point = fit_point(df, form=spec.law, method=method, warn_early=False, across_families=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            vector = spec.from_law(point.theta) if point.converged else None
    except ValueError:  # e.g. fewer rows than the law has parameters: start at the prior centre
        vector = None
    center, scale = spec.vector("center"), spec.vector("scale")
    vector = center if vector is None else np.where(np.isfinite(vector), vector, center)
    # A least-squares fit across many families can land in the law's degenerate corner (E -> 0 with
    # beta -> 0, B/D^beta standing in for E), far out in the prior's tail, where NUTS starts stuck:
    # keep the start inside the prior's bulk.
    vector = np.clip(vector, center - 2 * scale, center + 2 * scale)
    return start_values(pooling, data, spec, vector)


def _constant_data(data: ModelData, rows: pd.DataFrame) -> xr.Dataset:
    per_row = {
        "log_params": data.log_params,
        "log_tokens": data.log_tokens,
        "fraction": data.fraction,
        "loading": data.loading,
        "obs_family": data.family,
        "obs_run": data.run,
        "step": rows["step"].to_numpy(),
        **{f"input_{name}": np.asarray(values) for name, values in data.inputs.items() if np.ndim(values) == 1},
        # a schedule law's per-row design is rebuilt from each run's schedule (not stored: (row, bin) each)
        **({"schedule": rows["schedule"].to_numpy(dtype=str)} if "schedule" in rows.columns else {}),
    }
    per_run = {"run_family": data.run_family, "run_log_params": data.run_log_params, "run_points": data.run_points,
               "run_replicated": data.run_replicated, "run_tree_end": data.run_tree_end,
               "run_root": np.asarray(data.run_root, dtype=str)}
    return xr.Dataset(
        {**{k: ("obs_id", v) for k, v in per_row.items()}, **{k: ("run", v) for k, v in per_run.items()},
         "family_sizes": ("family", data.family_sizes)},
        coords={"obs_id": np.arange(len(rows)), "run": list(data.runs), "family": list(data.families)})


def check_checkpoints(df: pd.DataFrame, duplicates: str = "error", *, by: str = "tokens", law=None) -> pd.DataFrame:
    """Rows sorted by ``by`` (tokens, or step) within each run; two rows of one run at the same ``by`` are
    refused, naming the run and rows (``duplicates="last"`` keeps the last logged one, a restart's, and
    warns with the count). Rows without ``by`` are refused first (``law``: the law that reads it, named)."""
    if duplicates not in ("error", "last"):
        raise ValueError(f"duplicates={duplicates!r}; use 'error' or 'last'")
    # rows without ``by`` cannot be ordered, and pandas counts NaN equal to NaN: a table without tokens (held as
    # NaN, complete_minimal's fill) would read as every run logged twice at one checkpoint
    unknown = df.index[df[by].isna()] if by in df.columns else df.index
    if len(unknown):
        where = "" if len(unknown) == len(df) else f" at rows {unknown[:5].tolist()} ({len(unknown)} of {len(df)})"
        needs = (f"the {law.name} law needs it (it reads {list(law.columns_needed)})" if law is not None
                 else "a run's checkpoints are ordered by it")
        raise ValueError(f"fit: column {by!r} is missing{where}; {needs}")
    one_metric_per_run(df, where="fit")  # two metrics of a run are not a restart: "last" would mix them
    repeated = df.duplicated(["run", by], keep="last")
    if repeated.any():
        first = df.loc[df.duplicated(["run", by], keep=False)]
        run = first["run"].iloc[0]
        rows = first.index[first["run"] == run].tolist()[:5]
        if duplicates == "error":
            same = first.groupby(["run", by])["loss"].nunique().max() == 1
            raise ValueError(
                f"run {run!r} has two or more rows at the same {by} (rows {rows}; {int(repeated.sum())} repeated "
                f"row(s) in {first['run'].nunique()} run(s){', equal losses' if same else ', different losses'}): "
                f"a restart logged twice? pass duplicates='last' (CLI: --duplicates last) to keep the last logged row of each")
        warnings.warn(f"fit: {int(repeated.sum())} repeated checkpoint row(s) in {first['run'].nunique()} run(s) "
                      f"(first: run {run!r}, rows {rows}): kept the last of each (duplicates='last')", stacklevel=3)
        df = df.loc[~repeated]
    return df.sort_values(["run", by], kind="stable")


def _check_sizes(rows: pd.DataFrame, pooling: str, law) -> None:
    """A family seen at one model size has no size exponent of its own (in a law that reads N): say where it
    comes from. A schedule law forecasts along runs of the sizes it saw; its size slopes are then the
    prior's, which widen a forecast at another size, as they should."""
    if "params" not in law.columns_needed or law.progress == "step":
        return
    single = single_size_families(rows)
    if not single:
        return
    alone = rows["family"].nunique() == 1
    if alone or pooling == "none":
        raise ValueError(f"fit: family(ies) {single} seen at a single model size cannot be extrapolated in N "
                         f"{'and no other family lends a size exponent' if alone else 'on their own'}; "
                         f"add model sizes{'' if alone else ' or use pooling=\'hierarchical\''}")
    source = "the population's" if pooling == "hierarchical" else "the one shared law's"
    warnings.warn(f"fit: family(ies) {single} seen at a single model size: their size exponent is {source}",
                  UserWarning, stacklevel=3)


# numpyro's extra fields under ArviZ's sample_stats names (as arviz.from_numpyro names them)
STAT_NAMES = {"potential_energy": "lp", "adapt_state.step_size": "step_size", "num_steps": "n_steps",
              "accept_prob": "acceptance_rate", "energy": "energy", "diverging": "diverging"}


def _posterior_tree(samples: dict, extra: dict, max_tree_depth: int, coords: dict, dims: dict) -> xr.DataTree:
    """posterior and sample_stats (draws grouped by chain: (chain, draw, ...)) as a DataTree (arviz.from_dict).

    Not ``arviz.from_numpyro``: it runs the model once more, op by op, to read its sites, and eager
    JAX compiles every operation on its own: about 16 s of a one-family fit. Every site's dims are
    known here (``_dims``), so nothing needs reading off the model.
    """
    samples = {k: np.asarray(v) for k, v in samples.items()}
    stats = {STAT_NAMES[k]: np.asarray(v) for k, v in extra.items() if k in STAT_NAMES}
    stats["lp"] = -stats["lp"]
    stats["tree_depth"] = np.log2(stats["n_steps"]).astype(int) + 1
    stats["reached_max_tree_depth"] = stats["tree_depth"] >= max_tree_depth
    return az.from_dict({"posterior": samples, "sample_stats": stats}, coords=coords,
                        dims={k: v for k, v in dims.items() if k in samples})


@functools.lru_cache(maxsize=None)
def _new_family_sampler(spec: Parameterization, pooling: str, n_families: int, n_draws: int):
    """(fitted sites, key) -> the model's draws of a new family, one per posterior draw; compiled once per
    (law, pooling, families, draws)."""
    sites = ["theta_new", "shape_new", "sigma_seed_new"]

    def sample(fitted, key):
        if fitted:
            predictive = Predictive(new_family, posterior_samples=fitted, return_sites=sites)
        else:  # no pooling: nothing fitted describes a new family, the prior does
            predictive = Predictive(new_family, num_samples=n_draws, return_sites=sites)
        return predictive(key, spec, pooling, n_families)

    return jax.jit(sample)


#: how far (a factor) a target's tokens may lie outside its family's fitted tokens before predict warns: the
#: form error (kappa per e-fold) is measured and carried in N only
TOKENS_REACH = 10.0
#: with the law's columns, what a target asks (a run's name is not: a planned run named otherwise is the same run)
TARGET_KEYS = ("family", "params", "run_tokens")
TEXT_KEYS = ("family",)  # read as names whatever they hold (a family 0 is the fit's "0")


def _key_values(values: pd.Series, text: bool = False) -> pd.Series:
    """A key column's values as the question they ask: numbers as float64 (1e9 written as an int is 1e9), text as
    str, a missing value as NaN, whatever the dtype pandas gave them (the hash reads the dtype too). A ``text``
    column (a family's name) is read as str whatever it holds, a missing value as "": family 0 is family "0",
    as the fit reads it, and a row without a family keys alike beside named families and alone."""
    numbers = pd.to_numeric(values, errors="coerce")
    if not text and numbers.notna().sum() == values.notna().sum():
        return numbers.astype(float)
    return values.astype(object).where(values.notna(), "").astype(str)


def _family_range(values: pd.Series, families) -> tuple[np.ndarray, np.ndarray]:
    """Per target row (``families``: its family's name, or None), the (lo, hi) of ``values`` (the fit's, indexed
    by family) over its family, or over all of them for a family the fit has not seen: where the fit measured."""
    ranges = values.groupby(level=0).agg(["min", "max"])
    rows = pd.Series(list(families), dtype=object)
    return (rows.map(ranges["min"]).fillna(values.min()).to_numpy(dtype=float),
            rows.map(ranges["max"]).fillna(values.max()).to_numpy(dtype=float))


def _row_keys(targets: pd.DataFrame, columns) -> np.ndarray:
    """Per row, a hash of its values in ``columns`` (those the prediction reads, in a fixed order; a column the
    table lacks counts as missing values), read whatever dtypes the table holds them in: the key of the row's
    stream of draws (:func:`_row_normals`). Read from the whole table at once (a column's kind is read over
    its rows), so that a call's chunks of rows draw what the whole call would."""
    missing = pd.Series(np.nan, index=targets.index)
    key = pd.DataFrame({c: _key_values(targets[c] if c in targets.columns else missing, text=c in TEXT_KEYS)
                        for c in dict.fromkeys(columns)})
    return pd.util.hash_pandas_object(key, index=False).to_numpy()


def _row_normals(keys: np.ndarray, seed, n: int) -> np.ndarray:
    """(n, row) standard normals, each row's from a generator keyed by the seed and its key (:func:`_row_keys`): a
    target's draws are the same whatever other targets share the call, in whatever order, whatever other
    columns the table carries, and whatever dtypes it holds its values in."""
    return np.stack([np.random.default_rng([abs(int(seed)), int(key)]).standard_normal(n) for key in keys], axis=1)


PREDICT_ELEMENTS = 2**24  # per chunk of target rows: draws x rows x (bins of a schedule law's design)
# per chunk of target rows: draws x rows, in the law (its programs hold several such arrays at once) and in the
# run-level noise's terms, so that a forecast's memory beyond its draws stays near 300 MB whatever its rows
PREDICT_ROW_ELEMENTS = 2**21


MIN_CHUNK_ROWS = 64  # the smallest chunk of rows the law is compiled for (the rest padded)


def _log_mean_draws(spec: Parameterization, table: np.ndarray, index: np.ndarray, inputs: dict) -> np.ndarray:
    """log L (sample, row) at each row's inputs, row i at theta ``table[:, index[i]]`` (``table``: (sample, F, K),
    a family's draws once; gathered inside the law's program), in chunks of rows of equal size (one
    compilation) so that memory stays bounded: a schedule law's design is (row, bin) per draw."""
    n_rows = len(index)
    width = max((int(np.prod(np.shape(v)[1:])) for v in inputs.values()), default=1)
    cap = max(1, min(PREDICT_ELEMENTS // (table.shape[0] * width), PREDICT_ROW_ELEMENTS // table.shape[0]))
    # rows padded to a power of two from 64 (with the last row): a fit's predictions of other row counts, and
    # its trained runs' curves, reuse a few programs
    cap = 2 ** int(np.log2(cap))
    chunk = min(cap, 2 ** int(np.ceil(np.log2(max(n_rows, MIN_CHUNK_ROWS)))))
    inputs, on_device = {k: np.asarray(v) for k, v in inputs.items()}, jnp.asarray(table)
    out = np.empty((table.shape[0], n_rows))
    for start in range(0, n_rows, chunk):
        rows = np.minimum(np.arange(start, start + chunk), n_rows - 1)  # the last chunk padded with its last row
        part = np.asarray(spec.jitted_log_mean_at(on_device, jnp.asarray(index[rows]),
                                                  {k: jnp.asarray(v[rows]) for k, v in inputs.items()}))
        keep = min(chunk, n_rows - start)
        out[:, start:start + keep] = part[:, :keep]
    return out


def _run_basis(fraction: np.ndarray, dev_var: np.ndarray, obs_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U (n, n), 1 / d (sample, n)): D = s_dev^2 K + s_obs^2 I of one run's checkpoints at ``fraction`` (n,) per
    draw (``dev_var``, ``obs_var`` (sample,)) is U diag(d) U^T, K = U diag(lambda) U^T decomposed once and
    d = s_dev^2 lambda + s_obs^2 (the fit's own eigenbasis, :func:`~bayeslaw.models.runs.run_basis`)."""
    fraction = np.asarray(fraction, dtype=float)[None, :]
    values, vectors = run_basis(fraction, np.ones(fraction.shape, dtype=bool))
    return vectors[0], 1.0 / (dev_var[:, None] * values[0] + obs_var[:, None])


def _run_solve(basis: tuple[np.ndarray, np.ndarray], b: np.ndarray) -> np.ndarray:
    """D^-1 b for each draw's D (:func:`_run_basis`), b (sample, n, m): U diag(1 / d) U^T b, matrix products
    over all draws at once (no factorisation per draw)."""
    vectors, inverse = basis
    return np.stack([((b[..., i] @ vectors) * inverse) @ vectors.T for i in range(b.shape[-1])], axis=-1)


def _chain_method(chains: int, chain_method: str | None) -> str:
    if chain_method is not None:
        return chain_method
    if chains > 1 and jax.local_device_count() < chains:
        warnings.warn(f"fit: {chains} chains run one after another: JAX has {jax.local_device_count()} device(s). "
                      f"JAX started before bayeslaw could set the host device count; import bayeslaw first, or "
                      f"call numpyro.set_host_device_count({chains}) before JAX runs anything", UserWarning, stacklevel=3)
        return "sequential"
    return "parallel"


def fit(
    df: pd.DataFrame,
    form: str = "chinchilla",
    pooling: Pooling = "hierarchical",
    *,
    seed: int = 0,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    min_fraction: float | None = None,
    thin: int | None = 20,
    seed_scaling: SeedScaling = "constant",
    target_accept: float = DEFAULT_TARGET_ACCEPT,
    chain_method: ChainMethod | None = None,
    dense_mass: bool = True,
    duplicates: Duplicates = "error",
    extend: int | None = None,
    retry_target_accept: float | None = RETRY_TARGET_ACCEPT,
    rising: Rising = "error",
    progress: bool | None = None,
    posterior_predictive: bool = True,
) -> Fit:
    """Fit a scaling law by NUTS, initialised from the point fit.

    Parameters
    ----------
    df : pandas.DataFrame
        A table in the bayeslaw schema (``family, run, params, tokens, loss`` are read; ``run_tokens``, a
        run's final tokens, where the table holds only part of a run).
    form : str, default "chinchilla"
        The law: ``chinchilla``, ``kaplan``, ``kaplan_e``, ``compute`` or ``su2024`` (which reads
        ``batch_size``, tokens per step). Each is sampled with the same family hierarchy and run-level
        likelihood (see :mod:`bayeslaw.models`).
    pooling : {"hierarchical", "none", "complete"}
        Partial pooling across families, none, or one law for all (see :mod:`bayeslaw.models`). A
        hierarchical fit of a single family is its unpooled fit (``Fit.pooling`` says "none"): one
        family tells nothing about a population.
    seed : int
        PRNG seed: equal seeds give identical draws.
    chains, draws, warmup : int
        NUTS chains, kept draws per chain, and warmup iterations per chain.
    min_tokens, min_fraction : float or None
        Early-checkpoint cut (default: drop tokens <= 10B, as the Hitchhiker's Guide).
    thin : int or None, default 20
        Keep about this many log-spaced checkpoints per run (None keeps all): the run-level likelihood
        costs two (checkpoints x checkpoints) matrix-vector products per run and gradient.
    seed_scaling : {"constant", "size"}
        Run-to-run sd constant, or sigma_seed (N / 1e8)^-gamma_seed.
    target_accept : float
        NUTS target acceptance probability.
    chain_method : {"parallel", "sequential", "vectorized"}, optional
        Default: "parallel" when JAX has at least ``chains`` devices (importing bayeslaw first sets the
        CPU's host device count), else "sequential" with a warning.
    dense_mass : bool, default True
        Adapt a dense mass matrix.
    duplicates : {"error", "last"}
        Two rows of one run at the same tokens: refused, or the last logged kept.
    extend : int, optional
        While the draws so far miss r-hat <= 1.01 or bulk and tail ESS >= 400, draw up to this many more
        blocks of ``draws`` per chain, each chain going on where it stopped (default :data:`EXTEND_BLOCKS`,
        2; 0 never). ``fit.idata.attrs["bayeslaw_extensions"]`` says how many were drawn.
    retry_target_accept : float or None, default 0.99
        A fit whose draws hold divergent transitions is sampled again from its start, warmup included,
        at this target acceptance probability (:data:`~bayeslaw.inference.config.RETRY_TARGET_ACCEPT`;
        None, or a value not above ``target_accept``: never). ``fit.idata.attrs["bayeslaw_target_accept"]``
        is the one its draws were taken at.
    rising : {"error", "keep", "drop"}
        A run whose loss ends more than :data:`~bayeslaw.data.runs.RISE_LIMIT` above its first checkpoint
        after the cut (a diverged run): refused, naming it; kept (curves simulated from the model's own
        prior, which can rise: the calibration study); or left out, with a warning that names it.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).
    posterior_predictive : bool, default True
        Also replicate the fitted rows: the DataTree's ``posterior_predictive`` (each row's log loss per
        draw) and ``log_likelihood`` (per run, for PSIS-LOO) groups. False leaves both out, for a fit that
        only forecasts (a backtest cell): they cost a compiled program and a pass over every draw.
    """
    config = FitConfig(form=form, pooling=pooling, seed=seed, chains=chains, draws=draws, warmup=warmup,
                       min_tokens=min_tokens, min_fraction=min_fraction, thin=thin, seed_scaling=seed_scaling,
                       target_accept=target_accept, chain_method=chain_method, dense_mass=dense_mass,
                       duplicates=duplicates, extend=extend,
                       retry_target_accept=retry_target_accept, rising=rising)  # every option checked first
    return sample_fit(prepare_fit(df, config), progress=sys.stderr.isatty() if progress is None else progress,
                      posterior_predictive=posterior_predictive)


def compiled_initialize(model, init: dict, args: tuple, kwargs: dict):
    """NumPyro's ``initialize_model`` at the start values ``init``: potential, constraining map, trace and
    the unconstrained start ``param_info.z``, the model traced abstractly (not run eagerly, not compiled).

    Run eagerly, ``initialize_model`` reads the model's sites by running it operation by operation, each
    operation compiled on its own (about 4 s of a small hierarchical model), and checks the start in a
    program of its own (about 4 s; ``benchmarks/fit_init.py``). Here it is only traced (``jax.eval_shape``:
    nothing compiles), and z is the start values mapped to the unconstrained space by their sites'
    bijections (:func:`latent_inverses`), one small program: the caller compiles the potential
    and its gradient once for its sampler and checks the start with them (:func:`check_start`), so
    ``param_info``'s potential and gradient are None here. The sites' supports are constants of the
    model, so the returned potential and maps hold no tracer; the returned trace's values are the
    abstract ones (read its sites' distributions, not its values)."""
    traced = {}

    def initialize(init):
        traced["info"] = initialize_model(jax.random.PRNGKey(0), model, init_strategy=init_to_value(values=init),
                                          dynamic_args=True, model_args=args, model_kwargs=kwargs)
        return traced["info"].param_info.z

    jax.eval_shape(initialize, init)
    info = traced["info"]
    inverses = latent_inverses(info.model_trace)
    if set(inverses) == set(info.param_info.z) <= set(init):
        z = jax.jit(lambda init: {name: inv(init[name]) for name, inv in inverses.items()})(
            {name: init[name] for name in inverses})
    else:  # a site without a start value (NumPyro draws one) or not one of z's: NumPyro's own start, compiled
        z = jax.jit(initialize)(init)
    return info._replace(param_info=info.param_info._replace(z=z, potential_energy=None, z_grad=None))


def latent_inverses(model_trace) -> dict:
    """Per latent (sampled, unobserved) site of a model trace, the map from its constrained values to the
    unconstrained space NUTS moves in (the inverse of NumPyro's ``biject_to`` of its support)."""
    return {name: biject_to(site["fn"].support).inv for name, site in model_trace.items()
            if site["type"] == "sample" and not site["is_observed"]}


def check_start(value, grad, z: dict) -> None:
    """Refuse a start whose potential ``value`` or gradient ``grad`` is not finite, in one line naming
    the sites of the unconstrained start ``z`` that are not finite (the check NumPyro makes on concrete
    values, which a traced start skips)."""
    if not (np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))):
        bad = sorted(k for k, v in z.items() if not np.all(np.isfinite(np.asarray(v))))
        raise RuntimeError(f"fit: the start has a non-finite potential or gradient (potential "
                           f"{float(value)}{f'; non-finite sites {bad}' if bad else ''})")


# NumPyro's mass-matrix adaptation (Stan's rule) shrinks each window's covariance estimate S from n draws to
# (n S + 5e-3 I) / (n + 5): a target of 1e-3 I, absolute, whatever the coordinates' own scale.
SHRINKAGE_VARIANCE = 1e-3
LAPLACE_ITERATIONS = 500  # trust-region Newton steps toward the mode, at most
LAPLACE_GRADIENT_TOL = 1e-3  # the gradient's norm at the mode


def paired(value_and_grad):
    """(one, pair): ``value_and_grad`` ((z, *args) -> (U(z), dU/dz)) compiled once as ``pair`` (two points
    (2, d) and the args -> ((2,), (2, d)), the two evaluated in turn in one call) and ``one`` (a point through
    the same program); ``args`` are arrays the program reads (``fit_many``'s fit of a shared structure).

    Newton's Hessians are central differences, two gradients per coordinate, and most of
    :func:`laplace_coordinates`' calls; on a CPU a compiled call costs several gradients beyond its own
    arithmetic (a backtest cell's potential: about 280 us a call against 80 us a gradient in a loop), so
    each difference is one call, not two. ``one`` pays for a second gradient; it is called a few dozen
    times against thousands of differences."""
    pair = jax.jit(lambda points, *args: jax.lax.map(lambda z: value_and_grad(z, *args), points))

    def one(z, *args):
        # on the host: an eager jnp.stack, or an index of a device array, is a call (and a compilation) of its own
        values, grads = (np.asarray(v) for v in pair(np.stack([z, z]), *args))
        return values[0], grads[0]

    return one, pair


def laplace_coordinates(value_and_grad, z0, *, pair=None) -> tuple[np.ndarray, np.ndarray]:
    """(m, A): NUTS samples u with z = m + A u, m the mode of the potential U near ``z0`` and
    A = H^(-1/2) / sqrt(1e-3), H = d^2U/dz^2 at m with each eigenvalue raised to at least 1.

    ``value_and_grad`` maps z to (U(z), dU/dz), compiled once (``jax.jit``); ``pair``, optional, two points
    (2, d) to both at once (:func:`paired`), for the differences. SciPy's trust-region Newton with exact
    subproblem solves (``trust-exact``) drives it to the mode (at most 500 steps, until the gradient's norm
    is under 1e-3), each step's Hessian central differences of the gradient (:func:`difference_hessian`: d
    calls), as is H at the mode. Newton, not L-BFGS: the potential's curvatures span many orders of magnitude
    (a family's pinned schedule level beside its loose exponents), and L-BFGS from the point fit's start
    stopped 550 nats above the all-families fit's mode after 500 steps (37 above it after 10,000), where
    Newton reaches it. Whole Hessians, not Newton-CG's Hessian-vector products: a backtest cell's map took
    31-39 steps of d calls each against trust-ncg's 99 steps and 5,000-6,600 calls, to the same mode
    (docs/run_likelihood.md, "Newton with whole Hessians"). On the host, not optax in one XLA
    program: compiling an optimiser and ``jax.hessian`` took 6-8 s a fit, more than a small fit's
    sampling, where this costs calls to a gradient that is compiled anyway. The differences' error in H
    changes the sampler's coordinates, never its target.

    In u the Laplace approximation is N(0, 1e-3 I), the covariance NumPyro's adaptation shrinks toward:
    - before a window's estimate is of full rank (25 or 50 draws in 50-100 dimensions), the directions it
      has not seen keep a variance near the posterior's own instead of 1e-3 of it, and trajectories
      stay short;
    - after the last window, directions the data pin far tighter than the sampled sites' own scale (a
      family's schedule-shape level along its many checkpoints, sd ~3e-4) are not under the floor.
    A direction whose curvature is under 1 (or negative: the potential is not convex there) is scaled as
    one of curvature 1, the prior's unit scale. An affine map with a constant Jacobian changes no
    density; where the optimiser fails (a non-finite or higher potential) the map is centred at the
    start (docs/run_likelihood.md, "The mass matrix's floor")."""
    z0 = np.asarray(z0, dtype=float)

    def objective(z):
        value, grad = value_and_grad(z)
        value, grad = float(value), np.asarray(grad, dtype=float)
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            return np.inf, np.zeros_like(z)  # outside the density's support: the step is refused, the region shrinks
        return value, grad

    if pair is None:
        def gradients(a, b):  # dU/dz at a and at b
            return tuple(np.asarray(value_and_grad(z)[1], dtype=float) for z in (a, b))
    else:
        def gradients(a, b):
            both = np.asarray(pair(np.stack([a, b]))[1], dtype=float)
            return both[0], both[1]

    solution = scipy.optimize.minimize(objective, z0, jac=True, hess=lambda z: difference_hessian(gradients, z),
                                       method="trust-exact",
                                       options={"maxiter": LAPLACE_ITERATIONS, "gtol": LAPLACE_GRADIENT_TOL})
    mode = solution.x if solution.fun <= objective(z0)[0] else z0
    curvature, vectors = np.linalg.eigh(difference_hessian(gradients, mode))
    scale = 1.0 / np.sqrt(SHRINKAGE_VARIANCE * np.maximum(curvature, 1.0))
    return mode, (vectors * scale) @ vectors.T


def difference_hessian(gradients, z: np.ndarray) -> np.ndarray:
    """d^2U/dz^2 at ``z`` by central differences of the gradient (``gradients``: (a, b) -> dU/dz at a and at
    b; d calls), each coordinate's step the cube root of machine epsilon at its scale; a non-finite entry
    counts as 0, then the matrix is symmetrised (so that a NaN does not spread to its mirror)."""
    steps = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(z))
    hessian = np.stack([np.subtract(*gradients(z + e, z - e)) / (2 * h) for e, h in zip(np.diag(steps), steps)])
    hessian = np.where(np.isfinite(hessian), hessian, 0.0)
    return 0.5 * (hessian + hessian.T)


def laplace_start(value_and_grad, z0, *, chains: int, seed: int,
                  pair=None) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(m, A, u0): :func:`laplace_coordinates` at the start ``z0`` (``pair`` as there), and one start per chain
    in u (shape (chains, d)), as ``nuts_sampler`` and ``fit_many`` start their chains.

    Each chain starts at its own draw from the Laplace approximation, u ~ N(0, 1e-3 I) (NumPy's generator
    at ``seed``), and at the mode (u = 0) where that draw's potential or gradient is not finite. Not at the
    point fit's values: their potential can lie far above the mode's (90,000 nats on the all-families
    fit), and the first windows of the warmup then estimate the mass matrix from draws still falling
    toward the typical set, whose trees run hundreds of steps. Not every chain at the mode: chains from
    different points are what lets r-hat see a chain that has not mixed."""
    center, root = laplace_coordinates(value_and_grad, z0, pair=pair)
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(chains):
        u = np.sqrt(SHRINKAGE_VARIANCE) * rng.standard_normal(len(center))
        value, grad = value_and_grad(center + root @ u)
        finite = np.isfinite(float(value)) and bool(np.all(np.isfinite(np.asarray(grad))))
        starts.append(u if finite else np.zeros_like(u))
    return jnp.asarray(center), jnp.asarray(root), jnp.asarray(np.stack(starts))


def nuts_sampler(prepared: PreparedFit, *, progress: bool = False):
    """A maker of NumPyro's ``MCMC`` with NUTS on the prepared fit's potential at a target acceptance, its
    starts (one per chain, from :func:`laplace_start`) and the names of the sites it samples: run it as
    ``make(target_accept).run(key, init_params=start)``. The start and the Laplace map are computed once,
    for every target acceptance a fit is sampled at (a retry after divergent draws)."""
    config = prepared.config
    args = (prepared.data,)
    kwargs = {"y": jnp.asarray(prepared.y), "seed_scaling": config.seed_scaling}
    info = compiled_initialize(get_model(config.pooling), prepared.init, args, kwargs)
    potential, constrain = info.potential_fn(*args, **kwargs), info.postprocess_fn(*args, **kwargs)
    flat, unravel = ravel_pytree(info.param_info.z)
    value_and_grad, pair = paired(jax.value_and_grad(lambda x: potential(unravel(x))))
    check_start(*value_and_grad(flat), info.param_info.z)
    center, root, u0 = laplace_start(value_and_grad, flat, chains=config.chains, seed=config.seed, pair=pair)
    to_z = lambda u: unravel(center + root @ u)  # noqa: E731
    chain_method = _chain_method(config.chains, config.chain_method)

    def make(target_accept: float) -> MCMC:
        # NUTS on the model's potential (the model's own NUTS would trace it again, eagerly), in the
        # coordinates u of laplace_coordinates
        kernel = NUTS(
            potential_fn=lambda u: potential(to_z(u)),
            target_accept_prob=target_accept,
            # dense: the law's level and exponents, and the schedule shape, trade off along linear ridges
            # that the Laplace map straightens only near the mode
            dense_mass=config.dense_mass,
            max_tree_depth=MAX_TREE_DEPTH,
        )
        return MCMC(kernel, num_warmup=config.warmup, num_samples=config.draws, num_chains=config.chains,
                    chain_method=chain_method, progress_bar=progress, postprocess_fn=lambda u: constrain(to_z(u)))

    # each chain's start in u, with its potential and gradient, which NUTS would otherwise evaluate eagerly
    # again; root is symmetric, so dU/du = root dU/dz
    values, grads = zip(*(value_and_grad(center + root @ u) for u in u0))
    start = info.param_info._replace(z=u0, potential_energy=jnp.stack(values), z_grad=jnp.stack(grads) @ root)
    if config.chains == 1:
        start = jax.tree.map(lambda v: v[0], start)
    return make, start, sorted(info.param_info.z)


def retry_accept(config: FitConfig, extra: dict) -> float | None:
    """The target acceptance to sample a fit again at, when its draws (``extra``: their sampler fields)
    hold divergent transitions and the configuration's ``retry_target_accept`` is above its
    ``target_accept``; None otherwise."""
    retry = config.retry_target_accept
    if retry is None or retry <= config.target_accept or not np.any(np.asarray(extra["diverging"])):
        return None
    return retry


def sample_fit(prepared: PreparedFit, *, progress: bool = False, posterior_predictive: bool = True) -> Fit:
    """NUTS (NumPyro's ``MCMC``) on a prepared fit, with the settings of its configuration, and its
    :class:`Fit` (the second half of :func:`fit`; ``posterior_predictive`` as there). With divergent draws,
    sampled again at the configuration's ``retry_target_accept`` (:func:`retry_accept`)."""
    config = prepared.config
    data, model = prepared.data, get_model(config.pooling)
    y = jnp.asarray(prepared.y)
    accept = config.target_accept
    make, start, sites = nuts_sampler(prepared, progress=progress)
    key_fit, key_ppc = jax.random.split(jax.random.PRNGKey(config.seed))
    mcmc = make(accept)
    mcmc.run(key_fit, init_params=start, extra_fields=EXTRA_FIELDS)
    samples, extra = mcmc.get_samples(group_by_chain=True), mcmc.get_extra_fields(group_by_chain=True)
    if (retry := retry_accept(config, extra)) is not None:
        # the same start and key: the second run differs from the first only in its target acceptance
        accept = retry
        mcmc = make(accept)
        mcmc.run(key_fit, init_params=start, extra_fields=EXTRA_FIELDS)
        samples, extra = mcmc.get_samples(group_by_chain=True), mcmc.get_extra_fields(group_by_chain=True)
    limit, blocks = EXTEND_BLOCKS if config.extend is None else config.extend, 0
    while blocks < limit and unconverged(samples, sites):
        mcmc.post_warmup_state = mcmc.last_state  # go on sampling: no new warmup
        mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=EXTRA_FIELDS)
        more = (mcmc.get_samples(group_by_chain=True), mcmc.get_extra_fields(group_by_chain=True))
        samples, extra = (jax.tree.map(lambda a, b: np.concatenate([a, b], axis=1), old, new)
                          for old, new in zip((samples, extra), more, strict=True))
        blocks += 1
    ppc = log_lik = None
    if posterior_predictive:
        flat = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), samples)  # chain-major, as get_samples()
        ppc, log_lik = _replicate_in_chunks(model, flat, key_ppc, data, y, seed_scaling=config.seed_scaling)
    fitted = finish_fit(prepared, samples, extra, ppc, log_lik, sites, accept)
    fitted.idata.attrs["bayeslaw_extensions"] = blocks
    _warn_unconverged(fitted, blocks)
    return fitted


class ConvergenceWarning(RuntimeWarning):
    """A fit returned with draws that miss the convergence checks (:meth:`Fit.diagnostics`)."""


def _warn_unconverged(fitted: Fit, blocks: int) -> None:
    """One warning where a fit ends with draws that miss :meth:`Fit.diagnostics`' checks (after its extra
    blocks of draws): its quantiles may be off, and a user who does not ask for the diagnostics would not know."""
    diagnostics = fitted.diagnostics(warn=False)
    if not diagnostics.warning:
        return
    post = fitted.idata.posterior
    after = f" after {blocks} more block(s) of draws" if blocks else ""
    warnings.warn(f"fit: not converged{after} ({post.sizes['chain']} chains x {post.sizes['draw']} draws): "
                  + "; ".join(diagnostics.messages) + " (fit.diagnostics() gives the table)",
                  ConvergenceWarning, stacklevel=4)


def convergence_table(posterior: xr.Dataset, sites) -> pd.DataFrame:
    """ArviZ's diagnostics (bulk and tail ESS, rank-normalised split r-hat, MCSE) of the ``sites`` of a
    posterior with dims (chain, draw, ...), one row per element that varies.

    Constant elements are left out one by one, not whole sites: a site fixed in some entries (a
    quantity pinned for some families) has no r-hat there (0 / 0), which would read as a chain that
    never moved. ``corr_chol`` is left out: its fixed entries and the rest follow from the correlations."""
    names, varying = [], []
    for name in sites:
        if name == "corr_chol" or name not in posterior:
            continue
        moves = np.asarray(posterior[name].std(("chain", "draw")).values).ravel() > 0
        if moves.any():
            names.append(name)
            varying.append(moves)
    if not names:
        return pd.DataFrame(columns=["ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd"])
    with warnings.catch_warnings():  # 0/0 inside ArviZ for the constant elements dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        table = az.summary(posterior[names], kind="diagnostics", round_to="none")
    return table[np.concatenate(varying)]


def unconverged(samples: dict, sites) -> bool:
    """Do draws grouped by chain, (chain, draw, ...) per site, miss r-hat <= RHAT_MAX or bulk or tail ESS
    >= ESS_MIN on a sampled site? Read as :meth:`Fit.diagnostics` reads them (:func:`convergence_table`).
    One chain: False, nothing to compare."""
    arrays = {}
    for name in sites:
        x = np.asarray(samples[name], dtype=float)
        if x.shape[0] < 2:
            return False
        arrays[name] = (("chain", "draw", *(f"{name}_dim_{i}" for i in range(x.ndim - 2))), x)
    table = convergence_table(xr.Dataset(arrays), sites)
    return bool((table["r_hat"].fillna(np.inf) > RHAT_MAX).any() or (table["ess_bulk"].fillna(0) < ESS_MIN).any()
                or (table["ess_tail"].fillna(0) < ESS_MIN).any())


@dataclass(frozen=True, repr=False)
class PreparedFit(Result):
    """What a fit samples, before sampling: the rows as fitted (after the cut and thinning), the model's
    arrays, the configuration (its pooling as fitted), log loss ``y`` and the start values of every site."""

    _main = "rows"

    rows: pd.DataFrame
    data: ModelData
    config: FitConfig
    y: np.ndarray
    init: dict
    rows_in: int


def _warn_whole_runs_cut(rows: pd.DataFrame, kept: pd.DataFrame, cut: str) -> None:
    """Say which runs (and families) a cut left out whole: a table whose curves all stop below the cut
    (an imported log of short runs) would otherwise lose most of itself with no word."""
    gone = sorted(set(rows["run"]) - set(kept["run"]))
    if not gone:
        return
    families = sorted(set(rows["family"]) - set(kept["family"])) if "family" in rows else []
    whole = f", and with them every row of famil(y/ies) {families[:5]}" if families else ""
    warnings.warn(f"fit: {cut} left out {len(gone)} of {rows['run'].nunique()} run(s) whole (e.g. {gone[:3]}){whole}: "
                  f"every row at or below the cut; min_tokens=None (CLI: --min-tokens 0) keeps them", stacklevel=4)


def prepare_fit(df: pd.DataFrame, config: FitConfig) -> PreparedFit:
    """The rows, arrays and start of :func:`fit` for a checked ``config`` (shared by :func:`fit` and
    :func:`bayeslaw.inference.batched.fit_many`)."""
    df = as_table(df, name="the fit's table", needs=FIT_COLUMNS, duplicates=False)  # duplicates: config's, below
    # the values the fit reads, on the user's rows before the cut: the cut would drop a bad early row without a
    # word and renumber the rest, and a NaN loss reaches NUTS' start as a potential that names no row. A missing
    # tokens value is named by check_checkpoints (a schedule law's rows may lack it), a missing run_tokens
    # is the run's last checkpoint.
    check_columns(df, ("loss", "params", "tokens", "run_tokens"), where="fit", optional=("tokens", "run_tokens"))
    spec = get_parameterization(config.form)
    form, pooling = config.form, config.pooling
    n_theta = len(spec.names)
    axis = spec.law.progress
    # a branch's copy of its parent counts once
    rows = check_checkpoints(drop_copies(df), config.duplicates, by=axis, law=spec.law)
    if axis == "step":
        # a law of the schedule describes the whole run after its warmup: the token cut (the
        # Hitchhiker's, for laws of final losses) does not apply
        check_logged_lr(rows, where="fit")
        rows, cut = after_warmup(rows, where="fit"), "the warmup"
    else:
        kept = cut_early(rows, min_tokens=config.min_tokens, min_fraction=config.min_fraction)
        cut = f"the early cut (min_tokens={config.min_tokens}, min_fraction={config.min_fraction})"
        _warn_whole_runs_cut(rows, kept, cut)
        rows = kept
    diverged = rising_runs(rows, by=axis)
    if len(diverged) and config.rising == "error":
        # one such run's offset (its loss doubled) is the seed spread the model would learn, and a new
        # run's band would carry it
        run, d = diverged.index[0], diverged.iloc[0]
        raise ValueError(f"fit: run {run!r} ends {100 * d['rise']:.0f}% above its first checkpoint after {cut} "
                         f"({d['first_loss']:.4g} at {axis} {d['first']:g}, {d['last_loss']:.4g} at {d['last']:g}; "
                         f"rows {d['rows']}): a diverged run, which no scaling law describes ({len(diverged)} such "
                         f"run(s): {list(diverged.index[:3])}); leave them out with rising='drop' (CLI: --rising drop), "
                         f"or keep them with rising='keep'")
    if len(diverged) and config.rising == "drop":
        warnings.warn(f"fit: left out {len(diverged)} diverged run(s) (loss ending over {RISE_LIMIT:.0%} above its "
                      f"first checkpoint after {cut}; rising='drop'): {list(diverged.index)}", stacklevel=3)
        rows = rows[~rows["run"].isin(diverged.index)]
    if len(rows) >= n_theta and config.thin is not None:
        rows = thin_checkpoints(rows, per_run=config.thin, by=axis)
    if len(rows) < n_theta:
        raise ValueError(f"fit: {len(rows)} row(s) left after {cut} of {len(df)}; need at least {n_theta}")
    # fractions of each run as given (before the cut and thinning), unless the table states the run's end
    last = df.groupby("run")["tokens"].max().reindex(rows["run"]).to_numpy()
    rows = rows.assign(run_tokens=rows["run_tokens"].fillna(pd.Series(last, rows.index)) if "run_tokens" in rows
                       else last)
    rows = rows.reset_index(drop=True)
    _check_sizes(rows, pooling, spec.law)
    data = prepare(rows, form)
    _warn_design_cost(data, spec.law.name, config)
    if pooling == "hierarchical" and data.n_families == 1:
        # one family says nothing about a population: its mu, tau would be the prior's, and a centred
        # family under them a funnel. The hierarchical model of one family is the unpooled one.
        pooling = "none"
        config = replace(config, pooling=pooling)
    y = np.asarray(jnp.log(jnp.asarray(rows["loss"].to_numpy(dtype=float))))
    return PreparedFit(rows, data, config, y,
                       _point_init(rows, data, pooling, spec), len(df))


def _warn_design_cost(data: ModelData, law: str, config: FitConfig) -> None:
    """Warn, before the start and the sampling, where a schedule law's per-row design is so large that
    NUTS would run for hours: its size, a time scaled from :data:`DESIGN_REFERENCE` (linear in the terms
    and the iterations: a rough guide, not a promise) and what makes it smaller."""
    designs = [np.shape(v) for v in data.inputs.values() if np.ndim(v) == 2]
    if not designs:
        return
    rows, bins = max(designs, key=lambda shape: shape[0] * shape[1])
    if rows * bins <= DESIGN_TERMS_WARN:
        return
    ref_rows, ref_bins, seconds, iterations = DESIGN_REFERENCE
    hours = (seconds * (rows * bins / (ref_rows * ref_bins))
             * (config.chains * (config.warmup + config.draws) / iterations) / 3600)
    expected = f"{hours:.0f} hour(s)" if hours >= 1 else f"{60 * hours:.0f} minutes"
    warnings.warn(f"fit: the {law} law's design is {rows:,} rows x {bins:,} bins ({rows * bins / 1e6:.1f}M terms "
                  f"per evaluation); scaled from a {ref_rows} x {ref_bins} fit that takes about {seconds / 60:.0f} "
                  f"minutes on 2 CPU cores, NUTS would take of the order of {expected} here: thin the rows (thin=), "
                  f"fit fewer runs, or use "
                  f"form='annealing' (no such sum)", UserWarning, stacklevel=4)


def _replicate(model, samples: dict, key, data: ModelData, y, *, seed_scaling: str):
    """The posterior predictive of ``obs`` (draw, run, checkpoint) and the log likelihood per run (draw, run)."""
    ppc = Predictive(model, samples, return_sites=["obs"])(key, data, seed_scaling=seed_scaling)["obs"]
    log_lik = log_likelihood(model, samples, data, y=y, seed_scaling=seed_scaling)["obs"]
    return ppc, log_lik


REPLICATE_ELEMENTS = 2**21  # per chunk of draws: draws x runs x checkpoints of the padded predictive


def _replicate_in_chunks(model, samples: dict, key, data: ModelData, y, *, seed_scaling: str):
    """:func:`_replicate` over chunks of draws of equal size (one compilation; the last chunk padded with
    the last draw), the predictive written per row as each chunk ends: the fit holds one (draw, row)
    array, not the padded draws and their copies at once. (draw, row) and (draw, run)."""
    n_draws = len(next(iter(samples.values())))
    chunk = min(n_draws, max(1, REPLICATE_ELEMENTS // data.run_mask.size))
    # jitted: run eagerly, each of the model's operations compiles on its own (seconds per call)
    replicate = jax.jit(lambda s, k: _replicate(model, s, k, data, y, seed_scaling=seed_scaling))
    ppc, log_lik = np.empty((n_draws, len(data.family))), np.empty((n_draws, data.n_runs))
    for i, start in enumerate(range(0, n_draws, chunk)):
        draws = np.minimum(np.arange(start, start + chunk), n_draws - 1)
        # the first chunk draws with ``key`` itself: a fit of one chunk replicates as fit_many's program does
        part, part_lik = replicate({k: v[draws] for k, v in samples.items()}, key if i == 0 else jax.random.fold_in(key, i))
        keep = min(chunk, n_draws - start)
        ppc[start:start + keep] = data.per_row(np.asarray(part)[:keep])
        log_lik[start:start + keep] = np.asarray(part_lik)[:keep]
    return ppc, log_lik


def finish_fit(prepared: PreparedFit, samples: dict, extra: dict, ppc, log_lik, sampled_sites,
               target_accept: float) -> Fit:
    """A :class:`Fit` from NUTS' draws and extra fields (grouped by chain), the posterior predictive of
    ``obs`` per row (draw, row) and the log likelihood per run (draw, run) (draws of all chains, flat; None
    and None: the fit has neither group),
    the sites NUTS moved in and the target acceptance the draws were taken at (the configuration's, or
    its ``retry_target_accept`` after a divergence)."""
    data, rows, config, y = prepared.data, prepared.rows, prepared.config, prepared.y
    spec = get_parameterization(config.form)
    chains, draws = np.shape(extra["diverging"])[:2]
    coords = {"family": list(data.families), "run": list(data.runs),
              "curve_family": [f for f, c in zip(data.families, data.curve_families) if c],
              "replicated_family": [f for f, c in zip(data.families, data.replicated_families) if c],
              "sized_curve_family": [f for f, c in zip(data.families, data.sized_curve_families) if c],
              "theta_dim": list(spec.names), "corr_dim": list(spec.law.sampling.correlated_names),
              "corr_dim_bis": list(spec.law.sampling.correlated_names),
              "shape_dim": [f"(-log x)^{k}/{k}!" for k in range(1, SHAPE_DEGREE + 1)],
              "checkpoint": np.arange(data.run_mask.shape[1])}
    idata = _posterior_tree(samples, extra, MAX_TREE_DEPTH, coords, site_dims(config.pooling, spec))
    # observations, their posterior predictive and the constant data per row; the log likelihood per run
    # (the unit the likelihood factorises over: PSIS-LOO leaves one run out)
    chain_draw = {"chain": np.arange(chains), "draw": np.arange(draws)}
    # obs is log loss, not loss: said on the variables, where a reader of the file looks
    units = {"long_name": "log loss", "units": "log(nats per token)"}
    idata["observed_data"] = xr.DataTree(xr.Dataset({"obs": ("obs_id", np.asarray(y), units)},
                                                    coords={"obs_id": np.arange(len(rows))}))
    if ppc is not None:
        idata["posterior_predictive"] = xr.DataTree(xr.Dataset(
            {"obs": (("chain", "draw", "obs_id"), np.asarray(ppc).reshape(chains, draws, -1), units)},
            coords={**chain_draw, "obs_id": np.arange(len(rows))}))
    if log_lik is not None:
        idata["log_likelihood"] = xr.DataTree(xr.Dataset(
            {"obs": (("chain", "draw", "run"), np.asarray(log_lik).reshape(chains, draws, -1))},
            coords={**chain_draw, "run": list(data.runs)}))
    idata["constant_data"] = xr.DataTree(_constant_data(data, rows))
    idata.attrs.update({
        CONFIG_ATTR: config.to_json(), "bayeslaw_likelihood": "run",
        "bayeslaw_sampled_sites": ",".join(sorted(sampled_sites)),  # the latent sites NUTS moved in
        "bayeslaw_rows_in": prepared.rows_in, "bayeslaw_rows_fitted": len(rows),
        "bayeslaw_target_accept": target_accept,
    })
    return Fit(idata)


@dataclass(frozen=True, repr=False)
class Prediction(Result):
    """Posterior draws of a quantity per target: ``draws`` (sample x target) and a ``summary`` table
    (the targets with mean, sd and quantiles; loss in nats per token unless ``draws.attrs["units"]`` says)."""

    _main = "summary"

    draws: xr.DataArray
    summary: pd.DataFrame
    kind: str


def summarize(values: np.ndarray, targets: pd.DataFrame, *, kind: str, quantiles=DEFAULT_QUANTILES,
              name: str = "loss", units: str = "nats per token") -> Prediction:
    """A :class:`Prediction` from draws (sample, target) of one quantity for the rows of ``targets`` (the
    summary keeps their index)."""
    values = np.asarray(values, dtype=float)
    draws = xr.DataArray(values, dims=("sample", "target"), name=name, attrs={"kind": kind, "units": units})
    summary = targets.copy()  # the targets' own index: the summary's columns assign back onto their table
    # inf draws: quantiles without interpolation (between two inf draws linear interpolation gives NaN)
    method = "linear" if np.isfinite(values).all() else "inverted_cdf"
    stats = np.empty((2 + len(quantiles), values.shape[1]))
    chunk = max(1, PREDICT_ROW_ELEMENTS // max(values.shape[0], 1))  # targets at a time: the copies stay small
    for lo in range(0, values.shape[1], chunk):
        part = values[:, lo:lo + chunk]
        with np.errstate(invalid="ignore"):  # inf draws (a loss no run reaches) give an inf mean and a NaN sd
            stats[:2, lo:lo + chunk] = part.mean(axis=0), part.std(axis=0)
        stats[2:, lo:lo + chunk] = np.quantile(part, quantiles, axis=0, method=method)
    summary["mean"], summary["sd"] = stats[0], stats[1]
    for q, row in zip(quantiles, stats[2:], strict=True):
        summary[f"q{100 * q:g}"] = row
    summary["kind"] = kind
    return Prediction(draws, summary, kind)


#: draws per chain that ArviZ needs for ESS and r-hat: with fewer it gives NaN for both (and with one draw
#: per chain no sampled quantity varies, so the convergence table is empty)
MIN_DRAWS = 4


@dataclass(repr=False)
class Diagnostics(Result):
    """Convergence diagnostics from ArviZ, with a warning flag and remedies."""

    _main = "table"

    table: pd.DataFrame
    divergences: int
    bfmi: np.ndarray
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    messages: list[str] = field(default_factory=list)
    extensions: int = 0  # blocks of draws added after the first (fit's ``extend``)

    @property
    def warning(self) -> bool:
        return bool(self.messages)

    def __str__(self) -> str:
        head = (f"max r-hat {self.max_rhat:.4f}, min bulk ESS {self.min_ess_bulk:.0f}, min tail ESS "
                f"{self.min_ess_tail:.0f}, divergences {self.divergences}, BFMI {np.round(self.bfmi, 2).tolist()}"
                + (f", {self.extensions} more block(s) of draws per chain" if self.extensions else ""))
        return "\n".join([head, *(f"warning: {m}" for m in self.messages)] or [head])


def parameter_notes(params: pd.DataFrame, *, kept: str) -> list[str]:
    """The lines under a table of :meth:`Fit.params`: where a schedule law's constants are quoted (each family's
    median size and peak rate), and which parameters are their priors alone (``kept``: where the reader finds
    those)."""
    notes = []
    if "at_params" in params:
        for family, at in params.groupby("family", sort=False)[["at_params", "at_peak_lr"]].first().iterrows():
            notes.append(f"{family}: constants at its median size {at['at_params']:.4g} and peak rate "
                         f"{at['at_peak_lr']:.3g}")
    for family, names in params[params["prior_only"]].groupby("family", sort=False)["parameter"]:
        notes.append(f"{family}: {', '.join(names)} from the prior alone (one value of their input in the family's "
                     f"rows: one model size, or one peak rate; {kept})")
    return notes


class NewFamilyWarning(UserWarning):
    """A prediction for a family the fit has not seen: the population's forecast (a typo would get it too)."""


def check_quantiles(quantiles, where: str) -> None:
    """``quantiles``: probabilities in [0, 1] (a number or a sequence of them, not a string), else one line
    naming ``where`` (the function) and the argument (numpy's messages name neither)."""
    try:
        probs = np.asarray(quantiles, dtype=float).ravel()
    except (TypeError, ValueError):
        probs = np.array([np.nan])
    if isinstance(quantiles, (str, bytes)) or not probs.size or not np.all((probs >= 0) & (probs <= 1)):
        raise ValueError(f"{where}: quantiles={quantiles!r}; need probabilities in [0, 1], e.g. (0.05, 0.5, 0.95)")


def _check_call(targets: pd.DataFrame, quantiles, seed) -> None:
    """:meth:`Fit.predict`'s arguments, each refused in one line naming it (numpy's messages name none)."""
    if targets.empty:
        raise ValueError("predict: targets has no rows; give one row per target")
    check_quantiles(quantiles, "predict")
    if not is_whole(seed) or seed < 0:
        raise ValueError(f"predict: seed={seed!r}; need a whole number >= 0")


class Fit:
    """A fitted Bayesian scaling law (see :func:`fit`)."""

    def __init__(self, idata: xr.DataTree):
        self.idata = idata
        self._config = FitConfig.from_attrs(idata)

    # --- what the fit is -------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """The options it was fitted with: ``bl.fit(rows, **fit.config)`` refits it exactly."""
        return self._config.to_dict()

    @property
    def pooling(self) -> str:
        return self._config.pooling

    @property
    def form(self) -> str:
        return self._config.form

    @property
    def spec(self) -> Parameterization:
        """How the fitted law was sampled (its coordinates and the map to the law's parameters)."""
        return get_parameterization(self.form)

    @property
    def seed_scaling(self) -> str:
        return self._config.seed_scaling

    @property
    def families(self) -> list[str]:
        return [str(f) for f in self.idata.posterior["family"].values]

    def family_or_only(self, family: str | None) -> str | None:
        """``family``, or for None the family of an unpooled fit of one family (a user's one table): it has
        no population beyond its prior, so a question that names no family is about its family. (A
        hierarchical fit's None is a new family of the population; a completely pooled fit's, the shared law.)"""
        one = family is None and self.pooling == "none" and len(self.families) == 1
        return self.families[0] if one else family

    @property
    def runs(self) -> list[str]:
        return [str(r) for r in self.idata.constant_data["run"].values]

    def site_draws(self, name: str) -> np.ndarray:
        """Posterior draws of a site, chains stacked: shape (sample, ...)."""
        values = self.idata.posterior[name].values
        return values.reshape(-1, *values.shape[2:])

    def training_rows(self, family: str | None = None) -> pd.DataFrame:
        """The rows the fit was trained on (after its early cut and thinning), rebuilt from its DataTree:
        family, run, params, tokens, step, run_tokens, the law's inputs as fitted (batch_size, flops, ...) and loss
        (nats per token, from ``observed_data``); only ``family``'s rows when one is named."""
        const = self.idata.constant_data
        families = np.asarray(const["family"].values).astype(str)
        runs = np.asarray(const["run"].values).astype(str)
        rows = pd.DataFrame({
            "family": families[const["obs_family"].values],
            "run": runs[const["obs_run"].values],
            "params": np.exp(const["log_params"].values),
            "tokens": np.exp(const["log_tokens"].values),
            "step": const["step"].values,
            "loss": np.exp(self.idata.observed_data["obs"].values),
        })
        if "fraction" in const:  # the run's final tokens, as fitted
            rows["run_tokens"] = rows["tokens"] / const["fraction"].values
        if "schedule" in const:
            rows["schedule"] = np.asarray(const["schedule"].values).astype(str)
        for name in self.spec.law.inputs:
            if f"input_{name}" in const and name not in rows:
                rows[name] = const[f"input_{name}"].values
        if family is None:
            return rows
        if family not in self.families:
            raise ValueError(f"training_rows: family {family!r} is not one of the fit's families {self.families}")
        return rows[rows["family"] == family].reset_index(drop=True)

    def __repr__(self) -> str:
        post = self.idata.posterior
        return (f"Fit(form={self.form!r}, pooling={self.pooling!r}, "
                f"families={len(self.families)}, runs={len(self.runs)}, chains={post.sizes['chain']}, "
                f"draws={post.sizes['draw']}, rows={self.idata.attrs['bayeslaw_rows_fitted']})")

    def params(self) -> pd.DataFrame:
        """Posterior mean and 90% interval of the law's parameters (chinchilla: E, A, B, alpha, beta), and of
        sigma_seed, sigma_obs and sigma_dev per family (the last two are 0 for a family seen only through
        final losses: its runs' spread around the law is sigma_seed). ``prior_only``: a parameter the
        family's rows cannot identify (:meth:`bayeslaw.laws.Law.held_in`: a schedule law's size slopes on
        one model size, its rate slopes at one peak rate), whose band is its prior's (a point fit holds it).

        A law whose constants move with N and the peak rate (``Law.constants_at``: the schedule laws) gives
        them at the family's median size and peak rate (columns ``at_params``, ``at_peak_lr``), where its
        rows measure them: at the law's reference size and rate a family of one size or one rate would
        carry the prior's slopes into every constant."""
        law, rows = self.spec.law, []
        for i, family in enumerate(self.families):
            theta = {n: self.site_draws(n)[:, i] for n in law.theta_names}
            own, where = self.training_rows(family), f"family {family!r}"
            # the family's inputs, read once for both (a schedule law derives them from its runs' schedules)
            inputs = law.columns(own, where=where) if law.held_alone else None
            at = self.reference_point(family, inputs=inputs)
            if at:
                theta = {k: np.asarray(v) for k, v in law.constants_at(theta, at).items()}
            natural = law.natural(theta)
            natural.update({name: self.site_draws(name)[:, i] for name in ("sigma_seed", "sigma_obs", "sigma_dev")})
            held = law.held_in(own, where=where, inputs=inputs)
            for name, d in natural.items():
                d = np.asarray(d)
                rows.append({"family": family, "parameter": name, "mean": d.mean(), "q05": np.quantile(d, 0.05),
                             "median": np.median(d), "q95": np.quantile(d, 0.95), "prior_only": name in held,
                             **{f"at_{k}": v for k, v in at.items()}})
        return pd.DataFrame(rows)

    def reference_point(self, family: str, *, inputs: dict | None = None) -> dict[str, float]:
        """Where a law whose constants move with N and the peak rate (``Law.constants_at``: the schedule laws)
        quotes them for ``family``: the median size and peak rate of its rows (``inputs``: their law inputs,
        where the caller has read them); {} for a law with fixed constants."""
        law = self.spec.law
        if law.constants_at is None:
            return {}
        if inputs is None:
            inputs = law.columns(self.training_rows(family), where=f"family {family!r}")
        return law.reference_point(inputs)

    # --- prediction ------------------------------------------------------------------------
    def _new_family(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A family the fit has not seen, per draw, drawn by the model (:func:`bayeslaw.models.new_family`):
        ``theta_new`` (sample, K), ``shape_new`` (sample, K_shape), ``sigma_seed_new`` (sample,)."""
        sites = {name: jnp.asarray(self.site_draws(name)) for name in new_family_sites(self.spec, self.pooling)}
        n = self.site_draws("sigma_seed").shape[0]
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        draws = _new_family_sampler(self.spec, self.pooling, len(self.families), n)(sites, key)
        return {k: np.asarray(v) for k, v in draws.items()}

    def _population(self, families, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
        """One draw of a new family (:meth:`_new_family`) where ``families`` need one: a family the fit has
        not seen, or a seen one without curves (its schedule shape is the population's); else None."""
        own_curve = set(self.curve_families)
        return self._new_family(rng) if any(f not in own_curve for f in families) else None

    def _theta(self, families, population: dict | None) -> np.ndarray:
        """Sampled-coordinate theta per draw and target: (sample, target, K); unseen families (or None) from
        ``population`` (see :meth:`_population`)."""
        table, index = self._theta_table(families, population)
        return table[:, index]

    def _theta_table(self, families, population: dict | None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_theta` as a table and a gather: theta per draw of each fitted family and, last, of the new
        family (sample, F + 1, K), and each target's position in it. A long curve's targets share a few
        families: gathering per chunk of rows keeps (sample, target, K) from being built whole."""
        theta_f = self.site_draws("theta")  # (S, F, K)
        family_pos = {f: i for i, f in enumerate(self.families)}
        unseen = sorted({str(f) for f in families if f not in family_pos}, key=str)
        if unseen and self.pooling == "none":  # the "population" of an unpooled fit is the prior alone
            named = [f for f in unseen if f != "None"]
            raise ValueError(f"{'family ' + repr(named[0]) + ' is not in this fit' if named else 'no family named'} "
                             f"(its families: {self.families}), and pooling='none' has no population law: an unseen "
                             f"family would get the prior's forecast; name one of its families, or fit with "
                             f"pooling='hierarchical'")
        new = population["theta_new"] if unseen else np.full_like(theta_f[:, 0], np.nan)
        index = np.array([family_pos.get(f, len(family_pos)) for f in families], dtype=np.intp)
        return np.concatenate([theta_f, new[:, None]], axis=1), index

    def sampled_theta(self, family: str | None = None, *, seed: int | np.random.Generator = 0) -> np.ndarray:
        """Posterior draws of ``family``'s sampled coordinates (``spec.names``), shape (sample, K); a family
        the fit has not seen (or None) gets the population's draws."""
        population = None if family in self.families else self._new_family(np.random.default_rng(seed))
        return self._theta([family], population)[:, 0]

    def law_theta(self, family: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws of the law's own parameters (its ``theta_names``, fitting space) for ``family``,
        each of shape (sample,); a family the fit has not seen gets the population's draws, and None the
        population's too unless the fit is an unpooled fit of one family (:meth:`family_or_only`)."""
        theta = self.sampled_theta(self.family_or_only(family), seed=seed)
        return {k: np.asarray(v) for k, v in self.spec.to_law(jnp.asarray(theta)).items()}

    @property
    def curve_families(self) -> list[str]:
        """The families whose runs were seen at two or more checkpoints (they have their own curve noise and shape)."""
        post = self.idata.posterior
        return [str(f) for f in post["curve_family"].values] if "curve_family" in post.coords else []

    def noise_draws(self, families, *, seed: int | np.random.Generator = 0) -> dict[str, np.ndarray]:
        """Per draw, the run-level noise of a new run of each of ``families`` (see :mod:`bayeslaw.models.runs`).

        ``sigma_seed`` (at SEED_N_REF), ``sigma_obs``, ``sigma_dev``, ``offset_start`` (rho, the share of
        the offset there from a run's start), ``shape`` and ``shape_size`` (the schedule-shape weights w
        and their change per e-fold of N v, (sample, family, K)) and ``shape_centre`` (the family's mean
        log N, where v does nothing) per family; ``gamma_seed`` (sample,); :func:`shape_weights` gives
        the weights at a size. A family's own where the fit learnt them; an unseen
        family (or None) gets the population's sigma_seed and shape, and the curve noise (sigma_obs,
        sigma_dev, rho) of a family with curves drawn at random per sample (shared by every unseen one); a
        seen family without curves (final losses only) gets the population's shape, sigma_dev and rho.
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self._noise(families, rng, self._population(families, rng))

    def _noise(self, families, rng: np.random.Generator, population: dict | None) -> dict[str, np.ndarray]:
        """:meth:`noise_draws` with the new family's draw ``population`` given (see :meth:`_population`)."""
        sigma_seed_f, sigma_obs_f = self.site_draws("sigma_seed"), self.site_draws("sigma_obs")
        sigma_dev_f, shape_f = self.site_draws("sigma_dev"), self.site_draws("shape")
        n = sigma_obs_f.shape[0]
        pos = {f: i for i, f in enumerate(self.families)}
        curves = [pos[f] for f in self.curve_families]
        pick = np.asarray(curves)[rng.integers(0, len(curves), n)] if curves else None
        # a fit saved before the offset's start share was learnt: an offset that grows from 0
        start_f = (self.site_draws("offset_start") if "offset_start" in self.idata.posterior
                   else np.zeros_like(sigma_obs_f))
        pop_obs = sigma_obs_f[np.arange(n), pick] if curves else np.zeros(n)
        pop_dev = sigma_dev_f[np.arange(n), pick] if curves else np.zeros(n)
        pop_start = start_f[np.arange(n), pick] if curves else np.zeros(n)
        pop_seed, pop_shape = (None, None) if population is None else (population["sigma_seed_new"],
                                                                         population["shape_new"])
        # a fit saved before the shape moved with N: a shape the same at every size
        size_f = self.site_draws("shape_size") if "shape_size" in self.idata.posterior else np.zeros_like(shape_f)
        centre = self._family_log_params()
        own_curve = set(self.curve_families)
        # per target, its column in (the fitted families..., the new family's): a seen family's own scales; its
        # own curve noise and shape only where it has curves (else the population's; a shape that does not
        # move with N)
        n_f = len(self.families)
        seen = np.array([pos.get(f, n_f) for f in families], dtype=np.intp)
        curve = np.array([pos[f] if f in own_curve else n_f for f in families], dtype=np.intp)

        def gather(own, new, index):
            filler = np.full_like(own[:, 0], np.nan) if new is None else np.broadcast_to(new, own[:, 0].shape)
            return np.concatenate([own, filler[:, None]], axis=1)[:, index]

        out = {"sigma_seed": gather(sigma_seed_f, pop_seed, seen), "sigma_obs": gather(sigma_obs_f, pop_obs, seen),
               "sigma_dev": gather(sigma_dev_f, pop_dev, curve), "offset_start": gather(start_f, pop_start, curve),
               "shape": gather(shape_f, pop_shape, curve), "shape_size": gather(size_f, np.zeros(1), curve),
               "shape_centre": np.broadcast_to(np.array([centre.get(f, 0.0) for f in families], dtype=float),
                                               (n, len(families))).copy()}
        out["gamma_seed"] = self.site_draws("gamma_seed")
        return out

    def _training_log_params(self) -> pd.Series:
        """log N of every training row, indexed by its family's name."""
        const = self.idata.constant_data
        return pd.Series(np.asarray(const["log_params"].values),
                         index=np.asarray(self.families)[np.asarray(const["obs_family"].values)])

    def _family_log_params(self) -> dict[str, float]:
        """Each fitted family's mean log N over its rows: the centre of its shape's size term."""
        return self._training_log_params().groupby(level=0).mean().to_dict()

    def _run_rows(self) -> dict[str, np.ndarray]:
        """The training rows of each run (indices into obs_id, along the run)."""
        const = self.idata.constant_data
        runs = np.asarray(const["run"].values).astype(str)
        obs_run = const["obs_run"].values
        along = const["fraction"] if "fraction" in const else const["log_tokens"]
        order = np.lexsort((along.values, obs_run))
        return {run: idx for run, idx in zip(runs, np.split(order, np.cumsum(np.bincount(obs_run, minlength=len(runs)))[:-1]))}

    def predict(
        self,
        targets: pd.DataFrame,
        *,
        kind: PredictionKind = "new_run",
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        seed: int = 0,
        form_error: float | None = None,
    ) -> Prediction:
        """Posterior predictive loss (nats per token) for each row of ``targets``.

        ``targets`` has ``params`` and the law's other inputs (``tokens``; ``batch_size`` for su2024;
        ``flops`` optional for compute; ``step`` and ``schedule`` for a schedule law), optionally
        ``family``, ``run`` and ``run_tokens`` (the run's final tokens; default: the last tokens of each
        ``run`` among the targets, and without ``run`` each row is a run's final checkpoint; a schedule
        law's runs end at their schedule's last step) and ``parent_run`` (the trained run a target run
        branches from: it shares that run's offset).
        ``kind="law"``: the law's loss of that configuration (parameter uncertainty only).
        ``kind="new_run"``: what one training run shows at that checkpoint: the law plus the family's
        schedule shape g_f(x) at the row's fraction x of its run, parameter uncertainty, and the run's
        Gaussian noise (offset, deviation along the run, checkpoint noise). A target whose ``run`` the fit
        was trained on is conditioned on that run's observed checkpoints (its offset and deviation so
        far), a target in a trained run's branch tree on the tree's offset, and a row outside the range
        of model sizes its family was fitted on carries the law's form error there
        (:meth:`form_error_sd`, ``form_error`` per e-fold of N; default ``PRIORS["form_error"]``, 0 for
        none). A family the fit has not seen (or ``family`` None) gets the population's prediction, and
        is refused by an unpooled fit, which has no population beyond its prior; without a ``family``
        column, the rows are of an unpooled one-family fit's family (:meth:`family_or_only`), else the
        population's. Draws are per row (the marginal predictive of each checkpoint), each row's from its
        own stream of the seed and the columns the prediction reads (the same whatever other rows or
        columns share the call). A schedule law's rows must lie from their warmup's end to their schedule's end,
        and a row far from its family's fitted sizes or peak rates is warned of
        (:func:`~bayeslaw.laws.schedule_terms.warn_outside_fitted`).
        """
        check_choice(kind, PredictionKind, "kind")
        if not isinstance(targets, pd.DataFrame):
            raise TypeError(f"predict: targets must be a pandas DataFrame (one row per target), got "
                            f"{type(targets).__name__}")
        _check_call(targets, quantiles, seed)
        missing = [c for c in ("params", self.spec.law.progress) if c not in targets.columns]
        if missing:
            raise ValueError(f"predict: targets lack column(s) {missing}")
        if "family" not in targets.columns and (only := self.family_or_only(None)) is not None:
            targets = targets.assign(family=only)
        # checked on the caller's rows, named by the caller's labels; the draws are then per position
        schedule_law = self.spec.law.progress == "step"
        check_columns(targets, UNITS, where="predict: targets", optional=("tokens",) if schedule_law else ())
        families = self._target_families(targets)
        self._check_trained_runs(targets, families)
        if "parent_run" in targets.columns:
            self._check_parents(targets)
        inputs = self.spec.law.columns(targets, where="predict: targets")
        if schedule_law:
            check_forecast_steps(targets["step"], targets["schedule"], where="predict: targets")
            sizes, rates = self._fitted_ranges(families)
            warn_outside_fitted(targets["params"], inputs["peak_lr"], sizes, rates, where="predict: targets")
        elif "tokens" in self.spec.law.columns_needed:
            self._warn_tokens_outside(targets, families)
        if kind == "law":
            fraction = None
        elif schedule_law or "run_tokens" in targets.columns or "run" in targets.columns:
            fraction = run_fractions(targets, self.spec.law)
        else:
            fraction = np.ones(len(targets))
        index, targets = targets.index, targets.reset_index(drop=True)
        rng = np.random.default_rng(seed)
        population = self._population(families, rng)  # one draw of a new family, for its theta and noise
        theta, theta_index = self._theta_table(families, population)
        log_loss = _log_mean_draws(self.spec, theta, theta_index, inputs)
        if kind == "law":
            return summarize(np.exp(log_loss), targets.set_axis(index), kind=kind, quantiles=quantiles)

        # the noise of each family once (sample, family[, K]); a row reads its family's column, a chunk of rows
        # at a time (a long curve's rows share a few families: memory stays the draws' own)
        named = {f: i for i, f in enumerate(dict.fromkeys(families))}  # the call's families, in order
        column = np.array([named[f] for f in families], dtype=np.intp)
        noise = self._noise(list(named), rng, population)
        log_params = np.log(targets["params"].to_numpy(dtype=float))
        runs = targets["run"].astype(object).to_numpy() if "run" in targets.columns else [None] * len(targets)
        trained, roots = self._run_rows(), self._target_roots(targets)
        loading, tree_scale = self._target_loading(targets, fraction, roots)
        form_sd = self.form_error_sd(families, log_params, form_error)
        basis = np.asarray(shape_basis(fraction))
        trees: dict[str, list[str]] = {}
        for name, root in self._run_roots().items():
            trees.setdefault(root, []).append(name)
        training = None if all(f"input_{k}" in self.idata.constant_data for k in self.spec.law.inputs) else (
            self.training_rows())  # a schedule law's design is rebuilt from the rows' schedules
        residuals = {}  # per (tree, family): its trained runs' residuals, shared by every target run of the tree
        const_fraction = self.idata.constant_data["fraction"].values if schedule_law else None
        run_cols: dict = {}  # a trained tree's target runs: their rows (positions, ascending)
        for i, run in enumerate(runs):
            if run is not None:
                run_cols.setdefault(run, []).append(i)
        run_cols = {run: np.asarray(cols) for run, cols in run_cols.items() if roots[cols[0]] in trees}
        keys = _row_keys(targets, (*TARGET_KEYS, *self.spec.law.columns_needed))

        def seed_var(c, rows):  # the run offset's prior variance, (sample, row)
            return np.asarray(seed_sd(noise["sigma_seed"][:, c, None], noise["gamma_seed"][:, None],
                                      log_params[rows])) ** 2

        draws = log_loss  # log L, then the draws, filled in place a chunk of rows at a time
        chunk = max(1, PREDICT_ROW_ELEMENTS // draws.shape[0])
        for lo in range(0, len(targets), chunk):
            part = np.arange(lo, min(lo + chunk, len(targets)))
            mean, var = np.zeros((draws.shape[0], len(part))), np.empty((draws.shape[0], len(part)))
            for c in np.unique(column[part]):  # g(x) = sum_k B_k(x) (w_k + v_k (log N - centre)) and the noise
                at = np.flatnonzero(column[part] == c)
                rows = part[at]
                offset = log_params[rows][None, :] - noise["shape_centre"][:, c, None]
                mean[:, at] = (noise["shape"][:, c] @ basis[rows].T
                               + offset * (noise["shape_size"][:, c] @ basis[rows].T))
                var[:, at] = (seed_var(c, rows) * offset_shape(loading[rows], noise["offset_start"][:, c, None]) ** 2
                              + noise["sigma_dev"][:, c, None] ** 2 * np.asarray(bridge_kernel(fraction[rows],
                                                                                            fraction[rows]))
                              + noise["sigma_obs"][:, c, None] ** 2 + form_sd[rows] ** 2)
            for run, cols in run_cols.items():
                here = cols[(cols >= part[0]) & (cols <= part[-1])]
                if not here.size:
                    continue
                j, c = cols[0], column[cols[0]]
                key = (roots[j], families[j])
                if key not in residuals:
                    residuals[key] = self._tree_residuals(theta, theta_index[j], noise, c,
                                                          {r: trained[r] for r in trees[roots[j]]}, training)
                c_mean, c_var = self._condition_on_tree(residuals[key], str(run), fraction[here], loading[here],
                                                        seed_var(c, [j])[:, 0], noise["sigma_dev"][:, c] ** 2,
                                                        scale=float(tree_scale[cols].min()),
                                                        start=noise["offset_start"][:, c])
                at = here - lo
                mean[:, at] += c_mean
                var[:, at] -= c_var
                if schedule_law and str(run) not in trained:
                    # a new branch shares its tree's offset, which carries no misfit of the branch's own schedule:
                    # the law's misfit of a schedule it was not fitted to, sigma_dev, grown along the run as the
                    # offset is (docs/run_likelihood.md, "The law's misfit of a planned schedule")
                    var[:, at] += noise["sigma_dev"][:, c, None] ** 2 * fraction[here] ** 2
                elif schedule_law:
                    var[:, at] += noise["sigma_dev"][:, c, None] ** 2 * in_flight_misfit(
                        fraction[here], float(const_fraction[trained[str(run)]].max()))
            normals = _row_normals(keys[part], seed, draws.shape[0])
            draws[:, part] += mean + np.sqrt(np.maximum(var, 0.0)) * normals
        np.exp(draws, out=draws)
        return summarize(draws, targets.set_axis(index), kind=kind, quantiles=quantiles)

    def _warn_tokens_outside(self, targets: pd.DataFrame, families: list) -> None:
        """Warn, naming the rows, where a target's tokens lie more than :data:`TOKENS_REACH` times outside the
        tokens its family was fitted at (all the fit's rows for a family it has not seen): the band carries
        the law's form error beyond the fitted sizes in N (:meth:`form_error_sd`), none in D."""
        lo, hi = _family_range(self.training_rows().set_index("family")["tokens"], families)
        tokens = targets["tokens"].to_numpy(dtype=float)
        far = np.flatnonzero((tokens > hi * TOKENS_REACH) | (tokens < lo / TOKENS_REACH))
        if far.size:
            i = far[0]
            warnings.warn(f"predict: targets rows {far[:5].tolist()} ask for D = {tokens[i]:.3g} tokens, more than "
                          f"{TOKENS_REACH:g} times outside the fitted tokens ({lo[i]:.3g}..{hi[i]:.3g}): the band "
                          f"carries the law's form error beyond the fitted sizes in N, none in D",
                          ExtrapolationWarning, stacklevel=3)

    def _fitted_ranges(self, families: list):
        """Per target row, the (lo, hi) of model sizes and of peak rates its family was fitted at (all the fit's
        runs for a family it has not seen): where a schedule law's slopes in N and eta were measured."""
        rows = self.training_rows().groupby("run", sort=False).head(1)
        runs = rows.assign(peak_lr=[Schedule.from_json(text).peak_lr for text in rows["schedule"]]).set_index("family")
        return [_family_range(runs[column], families) for column in ("params", "peak_lr")]

    def _target_families(self, targets: pd.DataFrame) -> list:
        """Per target row, its family's name as the fit holds it (text: an int 0 asks for the fit's "0"), or None
        for the population (no family column, or None in it). A family the fit has not seen gets the population's
        forecast, as documented for a new family; a typo would get it silently, so it is warned of, once per
        call, as is a missing (NaN) family, which reads as None. An unpooled fit refuses both (:meth:`_theta`)."""
        if "family" not in targets.columns:
            return [None] * len(targets)
        values = targets["family"].astype(object).to_numpy()
        families = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in values]
        if self.pooling == "none":
            return families
        fitted = set(self.families)
        unseen = sorted({f for f in families if f is not None and f not in fitted})
        blank = targets.index[[v is not None and f is None for v, f in zip(values, families, strict=True)]]
        said = [f"{', '.join(map(repr, unseen))} {'is not a family' if len(unseen) == 1 else 'are not families'} "
                f"of the fit"] if unseen else []
        if len(blank):
            said.append(f"rows {blank[:5].tolist()} have no family (NaN; None asks for the population without "
                        f"this warning)")
        if said:
            warnings.warn(f"predict: targets: {' and '.join(said)} (families: {', '.join(self.families)}): forecast "
                          f"for a new family from the population", NewFamilyWarning, stacklevel=3)
        return families

    def _check_trained_runs(self, targets: pd.DataFrame, families: list) -> None:
        """A target whose ``run`` the fit was trained on is that run (later checkpoints of it are its run in
        flight): of its size and family, else its trained offset would be carried to another model without a
        word. A run name the fit has not seen is a new run."""
        if "run" not in targets.columns:
            return
        runs = targets["run"].astype(object)
        if runs.isna().any():
            rows = targets.index[runs.isna().to_numpy()]
            raise ValueError(f"predict: targets: column 'run' is missing (NaN) at rows {rows[:5].tolist()}; name each "
                             f"row's run, or leave the column out (each row then the final checkpoint of a run of "
                             f"its own)")
        trained = runs.astype(str).isin(set(self.runs)).to_numpy()
        if not trained.any():
            return
        fitted = self.training_rows().groupby("run", sort=False)[["family", "params"]].first()
        rows = np.flatnonzero(trained)
        names = runs.astype(str).to_numpy()[rows]
        params = targets["params"].to_numpy(dtype=float)[rows]
        sizes = fitted["params"].reindex(names).to_numpy(dtype=float)
        own = fitted["family"].astype(object).reindex(names).to_numpy()
        wrong_size = ~np.isclose(params, sizes, rtol=PARENT_RTOL, atol=0.0)
        wrong_family = np.array([f != g for f, g in zip(np.asarray(families, dtype=object)[rows], own, strict=True)])
        for at in np.flatnonzero(wrong_size | wrong_family)[:1]:  # the first offending row, named
            i, run = rows[at], names[at]
            where = f"predict: targets row {targets.index[[i]].tolist()[0]!r}: run {run!r} is a trained run"
            if wrong_size[at]:
                raise ValueError(f"{where} of {sizes[at]:.4g} parameters, the row one of params={params[at]:.4g}: a "
                                 f"trained run's later checkpoints are of its own model; a new run needs a new name")
            raise ValueError(f"{where} of family {own[at]!r}, the row's family is {families[i]!r}: give the "
                             f"run's family, or a new run a new name")

    def _check_parents(self, targets: pd.DataFrame) -> None:
        """Each target run's ``parent_run`` is a trained run it branches from (:func:`check_branch`) or another
        target run: a parent that is neither would leave the branch a run of its own without a word."""
        if "run" not in targets.columns:
            raise ValueError("predict: targets have parent_run but no run column; a branch is a run (name it)")
        firsts = targets[targets["parent_run"].notna()].groupby("run", sort=False).head(1)
        own = set(targets["run"].astype(str))
        schedule_law = self.spec.law.progress == "step"
        for index, row in firsts.iterrows():
            parent, where = str(row["parent_run"]), f"predict: run {row['run']!r} (row {index})"
            if parent in own and parent not in set(self.runs):
                continue  # a branch of a branch among the targets: its tree is the other target's
            schedules = {str(row["run"]): Schedule.from_json(row["schedule"])} if schedule_law else {}
            check_branch(self, parent, float(row["params"]), schedules, where=where)

    def form_error_sd(self, families, log_params, per_efold: float | None = None) -> np.ndarray:
        """sd of log loss that the law's form adds at log N = ``log_params`` (one per target row):
        kappa * Delta, Delta the e-folds of N outside the range of model sizes of the row's family in
        the fit (of all its rows for a family it has not seen), kappa = ``per_efold`` (default
        ``PRIORS["form_error"]``).

        The law is fitted where its runs are; beyond them its form is an assumption the fit cannot test.
        Held out, the next size of a public family is missed by more than the posterior's spread, the
        more the further it lies (docs/calibration.md): parameter uncertainty and seed noise are not
        all of a forecast's error. Zero inside the fitted range, where the law's misfit is in the
        residuals it was fitted to.
        """
        kappa = PRIORS["form_error"] if per_efold is None else float(per_efold)
        if not (np.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"form_error: {kappa} per e-fold of N; need a finite number >= 0")
        lo, hi = _family_range(self._training_log_params(), families)
        log_params = np.asarray(log_params, dtype=float)
        return kappa * (np.maximum(log_params - hi, 0.0) + np.maximum(lo - log_params, 0.0))

    def _run_roots(self) -> dict[str, str]:
        """The root of each trained run's branch tree (runs of one tree share their offset)."""
        const = self.idata.constant_data
        if "run_root" not in const:
            return {run: run for run in self.runs}
        return dict(zip(self.runs, np.asarray(const["run_root"].values).astype(str), strict=True))

    def _target_roots(self, targets: pd.DataFrame) -> np.ndarray:
        """Per target row, the branch tree its run belongs to: a trained run's, or, through ``parent_run``,
        that of the run it branches from (None without a run)."""
        if "run" not in targets.columns:
            return np.full(len(targets), None, dtype=object)
        trained = self._run_roots()
        own = branch_roots(targets) if "parent_run" in targets.columns else None
        out = []
        for run in targets["run"].astype(object):
            run = str(run)
            top = own.get(run, run) if own is not None else run
            out.append(trained.get(run, trained.get(top, top)))
        return np.asarray(out, dtype=object)

    def _target_loading(self, targets: pd.DataFrame, fraction: np.ndarray, roots: np.ndarray):
        """The run offset's loading t on each target row (:func:`~bayeslaw.models.runs.offset_loading`) and
        the factor by which its tree's trained loadings shrink, (row,) each.

        In a trained branch tree, t is the row's progress over the tree's end, the tree taken with the
        target's run in it: a run that outlasts the tree's trained runs (a parent trained only through its
        branches, a run in flight past them) moves the end to its own, so t stays <= 1 and the trained
        runs' loadings shrink by the ratio of the two ends (the offset's prior is its variance at the
        tree's end; a linear trend is not carried past the data at the trained end's scale). A new run
        loads by its fraction; a fit saved before the offset grew along the run by 1 (a constant offset).
        """
        const = self.idata.constant_data
        if "loading" not in const:
            return np.ones(len(targets)), np.ones(len(targets))
        ends = dict(zip(np.asarray(const["run_root"].values).astype(str), const["run_tree_end"].values))
        end = np.array([ends.get(str(root), np.nan) if root is not None else np.nan for root in roots])
        progress = targets[self.spec.law.progress].to_numpy(dtype=float)
        run_end = progress / np.maximum(fraction, 1e-12)
        if "run" in targets.columns:  # a run's end is one number: its largest over its rows
            run_end = pd.Series(run_end).groupby(targets["run"].astype(str).to_numpy()).transform("max").to_numpy()
        in_tree = np.isfinite(end)  # NaN end: not in a trained tree
        whole = np.where(in_tree, np.fmax(end, run_end), 1.0)
        return np.where(in_tree, progress / whole, fraction), np.where(in_tree, end / whole, 1.0)

    def _tree_residuals(self, table, column: int, noise, j: int, tree_rows: dict,
                        training: pd.DataFrame | None) -> dict:
        """Per trained run of a branch tree (``tree_rows``: its rows): its fractions x, the offset's progress
        t, D_r = s_dev^2 K_r + s_obs^2 I in its eigenbasis (:func:`_run_basis`), its residuals e_r from the law
        and shape (sample, n), and D_r^-1 [1, t, e_r] (sample, n, 3), at theta ``table[:, column]`` (``table``
        (sample, F, K)) and the noise of target column ``j``. ``training``: the fit's rows, where the law's
        inputs are rebuilt from them rather than stored.

        D_r^-1 through K_r's eigenbasis, K_r = U diag(lambda) U^T once per run: D_r^-1 = U diag(1 / (s_dev^2
        lambda + s_obs^2)) U^T for every draw, two matrix products over all draws at once rather than a
        factorisation per draw (the run likelihood's own algebra, :class:`~bayeslaw.models.runs.RunMarginal`)."""
        const = self.idata.constant_data
        law = self.spec.law
        # the run's family's at the run's size: the same for every row of one run
        shape = shape_weights({k: noise[k][:, j] for k in ("shape", "shape_size", "shape_centre")},
                              float(const["log_params"].values[next(iter(tree_rows.values()))[0]]))
        dev2, obs2 = noise["sigma_dev"][:, j] ** 2, noise["sigma_obs"][:, j] ** 2
        out = {}
        for name, rows in tree_rows.items():
            if training is None:
                inputs = {k: const[f"input_{k}"].values[rows] for k in law.inputs}
            else:
                inputs = law.columns(training.iloc[rows], where="fit")
            x_obs = const["fraction"].values[rows]
            law_obs = _log_mean_draws(self.spec, table, np.full(len(rows), column), inputs)  # (S, n)
            resid = self.idata.observed_data["obs"].values[rows] - law_obs - np.einsum(
                "nk,sk->sn", np.asarray(shape_basis(x_obs)), shape)
            t_obs = const["loading"].values[rows] if "loading" in const else np.ones(len(rows))
            loads = np.broadcast_to(np.stack([np.ones(len(rows)), t_obs], axis=1), (len(table), len(rows), 2))
            basis = _run_basis(x_obs, dev2, obs2 + JITTER)
            solved = _run_solve(basis, np.concatenate([loads, resid[..., None]], axis=2))
            out[name] = (x_obs, t_obs, basis, resid, solved)
        return out

    @staticmethod
    def _condition_on_tree(residuals: dict, run: str, fraction, progress, a, dev2, scale: float = 1.0, start=None):
        """Conditional mean shift and variance reduction (sample, len(fraction)) of run ``run``'s target rows
        at ``fraction`` (the offset's progress t, ``progress``) given its branch tree's trained runs
        (:meth:`_tree_residuals`), which share its offset u of prior variance ``a`` (sample,); when the run
        itself was trained, also given its own deviation so far (``dev2`` = s_dev^2). ``scale`` multiplies
        the trained runs' progress t_r (:meth:`_target_loading`: a target run past the tree's trained end);
        ``start`` is rho (sample,), the offset's share from a run's start (default 0): every row loads u by
        l = rho + (1 - rho) t (:func:`~bayeslaw.models.runs.offset_shape`).

        The offset's posterior has precision 1/a + sum_r l_r^T D_r^-1 l_r and mean (sum_r l_r^T D_r^-1 e_r)
        / precision. For the run's own deviation, given u: k~ = D^-1 k(x), mean k~^T (e - u l_r), variance
        s_dev^2 k(x, x) - k^T D^-1 k; a target row loads u by its own l.
        """
        rho = np.zeros_like(a) if start is None else np.asarray(start, dtype=float)
        l = offset_shape(np.asarray(progress, dtype=float)[None, :], rho[:, None])

        def loads(part):  # the trained run's l_r and D_r^-1 l_r, (sample, n) each
            t_obs, solved = part[1], part[4]
            return (offset_shape(scale * t_obs[None, :], rho[:, None]),
                    rho[:, None] * solved[..., 0] + (1.0 - rho[:, None]) * scale * solved[..., 1])

        precision, info = 1.0 / a, 0.0
        for part in residuals.values():
            l_r, dl_r = loads(part)
            precision = precision + np.sum(l_r * dl_r, -1)
            info = info + np.sum(dl_r * part[3], -1)  # l_r^T D_r^-1 e_r
        u_mean, u_var = info / precision, 1.0 / precision
        if run not in residuals:
            return u_mean[:, None] * l, (a - u_var)[:, None] * l**2
        x_obs, _, (vectors, inverse), _, solved = residuals[run]
        _, dl_obs = loads(residuals[run])
        # k = s_dev^2 k(x, x_obs) (sample, t, n) is one (t, n) matrix times a scale per draw, so each k^T D^-1 v
        # is a product with the run's D^-1 v (solved already), and k^T D^-1 k a sum over D's eigenbasis
        kernel = np.asarray(bridge_kernel(fraction[:, None], x_obs[None, :]))  # (t, n)
        weight = l - dev2[:, None] * (dl_obs @ kernel.T)  # l - k~^T l_r
        shift = u_mean[:, None] * weight + dev2[:, None] * (solved[..., 2] @ kernel.T)  # ... + k~^T e_r
        explained = dev2[:, None] ** 2 * (inverse @ ((kernel @ vectors) ** 2).T)  # k^T D^-1 k
        reduction = a[:, None] * l**2 - u_var[:, None] * weight**2 + explained
        return shift, reduction

    # --- diagnostics -----------------------------------------------------------------------
    def diagnostics(self, *, warn: bool = True) -> Diagnostics:
        """r-hat, bulk/tail ESS (ArviZ), divergences, BFMI; a warning with a remedy when they fail: r-hat >
        RHAT_MAX, bulk or tail ESS < ESS_MIN, a divergence, BFMI < 0.3, one chain, or fewer than MIN_DRAWS draws
        per chain (ESS and r-hat are NaN then).

        Over every sampled site (deterministic transforms share their diagnostics).
        """
        posterior = self.idata.posterior
        sampled = self.idata.attrs.get("bayeslaw_sampled_sites")
        sampled = set(sampled.split(",")) if sampled else set(posterior.data_vars)
        # the sampled sites (deterministic ones are functions of them, some constant where they are fixed)
        table = convergence_table(posterior.to_dataset(), [name for name in posterior.data_vars if name in sampled])
        with warnings.catch_warnings():  # 0/0 inside ArviZ's BFMI for a chain whose energy never moved
            warnings.simplefilter("ignore", RuntimeWarning)
            bfmi = az.bfmi(self.idata)
        table = table[[c for c in ("ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd") if c in table.columns]]
        divergences = int(self.idata.sample_stats["diverging"].values.sum())
        bfmi = np.asarray(bfmi.to_dataset()["energy"].values if isinstance(bfmi, xr.DataTree) else bfmi).ravel()
        messages = []
        # NaN, not a crash, where they cannot be computed (a fit of fewer than MIN_DRAWS draws per chain)
        min_ess = {c: float(table[c].min()) if table[c].notna().any() else float("nan")
                   for c in ("ess_bulk", "ess_tail")}
        draws = posterior.sizes["draw"]
        if draws < MIN_DRAWS:  # every ESS and r-hat is NaN: one message, not one per quantity
            max_rhat = float("nan")
            messages.append(f"{draws} draw(s) per chain: too few draws for ESS and r-hat (they need {MIN_DRAWS} or "
                            f"more per chain); run draws=1000")
        elif posterior.sizes["chain"] < 2:  # ArviZ gives NaN: r-hat compares chains
            max_rhat = float("nan")
            messages.append("one chain: r-hat needs two or more chains to compare; run chains=4")
        else:
            r_hat = table["r_hat"].fillna(np.inf)  # NaN r-hat with several chains: a chain that never moved
            max_rhat = float(r_hat.max()) if len(r_hat) else float("nan")
        if max_rhat > RHAT_MAX:
            worst = r_hat.idxmax()
            messages.append(f"r-hat {max_rhat:.3f} > {RHAT_MAX} (worst: {worst}): chains disagree; run longer "
                            f"(more warmup and draws), or check the data for a family the law cannot fit")
        if draws >= MIN_DRAWS and not len(table):  # no ESS to read: said, not passed
            messages.append("no sampled quantity varies across the draws: the chains never moved; check the data "
                            "and run again")
        elif draws >= MIN_DRAWS:
            # bulk or tail ESS < ESS_MIN: too few effective draws for stable quantiles (unconverged()'s test,
            # which extends a fit; a NaN ESS counts as none, as there)
            ess = table[["ess_bulk", "ess_tail"]].fillna(0.0)
            kind = ess.min().idxmin()
            if ess[kind].min() < ESS_MIN:
                messages.append(f"{kind.removeprefix('ess_')} ESS {ess[kind].min():.0f} < {ESS_MIN} (worst: "
                                f"{ess[kind].idxmin()}): too few effective draws for stable quantiles; run longer "
                                f"(more draws or chains)")
        if divergences > 0:
            accept = float(self.idata.attrs.get("bayeslaw_target_accept", np.nan))
            messages.append(f"{divergences} divergent transition(s) at target_accept {accept:g}: raise it (e.g. "
                            f"0.99-0.995), or thin/cut the data less aggressively if a family has very few points")
        if np.any(bfmi < 0.3):
            messages.append(f"BFMI {np.round(bfmi, 2).tolist()} < 0.3: the energy distribution is poorly explored; "
                            f"consider longer warmup")
        result = Diagnostics(table, divergences, bfmi, max_rhat, min_ess["ess_bulk"], min_ess["ess_tail"], messages,
                             int(self.idata.attrs.get("bayeslaw_extensions", 0)))
        if warn and result.warning:
            warnings.warn("bayeslaw fit diagnostics: " + "; ".join(messages), RuntimeWarning, stacklevel=2)
        return result

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the DataTree to netCDF (h5netcdf) atomically: a temporary file, then a rename."""
        return write_atomic(path, lambda tmp: self.idata.to_netcdf(tmp, engine="h5netcdf"))


def in_flight_misfit(fraction, seen: float):
    """Share of sigma_dev^2 added to the band of a trained run's row at ``fraction`` of its schedule past
    ``seen``, the last fraction it logged: 1 - exp(-2 (x - seen) / ELL), 0 up to ``seen``.

    The run-level likelihood pins a run's deviation to 0 at its end, the end's residual being its offset;
    a run in flight has not logged its end, so its offset is read from the part it ran, and the law's
    misfit of the rest of its schedule (a cooldown it has not finished) is not in it. That misfit starts
    at 0 where the run was last seen and grows as the deviation's Ornstein-Uhlenbeck process does, to
    sigma_dev^2 a correlation length or more past it (docs/run_likelihood.md, "A run in flight")."""
    gap = np.clip(np.asarray(fraction, dtype=float) - seen, 0.0, None)
    return -np.expm1(-2.0 * gap / ELL)


#: how far a branch's size and learning rate may lie from its parent run's (relative): a branch continues its
#: parent's model at its parent's rate, so a larger gap is another run, whose offset the parent's is not
PARENT_RTOL = 0.01


def shared_steps(schedule: Schedule) -> int:
    """The steps a branch shares with its parent run: up to where its own schedule departs (the step before
    ``decay_start``, the first step at the decayed rate, of a WSD or two-stage schedule; the transition's start
    of a wsd_two_stage one, the last step at the peak), else its warmup."""
    if schedule.shape == "wsd_two_stage":
        return int(schedule.transition_start)
    if schedule.shape in ("wsd", "two_stage"):
        return int(schedule.decay_start) - 1
    return int(schedule.warmup_steps)


def check_branch(fit: Fit, parent_run: str, params: float, schedules, *, where: str = "parent_run") -> None:
    """A branch is its trained parent run continued: the parent must be a run of ``fit``, of the branch's size
    and, for the ``schedules`` (name -> :class:`Schedule`) of a schedule law, at the parent's learning rate
    over the steps the branch shares with it (:func:`shared_steps`), within :data:`PARENT_RTOL`."""
    if parent_run not in set(fit.runs):
        raise ValueError(f"{where}: parent_run {parent_run!r} is not a run of the fit ({len(fit.runs)} runs, e.g. "
                         f"{list(fit.runs)[:3]}): a branch needs its trained run")
    rows = fit.training_rows()
    rows = rows[rows["run"] == parent_run]
    size = float(rows["params"].iloc[0])
    if not np.isclose(params, size, rtol=PARENT_RTOL, atol=0.0):
        raise ValueError(f"{where}: parent_run {parent_run!r} is a model of {size:.4g} parameters, the branch one of "
                         f"params={params:.4g} (CLI: --params): a branch continues its parent's model")
    if "schedule" not in rows or not schedules:
        return
    parent = Schedule.from_json(rows["schedule"].iloc[0])
    other = sorted({s.peak_lr for s in schedules.values() if not np.isclose(s.peak_lr, parent.peak_lr, rtol=PARENT_RTOL)})
    if other:
        raise ValueError(f"{where}: parent_run {parent_run!r} trained at peak_lr {parent.peak_lr:g}, the branch's "
                         f"schedule(s) peak at {', '.join(f'{v:g}' for v in other)} (CLI: --peak-lr): a branch continues "
                         f"its parent's rate")
    for name, schedule in schedules.items():
        steps = np.arange(1, shared_steps(schedule) + 1)
        apart = np.flatnonzero(~np.isclose(schedule.lr(steps), parent.lr(steps), rtol=PARENT_RTOL, atol=0.0))
        if apart.size:
            raise ValueError(f"{where}: the branch {name!r} ({schedule.describe()}) leaves its parent_run "
                             f"{parent_run!r} ({parent.describe()}) at step {int(steps[apart[0]])}, before it branches "
                             f"at step {int(steps[-1])}: a branch follows its parent's learning rate up to its "
                             f"branch step")


def shape_weights(noise: dict, log_params):
    """The schedule shape's weights w + v (log N - centre) at log N = ``log_params`` from :meth:`Fit.noise_draws`'s
    ``shape``, ``shape_size`` and ``shape_centre`` (sample, [row,] K); ``log_params`` broadcasts against the rows."""
    offset = np.asarray(log_params, dtype=float) - noise["shape_centre"]
    return noise["shape"] + noise["shape_size"] * offset[..., None]


def load_fit(path: str | os.PathLike) -> Fit:
    """Read a fit written by :meth:`Fit.save`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"fit file {str(path)!r} does not exist")
    try:
        idata = xr.open_datatree(path, engine="h5netcdf").load()
    except (OSError, ValueError) as error:  # a CSV, an empty or truncated file: HDF5's message names no file and
        reason = str(error).splitlines()[0].split(",")[0].strip()  # runs over several lines; its first clause
        raise ValueError(f"{str(path)!r} is not a fit file (a netCDF file written by `bayeslaw fit`, or Fit.save): "
                         f"{reason}") from None
    if not any(str(k).startswith("bayeslaw_") for k in idata.attrs):
        raise ValueError(f"{str(path)!r} is a netCDF file but not a bayeslaw fit (no bayeslaw_* attributes)")
    try:
        fit = Fit(idata)
    except ValueError as error:  # FitConfig's messages name the attribute, not the file (it reads no file)
        raise ValueError(f"{str(path)!r}: {error}") from None
    # the draws are read under whatever law now has the fit's name: one whose sampled coordinates differ
    # (another law registered under that name) would reinterpret them silently
    posterior = idata["posterior"] if "posterior" in idata.children else None
    if posterior is not None and "theta_dim" in posterior.coords:
        stored = [str(v) for v in posterior.coords["theta_dim"].values]
        expected = list(fit.spec.law.sampling.names)
        if stored != expected:
            raise ValueError(f"{str(path)!r}: its draws' sampled coordinates {stored} differ from those of the law "
                             f"registered as {fit.form!r} now {expected}: fitted under another law of that name; "
                             f"register the law it was fitted with")
    return fit
