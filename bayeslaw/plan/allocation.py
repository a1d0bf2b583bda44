"""Compute-optimal allocation under uncertainty: how to split a FLOP budget between parameters and tokens.

A training run of N parameters on D tokens costs C = 6 N D FLOPs (about 2 FLOPs per parameter per
token forward and 4 backward: the convention of the ``compute`` law and of the data table's ``flops``
column). For a budget C the compute-optimal model minimises the law's loss along that curve:

    N*(C) = argmin_N L(N, C / (6 N)),     D*(C) = C / (6 N*(C))

Each posterior draw theta_s of the law gives its own (N*_s, D*_s), so the allocation has a band:

- ``chinchilla``, L = E + A / N^alpha + B / D^beta (A = exp(a), B = exp(b)): setting dL/dN = 0 gives
  N* = G (C / 6)^(beta / (alpha + beta)),  G = (alpha A / (beta B))^(1 / (alpha + beta)).
- ``kaplan`` / ``kaplan_e``, L = [E +] [(Nc / N)^p + Dc / D]^alphaD with p = alphaN / alphaD: on the
  budget's curve the bracket (Nc / N)^p + 6 Dc N / C is convex in log N (a sum of two exponentials of
  log N) and L increases with it, so the bracket's stationary point is the unique optimum:
  log N* = (log p + p log Nc - log Dc + log(C / 6)) / (1 + p)  (E does not move it).
- ``su2024`` at a batch size B (tokens per step; steps S = D / B): L solves an implicit equation, so
  N* is found numerically per draw (:func:`numeric_log_params`: a dense grid in log N, then golden
  section inside the best grid cell).
- ``compute``, L = E + (C0 / C)^gamma, has no N/D split: it is refused.

The point estimate's allocation (N_pt, D_pt), from a :class:`~bayeslaw.inference.point.PointFit` of the
same form, is judged under the posterior: its expected loss E_s[L(N_pt, D_pt; theta_s)] and its
regret per draw, L(N_pt, D_pt; theta_s) - L(N*_s, D*_s; theta_s) >= 0, the loss (nats per token) that
following the point estimate is expected to cost against the allocation each draw would choose.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayeslaw.data.files import jsonable
from bayeslaw.inference.nuts import DEFAULT_QUANTILES, TOKENS_REACH, Fit, NewFamilyWarning, check_quantiles
from bayeslaw.inference.point import UNITS, PointFit, fit_point
from bayeslaw.laws import ExtrapolationWarning, Law, forms, get_law
from bayeslaw.laws.schedule_terms import SIZE_REACH
from bayeslaw.plan.trajectory import warn_new_family
from bayeslaw.results import Result

__all__ = ["Allocation", "FLOPS_PER_PARAM_TOKEN", "numeric_log_params", "optimal_allocation", "optimal_log_params"]

FLOPS_PER_PARAM_TOKEN = 6.0  # C = 6 N D
# The numeric search spans tokens per parameter D / N = C / (6 N^2) from 1e-6 to 1e10 (Chinchilla's
# optimum is ~20): N over 8 decades around sqrt(C / 6). An optimum outside it is reported, not hidden.
TOKENS_PER_PARAM_RANGE = (1e-6, 1e10)
GRID_POINTS = 161  # a step of 0.115 in log N
GOLDEN_STEPS = 60  # shrinks the two-cell bracket (0.23 in log N) by 0.618^60 ~ 3e-13
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


# --- the optimum per draw -----------------------------------------------------------------------

def _budget_inputs(law: Law, log_params, log_flops, batch_size) -> dict:
    """The law's inputs at N = exp(log_params) on the budget's curve D = C / (6 N), B = ``batch_size`` tokens
    per step (for laws of steps: S = D / B), derived as the law derives them from a table's columns."""
    params = jnp.exp(log_params)
    tokens = jnp.exp(log_flops - log_params) / FLOPS_PER_PARAM_TOKEN
    return law.inputs_from({"params": params, "tokens": tokens, "batch_size": batch_size})


def log_loss_on_budget(law: Law, theta, log_params, log_flops, batch_size=None):
    """log L(N, C / (6 N)) for the law's parameters ``theta`` (arrays broadcasting against ``log_params``)."""
    return law.log_loss(theta, **_budget_inputs(law, log_params, log_flops, batch_size))


@partial(jax.jit, static_argnames=("law",))
def _numeric_log_params(law: Law, theta, log_flops, batch_size):
    # Hand-written rather than a library optimiser: the problem is one-dimensional and elementwise over
    # (draw, budget), and su2024's loss is an implicit Newton solve, where a dense grid (robust to a
    # shallow second dip, found in one vectorised pass) plus golden section (derivative-free, a fixed
    # number of steps, so it vectorises without per-element stopping) is both simple and exact to 1e-12.
    log_center = 0.5 * (log_flops - jnp.log(FLOPS_PER_PARAM_TOKEN))  # N at D / N = 1
    lo = log_center - 0.5 * math.log(TOKENS_PER_PARAM_RANGE[1])
    hi = log_center - 0.5 * math.log(TOKENS_PER_PARAM_RANGE[0])
    shape = jnp.broadcast_shapes(jnp.shape(log_flops), *(jnp.shape(v) for v in theta.values()))
    lo, hi = jnp.broadcast_to(lo, shape), jnp.broadcast_to(hi, shape)
    step = (hi - lo) / (GRID_POINTS - 1)

    def f(x):
        return log_loss_on_budget(law, theta, x, log_flops, batch_size)

    def scan_grid(best, k):  # a running argmin keeps memory at one (draw, budget) array
        value = f(lo + k * step)
        better = value < best[0]
        return (jnp.where(better, value, best[0]), jnp.where(better, k, best[1])), None

    start = (jnp.full(shape, jnp.inf), jnp.zeros(shape, dtype=int))
    (_, k_best), _ = jax.lax.scan(scan_grid, start, jnp.arange(GRID_POINTS, dtype=int))
    at_bound = (k_best == 0) | (k_best == GRID_POINTS - 1)
    a = lo + jnp.maximum(k_best - 1, 0) * step
    b = lo + jnp.minimum(k_best + 1, GRID_POINTS - 1) * step

    def golden(_, bracket):
        a, b = bracket
        c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)
        left = f(c) < f(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, GOLDEN_STEPS, golden, (a, b))
    return 0.5 * (a + b), at_bound


def numeric_log_params(law: Law | str, theta, flops, *, batch_size=None) -> tuple[np.ndarray, np.ndarray]:
    """log N* minimising L(N, C / (6 N)) numerically, for any law of params and tokens (or of steps at a batch size).

    ``theta``: the law's parameters (its ``theta_names``, fitting space), arrays of shape (sample,);
    ``flops``: budgets C, shape (budget,). Returns log N* (sample, budget) and a flag, True where the
    optimum lies at the edge of the searched range (D / N in ``TOKENS_PER_PARAM_RANGE``).
    """
    law = get_law(law)
    theta = {k: jnp.asarray(v, dtype=float)[..., None] for k, v in theta.items()}
    log_flops = jnp.log(jnp.asarray(flops, dtype=float))
    batch = None if batch_size is None else jnp.asarray(float(batch_size))
    log_params, at_bound = _numeric_log_params(law, theta, log_flops, batch)
    return np.asarray(log_params), np.asarray(at_bound)


def optimal_log_params(law: Law | str, theta, flops, *, batch_size=None) -> tuple[np.ndarray, np.ndarray]:
    """log N*(C) per draw and budget, (sample, budget), and the at-the-edge flag (all False for closed forms).

    The law's closed form where it has one (``Law.optimal_log_params``, e.g. chinchilla's
    log N* = (log(alpha / beta) + a - b + beta log(C / 6)) / (alpha + beta)); else
    :func:`numeric_log_params` (e.g. su2024, at ``batch_size`` tokens per step).
    """
    law = get_law(law)
    if law.split is None:
        raise ValueError(f"the {law.name} law has no split of a FLOP budget into parameters and tokens (it reads "
                         f"{list(law.inputs)}); fit a form with one: {forms(lambda law: law.split)}")
    if law.split == "numerical":
        return numeric_log_params(law, theta, flops, batch_size=batch_size)
    log_c6 = np.log(np.asarray(flops, dtype=float) / FLOPS_PER_PARAM_TOKEN)[None, :]
    t = {k: np.asarray(v, dtype=float)[:, None] for k, v in theta.items()}
    log_params = np.asarray(law.optimal_log_params(t, log_c6))
    return np.broadcast_to(log_params, (log_params.shape[0], log_c6.shape[1])).copy(), np.zeros(
        (log_params.shape[0], log_c6.shape[1]), dtype=bool)


def _loss_at(law: Law, theta, log_params, log_flops, batch_size) -> np.ndarray:
    """L(N, C / (6 N)) in nats per token, theta arrays (sample,) against log_params (sample or 1, budget)."""
    theta = {k: jnp.asarray(v, dtype=float)[:, None] for k, v in theta.items()}
    batch = None if batch_size is None else jnp.asarray(float(batch_size))
    return np.exp(np.asarray(log_loss_on_budget(law, theta, jnp.asarray(log_params), jnp.asarray(log_flops), batch)))


# --- the result ---------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class Allocation(Result):
    """The compute-optimal allocation of each FLOP budget C = 6 N D, with its posterior band.

    ``summary``: one row per budget: ``flops``; quantiles (``*_q5`` ... ``*_q95``) of ``params_opt`` (N*,
    parameters), ``tokens_opt`` (D*, tokens), ``tokens_per_param`` (D* / N*), ``loss_law`` (the law's loss
    at each draw's own optimum, nats per token) and ``loss_new_run`` (one new training run there: plus a
    seed offset and checkpoint noise); ``point_params``, ``point_tokens`` (the point estimate's N_pt,
    D_pt); ``expected_loss_at_point`` E_s[L(N_pt, D_pt; theta_s)]; ``expected_regret``
    E_s[L(N_pt, D_pt; theta_s) - L(N*_s, D*_s; theta_s)] (nats per token) and its quantiles
    ``regret_q*``; ``at_bound`` the share of draws whose numeric optimum hit the searched range's edge.
    ``draws``: one row per (sample, budget), sample-major in the summary's budget order, with the same
    quantities per draw (``loss_at_point`` = L(N_pt, D_pt; theta_s), ``regret``).
    ``population``: True where the family was not in the fit (or None), so the population's law was used.
    """

    _main = "summary"

    summary: pd.DataFrame
    draws: pd.DataFrame
    form: str
    family: str | None
    population: bool
    batch_size: float | None
    point: PointFit
    quantiles: tuple[float, ...] = field(default=DEFAULT_QUANTILES)

    def to_dict(self) -> dict:
        """A JSON-ready dict (plain floats, non-finite values as None): the settings, the point fit and the summary."""
        return jsonable({
            "form": self.form,
            "family": self.family,
            "population": self.population,
            "batch_size": self.batch_size,
            "flops_convention": "C = 6 N D (N parameters, D tokens)",
            "units": {"params": "parameters", "tokens": "tokens", "loss": "nats per token", "flops": "FLOPs",
                      "batch_size": "tokens per step"},
            "quantiles": self.quantiles,
            "point": {"method": self.point.method, "params": self.point.params, "converged": self.point.converged},
            "summary": self.summary.to_dict(orient="records"),
        })


# --- the allocation -----------------------------------------------------------------------------

def _flops_array(flops) -> np.ndarray:
    # a bool is not a budget: True would be taken as 1 FLOP
    if any(isinstance(v, (bool, np.bool_)) for v in np.ravel(np.asarray(flops, dtype=object))):
        raise ValueError(f"flops={flops!r}: a bool is not a FLOP budget; give a positive number of FLOPs (C = 6 N D)")
    values = np.atleast_1d(np.asarray(flops, dtype=float))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"flops: found shape {np.shape(flops)}; need one FLOP budget or a 1-d array of them")
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        raise ValueError(f"flops: found non-positive or non-finite budget(s) {values[bad[:5]].tolist()} at "
                         f"position(s) {bad[:5].tolist()}; every budget C = 6 N D must be a positive number of FLOPs")
    return values


def _readers_of_batch_size() -> str:
    readers = forms(lambda law: "batch_size" in law.columns_needed)
    return f"{' and '.join(readers)} {'does' if len(readers) == 1 else 'do'}"


def _check_inputs(fit: Fit, family, batch_size, point):
    law = fit.spec.law
    if law.split is None:
        raise ValueError(f"optimal_allocation: the fit's form is {law.name!r} ({law.formula}), which reads "
                         f"{list(law.inputs)} and has no split into parameters and tokens of a FLOP budget; fit a "
                         f"form with one: {forms(lambda law: law.split)}")
    if "batch_size" in law.columns_needed:
        if batch_size is None:
            raise ValueError(f"optimal_allocation: the {law.name} law needs batch_size (tokens per optimizer step, "
                             "steps = D / batch_size): the optimum depends on it; pass batch_size=, e.g. 2**21")
        if not (np.isfinite(batch_size) and batch_size > 0):
            raise ValueError(f"optimal_allocation: batch_size={batch_size!r}; need a positive number of tokens "
                             f"per step")
    elif batch_size is not None:
        raise ValueError(f"optimal_allocation: batch_size={batch_size!r} was given but the {law.name} law does not "
                         f"read it (only {_readers_of_batch_size()}); leave it out")
    if family is not None and not isinstance(family, str):
        raise ValueError(f"optimal_allocation: family={family!r}; need a family name (str) or None for the population")
    if family not in fit.families and fit.pooling == "none":
        raise ValueError(f"optimal_allocation: family {family!r} is not in this fit (its families: {fit.families}) and "
                         f"pooling='none' has no population law (an unseen family would get the prior's allocation); "
                         f"name one of its families, or fit with pooling='hierarchical'")
    if point is not None and (not isinstance(point, PointFit) or point.form != law.name):
        found = point.form if isinstance(point, PointFit) else type(point).__name__
        raise ValueError(f"optimal_allocation: point is {found!r}; need a bayeslaw.PointFit of the fit's form "
                         f"{law.name!r} (bayeslaw.fit_point(rows, form={law.name!r}))")


def _check_reach(fit: Fit, family, budgets, params_opt, tokens_opt) -> None:
    """Refuse a budget whose compute-optimal model is smaller than any language model (params or tokens below
    the data's unit bounds, :data:`bayeslaw.inference.point.UNITS`: 10,000 parameters, 1,000 tokens; the
    law's answer there is arithmetic, not a forecast, and a forecast of it is refused as a unit slip); warn
    once, naming the budgets, where the median N* lies more than ``SIZE_REACH`` times below, or the median
    D* more than ``TOKENS_REACH`` times below, the sizes or tokens the family (all the fit's rows for a new
    family) was fitted on: a budget smaller than the pilots asks the law about models it never saw. Above the
    fitted range is the allocation's purpose (the big run planned from small ones), and its band carries the
    form error that grows with N, so that is not warned of (``Fit.predict``'s own warnings are silenced here,
    since its tokens are the answer's, not the user's)."""
    rows = fit.training_rows(family if family in fit.families else None)
    n_lo, n_hi = float(rows["params"].min()), float(rows["params"].max())
    d_lo, d_hi = float(rows["tokens"].min()), float(rows["tokens"].max())
    c_lo, c_hi = (float(v) for v in (FLOPS_PER_PARAM_TOKEN * rows["params"] * rows["tokens"]).agg(["min", "max"]))
    n_mid, d_mid = np.median(params_opt, axis=0), np.median(tokens_opt, axis=0)
    n_min, d_min = UNITS["params"][0], UNITS["tokens"][0]
    tiny = np.flatnonzero((n_mid < n_min) | (d_mid < d_min))
    if tiny.size:
        i = tiny[0]
        raise ValueError(f"flops={budgets[i]:.3g}: its compute-optimal split is N* = {n_mid[i]:.3g} parameters, "
                         f"D* = {d_mid[i]:.3g} tokens (medians), below {n_min:,.0f} parameters or {d_min:,.0f} tokens: "
                         f"no language model; the fit's runs cost "
                         f"{c_lo:.3g}..{c_hi:.3g} FLOPs (C = 6 N D)")
    far = np.flatnonzero((n_mid < n_lo / SIZE_REACH) | (d_mid < d_lo / TOKENS_REACH))
    if far.size:
        i = far[0]
        who = f"family {family!r}" if family in fit.families else "the fit"
        warnings.warn(f"optimal_allocation: flops {', '.join(f'{c:.3g}' for c in budgets[far[:5]])} put the "
                      f"compute-optimal N* (median {n_mid[i]:.3g}) or D* ({d_mid[i]:.3g}) more than {SIZE_REACH:.3g} "
                      f"times below the sizes ({n_lo:.3g}..{n_hi:.3g}) or {TOKENS_REACH:g} times below the tokens "
                      f"({d_lo:.3g}..{d_hi:.3g}) {who} was fitted on (its runs cost {c_lo:.3g}..{c_hi:.3g} FLOPs): "
                      f"the split there is the law's extrapolation", ExtrapolationWarning, stacklevel=3)


def _new_run_noise(fit: Fit, family, params, tokens, batch_size, seed, form_error=None) -> np.ndarray:
    """log(new-run loss / law loss) per draw (sample, budget), from ``Fit.predict`` at one target per budget.

    With the same seed, ``predict(kind="law")``, ``predict(kind="new_run")`` and ``law_theta`` draw the same
    theta per sample (each starts a fresh generator from ``seed`` and draws theta first), so the difference
    of the two predictions is exactly the new run's seed offset plus checkpoint noise of sample s (and the
    law's form error beyond the fitted sizes, ``form_error``), aligned with sample s's law and noise scales.
    That noise depends on where the run sits only through sigma_seed (N / 1e8)^-gamma_seed and the form
    error's distance from the fitted sizes: both are taken at the median N* (a stated approximation; with
    the default constant seed scaling the seed part is exact).
    """
    targets = pd.DataFrame({"params": params, "tokens": tokens})
    if batch_size is not None:
        targets["batch_size"] = float(batch_size)
    if family is not None:
        targets["family"] = family
    with warnings.catch_warnings():  # the optimum's tokens are the answer's, not the user's: beyond the fit by design
        warnings.simplefilter("ignore", ExtrapolationWarning)
        warnings.simplefilter("ignore", NewFamilyWarning)  # said once by optimal_allocation itself
        law = fit.predict(targets, kind="law", seed=seed).draws.values
        new_run = fit.predict(targets, kind="new_run", seed=seed, form_error=form_error).draws.values
    return np.log(new_run) - np.log(law)


def _quantile_columns(name: str, values: np.ndarray, quantiles) -> dict:
    """``{name}_q{100 q}``: quantiles over draws (axis 0) of ``values`` (sample, budget)."""
    return {f"{name}_q{100 * q:g}": np.quantile(values, q, axis=0) for q in quantiles}


def optimal_allocation(fit: Fit, flops, *, family: str | None = None, point: PointFit | None = None,
                       batch_size: float | None = None, quantiles=DEFAULT_QUANTILES, seed: int = 0,
                       form_error: float | None = None) -> Allocation:
    """The compute-optimal split of each FLOP budget, per posterior draw, and what the point estimate's split costs.

    Parameters
    ----------
    fit : Fit
        A posterior of a law with a compute-optimal split (``Law.split``: chinchilla, kaplan, kaplan_e,
        su2024; ``compute`` is refused: it has no N/D split).
    flops : float or array of float
        Budgets C in FLOPs, C = 6 N D (N parameters, D training tokens).
    family : str, optional
        The family whose law is used; a family the fit has not seen, or None, gets the population's law
        (hierarchical: a new family drawn from it; complete pooling: the shared law; a name not in the fit
        with a UserWarning, as a typo would be); refused for pooling="none", which has no population. None
        for a fit of one family: that family.
    point : PointFit, optional
        The point estimate to compare (same form). Default: ``fit_point(method="epoch")`` on the fit's own
        training rows (that family's rows, or all rows for the population), rebuilt from ``fit.idata``.
    batch_size : float, optional
        Tokens per optimizer step, for laws that read it (su2024: steps S = D / batch_size), where it is required.
    quantiles : tuple of float
        Quantiles of the summary columns.
    seed : int
        Seed of the population draw and of the new-run noise (as in ``Fit.predict``).
    form_error : float, optional
        The law's form error per e-fold of N beyond the fitted sizes, in ``loss_new_run`` (``Fit.predict``;
        default the library's, 0 for none).

    For each draw s: N*_s = argmin_N L(N, C / (6 N); theta_s), D*_s = C / (6 N*_s) (closed forms and the
    numeric search in :mod:`bayeslaw.plan.allocation`); ``loss_law`` = L(N*_s, D*_s; theta_s),
    ``loss_new_run`` = that times the new run's exp(seed offset + checkpoint noise + form error) (see
    ``Fit.predict``);
    ``regret`` = L(N_pt, D_pt; theta_s) - L(N*_s, D*_s; theta_s) >= 0, nats per token.
    """
    check_quantiles(quantiles, "optimal_allocation")
    family = fit.family_or_only(family)
    _check_inputs(fit, family, batch_size, point)
    warn_new_family(fit, family, "optimal_allocation")
    budgets = _flops_array(flops)
    law = fit.spec.law
    theta = fit.law_theta(family, seed=seed)  # (sample,) each; the same draws Fit.predict(seed=seed) uses
    population = family not in fit.families
    if point is None:
        # the fit's own rows, as its early cut chose them (a fit with min_tokens=None kept its early checkpoints
        # on purpose): not the point fit's advice to cut them (as the fit's start, nuts._point_init)
        point = fit_point(fit.training_rows(family if family in fit.families else None), form=law.name,
                          method="epoch", warn_early=False, across_families=True)
    if not point.converged:
        warnings.warn(f"optimal_allocation: the {law.name} point fit did not converge; its allocation may be off",
                      RuntimeWarning, stacklevel=2)

    log_flops = np.log(budgets)[None, :]
    log_params, at_bound = optimal_log_params(law, theta, budgets, batch_size=batch_size)
    loss_law = _loss_at(law, theta, log_params, log_flops, batch_size)
    point_theta = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in point.theta.items()}
    log_point, point_at_bound = optimal_log_params(law, point_theta, budgets, batch_size=batch_size)
    if point_at_bound.any():
        warnings.warn("optimal_allocation: the point fit's optimum lies at the edge of the searched range of "
                      f"tokens per parameter {TOKENS_PER_PARAM_RANGE}; its allocation is that edge",
                      RuntimeWarning, stacklevel=2)
    loss_at_point = _loss_at(law, theta, log_point, log_flops, batch_size)  # (sample, budget)
    regret = loss_at_point - loss_law
    if at_bound.any():
        warnings.warn(f"optimal_allocation: {int(at_bound.sum())} of {at_bound.size} (draw, budget) optima lie at the "
                      f"edge of the searched tokens-per-parameter range {TOKENS_PER_PARAM_RANGE} (the summary's "
                      f"at_bound column); those draws' N* is that edge", RuntimeWarning, stacklevel=2)

    params_opt = np.exp(log_params)
    tokens_opt = budgets[None, :] / (FLOPS_PER_PARAM_TOKEN * params_opt)
    _check_reach(fit, family, budgets, params_opt, tokens_opt)
    noise = _new_run_noise(fit, family, np.median(params_opt, axis=0), np.median(tokens_opt, axis=0), batch_size, seed,
                           form_error)
    loss_new_run = loss_law * np.exp(noise)
    point_params = np.exp(log_point[0])

    per_draw = {"params_opt": params_opt, "tokens_opt": tokens_opt, "tokens_per_param": tokens_opt / params_opt,
                "loss_law": loss_law, "loss_new_run": loss_new_run, "loss_at_point": loss_at_point, "regret": regret}
    summary = {"flops": budgets}
    for name in ("params_opt", "tokens_opt", "tokens_per_param", "loss_law", "loss_new_run"):
        summary.update(_quantile_columns(name, per_draw[name], quantiles))
    summary.update({
        "point_params": point_params,
        "point_tokens": budgets / (FLOPS_PER_PARAM_TOKEN * point_params),
        "expected_loss_at_point": loss_at_point.mean(axis=0),
        "expected_loss_opt": loss_law.mean(axis=0),
        "expected_regret": regret.mean(axis=0),
        **_quantile_columns("regret", regret, quantiles),
        "at_bound": at_bound.mean(axis=0),
    })
    n_samples, n_budgets = params_opt.shape
    draws = pd.DataFrame({"flops": np.tile(budgets, n_samples), "sample": np.repeat(np.arange(n_samples), n_budgets),
                          **{k: v.ravel() for k, v in per_draw.items()}, "at_bound": at_bound.ravel()})
    return Allocation(pd.DataFrame(summary), draws, law.name, family, population,
                      None if batch_size is None else float(batch_size), point, tuple(quantiles))
