"""Models stage: scaling laws as NumPyro models, one function per pooling variant.

For rows i (family f, training run r, law inputs such as N_i parameters and D_i tokens, observed loss
y_i in nats per token, x_i = D_i / D_r the fraction of its run):

    log y_ri = log L(theta_f; inputs_ri) + g_f(x_ri) + u_r t_ri + d_r(x_ri) + eps_ri

    g_f(x)  = sum_k w_fk (-log x)^k / k!        schedule shape of the family's runs, g_f(1) = 0
    u_r     ~ Normal(0, sigma_seed_f (N_r / 1e8)^(-gamma_seed))    run offset (seed) at its end, every run
    t_ri                                        the offset's growth along the run: x_ri, runs part as they
                                                train (in a branch tree: tokens over the tree's end); 1,
                                                a constant offset, under a schedule law (_curve_noise)
    d_r     ~ GP(0, sigma_dev_f^2 k)            smooth deviation along the run, pinned to 0 at x = 1
    eps_ri  ~ Normal(0, sigma_obs_f^2)          checkpoint noise

u_r, d_r and eps are marginalised per run in closed form (:mod:`bayeslaw.models.runs`): NUTS moves
only in theta, the noise scales and the shape weights w. The noise is Gaussian in log loss, so a
new run's loss has a finite mean and variance. A family whose runs are each seen at one checkpoint
(final losses) has no sigma_obs, sigma_dev or w of its own: its runs' spread around the law is sigma_seed.

The three variants differ in how families share theta_f (the law's sampled coordinates), the shape
weights w_f and sigma_seed_f, like NumPyro's ``examples/baseball.py``:

``pooled``        (``pooling="complete"``) one theta, one w and one sigma_seed for all families;
``unpooled``      (``pooling="none"``)     each family's from the prior, independently;
``hierarchical``  (``pooling="hierarchical"``) theta_f ~ MVN(mu, diag(tau) L L^T diag(tau)),
                  L ~ LKJCholesky(10) among the law's correlated coordinates (``law.sampling.correlated``;
                  the identity for the rest), tau ~ Gamma(20, 20 / s); w_f ~ Normal(w, tau_w) (tau_w a constant);
                  log sigma_seed_f ~ Normal(log sigma_seed, tau_seed) for families with replicated runs
                  (non-centred, tau_seed ~ Gamma(10, 10 / 0.5)),
                  sigma_seed for the others (see ``_seed_scales``).

Sampling coordinates. a and alpha (b and beta) are nearly collinear when N is large (a - alpha log N
with log N ~ 20). The models therefore sample ``a_ref = a - alpha log N_REF`` and
``b_ref = b - beta log D_REF``, the log of each term at a reference size (N_REF = 1e9 parameters,
D_REF = 1e11 tokens), and the exponents as ``log_alpha``, ``log_beta`` (positive by construction, so
more parameters or tokens never raise the loss); e, a, b, alpha, beta are recorded as deterministic sites.
A family's runs pin its shape plus the law's own curve along them, w_f + c_f(theta_f), rather than
w_f: the models sample that sum ("shape_total") and w_f = total - c_f, the same model (``_shape``).

Priors of each law's coordinates live in its module (``law.sampling``; chinchilla's are weakly
informative around Besiroglu et al. 2024's refit, E 1.817, A 482, B 2085, alpha 0.348, beta 0.366);
those of the noise model and the hierarchy in :data:`PRIORS`. ``bayeslaw.plots.prior_predictive``
checks that they give losses between ~1.5 and ~10 nats at the scales of the data.

Every variant has the same signature (``seed_scaling``) and site names (``theta``, ``sigma_seed``,
``sigma_obs``, ``sigma_dev``, ``shape``, ``obs``); ``y=None`` samples from the model, so the
same function serves ``Predictive``. ``obs`` is one padded vector per run (see :mod:`bayeslaw.models.runs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
import pandas as pd

from bayeslaw.data.runs import branch_roots, replicated_runs
from bayeslaw.data.schedules import run_schedules
from bayeslaw.data.validation import check_branch_families
from bayeslaw.laws import D_REF, LAWS, N_REF, Law, get_law
from bayeslaw.laws.runs import array_module
from bayeslaw.models.runs import (MAX_CHECKPOINTS, SHAPE_DEGREE, RunMarginal, offset_loading, offset_shape, run_basis,
                                  run_layout, shape_basis, shape_projection)

__all__ = [
    "D_REF",
    "MODELS",
    "NEW_FAMILY_SITES",
    "N_REF",
    "PARAMETERIZATIONS",
    "SHAPE_DEGREE",
    "PRIORS",
    "ModelData",
    "centered_families",
    "Parameterization",
    "get_model",
    "get_parameterization",
    "hierarchical",
    "new_family",
    "new_family_sites",
    "offset_shape",
    "pooled",
    "prepare",
    "prior_vector",
    "seed_prior",
    "seed_sd",
    "site_dims",
    "start_values",
    "unpooled",
]

# families with at least this many model sizes get a centred theta_f under a law without a family frame
# (every family is centred in its frame under a law with one: centred_families)
CENTERED_MIN_SIZES = 3
# families with curves at this many sizes or more get a schedule shape that moves with N: at two sizes a
# linear change makes each size's shape its own, and the law's token term is left to its prior
SHAPE_SIZE_MIN_SIZES = 3
SEED_N_REF = 1e8  # parameters: sigma_seed is quoted at this size

#: Priors of what every law shares: the family spread's shape, the noise model and the schedule shape.
#: Each law's own coordinates and priors live in its module (``law.sampling``).
PRIORS = {
    "tau_concentration": 20.0,  # Gamma shape of the prior of tau, the families' spread of theta (_theta_population)
    "tau_seed_concentration": 10.0,  # Gamma shape of the prior of tau_seed (_seed_scales)
    # LKJ(eta) of the families' correlations of theta: a handful of families barely inform the ten
    # correlations, and at eta = 2 the correlation matrix reaches near-singular draws where the centred
    # families' prior is so stiff that NUTS' trajectories blow up (docs/run_likelihood.md, "The mass
    # matrix's floor"); eta = 10 puts 90% of each correlation's prior within +-0.34 (0.58 at eta = 2)
    "lkj_concentration": 10.0,
    # LogNormal(log median, sd) of the run-to-run (seed) sd of final log loss at SEED_N_REF: seeds differ
    # by 0.5-1.2% of the loss at 70M-410M (PolyPythias, OLMo reruns; docs/run_likelihood.md)
    "sigma_seed": (0.008, 0.35),
    # sd of log loss per e-fold of N beyond a family's fitted sizes: the law's form error there
    # (Fit.form_error_sd; set from held-out targets of the public families, docs/calibration.md)
    "form_error": 0.025,
    "tau_seed": 0.5,  # prior mean of the family spread of log sigma_seed (Gamma(tau_seed_concentration), zero-avoiding)
    "gamma_seed": 0.5,  # Normal scale of the size exponent of sigma_seed (seed_scaling="size")
    # a curve family's residual sd along its runs, sigma_curve = sqrt(sigma_obs^2 + sigma_dev^2): Rayleigh
    # with this scale (what HalfNormal(0.02) checkpoint noise and deviation sds would give it), split
    # by dev_share = sigma_dev^2 / sigma_curve^2 ~ Beta(a, a): see _curve_noise
    "sigma_curve": 0.02,
    "dev_share": 2.0,
    # Beta(a, b) of rho, the share of a run's offset already there at its start (loading rho + (1 - rho) t:
    # seeds of one configuration start together, rho near 0; runs that differ in schedule or data start
    # apart, rho near 1), learnt per family with curves; None: rho = 0, every offset grows from 0 (the
    # default: learnt, it costs accuracy on the real held-out targets, docs/run_likelihood.md, "The shape
    # moves with size"; (1, 1) is the setting measured there). A schedule law's fit has rho = 1 whatever
    # this says (_curve_noise)
    "offset_start": None,
    # schedule shapes of the shared families (fitted with wide priors, docs/run_likelihood.md): w_k of
    # -0.09 to 0.14, spread across families 0.035-0.055 per k
    "shape": 0.1,  # Normal scale of the population's schedule-shape weights w_k (log loss)
    "tau_shape": 0.05,  # sd of each w_k across families (a constant: see _shape)
    # Normal scale of each w_k's change per e-fold of N within a family; 0: the shape does not move with N
    # (the default: _shape_size says why; 0.03 is the value measured on the real targets)
    "shape_size": 0.0,
}


def centered_families(data: "ModelData") -> np.ndarray:
    """Per family: is its theta_f sampled centred (the hierarchical model)? Every family under a law with
    a family frame or one that reads the schedule; under another, the families seen at CENTERED_MIN_SIZES
    sizes or more.

    A family at one or two sizes leaves E and A / N^alpha on a ridge only the population constrains. Non-
    centred, theta_f = mu + scale_tril z_f, that ridge is curved in z_f (e and a trade along
    exp(e) + exp(a - alpha log N) = const): the all-families fit with OLMo's ladder seen at one size took
    255-511 leapfrog steps per draw with divergent draws in that corner. The frame's coordinates are the
    level and slopes the family's data pin, and the ridge runs along its remaining coordinates, so it is
    centred there (docs/run_likelihood.md, "Families at one size"). Without a frame, non-centred keeps
    the ridge from forming a funnel with tau.

    A schedule law's curves pin a family's constants at its own sizes and peak rates whatever their
    number (its level to a few tenths of a percent): non-centred, that pinned level is a sum of mu, tau
    and z_f that NUTS must keep constant while each moves (with the slopes' correlations, which
    _theta_population no longer samples, the whole wsd_horizons fit ran 1,023 leapfrog steps a draw; now
    31: docs/run_likelihood.md, "Schedule laws across families")."""
    spec = get_parameterization(data.form)
    if spec.frame is not None or spec.law.sampling.explains_shape:
        return np.ones(data.n_families, dtype=bool)
    return np.asarray(data.family_sizes) >= CENTERED_MIN_SIZES


def curve_families(run_family: np.ndarray, run_points: np.ndarray, n_families: int) -> np.ndarray:
    """Per family: is one of its runs seen at two or more checkpoints? Only then do its data tell the
    checkpoint noise, the deviation along a run and the schedule shape apart from the run offsets."""
    return np.bincount(run_family[run_points >= 2], minlength=n_families) > 0


def sized_curve_families(curves: np.ndarray, family_sizes: np.ndarray) -> np.ndarray:
    """Per family: does its schedule shape move with N (:func:`_shape_size`)? Curves at SHAPE_SIZE_MIN_SIZES
    or more model sizes, which tell how it moves, and the term on (``PRIORS["shape_size"]`` > 0)."""
    return curves & (np.asarray(family_sizes) >= SHAPE_SIZE_MIN_SIZES) & (PRIORS["shape_size"] > 0)


@dataclass(frozen=True)
class ModelData:
    """Arrays a model reads, built from a table by :func:`prepare`.

    ``family``/``run`` index rows into ``families``/``runs``; ``fraction`` is each row's fraction of its
    run (tokens over the run's ``run_tokens``, default its last checkpoint) and ``loading`` the run
    offset's loading on it (:func:`~bayeslaw.models.runs.offset_loading`; ``run_tree_end`` is the end of
    each run's branch tree it is measured against); ``run_index``/``run_mask``
    (run, checkpoint) list each run's rows by tokens, padded. ``run_family``, ``run_log_params``,
    ``run_points`` (its number of rows) and ``run_replicated`` (another run of its family has the same
    size and token budget) describe each run; ``family_sizes`` counts each family's distinct model
    sizes, ``family_log_params`` and ``family_log_tokens`` are the mean log N and log D of its rows
    (where its data sit); ``along_run`` (row, 2K) are the row weights that give the law's own curve along a
    family's runs in the shape basis and its size term (:func:`~bayeslaw.models.runs.shape_projection`). ``form`` names the
    law and ``inputs`` holds its input columns per row (read or derived by ``Law.columns``: e.g. su2024's
    ``steps``). ``run_root`` names the root of each run's branch tree (runs of one tree share an offset:
    :func:`bayeslaw.data.runs.branch_roots`).
    """

    log_params: np.ndarray
    log_tokens: np.ndarray
    fraction: np.ndarray
    loading: np.ndarray
    family: np.ndarray
    run: np.ndarray
    run_index: np.ndarray
    run_mask: np.ndarray
    run_eigvals: np.ndarray
    run_eigvecs: np.ndarray
    run_family: np.ndarray
    run_log_params: np.ndarray
    run_tree_end: np.ndarray
    run_points: np.ndarray
    run_replicated: np.ndarray
    family_sizes: np.ndarray
    family_log_params: np.ndarray
    family_log_tokens: np.ndarray
    along_run: np.ndarray
    families: tuple[str, ...]
    runs: tuple[str, ...]
    form: str = "chinchilla"
    inputs: Mapping[str, np.ndarray] | None = None
    run_root: tuple[str, ...] | None = None

    @property
    def run_before(self) -> np.ndarray | None:
        """(run, run): 1 where run i precedes run j in one branch tree; None where no two runs share a tree."""
        if self.run_root is None:
            return None
        tree = pd.factorize(np.asarray(self.run_root))[0]
        before = (tree[:, None] == tree[None, :]) & np.triu(np.ones((len(tree), len(tree)), dtype=bool), k=1)
        return before.astype(float) if before.any() else None

    @property
    def curve_families(self) -> np.ndarray:
        """Per family: is one of its runs seen at two or more checkpoints? (:func:`curve_families`)"""
        return curve_families(self.run_family, self.run_points, self.n_families)

    @property
    def sized_curve_families(self) -> np.ndarray:
        """Per family: does its schedule shape move with N? (:func:`sized_curve_families`)"""
        return sized_curve_families(self.curve_families, self.family_sizes)

    @property
    def size_offset(self):
        """Each row's log N minus its family's mean log N (``family_log_params``): where the shape's size
        term is 0."""
        return self.log_params - self.family_log_params[self.family]

    @property
    def replicated_families(self) -> np.ndarray:
        """Per family: does it have runs of one configuration (size and token budget), whose spread pins sigma_seed?"""
        return np.bincount(self.run_family[self.run_replicated], minlength=self.n_families) > 0

    @property
    def n_families(self) -> int:
        return len(self.families)

    def per_row(self, values) -> np.ndarray:
        """Padded per-run values (..., run, checkpoint), e.g. draws of ``obs``, as (..., row) in the table's order."""
        values = np.asarray(values)
        out = np.zeros(values.shape[:-2] + (len(self.family),))
        out[..., self.run_index[self.run_mask]] = values[..., self.run_mask]
        return out

    @property
    def n_runs(self) -> int:
        return len(self.runs)


def run_fractions(df: pd.DataFrame, law: Law | None = None) -> np.ndarray:
    """How far along its run each row is: tokens / the run's final tokens (the ``run_tokens`` column where
    given, else the run's last checkpoint); for a law whose progress is ``step`` (it reads the schedule),
    step / the last step of the run's schedule."""
    if law is not None and law.progress == "step":
        steps = df["step"].to_numpy(dtype=float)
        if "run" in df.columns:
            total = df["run"].map({run: s.total_steps for run, s in run_schedules(df).items()})
        else:  # each row a checkpoint of a run of its own schedule: keyed by the schedule itself
            total = df["schedule"].map({text: s.total_steps
                                        for text, s in run_schedules(df.assign(run=df["schedule"])).items()})
        total = total.to_numpy(dtype=float)
        bad = np.flatnonzero(~((steps >= 1) & (steps <= total)))
        if len(bad):
            runs = f"; runs {sorted(set(df['run'].iloc[bad[:5]]))}" if "run" in df.columns else ""
            raise ValueError(f"step: rows {df.index[bad[:5]].tolist()} lie outside their run's schedule (steps 1 to its "
                             f"total_steps{runs})")
        return steps / total
    tokens = df["tokens"].to_numpy(dtype=float)
    # rows are named by the table's own labels, runs where the table has them (run_tokens alone is one per row)
    if "run" in df.columns and df["run"].isna().any():
        raise ValueError(f"run: rows {df.index[df['run'].isna().to_numpy()][:5].tolist()} have no run (NaN); a "
                         f"row's fraction of its run needs the run named")
    if "run_tokens" in df.columns:
        final = pd.to_numeric(df["run_tokens"], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isfinite(final) & (final > 0)))
        if len(bad):
            raise ValueError(f"run_tokens: rows {df.index[bad[:5]].tolist()} have missing, non-positive or "
                             f"non-finite values ({', '.join(repr(v) for v in df['run_tokens'].iloc[bad[:3]])}); "
                             f"a run's final tokens, at or above its rows' tokens")
    elif "run" in df.columns:
        final = df.groupby("run")["tokens"].transform("max").to_numpy(dtype=float)
    else:
        raise ValueError("run_tokens: a row's fraction of its run needs a run column or a run_tokens column")
    bad = np.flatnonzero(~(tokens <= final * (1 + 1e-9)))
    if len(bad):
        runs = f" (runs {sorted(set(df['run'].iloc[bad[:5]]))})" if "run" in df.columns else ""
        raise ValueError(f"run_tokens: rows {df.index[bad[:5]].tolist()} have tokens beyond their run's "
                         f"run_tokens{runs}: a run's final tokens are at or above its checkpoints'")
    return tokens / final


def prepare(df: pd.DataFrame, form: str = "chinchilla") -> ModelData:
    """Index a table's families and runs (sorted names) and read the law's inputs, for the models."""
    law = get_parameterization(form).law
    inputs = law.columns(df, where=f"{form} model data")
    families = tuple(sorted(df["family"].unique()))
    runs = tuple(sorted(df["run"].unique()))
    family_index = {f: i for i, f in enumerate(families)}
    run_index = {r: i for i, r in enumerate(runs)}

    per_run = df.groupby("run").agg(family=("family", "first"), params=("params", "first")).loc[list(runs)]
    if (df.groupby("run")["family"].nunique() > 1).any():
        raise ValueError("a run belongs to more than one family; run names must be unique across families")
    run = df["run"].map(run_index).to_numpy(dtype=np.int32)
    fraction = run_fractions(df, law)
    order = np.lexsort((fraction, run))
    index, mask = run_layout(run, order, len(runs))
    if mask.shape[1] > MAX_CHECKPOINTS:
        longest = runs[int(np.argmax(mask.sum(axis=1)))]
        raise ValueError(f"run {longest!r} has {mask.shape[1]} checkpoints; the run-level likelihood takes at most "
                         f"{MAX_CHECKPOINTS} per run: thin the runs (fit(thin=20), thin_checkpoints)")
    eigvals, eigvecs = run_basis(np.where(mask, fraction[index], 1.0), mask)
    run_family = per_run["family"].map(family_index).to_numpy(dtype=np.int32)
    run_points = df.groupby("run").size().loc[list(runs)].to_numpy(dtype=np.int32)
    family = df["family"].map(family_index).to_numpy(dtype=np.int32)
    curves = curve_families(run_family, run_points, len(families))
    if "parent_run" in df.columns:
        check_branch_families(df, "the fit's rows")  # a table that skipped validation: a tree is of one family
    roots = branch_roots(df)
    progress = df[law.progress].to_numpy(dtype=float)
    loading, tree_end = offset_loading(progress, fraction, df["run"].map(roots).to_numpy())
    log_params = np.log(df["params"].to_numpy(dtype=float))
    family_log_params = pd.Series(log_params).groupby(family).mean().loc[np.arange(len(families))].to_numpy()
    family_sizes = df.groupby("family")["params"].nunique().loc[list(families)].to_numpy(dtype=np.int32)
    # the size term's columns of the shape projection, where the model samples it (0 elsewhere: the
    # projection is then the shape's alone)
    sized = sized_curve_families(curves, family_sizes)
    size_offset = np.where(sized[family], log_params - family_log_params[family], 0.0)
    return ModelData(
        log_params=log_params,
        log_tokens=np.log(df["tokens"].to_numpy(dtype=float)),
        fraction=fraction,
        loading=loading,
        family=family,
        run=run,
        run_index=index,
        run_mask=mask,
        run_eigvals=eigvals,
        run_eigvecs=eigvecs,
        run_family=run_family,
        run_log_params=np.log(per_run["params"].to_numpy(dtype=float)),
        run_tree_end=pd.Series(tree_end).groupby(run).first().loc[np.arange(len(runs))].to_numpy(),
        run_points=run_points,
        run_replicated=replicated_runs(df).loc[list(runs)].to_numpy(dtype=bool),
        family_sizes=family_sizes,
        family_log_params=family_log_params,
        family_log_tokens=np.log(df["tokens"].astype(float)).groupby(df["family"]).mean().loc[list(families)].to_numpy(),
        along_run=shape_projection(fraction, run, family, curves, loading, size_offset),
        families=families,
        runs=runs,
        form=law.name,
        inputs=inputs,
        run_root=tuple(roots.loc[list(runs)]),
    )


def prior_vector(key: str, form: str = "chinchilla") -> np.ndarray:
    """The prior "center", "scale" or "tau" of ``form``'s sampled coordinates, as a vector (``bayeslaw.laws.chinchilla.THETA`` order for chinchilla)."""
    return get_parameterization(form).vector(key)


def law_log_mean(theta, inputs: Mapping, form: str = "chinchilla"):
    """log L for sampled-coordinate theta rows (..., K) at the law's ``inputs`` (arrays broadcasting against theta[..., 0])."""
    return get_parameterization(form).log_mean(theta, inputs)


def _natural_sites(theta, spec: Parameterization) -> None:
    """Record the law's own parameters (its ``theta_names``: chinchilla's e, a, b, alpha, beta) per family."""
    for name, value in spec.to_law(theta).items():
        numpyro.deterministic(name, value)


def seed_sd(sigma_seed, gamma_seed, log_params):
    """sigma_seed(N) = sigma_seed (N / SEED_N_REF)^-gamma_seed: the sd of a run's offset in log loss, at
    log N = ``log_params`` (arrays broadcasting; numpy for numpy arguments, jax for jax ones)."""
    xp = array_module(sigma_seed, gamma_seed, log_params)
    return sigma_seed * xp.exp(-gamma_seed * (log_params - np.log(SEED_N_REF)))


def _law_mean(data: ModelData, theta):
    """log L of each row under its family's theta (family, K)."""
    return law_log_mean(theta[data.family], data.inputs, data.form)


def _likelihood(data: ModelData, law_mean, shape: tuple, noise: Mapping, y):
    """The run-level likelihood shared by every variant (:mod:`bayeslaw.models.runs`).

    ``law_mean`` is each row's log L, ``shape`` the schedule-shape weights w_f and their change per
    e-fold of N v_f ((family, K) each: a row of size N has w_f + v_f (log N - the family's mean)); ``noise``
    holds sigma_seed, sigma_obs, sigma_dev, offset_start (family,) and gamma_seed.
    """
    shape_w, shape_v = shape
    w = shape_w[data.family] + shape_v[data.family] * data.size_offset[:, None]
    # in jax whether the fractions are the data's own (host arrays) or a batch's (traced, fit_many): the
    # same operations, so that a fit and its batched twin draw alike (tests/test_batched.py)
    mean = law_mean + jnp.sum(shape_basis(jnp.asarray(data.fraction)) * w, axis=-1)
    index, mask = data.run_index, data.run_mask
    sd_seed = seed_sd(noise["sigma_seed"][data.run_family], noise["gamma_seed"], data.run_log_params)
    value = None if y is None else jnp.where(mask, y[index], 0.0)
    loading = offset_shape(data.loading[index], noise["offset_start"][data.run_family][:, None])
    marginal = RunMarginal(jnp.where(mask, mean[index], 0.0), data.run_eigvals, data.run_eigvecs, mask, sd_seed**2,
                           noise["sigma_dev"][data.run_family] ** 2, noise["sigma_obs"][data.run_family] ** 2,
                           data.run_before, loading=jnp.where(mask, loading, 0.0))
    with numpyro.plate("run", data.n_runs):
        numpyro.sample("obs", marginal, obs=value)


def _seed_exponent(seed_scaling: str):
    if seed_scaling == "constant":
        return numpyro.deterministic("gamma_seed", jnp.zeros(()))
    if seed_scaling == "size":
        return numpyro.sample("gamma_seed", dist.Normal(0.0, PRIORS["gamma_seed"]))
    raise ValueError(f"unknown seed_scaling {seed_scaling!r}; use 'constant' or 'size'")


def offset_start_prior() -> dist.Distribution:
    """Prior of rho, the share of a run's offset present at its start: Beta, :data:`PRIORS` (when not None)."""
    return dist.Beta(*PRIORS["offset_start"])


def _curve_noise(data: ModelData) -> dict:
    """sigma_obs, sigma_dev, offset_start (family,): sampled for the families with curves (rho only when
    ``PRIORS["offset_start"]`` is set); for the others (a run seen once has one residual: its spread is
    the run offset's) 0, and rho 0 (an offset that grows along its branch tree, unchanged where every run
    is seen at its end, t = 1).

    Under a schedule law (``explains_shape``) rho is 1: the offset is a constant level along the run. The
    law explains how the loss falls along a run, and its slope late in the run is what a longer schedule
    extrapolates; an offset that grows is a linear trend in t per tree, which on single-seed runs takes
    part of that slope and leaves the law's level off where the runs end (docs/run_likelihood.md,
    "Branch trees and schedule laws").

    Sampled as the total sd along a run and its split,
        sigma_curve ~ Rayleigh(s),  dev_share ~ Beta(a, a),
        sigma_dev = sigma_curve sqrt(dev_share),  sigma_obs = sigma_curve sqrt(1 - dev_share).
    On thinned, log-spaced checkpoints the deviation (correlation length 0.2 of the run) is nearly white
    too, so the data pin sigma_obs^2 + sigma_dev^2 and barely the split: in (log sigma_obs, log sigma_dev)
    that is a curved ridge whose ends run to -infinity, where NUTS diverged. In (sigma_curve, dev_share)
    the ridge is a coordinate. Independent HalfNormal(s) sds are exactly this with a = 1/2 (arcsine mass
    at both ends); a = 2 keeps the split off its ends, where the model drops one of its two noise terms
    (docs/run_likelihood.md, "The mass matrix's floor")."""
    curves = np.flatnonzero(data.curve_families)
    sigma_obs = jnp.zeros(data.n_families)
    sigma_dev = jnp.zeros(data.n_families)
    start = jnp.zeros(data.n_families)
    if len(curves):
        with numpyro.plate("curve_family", len(curves)):
            # Rayleigh(s) is Weibull with concentration 2 and scale s sqrt(2)
            total = numpyro.sample("sigma_curve", dist.Weibull(PRIORS["sigma_curve"] * np.sqrt(2.0), 2.0))
            share = numpyro.sample("dev_share_curve", dist.Beta(PRIORS["dev_share"], PRIORS["dev_share"]))
            sigma_obs = sigma_obs.at[curves].set(total * jnp.sqrt(1.0 - share))
            sigma_dev = sigma_dev.at[curves].set(total * jnp.sqrt(share))
            if get_parameterization(data.form).law.sampling.explains_shape:
                start = start.at[curves].set(1.0)
            elif PRIORS["offset_start"] is not None:  # None: every offset grows from 0 (rho = 0)
                start = start.at[curves].set(numpyro.sample("offset_start_curve", offset_start_prior()))
    return {"sigma_obs": numpyro.deterministic("sigma_obs", sigma_obs),
            "sigma_dev": numpyro.deterministic("sigma_dev", sigma_dev),
            "offset_start": numpyro.deterministic("offset_start", start)}


def _shape_prior() -> dist.Distribution:
    """Prior of a set of schedule-shape weights w (K,): Normal(0, PRIORS["shape"]) each."""
    return dist.Normal(0.0, PRIORS["shape"]).expand([SHAPE_DEGREE]).to_event(1)


def law_along_run(data: ModelData, law_mean):
    """(c_f, c'_f) (family, 2K): the law's own curve along family f's runs in the shape basis and in its
    size term (least squares on (-log x)^k / k! and on them times log N - the family's mean, each run's
    multiple of the offset's loading aside; :func:`~bayeslaw.models.runs.shape_projection`), 0 for
    families without curves (c'_f for those seen at one size)."""
    if array_module(law_mean) is np:  # host arrays (a fit's start): no program compiled
        out = np.zeros((data.n_families, data.along_run.shape[1]))
        np.add.at(out, data.family, data.along_run * law_mean[:, None])
        return out
    return jax.ops.segment_sum(data.along_run * law_mean[:, None], data.family, num_segments=data.n_families)


def _shape(data: ModelData, pooling: str, law_mean) -> tuple:
    """The schedule shape's weights w_f and their change per e-fold of N v_f, (family, K) each."""
    if get_parameterization(data.form).law.sampling.explains_shape:
        # the law reads the learning-rate schedule: the mean shape along a run is the law's, and a g_f
        # beside it would explain the same thing (the run deviation d_r keeps the residual wiggles)
        zero = jnp.zeros((data.n_families, SHAPE_DEGREE))
        return numpyro.deterministic("shape", zero), numpyro.deterministic("shape_size", zero)
    along = law_along_run(data, law_mean)
    return (_shape_weights(data, pooling, along[:, :SHAPE_DEGREE]),
            _shape_size(data, pooling, along[:, SHAPE_DEGREE:]))


def _shape_size(data: ModelData, pooling: str, along):
    """v_f (family, K): how family f's schedule shape moves per e-fold of N, sampled for the families with
    curves at three or more sizes (one shared v under complete pooling) when ``PRIORS["shape_size"]`` > 0,
    0 otherwise. Off by default: see below.

    Real runs of different sizes bend differently along the run (a larger model's curve falls more
    steeply); with one shape for every size, a family's checkpoints along the runs pull the law's N term
    off its final losses to explain that (PolyPythias: docs/run_likelihood.md). With v_f each size's
    level along its run is the shape's, and the final losses (x = 1, where g_f = 0) place the law. As
    for w_f, the runs pin v_f + c'_f (``along``, the law's own size term along the runs), which is what
    is sampled ("shape_size_total"), its prior moved by c'_f. Not pooled across families: its prior is
    the spread a size's shape is let move, and a new family's shape does not move with N. On real held-out
    targets it brings PolyPythias' and OLMo's forecasts to the best point fit's accuracy, but on data
    whose shape does not move with N (the demo) v_f is pinned near 0 and its coupling to E through c'_f
    makes NUTS diverge (docs/run_likelihood.md, "The shape moves with size"), so it is not the default."""
    zero = jnp.zeros((data.n_families, SHAPE_DEGREE))
    sized = np.flatnonzero(data.sized_curve_families)
    if not len(sized):
        return numpyro.deterministic("shape_size", zero)
    if pooling == "complete":
        shift = jnp.mean(along[sized], axis=0)
        v = numpyro.sample("shape_size_total", dist.Normal(shift, PRIORS["shape_size"]).to_event(1)) - shift
        return numpyro.deterministic("shape_size", jnp.broadcast_to(v, zero.shape))
    with numpyro.plate("sized_curve_family", len(sized)):
        total = numpyro.sample("shape_size_total", dist.Normal(along[sized], PRIORS["shape_size"]).to_event(1))
    return numpyro.deterministic("shape_size", zero.at[sized].set(total - along[sized]))


def _shape_weights(data: ModelData, pooling: str, along):
    """Schedule-shape weights w (family, K): sampled for the families with curves; the others (whose runs
    all end at x = 1, where g_f = 0) carry the population's (hierarchical, complete) or 0 (none).

    A run's curve pins w_f + c_f, the shape plus the law's own curve along the run (``along``:
    :func:`law_along_run`), not w_f: a steeper token term with a flatter shape fits it as well. So the
    models sample t_f = w_f + c_f ("shape_total") with w_f's prior moved by c_f, t_f ~ Normal(m_f + c_f,
    s), which is w_f ~ Normal(m_f, s) exactly (a shift by a function of theta has a unit Jacobian); NUTS
    then moves along the token term without having to move w_f with it."""
    curves = np.flatnonzero(data.curve_families)
    if pooling == "complete":
        shift = jnp.mean(along[curves], axis=0) if len(curves) else jnp.zeros(SHAPE_DEGREE)
        w = numpyro.sample("shape_total", dist.Normal(shift, PRIORS["shape"]).to_event(1)) - shift
        return numpyro.deterministic("shape", jnp.broadcast_to(w, (data.n_families, SHAPE_DEGREE)))
    if pooling == "hierarchical":
        # w_f ~ Normal(w, tau_w) with a constant spread tau_w: with a handful of families the spread is
        # the prior's either way, and learnt it forms a funnel with w_f
        w_pop = numpyro.sample("shape_mu", _shape_prior())
        center, scale = w_pop, PRIORS["tau_shape"]
        base = jnp.broadcast_to(w_pop, (data.n_families, SHAPE_DEGREE))
    else:
        center, scale = jnp.zeros(SHAPE_DEGREE), PRIORS["shape"]
        base = jnp.zeros((data.n_families, SHAPE_DEGREE))
    if len(curves):
        with numpyro.plate("curve_family", len(curves)):
            total = numpyro.sample("shape_total", dist.Normal(center + along[curves], scale).to_event(1))
        base = base.at[curves].set(total - along[curves])
    return numpyro.deterministic("shape", base)


def seed_prior() -> dist.Distribution:
    """Prior of sigma_seed (the sd of a run's offset in log loss at SEED_N_REF): LogNormal, :data:`PRIORS`."""
    median, spread = PRIORS["sigma_seed"]
    return dist.LogNormal(np.log(median), spread)


def _seed_scales(data: ModelData, pooling: str):
    """sigma_seed per family: shared (complete), one per family (none), or shrunk toward a shared value on
    the log scale (hierarchical).

    Only runs of one configuration (seeds, reruns) measure seed noise; the spread of unreplicated runs
    around the law is the law's misfit as much as seed noise, and an offset per run free to take it lets
    the law leave the final losses (docs/run_likelihood.md, "Run offsets"). So
    the prior is informative (seed spreads are 0.5-1.2% of the loss at 1e8 parameters) and, in the
    hierarchy, a family without replicated runs takes the shared value rather than one of its own.
    """
    if pooling == "none":
        with numpyro.plate("family", data.n_families):
            return numpyro.sample("sigma_seed", seed_prior())
    shared = numpyro.sample("sigma_seed_shared", seed_prior())
    replicated = np.flatnonzero(data.replicated_families)
    if pooling == "complete" or not len(replicated):
        return numpyro.deterministic("sigma_seed", jnp.broadcast_to(shared, (data.n_families,)))
    # The spread's prior is zero-avoiding and concentrated, as tau's is: a handful of families barely
    # inform it. Non-centred: a family's runs pin its log sigma_seed_f only to about 1 / sqrt(2 dof) (0.2-0.3
    # for a dozen replicated runs), no tighter than the spread, and centred the values formed a funnel
    # with the spread and the shared value (divergences at tau_seed -> 0; docs/run_likelihood.md)
    k_tau = PRIORS["tau_seed_concentration"]
    tau_seed = numpyro.sample("tau_seed", dist.Gamma(k_tau, k_tau / PRIORS["tau_seed"]))
    with numpyro.plate("replicated_family", len(replicated)):
        log_own = jnp.log(shared) + tau_seed * numpyro.sample("log_sigma_seed_z", dist.Normal(0.0, 1.0))
    return numpyro.deterministic("sigma_seed", jnp.full(data.n_families, shared).at[replicated].set(jnp.exp(log_own)))


def _noise(data: ModelData, pooling: str, seed_scaling: str) -> dict:
    return {"sigma_seed": _seed_scales(data, pooling), "gamma_seed": _seed_exponent(seed_scaling), **_curve_noise(data)}


def pooled_view(data: ModelData) -> ModelData:
    """``data`` seen as one family (where all its rows sit): the frame of a completely pooled theta."""
    from dataclasses import replace

    def mean(values):  # over the rows the runs hold (a padded table's extra rows are in none: fit_many)
        return jnp.sum(jnp.where(data.run_mask, jnp.asarray(values)[data.run_index], 0.0)) / jnp.sum(data.run_mask)

    return replace(data, family_log_params=mean(data.log_params), family_log_tokens=mean(data.log_tokens))


def pooled(data: ModelData, y=None, *, seed_scaling: str = "constant"):
    """Complete pooling: one theta, one schedule shape and one sigma_seed for every family."""
    spec = get_parameterization(data.form)
    prior = dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1)
    if spec.frame is None:
        theta_shared = numpyro.sample("theta_shared", prior)
    else:  # sampled in the frame of all the data
        frame = spec.frame(pooled_view(data), jnp.ones(()))
        theta_shared = frame.inv(numpyro.sample("theta_shared", dist.TransformedDistribution(prior, frame)))
    theta = numpyro.deterministic("theta", jnp.broadcast_to(theta_shared, (data.n_families, len(spec.names))))
    _natural_sites(theta, spec)
    law_mean = _law_mean(data, theta)
    _likelihood(data, law_mean, _shape(data, "complete", law_mean), _noise(data, "complete", seed_scaling), y)


def unpooled(data: ModelData, y=None, *, seed_scaling: str = "constant"):
    """No pooling: each family's theta, schedule shape and sigma_seed drawn from the prior independently."""
    spec = get_parameterization(data.form)
    prior = dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1)
    with numpyro.plate("family", data.n_families):
        if spec.frame is None:
            theta = numpyro.sample("theta", prior)
        else:  # each family in its own frame
            frame = spec.frame(data, jnp.ones(data.n_families))
            theta = frame.inv(numpyro.sample("theta_raw", dist.TransformedDistribution(prior, frame)))
    theta = numpyro.deterministic("theta", theta) if spec.frame is not None else theta
    _natural_sites(theta, spec)
    law_mean = _law_mean(data, theta)
    _likelihood(data, law_mean, _shape(data, "none", law_mean), _noise(data, "none", seed_scaling), y)


def _theta_population(spec: Parameterization):
    """mu, and the Cholesky factor diag(tau) L of the families' covariance: the hierarchy's population of theta_f."""
    mu = numpyro.sample("mu", dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1))
    # Gamma(k, k/s): mean s, zero-avoiding (Chung et al. 2013) and concentrated (k = 20: 90% in 0.66-1.39 s):
    # a handful of families barely inform a spread, and where tau wanders toward 0 the centred families
    # form a funnel with it (at k = 10, 0.54-1.57 s, the demo's fit diverged once in its neck, tau 5-6
    # posterior sds below its median, at one seed of three; docs/run_likelihood.md, "The mass matrix's floor")
    k_tau = PRIORS["tau_concentration"]
    tau = numpyro.sample("tau", dist.Gamma(k_tau, k_tau / spec.vector("tau")).to_event(1))
    # correlated among the law's constants only (law.sampling.correlated): L is the identity elsewhere,
    # and set into it at the correlated rows and columns it stays lower triangular
    correlated = spec.correlated_index
    corr_chol = numpyro.sample("corr_chol", dist.LKJCholesky(len(correlated), PRIORS["lkj_concentration"]))
    if len(correlated) < len(spec.names):
        corr_chol = jnp.eye(len(spec.names)).at[np.ix_(correlated, correlated)].set(corr_chol)
    return mu, tau[:, None] * corr_chol


def hierarchical(data: ModelData, y=None, *, seed_scaling: str = "constant"):
    """Partial pooling: theta_f ~ MVN(mu, diag(tau) L L^T diag(tau)); w_f and log sigma_seed_f shrink toward shared values."""
    spec = get_parameterization(data.form)
    k = len(spec.names)
    mu, scale_tril = _theta_population(spec)
    # centred where the family's data pin its theta_f, or its frame takes the ridge they leave (centered_families)
    centered = jnp.asarray(centered_families(data), dtype=float)[:, None]
    base = dist.MultivariateNormal(
        centered * mu, scale_tril=centered[..., None] * scale_tril + (1 - centered[..., None]) * jnp.eye(k))
    with numpyro.plate("family", data.n_families):
        if spec.frame is None:
            theta_raw = numpyro.sample("theta_raw", base)
        else:
            frame = spec.frame(data, centered[:, 0])
            theta_raw = frame.inv(numpyro.sample("theta_raw", dist.TransformedDistribution(base, frame)))
    theta = numpyro.deterministic("theta", centered * theta_raw + (1 - centered) * (mu + theta_raw @ scale_tril.T))
    _natural_sites(theta, spec)
    law_mean = _law_mean(data, theta)
    _likelihood(data, law_mean, _shape(data, "hierarchical", law_mean), _noise(data, "hierarchical", seed_scaling), y)


# --- the laws as the models sample them ---------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Parameterization:
    """How the models sample ``law``: its :class:`~bayeslaw.laws.Sampling` (coordinates ``names``,
    ``priors``, ``to_law``, ``from_law``), with the family frame read from :class:`ModelData`."""

    law: Law

    @property
    def names(self) -> tuple[str, ...]:
        return self.law.sampling.names

    @property
    def priors(self) -> Mapping[str, tuple[float, float, float]]:
        return self.law.sampling.priors

    def vector(self, key: str) -> np.ndarray:
        """Prior "center", "scale" or "tau" per coordinate, in ``names`` order."""
        return self.law.sampling.vector(key)

    @property
    def correlated_index(self) -> np.ndarray:
        """Positions in ``names`` of the coordinates whose family spreads are correlated (``corr_chol``'s)."""
        return np.flatnonzero(np.isin(self.names, self.law.sampling.correlated_names))

    def to_law(self, theta) -> dict:
        """The law's own parameters (its ``theta_names``) from sampled coordinates theta (..., K)."""
        return self.law.sampling.to_law(theta)

    def from_law(self, params) -> np.ndarray:
        return self.law.sampling.from_law(params)

    @property
    def frame(self):
        """(data, centered) -> the Transform each family is sampled in, or None (sampled as theta)."""
        frame = self.law.sampling.frame
        if frame is None:
            return None
        return lambda data, centered: frame(data.family_log_params, data.family_log_tokens, centered)

    def log_mean(self, theta, inputs: Mapping):
        """log L at ``inputs`` for theta rows (..., K)."""
        return self.law.log_loss(self.to_law(theta), **inputs)

    @cached_property
    def jitted_log_mean(self):
        """:meth:`log_mean` compiled as one program (run eagerly, each of its operations compiles on its
        own, for every shape of its arguments)."""
        return jax.jit(self.log_mean)

    @cached_property
    def jitted_log_mean_at(self):
        """(table (..., F, K), index (row,), inputs) -> log L of row i at ``table[:, index[i]]``, compiled with its
        gather: a family's theta is read per row inside the program, not copied per row on the host."""
        return jax.jit(lambda table, index, inputs: self.log_mean(jnp.take(table, index, axis=-2), inputs))


@lru_cache(maxsize=None)
def _parameterization(law: Law) -> Parameterization:
    return Parameterization(law)  # one per law: jitted functions are cached on it


def get_parameterization(form: str | Law) -> Parameterization:
    """How the models sample ``form``; a law without a model raises with the ones that have one."""
    law = get_law(form)
    if law.sampling is None:
        raise ValueError(f"form {law.name!r} has no Bayesian model; forms with one: {sorted(PARAMETERIZATIONS)}")
    return _parameterization(law)


class _Parameterizations(Mapping):
    """The registered laws that have a Bayesian model, by name (a live view of ``bayeslaw.laws.LAWS``)."""

    def __getitem__(self, name: str) -> Parameterization:
        law = LAWS[name]
        if law.sampling is None:
            raise KeyError(name)
        return _parameterization(law)

    def __iter__(self) -> Iterator[str]:
        return (name for name, law in LAWS.items() if law.sampling is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


PARAMETERIZATIONS: Mapping[str, Parameterization] = _Parameterizations()


MODELS = {"hierarchical": hierarchical, "none": unpooled, "complete": pooled}


def get_model(pooling: str):
    """The model function for ``pooling``; an unknown name lists the valid ones."""
    try:
        return MODELS[pooling]
    except KeyError:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {sorted(MODELS)}") from None


# --- what each variant owns besides its density: start values, dims, a family it has not seen ----

def start_values(pooling: str, data: ModelData, spec: Parameterization, theta) -> dict:
    """Initial values of every latent site of the ``pooling`` variant, from a starting theta (K,) in sampled
    coordinates: the law's sites at theta (centred families in their frame; non-centred ones at z_f = 0,
    theta_f = mu), every other site at a typical value (NumPyro would draw them uniformly in [-2, 2] on
    the unconstrained scale, i.e. noise sds up to 7 nats, from which a large fit never recovers)."""
    theta = np.asarray(theta, dtype=float)
    if pooling == "complete":
        values = {"theta_shared": (theta if spec.frame is None else
                                   np.asarray(spec.frame(pooled_view(data), np.ones(()))(jnp.asarray(theta))))}
    elif pooling == "none":
        start = np.tile(theta, (data.n_families, 1))
        values = ({"theta": start} if spec.frame is None else
                  {"theta_raw": np.asarray(spec.frame(data, np.ones(data.n_families))(jnp.asarray(start)))})
    else:
        centered = centered_families(data)
        start = np.tile(theta, (data.n_families, 1))
        if spec.frame is not None:
            start = np.asarray(spec.frame(data, centered)(jnp.asarray(start)))
        values = {"mu": theta, "theta_raw": np.where(centered[:, None], start, 0.0)}
    n_f, curves = data.n_families, data.curve_families
    # every w_f at 0: the sampled shape_total is the law's own curve along the runs at the start theta
    law_mean = np.asarray(spec.jitted_log_mean(np.tile(theta, (len(data.family), 1)), data.inputs))
    along = law_along_run(data, law_mean)
    n_c = int(curves.sum())
    sized = np.flatnonzero(data.sized_curve_families)
    sigma_seed = PRIORS["sigma_seed"][0]
    values.update({
        "sigma_seed_shared": sigma_seed,
        "sigma_curve": np.full(n_c, 0.5 * PRIORS["sigma_curve"]),
        "dev_share_curve": np.full(n_c, 0.5),
        "offset_start_curve": np.full(n_c, 0.5),
        # every v_f at 0 likewise: shape_size_total is the law's own size term along the runs
        "shape_size_total": (along[sized, SHAPE_DEGREE:].mean(axis=0) if pooling == "complete" and len(sized) else
                             along[sized, SHAPE_DEGREE:]),
        "gamma_seed": 0.0,  # used only when seed_scaling="size"
        "shape_mu": np.zeros(SHAPE_DEGREE),
        "shape_total": (along[curves, :SHAPE_DEGREE] if pooling != "complete" else
                        along[curves, :SHAPE_DEGREE].mean(axis=0) if n_c else np.zeros(SHAPE_DEGREE)),
    })
    if pooling == "none":
        values["sigma_seed"] = np.full(n_f, sigma_seed)
    if pooling == "hierarchical":
        values.update({"tau": spec.vector("tau"), "corr_chol": np.eye(len(spec.correlated_index)),
                       "tau_seed": PRIORS["tau_seed"],
                       "log_sigma_seed_z": np.zeros(int(data.replicated_families.sum()))})
    return {k: jnp.asarray(v) for k, v in values.items()}


def site_dims(pooling: str, spec: Parameterization) -> dict[str, list[str]]:
    """Named dimensions of each site of the ``pooling`` variant (beyond chain and draw), for the DataTree."""
    family_theta = ["family", "theta_dim"]
    dims = {
        "theta": family_theta, "theta_raw": family_theta,
        **{name: ["family"] for name in spec.law.theta_names},  # the law's own parameters
        "sigma_seed": ["family"], "sigma_obs": ["family"], "sigma_dev": ["family"],
        "offset_start": ["family"],
        "sigma_curve": ["curve_family"], "dev_share_curve": ["curve_family"], "offset_start_curve": ["curve_family"],
        "shape": ["family", "shape_dim"], "shape_total": ["curve_family", "shape_dim"], "shape_mu": ["shape_dim"],
        "shape_size": ["family", "shape_dim"], "shape_size_total": ["sized_curve_family", "shape_dim"],
        "obs": ["run", "checkpoint"],
    }
    if pooling == "hierarchical":
        dims.update({"mu": ["theta_dim"], "tau": ["theta_dim"], "corr_chol": ["corr_dim", "corr_dim_bis"],
                     "log_sigma_seed_z": ["replicated_family"]})
    if pooling == "complete":
        dims.update({"theta_shared": ["theta_dim"], "shape_total": ["shape_dim"], "shape_size_total": ["shape_dim"]})
    return dims


#: The fitted sites a family the fit has not seen depends on, per variant (what :func:`new_family` reads;
#: :func:`new_family_sites` leaves out the schedule shape's under a law that reads the schedule).
NEW_FAMILY_SITES = {
    "hierarchical": ("mu", "tau", "corr_chol", "shape_mu", "sigma_seed_shared"),
    "complete": ("theta", "shape", "sigma_seed_shared"),
    "none": (),
}


def new_family_sites(spec: Parameterization, pooling: str) -> tuple[str, ...]:
    """:data:`NEW_FAMILY_SITES` of ``pooling`` that a fit of ``spec``'s law has: a law that reads the
    schedule has no schedule shape (``_shape``), and a new family's is 0 too."""
    if spec.law.sampling.explains_shape:
        return tuple(name for name in NEW_FAMILY_SITES[pooling] if name not in ("shape_mu", "shape"))
    return NEW_FAMILY_SITES[pooling]


def new_family(spec: Parameterization, pooling: str, n_families: int):
    """A family the fit has not seen, drawn by the model: ``theta_new`` (K,) in sampled coordinates,
    ``shape_new`` (K_shape,) schedule-shape weights and ``sigma_seed_new``.

    Run under ``numpyro.infer.Predictive`` with a fit's draws of :func:`new_family_sites`: the population
    sites are conditioned on them and the new family is drawn from the population (hierarchical: theta
    ~ MVN(mu, diag(tau) L L^T diag(tau)), w ~ Normal(w_pop, tau_w); a new family's runs are unreplicated,
    so its sigma_seed is the shared value), is the one shared law (complete), or comes from the prior (none).
    Under a law that reads the schedule its shape is 0, as a fitted family's is.
    """
    shaped = not spec.law.sampling.explains_shape
    if not shaped:
        numpyro.deterministic("shape_new", jnp.zeros(SHAPE_DEGREE))
    if pooling == "hierarchical":
        mu, scale_tril = _theta_population(spec)
        numpyro.sample("theta_new", dist.MultivariateNormal(mu, scale_tril=scale_tril))
        if shaped:
            w_pop = numpyro.sample("shape_mu", _shape_prior())
            numpyro.sample("shape_new", dist.Normal(w_pop, PRIORS["tau_shape"]).to_event(1))
        numpyro.deterministic("sigma_seed_new", numpyro.sample("sigma_seed_shared", seed_prior()))
    elif pooling == "complete":
        # the fitted families' theta (all equal): read from the draws, never sampled
        fitted = numpyro.sample("theta", dist.ImproperUniform(constraints.real, (), (n_families, len(spec.names))))
        numpyro.deterministic("theta_new", fitted[0])
        if shaped:
            shape = numpyro.sample("shape", dist.ImproperUniform(constraints.real, (), (n_families, SHAPE_DEGREE)))
            numpyro.deterministic("shape_new", shape[0])
        numpyro.deterministic("sigma_seed_new", numpyro.sample("sigma_seed_shared", seed_prior()))
    elif pooling == "none":
        numpyro.sample("theta_new", dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1))
        if shaped:
            numpyro.sample("shape_new", _shape_prior())
        numpyro.sample("sigma_seed_new", seed_prior())
    else:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {sorted(MODELS)}")
