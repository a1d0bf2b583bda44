"""Kaplan et al. 2020's joint law of parameters and data, with an optional irreducible term.

    L(N, D) = [(Nc / N)^(alphaN / alphaD) + Dc / D]^alphaD            (``kaplan``, their eq. 1.5)
    L(N, D) = E + [(Nc / N)^(alphaN / alphaD) + Dc / D]^alphaD        (``kaplan_e``)

N parameters, D tokens, L in nats per token. Fitted in log space:
log L = alphaD * logaddexp((alphaN / alphaD)(log Nc - log N), log Dc - log D) (and logaddexp with e = log E).
Kaplan et al.'s values (WebText2, non-embedding N): Nc 6.4e13, Dc 1.8e13, alphaN 0.076, alphaD 0.103.

Sampled (Bayesian models) as [e,] n_ref = alphaN log(Nc / N_REF), d_ref = alphaD log(Dc / D_REF) (the log
loss of each term at the reference size) and log alphaN, log alphaD. Compute-optimal split and the tokens to a loss in closed form.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import D_REF, N_REF, DataToLoss, Law, Sampling


def kaplan_log_loss(theta, *, params, tokens):
    """log L = alphaD logaddexp((alphaN / alphaD)(log Nc - log N), log Dc - log D) [logaddexp e]."""
    alpha_n, alpha_d = theta["alpha_n"], theta["alpha_d"]
    inner = jnp.logaddexp(alpha_n / alpha_d * (theta["log_nc"] - jnp.log(params)), theta["log_dc"] - jnp.log(tokens))
    log_loss = alpha_d * inner
    if "e" in theta:
        log_loss = jnp.logaddexp(theta["e"], log_loss)
    return log_loss


def minimum_loss(theta, params):
    """L(N, D -> infinity) = [E +] (Nc / N)^alphaN, nats per token."""
    floor = np.exp(theta["e"]) if "e" in theta else 0.0
    return floor + np.exp(theta["alpha_n"] * (theta["log_nc"] - np.log(params)))


def tokens_to_loss(theta, params, loss):
    """D = Dc / ((L [- E])^(1 / alphaD) - (Nc / N)^(alphaN / alphaD)): the tokens at which a model of N
    parameters reaches L; infinite where L is at or below its minimum."""
    floor = np.exp(theta["e"]) if "e" in theta else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = (np.asarray(loss) - floor) ** (1.0 / theta["alpha_d"]) - np.exp(
            theta["alpha_n"] / theta["alpha_d"] * (theta["log_nc"] - np.log(params)))
        tokens = np.exp(theta["log_dc"] - np.log(gap))
    return np.where((np.asarray(loss) > minimum_loss(theta, params)) & (gap > 0), tokens, np.inf)


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


def optimal_log_params(theta, log_c6):
    """log N* = (log p + p log Nc - log Dc + log(C / 6)) / (1 + p), p = alphaN / alphaD: the minimum on D = C / (6 N)."""
    p = theta["alpha_n"] / theta["alpha_d"]
    return (np.log(p) + p * theta["log_nc"] - theta["log_dc"] + log_c6) / (1.0 + p)


def to_law(theta) -> dict:
    """[e,] n_ref, d_ref, log alphaN, log alphaD -> [e,] log Nc = log N_REF + n_ref / alphaN, log Dc = log D_REF + d_ref / alphaD.

    n_ref = alphaN log(Nc / N_REF): the log loss of an N_REF model on unlimited data (without E);
    d_ref = alphaD log(Dc / D_REF): of an unlimited model on D_REF tokens.
    """
    *e, n_ref, d_ref, log_alpha_n, log_alpha_d = (theta[..., i] for i in range(theta.shape[-1]))
    alpha_n, alpha_d = jnp.exp(log_alpha_n), jnp.exp(log_alpha_d)
    out = {"log_nc": np.log(N_REF) + n_ref / alpha_n, "log_dc": np.log(D_REF) + d_ref / alpha_d,
           "alpha_n": alpha_n, "alpha_d": alpha_d}
    return {"e": e[0], **out} if e else out


def from_law(t) -> np.ndarray:
    core = [t["alpha_n"] * (t["log_nc"] - np.log(N_REF)), t["alpha_d"] * (t["log_dc"] - np.log(D_REF)),
            np.log(t["alpha_n"]), np.log(t["alpha_d"])]
    return np.array(([t["e"]] if "e" in t else []) + core, dtype=float)


# Normal prior (centre, scale) per sampled coordinate and the prior mean of its family spread: centred
# on Kaplan et al.'s constants (Nc 6.4e13, Dc 1.8e13, alphaN 0.076, alphaD 0.103), a factor ~e on each
# term's level and ~1.6 on each exponent
PRIORS = {
    "n_ref": (0.076 * np.log(6.4e13 / N_REF), 0.5, 0.2), "d_ref": (0.103 * np.log(1.8e13 / D_REF), 1.0, 0.3),
    "log_alpha_n": (np.log(0.076), 0.5, 0.3), "log_alpha_d": (np.log(0.103), 0.5, 0.3),
}
# with an irreducible term (a Chinchilla-like E) the power terms are smaller and steeper
PRIORS_E = {
    "e": (np.log(1.5), 0.5, 0.2), "n_ref": (np.log(0.6), 1.0, 0.5), "d_ref": (np.log(0.4), 1.0, 0.5),
    "log_alpha_n": (np.log(0.3), 0.5, 0.3), "log_alpha_d": (np.log(0.3), 0.5, 0.3),
}

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
    sampling=Sampling(PRIORS, to_law, from_law),
    optimal_log_params=optimal_log_params,
    data_to_loss=DataToLoss(minimum_loss, tokens_to_loss),
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
    sampling=Sampling(PRIORS_E, to_law, from_law),
    optimal_log_params=optimal_log_params,
    data_to_loss=DataToLoss(minimum_loss, tokens_to_loss),
)
