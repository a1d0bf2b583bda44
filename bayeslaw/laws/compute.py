"""Loss as a function of training compute alone.

    L(C) = E + (C0 / C)^gamma

C in FLOPs (the table's ``flops`` column where the source gives it, else 6 N D), L in nats per token.
Fitted in log space: log L = logaddexp(e, gamma (log C0 - log C)). Sampled (Bayesian models) as e,
c_ref = gamma log(C0 / C_REF) (the log of the power term at C_REF) and log gamma. It reads only C: a
FLOP budget's split into parameters and tokens does not change its loss (no compute-optimal split).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import C_REF, Law, Sampling


def compute_log_loss(theta, *, flops):
    """log L(C) = logaddexp(e, gamma (log C0 - log C))."""
    return jnp.logaddexp(theta["e"], theta["gamma"] * (theta["log_c0"] - jnp.log(flops)))


def flops_of(columns) -> np.ndarray:
    """Training FLOPs per row: the ``flops`` column where it is given (finite and positive), 6 N D elsewhere."""
    six_nd = 6.0 * columns["params"] * columns["tokens"]
    if "flops" not in columns:
        return six_nd
    given = columns["flops"]
    return jnp.where(jnp.isfinite(given) & (given > 0), given, six_nd)


def to_law(theta) -> dict:
    """e, c_ref, log gamma -> e, log C0 = log C_REF + c_ref / gamma, gamma."""
    e, c_ref, log_gamma = (theta[..., i] for i in range(3))
    gamma = jnp.exp(log_gamma)
    return {"e": e, "log_c0": np.log(C_REF) + c_ref / gamma, "gamma": gamma}


def from_law(t) -> np.ndarray:
    return np.array([t["e"], t["gamma"] * (t["log_c0"] - np.log(C_REF)), np.log(t["gamma"])], dtype=float)


# Normal prior (centre, scale) per sampled coordinate and the prior mean of its family spread: a
# Chinchilla-like E, a factor ~e on the power term's level and ~1.6 on its exponent
PRIORS = {"e": (np.log(1.8), 0.5, 0.2), "c_ref": (np.log(0.5), 1.0, 0.5), "log_gamma": (np.log(0.15), 0.5, 0.3)}


COMPUTE = Law(
    name="compute",
    formula="L = E + (C0 / C)^gamma",
    theta_names=("e", "log_c0", "gamma"),
    inputs=("flops",),
    log_loss=compute_log_loss,
    natural=lambda t: {"E": np.exp(t["e"]), "C0": np.exp(t["log_c0"]), "gamma": t["gamma"]},
    from_natural=lambda p: {"e": np.log(p["E"]), "log_c0": np.log(p["C0"]), "gamma": p["gamma"]},
    init_grid={"e": np.arange(-1.0, 1.0 + 1e-9, 0.5), "log_c0": np.array([20.0, 30.0, 40.0, 50.0, 60.0]),
               "gamma": np.array([0.05, 0.1, 0.2, 0.4])},
    derived={"flops": (("params", "tokens"), flops_of)},
    sampling=Sampling(PRIORS, to_law, from_law),
)
