"""Peak memory of one Bayesian fit (``bl.fit`` at its defaults, 4 chains x 1000 draws) against its rows.

Each size runs in a fresh process (peak RSS, ``ru_maxrss``, is a high-water mark): a simulated data set
of 2 families x 4 sizes x S seeds, 20 checkpoints per run (rows = 160 S), fitted at the defaults but
for the early cut (``min_tokens=None``: every row is kept; the default thinning keeps runs at 20
checkpoints). Rows grow by runs, as they do under the default thinning; a run's own cost grows with
the square of its checkpoints (its eigenbasis), which the thinning bounds. Prints the peak RSS after
import and data, after the fit, and the growth per 1,000 rows between the sizes.

    python benchmarks/fit_memory.py                    # 480 and 1,920 rows
    python benchmarks/fit_memory.py --seeds 3 6 12 24
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache

CHILD = """
import json, resource, time
import bayeslaw as bl
df = bl.simulate(families=2, sizes=(1e8, 3e8, 1e9, 3e9), seeds={s}, checkpoints=20, first_tokens=1e9,
                 max_tokens=1e11, seed=0).data
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
fit = bl.fit(df, min_tokens=None, progress=False)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
d = fit.diagnostics(warn=False)
print(json.dumps({{"rows": len(df), "before_mb": before, "peak_mb": peak, "wall_s": wall,
                  "divergences": d.divergences, "max_rhat": d.max_rhat}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 12], help="runs per (family, size)")
    args = parser.parse_args()
    results = []
    for seeds in args.seeds:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD.format(s=seeds)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{result['rows']:>6} rows: peak RSS {result['peak_mb']:.0f} MB ({result['before_mb']:.0f} MB after import "
              f"and data), fit {result['wall_s']:.0f} s, {result['divergences']} divergences, max r-hat "
              f"{result['max_rhat']:.3f} ({time.perf_counter() - start:.0f} s with the process)")
    for a, b in zip(results, results[1:]):
        slope = (b["peak_mb"] - a["peak_mb"]) / (b["rows"] - a["rows"]) * 1000
        print(f"growth {a['rows']} -> {b['rows']} rows: {slope:.0f} MB per 1,000 rows")


if __name__ == "__main__":
    main()
