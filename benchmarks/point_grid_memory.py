"""Peak memory of the published 4,500-start point-fit grid on a long-curve family, chunked against unchunked.

A simulated family of about 5,000 checkpoints (4 sizes x 2 seeds x ~625 checkpoints per run, the size of
the longest extracted curves in the shared data) is fitted by ``fit_point(method="epoch")`` with the full
grid, each configuration in a fresh process so that its peak resident memory (ru_maxrss) is its own:

- chunked: the library's default, a batch of at most ``GRID_ELEMENTS`` (start, point) pairs;
- unchunked (``--before``): every start in one batch.

    python benchmarks/point_grid_memory.py [--before] [--rows 5000] [--max-iter 3]

Prints peak RSS, wall time and the best objective of each (the same optimum).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache

CHILD = """
import json, sys, time, resource
import numpy as np
import bayeslaw.inference.point as point
from bayeslaw.simulation import simulate
rows, elements, max_iter = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if elements > 0:
    point.GRID_ELEMENTS = elements
per_run = rows // 8
df = simulate(families=1, sizes=(1e8, 3e8, 1e9, 3e9), seeds=2, checkpoints=per_run, seed=0).data
t0 = time.perf_counter()
fit = point.fit_point(df, max_iter=max_iter)
wall = time.perf_counter() - t0
print(json.dumps({"rows": len(df), "wall_s": wall, "objective": fit.objective, "n_starts": fit.details["n_starts"],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(rows: int, elements: int, max_iter: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(elements), str(max_iter)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--before", action="store_true", help="also the unchunked grid (about 12 GB at 5,000 rows)")
    parser.add_argument("--max-iter", type=int, default=1000,
                        help="L-BFGS iterations per start (3: quick; the batch holds its peak from its first step "
                             "on, so a few iterations measure it)")
    args = parser.parse_args(argv)
    runs = {"chunked (default)": measure(args.rows, 0, args.max_iter)}
    if args.before:
        runs["unchunked (before)"] = measure(args.rows, 2**40, args.max_iter)
    for name, r in runs.items():
        print(f"{name:20s} {r['rows']} rows x {r['n_starts']} starts: peak RSS {r['peak_mb']:.0f} MB, "
              f"wall {r['wall_s']:.0f} s, best objective {r['objective']:.10g}")
    if args.before:
        a, b = runs["chunked (default)"], runs["unchunked (before)"]
        print(f"peak memory ratio unchunked / chunked: {b['peak_mb'] / a['peak_mb']:.1f}x; "
              f"objectives differ by {abs(a['objective'] - b['objective']) / b['objective']:.1e} (relative)")


if __name__ == "__main__":
    main()
