"""NUTS' coordinates at the defaults: the Laplace map of ``laplace_coordinates`` against the coordinates as they were.

    python benchmarks/metric_scaling.py [--seeds 0 1 2]
    BAYESLAW_DATA=../shared/data python benchmarks/metric_scaling.py --transfer   # + every shared family

NumPyro's mass-matrix adaptation shrinks each window's covariance toward 1e-3 I, whatever the scale of
the coordinates (docs/run_likelihood.md, "The mass matrix's floor"). ``bl.fit`` samples u with
z = m + A u, the mode m and A = H^(-1/2) / sqrt(1e-3), so that the Laplace covariance in u is that 1e-3 I.
This script fits the demo's default fit (``bayeslaw demo``'s: every family's smaller models, 4 x 1000),
and with ``--transfer`` the all-families transfer fit of ``real_targets.py`` (OLMo's ladder seen at its
1.3B runs), in three coordinates, in one process:

- ``identity``: z itself (the sampler before the scaled metric);
- ``diagonal``: z = s u, s_i = min(1, 1/sqrt(d^2U/dz_i^2)) at the start (the sampler of the previous
  release);
- ``laplace``: the library's.

It prints wall time (compilation included), median leapfrog steps per draw, the final step size,
divergences, r-hat and tail ESS, and the ratios against the library's. The model is the same in all
three; only the coordinates NUTS adapts its metric in differ.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import numpy as np

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
from bayeslaw.evaluation import hitchhiker_split
from bayeslaw.inference import nuts


def identity(value_and_grad, z0, *, pair=None):
    """z itself: NUTS in the model's own unconstrained coordinates."""
    return np.asarray(z0), np.eye(np.size(z0))


def diagonal(value_and_grad, z0, *, pair=None):
    """z = z0 + diag(s) u, s_i = min(1, 1 / sqrt(d^2U/dz_i^2)) at the start (the Hessian's diagonal as
    ``laplace_coordinates`` takes its Hessian)."""
    z0 = np.asarray(z0, dtype=float)
    gradient = lambda z: np.asarray(value_and_grad(z)[1], dtype=float)  # noqa: E731
    curvature = np.diagonal(nuts.difference_hessian(lambda a, b: (gradient(a), gradient(b)), z0))
    return z0, np.diag(np.where(curvature > 1.0, 1.0 / np.sqrt(np.maximum(curvature, 1.0)), 1.0))


COORDINATES = {"identity": identity, "diagonal": diagonal, "laplace": nuts.laplace_coordinates}


def one(df, seed: int, coordinates) -> dict:
    start = time.perf_counter()
    with mock.patch.object(nuts, "laplace_coordinates", coordinates):
        fit = bl.fit(df, seed=seed, progress=False)
    wall = time.perf_counter() - start
    d = fit.diagnostics(warn=False)
    stats = fit.idata.sample_stats
    jax.clear_caches()
    return {"wall": wall, "steps": float(np.median(stats["n_steps"].values)),
            "step_size": float(np.median(stats["step_size"].values[:, -1])), "divergences": d.divergences,
            "rhat": d.max_rhat, "ess_tail": d.min_ess_tail}


def compare(name: str, df, seed: int) -> None:
    rows = {label: one(df, seed, coordinates) for label, coordinates in COORDINATES.items()}
    for label, r in rows.items():
        print(f"{name}, {label}: {r['wall']:.0f} s, {r['steps']:.0f} steps per draw, step size {r['step_size']:.3f}, "
              f"{r['divergences']} divergent, r-hat {r['rhat']:.4f}, min tail ESS {r['ess_tail']:.0f}", flush=True)
    new = rows["laplace"]
    for label in ("identity", "diagonal"):
        old = rows[label]
        print(f"{name}: laplace / {label}: wall {new['wall'] / old['wall']:.2f}x, "
              f"steps {new['steps'] / old['steps']:.2f}x, step size {new['step_size'] / old['step_size']:.2f}x", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--transfer", action="store_true", help="also the all-families transfer fit (shared data)")
    args = parser.parse_args(argv)
    demo = hitchhiker_split(bl.load_demo().data).train
    for seed in args.seeds:
        compare(f"demo, seed {seed}", demo, seed)
    if args.transfer:
        sys.path.insert(0, str(Path(__file__).parent))
        import real_targets

        shared = real_targets.shared_families()
        (_, _, _, train, _, _), = real_targets.cases(shared, [], None, ["olmo-ladder"], 5)
        compare("all families, OLMo's ladder seen at 1.3B", train, args.seeds[0])


if __name__ == "__main__":
    main()
