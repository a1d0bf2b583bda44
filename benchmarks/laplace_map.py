"""The Laplace map's Newton: whole difference Hessians (``trust-exact``, what ``laplace_coordinates`` runs)
against Hessian-vector products (``trust-ncg``, what it ran before 2026-12-06), in the same run.

Both minimise the same compiled potential from the same start (the point fit's, as ``bl.fit`` starts)
with the same gradient tolerance, their derivatives central differences of the same paired gradient
(``nuts.paired``: two points a call). Printed per case: wall time, Newton steps, calls of the paired
gradient, the potential at the end and the largest coordinate gap between the two ends.

Cases: the demo's fam0 below 2.8B parameters (``bl.fit``'s rows at its defaults); the hierarchical
backtest cell k = 3, q = 0.3 and k = 2, q = 0 of the shared data (thinned to 8 per run, as the
backtest thins); every shared family in full (``bl.fit``'s defaults: the all-families fit).

    BAYESLAW_DATA=../shared/data python benchmarks/laplace_map.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize
from jax.flatten_util import ravel_pytree

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
from bayeslaw.data.split import DEFAULT_MIN_TOKENS, TEST_FROM, thin_checkpoints
from bayeslaw.evaluation import _family_split
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import (LAPLACE_GRADIENT_TOL, LAPLACE_ITERATIONS, compiled_initialize,
                                     difference_hessian, paired, prepare_fit)
from bayeslaw.models import get_model
from bayeslaw.simulation import load_demo


def cases() -> dict[str, tuple[pd.DataFrame, FitConfig]]:
    demo = load_demo().data
    fam = demo[demo["family"] == "fam0"]
    out = {"demo fam0": (fam[fam["params"] < 2.8e9], FitConfig())}
    try:
        from fit_all_families import shared_families
        df = shared_families()
    except (ImportError, FileNotFoundError, ValueError) as error:  # no shared data: the demo alone
        print(f"shared data not read ({error}); the demo's case only")
        return out
    for k, q in ((3, 0.3), (2, 0.0)):
        rows = [thin_checkpoints(_family_split(g, k, q, min_tokens=DEFAULT_MIN_TOKENS, test_from=TEST_FROM).train,
                                 per_run=8)
                for _, g in df.groupby("family") if g["model"].nunique() >= 3]
        out[f"backtest cell k={k} q={q:g}"] = (pd.concat(rows), FitConfig(min_tokens=None, thin=None))
    out["all families"] = (df, FitConfig())
    return out


def newton(method: str, one, pair, z0: np.ndarray) -> dict:
    calls = [0]

    def gradients(a, b):
        calls[0] += 1
        both = np.asarray(pair(np.stack([a, b]))[1], dtype=float)
        return both[0], both[1]

    def objective(z):
        value, grad = one(z)
        value, grad = float(value), np.asarray(grad, dtype=float)
        return (value, grad) if np.isfinite(value) and np.all(np.isfinite(grad)) else (np.inf, np.zeros_like(z))

    def along(z, p):  # the Hessian-vector product trust-ncg took: central differences along p
        h = np.cbrt(np.finfo(float).eps) * max(1.0, np.linalg.norm(z)) / max(np.linalg.norm(p), 1e-300)
        ahead, behind = gradients(z + h * p, z - h * p)
        return np.nan_to_num((ahead - behind) / (2 * h), nan=0.0, posinf=0.0, neginf=0.0)

    derivative = {"hessp": along} if method == "trust-ncg" else {"hess": lambda z: difference_hessian(gradients, z)}
    start = time.perf_counter()
    solution = scipy.optimize.minimize(objective, z0, jac=True, method=method, **derivative,
                                       options={"maxiter": LAPLACE_ITERATIONS, "gtol": LAPLACE_GRADIENT_TOL})
    return {"wall": time.perf_counter() - start, "steps": solution.nit, "calls": calls[0], "U": float(solution.fun),
            "x": solution.x}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method per case (medians)")
    args = parser.parse_args(argv)
    print(f"{'case':28} {'dims':>5} {'method':>12} {'wall s':>7} {'steps':>6} {'calls':>6} {'U at the end':>16}")
    for name, (rows, config) in cases().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_fit(rows, config)
        model_args, kwargs = (prepared.data,), {"y": jnp.asarray(prepared.y), "seed_scaling": config.seed_scaling}
        info = compiled_initialize(get_model(config.pooling), prepared.init, model_args, kwargs)
        potential = info.potential_fn(*model_args, **kwargs)
        flat, unravel = ravel_pytree(info.param_info.z)
        one, pair = paired(jax.value_and_grad(lambda x: potential(unravel(x))))
        z0 = np.asarray(flat, dtype=float)
        one(z0)  # compiled before any timing
        ends, walls = {}, {}
        for method in ("trust-ncg", "trust-exact"):
            runs = [newton(method, one, pair, z0) for _ in range(args.repeats)]
            walls[method] = float(np.median([r["wall"] for r in runs]))
            ends[method] = runs[0]
            r = runs[0]
            print(f"{name:28} {len(z0):5d} {method:>12} {walls[method]:7.2f} {r['steps']:6d} {r['calls']:6d} "
                  f"{r['U']:16.6f}")
        gap = np.abs(ends["trust-ncg"]["x"] - ends["trust-exact"]["x"]).max()
        print(f"{'':28} trust-ncg / trust-exact: {walls['trust-ncg'] / walls['trust-exact']:.2f}x; "
              f"ends {gap:.1e} apart, potentials {ends['trust-ncg']['U'] - ends['trust-exact']['U']:+.1e}")


if __name__ == "__main__":
    main()
