"""Loss trajectories with a critical batch size: the su2024 questions, as posterior draws with bands.

From a fit of a law that answers them (``Law.trajectory``: ``su2024``, Su et al. 2024). For a model of N
parameters trained S steps at B tokens per step, with the fitted law's draws of its constants:

1. :func:`minimum_loss`         L_inf(N) = (Nc / N)^alphaN, the loss after unlimited steps (nats per token);
2. :func:`steps_to_loss`        S(L) = Smin(L) (1 + Bcrit(L) / B), Smin(L) = Sc / (L - L_inf(N))^(1 / alphaS)
                                (B omitted: Smin, the fewest steps, at a batch far above Bcrit);
   :func:`tokens_to_loss`       S(L) B (B omitted: Emin = Smin Bcrit, the fewest tokens, at a batch far below Bcrit);
3. :func:`critical_batch_size`  Bcrit(L) = B* / L^(1 / alphaB), tokens per step;
4. :func:`loss_curve`           L(N, S; B) for any B and S (the law, or a new run with seed and checkpoint noise).

A target loss at or below a draw's L_inf is never reached in that draw: its steps and tokens are
infinite, and ``p_reachable`` in the summary is the posterior probability that the loss is reachable.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayeslaw.inference.nuts import DEFAULT_QUANTILES, Fit, Prediction, summarize
from bayeslaw.laws import Trajectory, forms

__all__ = ["critical_batch_size", "loss_curve", "minimum_loss", "steps_to_loss", "tokens_to_loss"]


def _answers(fit: Fit) -> Trajectory:
    """The fit's law's trajectory answers; a law without them raises naming the laws that have them."""
    answers = fit.spec.law.trajectory
    if answers is None:
        able = forms(lambda law: law.trajectory)
        raise ValueError(f"this answer needs a fit of a law of training trajectories ({', '.join(able)} form: "
                         f"bayeslaw.fit(df, form={able[0]!r})); this fit's form is {fit.form!r}")
    return answers


def _law_theta(fit: Fit, family: str | None, seed: int) -> dict:
    return {k: jnp.asarray(v)[:, None] for k, v in fit.law_theta(family, seed=seed).items()}  # (sample, 1)


def _targets(family: str | None, **columns) -> pd.DataFrame:
    """One row per combination of the broadcast ``columns`` (scalars or 1-d arrays of equal length)."""
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in columns.values()))
    table = pd.DataFrame(dict(zip(columns, arrays, strict=True)))
    return table.assign(family=family) if family is not None else table


def minimum_loss(fit: Fit, params, *, family: str | None = None, quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(1) L_inf(N) = (Nc / N)^alphaN: the lowest loss a model of ``params`` parameters reaches (nats per token)."""
    answers = _answers(fit)
    theta = _law_theta(fit, family, seed)
    targets = _targets(family, params=params)
    values = np.asarray(answers.minimum_loss(theta, targets["params"].to_numpy()[None, :]))
    return summarize(values, targets, kind="law", quantiles=quantiles, name="minimum_loss")


def critical_batch_size(fit: Fit, loss, *, family: str | None = None, quantiles=DEFAULT_QUANTILES,
                        seed: int = 0) -> Prediction:
    """(3) Bcrit(L) = B* / L^(1 / alphaB): the critical batch size at loss L, tokens per step."""
    answers = _answers(fit)
    theta = _law_theta(fit, family, seed)
    targets = _targets(family, loss=loss)
    values = np.asarray(answers.critical_batch_size(theta, targets["loss"].to_numpy()[None, :]))
    return summarize(values, targets, kind="law", quantiles=quantiles, name="critical_batch_size",
                     units="tokens per step")


def _to_loss(fit, params, loss, batch_size, family, quantiles, seed, *, tokens: bool) -> Prediction:
    answers = _answers(fit)
    theta = _law_theta(fit, family, seed)
    columns = {"params": params, "loss": loss} if batch_size is None else {"params": params, "loss": loss,
                                                                            "batch_size": batch_size}
    targets = _targets(family, **columns)
    n, target = targets["params"].to_numpy()[None, :], targets["loss"].to_numpy()[None, :]
    if batch_size is None:
        values = answers.min_tokens(theta, n, target) if tokens else answers.min_steps(theta, n, target)
    else:
        batch = targets["batch_size"].to_numpy()[None, :]
        values = answers.steps_to_loss(theta, n, target, batch) * (batch if tokens else 1.0)
    values = np.asarray(values)
    prediction = summarize(values, targets, kind="law", quantiles=quantiles, name="tokens" if tokens else "steps",
                           units="tokens" if tokens else "optimizer steps")
    prediction.summary["p_reachable"] = np.isfinite(values).mean(axis=0)
    return prediction


def steps_to_loss(fit: Fit, params, loss, *, batch_size=None, family: str | None = None,
                  quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(2) Optimizer steps for a model of ``params`` parameters to reach ``loss``: S = Smin (1 + Bcrit / B) at
    ``batch_size`` B (tokens per step), or Smin = Sc / (L - L_inf)^(1 / alphaS), the fewest, when B is omitted."""
    return _to_loss(fit, params, loss, batch_size, family, quantiles, seed, tokens=False)


def tokens_to_loss(fit: Fit, params, loss, *, batch_size=None, family: str | None = None,
                   quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(2) Training tokens to reach ``loss``: S B at ``batch_size`` B, or Emin = Smin Bcrit, the fewest, when B is omitted."""
    return _to_loss(fit, params, loss, batch_size, family, quantiles, seed, tokens=True)


def loss_curve(fit: Fit, params: float, batch_size: float, steps, *, family: str | None = None, kind: str = "law",
               quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(4) The loss curve L(N, S; B) of a model of ``params`` parameters at ``batch_size`` tokens per step,
    at each of ``steps`` (``kind="new_run"`` adds a new run's seed offset and checkpoint noise)."""
    _answers(fit)
    targets = _targets(family, params=params, batch_size=batch_size, steps=steps)
    targets["tokens"] = targets["steps"] * targets["batch_size"]
    return fit.predict(targets, kind=kind, quantiles=quantiles, seed=seed)
