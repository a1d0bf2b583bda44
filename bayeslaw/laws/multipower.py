"""Multi-power law of a loss curve under a learning-rate schedule (Luo et al. 2025, arXiv:2503.12811).

    L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t)
    LD(t) = B sum_{k<=t} (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),  G(x) = 1 - (C x + 1)^-beta

t optimizer steps, eta_k the learning rate at step k, S1(t) + S_W the summed learning rate up to t
(warmup included), S_k(t) = sum_{k<=j<=t} eta_j; L in nats per token. One model size: its constants are
the size's. The loss drop is computed on a binned design (:mod:`bayeslaw.laws.schedule_terms`).

Fitted as l0 = log L0, a = log A, b = log B, c = log C and the exponents alpha, beta, gamma.
Reads a table's ``step`` and ``schedule`` (JSON, :class:`bayeslaw.data.schedules.Schedule`) columns.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import Law
from bayeslaw.laws.schedule_terms import schedule_inputs

DESIGN = ("lr_area", "drop_weight", "drop_lr", "drop_area")


def multipower_loss(theta, *, lr_area, drop_weight, drop_lr, drop_area):
    """L(t) from the binned design: lr_area (row,), drop_* (row, bin)."""
    g = 1.0 - (jnp.exp(theta["c"])[..., None] * drop_lr ** -theta["gamma"][..., None] * drop_area + 1.0) ** (
        -theta["beta"][..., None])
    drop = jnp.exp(theta["b"]) * jnp.sum(drop_weight * g, axis=-1)
    return jnp.exp(theta["l0"]) + jnp.exp(theta["a"]) * lr_area ** -theta["alpha"] - drop


def multipower_log_loss(theta, **inputs):
    """log L(t); a parameter set that drives L to 0 or below gets log(1e-3) (a finite, large misfit)."""
    theta = {k: jnp.asarray(v) for k, v in theta.items()}
    return jnp.log(jnp.maximum(multipower_loss(theta, **inputs), 1e-3))


def _natural(theta) -> dict:
    return {"L0": np.exp(theta["l0"]), "A": np.exp(theta["a"]), "alpha": theta["alpha"], "B": np.exp(theta["b"]),
            "C": np.exp(theta["c"]), "beta": theta["beta"], "gamma": theta["gamma"]}


def _from_natural(p) -> dict:
    return {"l0": np.log(p["L0"]), "a": np.log(p["A"]), "alpha": p["alpha"], "b": np.log(p["B"]),
            "c": np.log(p["C"]), "beta": p["beta"], "gamma": p["gamma"]}


MULTIPOWER = Law(
    name="multipower",
    formula="L(t) = L0 + A (S1(t) + S_W)^-alpha - B sum_k (eta_{k-1} - eta_k) (1 - (C eta_k^-gamma S_k(t) + 1)^-beta)",
    theta_names=("l0", "a", "alpha", "b", "c", "beta", "gamma"),
    inputs=DESIGN,
    log_loss=multipower_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    # 2^3 starts around the published fits (L0 2.4-3.0, A 0.5-0.7, alpha 0.4-0.5, B 360-520, C ~2, beta ~0.6,
    # gamma ~0.64): each start's objective holds a (row, bin) power per row, so a large grid costs minutes
    init_grid={"l0": np.log([2.5, 3.2]), "a": np.log([0.6]), "alpha": (0.3, 0.6), "b": np.log([400.0]),
               "c": np.log([2.0]), "beta": (0.6,), "gamma": (0.4, 0.8)},
    point_start={"l0": np.log(3.0), "a": np.log(0.5), "alpha": 0.5, "b": np.log(400.0), "c": np.log(2.0),
                 "beta": 0.6, "gamma": 0.6},
    lower_bounds={"alpha": 0.0, "beta": 0.0, "gamma": 0.0},
    derived={name: (("step", "schedule"), lambda columns, name=name: schedule_inputs(columns)[name])
             for name in DESIGN},
    features=DESIGN[1:],
)
