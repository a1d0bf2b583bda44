"""Loss as a function of training compute alone.

    L(C) = E + (C0 / C)^gamma

C in FLOPs (the table's ``flops`` column where the source gives it, else 6 N D), L in nats per token.
Fitted in log space: log L = logaddexp(e, gamma (log C0 - log C)).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import Law


def compute_log_loss(theta, *, flops):
    """log L(C) = logaddexp(e, gamma (log C0 - log C))."""
    return jnp.logaddexp(theta["e"], theta["gamma"] * (theta["log_c0"] - jnp.log(flops)))


def flops_of(df) -> np.ndarray:
    """Training FLOPs per row: the ``flops`` column where it is given, 6 N D elsewhere."""
    six_nd = 6.0 * df["params"].to_numpy(dtype=float) * df["tokens"].to_numpy(dtype=float)
    if "flops" not in df.columns:
        return six_nd
    given = df["flops"].to_numpy(dtype=float)
    return np.where(np.isfinite(given) & (given > 0), given, six_nd)


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
    derived={"flops": flops_of},
)
