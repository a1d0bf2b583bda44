"""How far r-hat strays from 1 on chains that have converged: the floor under a study's r-hat target.

    python benchmarks/rhat_noise.py [--params 60] [--cells 20] [--reps 200]

ArviZ's r-hat (rank-normalised split R-hat, the larger of its bulk and folded versions) is a statistic
of finite draws: on chains drawn from the target itself it exceeds 1 by an amount that shrinks with the
draws and grows with their autocorrelation and with the number of parameters whose maximum is taken. A
fit's "max r-hat <= 1.01" is then a target on the draws as much as on the sampler. This script draws
stationary AR(1) chains (lag-one autocorrelation rho; bulk ESS about N (1 - rho) / (1 + rho)) for
``--params`` parameters, which have converged by construction, and prints, per chains x draws and rho,
the median of the maximum r-hat, the chance that one fit's maximum is <= 1.01, and the chance that all of
``--cells`` fits' are (a backtest's cells). NUTS on bayeslaw's models draws with rho about 0.3-0.5 (the
demo: bulk ESS 1,400-1,800 of 4,000 draws).
"""

from __future__ import annotations

import argparse

import arviz as az
import numpy as np


def max_rhat(rng: np.random.Generator, chains: int, draws: int, params: int, rho: float) -> float:
    """The largest r-hat over ``params`` parameters of converged AR(1) chains (stationary from draw 0)."""
    noise = rng.normal(size=(chains, draws, params))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * noise[:, t]
    return float(az.rhat(az.from_dict({"posterior": {"theta": x}}))["theta"].max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=60, help="parameters per fit (the backtest's: about 60)")
    parser.add_argument("--cells", type=int, default=20, help="fits whose r-hat must all pass (the backtest's 20)")
    parser.add_argument("--reps", type=int, default=200, help="simulated fits per setting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"{args.params} parameters, {args.reps} simulated fits per row; 'all cells': the chance that {args.cells} "
          f"independent fits all have max r-hat <= 1.01")
    print("| chains x draws | rho | bulk ESS (approx.) | median max r-hat | 95th pct | P(fit <= 1.01) | P(all cells) |")
    print("|---|---|---|---|---|---|---|")
    for chains, draws in ((2, 500), (4, 500), (2, 1000), (4, 1000)):
        for rho in (0.0, 0.3, 0.5):
            values = np.array([max_rhat(rng, chains, draws, args.params, rho) for _ in range(args.reps)])
            one = float(np.mean(values <= 1.01))
            ess = chains * draws * (1 - rho) / (1 + rho)
            print(f"| {chains} x {draws} | {rho} | {ess:,.0f} | {np.median(values):.4f} | "
                  f"{np.quantile(values, 0.95):.4f} | {one:.2f} | {one ** args.cells:.2f} |", flush=True)


if __name__ == "__main__":
    main()
