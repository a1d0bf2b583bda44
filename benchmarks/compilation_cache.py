"""The persistent compilation cache (``bayeslaw.COMPILATION_CACHE``): one job's wall time with the cache off,
with an empty cache (the first run: compiles and writes) and with the cache that run left (a second run),
each a fresh process, alternated ``--repeats`` times; medians, the ratios off / warm and off / cold, and
whether the three give the same draws (a digest of the posterior).

Jobs: ``demo`` (``bl.fit`` of the demo's fam0 below 2.8B parameters at the defaults, then ``predict`` of its
larger sizes, as ``fixed_cost.py``'s demo case); ``tiny`` (a two-family simulated table, 2 chains x 8 draws:
a fit that is nearly all compilation, as the test suite's); ``cli`` (``bayeslaw demo``, the README's first
command, the whole job: import, fits, point fits, report and plots).

``prune`` times the folder's bound at import (``bayeslaw._prune_compilation_cache``) over a folder of
``--programs`` small programs: looking them over when within the bound, and deleting the least recently used
down to three quarters of a bound they exceed.

    python benchmarks/compilation_cache.py [--jobs demo tiny cli prune] [--repeats 3] [--programs 4000]
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


def prune(programs: int, repeats: int) -> None:
    """The import's pass over a folder of ``programs`` entries (each KEY-cache of 2 KB with its KEY-atime, the
    i-th used i seconds after the first): within the bound (nothing deleted) and over it by a factor 2."""
    from bayeslaw import _prune_compilation_cache

    def fill(folder: Path) -> None:
        for i in range(programs):
            for name, size in ((f"k{i}-cache", 2048), (f"k{i}-atime", 8)):
                (folder / name).write_bytes(b"x" * size)
                os.utime(folder / name, (1e9 + i, 1e9 + i))

    look, cut = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            fill(Path(folder))
            start = time.perf_counter()
            assert _prune_compilation_cache(Path(folder), programs * 2048) == 0
            look.append(time.perf_counter() - start)
            start = time.perf_counter()
            deleted = _prune_compilation_cache(Path(folder), programs * 1024)
            cut.append(time.perf_counter() - start)
            left = len(list(Path(folder).glob("*-cache")))
        assert deleted == (programs - left) * 2048 and left * 2048 <= programs * 1024 * 3 // 4
    print(f"prune  {programs} programs: looked over in {1e3 * np.median(look):.1f} ms (within the bound), "
          f"{programs - left} least recently used deleted in {1e3 * np.median(cut):.1f} ms (medians of {repeats})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="+", default=["demo", "tiny", "cli", "prune"],
                        choices=["demo", "tiny", "cli", "prune"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--programs", type=int, default=4000, help="the prune job's folder")
    args = parser.parse_args(argv)
    if "prune" in args.jobs:
        prune(args.programs, args.repeats)
        args.jobs = [job for job in args.jobs if job != "prune"]
    if args.jobs:
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
