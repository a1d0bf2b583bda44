"""Multi-power law of a loss curve under a learning-rate schedule (Luo et al. 2025, arXiv:2503.12811).

    L(t; N) = L0(N) + A(N) (S1(t) + S_W)^-alpha(N) - LD(t; N)
    LD(t; N) = B(N) sum_{k<=t} (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),  G(x) = 1 - (C x + 1)^-beta
    log L0(N) = l0 + l0_n log(N / 1e8), likewise log A(N) (a, a_n), alpha(N) (alpha, alpha_n), log B(N) (b, b_n)

t optimizer steps, eta_k the learning rate at step k, S1(t) + S_W the summed learning rate up to t
(warmup included), S_k(t) = sum_{k<=j<=t} eta_j; L in nats per token, N parameters. Luo et al. fit one
size at a time; over sizes L0, A, alpha and B move with N
(:func:`~bayeslaw.laws.schedule_terms.at_size`; their 25M and 100M fits nearly share C, beta, gamma), and
the Bayesian models pool them across sizes and families. A fit of one size holds the slopes at 0
(``MULTIPOWER.fix(SIZE_SLOPES)``). The loss drop is computed on a binned design
(:mod:`bayeslaw.laws.schedule_terms`).

Fitted as l0 = log L0, a = log A, alpha, b = log B at 1e8 parameters, their slopes l0_n, a_n, alpha_n,
b_n, c = log C and the exponents beta, gamma. Reads a table's ``params``, ``step`` and ``schedule`` (JSON,
:class:`bayeslaw.data.schedules.Schedule`) columns.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import Law
from bayeslaw.laws.schedule_terms import POWER_PRIORS, POWER_SLOPE_PRIORS, at_size, schedule_inputs, size_sampling

DESIGN = ("lr_area", "drop_weight", "drop_lr", "drop_area")
VARYING = ("l0", "a", "alpha", "b")  # the parameters that move with N
SIZE_SLOPES = {f"{k}_n": 0.0 for k in VARYING}


def multipower_loss(theta, *, params, lr_area, drop_weight, drop_lr, drop_area):
    """L(t; N) from the binned design: params, lr_area (row,), drop_* (row, bin)."""
    theta = at_size(theta, params, VARYING)
    g = 1.0 - (jnp.exp(theta["c"])[..., None] * drop_lr ** -theta["gamma"][..., None] * drop_area + 1.0) ** (
        -theta["beta"][..., None])
    drop = jnp.exp(theta["b"]) * jnp.sum(drop_weight * g, axis=-1)
    return jnp.exp(theta["l0"]) + jnp.exp(theta["a"]) * lr_area ** -theta["alpha"] - drop


def multipower_log_loss(theta, **inputs):
    """log L(t); a parameter set that drives L to 0 or below gets log(1e-3) (a finite, large misfit)."""
    theta = {k: jnp.asarray(v) for k, v in theta.items()}
    return jnp.log(jnp.maximum(multipower_loss(theta, **inputs), 1e-3))


def _natural(theta) -> dict:
    """L0, A, alpha, B at 1e8 parameters, C, beta, gamma, and the slopes of log L0, log A, alpha, log B in log N."""
    return {"L0": np.exp(theta["l0"]), "A": np.exp(theta["a"]), "alpha": theta["alpha"], "B": np.exp(theta["b"]),
            "C": np.exp(theta["c"]), "beta": theta["beta"], "gamma": theta["gamma"],
            **{k: theta[k] for k in SIZE_SLOPES if k in theta}}


def _from_natural(p) -> dict:
    return {"l0": np.log(p["L0"]), "a": np.log(p["A"]), "alpha": p["alpha"], "b": np.log(p["B"]),
            "c": np.log(p["C"]), "beta": p["beta"], "gamma": p["gamma"], **{k: p.get(k, 0.0) for k in SIZE_SLOPES}}


#: Normal prior (centre, scale) of each sampled coordinate and the prior mean of its spread across
#: families: the shared power term's (schedule_terms.POWER_PRIORS), and the loss drop's, weakly
#: informative around the point fits of Luo et al.'s 25M and 100M curves (B 459 and 537, C 1.9, beta
#: 0.41-0.43, gamma 0.51-0.53, peak rate 3e-4); B scales as 1 / the learning rate's units, hence its wide prior.
PRIORS = {
    **POWER_PRIORS,
    "b": (float(np.log(400.0)), 2.0, 0.5),
    "c": (float(np.log(2.0)), 1.0, 0.5),
    "log_beta": (float(np.log(0.5)), 0.5, 0.3),
    "log_gamma": (float(np.log(0.5)), 0.5, 0.3),
    **POWER_SLOPE_PRIORS,
    "b_n": (0.0, 0.5, 0.2),
}


MULTIPOWER = Law(
    name="multipower",
    formula="L(t; N) = L0 + A (S1(t) + S_W)^-alpha - B sum_k (eta_{k-1} - eta_k) (1 - (C eta_k^-gamma S_k(t) + 1)^-beta), "
            "L0, A, alpha, B linear in log N",
    theta_names=("l0", "a", "alpha", "b", "c", "beta", "gamma", *SIZE_SLOPES),
    inputs=("params", *DESIGN),
    log_loss=multipower_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    # 2^3 starts around the published fits (L0 2.4-3.0, A 0.5-0.7, alpha 0.4-0.5, B 360-520, C ~2, beta ~0.6,
    # gamma ~0.64): each start's objective holds a (row, bin) power per row, so a large grid costs minutes
    init_grid={"l0": np.log([2.5, 3.2]), "a": np.log([0.6]), "alpha": (0.3, 0.6), "b": np.log([400.0]),
               "c": np.log([2.0]), "beta": (0.6,), "gamma": (0.4, 0.8), **{k: (0.0,) for k in SIZE_SLOPES}},
    point_start={"l0": np.log(3.0), "a": np.log(0.5), "alpha": 0.5, "b": np.log(400.0), "c": np.log(2.0),
                 "beta": 0.6, "gamma": 0.6, **SIZE_SLOPES},
    lower_bounds={"alpha": 0.0, "beta": 0.0, "gamma": 0.0},
    derived={name: (("step", "schedule"), lambda columns, name=name: schedule_inputs(columns)[name])
             for name in DESIGN},
    features=DESIGN[1:],
    sampling=size_sampling(PRIORS, ("l0", "a", "alpha", "b", "c", "beta", "gamma", *SIZE_SLOPES)),
)
