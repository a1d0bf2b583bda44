"""Models stage: the Chinchilla scaling law as NumPyro models, one function per pooling variant.

For rows i (family f, training run r, parameters N_i, tokens D_i, observed loss y_i):

    mean_i   = logsumexp(e_f, a_f - alpha_f log N_i, b_f - beta_f log D_i)     (L = E + A/N^alpha + B/D^beta)
    u_r      ~ Normal(0, sigma_seed_f (N_r / 1e8)^(-gamma_seed))             (run-to-run, "seed" offset, for runs
                                                                              seen at >= 2 checkpoints with a
                                                                              sibling of the same size and budget)
    log y_i  ~ StudentT(nu, mean_i + u_r, sigma_obs_f),  nu > 2              (checkpoint noise, robust to spikes)

The three variants differ only in theta_f = (e, a, b, alpha, beta)_f, like NumPyro's
``examples/baseball.py``:

``pooled``        (``pooling="complete"``) one theta for all families;
``unpooled``      (``pooling="none"``)     each family's theta from the prior, independently;
``hierarchical``  (``pooling="hierarchical"``) theta_f ~ MVN(mu, diag(tau) L L^T diag(tau)),
                  L ~ LKJCholesky(5, 2), tau ~ Gamma(2, 2 / s): families shrink toward shared values,
                  and the five parameters' correlation across families is modelled (centred for
                  families seen at >= 3 sizes, non-centred for the others).

Sampling coordinates. a and alpha (b and beta) are nearly collinear when N is large (a - alpha log N
with log N ~ 20), which makes NUTS slow. The models therefore sample ``a_ref = a - alpha log N_REF``
and ``b_ref = b - beta log D_REF``, the log of each term at a reference size (N_REF = 1e9 parameters,
D_REF = 1e11 tokens), and the exponents as ``log_alpha``, ``log_beta`` (positive by construction, so
more parameters or tokens never raise the loss); e, a, b, alpha, beta are recorded as deterministic sites.

Priors (weakly informative, centred on Besiroglu et al. 2024's refit of Chinchilla, E 1.817,
A 482, B 2085, alpha 0.348, beta 0.366, so that A/N_REF^alpha = 0.36 and B/D_REF^beta = 0.20):
see :data:`PRIORS`. ``bayeslaw.plots.prior_predictive`` (and the test of it) checks that they give
losses between ~1.5 and ~10 nats at the scales of the data.

Every variant has the same signature (``seed_scaling``; ``nu``: None learns the Student-t degrees
of freedom, a number > 2 fixes them) and site names (``theta``, ``sigma_seed``, ``u``, ``sigma_obs``,
``nu``, ``obs``); ``y=None`` samples from the model, so the same function serves ``Predictive``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro import handlers
from numpyro.infer.reparam import LocScaleReparam
import pandas as pd

from bayeslaw.laws import CHINCHILLA, COMPUTE, KAPLAN, KAPLAN_E, SU2024, Law, get_law

__all__ = [
    "D_REF",
    "MODELS",
    "N_REF",
    "PARAMETERIZATIONS",
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
    "seed_sd",
    "unpooled",
]

CENTERED_MIN_POINTS = 3  # runs with at least this many checkpoints get a centred offset u_r
CENTERED_MIN_SIZES = 3  # families with at least this many model sizes get a centred theta_f
N_REF = 1e9  # parameters
D_REF = 1e11  # tokens
SEED_N_REF = 1e8  # parameters: sigma_seed is quoted at this size
NU_MIN = 2.0  # Student-t degrees of freedom are above this: the checkpoint noise has a finite variance
THETA = ("e", "a_ref", "b_ref", "log_alpha", "log_beta")

#: Prior centre and scale of each sampled parameter (Normal), and the prior mean of the family spread tau (Gamma(2)).
PRIORS = {
    "center": {"e": float(np.log(1.817)), "a_ref": -1.0, "b_ref": -1.6, "log_alpha": float(np.log(0.35)),
               "log_beta": float(np.log(0.35))},
    "scale": {"e": 0.5, "a_ref": 1.0, "b_ref": 1.0, "log_alpha": 0.4, "log_beta": 0.4},
    "tau": {"e": 0.2, "a_ref": 0.5, "b_ref": 0.5, "log_alpha": 0.3, "log_beta": 0.3},  # prior mean of tau
    "lkj_concentration": 2.0,
    "sigma_seed": 0.02,  # HalfNormal scale of the run-to-run sd of log loss (2% of loss)
    "tau_seed": 0.5,  # prior mean of the family spread of log sigma_seed (Gamma(2), zero-avoiding like tau)
    "gamma_seed": 0.5,  # Normal scale of the size exponent of sigma_seed (seed_scaling="size")
    "sigma_obs": 0.02,  # HalfNormal scale of the checkpoint noise sd of log loss
    # Student-t degrees of freedom (one for all families): NU_MIN + Gamma(shape, rate) (Juarez & Steel
    # 2010's Gamma(2, 0.1), shifted so that the noise keeps a finite variance; see _likelihood)
    "nu": (2.0, 0.1),
}


@dataclass(frozen=True)
class ModelData:
    """Arrays a model reads, built from a table by :func:`prepare`.

    ``family``/``run`` index rows into ``families``/``runs``; ``run_family``,
    ``run_log_params``, ``run_points`` (its number of rows) and ``run_replicated`` (another run
    of its family has the same size and token budget) describe each run;
    ``family_sizes`` counts each family's distinct model sizes, ``family_log_params`` and
    ``family_log_tokens`` are the mean log N and log D of its rows (where its data sit);
    ``seeded_runs`` lists the runs with an offset u_r. ``form`` names the law and ``inputs`` holds
    its input columns per row (read or derived by ``Law.columns``: e.g. su2024's ``steps``).
    """

    log_params: np.ndarray
    log_tokens: np.ndarray
    family: np.ndarray
    run: np.ndarray
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
    def seeded_runs(self) -> np.ndarray:
        """Indices of the runs that carry an offset u_r: seen at two or more checkpoints, with a sibling run
        of the same configuration (family, size, token budget): another seed or a rerun."""
        return np.flatnonzero((self.run_points >= 2) & self.run_replicated)

    @property
    def seeded_families(self) -> np.ndarray:
        """Per family: does it have a run with an offset (so that the data pin its sigma_seed)?"""
        return np.bincount(self.run_family[self.seeded_runs], minlength=self.n_families) > 0

    @property
    def n_families(self) -> int:
        return len(self.families)

    @property
    def n_runs(self) -> int:
        return len(self.runs)


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
    # runs of one configuration: same family, same size, same token budget (to 1%): seeds (or reruns)
    per_run["budget"] = np.round(np.log(per_run["budget"].to_numpy(dtype=float)) / 0.01)
    if (df.groupby("run")["family"].nunique() > 1).any():
        raise ValueError("a run belongs to more than one family; run names must be unique across families")
    return ModelData(
        log_params=np.log(df["params"].to_numpy(dtype=float)),
        log_tokens=np.log(df["tokens"].to_numpy(dtype=float)),
        family=df["family"].map(family_index).to_numpy(dtype=np.int32),
        run=df["run"].map(run_index).to_numpy(dtype=np.int32),
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


def _likelihood(data: ModelData, theta, sigma_seed_family, gamma_seed, sigma_obs_family, y, nu=None):
    """Run offsets and the Student-t likelihood, shared by every variant (``nu``: a number fixes it)."""
    # One nu for all families, above the floor NU_MIN. A family whose trajectories the law cannot
    # follow (datablations' 8.7B runs sit above their 4.2B siblings until late in their schedule)
    # otherwise drives nu below 1 with sigma_obs collapsing onto the few points the law fits
    # (measured: nu 0.4, NUTS saturating its 1023-step trees); with nu > 2 such points are outliers
    # of a noise of finite variance. One nu, not one per family: a family of 15 final losses says
    # next to nothing about its own tails, and its nu wandered over (2, 60) at ESS 1.
    # A fixed nu (e.g. 2.5) is the other choice: on the shared data the posterior of nu sits at the
    # floor, and its upper tail is a wall (the misfit points' gradients stiffen as nu grows) where
    # NUTS diverges (measured on 11 shared families, 2 x 500: 15 divergences, 14 of 18 in the top
    # 16% of nu; with nu fixed at 2.5, 2).
    if nu is None:
        nu = numpyro.sample("nu", dist.TransformedDistribution(
            dist.Gamma(*PRIORS["nu"]), dist.transforms.AffineTransform(NU_MIN, 1.0)))
    else:
        if not nu > NU_MIN:
            raise ValueError(f"nu={nu}: a fixed Student-t nu must be above NU_MIN={NU_MIN} (finite variance)")
        nu = numpyro.deterministic("nu", jnp.asarray(float(nu)))
    # An offset u_r is told apart from the law only by a sibling run of the same configuration (size
    # and token budget: another seed or a rerun; runs of other budgets differ by their learning-rate
    # schedule, which the law does not model): a run seen at a single checkpoint (Chinchilla's)
    # trades its offset against checkpoint noise, and the only run of its size (T5-Pile's,
    # datablations') trades it against the law's size term. Both are ridges NUTS cannot cross
    # (measured on the shared data: chains settle on different sigma_seed, r-hat > 2), and sampling
    # such offsets from their prior only adds dimensions. Such runs carry no offset: their spread
    # is absorbed by sigma_obs and the law, and sigma_seed is learnt from the replicated runs.
    seeded = data.seeded_runs
    offset = jnp.zeros(data.n_runs)
    if len(seeded):
        run_sd = seed_sd(sigma_seed_family[data.run_family[seeded]], gamma_seed, data.run_log_params[seeded])
        # A run with a trajectory pins its own offset far more tightly than sigma_seed does: sample it
        # centred (non-centred couples it to sigma_seed; slow mixing, measured on the demo). A run with
        # two points says little about its offset: non-centred avoids the funnel.
        centered = jnp.asarray(data.run_points[seeded] >= CENTERED_MIN_POINTS, dtype=float)
        with handlers.reparam(config={"u": LocScaleReparam(centered=centered)}), \
                numpyro.plate("seeded_run", len(seeded)):
            u = numpyro.sample("u", dist.Normal(0.0, run_sd))
        offset = offset.at[seeded].set(u)
    mean = law_log_mean(theta[data.family], data.inputs, data.form) + offset[data.run]
    with numpyro.plate("obs_id", len(data.family)):
        numpyro.sample("obs", dist.StudentT(nu, mean, sigma_obs_family[data.family]), obs=y)


def _seed_exponent(seed_scaling: str):
    if seed_scaling == "constant":
        return numpyro.deterministic("gamma_seed", jnp.zeros(()))
    if seed_scaling == "size":
        return numpyro.sample("gamma_seed", dist.Normal(0.0, PRIORS["gamma_seed"]))
    raise ValueError(f"unknown seed_scaling {seed_scaling!r}; use 'constant' or 'size'")


def _family_noise(data: ModelData, *, shrink: bool):
    """Per-family sigma_seed (shrunk toward a shared one when ``shrink``) and sigma_obs."""
    sigma_seed_shared = numpyro.sample("sigma_seed_shared", dist.HalfNormal(PRIORS["sigma_seed"]))
    with numpyro.plate("family", data.n_families):
        sigma_obs = numpyro.sample("sigma_obs", dist.HalfNormal(PRIORS["sigma_obs"]))
    if shrink:
        # Zero-avoiding Gamma(2, 2 / s), as for tau: the shared data have two families with replicated
        # runs (PolyPythias, the OLMo ladder's reruns), too few to pin a spread, and under a HalfNormal
        # tau_seed sank toward 0 where the centred log sigma_seed_f below forms a funnel (measured on
        # 11 shared families, 4 x 1000 at nu 2.5: the divergent draws sat at tau_seed's 2nd percentile).
        tau_seed = numpyro.sample("tau_seed", dist.Gamma(2.0, 2.0 / PRIORS["tau_seed"]))
        # log sigma_seed_f ~ Normal(log sigma_seed_shared, tau_seed), sampled (centred) only for the
        # families whose replicated runs pin it. For the others nothing in the data touches it: a
        # latent there would be a pure prior draw that NUTS must still traverse (measured on the
        # shared data: ESS 2-4 of those latents in 300 draws). Their sigma_seed is recorded as the
        # population's median, and Fit.predict draws a new run's from the population.
        log_sigma_seed = jnp.full(data.n_families, jnp.log(sigma_seed_shared))
        seeded_families = np.flatnonzero(data.seeded_families)
        if len(seeded_families):
            with numpyro.plate("seeded_family", len(seeded_families)):
                log_sigma_seed_f = numpyro.sample("log_sigma_seed", dist.Normal(jnp.log(sigma_seed_shared), tau_seed))
            log_sigma_seed = log_sigma_seed.at[seeded_families].set(log_sigma_seed_f)
        sigma_seed = numpyro.deterministic("sigma_seed", jnp.exp(log_sigma_seed))
    else:
        sigma_seed = numpyro.deterministic("sigma_seed", jnp.broadcast_to(sigma_seed_shared, (data.n_families,)))
    return sigma_seed, sigma_obs


class FamilyFrame(dist.transforms.Transform):
    """theta_f = (e, a_ref, b_ref, log alpha, log beta) -> the coordinates NUTS samples a centred family in.

    phi_f = (e, a_f* + log alpha, b_f* + log beta, log alpha, log beta), where a_f* and b_f* are
    the log of each term at the family's own data (N_f = exp(mean log N), D_f likewise):
    a_f* = a_ref - alpha log(N_f / N_REF). a_f* + log alpha is the log of the N-term's slope,
    -dL/dlog N, where the family's data sit: what its data pin. In theta's coordinates the level
    a_ref and log alpha trade off along a curved ridge (posterior correlation -0.97 to -1.0 on
    OLMo ladder and Chinchilla, measured), which a mass matrix cannot straighten; in phi it is
    nearly straight (Chinchilla alone, 1 x 300 draws: 67 leapfrog steps and min ESS 131, against
    127 and 37). The map is triangular with a unit diagonal: its Jacobian determinant is 1.
    ``weight`` (per family, 0 or 1) switches the map off (identity) for non-centred families.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, shift_params, shift_tokens, weight):
        self.shift_params, self.shift_tokens, self.weight = shift_params, shift_tokens, weight

    def __call__(self, theta):
        e, a_ref, b_ref, log_alpha, log_beta = (theta[..., i] for i in range(len(THETA)))
        a = a_ref - self.weight * (jnp.exp(log_alpha) * self.shift_params - log_alpha)
        b = b_ref - self.weight * (jnp.exp(log_beta) * self.shift_tokens - log_beta)
        return jnp.stack([e, a, b, log_alpha, log_beta], axis=-1)

    def _inverse(self, phi):
        e, a, b, log_alpha, log_beta = (phi[..., i] for i in range(len(THETA)))
        a_ref = a + self.weight * (jnp.exp(log_alpha) * self.shift_params - log_alpha)
        b_ref = b + self.weight * (jnp.exp(log_beta) * self.shift_tokens - log_beta)
        return jnp.stack([e, a_ref, b_ref, log_alpha, log_beta], axis=-1)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        return jnp.zeros(jnp.shape(x)[:-1])

    def tree_flatten(self):
        return (self.shift_params, self.shift_tokens, self.weight), (("shift_params", "shift_tokens", "weight"), {})


def family_frame(data: ModelData, centered) -> FamilyFrame:
    """The :class:`FamilyFrame` of each family of ``data`` (identity where ``centered`` is 0)."""
    return FamilyFrame(jnp.asarray(data.family_log_params - np.log(N_REF)),
                       jnp.asarray(data.family_log_tokens - np.log(D_REF)), jnp.asarray(centered, dtype=float))


def pooled(data: ModelData, y=None, *, seed_scaling: str = "constant", nu: float | None = None):
    """Complete pooling: one theta for every family; one sigma_seed; sigma_obs per family."""
    spec = get_parameterization(data.form)
    theta_shared = numpyro.sample("theta_shared", dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1))
    theta = numpyro.deterministic("theta", jnp.broadcast_to(theta_shared, (data.n_families, len(spec.names))))
    _natural_sites(theta, spec)
    gamma_seed = _seed_exponent(seed_scaling)
    sigma_seed, sigma_obs = _family_noise(data, shrink=False)
    _likelihood(data, theta, sigma_seed, gamma_seed, sigma_obs, y, nu)


def unpooled(data: ModelData, y=None, *, seed_scaling: str = "constant", nu: float | None = None):
    """No pooling: each family's theta and sigma_seed drawn from the prior independently."""
    spec = get_parameterization(data.form)
    with numpyro.plate("family", data.n_families):
        theta = numpyro.sample("theta", dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1))
        sigma_seed = numpyro.sample("sigma_seed", dist.HalfNormal(PRIORS["sigma_seed"]))
        sigma_obs = numpyro.sample("sigma_obs", dist.HalfNormal(PRIORS["sigma_obs"]))
    _natural_sites(theta, spec)
    gamma_seed = _seed_exponent(seed_scaling)
    _likelihood(data, theta, sigma_seed, gamma_seed, sigma_obs, y, nu)


def hierarchical(data: ModelData, y=None, *, seed_scaling: str = "constant", nu: float | None = None):
    """Partial pooling: theta_f ~ MVN(mu, diag(tau) L L^T diag(tau)); log sigma_seed_f shrinks toward a shared value."""
    spec = get_parameterization(data.form)
    k = len(spec.names)
    mu = numpyro.sample("mu", dist.Normal(spec.vector("center"), spec.vector("scale")).to_event(1))
    # Zero-avoiding Gamma(2, 2/s) (mean s, density 0 at 0; Chung et al. 2013): with a handful of
    # families a HalfNormal lets tau sink toward 0, where the centred theta below forms a funnel
    # that NUTS diverges in (measured on the demo: 71 divergences in 4000 draws).
    tau = numpyro.sample("tau", dist.Gamma(2.0, 2.0 / spec.vector("tau")).to_event(1))
    corr_chol = numpyro.sample("corr_chol", dist.LKJCholesky(k, PRIORS["lkj_concentration"]))
    scale_tril = tau[:, None] * corr_chol
    # A family seen at three or more model sizes pins its own theta_f: sample it centred (non-centred
    # couples it to tau; measured on the demo, 4 x 1000 draws: min bulk ESS 81 non-centred vs 539
    # centred; on the shared data, datablations' three-size families: min ESS 58 centred vs 1.6
    # non-centred in 300 draws). A family seen at one or two sizes leaves a, alpha and e on a ridge
    # that only the population constrains: centred, that ridge and tau form a funnel, so it is
    # sampled non-centred, theta_f = mu + scale_tril z_f.
    # A centred chinchilla family is sampled in its FamilyFrame (the slopes of its terms where its data sit).
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
    gamma_seed = _seed_exponent(seed_scaling)
    sigma_seed, sigma_obs = _family_noise(data, shrink=True)
    _likelihood(data, theta, sigma_seed, gamma_seed, sigma_obs, y, nu)


# --- the laws as the models sample them ---------------------------------------------------------
S_REF = 1e4  # optimizer steps: su2024's reference
C_REF = 6.0 * N_REF * D_REF  # FLOPs: the compute law's reference (6 N D at N_REF, D_REF)


@dataclass(frozen=True, eq=False)
class Parameterization:
    """How the models sample one law: the coordinates NUTS moves in, their priors, and the map to the law.

    ``names`` are the sampled coordinates of a family's theta_f; ``priors[name]`` = (centre, scale,
    tau): the Normal prior of the coordinate (of mu in the hierarchy) and the prior mean of its
    spread across families (Gamma(2)). ``to_law(theta)`` gives the law's own parameters (its
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
        _chinchilla_to_law, _chinchilla_from_law, frame=lambda data, centered: family_frame(data, centered)),
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
