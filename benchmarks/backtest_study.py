"""The full backtest study on the shared data: point fits vs Bayesian fits, the report folder, wall time.

Families: every shared family with at least 3 model sizes (the selection of ``fit_all_families.py``:
datablations single-epoch runs, PolyPythias lineage A without flagged outliers). For each family,
k = 2 .. all models below the target, q in {0, 0.1, 0.2, 0.3, 0.5}, the transfer case, and the
PSIS-LOO comparison of the pooling variants.

    BAYESLAW_DATA=../shared/data python benchmarks/backtest_study.py --out backtest-report [--workers 2]
    BAYESLAW_DATA=../shared/data python benchmarks/backtest_study.py --speedup   # 1 process vs 2 Dask workers
    BAYESLAW_DATA=../shared/data python benchmarks/backtest_study.py --batching  # q cells together vs one by one
    BAYESLAW_DATA=../shared/data python benchmarks/backtest_study.py --cell 5 0.5 [--min-fraction F]  # one cell

Prints the aggregate table (median ARE and coverage, point vs Bayes) and the wall time.
"""

from __future__ import annotations

import argparse
import os
import time

from fit_all_families import shared_families

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
from bayeslaw.evaluation import backtest
from bayeslaw.plots import backtest_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="backtest-report")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--thin", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ks", type=int, nargs="*", default=None, help="default 2 .. 5")
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--no-transfer", action="store_true")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--speedup", action="store_true",
                        help="time the cells k=2, q=0 and 0.3 (point and hierarchical) in one process and on 2 "
                             "Dask workers, then stop")
    parser.add_argument("--batching", action="store_true",
                        help="time the hierarchical cells k=2, q in {0.2, 0.3, 0.5} fitted one by one and together "
                             "(backtest(batch=False / True)), then stop")
    parser.add_argument("--cell", type=float, nargs=2, metavar=("K", "Q"),
                        help="fit the hierarchical cell (k, q) alone and print its convergence, then stop")
    parser.add_argument("--min-fraction", type=float, default=None,
                        help="with --cell: the fit also drops a training run's checkpoints before this fraction "
                             "of its last training checkpoint's tokens (bayeslaw.fit's min_fraction), besides the "
                             "10B-token cut")
    args = parser.parse_args(argv)
    df = shared_families()

    if args.cell:
        k, q = int(args.cell[0]), args.cell[1]
        start = time.perf_counter()
        result = backtest(df, ks=(k,), fractions=(q,), methods=(), poolings=("hierarchical",), transfer=False,
                          compare=False, progress=False, thin=args.thin, seed=args.seed,
                          fit_options={"chains": args.chains, "draws": args.draws, "warmup": args.draws,
                                       "min_fraction": args.min_fraction})
        cells = result.cells
        print(f"k={k} q={q:g}, seed {args.seed}, min_fraction {args.min_fraction}: "
              f"{time.perf_counter() - start:.0f} s, max r-hat {cells['max_rhat'].max():.3f}, divergences "
              f"{cells['divergences'].max():.0f}, blocks drawn beyond the first {cells['extensions'].max():.0f}; "
              f"median ARE {cells['are'].median():.2%} over {cells['are'].notna().sum()} scored families, "
              f"50% / 90% coverage {cells['coverage50'].mean():.3f} / {cells['coverage90'].mean():.3f}")
        print(cells[["family", "are", "coverage50", "coverage90"]].to_string(index=False))
        return

    if args.batching:
        # the same NUTS cells (one model structure: the target's run is in each), one fit each, then as one program
        walls, cells = {}, {}
        for batch in (False, True):
            start = time.perf_counter()
            result = backtest(df, ks=(2,), fractions=(0.2, 0.3, 0.5), methods=(), poolings=("hierarchical",),
                              transfer=False, compare=False, progress=False, thin=args.thin, batch=batch,
                              fit_options={"chains": args.chains, "draws": args.draws, "warmup": args.draws})
            walls[batch], cells[batch] = time.perf_counter() - start, result.cells.sort_values(["family", "q"])
        gap = (cells[True]["are"].to_numpy() - cells[False]["are"].to_numpy())
        print(f"{result.timing['fits']} NUTS fits: one by one {walls[False]:.0f} s, together {walls[True]:.0f} s: "
              f"speedup {walls[False] / walls[True]:.2f}x; ARE differs by at most {abs(gap).max() * 100:.2f} "
              f"points (vectorised against parallel chains: other floating-point order, other draws); "
              f"max r-hat {cells[False]['max_rhat'].max():.3f} / {cells[True]['max_rhat'].max():.3f}, "
              f"divergences {cells[False].drop_duplicates('q')['divergences'].sum():.0f} / "
              f"{cells[True].drop_duplicates('q')['divergences'].sum():.0f}")
        return

    if args.speedup:
        # the same cells (k=2, q in {0, 0.3}: point fits of every family and two hierarchical NUTS fits)
        # in this process, one after another, and on a 2-worker Dask LocalCluster (one thread each)
        walls, cells = {}, {}
        for workers in (1, 2):
            start = time.perf_counter()
            result = backtest(df, ks=(2,), fractions=(0.0, 0.3), poolings=("hierarchical",), transfer=False,
                              compare=False, workers=workers, progress=False, thin=args.thin,
                              fit_options={"chains": args.chains, "draws": args.draws, "warmup": args.draws})
            walls[workers], cells[workers] = time.perf_counter() - start, result.cells
        same = cells[1]["are"].round(10).equals(cells[2]["are"].round(10))
        print(f"{result.timing['fits']} fits: 1 process {walls[1]:.0f} s, 2-worker LocalCluster {walls[2]:.0f} s: "
              f"speedup {walls[1] / walls[2]:.2f}x; same ARE in every cell: {same}")
        return

    start = time.perf_counter()
    result = backtest(df, ks=tuple(args.ks) if args.ks else None, fractions=tuple(args.fractions),
                      transfer=not args.no_transfer, compare=not args.no_compare, thin=args.thin, seed=args.seed,
                      workers=args.workers, fit_options={"chains": args.chains, "draws": args.draws,
                                                         "warmup": args.draws})
    report = backtest_report(result, args.out)
    wall = time.perf_counter() - start
    table = result.aggregate(("case", "method"))
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    bayes = result.cells[result.cells["method"].str.startswith("bayes")]
    scored = bayes[bayes["error"].isna()]
    # one row per fit: a scaling cell's fit scores every family, a transfer case is a fit of its own
    fits = scored.assign(fit=scored["family"].where(scored["case"] == "transfer", "")).drop_duplicates(
        ["case", "k", "q", "method", "fit"])
    print(f"\nconvergence: {(fits['max_rhat'] <= 1.01).sum()} of {len(fits)} Bayesian fits at r-hat <= 1.01, "
          f"{(fits['divergences'] > 0).sum()} with divergences; {len(bayes) - len(scored)} Bayesian cells unscored")
    print(f"\n{result.timing['fits']} fits; wall time {wall:.0f} s ({wall / 60:.1f} min) with {args.workers} "
          f"worker(s); report: {report}")
    if result.comparison is not None:
        print(result.comparison.to_string())


if __name__ == "__main__":
    main()
