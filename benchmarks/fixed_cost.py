"""A fit's fixed cost: compiled programs and wall time of one fit and its prediction, this tree against
another revision, in the same run.

Each measurement is a fresh process (JAX caches compilations per process) with ``PYTHONPATH`` at one
tree: the working tree ("now") or a git worktree of ``--before`` (default ``HEAD~1``), alternated
``--repeats`` times; medians and the ratio before / now are printed. Counted: XLA compilations
(``jax_log_compiles``), split into programs of at least 0.5 s (the sampler, the Laplace map, the
replicates, and before 3c60d64 the start) and the rest (single operations run eagerly on host arrays, each compiled on its
own), with their compile seconds.

Cases: ``demo`` (the demo's fam0 below 2.8B parameters, ``bl.fit`` at its defaults, then ``predict`` of
its two larger sizes); with ``--cell``, one hierarchical backtest cell of the shared data (k = 3,
q = 0.3; about a minute each); with ``--cells``, eight hierarchical cells in one process (k in {2, 3},
q in {0.1, 0.2, 0.3, 0.5}; about 4 minutes each), as a study's worker runs them one after another, with
the process's peak memory.

    python benchmarks/fixed_cost.py [--before REF] [--repeats 3] [--cell] [--cells]
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

# the demo case, shared with compilation_cache.py's child: (the fit, when it was fitted)
DEMO_JOB = r"""
def demo_job():
    df = load_demo().data
    fam = df[df["family"] == "fam0"]
    train, test = fam[fam["params"] < 2.8e9], fam[fam["params"] >= 2.8e9]
    fit = bl.fit(train, progress=False)
    fitted = time.perf_counter()
    fit.predict(test[["family", "run", "params", "tokens"]], kind="new_run")
    return fit, fitted
"""

CHILD = r"""
import json, logging, re, resource, sys, time, warnings
warnings.simplefilter("ignore")
import bayeslaw as bl
from bayeslaw.simulation import load_demo
import jax
""" + DEMO_JOB + r"""
jax.config.update("jax_log_compiles", True)
stats = {"big": 0, "big_s": 0.0, "small": 0, "small_s": 0.0}
class Count(logging.Handler):
    def emit(self, record):
        found = re.search(r"Finished XLA compilation of .* in ([0-9.e-]+) sec", record.getMessage())
        if found:
            kind = "big" if float(found.group(1)) >= 0.5 else "small"
            stats[kind] += 1; stats[kind + "_s"] += float(found.group(1))
logging.getLogger("jax").addHandler(Count()); logging.getLogger("jax").setLevel(logging.WARNING)
logging.getLogger("jax").propagate = False
case = sys.argv[1]
start = time.perf_counter()
if case == "demo":
    fitted = demo_job()[1]
else:
    from bayeslaw.evaluation import backtest
    df = bl.data.load_study()
    fitted = None
    ks, fractions = ((3,), (0.3,)) if case == "cell" else ((2, 3), (0.1, 0.2, 0.3, 0.5))
    backtest(df, ks=ks, fractions=fractions, methods=(), poolings=("hierarchical",), transfer=False,
             compare=False, progress=False)
end = time.perf_counter()
print(json.dumps({**stats, "wall": end - start, "fit": (fitted or end) - start, "predict": end - (fitted or end),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(tree: Path, case: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, case], capture_output=True, text=True, env=env, cwd=tree,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD~1", help="the revision to compare with (a git ref)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cell", action="store_true", help="also a hierarchical backtest cell (needs BAYESLAW_DATA)")
    parser.add_argument("--cells", action="store_true", help="also eight hierarchical cells in one process")
    parser.add_argument("--no-demo", action="store_true", help="leave the demo's case out")
    args = parser.parse_args(argv)
    cases = [*([] if args.no_demo else ["demo"]), *(["cell"] if args.cell else []), *(["cells"] if args.cells else [])]
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.before],
                       check=True)
        try:
            for case in cases:
                runs = {"before": [], "now": []}
                for _ in range(args.repeats):
                    for label, tree in (("before", before), ("now", ROOT)):
                        runs[label].append(measure(tree, case))
                med = {label: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for label, rs in runs.items()}
                print(f"\n{case} ({args.repeats} fresh processes each, medians; before = {args.before})")
                print(f"{'':8} {'wall s':>7} {'fit s':>7} {'predict s':>9} {'programs >= 0.5 s':>18} "
                      f"{'other programs':>15} {'peak MB':>8}")
                for label, m in med.items():
                    print(f"{label:8} {m['wall']:7.1f} {m['fit']:7.1f} {m['predict']:9.2f} "
                          f"{m['big']:8.0f} ({m['big_s']:4.1f} s) {m['small']:7.0f} ({m['small_s']:4.1f} s) "
                          f"{m['rss_mb']:8.0f}")
                b, n = med["before"], med["now"]
                predict = f", predict {b['predict'] / n['predict']:.2f}x" if n["predict"] > 0 else ""
                print(f"ratio before / now: wall {b['wall'] / n['wall']:.2f}x{predict}, other programs "
                      f"{b['small'] / max(n['small'], 1):.2f}x")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)


if __name__ == "__main__":
    main()
