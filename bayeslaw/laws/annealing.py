"""Scaling law with learning-rate annealing (Tissue et al. 2024, arXiv:2408.11029).

    L(s; N, eta) = L0 + A S1(s)^-alpha - C S2(s), each constant at the run's size N and peak rate eta:
    log L0 = l0 + l0_n log(N / 1e8) + l0_lr log(eta / 1e-3), likewise log A (a), log C (c);
    alpha = (alpha + alpha_n log(N / 1e8)) (eta / 1e-3)^alpha_lr

s optimizer steps; S1 the summed learning rate up to s (the forward area, warmup included), S2 the
annealing area sum_{k<=s} m_k with m_k = lam m_{k-1} + (eta_{k-1} - eta_k), lam = 0.999 (their value;
:mod:`bayeslaw.laws.schedule_terms`); L in nats per token, N parameters. Tissue et al. fit one size at a
time; over sizes the constants move with N (:func:`~bayeslaw.laws.schedule_terms.at_size`), and the
Bayesian models pool them across sizes and families. Likewise over the peak learning rate
(:func:`~bayeslaw.laws.schedule_terms.at_peak_lr`): S1 and S2 read the rate's value, yet over a sweep
of peak rates the constants move too (C falls as the rate grows), and a law of one rate forecasts the
cooldowns of another several percent off. A point fit of one size or one peak rate, which cannot tell
those slopes from the constants, holds them at 0 (``held_alone``); a Bayesian fit leaves them to their
priors.

Fitted as l0 = log L0, a = log A, alpha, c = log C at 1e8 parameters and peak rate 1e-3, the size slopes
l0_n, a_n, alpha_n, c_n and the rate slopes l0_lr, a_lr, alpha_lr, c_lr. Reads a table's ``params``,
``step`` and ``schedule`` columns.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import Law
from bayeslaw.laws.schedule_terms import (LR_SLOPE_PRIORS, POWER_PRIORS, POWER_SLOPE_PRIORS, at_peak_lr, at_size,
                                          schedule_inputs, size_sampling)

VARYING = ("l0", "a", "alpha", "c")  # the parameters that move with N and with the peak rate
SIZE_SLOPES = {f"{k}_n": 0.0 for k in VARYING}
LR_SLOPES = {f"{k}_lr": 0.0 for k in VARYING}
SLOPES = {**SIZE_SLOPES, **LR_SLOPES}


def constants_at(theta, values) -> dict:
    """The constants at N = ``values["params"]`` and peak rate ``values["peak_lr"]``, the slopes folded in."""
    return at_peak_lr(at_size({k: jnp.asarray(v) for k, v in theta.items()}, values["params"], VARYING),
                      values["peak_lr"], ("l0", "a", "c"), ("alpha",))


def annealing_log_loss(theta, *, params, peak_lr, lr_area, annealing_area):
    """log L(s; N, eta); a parameter set that drives L to 0 or below gets log(1e-3) (a finite, large misfit)."""
    theta = constants_at(theta, {"params": params, "peak_lr": peak_lr})
    loss = jnp.exp(theta["l0"]) + jnp.exp(theta["a"]) * lr_area ** -theta["alpha"] - jnp.exp(theta["c"]) * annealing_area
    return jnp.log(jnp.maximum(loss, 1e-3))


def _natural(theta) -> dict:
    """L0, A, alpha, C at 1e8 parameters and peak rate 1e-3, and the slopes of log L0, log A, alpha, log C
    in log N and in log eta."""
    return {"L0": np.exp(theta["l0"]), "A": np.exp(theta["a"]), "alpha": theta["alpha"], "C": np.exp(theta["c"]),
            **{k: theta[k] for k in SLOPES if k in theta}}


def _from_natural(p) -> dict:
    return {"l0": np.log(p["L0"]), "a": np.log(p["A"]), "alpha": p["alpha"], "c": np.log(p["C"]),
            **{k: p.get(k, 0.0) for k in SLOPES}}


#: Normal prior (centre, scale) of each sampled coordinate and the prior mean of its spread across
#: families: the shared power term's (schedule_terms.POWER_PRIORS), and C's, weakly informative around
#: the point fits of Luo et al.'s 25M and 100M curves (C 0.40 and 0.48, peak rate 3e-4); C scales as
#: 1 / the learning rate's units, hence its wide prior. The rate slopes lie between two limits: the loss
#: reads the rate's area exactly (every slope 0) or the steps alone (A ~ eta^alpha, C ~ 1 / eta: a_lr
#: near 0.5, c_lr -1); centred between them (schedule_terms.LR_SLOPE_PRIORS).
PRIORS = {**POWER_PRIORS, "c": (float(np.log(0.5)), 2.0, 0.5), **POWER_SLOPE_PRIORS, "c_n": (0.0, 0.5, 0.2),
          **LR_SLOPE_PRIORS, "c_lr": (-0.5, 0.5, 0.2)}


ANNEALING = Law(
    name="annealing",
    formula="L(s; N, eta) = L0 + A S1^-alpha - C S2, parameters linear in log N and log peak rate",
    theta_names=("l0", "a", "alpha", "c", *SLOPES),
    inputs=("params", "peak_lr", "lr_area", "annealing_area"),
    log_loss=annealing_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    init_grid={"l0": np.log([1.5, 2.5, 3.5]), "a": np.log([0.1, 0.5, 2.0]), "alpha": (0.2, 0.5, 0.8),
               "c": np.log([0.1, 1.0, 10.0]), **{k: (0.0,) for k in SLOPES}},
    point_start={"l0": np.log(2.5), "a": np.log(0.5), "alpha": 0.5, "c": np.log(1.0), **SLOPES},
    lower_bounds={"alpha": 0.0},
    derived={name: (("step", "schedule"), lambda columns, name=name: schedule_inputs(columns)[name])
             for name in ("lr_area", "annealing_area", "peak_lr")},
    features=("annealing_area",),
    sampling=size_sampling(PRIORS, ("l0", "a", "alpha", "c", *SLOPES), slopes=SLOPES),
    held_alone={"params": SIZE_SLOPES, "peak_lr": LR_SLOPES},
    constants_at=constants_at,
)
