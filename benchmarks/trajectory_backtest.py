"""Trajectory laws on the shared data: predict each family's largest model's loss curve from its smaller ones.

The Hitchhiker's protocol (``bayeslaw.evaluation``): per family, fit the smaller models' trajectories
(checkpoints after 10B tokens), predict the largest model's last 30% of checkpoints, score the
absolute relative error (ARE) of the point prediction (and of the posterior median, with the
coverage of the 50% / 90% intervals of a new run, for the Bayesian fits). Families: those with
trajectories at a stated batch size (PolyPythias lineage A, OLMo ladder, OLMo, T5-Pile, datablations'
single-epoch runs). Forms: chinchilla, kaplan_e, su2024 (point: Huber + L-BFGS from each law's grid;
Bayes: the hierarchical model over all families at once).

    BAYESLAW_DATA=../shared/data python benchmarks/trajectory_backtest.py [--forms chinchilla kaplan_e su2024]
        [--bayes-forms chinchilla su2024] [--thin 12] [--draws 500] [--chains 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd
from bayeslaw.data.split import thin_checkpoints
from bayeslaw.evaluation import bayes_backtest, point_backtest


def trajectory_families() -> pd.DataFrame:
    """Shared families with loss curves at a known batch size, seen at two or more model sizes."""
    df = bd.load_all()
    keep = df["batch_size"].notna() & (df["step"] >= 0)
    keep &= ~(df["epochs"] > 1)  # datablations: repeated data, which no law here models
    keep &= ~((df["source"] == "polypythias") & ((df["lineage"] != "A") | df["outlier"].astype(bool)))
    df = df[keep]
    sizes = df.groupby("family")["params"].nunique()
    return df[df["family"].isin(sizes.index[sizes >= 2])].reset_index(drop=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forms", nargs="*", default=["chinchilla", "kaplan_e", "su2024"])
    parser.add_argument("--bayes-forms", nargs="*", default=["chinchilla", "su2024"])
    parser.add_argument("--thin", type=int, default=12, help="log-spaced checkpoints kept per run (train rows)")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--out", default=None, help="write scores.csv and predictions.csv here")
    args = parser.parse_args(argv)

    df = trajectory_families()
    print(df.groupby("family").agg(sizes=("params", "nunique"), runs=("run", "nunique"), rows=("loss", "size"),
                                   batch_sizes=("batch_size", "nunique")).to_string())
    # thin the training curves once; every target checkpoint in its last 30% stays (the split takes those from df)
    thinned = thin_checkpoints(df, per_run=args.thin)
    target_models = df.loc[df.groupby("family")["params"].transform("max") == df["params"]]
    rows = pd.concat([thinned, target_models]).drop_duplicates(["run", "step", "tokens", "loss_name"])
    scores, predictions = [], []
    for form in args.forms:
        start = time.perf_counter()
        result = point_backtest(rows, methods=("epoch",), form=form)
        wall = time.perf_counter() - start
        scores.append(result.scores.assign(form=form, kind="point", wall_s=wall))
        predictions.append(result.predictions.assign(form=form))
        print(f"point {form}: {wall:.0f} s")
    for form in args.bayes_forms:
        start = time.perf_counter()
        result, fitted = bayes_backtest(rows, form=form, fit_options={
            "chains": args.chains, "draws": args.draws, "warmup": args.draws, "thin": args.thin,
            "progress": False})
        wall = time.perf_counter() - start
        diag = fitted.diagnostics(warn=False)
        scores.append(result.scores.assign(form=form, kind="bayes", wall_s=wall, max_rhat=diag.max_rhat,
                                           divergences=diag.divergences))
        predictions.append(result.predictions.assign(form=form))
        print(f"bayes {form}: {wall:.0f} s; {diag}")
        jax.clear_caches()
    scores = pd.concat(scores, ignore_index=True)
    table = scores.pivot_table(index="family", columns=["kind", "form"], values="are")
    print("\nARE of the target's last 30% (lower is better):")
    print(table.round(4).to_string())
    bayes = scores[scores["kind"] == "bayes"]
    if not bayes.empty:
        print("\nBayesian intervals (new run) on the target's last 30%: coverage and mean 90% width (nats):")
        print(bayes[["family", "form", "coverage50", "coverage90", "width90"]].round(3).to_string(index=False))
    print("\nmedian ARE over families:")
    print(scores.groupby(["kind", "form"])["are"].median().round(4).to_string())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        scores.to_csv(out / "scores.csv", index=False)
        pd.concat(predictions, ignore_index=True).to_csv(out / "predictions.csv", index=False)
        print(f"wrote {out}/scores.csv, predictions.csv")
    return scores


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
