"""Evaluation stage: scores of a prediction against held-out losses."""

from __future__ import annotations

import numpy as np

__all__ = ["are", "crps"]


def are(y_true, y_pred) -> float:
    """Absolute relative error, mean_i |y_i - y_hat_i| / y_i (Choshen et al. 2025); a fraction, not %."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"are: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("are: no points to score (empty arrays)")
    bad = ~(np.isfinite(y_true) & (y_true > 0))  # NaN passes `<= 0` and would make the score NaN unannounced
    if np.any(bad):
        raise ValueError(f"are: y_true must be positive, finite losses; {int(bad.sum())} of {y_true.size} are not "
                         f"(first: {float(y_true[bad].ravel()[0])})")
    return float(np.mean(np.abs(y_true - y_pred) / y_true))


def crps(draws, y) -> np.ndarray:
    """Continuous ranked probability score of predictive draws (sample, target) at observations y (target,).

    CRPS = E|X - y| - E|X - X'| / 2, in the units of y (nats); for a point prediction it is |x - y|.
    Computed exactly on the empirical distribution of the draws, from their order statistics:
    sum_ij |x_i - x_j| = 2 sum_i (2i - S - 1) x_(i).
    """
    draws = np.asarray(draws, dtype=float)
    y = np.asarray(y, dtype=float)
    if draws.ndim == 1:
        draws = draws[:, None]
    if y.ndim > 1 or draws.ndim != 2 or (draws.shape[1:] != y.shape[-1:] and not (y.ndim == 0 and draws.shape[1] == 1)):
        raise ValueError(f"crps: draws have shape {draws.shape}, observations {y.shape}; need draws (sample, target) "
                         f"and observations (target,)")
    if draws.shape[0] == 0:
        raise ValueError(f"crps: no draws (draws have shape {draws.shape}); a predictive needs at least one")
    s = draws.shape[0]
    spread = np.sum((2 * np.arange(1, s + 1) - s - 1)[:, None] * np.sort(draws, axis=0), axis=0) / s**2
    return np.mean(np.abs(draws - y), axis=0) - spread
