"""Evaluation stage: scores of a prediction against held-out losses."""

from __future__ import annotations

import numpy as np

__all__ = ["are"]


def are(y_true, y_pred) -> float:
    """Absolute relative error, mean_i |y_i - y_hat_i| / y_i (Choshen et al. 2025); a fraction, not %."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"are: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("are: no points to score (empty arrays)")
    if np.any(y_true <= 0):
        raise ValueError("are: y_true must be positive (losses)")
    return float(np.mean(np.abs(y_true - y_pred) / y_true))
