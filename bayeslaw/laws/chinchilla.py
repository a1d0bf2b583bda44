"""Chinchilla law (Hoffmann et al. 2022, Approach 3).

    L(N, D) = E + A / N^alpha + B / D^beta

N parameters, D training tokens, L in nats per token. Fitted in log space as

    log L = logsumexp(e, a - alpha log N, b - beta log D),  E = exp(e), A = exp(a), B = exp(b).

Sampled (Bayesian models) as e, a_ref = a - alpha log N_REF, b_ref = b - beta log D_REF (the log of
each term at a reference size) and log alpha, log beta; a family seen at three or more sizes in its
:class:`FamilyFrame`. Compute-optimal split in closed form (:func:`optimal_log_params`), and the tokens to a
loss (:func:`tokens_to_loss`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform

from bayeslaw.laws.base import D_REF, N_REF, DataToLoss, Law, Sampling


def chinchilla_log_loss(theta, *, params, tokens):
    """log L(N, D) = logsumexp(e, a - alpha log N, b - beta log D)."""
    e, a, b, alpha, beta = (theta[k] for k in ("e", "a", "b", "alpha", "beta"))
    terms = jnp.stack(
        jnp.broadcast_arrays(e, a - alpha * jnp.log(params), b - beta * jnp.log(tokens)), axis=0
    )
    return logsumexp(terms, axis=0)


def optimal_log_params(theta, log_c6):
    """log N* = (log(alpha / beta) + a - b + beta log(C / 6)) / (alpha + beta): the minimum of L on D = C / (6 N)."""
    t = theta
    return (np.log(t["alpha"] / t["beta"]) + t["a"] - t["b"] + t["beta"] * log_c6) / (t["alpha"] + t["beta"])


def minimum_loss(theta, params):
    """L(N, D -> infinity) = E + A / N^alpha, nats per token."""
    return np.exp(theta["e"]) + np.exp(theta["a"] - theta["alpha"] * np.log(params))


def tokens_to_loss(theta, params, loss):
    """D = (B / (L - E - A / N^alpha))^(1 / beta): the tokens at which a model of N parameters reaches L;
    infinite where L is at or below its minimum."""
    gap = np.asarray(loss) - minimum_loss(theta, params)
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens = np.exp((theta["b"] - np.log(gap)) / theta["beta"])
    return np.where(gap > 0, tokens, np.inf)


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


# --- as the Bayesian models sample it -----------------------------------------------------------

#: Normal prior (centre, scale) of each sampled coordinate and the prior mean of its spread across
#: families, weakly informative around Besiroglu et al. 2024's refit (E 1.817, A 482, B 2085,
#: alpha 0.348, beta 0.366); ``bayeslaw.plots.prior_predictive`` shows losses of ~1.5-10 nats at the data.
PRIORS = {
    "e": (float(np.log(1.817)), 0.5, 0.2),
    "a_ref": (-1.0, 1.0, 0.5),
    "b_ref": (-1.6, 1.0, 0.5),
    "log_alpha": (float(np.log(0.35)), 0.4, 0.3),
    "log_beta": (float(np.log(0.35)), 0.4, 0.3),
}
THETA = tuple(PRIORS)


def to_law(theta) -> dict:
    """e, a_ref, b_ref, log alpha, log beta -> e, a = a_ref + alpha log N_REF, b = b_ref + beta log D_REF, alpha, beta."""
    e, a_ref, b_ref, log_alpha, log_beta = (theta[..., i] for i in range(5))
    alpha, beta = jnp.exp(log_alpha), jnp.exp(log_beta)
    return {"e": e, "a": a_ref + alpha * np.log(N_REF), "b": b_ref + beta * np.log(D_REF), "alpha": alpha, "beta": beta}


def from_law(t) -> np.ndarray:
    return np.array([t["e"], t["a"] - t["alpha"] * np.log(N_REF), t["b"] - t["beta"] * np.log(D_REF),
                     np.log(t["alpha"]), np.log(t["beta"])], dtype=float)


class FamilyFrame(Transform):
    """theta_f = (e, a_ref, b_ref, log alpha, log beta) -> psi_f = (log L_f, log s_A, log s_B, phi, psi).

    At the family's data (N_f = exp(mean log N) of its rows, D_f likewise) the law is
    L_f = E + T_A + T_B with T_A = A / N_f^alpha, T_B = B / D_f^beta; s_A = alpha T_A and s_B = beta T_B
    are its slopes -dL/dlog N and -dL/dlog D. phi = log((T_A + T_B) / E) weighs the reducible part
    against the irreducible one, psi = log(T_A / T_B) splits the reducible part. The data pin L_f and
    the slopes; phi and psi carry what they leave open. In theta the level and the exponents trade along
    curved ridges, and E's scale changes by an order of magnitude between the data-pinned bulk and the
    corner where E -> 0 with beta -> 0; here no coordinate is bounded (E > 0 is built in).
    ``weight`` (per family, 0 or 1) switches the map off (identity) for non-centred families.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, shift_params, shift_tokens, weight):
        self.shift_params, self.shift_tokens, self.weight = shift_params, shift_tokens, weight

    def _forward(self, theta):
        e, a_ref, b_ref, log_alpha, log_beta = (theta[..., i] for i in range(len(THETA)))
        a = a_ref - jnp.exp(log_alpha) * self.shift_params  # log T_A
        b = b_ref - jnp.exp(log_beta) * self.shift_tokens  # log T_B
        reducible = jnp.logaddexp(a, b)
        return jnp.stack([jnp.logaddexp(e, reducible), a + log_alpha, b + log_beta, reducible - e, a - b], axis=-1)

    def _backward(self, phi):
        log_l, log_sa, log_sb, frac, split = (phi[..., i] for i in range(len(THETA)))
        reducible = log_l + jax.nn.log_sigmoid(frac)
        e = log_l + jax.nn.log_sigmoid(-frac)
        a = reducible + jax.nn.log_sigmoid(split)
        b = reducible + jax.nn.log_sigmoid(-split)
        log_alpha, log_beta = log_sa - a, log_sb - b
        return jnp.stack([e, a + jnp.exp(log_alpha) * self.shift_params, b + jnp.exp(log_beta) * self.shift_tokens,
                          log_alpha, log_beta], axis=-1)

    def __call__(self, theta):
        on = jnp.asarray(self.weight)[..., None] > 0.5
        return jnp.where(on, self._forward(theta), theta)

    def _inverse(self, phi):
        on = jnp.asarray(self.weight)[..., None] > 0.5
        return jnp.where(on, self._backward(phi), phi)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        # (e, a_ref, ...) -> (e, log T_A, log T_B, ...) is triangular with a unit diagonal; the rest has
        # |det| = p_E + p_A + p_B = 1 (the softmax weights of L_f's terms): the map keeps volume
        return jnp.zeros(jnp.shape(x)[:-1])

    def tree_flatten(self):
        return (self.shift_params, self.shift_tokens, self.weight), (("shift_params", "shift_tokens", "weight"), {})


def family_frame(log_params, log_tokens, centered) -> FamilyFrame:
    """The :class:`FamilyFrame` of families whose rows sit at mean log N ``log_params`` and mean log D
    ``log_tokens`` (identity where ``centered`` is 0)."""
    return FamilyFrame(jnp.asarray(log_params - np.log(N_REF)), jnp.asarray(log_tokens - np.log(D_REF)),
                       jnp.asarray(centered, dtype=float))


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
    # 3^5 = 243 of the 4500 starts, for studies that run many point fits
    coarse_grid={"a": (0.0, 10.0, 20.0), "b": (0.0, 10.0, 20.0), "e": (-1.0, 0.0, 1.0), "alpha": (0.0, 0.5, 1.0),
                 "beta": (0.0, 0.5, 1.0)},
    # the Hitchhiker's Guide's least squares start (its released fitting code)
    point_start={"a": 6.255414, "b": 7.3049974, "e": 0.6254804, "alpha": 0.3526596, "beta": 0.3526596},
    lower_bounds={"alpha": 0.0, "beta": 0.0},
    sampling=Sampling(PRIORS, to_law, from_law, frame=family_frame),
    optimal_log_params=optimal_log_params,
    data_to_loss=DataToLoss(minimum_loss, tokens_to_loss),
)
