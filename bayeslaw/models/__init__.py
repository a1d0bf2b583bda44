"""Models stage: scaling laws as NumPyro models, one function per pooling variant.

For rows i (family f, training run r, law inputs such as N_i parameters and D_i tokens, observed loss
y_i in nats per token, x_i = D_i / D_r the fraction of its run):

    log y_ri = log L(theta_f; inputs_ri) + g_f(x_ri) + u_r + d_r(x_ri) + eps_ri

    g_f(x)  = sum_k w_fk (-log x)^k / k!        schedule shape of the family's runs, g_f(1) = 0
    u_r     ~ Normal(0, sigma_seed_f (N_r / 1e8)^(-gamma_seed))    run offset (seed), every run
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
                  L ~ LKJCholesky(2), tau ~ Gamma(10, 10 / s); w_f ~ Normal(w, tau_w) (tau_w a constant);
                  log sigma_seed_f ~ Normal(log sigma_seed, tau_seed) for families with replicated runs,
                  sigma_seed for the others (see ``_seed_scales``).

Sampling coordinates. a and alpha (b and beta) are nearly collinear when N is large (a - alpha log N
with log N ~ 20). The models therefore sample ``a_ref = a - alpha log N_REF`` and
``b_ref = b - beta log D_REF``, the log of each term at a reference size (N_REF = 1e9 parameters,
D_REF = 1e11 tokens), and the exponents as ``log_alpha``, ``log_beta`` (positive by construction, so
more parameters or tokens never raise the loss); e, a, b, alpha, beta are recorded as deterministic sites.

Priors (weakly informative, centred on Besiroglu et al. 2024's refit of Chinchilla, E 1.817,
A 482, B 2085, alpha 0.348, beta 0.366): see :data:`PRIORS`. ``bayeslaw.plots.prior_predictive``
checks that they give losses between ~1.5 and ~10 nats at the scales of the data.

Every variant has the same signature (``seed_scaling``) and site names (``theta``, ``sigma_seed``,
``sigma_obs``, ``sigma_dev``, ``shape``, ``obs``); ``y=None`` samples from the model, so the
same function serves ``Predictive``. ``obs`` is one padded vector per run (see :mod:`bayeslaw.models.runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
import pandas as pd

from bayeslaw.laws import CHINCHILLA, COMPUTE, KAPLAN, KAPLAN_E, SU2024, Law, get_law
from bayeslaw.models.runs import MAX_CHECKPOINTS, SHAPE_DEGREE, RunMarginal, run_basis, run_layout, shape_basis

__all__ = [
    "D_REF",
    "MODELS",
    "N_REF",
    "PARAMETERIZATIONS",
    "SHAPE_DEGREE",
    "PRIORS",
    "THETA",
    "ModelData",
    "Parameterization",
    "get_model",
    "get_parameterization",
    "hierarchical",
    "pooled",
    "prepare",
    "prior_vector",
    "seed_prior",
    "seed_sd",
    "unpooled",
]

CENTERED_MIN_SIZES = 3  # families with at least this many model sizes get a centred theta_f
N_REF = 1e9  # parameters
D_REF = 1e11  # tokens
SEED_N_REF = 1e8  # parameters: sigma_seed is quoted at this size
THETA = ("e", "a_ref", "b_ref", "log_alpha", "log_beta")

#: Prior centre and scale of each sampled parameter (Normal), and the prior mean of the family spread tau (Gamma, see hierarchical).
PRIORS = {
    "center": {"e": float(np.log(1.817)), "a_ref": -1.0, "b_ref": -1.6, "log_alpha": float(np.log(0.35)),
               "log_beta": float(np.log(0.35))},
    "scale": {"e": 0.5, "a_ref": 1.0, "b_ref": 1.0, "log_alpha": 0.4, "log_beta": 0.4},
    "tau": {"e": 0.2, "a_ref": 0.5, "b_ref": 0.5, "log_alpha": 0.3, "log_beta": 0.3},  # prior mean of tau
    "tau_concentration": 10.0,  # Gamma shape of tau's prior (see hierarchical)
    "lkj_concentration": 2.0,
    # LogNormal(log median, sd) of the run-to-run (seed) sd of final log loss at SEED_N_REF: seeds differ
    # by 0.5-1.2% of the loss at 70M-410M (PolyPythias, OLMo reruns; docs/run_likelihood.md)
    "sigma_seed": (0.008, 0.35),
    # sd of log loss per e-fold of N beyond a family's fitted sizes: the law's form error there
    # (Fit.form_error_sd; set from held-out targets of the public families, docs/calibration.md)
    "form_error": 0.025,
    "tau_seed": 0.5,  # prior mean of the family spread of log sigma_seed (Gamma(2), zero-avoiding)
    "gamma_seed": 0.5,  # Normal scale of the size exponent of sigma_seed (seed_scaling="size")
    "sigma_obs": 0.02,  # HalfNormal scale of the checkpoint noise sd of log loss
    "sigma_dev": 0.02,  # HalfNormal scale of the sd of a run's smooth deviation along the run
    "shape": 0.05,  # Normal scale of the population's schedule-shape weights w_k (log loss)
    "tau_shape": 0.02,  # sd of each w_k across families (a constant: see _shape)
}


@dataclass(frozen=True)
class ModelData:
    """Arrays a model reads, built from a table by :func:`prepare`.

    ``family``/``run`` index rows into ``families``/``runs``; ``fraction`` is each row's fraction of its
    run (tokens over the run's ``run_tokens``, default its last checkpoint); ``run_index``/``run_mask``
    (run, checkpoint) list each run's rows by tokens, padded. ``run_family``, ``run_log_params``,
    ``run_points`` (its number of rows) and ``run_replicated`` (another run of its family has the same
    size and token budget) describe each run; ``family_sizes`` counts each family's distinct model
    sizes, ``family_log_params`` and ``family_log_tokens`` are the mean log N and log D of its rows
    (where its data sit). ``form`` names the law and ``inputs`` holds its input columns per row (read
    or derived by ``Law.columns``: e.g. su2024's ``steps``).
    """

    log_params: np.ndarray
    log_tokens: np.ndarray
    fraction: np.ndarray
    family: np.ndarray
    run: np.ndarray
    run_index: np.ndarray
    run_mask: np.ndarray
    run_eigvals: np.ndarray
    run_eigvecs: np.ndarray
    run_family: np.ndarray
    run_log_params: np.ndarray
    run_points: np.ndarray
    run_replicated: np.ndarray
    family_sizes: np.ndarray
    family_log_params: np.ndarray
    family_log_tokens: np.ndarray
    families: tuple[str, ...]
    runs: tuple[str, ...]
    form: str = "chinchilla"
    inputs: Mapping[str, np.ndarray] | None = None

    @property
    def curve_families(self) -> np.ndarray:
        """Per family: is one of its runs seen at two or more checkpoints? Only then do its data tell the
        checkpoint noise, the deviation along a run and the schedule shape apart from the run offsets."""
        return np.bincount(self.run_family[self.run_points >= 2], minlength=self.n_families) > 0

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


def run_fractions(df: pd.DataFrame) -> np.ndarray:
    """tokens / the run's final tokens: the ``run_tokens`` column where given, else the run's last checkpoint."""
    tokens = df["tokens"].to_numpy(dtype=float)
    final = (df["run_tokens"].to_numpy(dtype=float) if "run_tokens" in df.columns
             else df.groupby("run")["tokens"].transform("max").to_numpy(dtype=float))
    bad = np.flatnonzero(~(tokens <= final * (1 + 1e-9)))
    if len(bad):
        raise ValueError(f"run_tokens: rows {bad[:5].tolist()} have tokens beyond their run's run_tokens "
                         f"(runs {sorted(set(df['run'].iloc[bad[:5]]))})")
    return tokens / final


def prepare(df: pd.DataFrame, form: str = "chinchilla") -> ModelData:
    """Index a table's families and runs (sorted names) and read the law's inputs, for the models."""
    law = get_parameterization(form).law
    inputs = law.columns(df, where=f"{form} model data")
    families = tuple(sorted(df["family"].unique()))
    runs = tuple(sorted(df["run"].unique()))
    family_index = {f: i for i, f in enumerate(families)}
    run_index = {r: i for i, r in enumerate(runs)}
    per_run = df.groupby("run").agg(family=("family", "first"), params=("params", "first"),
                                    budget=("tokens", "max")).loc[list(runs)]
    if "run_tokens" in df.columns:
        per_run["budget"] = df.groupby("run")["run_tokens"].max().loc[list(runs)]
    # runs of one configuration: same family, same size, same token budget (to 1%): seeds (or reruns)
    per_run["budget"] = np.round(np.log(per_run["budget"].to_numpy(dtype=float)) / 0.01)
    if (df.groupby("run")["family"].nunique() > 1).any():
        raise ValueError("a run belongs to more than one family; run names must be unique across families")
    run = df["run"].map(run_index).to_numpy(dtype=np.int32)
    order = np.lexsort((df["tokens"].to_numpy(dtype=float), run))
    index, mask = run_layout(run, order, len(runs))
    if mask.shape[1] > MAX_CHECKPOINTS:
        longest = runs[int(np.argmax(mask.sum(axis=1)))]
        raise ValueError(f"run {longest!r} has {mask.shape[1]} checkpoints; the run-level likelihood takes at most "
                         f"{MAX_CHECKPOINTS} per run: thin the runs (fit(thin=20), thin_checkpoints)")
    fraction = run_fractions(df)
    eigvals, eigvecs = run_basis(np.where(mask, fraction[index], 1.0), mask)
    return ModelData(
        log_params=np.log(df["params"].to_numpy(dtype=float)),
        log_tokens=np.log(df["tokens"].to_numpy(dtype=float)),
        fraction=fraction,
        family=df["family"].map(family_index).to_numpy(dtype=np.int32),
        run=run,
        run_index=index,
        run_mask=mask,
        run_eigvals=eigvals,
        run_eigvecs=eigvecs,
        run_family=per_run["family"].map(family_index).to_numpy(dtype=np.int32),
        run_log_params=np.log(per_run["params"].to_numpy(dtype=float)),
        run_points=df.groupby("run").size().loc[list(runs)].to_numpy(dtype=np.int32),
        run_replicated=(per_run.groupby(["family", "params", "budget"])["family"].transform("size") >= 2).to_numpy(),
        family_sizes=df.groupby("family")["params"].nunique().loc[list(families)].to_numpy(dtype=np.int32),
        family_log_params=np.log(df["params"].astype(float)).groupby(df["family"]).mean().loc[list(families)].to_numpy(),
        family_log_tokens=np.log(df["tokens"].astype(float)).groupby(df["family"]).mean().loc[list(families)].to_numpy(),
        families=families,
        runs=runs,
        form=law.name,
        inputs=inputs,
    )


def prior_vector(key: str, form: str = "chinchilla") -> np.ndarray:
    """The prior "center", "scale" or "tau" of ``form``'s sampled coordinates, as a vector (``THETA`` order for chinchilla)."""
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
    log N = ``log_params`` (arrays broadcasting; a jax array, which numpy callers wrap in np.asarray)."""
    return sigma_seed * jnp.exp(-gamma_seed * (log_params - np.log(SEED_N_REF)))


def _likelihood(data: ModelData, theta, shape_w, noise: Mapping, y):
    """The run-level likelihood shared by every variant (:mod:`bayeslaw.models.runs`).

    ``shape_w`` (family, K) are the schedule-shape weights; ``noise`` holds sigma_seed, sigma_obs,
    sigma_dev (family,) and gamma_seed.
    """
    mean = (law_log_mean(theta[data.family], data.inputs, data.form)
            + jnp.sum(shape_basis(data.fraction) * shape_w[data.family], axis=-1))
    index, mask = data.run_index, data.run_mask
    sd_seed = seed_sd(noise["sigma_seed"][data.run_family], noise["gamma_seed"], data.run_log_params)
    value = None if y is None else jnp.where(mask, y[index], 0.0)
    marginal = RunMarginal(jnp.where(mask, mean[index], 0.0), data.run_eigvals, data.run_eigvecs, mask, sd_seed**2,
                           noise["sigma_dev"][data.run_family] ** 2, noise["sigma_obs"][data.run_family] ** 2)
    with numpyro.plate("run", data.n_runs):
        numpyro.sample("obs", marginal, obs=value)


def _seed_exponent(seed_scaling: str):
    if seed_scaling == "constant":
        return numpyro.deterministic("gamma_seed", jnp.zeros(()))
    if seed_scaling == "size":
        return numpyro.sample("gamma_seed", dist.Normal(0.0, PRIORS["gamma_seed"]))
    raise ValueError(f"unknown seed_scaling {seed_scaling!r}; use 'constant' or 'size'")


def _curve_noise(data: ModelData) -> dict:
    """sigma_obs, sigma_dev (family,): sampled for the families with curves, 0 for the others (a run seen
    once has one residual: its spread is the run offset's)."""
    curves = np.flatnonzero(data.curve_families)
    sigma_obs = jnp.zeros(data.n_families)
    sigma_dev = jnp.zeros(data.n_families)
    if len(curves):
        with numpyro.plate("curve_family", len(curves)):
            sigma_obs = sigma_obs.at[curves].set(numpyro.sample("sigma_obs_curve", dist.HalfNormal(PRIORS["sigma_obs"])))
            sigma_dev = sigma_dev.at[curves].set(numpyro.sample("sigma_dev_curve", dist.HalfNormal(PRIORS["sigma_dev"])))
    return {"sigma_obs": numpyro.deterministic("sigma_obs", sigma_obs),
            "sigma_dev": numpyro.deterministic("sigma_dev", sigma_dev)}


def _shape(data: ModelData, pooling: str):
    """Schedule-shape weights w (family, K): sampled for the families with curves; the others (whose runs
    all end at x = 1, where g_f = 0) carry the population's (hierarchical, complete) or 0 (none)."""
    scale = PRIORS["shape"]
    curves = np.flatnonzero(data.curve_families)
    if pooling == "complete":
        w = numpyro.sample("shape_shared", dist.Normal(0.0, scale).expand([SHAPE_DEGREE]).to_event(1))
        return numpyro.deterministic("shape", jnp.broadcast_to(w, (data.n_families, SHAPE_DEGREE)))
    if pooling == "hierarchical":
        # w_f = w + tau_w z_f with a constant spread tau_w: with a handful of families the spread is the
        # prior's either way, and learnt it forms a funnel with z_f that multiplies NUTS' tree sizes
        w_pop = numpyro.sample("shape_mu", dist.Normal(0.0, scale).expand([SHAPE_DEGREE]).to_event(1))
        base = jnp.broadcast_to(w_pop, (data.n_families, SHAPE_DEGREE))
        if len(curves):
            with numpyro.plate("curve_family", len(curves)):
                z = numpyro.sample("shape_z", dist.Normal(0.0, 1.0).expand([SHAPE_DEGREE]).to_event(1))
            base = base.at[curves].set(w_pop + PRIORS["tau_shape"] * z)
        return numpyro.deterministic("shape", base)
    base = jnp.zeros((data.n_families, SHAPE_DEGREE))
    if len(curves):
        with numpyro.plate("curve_family", len(curves)):
            base = base.at[curves].set(numpyro.sample("shape_curve", dist.Normal(0.0, scale).expand([SHAPE_DEGREE]).to_event(1)))
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
    the law leave the final losses (a mode at E ~ 1.1 with 4% offsets on OLMo's ladder, measured). So
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
    # zero-avoiding Gamma(2) spread; the replicated families' runs pin their own value: centred
    tau_seed = numpyro.sample("tau_seed", dist.Gamma(2.0, 2.0 / PRIORS["tau_seed"]))
    with numpyro.plate("replicated_family", len(replicated)):
        log_own = numpyro.sample("log_sigma_seed", dist.Normal(jnp.log(shared), tau_seed))
    return numpyro.deterministic("sigma_seed", jnp.full(data.n_families, shared).at[replicated].set(jnp.exp(log_own)))


def _noise(data: ModelData, pooling: str, seed_scaling: str) -> dict:
    return {"sigma_seed": _seed_scales(data, pooling), "gamma_seed": _seed_exponent(seed_scaling), **_curve_noise(data)}


class FamilyFrame(dist.transforms.Transform):
    """theta_f = (e, a_ref, b_ref, log alpha, log beta) -> psi_f = (log L_f, log s_A, log s_B, phi, psi).

    At the family's data (N_f = exp(mean log N) of its rows, D_f likewise) the law is
    L_f = E + T_A + T_B with T_A = A / N_f^alpha, T_B = B / D_f^beta; s_A = alpha T_A and s_B = beta T_B
    are its slopes -dL/dlog N and -dL/dlog D. phi = log((T_A + T_B) / E) weighs the reducible part
    against the irreducible one, psi = log(T_A / T_B) splits the reducible part. The data pin L_f and
    the slopes; phi and psi carry what they leave open. In theta the law's level and exponents trade
    along curved ridges (posterior correlation of a_ref and log alpha -0.97 to -1.0 on OLMo's ladder and
    Chinchilla), and E's scale changes by an order of magnitude between the data-pinned bulk and the
    prior-held corner where E -> 0 with beta -> 0: NUTS needs deep trees and diverges there. Unlike a
    frame with E = L_f - s_A / alpha - s_B / beta, no coordinate here is bounded (E > 0 is built in).
    Measured: docs/run_likelihood.md. ``weight`` (per family, 0 or 1) switches the map off (identity)
    for non-centred families.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, shift_params, shift_tokens, weight):
        self.shift_params, self.shift_tokens, self.weight = shift_params, shift_tokens, weight

    def _forward(self, theta):
        e, a_ref, b_ref, log_alpha, log_beta = (theta[..., i] for i in range(len(THETA)))
        a = a_ref - jnp.exp(log_alpha) * self.shift_params  # log T_A
        b = b_ref - jnp.exp(log_beta) * self.shift_tokens  # log T_B
        reducible = jnp.logaddexp(a, b)
        return jnp.stack([jnp.logaddexp(e, reducible), a + log_alpha, b + log_beta, reducible - e, a - b], axis=-1)

    def _backward(self, phi):
        log_l, log_sa, log_sb, frac, split = (phi[..., i] for i in range(len(THETA)))
        reducible = log_l + jax.nn.log_sigmoid(frac)
        e = log_l + jax.nn.log_sigmoid(-frac)
        a = reducible + jax.nn.log_sigmoid(split)
        b = reducible + jax.nn.log_sigmoid(-split)
        log_alpha, log_beta = log_sa - a, log_sb - b
        return jnp.stack([e, a + jnp.exp(log_alpha) * self.shift_params, b + jnp.exp(log_beta) * self.shift_tokens,
                          log_alpha, log_beta], axis=-1)

    def __call__(self, theta):
        on = jnp.asarray(self.weight)[..., None] > 0.5
        return jnp.where(on, self._forward(theta), theta)

    def _inverse(self, phi):
        on = jnp.asarray(self.weight)[..., None] > 0.5
        return jnp.where(on, self._backward(phi), phi)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        # (e, a_ref, ...) -> (e, log T_A, log T_B, ...) is triangular with a unit diagonal; the rest has
        # |det| = p_E + p_A + p_B = 1 (the softmax weights of L_f's terms): the map keeps volume
        return jnp.zeros(jnp.shape(x)[:-1])

    def tree_flatten(self):
        return (self.shift_params, self.shift_tokens, self.weight), (("shift_params", "shift_tokens", "weight"), {})


def pooled_view(data: ModelData) -> ModelData:
    """``data`` seen as one family (where all its rows sit): the frame of a completely pooled theta."""
    from dataclasses import replace

    return replace(data, family_log_params=np.asarray(data.log_params.mean()),
                   family_log_tokens=np.asarray(data.log_tokens.mean()))


def family_frame(data: ModelData, centered) -> FamilyFrame:
    """The :class:`FamilyFrame` of each family of ``data`` (identity where ``centered`` is 0)."""
    return FamilyFrame(jnp.asarray(data.family_log_params - np.log(N_REF)),
                       jnp.asarray(data.family_log_tokens - np.log(D_REF)), jnp.asarray(centered, dtype=float))


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
    _likelihood(data, theta, _shape(data, "complete"), _noise(data, "complete", seed_scaling), y)


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
    _likelihood(data, theta, _shape(data, "none"), _noise(data, "none", seed_scaling), y)


def hierarchical(data: ModelData, y=None, *, seed_scaling: str = "constant"):
    """Partial pooling: theta_f ~ MVN(mu, diag(tau) L L^T diag(tau)); w_f and log sigma_seed_f shrink toward shared values."""
    spec = get_parameterization(data.form)
    k = len(spec.names)
    mu = numpyro.sample("mu", dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1))
    # Gamma(k, k/s): mean s, zero-avoiding (Chung et al. 2013) and concentrated (k = 10: 90% in 0.5-1.6 s).
    # A handful of families barely inform a spread; where tau wanders toward 0 the centred families
    # below form a funnel with it (Gamma(2): 56 divergences on the demo, Gamma(10): 1; docs/run_likelihood.md).
    k_tau = PRIORS["tau_concentration"]
    tau = numpyro.sample("tau", dist.Gamma(k_tau, k_tau / spec.vector("tau")).to_event(1))
    corr_chol = numpyro.sample("corr_chol", dist.LKJCholesky(k, PRIORS["lkj_concentration"]))
    scale_tril = tau[:, None] * corr_chol
    # A family seen at three or more model sizes pins its own theta_f: centred (in its FamilyFrame, for
    # chinchilla). One seen at one or two sizes leaves a, alpha and e on a ridge that only the population
    # constrains: non-centred, theta_f = mu + scale_tril z_f, so that the ridge and tau form no funnel.
    centered = jnp.asarray(data.family_sizes >= CENTERED_MIN_SIZES, dtype=float)[:, None]
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
    _likelihood(data, theta, _shape(data, "hierarchical"), _noise(data, "hierarchical", seed_scaling), y)


# --- the laws as the models sample them ---------------------------------------------------------
S_REF = 1e4  # optimizer steps: su2024's reference
C_REF = 6.0 * N_REF * D_REF  # FLOPs: the compute law's reference (6 N D at N_REF, D_REF)


@dataclass(frozen=True, eq=False)
class Parameterization:
    """How the models sample one law: the coordinates NUTS moves in, their priors, and the map to the law.

    ``names`` are the sampled coordinates of a family's theta_f; ``priors[name]`` = (centre, scale,
    tau): the Normal prior of the coordinate (of mu in the hierarchy) and the prior mean of its
    spread across families (Gamma(10)). ``to_law(theta)`` gives the law's own parameters (its
    ``theta_names``) from theta (..., K); ``from_law`` inverts it (for starting values). ``frame``,
    optional: (data, centered) -> the Transform a centred family is sampled in (chinchilla's
    :class:`FamilyFrame`).

    Every law is sampled the same way: the level of each power-law term at a reference scale (its log
    loss there, which the data pin) and the log of its exponent, instead of the law's own constants
    (log Nc with alphaN ~ 0.08 puts Nc's log 10 units away from the data and couples it to alphaN
    along a ridge; measured for chinchilla's a and alpha: posterior correlation -0.97 to -1.0).
    """

    law: Law
    names: tuple[str, ...]
    priors: Mapping[str, tuple[float, float, float]]
    to_law: Callable[..., dict]
    from_law: Callable[[Mapping], np.ndarray]
    frame: Callable | None = None

    def vector(self, key: str) -> np.ndarray:
        """Prior "center", "scale" or "tau" per coordinate, in ``names`` order."""
        column = {"center": 0, "scale": 1, "tau": 2}[key]
        return np.array([self.priors[n][column] for n in self.names])

    def log_mean(self, theta, inputs: Mapping):
        """log L at ``inputs`` for theta rows (..., K)."""
        return self.law.log_loss(self.to_law(theta), **inputs)


def _columns(theta, n: int):
    return tuple(theta[..., i] for i in range(n))


def _chinchilla_to_law(theta) -> dict:
    """e, a_ref, b_ref, log alpha, log beta -> e, a = a_ref + alpha log N_REF, b = b_ref + beta log D_REF, alpha, beta."""
    e, a_ref, b_ref, log_alpha, log_beta = _columns(theta, 5)
    alpha, beta = jnp.exp(log_alpha), jnp.exp(log_beta)
    return {"e": e, "a": a_ref + alpha * np.log(N_REF), "b": b_ref + beta * np.log(D_REF), "alpha": alpha, "beta": beta}


def _chinchilla_from_law(t) -> np.ndarray:
    return np.array([t["e"], t["a"] - t["alpha"] * np.log(N_REF), t["b"] - t["beta"] * np.log(D_REF),
                     np.log(t["alpha"]), np.log(t["beta"])], dtype=float)


def _kaplan_to_law(theta) -> dict:
    """[e,] n_ref, d_ref, log alphaN, log alphaD -> [e,] log Nc = log N_REF + n_ref / alphaN, log Dc = log D_REF + d_ref / alphaD.

    n_ref = alphaN log(Nc / N_REF): the log loss of an N_REF model on unlimited data (without E);
    d_ref = alphaD log(Dc / D_REF): of an unlimited model on D_REF tokens.
    """
    *e, n_ref, d_ref, log_alpha_n, log_alpha_d = _columns(theta, theta.shape[-1])
    alpha_n, alpha_d = jnp.exp(log_alpha_n), jnp.exp(log_alpha_d)
    out = {"log_nc": np.log(N_REF) + n_ref / alpha_n, "log_dc": np.log(D_REF) + d_ref / alpha_d,
           "alpha_n": alpha_n, "alpha_d": alpha_d}
    return {"e": e[0], **out} if e else out


def _kaplan_from_law(t) -> np.ndarray:
    core = [t["alpha_n"] * (t["log_nc"] - np.log(N_REF)), t["alpha_d"] * (t["log_dc"] - np.log(D_REF)),
            np.log(t["alpha_n"]), np.log(t["alpha_d"])]
    return np.array(([t["e"]] if "e" in t else []) + core, dtype=float)


def _compute_to_law(theta) -> dict:
    """e, c_ref, log gamma -> e, log C0 = log C_REF + c_ref / gamma, gamma (c_ref: log of the power term at C_REF)."""
    e, c_ref, log_gamma = _columns(theta, 3)
    gamma = jnp.exp(log_gamma)
    return {"e": e, "log_c0": np.log(C_REF) + c_ref / gamma, "gamma": gamma}


def _compute_from_law(t) -> np.ndarray:
    return np.array([t["e"], t["gamma"] * (t["log_c0"] - np.log(C_REF)), np.log(t["gamma"])], dtype=float)


def _su2024_to_law(theta) -> dict:
    """n_ref, s_ref, log alphaN, log alphaS, log B*, log alphaB -> the su2024 law's constants.

    n_ref = alphaN log(Nc / N_REF) = log L_inf(N_REF), the minimum loss of an N_REF model;
    s_ref = alphaS log(Sc / S_REF), the log of the step term after S_REF steps at infinite batch.
    """
    n_ref, s_ref, log_alpha_n, log_alpha_s, log_bstar, log_alpha_b = _columns(theta, 6)
    alpha_n, alpha_s = jnp.exp(log_alpha_n), jnp.exp(log_alpha_s)
    return {"log_nc": np.log(N_REF) + n_ref / alpha_n, "alpha_n": alpha_n, "log_sc": np.log(S_REF) + s_ref / alpha_s,
            "alpha_s": alpha_s, "log_bstar": log_bstar, "alpha_b": jnp.exp(log_alpha_b)}


def _su2024_from_law(t) -> np.ndarray:
    return np.array([t["alpha_n"] * (t["log_nc"] - np.log(N_REF)), t["alpha_s"] * (t["log_sc"] - np.log(S_REF)),
                     np.log(t["alpha_n"]), np.log(t["alpha_s"]), t["log_bstar"], np.log(t["alpha_b"])], dtype=float)


# Priors of the other forms: centred on the published constants (Kaplan et al. 2020's for kaplan and
# su2024, whose values Su et al. re-estimate; a Chinchilla-like E for kaplan_e and compute) with
# scales of a factor ~e on each term's level and ~1.6 on each exponent.
_KAPLAN_PRIORS = {  # Kaplan et al.: Nc 6.4e13, Dc 1.8e13, alphaN 0.076, alphaD 0.103
    "n_ref": (0.076 * np.log(6.4e13 / N_REF), 0.5, 0.2), "d_ref": (0.103 * np.log(1.8e13 / D_REF), 1.0, 0.3),
    "log_alpha_n": (np.log(0.076), 0.5, 0.3), "log_alpha_d": (np.log(0.103), 0.5, 0.3),
}
_KAPLAN_E_PRIORS = {  # with an irreducible term the power terms are smaller and steeper
    "e": (np.log(1.5), 0.5, 0.2), "n_ref": (np.log(0.6), 1.0, 0.5), "d_ref": (np.log(0.4), 1.0, 0.5),
    "log_alpha_n": (np.log(0.3), 0.5, 0.3), "log_alpha_d": (np.log(0.3), 0.5, 0.3),
}
_COMPUTE_PRIORS = {"e": (np.log(1.8), 0.5, 0.2), "c_ref": (np.log(0.5), 1.0, 0.5), "log_gamma": (np.log(0.15), 0.5, 0.3)}
_SU2024_PRIORS = {  # Kaplan et al.'s Nc 8.8e13, alphaN 0.076, Sc 2.1e3, alphaS 0.76, B* 2e8 tokens, alphaB 0.21
    "n_ref": (0.076 * np.log(8.8e13 / N_REF), 0.5, 0.2), "s_ref": (0.76 * np.log(2.1e3 / S_REF), 1.0, 0.5),
    "log_alpha_n": (np.log(0.076), 0.5, 0.3), "log_alpha_s": (np.log(0.76), 0.5, 0.3),
    "log_bstar": (np.log(2e8), 1.5, 0.5), "log_alpha_b": (np.log(0.21), 0.5, 0.3),
}

PARAMETERIZATIONS: dict[str, Parameterization] = {
    "chinchilla": Parameterization(
        CHINCHILLA, THETA, {n: (PRIORS["center"][n], PRIORS["scale"][n], PRIORS["tau"][n]) for n in THETA},
        _chinchilla_to_law, _chinchilla_from_law, frame=family_frame),
    "kaplan": Parameterization(KAPLAN, tuple(_KAPLAN_PRIORS), _KAPLAN_PRIORS, _kaplan_to_law, _kaplan_from_law),
    "kaplan_e": Parameterization(KAPLAN_E, tuple(_KAPLAN_E_PRIORS), _KAPLAN_E_PRIORS, _kaplan_to_law, _kaplan_from_law),
    "compute": Parameterization(COMPUTE, tuple(_COMPUTE_PRIORS), _COMPUTE_PRIORS, _compute_to_law, _compute_from_law),
    "su2024": Parameterization(SU2024, tuple(_SU2024_PRIORS), _SU2024_PRIORS, _su2024_to_law, _su2024_from_law),
}


def get_parameterization(form: str | Law) -> Parameterization:
    """How the models sample ``form``; a law without a model raises with the ones that have one."""
    name = get_law(form).name
    try:
        return PARAMETERIZATIONS[name]
    except KeyError:
        raise ValueError(f"form {name!r} has no Bayesian model; forms with one: {sorted(PARAMETERIZATIONS)}") from None


MODELS = {"hierarchical": hierarchical, "none": unpooled, "complete": pooled}


def get_model(pooling: str):
    """The model function for ``pooling``; an unknown name lists the valid ones."""
    try:
        return MODELS[pooling]
    except KeyError:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {sorted(MODELS)}") from None
