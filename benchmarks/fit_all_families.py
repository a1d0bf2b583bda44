"""The hierarchical model on every shared family at once: wall time, ESS per second, convergence.

Each source with its default loss; datablations (and its contour set) keep single-epoch runs only (the Chinchilla law
has no term for repeated data) and PolyPythias its lineage-A runs without the flagged outliers.
Early checkpoints cut at 10B tokens, trajectories thinned to --thin log-spaced checkpoints per run.
Families seen at a single model size are left out by default (--min-sizes 2): they say nothing about
how loss scales with N, and the one such family, datablations-code, is a data-mixture sweep (code
10% .. 90%) at 4.2B whose runs differ by their data, not their seed; with it the fit does not mix
(its law level and the mean of its nine run offsets trade off one for one: min ESS 1.5 in 300 draws).

    BAYESLAW_DATA=../shared/data python benchmarks/fit_all_families.py [--thin 20] [--draws 1000] [--chains 4] \
        [--min-sizes 2]

"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import fit


def shared_families(min_sizes: int = 1):
    """Every shared family (``min_sizes=1``) or those seen at ``min_sizes`` or more model sizes."""
    return bd.load_study(min_sizes=min_sizes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thin", type=int, default=FitConfig.thin, help="default: bayeslaw.fit's")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=None, help="default: bayeslaw.fit's")
    parser.add_argument("--out", default=None, help="save the fit (netCDF)")
    parser.add_argument("--min-fraction", type=float, default=None,
                        help="also drop checkpoints before this fraction of each run (on top of the 10B-token cut)")
    parser.add_argument("--min-sizes", type=int, default=2,
                        help="only families seen at this many model sizes or more (4: those that pin their own law)")
    args = parser.parse_args(argv)

    df = shared_families(args.min_sizes)
    start = time.perf_counter()
    result = fit(df, thin=args.thin, min_fraction=args.min_fraction, chains=args.chains, draws=args.draws,
                 warmup=args.draws, progress=True,
                 **({} if args.target_accept is None else {"target_accept": args.target_accept}))
    wall = time.perf_counter() - start
    diag = result.diagnostics(warn=False)
    print(result)
    print(f"families: {', '.join(result.families)}")
    print(f"wall time {wall:.0f} s ({wall / 60:.1f} min) on this machine; {diag}")
    print(f"min bulk ESS per second: {diag.min_ess_bulk / wall:.3f}; median bulk ESS per second: "
          f"{np.median(diag.table['ess_bulk']) / wall:.2f}; median leapfrog steps per draw "
          f"{np.median(result.idata.sample_stats['n_steps'].values):.0f} (issue 16: <= 31)")
    params = result.params()
    wide = params.pivot(index="family", columns="parameter", values="median")
    print(wide[["E", "A", "B", "alpha", "beta", "sigma_seed", "sigma_obs"]].to_string(float_format=lambda v: f"{v:.4g}"))
    if args.out:
        result.save(args.out)


if __name__ == "__main__":
    main()
