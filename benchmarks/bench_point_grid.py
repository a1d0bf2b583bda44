"""Vectorised grid fit (JAX, all starts at once) vs the same grid through scipy one start at a time.

Protocol of Besiroglu et al. 2024 on the 240 Chinchilla points (5 highest losses dropped), or on
the demo data if $BAYESLAW_DATA is absent: Huber (delta 1e-3) on log residuals, summed, L-BFGS from
the 4500-point grid. scipy.optimize.minimize(method="L-BFGS-B") gets a NumPy objective with its
analytic gradient (the fastest honest scipy setup). Prints both optima and the speed ratio.

    python benchmarks/bench_point_grid.py [--every K]   # K > 1: every K-th start only (quicker)
    BAYESLAW_DATA=../shared/data python benchmarks/bench_point_grid.py --cells   # every backtest point cell

``--cells``: the training rows of every scaling cell of the backtest study (``bl.data.load_study()``,
k = 2..5, q in 0..0.5, cut and thinned as ``backtest`` does), each fitted from the backtest's coarse
grid (243 starts) by the JAX grid and by scipy one start at a time: the largest relative difference
of the best objectives, and the summed wall times.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.optimize
from scipy.special import logsumexp, softmax

import bayeslaw.data as bd
from bayeslaw.inference.point import HUBER_DELTA, fit_point
from bayeslaw.laws import CHINCHILLA
from bayeslaw.simulation import load_demo


def numpy_objective(vector, log_n, log_d, log_y, delta=HUBER_DELTA):
    """Summed Huber loss of log residuals and its gradient, vector = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = vector
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    r = log_y - logsumexp(terms, axis=0)
    loss = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    dloss = np.clip(r, -delta, delta)  # d Huber / d r
    w = softmax(terms, axis=0)  # d LSE / d term
    grad = -np.array([
        np.sum(dloss * w[0]),
        np.sum(dloss * w[1]),
        np.sum(dloss * w[2]),
        np.sum(dloss * w[0] * -log_n),
        np.sum(dloss * w[1] * -log_d),
    ])
    return loss.sum(), grad


def scipy_grid(df, starts):
    """The best of scipy's L-BFGS-B from every start: (objective, seconds)."""
    log_n, log_d, log_y = (np.log(df[c].to_numpy()) for c in ("params", "tokens", "loss"))
    t0 = time.perf_counter()
    values = [scipy.optimize.minimize(numpy_objective, s, args=(log_n, log_d, log_y), jac=True,
                                      method="L-BFGS-B").fun for s in starts]
    return float(np.nanmin(np.where(np.isfinite(values), values, np.nan))), time.perf_counter() - t0


def cells():
    from bayeslaw.data.split import DEFAULT_MIN_TOKENS, thin_checkpoints
    from bayeslaw.evaluation import DEFAULT_FRACTIONS, _family_split

    df = bd.load_study()
    starts = CHINCHILLA.grid(coarse=True)
    worst, t_jax, t_scipy, n, differ = 0.0, 0.0, 0.0, 0, 0
    for family, rows in df.groupby("family"):
        for k in range(2, min(rows["model"].nunique() - 1, 5) + 1):
            for q in DEFAULT_FRACTIONS:
                train = _family_split(rows, k, q, min_tokens=DEFAULT_MIN_TOKENS, test_from=0.7).train
                if len(train) < 5:  # fewer points than parameters: the backtest leaves the cell unscored
                    continue
                train = thin_checkpoints(train, per_run=8)
                fit_point(train, starts=starts)  # compiled for this padded size
                t0 = time.perf_counter()
                ours = fit_point(train, starts=starts).objective
                t_jax += time.perf_counter() - t0
                theirs, seconds = scipy_grid(train, starts)
                t_scipy += seconds
                rel = (ours - theirs) / theirs
                worst, n = max(worst, abs(rel)), n + 1
                differ += abs(rel) > 1e-10
                print(f"{family:28s} k={k} q={q:.1f} rows={len(train):4d} (ours - scipy) / scipy {rel:+.1e}")
    print(f"{n} cells, {len(starts)} starts each: {differ} differ by more than 1e-10 (relative); the largest "
          f"relative difference of the best objective {worst:.1e}; "
          f"wall jax {t_jax:.1f} s (warm), scipy {t_scipy:.1f} s: {t_scipy / t_jax:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=1, help="use every K-th start of the grid")
    parser.add_argument("--cells", action="store_true", help="every backtest point cell (coarse grid) instead")
    args = parser.parse_args(argv)
    if args.cells:
        return cells()

    if os.environ.get("BAYESLAW_DATA"):
        df = bd.load("chinchilla").sort_values("loss").iloc[:-5]
        label = "Chinchilla, 240 points"
    else:
        df = bd.cut_early(load_demo().data)
        label = f"demo data, {len(df)} points (no $BAYESLAW_DATA)"
    starts = CHINCHILLA.grid()[:: args.every]
    order = CHINCHILLA.theta_names
    print(f"{label}; {len(starts)} starts; parameters in order {order}")

    t0 = time.perf_counter()
    fit_point(df, starts=starts)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = fit_point(df, starts=starts)
    t_warm = time.perf_counter() - t0

    log_n, log_d, log_y = (np.log(df[c].to_numpy()) for c in ("params", "tokens", "loss"))
    t0 = time.perf_counter()
    results = [
        scipy.optimize.minimize(numpy_objective, s, args=(log_n, log_d, log_y), jac=True, method="L-BFGS-B")
        for s in starts
    ]
    t_scipy = time.perf_counter() - t0
    values = np.array([r.fun if np.isfinite(r.fun) else np.inf for r in results])
    best = results[int(np.argmin(values))]
    scipy_theta = dict(zip(order, best.x, strict=True))

    print(f"{'':28s}{'E':>9s}{'A':>10s}{'B':>10s}{'alpha':>9s}{'beta':>9s}{'objective':>14s}")
    for name, theta, value in [("jax vmap grid (optax)", warm.theta, warm.objective),
                               ("scipy L-BFGS-B, one by one", scipy_theta, best.fun)]:
        p = CHINCHILLA.natural(theta)
        print(f"{name:28s}{p['E']:9.4f}{p['A']:10.1f}{p['B']:10.1f}{p['alpha']:9.4f}{p['beta']:9.4f}{value:14.8g}")
    print("published (Besiroglu et al.)   1.817     482.0    2085.0   0.3478   0.3658")
    rel = abs(warm.objective - best.fun) / best.fun
    print(f"same optimum: objective differs by {rel:.1e} (relative)")
    print(f"wall time: jax {t_cold:.1f} s first call (with compilation), {t_warm:.1f} s warm; scipy {t_scipy:.1f} s")
    print(f"speed ratio scipy / jax: {t_scipy / t_warm:.2f}x warm, {t_scipy / t_cold:.2f}x with compilation")


if __name__ == "__main__":
    main()
