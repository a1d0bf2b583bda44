"""Vectorised grid fit (JAX, all starts at once) vs the same grid through scipy one start at a time.

Protocol of Besiroglu et al. 2024 on the 240 Chinchilla points (5 highest losses dropped), or on
the demo data if $BAYESLAW_DATA is absent: Huber (delta 1e-3) on log residuals, summed, L-BFGS from
the 4500-point grid. scipy.optimize.minimize(method="L-BFGS-B") gets a NumPy objective with its
analytic gradient and OpenBLAS on one thread (the fastest honest scipy setup). Prints both optima and
the speed ratio, warm (the median of ``--repeats`` warm calls) and with compilation (the first call).

    python benchmarks/bench_point_grid.py [--every K]   # K > 1: every K-th start only (quicker)
    BAYESLAW_DATA=../shared/data python benchmarks/bench_point_grid.py --cells   # every backtest point cell

``--cells``: the training rows of every scaling cell of the backtest study (``bl.data.load_study()``,
k = 2..5, q in 0..0.5, cut and thinned as ``backtest`` does), each fitted from the backtest's coarse
grid (243 starts) by the JAX grid (warm: each cell is fitted once before it is timed) and by scipy one
start at a time; the summed wall times.

A third line runs scipy on the grid's own objective (XLA's arithmetic instead of NumPy's, the same
formula), one start at a time: how far scipy's answer moves with rounding alone, the floor any other
implementation of the protocol can be held to. Each cell's line also gives the largest relative
difference of the two forecasts of the held-out checkpoints (fit_point's and scipy's best theta).

"Same optimum" is checked two ways, on the best objective of the grid (ours: ``fit_point``'s, the best
end of the protocol's runs, and, apart, ``grid_lbfgs(polish=16)``, whose 16 best ends run on to the
minimum; scipy: the least of its 243 or 4500 runs):

- equal:       |ours - scipy| / scipy <= 1e-10;
- not worse:   ours <= scipy (1 + 1e-10), i.e. equal or ours lower.

Both run the same algorithm (``grid_lbfgs`` replays L-BFGS-B step for step), but on a flat objective
(a family seen at 2-3 sizes: a valley of near-equal fits, or a law that keeps improving as an exponent
goes below 0) rounding differences between NumPy and XLA grow along a run and the two stop at
different points of the valley; each cell's line flags where scipy's best has alpha or beta < 0 (an
objective unbounded below along that direction: scipy's "optimum" is where it stopped).
"""

from __future__ import annotations

import os

# scipy's L-BFGS-B calls BLAS on 5-vectors: one thread is its fastest setup (OpenBLAS's idle threads spin,
# and on a busy machine that slows each start several times over); set before numpy loads OpenBLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
from scipy.special import logsumexp, softmax  # noqa: E402

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd  # noqa: E402
from bayeslaw.inference.point import HUBER_DELTA, fit_point, grid_lbfgs  # noqa: E402
from bayeslaw.laws import CHINCHILLA  # noqa: E402
from bayeslaw.simulation import load_demo  # noqa: E402

SAME = 1e-10  # relative tolerance on the best objective


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
    """scipy's L-BFGS-B (default options) from every start: (best objective, its theta, seconds)."""
    log_n, log_d, log_y = (np.log(df[c].to_numpy()) for c in ("params", "tokens", "loss"))
    t0 = time.perf_counter()
    results = [scipy.optimize.minimize(numpy_objective, s, args=(log_n, log_d, log_y), jac=True, method="L-BFGS-B")
               for s in starts]
    seconds = time.perf_counter() - t0
    values = np.array([r.fun if np.isfinite(r.fun) else np.inf for r in results])
    best = int(np.argmin(values))
    return float(values[best]), results[best].x, seconds


def scipy_grid_xla(df, starts) -> float:
    """scipy's L-BFGS-B from every start on the grid's own objective (XLA's arithmetic, one start at a
    time): its best objective. Against ``scipy_grid`` (NumPy's arithmetic) it measures how far the
    protocol's answer moves with rounding alone."""
    import jax

    from bayeslaw.inference.point import _huber_objective, _pad_points

    data = _pad_points({k: df[k].to_numpy() for k in ("params", "tokens", "loss")})
    objective = jax.jit(jax.value_and_grad(_huber_objective(CHINCHILLA, data, HUBER_DELTA)))
    values = [scipy.optimize.minimize(lambda v: tuple(np.asarray(a) for a in objective(v)), s, jac=True,
                                      method="L-BFGS-B").fun for s in starts]
    return float(np.min(np.where(np.isfinite(values), values, np.inf)))


def polished(df, starts) -> float:
    """The grid's best objective with its 16 best ends run on (``grid_lbfgs(polish=16)``; not the protocol)."""
    values = np.asarray(grid_lbfgs(CHINCHILLA, starts, {k: df[k].to_numpy() for k in ("params", "tokens", "loss")},
                                   polish=16)[1])
    return float(np.min(np.where(np.isfinite(values), values, np.inf)))


def same_optimum(ours: float, theirs: float) -> tuple[float, bool, bool]:
    """(relative difference, equal within SAME, not worse than scipy by more than SAME)."""
    rel = (ours - theirs) / abs(theirs)
    return rel, abs(rel) <= SAME, rel <= SAME


def cells():
    from bayeslaw.data.split import DEFAULT_MIN_TOKENS, thin_checkpoints
    from bayeslaw.evaluation import DEFAULT_FRACTIONS, _family_split

    df = bd.load_study()
    starts = CHINCHILLA.grid(coarse=True)
    alpha, beta = CHINCHILLA.theta_names.index("alpha"), CHINCHILLA.theta_names.index("beta")
    t_jax, t_scipy, rels, raw, unbounded, forecasts, flags, floors = 0.0, 0.0, [], [], 0, [], [], []
    for family, rows in df.groupby("family"):
        for k in range(2, min(rows["model"].nunique() - 1, 5) + 1):
            for q in DEFAULT_FRACTIONS:
                split = _family_split(rows, k, q, min_tokens=DEFAULT_MIN_TOKENS, test_from=0.7)
                train = split.train
                if len(train) < 5:  # fewer points than parameters: the backtest leaves the cell unscored
                    continue
                train = thin_checkpoints(train, per_run=8)
                fit_point(train, starts=starts)  # compiled for this padded size
                t0 = time.perf_counter()
                fit = fit_point(train, starts=starts)
                t_jax += time.perf_counter() - t0
                ours = fit.objective
                theirs, x, seconds = scipy_grid(train, starts)
                t_scipy += seconds
                rel = same_optimum(ours, theirs)[0]
                floors.append(same_optimum(scipy_grid_xla(train, starts), theirs)[0])
                # the answer a backtest scores: the forecast of the held-out target's checkpoints
                scipy_fit = replace(fit, theta=dict(zip(CHINCHILLA.theta_names, map(float, x), strict=True)))
                forecast = np.max(np.abs(fit.predict(split.test) / scipy_fit.predict(split.test) - 1))
                forecasts.append(forecast)
                raw_rel = same_optimum(polished(train, starts), theirs)[0]
                rels.append(rel)
                raw.append(raw_rel)
                flag = x[alpha] < 0 or x[beta] < 0
                unbounded += flag
                flags.append(flag)
                print(f"{family:28s} k={k} q={q:.1f} rows={len(train):4d} (ours - scipy) / scipy {rel:+.1e} "
                      f"(polished {raw_rel:+.1e}; scipy on XLA's arithmetic {floors[-1]:+.1e}); forecast {forecast:.1e}"
                      f"{'  scipy alpha or beta < 0' if flag else ''}")
    print(f"{len(rels)} cells, {len(starts)} starts each; scipy's best has alpha or beta < 0 in {unbounded}")
    for name, r in (("fit_point (the protocol)", np.array(rels)), ("grid_lbfgs(polish=16)", np.array(raw)),
                    ("scipy on the grid's objective (XLA), one start at a time", np.array(floors))):
        print(f"{name}: same optimum (best objective) equal within {SAME:g} (relative) in {np.sum(np.abs(r) <= SAME)}, "
              f"ours <= scipy (1 + {SAME:g}) in {np.sum(r <= SAME)} (ours lower in {np.sum(r < -SAME)}, scipy lower "
              f"in {np.sum(r > SAME)}); largest |relative difference| {np.max(np.abs(r)):.1e} (ours higher by at most "
              f"{max(r.max(), 0):.1e}, lower by at most {max(-r.min(), 0):.1e})")
    forecasts, flags = np.array(forecasts), np.array(flags)
    for name, keep in (("every cell", np.ones_like(flags)), ("cells where scipy's alpha, beta >= 0", ~flags)):
        print(f"forecast of the held-out checkpoints, fit_point against scipy, {name} ({keep.sum()}): largest relative "
              f"difference {forecasts[keep].max():.1e}, median {np.median(forecasts[keep]):.1e}; within 1e-4 in "
              f"{np.sum(forecasts[keep] <= 1e-4)}; best objectives equal within {SAME:g} in "
              f"{np.sum(np.abs(np.array(rels)[keep]) <= SAME)}")
    print(f"wall jax (fit_point, warm) {t_jax:.1f} s, scipy {t_scipy:.1f} s: {t_scipy / t_jax:.1f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=1, help="use every K-th start of the grid")
    parser.add_argument("--repeats", type=int, default=3, help="warm JAX calls (the median is quoted)")
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
    t_warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        warm = fit_point(df, starts=starts)
        t_warm.append(time.perf_counter() - t0)
    t_warm = float(np.median(t_warm))

    theirs, x, t_scipy = scipy_grid(df, starts)
    scipy_theta = dict(zip(order, x, strict=True))

    print(f"{'':28s}{'E':>9s}{'A':>10s}{'B':>10s}{'alpha':>9s}{'beta':>9s}{'objective':>20s}")
    for name, theta, value in [("jax grid (grid_lbfgs)", warm.theta, warm.objective),
                               ("scipy L-BFGS-B, one by one", scipy_theta, theirs)]:
        p = CHINCHILLA.natural(theta)
        print(f"{name:28s}{p['E']:9.4f}{p['A']:10.1f}{p['B']:10.1f}{p['alpha']:9.4f}{p['beta']:9.4f}{value:20.14g}")
    print("published (Besiroglu et al.)   1.817     482.0    2085.0   0.3478   0.3658")
    for name, value in (("fit_point (the protocol)", warm.objective), ("grid_lbfgs(polish=16)", polished(df, starts))):
        rel, eq, nw = same_optimum(value, theirs)
        print(f"same optimum, {name}: objective {value:.17g}, (ours - scipy) / scipy = {rel:+.1e}; equal within "
              f"{SAME:g}: {eq}; ours <= scipy (1 + {SAME:g}): {nw}")
    print(f"wall time: jax {t_cold:.2f} s first call (with compilation), {t_warm:.2f} s warm (median of "
          f"{args.repeats}); scipy {t_scipy:.1f} s")
    print(f"speed ratio scipy / jax: {t_scipy / t_warm:.1f}x warm, {t_scipy / t_cold:.1f}x with compilation")


if __name__ == "__main__":
    main()
