"""Kaplan et al. 2020's joint law of parameters and data, with an optional irreducible term.

    L(N, D) = [(Nc / N)^(alphaN / alphaD) + Dc / D]^alphaD            (``kaplan``, their eq. 1.5)
    L(N, D) = E + [(Nc / N)^(alphaN / alphaD) + Dc / D]^alphaD        (``kaplan_e``)

N parameters, D tokens, L in nats per token. Fitted in log space:
log L = alphaD * logaddexp((alphaN / alphaD)(log Nc - log N), log Dc - log D) (and logaddexp with e = log E).
Kaplan et al.'s values (WebText2, non-embedding N): Nc 6.4e13, Dc 1.8e13, alphaN 0.076, alphaD 0.103.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import Law


def kaplan_log_loss(theta, *, params, tokens):
    """log L = alphaD logaddexp((alphaN / alphaD)(log Nc - log N), log Dc - log D) [logaddexp e]."""
    alpha_n, alpha_d = theta["alpha_n"], theta["alpha_d"]
    inner = jnp.logaddexp(alpha_n / alpha_d * (theta["log_nc"] - jnp.log(params)), theta["log_dc"] - jnp.log(tokens))
    log_loss = alpha_d * inner
    if "e" in theta:
        log_loss = jnp.logaddexp(theta["e"], log_loss)
    return log_loss


def _natural(theta) -> dict:
    out = {"Nc": np.exp(theta["log_nc"]), "Dc": np.exp(theta["log_dc"]), "alpha_N": theta["alpha_n"],
           "alpha_D": theta["alpha_d"]}
    if "e" in theta:
        out = {"E": np.exp(theta["e"]), **out}
    return out


def _from_natural(p) -> dict:
    out = {"log_nc": np.log(p["Nc"]), "log_dc": np.log(p["Dc"]), "alpha_n": p["alpha_N"], "alpha_d": p["alpha_D"]}
    if "E" in p:
        out["e"] = np.log(p["E"])
    return out


_GRID = {
    "log_nc": np.array([15.0, 25.0, 35.0]),
    "log_dc": np.array([15.0, 25.0, 35.0]),
    "alpha_n": np.array([0.05, 0.1, 0.2, 0.4]),
    "alpha_d": np.array([0.05, 0.1, 0.2, 0.4]),
}

KAPLAN = Law(
    name="kaplan",
    formula="L = [(Nc / N)^(alphaN / alphaD) + Dc / D]^alphaD",
    theta_names=("log_nc", "log_dc", "alpha_n", "alpha_d"),
    inputs=("params", "tokens"),
    log_loss=kaplan_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    init_grid=_GRID,
)

KAPLAN_E = Law(
    name="kaplan_e",
    formula="L = E + [(Nc / N)^(alphaN / alphaD) + Dc / D]^alphaD",
    theta_names=("e", "log_nc", "log_dc", "alpha_n", "alpha_d"),
    inputs=("params", "tokens"),
    log_loss=kaplan_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    init_grid={"e": np.array([-1.0, 0.0, 0.5]), **_GRID},
)
