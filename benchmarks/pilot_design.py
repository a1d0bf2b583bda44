"""Pilot-run design on the simulator: the Laplace ranking of candidate pilots against NUTS refits.

    python benchmarks/pilot_design.py                      # ~5-15 min on 2 cores
    python benchmarks/pilot_design.py --outcomes 1 --draws 150   # quicker, noisier

One simulated family seen at 70M, 160M and 410M parameters (two seeds each, 1e10-1e11 tokens after
the 10B cut) is fitted with complete pooling; the target is a 2.8B model on 1e11 tokens. Candidate
pilots answer "several small seeds, or one larger model?": 1B x 1 seed, 2B x 1, 410M x 2,
160M x 4, 70M x 8 (all on 1e11 tokens, each run seen at ``--checkpoints`` checkpoints).

For each candidate it prints the expected sd of the target's log loss after the pilot by
``rank_pilots(method="laplace")`` in its two variants (``linearize`` mean / draws) and by
``method="refit"`` (NUTS refits on ``--outcomes`` simulated outcomes each, a candidate's outcomes
fitted as one program),
the rankings by variance reduction per FLOP, each Laplace variant's Spearman rank correlation with
the refit ranking and its ratio of expected variances (Laplace / refit), and the wall time of each.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
from bayeslaw.plan import rank_pilots

TARGET = {"family": "fam0", "params": 2.8e9, "tokens": 1e11}
CANDIDATES = pd.DataFrame({"params": [1e9, 2e9, 4.1e8, 1.6e8, 7e7], "tokens": [1e11] * 5, "seeds": [1, 1, 2, 4, 8]},
                          index=["1B x1", "2B x1", "410M x2", "160M x4", "70M x8"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", type=int, default=2, help="simulated outcomes per candidate for the refit")
    parser.add_argument("--draws", type=int, default=200, help="NUTS draws (and warmup) of the fit and each refit")
    parser.add_argument("--checkpoints", type=int, default=3, help="checkpoints per pilot run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sim = bl.simulate(families=1, sizes=(7e7, 1.6e8, 4.1e8), seeds=2, checkpoints=8, seed=3 + args.seed)
    nuts = {"chains": 1, "draws": args.draws, "warmup": args.draws, "progress": False}
    start = time.perf_counter()
    posterior = bl.fit(sim.data, pooling="complete", seed=args.seed, thin=None, **nuts)
    print(f"fit: {posterior} in {time.perf_counter() - start:.0f} s")
    truth = float(sim.true_loss("fam0", TARGET["params"], TARGET["tokens"]))
    print(f"target {TARGET}: true law loss {truth:.4f} nats per token\n")

    common = {"checkpoints": args.checkpoints, "seed": args.seed}
    start = time.perf_counter()
    refit = rank_pilots(posterior, TARGET, CANDIDATES, method="refit", outcomes=args.outcomes,
                        refit_options=nuts, **common)
    refit_seconds = time.perf_counter() - start
    rows = {"refit": refit.loc[CANDIDATES.index]}
    seconds = {"refit": refit_seconds}
    print(f"refit: {refit_seconds:.0f} s", flush=True)
    for linearize in ("mean", "draws"):
        name = f"laplace/{linearize}"
        start = time.perf_counter()
        rows[name] = rank_pilots(posterior, TARGET, CANDIDATES, linearize=linearize, **common).loc[CANDIDATES.index]
        seconds[name] = time.perf_counter() - start

    base = refit.loc[CANDIDATES.index, ["params", "seeds", "cost_flops"]].copy()
    base["cost_flops"] = base["cost_flops"].map("{:.2g}".format)
    sd = pd.DataFrame({name: table["sd_after"] for name, table in rows.items()})
    rank = pd.DataFrame({name: table["rank"] for name, table in rows.items()})
    print("expected sd of the target's log loss after the pilot (now: laplace/mean "
          f"{rows['laplace/mean']['sd_now'].iloc[0]:.4f} linearised, draws "
          f"{rows['laplace/draws']['sd_now'].iloc[0]:.4f}, refit reference {refit['sd_now'].iloc[0]:.4f})")
    print(pd.concat([base, sd.round(4), refit.loc[CANDIDATES.index, "sd_after_se"].round(4)], axis=1).to_string())
    print("\nrank by variance reduction per FLOP (1 = best)")
    print(pd.concat([base, rank], axis=1).to_string())
    print("\nagreement with the refit")
    for name, table in rows.items():
        if name == "refit":
            continue
        rho = spearmanr(table["reduction_per_eflop"], refit.loc[CANDIDATES.index, "reduction_per_eflop"]).statistic
        ratio = (table["sd_after"] ** 2 / refit.loc[CANDIDATES.index, "sd_after"] ** 2).to_numpy()
        print(f"  {name:22s} Spearman {rho:+.2f}; variance ratio laplace/refit median {np.median(ratio):.2f} "
              f"(range {ratio.min():.2f}-{ratio.max():.2f}); {seconds[name]:.2f} s")
    print(f"  refit: {seconds['refit']:.0f} s ({len(CANDIDATES)} candidates x {args.outcomes} outcomes)")


if __name__ == "__main__":
    main()
