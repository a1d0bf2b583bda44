"""NUTS driver: fit a NumPyro scaling-law model to a table, predict, diagnose, save.

``fit(df)`` returns a :class:`Fit` whose ``idata`` is an ArviZ 1.x ``xarray.DataTree`` with the
groups posterior, sample_stats, observed_data, log_likelihood, posterior_predictive and
constant_data; coordinates are named after the table's families and runs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from numpyro.infer import MCMC, NUTS, Predictive, init_to_value

from bayeslaw.data.files import write_atomic
from bayeslaw.data.split import DEFAULT_MIN_TOKENS, cut_early, thin_checkpoints
from bayeslaw.inference.point import fit_point
from bayeslaw.models import (CENTERED_MIN_SIZES, PRIORS, ModelData, Parameterization, get_model,
                             get_parameterization, prepare, seed_sd)

__all__ = ["Diagnostics", "Fit", "Prediction", "fit", "load_fit", "summarize"]

EXTRA_FIELDS = ("potential_energy", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "diverging")
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
RHAT_MAX = 1.01


def _point_init(df: pd.DataFrame, data: ModelData, pooling: str, spec: Parameterization) -> dict:
    """Initial values from a point fit of all rows: chinchilla's least squares from one start (fast); the
    other forms' Huber fit from their grid (their single-start least squares stops in local minima)."""
    try:
        point = (fit_point(df, method="hitchhiker") if spec.law.name == "chinchilla"
                 else fit_point(df, form=spec.law, method="epoch"))
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
    if pooling == "complete":
        values = {"theta_shared": vector}
    elif pooling == "none":
        values = {"theta": np.tile(vector, (data.n_families, 1))}
    else:
        centered = data.family_sizes >= CENTERED_MIN_SIZES
        # centred families start at the point fit (in their frame); non-centred ones at z_f = 0, theta_f = mu
        start = np.tile(vector, (data.n_families, 1))
        if spec.frame is not None:
            start = np.asarray(spec.frame(data, centered)(jnp.asarray(start)))
        values = {"mu": vector, "theta_raw": np.where(centered[:, None], start, 0.0)}
    # Every other site starts at a typical value too (numpyro would draw them uniformly in [-2, 2] on
    # the unconstrained scale, i.e. noise sds up to 7 nats, from which a large fit never recovers).
    n_f = data.n_families
    values.update({
        "u_decentered": np.zeros(len(data.seeded_runs)),
        "sigma_seed_shared": 0.5 * PRIORS["sigma_seed"],
        "sigma_obs": np.full(n_f, 0.5 * PRIORS["sigma_obs"]),
        "nu": 5.0,
        "gamma_seed": 0.0,  # used only when seed_scaling="size"
    })
    if pooling == "none":
        values["sigma_seed"] = np.full(n_f, 0.5 * PRIORS["sigma_seed"])
    if pooling == "hierarchical":
        values.update({"tau": spec.vector("tau"), "corr_chol": np.eye(len(spec.names)),
                       "tau_seed": 0.5 * PRIORS["tau_seed"],
                       "log_sigma_seed": np.full(int(data.seeded_families.sum()), np.log(0.5 * PRIORS["sigma_seed"]))})
    return {k: jnp.asarray(v) for k, v in values.items()}


def _dims(pooling: str, spec: Parameterization) -> dict[str, list[str]]:
    family_theta = ["family", "theta_dim"]
    dims = {
        "theta": family_theta,
        **{name: ["family"] for name in spec.law.theta_names},  # the law's own parameters
        "sigma_seed": ["family"], "sigma_obs": ["family"],
        "u": ["seeded_run"], "u_decentered": ["seeded_run"],
        "obs": ["obs_id"],
    }
    if pooling == "hierarchical":
        dims.update({"theta_raw": family_theta, "mu": ["theta_dim"], "tau": ["theta_dim"],
                     "corr_chol": ["theta_dim", "theta_dim_bis"], "log_sigma_seed": ["seeded_family"]})
    if pooling == "complete":
        dims["theta_shared"] = ["theta_dim"]
    # constant_data
    dims.update({k: ["obs_id"] for k in ("log_params", "log_tokens", "obs_family", "obs_run", "step",
                                        *(f"input_{name}" for name in spec.law.inputs))})
    dims.update({k: ["run"] for k in ("run_family", "run_log_params", "run_points")})
    dims["family_sizes"] = ["family"]
    return dims


def _constant_data(data: ModelData, rows: pd.DataFrame) -> dict:
    return {
        "log_params": data.log_params,
        "log_tokens": data.log_tokens,
        "obs_family": data.family,
        "obs_run": data.run,
        "run_family": data.run_family,
        "run_log_params": data.run_log_params,
        "run_points": data.run_points,
        "family_sizes": data.family_sizes,
        "step": rows["step"].to_numpy(),
        **{f"input_{name}": np.asarray(values) for name, values in data.inputs.items()},
    }


def fit(
    df: pd.DataFrame,
    form: str = "chinchilla",
    pooling: str = "hierarchical",
    *,
    seed: int = 0,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    min_fraction: float | None = None,
    thin: int | None = 20,
    seed_scaling: str = "constant",
    nu: float | None = None,
    target_accept: float = 0.95,
    chain_method: str | None = None,
    dense_mass: bool = True,
    progress: bool = True,
) -> Fit:
    """Fit a scaling law by NUTS, initialised from the point fit.

    Parameters
    ----------
    df : pandas.DataFrame
        A table in the bayeslaw schema (``family, run, params, tokens, loss`` are read).
    form : str, default "chinchilla"
        The law: ``chinchilla``, ``kaplan``, ``kaplan_e``, ``compute`` or ``su2024`` (which reads
        ``batch_size``, tokens per step, and fits the whole loss curve). Each is sampled with the same
        family hierarchy and seed offsets (see :class:`bayeslaw.models.Parameterization`).
    pooling : {"hierarchical", "none", "complete"}
        Partial pooling across families, none, or one law for all (see :mod:`bayeslaw.models`).
    seed : int
        PRNG seed: equal seeds give identical draws.
    chains, draws, warmup : int
        NUTS chains, kept draws per chain, and warmup iterations per chain.
    min_tokens, min_fraction : float or None
        Early-checkpoint cut (default: drop tokens <= 10B, as the Hitchhiker's Guide).
    thin : int or None, default 20
        Keep about this many log-spaced checkpoints per run (None keeps all).
    seed_scaling : {"constant", "size"}
        Run-to-run sd constant, or sigma_seed (N / 1e8)^-gamma_seed.
    nu : float, optional
        Student-t degrees of freedom of the checkpoint noise: learnt (default, nu = 2 + Gamma(2, 0.1)),
        or fixed at this number (> 2). Fixed (e.g. 2.5) where the learnt nu sits at its floor and
        NUTS diverges at its upper tail (the shared families do: see :mod:`bayeslaw.models`).
    target_accept : float
        NUTS target acceptance probability.
    chain_method : {"parallel", "sequential", "vectorized"}, optional
        Default: "parallel" when JAX sees at least ``chains`` devices, else "sequential".
    dense_mass : bool, default True
        Adapt a dense mass matrix (False: diagonal, cheaper per step for thousands of runs).
    progress : bool
        Progress bar on stderr.
    """
    spec = get_parameterization(form)
    form = spec.law.name
    model = get_model(pooling)
    n_theta = len(spec.names)
    rows = cut_early(df, min_tokens=min_tokens, min_fraction=min_fraction)
    if len(rows) >= n_theta and thin is not None:
        rows = thin_checkpoints(rows, per_run=thin)
    if len(rows) < n_theta:
        raise ValueError(
            f"fit: {len(rows)} row(s) left after the early cut (min_tokens={min_tokens}, "
            f"min_fraction={min_fraction}) of {len(df)}; need at least {n_theta}"
        )
    rows = rows.reset_index(drop=True)
    data = prepare(rows, form)
    y = jnp.log(jnp.asarray(rows["loss"].to_numpy(dtype=float)))
    if chain_method is None:
        chain_method = "parallel" if jax.local_device_count() >= chains else "sequential"
    kernel = NUTS(
        model,
        target_accept_prob=target_accept,
        # dense: each run's offset u_r trades off against its family's intercept (a ridge that a
        # diagonal mass matrix crosses slowly); a few hundred latents keep the dense matrix cheap
        dense_mass=dense_mass,
        init_strategy=init_to_value(values=_point_init(rows, data, pooling, spec)),
    )
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains, chain_method=chain_method,
                progress_bar=progress)
    key_fit, key_ppc = jax.random.split(jax.random.PRNGKey(seed))
    mcmc.run(key_fit, data, y=y, seed_scaling=seed_scaling, nu=nu, extra_fields=EXTRA_FIELDS)
    samples = mcmc.get_samples()
    ppc = Predictive(model, samples, return_sites=["obs"])(key_ppc, data, seed_scaling=seed_scaling, nu=nu)
    ppc = {"obs": np.asarray(ppc["obs"]).reshape(chains, draws, -1)}
    coords = {"family": list(data.families), "run": list(data.runs),
              "seeded_run": [data.runs[i] for i in data.seeded_runs],
              "seeded_family": [f for f, seeded in zip(data.families, data.seeded_families) if seeded],
              "theta_dim": list(spec.names),
              "theta_dim_bis": list(spec.names), "obs_id": np.arange(len(rows))}
    idata = az.from_numpyro(
        mcmc, posterior_predictive=ppc, constant_data=_constant_data(data, rows), log_likelihood=True,
        # pred_dims given: arviz-base 1.3's inference of them fails (numpyro.infer.initialization via a lazy module)
        pred_dims={"obs": ["obs_id"]},
        coords=coords, dims=_dims(pooling, spec),
    )
    idata.attrs.update({
        "bayeslaw_form": form, "bayeslaw_pooling": pooling, "bayeslaw_seed_scaling": seed_scaling,
        "bayeslaw_nu": -1.0 if nu is None else float(nu),
        "bayeslaw_seed": seed, "bayeslaw_min_tokens": -1.0 if min_tokens is None else float(min_tokens),
        "bayeslaw_min_fraction": -1.0 if min_fraction is None else float(min_fraction),
        "bayeslaw_thin": -1 if thin is None else int(thin), "bayeslaw_rows_in": len(df), "bayeslaw_rows_fitted": len(rows),
    })
    return Fit(idata)


@dataclass(frozen=True)
class Prediction:
    """Posterior draws of a quantity per target: ``draws`` (sample x target) and a ``summary`` table
    (the targets with mean, sd and quantiles; loss in nats per token unless ``draws.attrs["units"]`` says)."""

    draws: xr.DataArray
    summary: pd.DataFrame
    kind: str


def summarize(values: np.ndarray, targets: pd.DataFrame, *, kind: str, quantiles=DEFAULT_QUANTILES,
              name: str = "loss", units: str = "nats per token") -> Prediction:
    """A :class:`Prediction` from draws (sample, target) of one quantity for the rows of ``targets``."""
    values = np.asarray(values, dtype=float)
    draws = xr.DataArray(values, dims=("sample", "target"), name=name, attrs={"kind": kind, "units": units})
    summary = targets.reset_index(drop=True).copy()
    with np.errstate(invalid="ignore"):  # inf draws (a loss no run reaches) give an inf mean and a NaN sd
        summary["mean"] = values.mean(axis=0)
        summary["sd"] = values.std(axis=0)
    # inf draws: quantiles without interpolation (between two inf draws linear interpolation gives NaN)
    method = "linear" if np.isfinite(values).all() else "inverted_cdf"
    for q in quantiles:
        summary[f"q{100 * q:g}"] = np.quantile(values, q, axis=0, method=method)
    summary["kind"] = kind
    return Prediction(draws, summary, kind)


@dataclass
class Diagnostics:
    """Convergence diagnostics from ArviZ, with a warning flag and remedies."""

    table: pd.DataFrame
    divergences: int
    bfmi: np.ndarray
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    messages: list[str] = field(default_factory=list)

    @property
    def warning(self) -> bool:
        return bool(self.messages)

    def __str__(self) -> str:
        head = (f"max r-hat {self.max_rhat:.4f}, min bulk ESS {self.min_ess_bulk:.0f}, min tail ESS "
                f"{self.min_ess_tail:.0f}, divergences {self.divergences}, BFMI {np.round(self.bfmi, 2).tolist()}")
        return "\n".join([head, *(f"warning: {m}" for m in self.messages)] or [head])


class Fit:
    """A fitted Bayesian scaling law (see :func:`fit`)."""

    def __init__(self, idata: xr.DataTree):
        self.idata = idata

    # --- what the fit is -------------------------------------------------------------------
    @property
    def pooling(self) -> str:
        return str(self.idata.attrs["bayeslaw_pooling"])

    @property
    def form(self) -> str:
        return str(self.idata.attrs["bayeslaw_form"])

    @property
    def spec(self) -> Parameterization:
        """How the fitted law was sampled (its coordinates and the map to the law's parameters)."""
        return get_parameterization(self.form)

    @property
    def seed_scaling(self) -> str:
        return str(self.idata.attrs["bayeslaw_seed_scaling"])

    @property
    def families(self) -> list[str]:
        return [str(f) for f in self.idata.posterior["family"].values]

    @property
    def runs(self) -> list[str]:
        return [str(r) for r in self.idata.constant_data["run"].values]  # every fitted run; offsets only for seeded_run

    def _draws(self, name: str) -> np.ndarray:
        """Posterior draws of a site, chains stacked: shape (sample, ...)."""
        values = self.idata.posterior[name].values
        return values.reshape(-1, *values.shape[2:])

    def training_rows(self, family: str | None = None) -> pd.DataFrame:
        """The rows the fit was trained on (after its early cut and thinning), rebuilt from its DataTree:
        family, run, params, tokens, step, the law's inputs as fitted (batch_size, flops, ...) and loss
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
        """Posterior mean and 90% interval of the law's parameters (chinchilla: E, A, B, alpha, beta), sigma_seed
        and sigma_obs per family.

        In a hierarchical fit, a family without replicated runs shows the population's median sigma_seed.
        """
        rows = []
        for i, family in enumerate(self.families):
            natural = self.spec.law.natural({n: self._draws(n)[:, i] for n in self.spec.law.theta_names})
            natural.update(sigma_seed=self._draws("sigma_seed")[:, i], sigma_obs=self._draws("sigma_obs")[:, i])
            for name, d in natural.items():
                d = np.asarray(d)
                rows.append({"family": family, "parameter": name, "mean": d.mean(), "q05": np.quantile(d, 0.05),
                             "median": np.median(d), "q95": np.quantile(d, 0.95)})
        return pd.DataFrame(rows)

    # --- prediction ------------------------------------------------------------------------
    def _population_theta(self, rng: np.random.Generator) -> np.ndarray:
        """theta of a family the fit has not seen, per draw: (sample, K)."""
        if self.pooling == "hierarchical":
            mu, tau, chol = self._draws("mu"), self._draws("tau"), self._draws("corr_chol")
            z = rng.standard_normal(mu.shape)
            return mu + tau * np.einsum("sij,sj->si", chol, z)
        if self.pooling == "complete":
            return self._draws("theta_shared")
        return self.spec.vector("center") + self.spec.vector("scale") * rng.standard_normal(
            (self._draws("theta").shape[0], len(self.spec.names)))

    def _theta(self, families, rng: np.random.Generator) -> np.ndarray:
        """Sampled-coordinate theta per draw and target: (sample, target, K); unseen families (or None) from the population."""
        theta_f = self._draws("theta")  # (S, F, K)
        family_pos = {f: i for i, f in enumerate(self.families)}
        population = self._population_theta(rng)
        return np.stack([theta_f[:, family_pos[f]] if f in family_pos else population for f in families], axis=1)

    def law_theta(self, family: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws of the law's own parameters (its ``theta_names``, fitting space) for ``family``,
        each of shape (sample,); a family the fit has not seen (or None) gets the population's draws."""
        theta = self._theta([family], np.random.default_rng(seed))[:, 0]
        return {k: np.asarray(v) for k, v in self.spec.to_law(jnp.asarray(theta)).items()}

    def _population_sigma_seed(self, rng: np.random.Generator) -> np.ndarray:
        if self.pooling == "hierarchical":
            shared, tau_seed = self._draws("sigma_seed_shared"), self._draws("tau_seed")
            return shared * np.exp(tau_seed * rng.standard_normal(shared.shape))
        if self.pooling == "complete":
            return self._draws("sigma_seed_shared")
        return np.abs(rng.normal(0.0, PRIORS["sigma_seed"], self._draws("sigma_seed").shape[0]))

    def _noise_scales(self, families, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """sigma_seed (at SEED_N_REF) and sigma_obs per draw for a new run of each of ``families``: (sample, family).

        A family's own where the fit learnt them; otherwise (hierarchical: a family without replicated runs
        has no sigma_seed of its own, see models; an unseen family or None) the population's sigma_seed, and
        for an unseen family the sigma_obs of a family drawn at random per sample (shared by every unseen one).
        """
        sigma_seed_f, sigma_obs_f = self._draws("sigma_seed"), self._draws("sigma_obs")
        n_samples = sigma_obs_f.shape[0]
        family_pos = {f: i for i, f in enumerate(self.families)}
        pop_seed = self._population_sigma_seed(rng)
        own_seed = (set(family_pos) if self.pooling != "hierarchical" else
                    {str(f) for f in self.idata.posterior["seeded_family"].values}
                    if "log_sigma_seed" in self.idata.posterior else set())
        pop_obs = sigma_obs_f[np.arange(n_samples), rng.integers(0, sigma_obs_f.shape[1], n_samples)]
        sigma_seed = np.stack([sigma_seed_f[:, family_pos[f]] if f in own_seed else pop_seed for f in families], axis=1)
        sigma_obs = np.stack([sigma_obs_f[:, family_pos[f]] if f in family_pos else pop_obs for f in families], axis=1)
        return sigma_seed, sigma_obs

    def predict(
        self,
        targets: pd.DataFrame,
        *,
        kind: str = "new_run",
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        seed: int = 0,
    ) -> Prediction:
        """Posterior predictive loss (nats per token) for each row of ``targets``.

        ``targets`` has ``params`` and the law's other inputs (``tokens``; ``batch_size`` for su2024;
        ``flops`` optional for compute), optionally ``family`` and ``run``.
        ``kind="law"``: the law's loss of that configuration (parameter uncertainty only).
        ``kind="new_run"``: what one new training run shows at that checkpoint: parameter
        uncertainty, a fresh seed offset u ~ Normal(0, sigma_seed(N)), and Student-t checkpoint
        noise. A target whose ``run`` carries a fitted offset (seen at two or more checkpoints, with a
        sibling run of the same size and token budget: see :mod:`bayeslaw.models`) keeps it instead.
        A family the fit has not seen (or no ``family``) gets the population's prediction.
        """
        if kind not in ("law", "new_run"):
            raise ValueError(f"unknown kind {kind!r}; use 'law' or 'new_run'")
        missing = [c for c in ("params", "tokens") if c not in targets.columns]
        if missing:
            raise ValueError(f"predict: targets lack column(s) {missing}")
        targets = targets.reset_index(drop=True)
        inputs = self.spec.law.columns(targets, where="predict: targets")
        rng = np.random.default_rng(seed)
        families = targets["family"] if "family" in targets.columns else pd.Series([None] * len(targets))
        runs = targets["run"] if "run" in targets.columns else pd.Series([None] * len(targets))
        theta = self._theta(families, rng)
        n_samples = theta.shape[0]
        log_params = np.log(inputs["params"] if "params" in inputs else targets["params"].to_numpy(dtype=float))
        log_loss = np.array(self.spec.log_mean(jnp.asarray(theta), {k: jnp.asarray(v) for k, v in inputs.items()}))

        if kind == "new_run":
            gamma = self._draws("gamma_seed")
            nu = self._draws("nu")
            # only runs seen at two or more checkpoints carry a fitted offset
            seeded = ({str(r): i for i, r in enumerate(self.idata.posterior["seeded_run"].values)}
                      if "u" in self.idata.posterior else {})
            u_fitted = self._draws("u") if seeded else None
            sigma_seed, sigma_obs = self._noise_scales(families, rng)
            for j, run in enumerate(runs):
                if run is not None and run in seeded:
                    offset = u_fitted[:, seeded[run]]
                else:
                    offset = np.asarray(seed_sd(sigma_seed[:, j], gamma, log_params[j])) * rng.standard_normal(
                        n_samples)
                log_loss[:, j] += offset + sigma_obs[:, j] * rng.standard_t(nu)
        return summarize(np.exp(log_loss), targets, kind=kind, quantiles=quantiles)

    # --- diagnostics -----------------------------------------------------------------------
    def diagnostics(self, *, warn: bool = True) -> Diagnostics:
        """r-hat, bulk/tail ESS (ArviZ), divergences, BFMI; a warning with a remedy when they fail.

        Over every sampled site (deterministic transforms share their diagnostics).
        """
        posterior = self.idata.posterior
        varying = [name for name in posterior.data_vars
                   if float(posterior[name].std()) > 0 and name not in ("corr_chol",)]  # constants have no r-hat
        with warnings.catch_warnings():  # 0/0 inside ArviZ for a site stuck in a chain: r-hat comes back NaN/inf
            warnings.simplefilter("ignore", RuntimeWarning)
            table = az.summary(self.idata, var_names=varying, kind="diagnostics", round_to="none")
            bfmi = az.bfmi(self.idata)
        table = table[[c for c in ("ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd") if c in table.columns]]
        divergences = int(self.idata.sample_stats["diverging"].values.sum())
        bfmi = np.asarray(bfmi.to_dataset()["energy"].values if isinstance(bfmi, xr.DataTree) else bfmi).ravel()
        messages = []
        if posterior.sizes["chain"] < 2:  # ArviZ gives NaN: r-hat compares chains
            max_rhat = float("nan")
            messages.append("one chain: r-hat needs two or more chains to compare; run chains=4")
        else:
            r_hat = table["r_hat"].fillna(np.inf)  # NaN r-hat with several chains: a chain that never moved
            max_rhat = float(r_hat.max())
        if max_rhat > RHAT_MAX:
            worst = r_hat.idxmax()
            messages.append(f"r-hat {max_rhat:.3f} > {RHAT_MAX} (worst: {worst}): chains disagree; run longer "
                            f"(more warmup and draws), or check the data for a family the law cannot fit")
        if divergences > 0:
            messages.append(f"{divergences} divergent transition(s): raise target_accept (e.g. 0.95-0.99), "
                            f"or thin/cut the data less aggressively if a family has very few points")
        if np.any(bfmi < 0.3):
            messages.append(f"BFMI {np.round(bfmi, 2).tolist()} < 0.3: the energy distribution is poorly explored; "
                            f"consider longer warmup")
        result = Diagnostics(table, divergences, bfmi, max_rhat, float(np.nanmin(table["ess_bulk"])),
                             float(np.nanmin(table["ess_tail"])), messages)
        if warn and result.warning:
            warnings.warn("bayeslaw fit diagnostics: " + "; ".join(messages), RuntimeWarning, stacklevel=2)
        return result

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the DataTree to netCDF (h5netcdf) atomically: a temporary file, then a rename."""
        return write_atomic(path, lambda tmp: self.idata.to_netcdf(tmp, engine="h5netcdf"))


def load_fit(path: str | os.PathLike) -> Fit:
    """Read a fit written by :meth:`Fit.save`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"fit file {str(path)!r} does not exist")
    idata = xr.open_datatree(path, engine="h5netcdf").load()
    if "bayeslaw_pooling" not in idata.attrs:
        raise ValueError(f"{str(path)!r} is a netCDF file but not a bayeslaw fit (no bayeslaw_* attributes)")
    return Fit(idata)
