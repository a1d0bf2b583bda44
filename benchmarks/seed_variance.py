"""PolyPythias: does the posterior seed variance match the spread of final losses across seeds?

Fits the hierarchical model to the PolyPythias training-loss trajectories (lineage A, the flagged
outlier runs left out), once with a size-dependent sigma_seed (N/1e8)^-gamma and once with a
constant one, compares them by PSIS-LOO, and prints per size the posterior run-to-run sd of log loss
beside the empirical sd of log(final loss) across seeds (mean over steps 142001-143000).

    BAYESLAW_DATA=../shared/data python benchmarks/seed_variance.py [--min-fraction 0.5]
"""

from __future__ import annotations

import argparse
import os
import time

import arviz as az
import numpy as np
import pandas as pd

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd
from bayeslaw.inference.nuts import fit
from bayeslaw.models import SEED_N_REF


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-fraction", type=float, default=0.5,
                        help="fit checkpoints from this fraction of each run on (the seed spread grows late)")
    parser.add_argument("--thin", type=int, default=15)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args(argv)

    df = bd.load("polypythias")
    df = df[(df["lineage"] == "A") & ~df["outlier"]]
    # each run's final loss (mean over its last 1000 steps), and the spread across the runs of one
    # configuration (bd.run_configurations: same family, size and token budget)
    configs = bd.run_configurations(df)
    final = (df[df["step"] > 142000].groupby("run").agg(model=("model", "first"), params=("params", "first"),
                                                         loss=("loss", "mean"))
             .join(configs[["configuration", "replicated"]]))
    empirical = (final[final["replicated"]].groupby("configuration")
                 .agg(model=("model", "first"), params=("params", "first"), seeds=("loss", "size"),
                      empirical_sd=("loss", lambda v: float(np.std(np.log(v), ddof=1))))
                 .set_index("model"))

    fits, times = {}, {}
    for scaling in ("size", "constant"):
        start = time.perf_counter()
        fits[scaling] = fit(df, seed_scaling=scaling, min_fraction=args.min_fraction, thin=args.thin,
                            chains=args.chains, draws=args.draws, warmup=args.draws, progress=False)
        times[scaling] = time.perf_counter() - start
        print(f"seed_scaling={scaling}: {times[scaling]:.0f} s; {fits[scaling].diagnostics(warn=False)}")

    result = fits["size"]
    sigma = result.site_draws("sigma_seed")[:, 0]
    gamma = result.site_draws("gamma_seed")
    rows = []
    for model, row in empirical.sort_values("params").iterrows():
        sd = sigma * (row["params"] / SEED_N_REF) ** -gamma
        rows.append({"size": model, "seeds": int(row["seeds"]), "empirical_sd": row["empirical_sd"],
                     "posterior_median": np.median(sd), "q05": np.quantile(sd, 0.05), "q95": np.quantile(sd, 0.95)})
    print("\nrun-to-run sd of log loss (~ relative sd of loss), size-dependent model:")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"gamma_seed posterior median {np.median(gamma):.3f} (90%: {np.quantile(gamma, 0.05):.3f}.."
          f"{np.quantile(gamma, 0.95):.3f})")
    print("\nPSIS-LOO, size-dependent vs constant sigma_seed:")
    print(az.compare({f"sigma_seed {k}": v.idata for k, v in fits.items()}).to_string())


if __name__ == "__main__":
    main()
