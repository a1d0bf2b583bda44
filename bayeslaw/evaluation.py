"""Evaluation stage: predict each family's largest model from its smaller ones and score it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bayeslaw.data.split import DEFAULT_MIN_TOKENS, hitchhiker_split
from bayeslaw.inference.point import fit_point
from bayeslaw.metrics import are

__all__ = ["PointBacktest", "point_backtest"]


@dataclass(frozen=True)
class PointBacktest:
    """Per (family, method): fitted parameters, per-checkpoint predictions, and ARE on the test points."""

    fits: pd.DataFrame
    predictions: pd.DataFrame
    scores: pd.DataFrame


def point_backtest(
    df: pd.DataFrame,
    *,
    methods: tuple[str, ...] = ("epoch", "hitchhiker"),
    form: str = "chinchilla",
    k: int | None = None,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    train_fraction: float = 1.0,
) -> PointBacktest:
    """Hitchhiker protocol, per family: fit the smaller models, predict the target's last 30%, score ARE."""
    split = hitchhiker_split(df, k=k, min_tokens=min_tokens, train_fraction=train_fraction)
    fits, predictions, scores = [], [], []
    for family, test in split.test.groupby("family", sort=True):
        train = split.train[split.train["family"] == family]
        if train.empty:
            raise ValueError(f"family {family!r}: no training rows left after the early cut (min_tokens={min_tokens})")
        for method in methods:
            fit = fit_point(train, form=form, method=method)
            predicted = fit.predict(test["params"].to_numpy(), test["tokens"].to_numpy())
            fits.append({"family": family, "method": method, "points": len(train), **fit.params})
            predictions.append(
                test[["family", "model", "run", "params", "tokens", "loss"]].assign(method=method, predicted=predicted)
            )
            scores.append(
                {"family": family, "method": method, "target": test["model"].iloc[0],
                 "train_models": len(split.models[family]), "test_points": len(test),
                 "are": are(test["loss"].to_numpy(), predicted)}
            )
    return PointBacktest(pd.DataFrame(fits), pd.concat(predictions, ignore_index=True), pd.DataFrame(scores))
