"""Loss trajectories: how far a model goes with more data, and how long it takes, as posterior draws with bands.

From a fit of a law that answers them. A law of N parameters and D tokens solved for D (``Law.data_to_loss``:
chinchilla, kaplan, kaplan_e):

1. :func:`minimum_loss`         L(N, D -> infinity), e.g. E + A / N^alpha (nats per token);
2. :func:`tokens_to_loss`       D(L; N), e.g. (B / (L - E - A / N^alpha))^(1 / beta), training tokens.

A law of training trajectories with a critical batch size (``Law.trajectory``: ``su2024``, Su et al. 2024):
for a model of N parameters trained S steps at B tokens per step,

1. :func:`minimum_loss`         L_inf(N) = (Nc / N)^alphaN, the loss after unlimited steps (nats per token);
2. :func:`steps_to_loss`        S(L) = Smin(L) (1 + Bcrit(L) / B), Smin(L) = Sc / (L - L_inf(N))^(1 / alphaS)
                                (B omitted: Smin, the fewest steps, at a batch far above Bcrit);
   :func:`tokens_to_loss`       S(L) B (B omitted: Emin = Smin Bcrit, the fewest tokens, at a batch far below Bcrit);
3. :func:`critical_batch_size`  Bcrit(L) = B* / L^(1 / alphaB), tokens per step;
4. :func:`loss_curve`           L(N, S; B) for any B and S (the law, or a new run with seed and checkpoint noise).

A target loss at or below a draw's minimum is never reached in that draw: its steps and tokens are
infinite, and ``p_reachable`` in the summary is the posterior probability that the loss is reachable.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayeslaw.inference.nuts import DEFAULT_QUANTILES, Fit, NewFamilyWarning, Prediction, check_quantiles, summarize
from bayeslaw.laws import DataToLoss, Trajectory, forms

__all__ = ["critical_batch_size", "loss_curve", "minimum_loss", "steps_to_loss", "tokens_to_loss"]


def warn_new_family(fit: Fit, family: str | None, where: str) -> None:
    """Warn (UserWarning) where ``family`` names no family of ``fit``: the answer is the population's, a new
    family's (as documented), but a mistyped name would get it silently. None (the population, asked for by
    name) passes, as does an unpooled fit's unseen family, which is refused where it is read (no population).
    Called by the public answers themselves: the warning points at the caller's line."""
    if family is None or family in fit.families or fit.pooling == "none":
        return
    warnings.warn(f"{where}: {family!r} is not a family of the fit (families: {', '.join(fit.families)}): "
                  f"forecast for a new family from the population", NewFamilyWarning, stacklevel=3)


@contextmanager
def said_new_family():
    """A context in which ``Fit.predict`` does not warn of a new family again: for the answers that called
    :func:`warn_new_family` themselves, naming the caller's question."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NewFamilyWarning)
        yield


def _answers(fit: Fit, *, or_tokens: bool = False) -> Trajectory:
    """The fit's law's trajectory answers; a law without them raises naming the laws that have them (and,
    for an answer a law solved for its tokens gives too, ``or_tokens``, those laws)."""
    answers = fit.spec.law.trajectory
    if answers is None:
        able = forms(lambda law: law.trajectory)
        also = (f", or of a law solved for its tokens ({', '.join(forms(lambda law: law.data_to_loss))})"
                if or_tokens else "")
        raise ValueError(f"this answer needs a fit of a law of training trajectories ({', '.join(able)} form: "
                         f"bayeslaw.fit(df, form={able[0]!r})){also}; this fit's form is {fit.form!r}")
    return answers


def _solved_for_tokens(fit: Fit) -> DataToLoss | None:
    """The law solved for its tokens, where it is (and it has no trajectory answers, which come first)."""
    law = fit.spec.law
    return law.data_to_loss if law.trajectory is None else None


def _law_theta(fit: Fit, family: str | None, seed: int) -> dict:
    return {k: jnp.asarray(v)[:, None] for k, v in fit.law_theta(family, seed=seed).items()}  # (sample, 1)


def _targets(family: str | None, **columns) -> pd.DataFrame:
    """One row per combination of the broadcast ``columns`` (scalars or 1-d arrays of equal length), each
    finite and positive (parameters, losses in nats, batch sizes, steps): else a ValueError naming it."""
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in columns.values()))
    for name, values in zip(columns, arrays, strict=True):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            raise ValueError(f"{name}: need finite positive values, found {values[bad][:3].tolist()} "
                             f"(at {np.flatnonzero(bad)[:3].tolist()})")
    table = pd.DataFrame(dict(zip(columns, arrays, strict=True)))
    return table.assign(family=family) if family is not None else table


def minimum_loss(fit: Fit, params, *, family: str | None = None, quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(1) The lowest loss a model of ``params`` parameters reaches (nats per token): with unlimited tokens
    (E + A / N^alpha for chinchilla), or after unlimited steps, L_inf(N) = (Nc / N)^alphaN (su2024)."""
    answers = _solved_for_tokens(fit) or _answers(fit, or_tokens=True)
    check_quantiles(quantiles, "minimum_loss")
    warn_new_family(fit, family, "minimum_loss")
    theta = _law_theta(fit, family, seed)
    targets = _targets(family, params=params)
    values = np.asarray(answers.minimum_loss(theta, targets["params"].to_numpy()[None, :]))
    return summarize(values, targets, kind="law", quantiles=quantiles, name="minimum_loss")


def critical_batch_size(fit: Fit, loss, *, family: str | None = None, quantiles=DEFAULT_QUANTILES,
                        seed: int = 0) -> Prediction:
    """(3) Bcrit(L) = B* / L^(1 / alphaB): the critical batch size at loss L, tokens per step."""
    answers = _answers(fit)
    check_quantiles(quantiles, "critical_batch_size")
    warn_new_family(fit, family, "critical_batch_size")
    theta = _law_theta(fit, family, seed)
    targets = _targets(family, loss=loss)
    values = np.asarray(answers.critical_batch_size(theta, targets["loss"].to_numpy()[None, :]))
    return summarize(values, targets, kind="law", quantiles=quantiles, name="critical_batch_size",
                     units="tokens per step")


def _to_loss(fit, params, loss, batch_size, family, quantiles, seed, *, tokens: bool) -> Prediction:
    solved = _solved_for_tokens(fit) if tokens else None
    if solved is not None and batch_size is not None:
        raise ValueError(f"batch_size: the {fit.form} law does not read the batch size; tokens to a loss need none")
    answers = solved or _answers(fit, or_tokens=tokens)
    theta = _law_theta(fit, family, seed)
    columns = {"params": params, "loss": loss} if batch_size is None else {"params": params, "loss": loss,
                                                                            "batch_size": batch_size}
    targets = _targets(family, **columns)
    n, target = targets["params"].to_numpy()[None, :], targets["loss"].to_numpy()[None, :]
    if solved is not None:
        values = solved.tokens_to_loss(theta, n, target)
    elif batch_size is None:
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
    check_quantiles(quantiles, "steps_to_loss")
    warn_new_family(fit, family, "steps_to_loss")
    return _to_loss(fit, params, loss, batch_size, family, quantiles, seed, tokens=False)


def tokens_to_loss(fit: Fit, params, loss, *, batch_size=None, family: str | None = None,
                   quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(2) Training tokens for a model of ``params`` parameters to reach ``loss``: D(L; N) for a law of N and D
    (chinchilla: (B / (L - E - A / N^alpha))^(1 / beta)); for su2024 S B at ``batch_size`` B, or Emin = Smin
    Bcrit, the fewest, when B is omitted."""
    check_quantiles(quantiles, "tokens_to_loss")
    warn_new_family(fit, family, "tokens_to_loss")
    return _to_loss(fit, params, loss, batch_size, family, quantiles, seed, tokens=True)


def loss_curve(fit: Fit, params: float, batch_size: float, steps, *, family: str | None = None, kind: str = "law",
               quantiles=DEFAULT_QUANTILES, seed: int = 0) -> Prediction:
    """(4) The loss curve L(N, S; B) of a model of ``params`` parameters at ``batch_size`` tokens per step,
    at each of ``steps`` (``kind="new_run"`` adds a new run's seed offset and checkpoint noise)."""
    _answers(fit)
    warn_new_family(fit, family, "loss_curve")
    targets = _targets(family, params=params, batch_size=batch_size, steps=steps)
    targets["tokens"] = targets["steps"] * targets["batch_size"]
    with said_new_family():
        return fit.predict(targets, kind=kind, quantiles=quantiles, seed=seed)
