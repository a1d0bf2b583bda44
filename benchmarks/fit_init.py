"""A fit's NUTS start: NumPyro's NUTS on the model (before) against NUTS on the model's potential, started
from ``compiled_initialize`` (now).

Given one key, ``NUTS(model)`` reads the model's sites and checks the start by evaluating the potential
and its gradient eagerly, operation by operation, each operation compiled on its own;
``compiled_initialize`` traces all of NumPyro's ``initialize_model`` abstractly and compiles only the
start's unconstrained values (``nuts_sampler``, what ``sample_fit`` runs, which then takes the Laplace coordinates). Each configuration runs in a fresh process (the eager operations' compilations
are cached per process), on the demo's default fit, and prints the time through the warmup (the start, the
compilation and the warmup draws) and through the last draw.

    python benchmarks/fit_init.py [--chains 1] [--draws 200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import jax, jax.numpy as jnp
from numpyro.infer import MCMC, NUTS, init_to_value
import bayeslaw.inference.nuts as nuts
from bayeslaw.inference.config import FitConfig
from bayeslaw.models import get_model
from bayeslaw.simulation import load_demo

path, chains, draws = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
prepared = nuts.prepare_fit(load_demo().data, FitConfig(chains=chains, draws=draws, warmup=draws,
                                                        chain_method="sequential"))
model, config = get_model(prepared.config.pooling), prepared.config
args, kwargs = (prepared.data,), {"y": jnp.asarray(prepared.y), "seed_scaling": config.seed_scaling}
key_fit, _ = jax.random.split(jax.random.PRNGKey(config.seed))
start = time.perf_counter()
if path == "before":  # sample_fit before: NumPyro's NUTS on the model, init_to_value
    kernel = NUTS(model, target_accept_prob=config.target_accept, dense_mass=config.dense_mass,
                  max_tree_depth=nuts.MAX_TREE_DEPTH, init_strategy=init_to_value(values=prepared.init))
    mcmc = MCMC(kernel, num_warmup=draws, num_samples=draws, num_chains=chains, chain_method="sequential",
                progress_bar=False)
    mcmc.warmup(key_fit, *args, **kwargs, extra_fields=nuts.EXTRA_FIELDS)
    first = time.perf_counter() - start
    mcmc.run(mcmc.post_warmup_state.rng_key, *args, **kwargs, extra_fields=nuts.EXTRA_FIELDS)
else:  # sample_fit now
    make, z0, _ = nuts.nuts_sampler(prepared)
    mcmc = make(prepared.config.target_accept)
    mcmc.warmup(key_fit, init_params=z0, extra_fields=nuts.EXTRA_FIELDS)
    first = time.perf_counter() - start
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=nuts.EXTRA_FIELDS)
total = time.perf_counter() - start
print(json.dumps({"path": path, "start_and_warmup_s": first, "total_s": total}))
"""


def run(path: str, chains: int, draws: int) -> dict:
    """One configuration in a fresh process. Its result is the JSON line it prints: on this machine the
    process has crashed at exit (SIGSEGV, in the runtime's teardown) after printing it."""
    out = subprocess.run([sys.executable, "-c", CHILD, path, str(chains), str(draws)], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{path}: exit {out.returncode} before a result: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--draws", type=int, default=200, help="warmup and draws each")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    results = {"before": [], "now": []}
    for _ in range(args.repeats):
        for path in results:
            results[path].append(run(path, args.chains, args.draws))
    for path, rows in results.items():
        warm = sorted(r["start_and_warmup_s"] for r in rows)
        total = sorted(r["total_s"] for r in rows)
        print(f"{path:>6}: start + warmup {warm[len(warm) // 2]:6.1f} s, start + warmup + draws "
              f"{total[len(total) // 2]:6.1f} s (median of {len(rows)}; {args.chains} chain(s), "
              f"{args.draws} + {args.draws})")
    ratio = (sorted(r["total_s"] for r in results["before"])[args.repeats // 2]
             / sorted(r["total_s"] for r in results["now"])[args.repeats // 2])
    print(f"before / now: {ratio:.2f}x (the same start and kernel: tests/test_batched.py checks the draws agree)")


if __name__ == "__main__":
    main()
