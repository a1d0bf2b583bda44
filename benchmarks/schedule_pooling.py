"""A schedule law fitted over many families at once: the whole wsd_horizons source (6 families, 212 runs,
branch trees) under ``bl.fit(df, form="annealing", rising="drop")``, the hierarchical model as a user
calls it, against another revision of the model in the same run.

Each measurement is a fresh process with ``PYTHONPATH`` at one tree: the working tree ("now") or a git
worktree of ``--before`` (default ``HEAD~1``). Both are run at a short setting (``--short``: one chain,
300 warmup iterations, 100 draws; enough to read the leapfrog steps per draw, which set the cost of a
fit), and "now" also at the library's defaults (4 chains x 1000, the retry and extension included):
wall, leapfrog steps per draw, divergent draws, r-hat, ESS. The ratio before / now of the short runs'
wall and steps per draw is printed. Needs ``BAYESLAW_DATA``.

    python benchmarks/schedule_pooling.py [--before REF] [--form annealing] [--no-defaults]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import bayeslaw as bl
form, setting = sys.argv[1], sys.argv[2]
df = bl.data.load("wsd_horizons")
options = dict(chains=1, warmup=300, draws=100, extend=0, retry_target_accept=None) if setting == "short" else {}
start = time.perf_counter()
fit = bl.fit(df, form=form, rising="drop", progress=False, **options)
wall = time.perf_counter() - start
stats = fit.idata.sample_stats
d = fit.diagnostics(warn=False)
print(json.dumps({"wall": wall, "steps": float(np.median(stats["n_steps"])), "divergent": int(stats["diverging"].sum()),
                  "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail,
                  "families": len(fit.families), "runs": len(fit.runs)}))
"""


def measure(tree: Path, form: str, setting: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, form, setting], capture_output=True, text=True, env=env,
                         cwd=tree)
    if out.returncode != 0:
        raise RuntimeError(f"{tree} ({setting}): {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def line(label: str, m: dict) -> str:
    return (f"{label:22} {m['wall']:8.1f} {m['steps']:7.0f} {m['divergent']:6d} {m['max_rhat']:8.4f} "
            f"{m['min_ess_bulk']:8.0f} {m['min_ess_tail']:8.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD~1", help="the revision to compare with (a git ref)")
    parser.add_argument("--form", default="annealing", choices=("annealing", "multipower"))
    parser.add_argument("--no-defaults", dest="defaults", action="store_false",
                        help="skip the fit at the library's defaults")
    args = parser.parse_args(argv)
    if not os.environ.get("BAYESLAW_DATA"):
        sys.exit("schedule_pooling.py: set BAYESLAW_DATA to the shared data folder")
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.before],
                       check=True)
        try:
            runs = {"before, short": measure(before, args.form, "short"), "now, short": measure(ROOT, args.form, "short")}
            if args.defaults:
                runs["now, defaults (4 x 1000)"] = measure(ROOT, args.form, "defaults")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    first = next(iter(runs.values()))
    print(f"wsd_horizons, form {args.form}, hierarchical: {first['families']} families, {first['runs']} runs "
          f"(before = {args.before})")
    print(f"{'':22} {'wall s':>8} {'steps':>7} {'div':>6} {'r-hat':>8} {'ESS bulk':>8} {'ESS tail':>8}")
    for label, m in runs.items():
        print(line(label, m))
    b, n = runs["before, short"], runs["now, short"]
    print(f"ratio before / now (short runs): wall {b['wall'] / n['wall']:.2f}x, leapfrog steps per draw "
          f"{b['steps'] / n['steps']:.1f}x")


if __name__ == "__main__":
    main()
