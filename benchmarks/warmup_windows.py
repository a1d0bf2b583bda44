"""Where NUTS' warmup spends its leapfrog steps: per adaptation window, with the library's dense metric and
two alternatives, in the same run.

NumPyro (as Stan) adapts the mass matrix in windows: a first buffer of 75 iterations, then windows of 25,
50, 100, ... draws, each ending with a covariance estimate, and a last buffer of 50. ``bl.fit`` samples u
in the Laplace coordinates of ``laplace_coordinates``, where the posterior is about N(0, 1e-3 I). Per case
and metric this script runs ``bl.fit``'s sampler (``nuts_sampler``: the same potential, start and
settings) once, its warmup collected, and prints the median tree size and the leapfrog steps in each
window, the warmup's share of all steps, and the draws' divergences, smallest bulk ESS and largest r-hat
(NumPyro's ``summary`` over the sampled sites, one block of draws: ``bl.fit`` would draw more or retry). Metrics:

- ``dense``: the library's (``dense_mass=True``, adapted);
- ``diagonal``: ``dense_mass=False``, adapted;
- ``laplace``: no mass-matrix adaptation, the metric the Laplace map's 1e-3 I, only the step size adapted.

Times are of the sampling alone: ``MCMC.run`` compiles its program and returns once the chains are
dispatched, and the time runs from there until their draws are read. They are noisy on a shared machine;
the step counts are not. Cases: the demo's fam0 below 2.8B (``bl.fit``'s rows at the defaults) and, with
the shared data, the hierarchical backtest cells k = 3, q = 0.3 and k = 2, q = 0 (``laplace_map.py``'s).

    BAYESLAW_DATA=../shared/data python benchmarks/warmup_windows.py [--metrics dense diagonal laplace]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.diagnostics import summary
from numpyro.infer.hmc_util import build_adaptation_schedule

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")
from bayeslaw.inference import nuts  # noqa: E402
from laplace_map import cases  # noqa: E402


def sampler(prepared, metric: str):
    """``nuts_sampler``'s MCMC, start and sampled sites with NUTS' mass-matrix options set for ``metric``."""
    library = nuts.NUTS

    def kernel(**options):
        if metric == "diagonal":
            options["dense_mass"] = False
        elif metric == "laplace":
            options.update(dense_mass=False, adapt_mass_matrix=False, inverse_mass_matrix=jnp.full(dims[0], 1e-3))
        return library(**options)

    dims = [None]
    with mock.patch.object(nuts, "NUTS", kernel):
        make, start, sites = nuts.nuts_sampler(prepared)
        dims[0] = start.z.shape[-1]
        mcmc = make(prepared.config.target_accept)  # the kernel is built here, inside the patch
    return mcmc, start, sites


def measure(prepared, metric: str, seed: int) -> dict:
    mcmc, start, sites = sampler(prepared, metric)
    warmup = prepared.config.warmup
    key = jax.random.PRNGKey(seed)
    mcmc.warmup(key, init_params=start, extra_fields=("num_steps",), collect_warmup=True)
    warm = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])  # waits for the chains
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("num_steps", "diverging"))
    extra = mcmc.get_extra_fields(group_by_chain=True)
    draws = np.asarray(extra["num_steps"])
    # the sampling alone: run() compiles (synchronously), then dispatches the chains and returns; the
    # arrays are ready when the chains end
    again, _, _ = sampler(prepared, metric)
    again.run(key, init_params=start, extra_fields=("num_steps",))
    t0 = time.perf_counter()
    np.asarray(again.get_extra_fields()["num_steps"])
    sampling = time.perf_counter() - t0
    windows = [(w.start, w.end + 1) for w in build_adaptation_schedule(warmup)]
    stats = summary({k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()
                     if k in sites}, group_by_chain=True)
    return {"windows": [(a, b, float(np.median(warm[:, a:b])), int(warm[:, a:b].sum())) for a, b in windows],
            "warmup": int(warm.sum()), "draws": int(draws.sum()), "median": float(np.median(draws)),
            "divergent": int(np.asarray(extra["diverging"]).sum()), "wall": sampling,
            "ess": min(np.nanmin(v["n_eff"]) for v in stats.values()),
            "rhat": max(np.nanmax(v["r_hat"]) for v in stats.values())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", nargs="+", default=["dense", "diagonal", "laplace"],
                        choices=["dense", "diagonal", "laplace"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, (rows, config) in cases().items():
        if name == "all families":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = nuts.prepare_fit(rows, config)
        print(f"\n{name}: {prepared.config.chains} chains x ({prepared.config.warmup} warmup + "
              f"{prepared.config.draws} draws)")
        base = None
        for metric in args.metrics:
            r = measure(prepared, metric, args.seed)
            base = base or r
            print(f"  {metric}: warmup {r['warmup']:,} leapfrog steps, draws {r['draws']:,} (median {r['median']:.0f} "
                  f"a draw); the warmup {r['warmup'] / (r['warmup'] + r['draws']):.0%} of all steps; "
                  f"{r['divergent']} divergent draws, bulk ESS >= {r['ess']:.0f}, r-hat <= {r['rhat']:.4f}; sampling {r['wall']:.1f} s (compiled); all steps "
                  f"{(r['warmup'] + r['draws']) / (base['warmup'] + base['draws']):.2f}x the first metric's")
            print("    window (iterations): median steps a draw, steps")
            print("    " + "; ".join(f"{a}-{b - 1}: {m:.0f}, {s:,}" for a, b, m, s in r["windows"]))


if __name__ == "__main__":
    main()
