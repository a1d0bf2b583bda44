"""Multi-power law of a loss curve under a learning-rate schedule (Luo et al. 2025, arXiv:2503.12811).

    L(t; N) = L0(N) + A(N) (S1(t) + S_W)^-alpha(N) - LD(t; N)
    LD(t; N) = B(N) sum_{k<=t} (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),  G(x) = 1 - (C x + 1)^-beta
               (every change of the rate, the warmup's rises included, as in Luo et al.'s code)
    log L0(N) = l0 + l0_n log(N / 1e8), likewise log A(N) (a, a_n), alpha(N) (alpha, alpha_n), log B(N) (b, b_n)
    and at the run's peak rate eta: log L0 + l0_lr log(eta / 1e-3), likewise log A, log B; alpha (eta / 1e-3)^alpha_lr

t optimizer steps, eta_k the learning rate at step k, S1(t) + S_W the summed learning rate up to t
(warmup included), S_k(t) = sum_{k<=j<=t} eta_j; L in nats per token, N parameters. Luo et al. fit one
size at a time; over sizes L0, A, alpha and B move with N
(:func:`~bayeslaw.laws.schedule_terms.at_size`; their 25M and 100M fits nearly share C, beta, gamma), and
the Bayesian models pool them across sizes and families. They move with the run's peak learning rate
too (:func:`~bayeslaw.laws.schedule_terms.at_peak_lr`, as in the annealing law): the law reads the
rate's value, yet over a sweep of peak rates one set of constants does not carry. A point fit holds
the size slopes at 0 on a table of one size and the rate slopes on one peak rate (``held_alone``). The loss
drop is computed on a binned design (:mod:`bayeslaw.laws.schedule_terms`). Luo et al.'s own fitting
protocol is ``fit_point(..., method="adamw")`` (:data:`LUO_PATH`, one size at one peak rate): it reproduces their published constants, but on other
curves it ends far from the objective's minimum, so ``epoch`` stays the default (README).

Fitted as l0 = log L0, a = log A, alpha, b = log B at 1e8 parameters and peak rate 1e-3, their slopes
l0_n, a_n, alpha_n, b_n in log N and l0_lr, a_lr, alpha_lr, b_lr in log eta, c = log C and the exponents
beta, gamma. Reads a table's ``params``, ``step`` and ``schedule`` (JSON,
:class:`bayeslaw.data.schedules.Schedule`) columns.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.special

from bayeslaw.data.schedules import run_schedules
from bayeslaw.laws.base import Law, PathFit
from bayeslaw.laws.runs import array_module
from bayeslaw.laws.schedule_terms import (LR_SLOPE_PRIORS, POWER_PRIORS, POWER_SLOPE_PRIORS, at_peak_lr, at_size,
                                          schedule_inputs, size_sampling)

DESIGN = ("lr_area", "drop_weight", "drop_lr", "drop_area")
VARYING = ("l0", "a", "alpha", "b")  # the parameters that move with N and with the peak rate
SIZE_SLOPES = {f"{k}_n": 0.0 for k in VARYING}
LR_SLOPES = {f"{k}_lr": 0.0 for k in VARYING}
SLOPES = {**SIZE_SLOPES, **LR_SLOPES}


def constants_at(theta, values) -> dict:
    """The constants at N = ``values["params"]`` and peak rate ``values["peak_lr"]``, the slopes folded in."""
    return at_peak_lr(at_size(theta, values["params"], VARYING), values["peak_lr"], ("l0", "a", "b"), ("alpha",))


def multipower_loss(theta, *, params, peak_lr, lr_area, drop_weight, drop_lr, drop_area):
    """L(t; N, eta) from the binned design: params, peak_lr, lr_area (row,), drop_* (row, bin)."""
    theta = constants_at(theta, {"params": params, "peak_lr": peak_lr})
    g = 1.0 - (jnp.exp(theta["c"])[..., None] * drop_lr ** -theta["gamma"][..., None] * drop_area + 1.0) ** (
        -theta["beta"][..., None])
    drop = jnp.exp(theta["b"]) * jnp.sum(drop_weight * g, axis=-1)
    return jnp.exp(theta["l0"]) + jnp.exp(theta["a"]) * lr_area ** -theta["alpha"] - drop


def multipower_log_loss(theta, **inputs):
    """log L(t); a parameter set that drives L to 0 or below gets log(1e-3) (a finite, large misfit)."""
    theta = {k: jnp.asarray(v) for k, v in theta.items()}
    return jnp.log(jnp.maximum(multipower_loss(theta, **inputs), 1e-3))


def _natural(theta) -> dict:
    """L0, A, alpha, B at 1e8 parameters and peak rate 1e-3, C, beta, gamma, and the slopes of log L0, log A,
    alpha, log B in log N and in log eta."""
    return {"L0": np.exp(theta["l0"]), "A": np.exp(theta["a"]), "alpha": theta["alpha"], "B": np.exp(theta["b"]),
            "C": np.exp(theta["c"]), "beta": theta["beta"], "gamma": theta["gamma"],
            **{k: theta[k] for k in SLOPES if k in theta}}


def _from_natural(p) -> dict:
    log = array_module(p["L0"]).log  # traced by the adamw path, which steps in the natural parameters
    return {"l0": log(p["L0"]), "a": log(p["A"]), "alpha": p["alpha"], "b": log(p["B"]),
            "c": log(p["C"]), "beta": p["beta"], "gamma": p["gamma"], **{k: p.get(k, 0.0) for k in SLOPES}}


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
    **LR_SLOPE_PRIORS,
    "b_lr": (-0.5, 0.5, 0.2),  # B, like the annealing law's C, between 1 / eta (steps alone) and constant
}


LUO_HUBER_DELTA = 1e-3  # their start's Huber delta on log residuals (the path's objective uses the same)
LUO_REFERENCE_LR = 3e-4  # the peak rate their B grid (100..1000) was set for; scaled to the data's own peak


def linearised_start(df, inputs) -> dict[str, float]:
    """Luo et al.'s start: L0, A, alpha, B of L0 + A S1^-alpha - B (eta_peak - eta_t) by L-BFGS-B (finite
    differences, as theirs) from each point of a 5 x 3 x 3 x 3 grid around a line through log(L - min L +
    0.01) against log S1, the best end; C = 1 and beta = gamma = 0.5."""
    lr_area, loss = np.asarray(inputs["lr_area"]), np.asarray(inputs["loss"])
    schedules = run_schedules(df)
    runs, steps = df["run"].to_numpy(), df["step"].to_numpy(dtype=int)
    eta = np.empty(len(df))
    for run in np.unique(runs):
        at = runs == run
        eta[at] = schedules[run].lr(steps[at])
    peak = np.array([schedules[run].peak_lr for run in runs])
    floor = loss.min()
    slope, intercept = np.polyfit(np.log(lr_area), np.log(loss - floor + 0.01), 1)
    log_y = np.log(loss)

    def objective(p):
        pred = p[0] + p[1] * lr_area ** -p[2] - p[3] * (peak - eta)
        if not np.all(pred > 0):  # theirs takes a log of it (NaN): a large value instead
            return 1e10
        # scipy's Huber on host arrays, as theirs: point.huber is jax, which would compile every operation here
        return float(np.sum(scipy.special.huber(LUO_HUBER_DELTA, log_y - np.log(pred))))

    grid = np.stack(np.meshgrid(np.linspace(floor - 0.2, floor + 0.2, 5),
                                np.linspace(np.exp(intercept) - 0.1, np.exp(intercept) + 0.1, 3),
                                np.linspace(-slope - 0.1, -slope + 0.1, 3),
                                np.linspace(100.0, 1000.0, 3) * LUO_REFERENCE_LR / peak.max(), indexing="ij"), -1)
    best = (np.inf, None)
    for start in grid.reshape(-1, 4):
        result = scipy.optimize.minimize(objective, start, method="L-BFGS-B", bounds=[(0, np.inf)] * 4,
                                         options={"maxiter": 100000, "ftol": 1e-9, "gtol": 1e-6, "eps": 1e-8})
        if result.fun < best[0]:
            best = (float(result.fun), result.x)
    return {**dict(zip(("L0", "A", "alpha", "B"), map(float, best[1]), strict=True)), "C": 1.0, "beta": 0.5, "gamma": 0.5}


#: Luo et al.'s fit (their released code's src/fitting.py and src/config.py; torch.optim.AdamW's betas, eps
#: and weight decay 0.01): 200 steps, rate 5e-2 for L0, A, B, C and 5e-3 for the exponents, patience 20
LUO_PATH = PathFit(start=linearised_start,
                   rates={"L0": 5e-2, "A": 5e-2, "B": 5e-2, "C": 5e-2, "alpha": 5e-3, "beta": 5e-3, "gamma": 5e-3},
                   steps=200, patience=20, weight_decay=1e-2, grad_tol=1e-5,
                   source="Luo et al. 2025")


MULTIPOWER = Law(
    name="multipower",
    formula="L(t; N) = L0 + A (S1(t) + S_W)^-alpha - B sum_k (eta_{k-1} - eta_k) (1 - (C eta_k^-gamma S_k(t) + 1)^-beta), "
            "L0, A, alpha, B linear in log N and log peak rate",
    theta_names=("l0", "a", "alpha", "b", "c", "beta", "gamma", *SLOPES),
    inputs=("params", "peak_lr", *DESIGN),
    log_loss=multipower_log_loss,
    natural=_natural,
    from_natural=_from_natural,
    # 2^3 starts around the published fits (L0 2.4-3.0, A 0.5-0.7, alpha 0.4-0.5, B 360-520, C ~2, beta ~0.6,
    # gamma ~0.64): each start's objective holds a (row, bin) power per row, so a large grid costs minutes
    init_grid={"l0": np.log([2.5, 3.2]), "a": np.log([0.6]), "alpha": (0.3, 0.6), "b": np.log([400.0]),
               "c": np.log([2.0]), "beta": (0.6,), "gamma": (0.4, 0.8), **{k: (0.0,) for k in SLOPES}},
    point_start={"l0": np.log(3.0), "a": np.log(0.5), "alpha": 0.5, "b": np.log(400.0), "c": np.log(2.0),
                 "beta": 0.6, "gamma": 0.6, **SLOPES},
    lower_bounds={"alpha": 0.0, "beta": 0.0, "gamma": 0.0},
    derived={name: (("step", "schedule"), lambda columns, name=name: schedule_inputs(columns)[name])
             for name in (*DESIGN, "peak_lr")},
    features=DESIGN[1:],
    sampling=size_sampling(PRIORS, ("l0", "a", "alpha", "b", "c", "beta", "gamma", *SLOPES), slopes=SLOPES),
    path=LUO_PATH,
    held_alone={"params": SIZE_SLOPES, "peak_lr": LR_SLOPES},
    constants_at=constants_at,
)
