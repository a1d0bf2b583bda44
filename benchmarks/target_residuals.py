"""Where a family's forecast goes wrong: the fitted law against each training size's runs, and at the target.

One scaling target of ``real_targets.py`` (a family's largest size, predicted from the sizes below it),
``bl.fit`` at its defaults (or ``--seed-scaling size``). Printed:

- per training size, the runs' mean residual log loss - log L(theta) (posterior-median law) in bins of
  the fraction of the run x: at x = 1 the schedule shape and the deviation are pinned to 0, so what is
  left there is the runs' offsets; a size whose runs all sit on one side is the law missing that size;
- the same size's spread of final log losses across its runs (its seeds, where replicated);
- at the target's last 30%: the observed loss, the law's and the new-run forecast's medians, 90% band;
- the fit's noise scales and the law's parameters (posterior medians).

    BAYESLAW_DATA=../shared/data python benchmarks/target_residuals.py --family pythia
    ... --family pythia --seed-scaling size
    ... --family pythia --runs-per-size 1       # the first run (by name) of each training size only
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
from real_targets import last_30, score, shared_families, sizes

BINS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
COLUMNS = ["family", "run", "params", "tokens", "run_tokens"]


def residuals(fit, rows: pd.DataFrame) -> pd.DataFrame:
    """Mean log loss - log L (posterior-median law) per size and bin of x, and the seeds' final spread."""
    law = np.median(fit.predict(rows[COLUMNS], kind="law").draws.values, axis=0)
    rows = rows.assign(size=sizes(rows), resid=np.log(rows["loss"].to_numpy()) - np.log(law),
                       x=pd.cut(rows["tokens"] / rows["run_tokens"], BINS))
    table = rows.groupby(["size", "x"], observed=True)["resid"].mean().unstack()
    final = rows[rows["tokens"] == rows["run_tokens"]]
    table["runs"] = final.groupby("size")["run"].nunique()
    table["sd_final"] = final.groupby("size")["loss"].apply(lambda s: np.log(s).std(ddof=1))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="pythia")
    parser.add_argument("--seed-scaling", choices=("constant", "size"), default=None, help="default: the library's")
    parser.add_argument("--runs-per-size", type=int, default=None,
                        help="keep the first K runs (by name) of each training size: replicates left out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    df = shared_families()
    rows = df[df["family"] == args.family]
    if rows.empty:
        parser.error(f"unknown or ineligible family {args.family!r}; eligible: {sorted(df['family'].unique())}")
    size = sizes(rows)
    train, test = rows[size < size.max()], last_30(rows[size == size.max()])
    if args.runs_per_size:
        first = (train.drop_duplicates("run").assign(size=sizes)
                 .sort_values("run").groupby("size")["run"].head(args.runs_per_size))
        train = train[train["run"].isin(first)]
    options = {} if args.seed_scaling is None else {"seed_scaling": args.seed_scaling}
    fit = bl.fit(train, seed=args.seed, progress=False, **options)
    print(f"{args.family}: target {size.max():.3g}, training sizes {sorted(sizes(train).unique())}; {fit!r}; "
          f"seed_scaling {fit.seed_scaling}")
    print(f"\nresidual log loss - log L(theta), by training size and fraction of the run x:\n"
          f"{residuals(fit, train).round(4).to_string()}")
    y = test["loss"].to_numpy(float)
    law = fit.predict(test[COLUMNS], kind="law").draws.values
    new = fit.predict(test[COLUMNS], kind="new_run", seed=args.seed).draws.values
    q05, q95 = np.quantile(new, [0.05, 0.95], axis=0)
    scores = score(y, np.median(new, axis=0), new)  # real_targets' scoring: ARE and coverage alike
    print(f"\ntarget's last 30% ({len(y)} checkpoints, {test['run'].nunique()} runs): observed {y.mean():.4f}, "
          f"law median {np.median(law, axis=0).mean():.4f}, new-run median {np.median(new, axis=0).mean():.4f}, "
          f"90% band {q05.mean():.4f}-{q95.mean():.4f}; ARE {scores['are']:.4f}, "
          f"coverage 50% {scores['cov50']:.2f}, 90% {scores['cov90']:.2f}")
    posterior = fit.idata.posterior
    names = [n for n in ("e", "alpha", "beta", "sigma_seed", "gamma_seed", "sigma_dev", "sigma_obs", "offset_start",
                         "shape", "shape_size")
             if n in posterior]
    print("\nposterior medians: " + "; ".join(
        f"{n} {np.round(np.median(posterior[n].values.reshape(-1, *posterior[n].shape[2:]), axis=0), 4)}"
        for n in names))


if __name__ == "__main__":
    main()
