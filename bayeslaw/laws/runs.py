"""The shape of a training run relative to the law of final losses, as pure functions of x = D / D_run.

``shape_basis``: the terms of a family's schedule shape g(x) = sum_k w_k (-log x)^k / k!, 0 at x = 1.
``bridge_kernel``: the covariance of a smooth deviation along a run, an Ornstein-Uhlenbeck process
pinned to 0 at x = 1. Used by the run-level likelihood (:mod:`bayeslaw.models.runs`) and the simulator.
"""

from __future__ import annotations

from math import factorial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ELL", "SHAPE_DEGREE", "array_module", "bridge_kernel", "shape_basis"]

SHAPE_DEGREE = 3  # K: terms of the schedule shape g_f(x) = sum_k w_k (-log x)^k / k!
ELL = 0.2  # correlation length of a run's deviation, in fractions of the run
_FACTORIALS = np.array([factorial(k) for k in range(1, SHAPE_DEGREE + 1)], dtype=float)


def array_module(*arrays):
    """``jax.numpy`` when any argument is a JAX array (a tracer inside a model or ``jit`` is one), else
    ``numpy``. The run helpers serve both the model and the host side (data preparation, predictions,
    the simulator): on host arrays numpy computes them at once, where ``jax.numpy`` would compile a
    program for every operation and shape (tens of them per fit and prediction). Two modules only, so
    no array-API dispatch library."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def shape_basis(fraction):
    """(-log x)^k / k! for k = 1..SHAPE_DEGREE at fractions x of the run: shape (..., K); 0 at x = 1.

    In log x, like the law's token term: early in a run (x -> 0) the shape can follow the law's
    curvature, so a run's curve does not have to be explained by the law of final losses."""
    xp = array_module(fraction)
    log_x = -xp.log(xp.asarray(fraction, dtype=float))[..., None]
    return log_x ** np.arange(1, SHAPE_DEGREE + 1) / _FACTORIALS


def bridge_kernel(x1, x2, ell=ELL):
    """k(x, x') = exp(-|x - x'| / ell) - exp(-(2 - x - x') / ell): an OU process pinned to 0 at x = 1.

    ``x1`` (..., n, 1) and ``x2`` (..., 1, m) broadcast; ``ell`` broadcasts against the result."""
    xp = array_module(x1, x2, ell)
    return xp.exp(-xp.abs(x1 - x2) / ell) - xp.exp(-(2.0 - x1 - x2) / ell)
