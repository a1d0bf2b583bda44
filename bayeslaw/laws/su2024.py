"""Loss trajectories with a critical batch size (Su et al. 2024, "Unraveling the Mystery of Scaling Laws: Part I").

    L(N, S) = (Nc / N)^alphaN + (Sc / Smin)^alphaS
    Smin    = S / (1 + Bcrit(L) / B)          (steps at infinite batch equivalent to S steps at batch B)
    Bcrit(L) = B* / L^(1 / alphaB)            (critical batch size, tokens)

N parameters, S optimizer steps, B tokens per step, L in nats per token. L appears on both sides; it
is the root in x = log L of

    g(x) = x - logaddexp(alphaN (log Nc - log N), alphaS (log Sc - log S + log1p(Bcrit(e^x) / B))),

which is unique: g is increasing and concave (the second term is a log-sum-exp of functions convex
and decreasing in x). Newton's method from the left bracket x0 (Bcrit = 0) therefore climbs to the
root without overshooting; ``jax.lax.custom_root`` gives the gradient by the implicit function
theorem (dx/dtheta = -g_theta / g_x), so NUTS and L-BFGS differentiate through the solve exactly
without unrolling it. (Hand-written: the solve is elementwise and one-dimensional, where a general
root-finding library would add a dependency for twenty lines.)

Kaplan et al. 2020's values, which Su et al. re-estimate: Nc 8.8e13, alphaN 0.076, Sc 2.1e3,
alphaS 0.76, B* 2.1e8 tokens, alphaB 0.21.

Sampled (Bayesian models) as n_ref = alphaN log(Nc / N_REF), s_ref = alphaS log(Sc / S_REF) and the logs
of the exponents and of B*. It answers trajectory questions (:class:`~bayeslaw.laws.base.Trajectory`),
and its compute-optimal split is searched numerically at a given batch size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayeslaw.laws.base import N_REF, S_REF, Law, Sampling, Trajectory

NEWTON_MAX_STEPS = 50  # from the left bracket: monotone, then quadratic; typically 4-8 steps to 1e-12
NEWTON_TOL = 1e-12  # on the step in log L


def _terms(theta, params, steps, batch_size):
    """log of the N-term, a function x -> log of the S-term at loss e^x, and that S-term's log at Bcrit = 0 (Smin = S)."""
    log_n_term = theta["alpha_n"] * (theta["log_nc"] - jnp.log(params))
    log_s_over = theta["log_sc"] - jnp.log(steps)

    def log_s_term(x):
        log_bcrit = theta["log_bstar"] - x / theta["alpha_b"]
        return theta["alpha_s"] * (log_s_over + jax.nn.softplus(log_bcrit - jnp.log(batch_size)))

    return log_n_term, log_s_term, theta["alpha_s"] * log_s_over


def su2024_log_loss(theta, *, params, steps, batch_size):
    """log L(N, S; B): the root of g(x) = x - logaddexp(log N-term, log S-term(x)), by Newton's method."""
    params, steps, batch_size = jnp.broadcast_arrays(*(jnp.asarray(v, dtype=float) for v in (params, steps, batch_size)))
    theta = {k: jnp.asarray(v) for k, v in theta.items()}
    log_n_term, log_s_term, log_s_term_at_zero_bcrit = _terms(theta, params, steps, batch_size)
    lower = jnp.logaddexp(log_n_term, log_s_term_at_zero_bcrit)  # the root's left bracket

    def residual(x):
        return x - jnp.logaddexp(log_n_term, log_s_term(x))

    def newton(g, x0):
        slope = jax.grad(lambda x: jnp.sum(g(x)))

        def step(carry):
            x, _, i = carry
            dx = g(x) / slope(x)
            return x - dx, jnp.max(jnp.abs(dx)), i + 1

        def going(carry):
            _, size, i = carry
            return (size > NEWTON_TOL) & (i < NEWTON_MAX_STEPS)

        return jax.lax.while_loop(going, step, (x0, jnp.asarray(jnp.inf, x0.dtype), 0))[0]

    # g is elementwise: its Jacobian is diagonal, its tangent map's value at ones is that diagonal
    return jax.lax.custom_root(residual, lower, newton, lambda g, y: y / g(jnp.ones_like(y)))


def steps_of(columns) -> np.ndarray:
    """Optimizer steps per row: tokens / batch_size (tokens per step)."""
    return columns["tokens"] / columns["batch_size"]


def minimum_loss(theta, params):
    """L_inf(N) = (Nc / N)^alphaN: the loss of a model of N parameters after infinitely many steps."""
    return jnp.exp(theta["alpha_n"] * (theta["log_nc"] - jnp.log(params)))


def critical_batch_size(theta, loss):
    """Bcrit(L) = B* / L^(1 / alphaB), tokens per step."""
    return jnp.exp(theta["log_bstar"] - jnp.log(loss) / theta["alpha_b"])


def min_steps(theta, params, loss):
    """Smin(L) = Sc / (L - L_inf(N))^(1 / alphaS): fewest steps (infinite batch) to reach loss L; inf if L <= L_inf."""
    excess = loss - minimum_loss(theta, params)
    return jnp.where(excess > 0, jnp.exp(theta["log_sc"] - jnp.log(jnp.where(excess > 0, excess, 1.0)) / theta["alpha_s"]), jnp.inf)


def min_tokens(theta, params, loss):
    """Emin(L) = Smin(L) Bcrit(L): fewest tokens (batch << Bcrit) to reach loss L.

    Steps S at batch B give S B = Smin (B + Bcrit) tokens, which falls to Smin Bcrit as B -> 0.
    """
    return min_steps(theta, params, loss) * critical_batch_size(theta, loss)


def steps_to_loss(theta, params, loss, batch_size):
    """Steps at batch B to reach loss L: S = Smin(L) (1 + Bcrit(L) / B)."""
    return min_steps(theta, params, loss) * (1.0 + critical_batch_size(theta, loss) / batch_size)


def to_law(theta) -> dict:
    """n_ref, s_ref, log alphaN, log alphaS, log B*, log alphaB -> the law's constants.

    n_ref = alphaN log(Nc / N_REF) = log L_inf(N_REF), the minimum loss of an N_REF model;
    s_ref = alphaS log(Sc / S_REF), the log of the step term after S_REF steps at infinite batch.
    """
    n_ref, s_ref, log_alpha_n, log_alpha_s, log_bstar, log_alpha_b = (theta[..., i] for i in range(6))
    alpha_n, alpha_s = jnp.exp(log_alpha_n), jnp.exp(log_alpha_s)
    return {"log_nc": np.log(N_REF) + n_ref / alpha_n, "alpha_n": alpha_n, "log_sc": np.log(S_REF) + s_ref / alpha_s,
            "alpha_s": alpha_s, "log_bstar": log_bstar, "alpha_b": jnp.exp(log_alpha_b)}


def from_law(t) -> np.ndarray:
    return np.array([t["alpha_n"] * (t["log_nc"] - np.log(N_REF)), t["alpha_s"] * (t["log_sc"] - np.log(S_REF)),
                     np.log(t["alpha_n"]), np.log(t["alpha_s"]), t["log_bstar"], np.log(t["alpha_b"])], dtype=float)


# Normal prior (centre, scale) per sampled coordinate and the prior mean of its family spread, centred
# on Kaplan et al.'s Nc 8.8e13, alphaN 0.076, Sc 2.1e3, alphaS 0.76, B* 2.1e8 tokens (centred at 2e8: within
# 0.05 of it in log, against a prior sd of 1.5), alphaB 0.21
PRIORS = {
    "n_ref": (0.076 * np.log(8.8e13 / N_REF), 0.5, 0.2), "s_ref": (0.76 * np.log(2.1e3 / S_REF), 1.0, 0.5),
    "log_alpha_n": (np.log(0.076), 0.5, 0.3), "log_alpha_s": (np.log(0.76), 0.5, 0.3),
    "log_bstar": (np.log(2e8), 1.5, 0.5), "log_alpha_b": (np.log(0.21), 0.5, 0.3),
}

SU2024 = Law(
    name="su2024",
    formula="L = (Nc / N)^alphaN + (Sc / Smin)^alphaS, Smin = S / (1 + Bcrit(L) / B), Bcrit = B* / L^(1 / alphaB)",
    theta_names=("log_nc", "alpha_n", "log_sc", "alpha_s", "log_bstar", "alpha_b"),
    inputs=("params", "steps", "batch_size"),
    log_loss=su2024_log_loss,
    natural=lambda t: {"Nc": np.exp(t["log_nc"]), "alpha_N": t["alpha_n"], "Sc": np.exp(t["log_sc"]),
                       "alpha_S": t["alpha_s"], "B*": np.exp(t["log_bstar"]), "alpha_B": t["alpha_b"]},
    from_natural=lambda p: {"log_nc": np.log(p["Nc"]), "alpha_n": p["alpha_N"], "log_sc": np.log(p["Sc"]),
                            "alpha_s": p["alpha_S"], "log_bstar": np.log(p["B*"]), "alpha_b": p["alpha_B"]},
    # 48 starts: each objective evaluation runs a Newton solve per row, so the grid is kept small
    init_grid={"log_nc": np.array([20.0, 30.0, 40.0]), "alpha_n": np.array([0.05, 0.15]),
               "log_sc": np.array([5.0, 9.0]), "alpha_s": np.array([0.5, 1.0]),
               "log_bstar": np.array([18.0]), "alpha_b": np.array([0.15, 0.3])},
    derived={"steps": (("tokens", "batch_size"), steps_of)},
    sampling=Sampling(PRIORS, to_law, from_law),
    numeric_split=True,
    trajectory=Trajectory(minimum_loss, critical_batch_size, min_steps, min_tokens, steps_to_loss),
)
