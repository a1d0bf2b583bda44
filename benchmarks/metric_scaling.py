"""NUTS' metric with and without the per-coordinate scaling of ``coordinate_scales``, at the defaults.

    python benchmarks/metric_scaling.py [--seeds 0 1 2]
    BAYESLAW_DATA=../shared/data python benchmarks/metric_scaling.py --transfer   # + every shared family

NumPyro's mass-matrix adaptation shrinks its covariance estimate toward 1e-3 I (a variance floor of about
2e-5); the data pin some of the sampled coordinates' combinations far tighter, and the metric is then
off in those directions (docs/run_likelihood.md, "The mass matrix's floor"). ``bl.fit`` samples
z = s u with s from the start's curvature. This script fits the demo's default fit (``bayeslaw demo``'s:
every family's smaller models, 4 x 1000), and with ``--transfer`` the all-families transfer fit of
``real_targets.py`` (OLMo's ladder seen at its 1.3B runs), once as the library runs it and once with
s = 1 (the sampler as it was), in the same process, and prints wall time, median leapfrog steps per
draw, the final step size, divergences and r-hat, and the ratios.

The model is the same in both runs; only the metric's coordinates differ. (The other half of the
change, the noise split and LKJ(10), is a different model: its figures are in the docs.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import numpy as np

import bayeslaw as bl
from bayeslaw.evaluation import hitchhiker_split
from bayeslaw.inference import nuts


def unscaled(potential_fn, z):
    """s = 1 for every coordinate: NUTS in the model's own unconstrained coordinates."""
    return jax.tree.map(np.ones_like, z)


def one(df, seed: int, scaled: bool) -> dict:
    start = time.perf_counter()
    with mock.patch.object(nuts, "coordinate_scales", nuts.coordinate_scales if scaled else unscaled):
        fit = bl.fit(df, seed=seed, progress=False)
    wall = time.perf_counter() - start
    d = fit.diagnostics(warn=False)
    stats = fit.idata.sample_stats
    jax.clear_caches()
    return {"wall": wall, "steps": float(np.median(stats["n_steps"].values)),
            "step_size": float(np.median(stats["step_size"].values[:, -1])), "divergences": d.divergences,
            "rhat": d.max_rhat, "ess_tail": d.min_ess_tail}


def compare(name: str, df, seed: int) -> None:
    rows = {label: one(df, seed, scaled) for label, scaled in (("as it was (s = 1)", False), ("scaled", True))}
    for label, r in rows.items():
        print(f"{name}, {label}: {r['wall']:.0f} s, {r['steps']:.0f} steps per draw, step size {r['step_size']:.3f}, "
              f"{r['divergences']} divergent, r-hat {r['rhat']:.4f}, min tail ESS {r['ess_tail']:.0f}", flush=True)
    old, new = rows.values()
    print(f"{name}: scaled / as it was: wall {new['wall'] / old['wall']:.2f}x, steps {new['steps'] / old['steps']:.2f}x, "
          f"step size {new['step_size'] / old['step_size']:.2f}x", flush=True)


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
