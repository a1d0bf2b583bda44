"""The persistent compilation cache (``bayeslaw.COMPILATION_CACHE``): one job's wall time with the cache off,
with an empty cache (the first run: compiles and writes) and with the cache that run left (a second run),
each a fresh process, alternated ``--repeats`` times; medians, the ratios off / warm and off / cold, and
whether the three give the same draws (a digest of the posterior).

Jobs: ``demo`` (``bl.fit`` of the demo's fam0 below 2.8B parameters at the defaults, then ``predict`` of its
larger sizes, as ``fixed_cost.py``'s demo case); ``tiny`` (a two-family simulated table, 2 chains x 8 draws:
a fit that is nearly all compilation, as the test suite's); ``cli`` (``bayeslaw demo``, the README's first
command, the whole job: import, fits, point fits, report and plots).

    python benchmarks/compilation_cache.py [--jobs demo tiny cli] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fixed_cost import DEMO_JOB

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, sys, time, warnings
warnings.simplefilter("ignore")
import bayeslaw as bl
import numpy as np
from bayeslaw.simulation import load_demo, simulate
""" + DEMO_JOB + r"""
job = sys.argv[1]
start = time.perf_counter()
if job == "demo":
    fit = demo_job()[0]
else:
    df = simulate(seed=1, families=2, sizes=(1e8, 4e8, 1.6e9), seeds=2, checkpoints=6, first_tokens=1e10,
                  max_tokens=1e11).data
    fit = bl.fit(df, seed=4, chains=2, draws=8, warmup=8, thin=None, min_tokens=None, progress=False)
wall = time.perf_counter() - start
digest = hashlib.sha256(np.ascontiguousarray(fit.site_draws("theta")).tobytes()).hexdigest()[:16]
print(json.dumps({"wall": wall, "digest": digest, "cache": bl.COMPILATION_CACHE}))
"""


def run(job: str, cache: str) -> dict:
    """One fresh process of ``job`` with ``BAYESLAW_COMPILATION_CACHE=cache`` (JAX's own setting removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(BAYESLAW_COMPILATION_CACHE=cache, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    if job == "cli":
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from bayeslaw.cli import main; main()", "demo", "--out", out],
                           env=env, check=True, capture_output=True, text=True)
            wall = time.perf_counter() - start
            scores = (Path(out) / "scores.csv").read_bytes()
        return {"wall": wall, "digest": hashlib.sha256(scores).hexdigest()[:16]}
    out = subprocess.run([sys.executable, "-c", CHILD, job], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="+", default=["demo", "tiny", "cli"], choices=["demo", "tiny", "cli"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'job':<6} {'off s':>8} {'cold s':>8} {'warm s':>8} {'off/cold':>9} {'off/warm':>9}  same draws  cache MB")
    for job in args.jobs:
        walls, digests, size = {"off": [], "cold": [], "warm": []}, set(), 0.0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                cache = str(Path(folder) / "jax")
                for kind, setting in (("off", "off"), ("cold", cache), ("warm", cache)):
                    got = run(job, setting)
                    walls[kind].append(got["wall"])
                    digests.add(got["digest"])
                size = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file()) / 2**20
        off, cold, warm = (float(np.median(walls[k])) for k in ("off", "cold", "warm"))
        print(f"{job:<6} {off:8.1f} {cold:8.1f} {warm:8.1f} {off / cold:9.2f} {off / warm:9.2f}  "
              f"{'yes' if len(digests) == 1 else 'NO'}         {size:.1f}", flush=True)


if __name__ == "__main__":
    main()
