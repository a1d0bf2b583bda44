"""Schedule-aware laws on the multi-power law's published curves: point fits against the published figures.

Luo et al. 2025 fit each model size on three schedules (cosine_24000, constant_24000, wsdcon_9) and
test on the other six; published test figures (the repository's README): mean relative error 0.110%
(25M) and 0.142% (100M), R^2 0.9988 and 0.9983, worst 0.41% and 0.58%. This script fits ``multipower``
and ``annealing`` (bayeslaw.fit_point, the epoch protocol: Huber on log residuals, L-BFGS from a grid)
the same way and prints the same figures, the loss-drop quadrature's error against the per-step sum,
and the time per gradient of the binned design.

    BAYESLAW_DATA=../shared/data python benchmarks/schedule_laws.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import bayeslaw.data as bd
from bayeslaw.data.schedules import run_schedules
from bayeslaw.inference.point import fit_point
from bayeslaw.laws import get_law
from bayeslaw.laws.schedule_terms import drop_design, drop_exact

TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
PUBLISHED = {"25M": {"mre": 0.110, "r2": 0.9988, "worst": 0.41}, "100M": {"mre": 0.142, "r2": 0.9983, "worst": 0.58}}


def split(df: pd.DataFrame, size: str):
    rows = df[df["model"] == size]
    train = rows["run"].str.replace(f"multipower-{size}-", "").isin(TRAIN)
    return rows[train], rows[~train]


def scores(loss: np.ndarray, predicted: np.ndarray) -> dict:
    relative = np.abs(predicted / loss - 1.0)
    r2 = 1.0 - np.sum((loss - predicted) ** 2) / np.sum((loss - loss.mean()) ** 2)
    return {"mre_%": 100 * relative.mean(), "r2": r2, "worst_%": 100 * relative.max()}


def quadrature_error(df: pd.DataFrame, theta: dict) -> float:
    """Largest |LD_binned - LD_exact| in nats over every run, at the fitted parameters."""
    worst = 0.0
    b, c, beta, gamma = np.exp(theta["b"]), np.exp(theta["c"]), theta["beta"], theta["gamma"]
    for run, schedule in run_schedules(df).items():
        steps = df.loc[df["run"] == run, "step"].to_numpy()
        design = drop_design(schedule, steps)
        binned = np.sum(design["drop_weight"] * (1 - (c * design["drop_lr"] ** -gamma * design["drop_area"] + 1) ** -beta), 1)
        worst = max(worst, b * float(np.abs(binned - drop_exact(schedule, steps, gamma=gamma, c=c, beta=beta)).max()))
    return worst


def gradient_time(df: pd.DataFrame, theta: dict) -> float:
    law = get_law("multipower")
    inputs = {k: jnp.asarray(v) for k, v in law.columns(df).items()}
    log_y = jnp.log(jnp.asarray(df["loss"].to_numpy()))
    grad = jax.jit(jax.grad(lambda t: jnp.sum((log_y - law.log_loss(t, **inputs)) ** 2)))
    theta = {k: jnp.asarray(v) for k, v in theta.items()}
    jax.block_until_ready(grad(theta))
    start = time.perf_counter()
    for _ in range(20):
        jax.block_until_ready(grad(theta))
    return (time.perf_counter() - start) / 20


def main():
    df = bd.load("multipower")
    rows = []
    for size in ("25M", "100M"):
        train, test = split(df, size)
        for form in ("multipower", "annealing"):
            start = time.perf_counter()
            fit = fit_point(train, form=form)
            wall = time.perf_counter() - start
            predicted = fit.predict(test)
            row = {"size": size, "form": form, "train_rows": len(train), "test_rows": len(test),
                   **scores(test["loss"].to_numpy(), predicted), "fit_s": wall, **{k: round(v, 4) for k, v in fit.params.items()}}
            if form == "multipower":
                row["quadrature_err_nats"] = quadrature_error(pd.concat([train, test]), fit.theta)
                row["grad_ms_all_runs"] = 1e3 * gradient_time(df[df["model"] == size], fit.theta)
            rows.append(row)
            print({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table[["size", "form", "mre_%", "r2", "worst_%", "fit_s"]].round(4).to_string(index=False))
    print("published (multipower):", PUBLISHED)


if __name__ == "__main__":
    main()
