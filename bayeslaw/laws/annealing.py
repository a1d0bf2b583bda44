"""Scaling law with learning-rate annealing (Tissue et al. 2024, arXiv:2408.11029).

    L(s) = L0 + A S1(s)^-alpha - C S2(s)

s optimizer steps; S1 the summed learning rate up to s (the forward area, warmup included), S2 the
annealing area sum_{k<=s} m_k with m_k = lam m_{k-1} + (eta_{k-1} - eta_k), lam = 0.999 (their value;
:mod:`bayeslaw.laws.schedule_terms`); L in nats per token. One model size: its constants are the size's.

Fitted as l0 = log L0, a = log A, alpha, c = log C. Reads a table's ``step`` and ``schedule`` columns.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import Law
from bayeslaw.laws.schedule_terms import schedule_inputs


def annealing_log_loss(theta, *, lr_area, annealing_area):
    """log L(s); a parameter set that drives L to 0 or below gets log(1e-3) (a finite, large misfit)."""
    theta = {k: jnp.asarray(v) for k, v in theta.items()}
    loss = jnp.exp(theta["l0"]) + jnp.exp(theta["a"]) * lr_area ** -theta["alpha"] - jnp.exp(theta["c"]) * annealing_area
    return jnp.log(jnp.maximum(loss, 1e-3))


def _natural(theta) -> dict:
    return {"L0": np.exp(theta["l0"]), "A": np.exp(theta["a"]), "alpha": theta["alpha"], "C": np.exp(theta["c"])}


def _from_natural(p) -> dict:
    return {"l0": np.log(p["L0"]), "a": np.log(p["A"]), "alpha": p["alpha"], "c": np.log(p["C"])}


ANNEALING = Law(
    name="annealing",
    formula="L(s) = L0 + A S1^-alpha - C S2",
    theta_names=("l0", "a", "alpha", "c"),
    inputs=("lr_area", "annealing_area"),
    log_loss=annealing_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    init_grid={"l0": np.log([1.5, 2.5, 3.5]), "a": np.log([0.1, 0.5, 2.0]), "alpha": (0.2, 0.5, 0.8),
               "c": np.log([10.0, 100.0, 1000.0])},
    point_start={"l0": np.log(2.5), "a": np.log(0.5), "alpha": 0.5, "c": np.log(100.0)},
    lower_bounds={"alpha": 0.0},
    derived={name: (("step", "schedule"), lambda columns, name=name: schedule_inputs(columns)[name])
             for name in ("lr_area", "annealing_area")},
    features=("annealing_area",),
)
