"""Many NUTS fits as one program (``bayeslaw.inference.batched.fit_many``) against one at a time (``bl.fit``).

The data sets are the calibration study's (``bayeslaw.evaluation.calibration_study``'s simulator design:
3 families x 4 sizes x 2 seeds x 8 checkpoints, the first family's largest size held out) at its fit
settings (2 chains x 500 warmup + 500 draws). Both sides include the point fits that start each chain.
Prints fits per minute for each and their ratio, measured in the same run on this machine's
accelerator (JAX's default backend: ``cpu`` here, ``gpu`` where the device tool lends one), and checks
that the two give the same posteriors (each fit's alpha means, in posterior sds).

    python benchmarks/batched_fits.py                       # 4 one at a time, 16 batched 8 per program
    python benchmarks/batched_fits.py --one 2 --many 32 --batch 32     # on a GPU (2026-12-04, H200: 11.5 fits/min;
                                                                      # 64 per program ran past 5 minutes)
    python benchmarks/batched_fits.py --single    # a table alone: a program of one fit vs NumPyro's MCMC

``--single`` times what ``fit_many`` does with a structure of its own: NumPyro's ``MCMC`` with
vectorised chains (the same draws) against a program of one fit, each compiled afresh.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
from bayeslaw.evaluation import CALIBRATION_BATCH, CALIBRATION_FIT, CALIBRATION_SIMULATE, calibration_rows
from bayeslaw.inference.batched import _Options, _sample_batch, fit_many, structure
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import prepare_fit, sample_fit
from bayeslaw.simulation import simulate


def single(table, fit_opts: dict) -> None:
    """A table alone, compilation included: NumPyro's MCMC (``sample_fit``) against a program of one fit."""
    # one sampling, as the program's: no retry at a higher target acceptance, no blocks of extra draws
    config = FitConfig(**{k: v for k, v in fit_opts.items() if k != "progress"}, chain_method="vectorized",
                       extend=0, retry_target_accept=None)
    prepared = prepare_fit(table, config)
    start = time.perf_counter()
    by_mcmc = sample_fit(prepared)
    wall_mcmc = time.perf_counter() - start
    options = _Options(config.chains, config.warmup, config.draws, config.target_accept, config.dense_mass)
    start = time.perf_counter()
    (by_program,), _ = _sample_batch([prepared], structure(prepared), 1, options, None)
    wall_program = time.perf_counter() - start
    gap = np.max(np.abs(by_mcmc.site_draws("alpha") - by_program.site_draws("alpha")))
    print(f"one table: NumPyro's MCMC {wall_mcmc:.0f} s, a program of one fit {wall_program:.0f} s "
          f"(ratio {wall_program / wall_mcmc:.1f}x); largest difference in alpha's draws {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, default=4, help="data sets fitted one at a time")
    parser.add_argument("--many", type=int, default=16, help="data sets fitted as one program")
    parser.add_argument("--batch", type=int, default=CALIBRATION_BATCH, help="fits per program")
    parser.add_argument("--draws", type=int, default=CALIBRATION_FIT["draws"])
    parser.add_argument("--single", action="store_true", help="one table: a program of one fit vs NumPyro's MCMC")
    args = parser.parse_args()
    fit_opts = {**CALIBRATION_FIT, "draws": args.draws, "warmup": args.draws}
    tables = [calibration_rows(simulate(seed=i, **CALIBRATION_SIMULATE))[0] for i in range(1 if args.single else args.many)]
    backend = jax.default_backend()
    print(f"backend {backend} ({jax.device_count()} device(s)); fits: {fit_opts['chains']} chains x "
          f"{fit_opts['warmup']} warmup + {fit_opts['draws']} draws; {len(tables[0])} rows each")
    if args.single:
        single(tables[0], fit_opts)
        return

    start = time.perf_counter()
    one = [bl.fit(t, seed=i, **fit_opts) for i, t in enumerate(tables[:args.one])]
    wall_one = time.perf_counter() - start
    rate_one = 60 * args.one / wall_one
    print(f"one at a time: {args.one} fits in {wall_one:.0f} s = {rate_one:.2f} fits/min")

    options = {k: v for k, v in fit_opts.items() if k != "progress"}
    start = time.perf_counter()
    many = fit_many(tables, seeds=range(args.many), batch_size=args.batch, **options)
    wall_many = time.perf_counter() - start
    rate_many = 60 * args.many / wall_many
    print(f"batched ({args.batch} per program, compilation included): {args.many} fits in {wall_many:.0f} s "
          f"= {rate_many:.2f} fits/min")
    start = time.perf_counter()
    fit_many(tables[:args.batch], seeds=range(args.batch), batch_size=args.batch, **options)
    wall_warm = time.perf_counter() - start
    print(f"batched again, compiled: {args.batch} fits in {wall_warm:.0f} s = {60 * args.batch / wall_warm:.2f} fits/min")
    print(f"ratio batched / one at a time: {rate_many / rate_one:.1f}x (compiled: {60 * args.batch / wall_warm / rate_one:.1f}x)")

    gaps, divergences = [], []
    for a, b in zip(many, one):
        da, db = a.site_draws("alpha"), b.site_draws("alpha")
        gaps.append(np.max(np.abs(da.mean(0) - db.mean(0)) / np.sqrt(0.5 * (da.var(0) + db.var(0)))))
        divergences.append((int(a.idata.sample_stats["diverging"].sum()), int(b.idata.sample_stats["diverging"].sum())))
    print(f"same posteriors: alpha means differ by at most {max(gaps):.2f} posterior sd (Monte Carlo error); "
          f"divergences batched/one: {divergences}")
    if backend == "cpu":
        print("GPU: not measured (no accelerator in this run)")


if __name__ == "__main__":
    main()
