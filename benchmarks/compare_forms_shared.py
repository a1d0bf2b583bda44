"""Which law fits which family? PSIS-LOO comparison of the forms on the shared trajectories.

``bayeslaw.compare_forms`` fits every form (hierarchical pooling: one model over all families,
with seed offsets) by NUTS to the same rows (checkpoints after 10B tokens, ``--thin`` log-spaced
checkpoints per run) and compares them by PSIS-LOO. Prints ArviZ's comparison table, the per-family
elpd with the winner and its margin (with the standard error of the pointwise difference), the
worst Pareto k per family, and saves the fitted curves against the data.

    BAYESLAW_DATA=../shared/data python benchmarks/compare_forms_shared.py
        [--forms chinchilla kaplan_e compute su2024] [--thin 6] [--draws 300] [--chains 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
from bayeslaw import compare_forms  # noqa: E402
from bayeslaw.plots import form_curves  # noqa: E402
from trajectory_backtest import trajectory_families  # noqa: E402  (same folder)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forms", nargs="+", default=["chinchilla", "kaplan_e", "compute", "su2024"])
    parser.add_argument("--pooling", default="hierarchical")
    parser.add_argument("--thin", type=int, default=6)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--out", default="compare_forms_out")
    args = parser.parse_args(argv)

    df = trajectory_families()
    start = time.perf_counter()
    comparison = compare_forms(df, forms=tuple(args.forms), poolings=(args.pooling,), thin=args.thin,
                               fit_options={"chains": args.chains, "draws": args.draws, "warmup": args.draws})
    print(f"{len(comparison.rows)} rows, {comparison.rows['family'].nunique()} families, "
          f"{time.perf_counter() - start:.0f} s")
    for name, fitted in comparison.fits.items():
        print(f"{name}: {fitted.diagnostics(warn=False)}")
    print("\nArviZ comparison (elpd_loo, higher is better):")
    print(comparison.table.round(2).to_string(index=False))
    print("\nper family: elpd of each form, the best, its margin over the runner-up (and se):")
    print(comparison.by_family.round(2).to_string(index=False))
    print("\nworst Pareto k per family (> 0.7: that row's LOO estimate is unreliable):")
    print(comparison.pareto_k.round(2).to_string(index=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    comparison.table.to_csv(out / "compare_table.csv", index=False)
    comparison.by_family.to_csv(out / "by_family.csv", index=False)
    form_curves(comparison).savefig(out / "form_curves.png", dpi=110)
    print(f"wrote {out}/compare_table.csv, by_family.csv, form_curves.png")
    return comparison


if __name__ == "__main__":
    main()
