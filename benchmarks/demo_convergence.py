"""Convergence of the default hierarchical fit, as a user calls it: the demo's fit at several seeds, and
a fit of two shared families with replicated runs.

    python benchmarks/demo_convergence.py [--seeds 0 1 2]
    BAYESLAW_DATA=../shared/data python benchmarks/demo_convergence.py --replicated

The demo fit is ``bayeslaw demo``'s (``bayes_backtest`` on the demo data: every family's smaller models,
4 chains x 1000 draws; seed 0 is the demo's own). ``--replicated`` adds PolyPythias and OLMo's ladder
fitted together (ten seeds per size, and reruns: the seed-noise hierarchy where the data pin it). Prints,
per fit: wall time, max r-hat, min bulk and tail ESS, divergences, median leapfrog steps per draw; the
targets are r-hat <= 1.01, 0 divergences, ESS >= 400.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
import bayeslaw.data as bd
from bayeslaw.evaluation import bayes_backtest


def report(name: str, result, wall: float) -> None:
    d = result.diagnostics(warn=False)
    steps = float(np.median(result.idata.sample_stats["n_steps"].values))
    ok = d.max_rhat <= 1.01 and d.divergences == 0 and min(d.min_ess_bulk, d.min_ess_tail) >= 400
    print(f"{name}: {wall:.0f} s, r-hat {d.max_rhat:.4f}, ESS bulk {d.min_ess_bulk:.0f} tail {d.min_ess_tail:.0f}, "
          f"divergences {d.divergences}, median steps {steps:.0f}: {'meets' if ok else 'MISSES'} the targets",
          flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--replicated", action="store_true", help="also fit PolyPythias + OLMo's ladder (shared data)")
    args = parser.parse_args(argv)
    demo = bl.load_demo().data
    for seed in args.seeds:
        start = time.perf_counter()
        _, result = bayes_backtest(demo, seed=seed, fit_options={"progress": False})
        report(f"demo, seed {seed}", result, time.perf_counter() - start)
    if args.replicated:
        df = pd.concat([bd.load("polypythias"), bd.load("olmo_ladder")], ignore_index=True)
        start = time.perf_counter()
        result = bl.fit(df, progress=False)
        report(f"polypythias + olmo_ladder ({result.idata.attrs['bayeslaw_rows_fitted']} rows)", result,
               time.perf_counter() - start)


if __name__ == "__main__":
    main()
