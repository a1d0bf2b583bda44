"""How a run's residuals covary across seeds: the run offset constant along the run, or growing with it.

For each PolyPythias size (lineage A, the flagged outlier runs left out, checkpoints from 10B tokens
thinned to ``--per-run`` per run, as the fits see them), the seeds' log losses at shared checkpoints
are centred across seeds at each checkpoint: what is left is each run's own noise, u_r t + d_r(x) +
eps (the law and the family's schedule shape cancel). Its sample covariance S over n seeds is
Wishart, and each covariance structure of :func:`bayeslaw.models.runs.run_covariance`,

    constant offset   C = s_seed^2 1 1^T + s_dev^2 K + s_obs^2 I     (t = 1)
    growing offset    C = s_seed^2 x x^T + s_dev^2 K + s_obs^2 I     (t = x, the models' loading)

is fitted by maximum likelihood, -log p = (n - 1) / 2 (log det C + tr(C^-1 S)), over its three scales.
Prints per size the minimised negative log likelihood of each and the fitted sds (% of the loss);
lower is better, and the two have the same number of parameters.

    BAYESLAW_DATA=../shared/data python benchmarks/run_covariance.py [--per-run 8]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from scipy.optimize import minimize

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd
from bayeslaw.data.split import thin_checkpoints
from bayeslaw.models.runs import run_covariance


def wishart_nll(log_var, x, S, n, loading):
    """-log p of the sample covariance S of n runs under C(scales) (up to a constant)."""
    sd = np.sqrt(np.exp(log_var))[:, None]  # (3, 1): one "run"
    C = np.asarray(run_covariance(x[None], np.ones((1, len(x)), bool), sd[0], sd[1], sd[2],
                                  loading=None if loading is None else loading[None]))[0]
    _, log_det = np.linalg.slogdet(C)
    return 0.5 * (n - 1) * (log_det + np.trace(np.linalg.solve(C, S)))


def fit_structure(x, S, n, loading):
    # three scales: a few Nelder-Mead starts (scipy: no gradient needed, and it is 3-dimensional)
    starts = [np.log([v, v, v]) for v in (1e-6, 1e-5, 1e-4)]
    best = min((minimize(wishart_nll, s, args=(x, S, n, loading), method="Nelder-Mead",
                         options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8}) for s in starts),
               key=lambda r: r.fun)
    return best.fun, 100 * np.sqrt(np.exp(best.x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-run", type=int, default=8, help="checkpoints per run (the backtest thins to 8)")
    args = parser.parse_args(argv)
    df = bd.load("polypythias")
    df = df[(df["lineage"] == "A") & ~df["outlier"] & (df["tokens"] >= 10e9)]
    df = thin_checkpoints(df, per_run=args.per_run)
    print(f"PolyPythias, {args.per_run} checkpoints per run from 10B tokens; -log p of the seeds' covariance "
          f"(lower is better), sds in % of the loss (seed / dev / obs)")
    for params, rows in df.groupby("params"):
        table = rows.pivot_table(index="run", columns="tokens", values="loss").dropna(axis=1)
        log_loss = np.log(table.to_numpy())
        n = len(log_loss)
        x = table.columns.to_numpy(dtype=float) / rows["tokens"].max()
        S = np.cov(log_loss.T)
        constant, sd_c = fit_structure(x, S, n, None)
        growing, sd_g = fit_structure(x, S, n, x)
        spread = 100 * np.std(log_loss, axis=0, ddof=1)
        print(f"{params / 1e6:5.0f}M: {n} seeds x {len(x)} checkpoints; spread across seeds {spread[0]:.2f}% "
              f"(x={x[0]:.2f}) .. {spread[-1]:.2f}% (x={x[-1]:.2f})")
        print(f"    constant offset: -log p {constant:9.2f}   sds {np.round(sd_c, 3)}")
        print(f"    growing offset:  -log p {growing:9.2f}   sds {np.round(sd_g, 3)}   "
              f"better by {constant - growing:.1f} nats")


if __name__ == "__main__":
    main()
