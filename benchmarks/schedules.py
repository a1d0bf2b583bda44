"""Schedule laws on real sweeps (wsd_horizons): a longer horizon forecast from shorter ones, and the best
cooldown fraction of the 124M sweep forecast before any 124M cooldown is seen.

1. **Horizons** (``--part horizons``). Per data set (slimpajama, openwebtext2; one family each), shape
   (cosine; WSD, whose runs branch from a constant-rate run) and size with a smaller size beside it, the
   size's longest run of that shape is the target. Seen: every run of the smaller sizes in full, and the
   target size's runs up to its second-longest horizon of that shape (its shorter runs, and the stable
   run a WSD target branches from, as far as that). Scored on the target's last 30% of checkpoints and
   on its final loss:

   - ``bayes annealing``: ``bl.fit(seen, form="annealing")`` at the defaults; the target is a new run
     (a WSD branch shares its stable run's offset): the median's ARE, CRPS / loss, 50% / 90% coverage;
   - ``point annealing``: ``fit_point(seen, form="annealing")`` (the epoch protocol);
   - ``chinchilla, final losses``: the law of final losses fitted by the epoch protocol to the final loss of
     every finished run of the target's shape seen (the practice the schedule laws replace), evaluated at
     the target's tokens; and ``bayes chinchilla``, the same rows by ``bl.fit`` (``min_tokens=None``: these
     runs stop below 10B tokens).

2. **Cooldown** (``--part cooldown``). One annealing fit of slimpajama with no WSD run at 124M (the
   124M constant-rate runs, cosines and every other size kept). For each 124M sweep (peak rate, horizon,
   decay type) with three or more cooldown fractions: the fraction forecast best (lowest median final
   loss among the fractions tried; ``p_best`` its posterior probability, on the law's draws) against the
   observed best, the regret (the observed final loss at the forecast best over the observed best), and
   the 90% band's coverage of the sweep's final losses (each run a branch of its stable run where that
   is known), and whether ``p_best`` is calibrated (its mean at the forecast best against how often that
   is the observed best). Also :func:`bayeslaw.plan.best_cooldown` over its default grid (0.02-0.6).

    BAYESLAW_DATA=../shared/data python benchmarks/schedules.py [--part horizons|cooldown|all]

The multipower test split is ``schedule_laws.py``; live extrapolation from 25%, 50% and 75% of a run is
``live_forecast.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd
from bayeslaw.data.runs import rising_runs
from bayeslaw.data.schedules import after_warmup, run_schedules
from bayeslaw.data.split import thin_checkpoints
from bayeslaw.inference.nuts import fit as bayes_fit
from bayeslaw.inference.point import fit_point
from bayeslaw.metrics import crps
from bayeslaw.plan import best_cooldown

TAIL = 0.3  # the target's last 30% of checkpoints (the Hitchhiker's Guide's ARE)
THIN = 20  # checkpoints kept per run, for every method alike (bl.fit's default thinning)
LOG_EVERY = 200  # wsd_horizons logs the validation loss every 200 steps


def load() -> pd.DataFrame:
    """wsd_horizons past each run's warmup, one family per data set; the chunk1 extensions and the runs that
    diverged (``bl.fit`` refuses them: :func:`bayeslaw.data.runs.rising_runs`) left out, and said. Each
    run's schedule shape and total steps as columns (``shape``, ``total_steps``), parsed once."""
    df = bd.load("wsd_horizons")
    df = df[~df["family"].str.startswith("slimpajama_chunk1")]
    schedules = run_schedules(df)
    df = after_warmup(df.assign(family=df["family"].str.split("-").str[0],
                                shape=df["run"].map({run: s.shape for run, s in schedules.items()}),
                                total_steps=df["run"].map({run: s.total_steps for run, s in schedules.items()})))
    diverged = rising_runs(df, by="step")
    for run, d in diverged.iterrows():
        print(f"left out run {run!r}: diverged, loss {d['first_loss']:.3f} at step {d['first']:g} -> "
              f"{d['last_loss']:.3f} at step {d['last']:g}")
    return df[~df["run"].isin(diverged.index)].reset_index(drop=True)


def horizon_cases(df: pd.DataFrame):
    """(family, shape, size, seen rows, the targets' rows) per case: the targets are the size's runs of the
    shape at its longest horizon."""
    sizes = df.groupby("model")["params"].first().sort_values()
    for family, rows in df.groupby("family"):
        for shape in ("cosine", "wsd"):
            for model in sizes.index:
                here = rows[(rows["model"] == model) & (rows["shape"] == shape)]
                smaller = rows[rows["params"] < sizes[model]]
                horizons = here.groupby("run")["total_steps"].first().astype(float)
                if smaller.empty or horizons.nunique() < 2:
                    continue
                targets = horizons.index[horizons == horizons.max()]
                second = horizons[horizons < horizons.max()].max()
                same_size = rows[(rows["model"] == model) & ~rows["run"].isin(targets) & (rows["step"] <= second)]
                seen = thin_checkpoints(pd.concat([smaller, same_size], ignore_index=True), per_run=THIN, by="step")
                yield family, shape, model, seen, rows[rows["run"].isin(targets)]


def final_losses(seen: pd.DataFrame, shape: str) -> pd.DataFrame:
    """The final loss of every finished run of ``shape`` in ``seen`` (its last checkpoint within one logging
    interval, 200 steps, of its schedule's end)."""
    last = seen.loc[seen.groupby("run")["step"].idxmax()]
    done = (last["step"] >= last["total_steps"] - LOG_EVERY) & (last["shape"] == shape)
    return last[done].drop(columns=["schedule", "parent_run"]).reset_index(drop=True)


def score(observed: np.ndarray, draws: np.ndarray, is_final: np.ndarray) -> dict:
    """ARE of the median, CRPS / loss and 50% / 90% coverage of (sample, checkpoint) draws (a point
    prediction is one sample); ``final_err_pct``: the median's mean |relative error| at the runs' last
    checkpoints."""
    median = np.median(draws, axis=0)
    relative = np.abs(median / observed - 1)
    out = {"are_pct": 100 * relative.mean(), "final_err_pct": 100 * relative[is_final].mean(),
           "crps_pct": 100 * np.mean(crps(draws, observed) / observed)}
    if draws.shape[0] > 1:
        q5, q25, q75, q95 = np.quantile(draws, [0.05, 0.25, 0.75, 0.95], axis=0)
        out.update(cover50=np.mean((observed >= q25) & (observed <= q75)),
                   cover90=np.mean((observed >= q5) & (observed <= q95)),
                   halfwidth90_pct=100 * np.median((q95 - q5) / 2 / median))
    return out


def horizons() -> pd.DataFrame:
    df = load()
    rows = []
    for family, shape, model, seen, targets in horizon_cases(df):
        last = targets.groupby("run")["step"].transform("max")
        first = targets.groupby("run")["step"].transform("min")
        tail = targets[targets["step"] >= last - TAIL * (last - first)].sort_values(["run", "step"])
        observed = tail["loss"].to_numpy()
        is_final = (tail["step"] == tail.groupby("run")["step"].transform("max")).to_numpy()
        case = {"family": family, "shape": shape, "model": model, "horizon": int(targets["step"].max()),
                "targets": targets["run"].nunique(), "seen_runs": seen["run"].nunique()}
        finals = final_losses(seen, shape)
        methods = {
            "bayes annealing": lambda: bayes_fit(seen, form="annealing", progress=False),
            "point annealing": lambda: fit_point(seen, form="annealing"),
            "chinchilla, final losses": lambda: fit_point(finals, form="chinchilla"),
            "bayes chinchilla, final losses": lambda: bayes_fit(finals, form="chinchilla", min_tokens=None,
                                                                progress=False),
        }
        for method, fitter in methods.items():
            start = time.perf_counter()
            try:
                fitted = fitter()
            except ValueError as error:  # too few final losses for five constants, one size, ...
                rows.append({**case, "method": method, "error": str(error)[:80]})
                continue
            wall = time.perf_counter() - start
            bayesian = hasattr(fitted, "idata")
            rows_in = tail if method.endswith("annealing") else tail.drop(columns=["schedule", "parent_run"])
            draws = (fitted.predict(rows_in, kind="new_run").draws.values if bayesian
                     else np.asarray(fitted.predict(rows_in), dtype=float)[None, :])
            row = {**case, "method": method, "fit_s": wall, "train_rows": len(finals) if "chinchilla" in method else len(seen),
                   **score(observed, draws, is_final)}
            if bayesian:
                d = fitted.diagnostics(warn=False)
                row.update(divergences=d.divergences, max_rhat=d.max_rhat)
            rows.append(row)
        print(pd.DataFrame(rows[-len(methods):]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print("\nhorizons, every target:")
    print(table.round(4).to_string(index=False))
    print("\nmedians over targets by method (the targets every method scored):")
    scored = table.dropna(subset=["are_pct"])
    common = scored.groupby(["family", "shape", "model"])["method"].transform("nunique") == scored["method"].nunique()
    columns = [c for c in ("are_pct", "final_err_pct", "crps_pct", "cover50", "cover90", "halfwidth90_pct", "fit_s")
               if c in scored]
    summary = scored[common].groupby("method")[columns].median()
    print(summary.round(4).to_string())
    print(f"({common.sum() // max(scored['method'].nunique(), 1)} cases; final_err_pct: |error| at the runs' last checkpoints)")
    return table


def cooldown() -> pd.DataFrame:
    df = load()
    df = df[df["family"] == "slimpajama"]
    sweep_size = "124M"
    held = (df["model"] == sweep_size) & (df["shape"] == "wsd")
    schedules = run_schedules(df)
    start = time.perf_counter()
    fit = bayes_fit(df[~held], form="annealing", progress=False)
    wall = time.perf_counter() - start
    print(f"cooldown: annealing fit of {df[~held]['run'].nunique()} runs ({len(df[~held])} rows) without the "
          f"{df[held]['run'].nunique()} WSD runs at {sweep_size}: {wall:.0f} s, {fit.diagnostics(warn=False)}")
    params = float(df.loc[held, "params"].iloc[0])
    stable = {s.peak_lr: run for run, s in schedules.items()
              if s.shape == "constant" and run in set(df.loc[df["model"] == sweep_size, "run"])}
    finals = df[held].loc[lambda d: d.groupby("run")["step"].transform("max") == d["step"]]
    finals = finals.assign(peak_lr=finals["run"].map(lambda r: schedules[r].peak_lr),
                           decay=finals["run"].map(lambda r: schedules[r].decay_type),
                           fraction=finals["run"].map(lambda r: 1 - schedules[r].decay_start / schedules[r].total_steps))
    finished = finals["step"] >= finals["total_steps"] - LOG_EVERY
    rows = []
    for (peak_lr, total, decay), sweep in finals[finished].groupby(["peak_lr", "total_steps", "decay"]):
        sweep = sweep.drop_duplicates("fraction").sort_values("fraction")
        if len(sweep) < 3:
            continue
        first = schedules[sweep["run"].iloc[0]]
        parent = stable.get(peak_lr)
        # the sweep's own fractions as branches of its stable run, then the default grid as a new run
        forecast = best_cooldown(fit, total_steps=int(total), peak_lr=peak_lr, params=params, decay_type=decay,
                                 warmup_steps=first.warmup_steps, final_lr=first.final_lr,
                                 fractions=sweep["fraction"].to_numpy(), parent_run=parent)
        grid = best_cooldown(fit, total_steps=int(total), peak_lr=peak_lr, params=params, decay_type=decay,
                             warmup_steps=first.warmup_steps, final_lr=first.final_lr)
        observed = sweep["loss"].to_numpy()
        best_at, observed_best = int(np.argmax(forecast["best"].to_numpy())), int(np.argmin(observed))
        fractions = sweep["fraction"].round(3).to_numpy()
        rows.append({"peak_lr": peak_lr, "steps": int(total), "decay": decay, "fractions": len(sweep),
                     "parent seen": parent is not None,
                     "observed best": fractions[observed_best], "forecast best": fractions[best_at],
                     "p_best": forecast["p_best"].iloc[best_at], "p_best(observed)": forecast["p_best"].iloc[observed_best],
                     "regret_pct": 100 * (observed[best_at] / observed[observed_best] - 1),
                     "are_pct": 100 * np.mean(np.abs(forecast["loss"].to_numpy() / observed - 1)),
                     "cover90": np.mean((observed >= forecast["q5"]) & (observed <= forecast["q95"])),
                     "grid best (0.02-0.6)": float(grid.loc[grid["best"], "cooldown_fraction"].iloc[0])})
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    print("\ncooldown sweeps at 124M:")
    print(table.round(4).to_string(index=False))
    if len(table):
        hits = table["forecast best"] == table["observed best"]
        print(f"forecast best = observed best in {int(hits.sum())} of "
              f"{len(table)} sweeps; median regret {table['regret_pct'].median():.3f}%, worst {table['regret_pct'].max():.3f}%")
        # p_best is calibrated where the forecast best is right as often as its p_best says
        print(f"p_best of the forecast best: mean {table['p_best'].mean():.3f} against a hit rate of {hits.mean():.3f}; "
              f"p_best of the observed best: mean log {np.log(np.maximum(table['p_best(observed)'], 1e-4)).mean():.2f} "
              f"(floored at 1e-4), smallest {table['p_best(observed)'].min():.4f}; 90% coverage of the final losses: "
              f"median {table['cover90'].median():.2f}, mean {table['cover90'].mean():.2f} over sweeps")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("horizons", "cooldown", "all"), default="all")
    part = parser.parse_args().part
    start = time.perf_counter()
    if part in ("horizons", "all"):
        horizons()
    if part in ("cooldown", "all"):
        cooldown()
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
