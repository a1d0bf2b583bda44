"""Cost of one gradient of the run-level likelihood: the eigenbasis form against a dense Cholesky per run.

``bayeslaw.models.runs.RunMarginal`` evaluates each run's Gaussian in the precomputed eigenbasis of its
kernel (Sherman-Morrison for the offset: no factorisation per gradient). The alternative, measured in
the same run on the same rows, builds each run's covariance C_r and factorises it (a batched Cholesky)
at every gradient, as a learnt correlation length would require. Both give the same log density
(checked here to 1e-9). Prints milliseconds per value-and-gradient of the model's potential and the ratio.

    python benchmarks/likelihood_cost.py [--pooling hierarchical] [--repeats 300]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer.util import initialize_model

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
import bayeslaw.models as models
from bayeslaw.data.split import cut_early, thin_checkpoints
from bayeslaw.models.runs import JITTER, bridge_kernel


class DenseRunMarginal(dist.MultivariateNormal):
    """The same per-run Gaussian, by a Cholesky factorisation of C_r at every evaluation."""

    def __init__(self, loc, eigvals, eigvecs, mask, seed_var, dev_var, obs_var, before=None, *, loading=None):
        if before is not None:
            raise ValueError("DenseRunMarginal: runs sharing a branch tree's offset are not modelled here")
        m = jnp.asarray(mask, dtype=float)
        t = m if loading is None else jnp.asarray(loading, dtype=m.dtype) * m  # the offset's loading
        x = DenseRunMarginal.fraction
        cov = (seed_var[:, None, None] * t[:, :, None] * t[:, None, :]
               + dev_var[:, None, None] * bridge_kernel(x[:, :, None], x[:, None, :])
               + (obs_var[:, None, None] + JITTER) * jnp.eye(x.shape[1]))
        cov = m[:, :, None] * m[:, None, :] * cov + (1 - m[:, :, None]) * jnp.eye(x.shape[1])
        self.padding = jnp.sum(1 - m, -1)
        super().__init__(loc, scale_tril=jnp.linalg.cholesky(cov))

    def log_prob(self, value):
        return super().log_prob(value) + 0.5 * np.log(2 * np.pi) * self.padding


def time_gradient(model, data, y, repeats: int) -> tuple[float, float]:
    info = initialize_model(jax.random.PRNGKey(0), model, model_args=(data,), model_kwargs={"y": y})
    value_and_grad = jax.jit(jax.value_and_grad(info.potential_fn))
    z = info.param_info.z
    value = float(value_and_grad(z)[0])
    start = time.perf_counter()
    for _ in range(repeats):
        value_and_grad(z)[0].block_until_ready()
    return (time.perf_counter() - start) / repeats * 1e3, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pooling", default="hierarchical")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)

    rows = thin_checkpoints(cut_early(bl.load_demo().data), per_run=20).reset_index(drop=True)
    data = models.prepare(rows)
    y = jnp.log(jnp.asarray(rows["loss"].to_numpy()))
    model = models.get_model(args.pooling)
    eig_ms, eig_value = time_gradient(model, data, y, args.repeats)
    DenseRunMarginal.fraction = jnp.where(data.run_mask, data.fraction[data.run_index], 1.0)
    eigen_class, models.RunMarginal = models.RunMarginal, DenseRunMarginal
    try:
        dense_ms, dense_value = time_gradient(model, data, y, args.repeats)
    finally:
        models.RunMarginal = eigen_class
    assert abs(eig_value - dense_value) < 1e-9 * max(1.0, abs(dense_value)), (eig_value, dense_value)
    print(f"{args.pooling}: {data.n_runs} runs x up to {data.run_mask.shape[1]} checkpoints ({len(rows)} rows)")
    print(f"eigenbasis (RunMarginal): {eig_ms:.3f} ms per value and gradient")
    print(f"dense Cholesky per run:   {dense_ms:.3f} ms per value and gradient")
    print(f"ratio dense / eigenbasis: {dense_ms / eig_ms:.2f}x (same log density: {eig_value:.6f})")


if __name__ == "__main__":
    main()
