"""Chinchilla law (Hoffmann et al. 2022, Approach 3).

    L(N, D) = E + A / N^alpha + B / D^beta

N parameters, D training tokens, L in nats per token. Fitted in log space as

    log L = logsumexp(e, a - alpha log N, b - beta log D),  E = exp(e), A = exp(a), B = exp(b).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bayeslaw.laws.base import Law


def chinchilla_log_loss(theta, *, params, tokens):
    """log L(N, D) = logsumexp(e, a - alpha log N, b - beta log D)."""
    e, a, b, alpha, beta = (theta[k] for k in ("e", "a", "b", "alpha", "beta"))
    terms = jnp.stack(
        jnp.broadcast_arrays(e, a - alpha * jnp.log(params), b - beta * jnp.log(tokens)), axis=0
    )
    return logsumexp(terms, axis=0)


def _natural(theta) -> dict:
    return {
        "E": np.exp(theta["e"]),
        "A": np.exp(theta["a"]),
        "B": np.exp(theta["b"]),
        "alpha": theta["alpha"],
        "beta": theta["beta"],
    }


def _from_natural(p) -> dict:
    return {
        "e": np.log(p["E"]),
        "a": np.log(p["A"]),
        "b": np.log(p["B"]),
        "alpha": p["alpha"],
        "beta": p["beta"],
    }


CHINCHILLA = Law(
    name="chinchilla",
    formula="L = E + A / N^alpha + B / D^beta",
    theta_names=("a", "b", "e", "alpha", "beta"),
    inputs=("params", "tokens"),
    log_loss=chinchilla_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    # Besiroglu et al. 2024's grid: alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25 step 5.
    init_grid={
        "a": np.arange(0.0, 25.0 + 1e-9, 5.0),
        "b": np.arange(0.0, 25.0 + 1e-9, 5.0),
        "e": np.arange(-1.0, 1.0 + 1e-9, 0.5),
        "alpha": np.arange(0.0, 2.0 + 1e-9, 0.5),
        "beta": np.arange(0.0, 2.0 + 1e-9, 0.5),
    },
)
