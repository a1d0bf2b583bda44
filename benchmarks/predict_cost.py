"""The cost of a forecast of a long curve: ``Fit.predict`` of many checkpoints of one run, this tree against another
revision, in the same run.

A backtest cell forecasts a target's last 30% of checkpoints (3,010 rows for PolyPythias' 410M seeds), and a
run in flight asks for every checkpoint to its end. Each measurement is a fresh process with ``PYTHONPATH``
at one tree (the working tree, "now", or a git worktree of ``--before``, default ``HEAD``), alternated
``--repeats`` times: the demo's fam0 below 2.8B parameters fitted at ``bl.fit``'s defaults (4 x 1,000 draws),
then ``predict`` of ``--rows`` checkpoints of a new 2.8B run (kind ``new_run``), timed after a first call of
the same size (compilation apart), and the growth of peak RSS over the fit's (``ru_maxrss`` is a high-water
mark, so the first call's is the one read). Medians and the ratio before / now are printed, and the largest
difference of the two trees' forecast quantiles.

    python benchmarks/predict_cost.py [--before REF] [--rows 1000 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
import bayeslaw as bl
from bayeslaw.simulation import load_demo
rows = int(sys.argv[1])
df = load_demo().data
fam = df[df["family"] == "fam0"]
fit = bl.fit(fam[fam["params"] < 2.8e9], progress=False)
targets = pd.DataFrame({"family": "fam0", "run": "planned", "params": 2.8e9,
                        "tokens": np.geomspace(2e10, 2e11, rows), "run_tokens": 2e11})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
first = fit.predict(targets)
first_s = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
start = time.perf_counter()
fit.predict(targets)
again_s = time.perf_counter() - start
columns = [c for c in first.summary.columns if c[0] == "q" and c[1:].replace(".", "").isdigit()]
quantiles = first.summary[columns].to_numpy()
print(json.dumps({"first_s": first_s, "again_s": again_s, "rss_growth_mb": grown, "quantiles": quantiles.tolist()}))
"""


def measure(tree: Path, rows: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows)], capture_output=True, text=True, env=env, cwd=tree,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD", help="the revision to compare with (a git ref)")
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 4000], help="checkpoints forecast per call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.before],
                       check=True)
        try:
            print(f"predict of one new run's checkpoints, demo fam0 fitted at the defaults; before = {args.before}; "
                  f"medians of {args.repeats} fresh processes each")
            print(f"{'rows':>6} {'':7} {'first call s':>12} {'again s':>8} {'peak RSS growth MB':>19}")
            for rows in args.rows:
                runs = {"before": [], "now": []}
                for _ in range(args.repeats):
                    for label, tree in (("before", before), ("now", ROOT)):
                        runs[label].append(measure(tree, rows))
                med = {label: {k: float(np.median([r[k] for r in rs])) for k in ("first_s", "again_s", "rss_growth_mb")}
                       for label, rs in runs.items()}
                for label, m in med.items():
                    print(f"{rows:6d} {label:7} {m['first_s']:12.2f} {m['again_s']:8.2f} {m['rss_growth_mb']:19.0f}")
                b, n = med["before"], med["now"]
                gap = max(float(np.max(np.abs(np.subtract(x["quantiles"], y["quantiles"]))
                                        / np.asarray(x["quantiles"])))
                          for x, y in zip(runs["before"], runs["now"], strict=True))
                print(f"{rows:6d} ratio before / now: again {b['again_s'] / n['again_s']:.2f}x, peak RSS growth "
                      f"{b['rss_growth_mb'] / max(n['rss_growth_mb'], 1.0):.2f}x; largest relative difference of the "
                      f"quantiles {gap:.1e}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)


if __name__ == "__main__":
    main()
