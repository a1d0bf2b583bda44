"""Simulation-based calibration of the hierarchical model: do 50% and 90% intervals cover the truth?

Over N simulated data sets (3 families x 4 sizes x 2 seeds x 8 checkpoints, known truth), fit all
but the first family's largest model, then check the central intervals of E, alpha, beta,
sigma_seed (every family) and of the held-out target's observed losses (new_run predictive).

    python benchmarks/calibration.py --datasets 50 [--truth prior|fixed] [--out calibration.csv]
                                     [--workers 2 | --scheduler ADDRESS] [--folder calibration-study [--resume]]
                                     [--batch 8]

``--truth prior`` (the default, SBC): each data set's truth and losses are drawn from the model's own
priors and likelihood. ``--truth fixed``: the simulator's stated population (one truth for all data sets).
Each cell fits ``--batch`` data sets as one program (``bayeslaw.inference.batched.fit_many``; 1: one
``bayeslaw.fit`` each). Prints coverage per quantity with its standard errors (binomial over rows, and
over data sets: the independent units), the fits' divergences and r-hat, and the wall time.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
from bayeslaw.evaluation import CALIBRATION_BATCH, CALIBRATION_TRUTHS, calibration_study, coverage_table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--out", default=None, help="write every (data set, quantity, family, prob) row here")
    parser.add_argument("--workers", type=int, default=1, help="a Dask LocalCluster of this many processes")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    parser.add_argument("--folder", default=None, help="keep each data set's result here as it finishes")
    parser.add_argument("--resume", action="store_true", help="run only the data sets not yet in --folder")
    parser.add_argument("--batch", type=int, default=CALIBRATION_BATCH, help="data sets fitted as one program")
    parser.add_argument("--truth", choices=CALIBRATION_TRUTHS, default="prior",
                        help="draw each truth from the model's priors (SBC) or use the simulator's fixed one")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    study = calibration_study(
        args.datasets, seed=args.seed, progress=True, truth=args.truth,
        fit_options={"draws": args.draws, "warmup": args.warmup, "chains": args.chains},
        workers=args.workers, scheduler=args.scheduler, folder=args.folder, resume=args.resume, batch=args.batch,
    )
    failed = study[study["error"].notna()]
    if not failed.empty:
        print(f"{len(failed)} data set(s) failed and are left out:", *failed["error"].unique()[:3], sep="\n  ")
    wall = time.perf_counter() - start
    if args.out:
        study.to_csv(args.out, index=False)
    table = coverage_table(study)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    overall = study[study["error"].isna()].groupby("prob")["covered"].agg(["mean", "size"])
    print("\noverall coverage:", ", ".join(f"{p:.0%} nominal -> {r['mean']:.3f} (n={int(r['size'])})"
                                         for p, r in overall.iterrows()))
    fits = study[study["error"].isna()].groupby("dataset")[["divergences", "max_rhat"]].first()
    if not fits.empty:
        print(f"fits: {int((fits['divergences'] > 0).sum())} of {len(fits)} with divergences "
              f"({int(fits['divergences'].sum())} in all), max r-hat median {fits['max_rhat'].median():.3f}, "
              f"{int((fits['max_rhat'] > 1.01).sum())} above 1.01")
    print(f"wall time {wall:.0f} s for {args.datasets} data sets ({wall / args.datasets:.1f} s each)")


if __name__ == "__main__":
    main()
