"""Live extrapolation of real runs in flight: the rest of a run from its first 25%, 50% or 75% and the
finished runs.

For each held-out run and each fraction f (``--fractions``, default 0.25 0.5 0.75), its checkpoints up to
f of its schedule and every other run of the source are fitted (``bayeslaw.plan.live_forecast``, the
annealing law at the library defaults); the forecast of the run's remaining checkpoints is scored
against what it logged: the posterior median's mean relative error, its error at the last checkpoint
(the final loss), and the share of checkpoints inside the 50% and 90% bands. The
point fit of the same law to the same rows (``fit_point``, Huber + L-BFGS) is the baseline: it knows the
population's law but not the run's own level.

- multipower: the cosine_72000 run of each size (a run of its own: no trained branch shares its offset);
- polypythias: the highest seed of each size (lineage A, the two spiking 410m runs left out).

    BAYESLAW_DATA=../shared/data python benchmarks/live_forecast.py [--form annealing] [--fractions 0.25 0.5 0.75]
        [--sources multipower polypythias]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import bayeslaw.data as bd
from bayeslaw.data.schedules import run_schedules
from bayeslaw.inference.point import fit_point
from bayeslaw.plan import live_forecast


def cases() -> list[tuple[str, pd.DataFrame, str]]:
    mp = bd.load("multipower")
    pythia = bd.load("polypythias")
    pythia = pythia[(pythia["lineage"] == "A") & ~pythia["outlier"].astype(bool)]
    held = pythia.groupby("model")["seed"].max()
    return ([("multipower", mp, f"multipower-{size}-cosine_72000") for size in ("25M", "100M")]
            + [("polypythias", pythia, f"pythia-{size}-seed{seed}") for size, seed in held.items()])


def score(observed: np.ndarray, median: np.ndarray, bands: dict | None = None) -> dict:
    out = {"mre_pct": 100 * np.mean(np.abs(median / observed - 1)), "final_err_pct": 100 * (median[-1] / observed[-1] - 1)}
    if bands is not None:
        out["cover50"] = np.mean((observed >= bands["q25"]) & (observed <= bands["q75"]))
        out["cover90"] = np.mean((observed >= bands["q5"]) & (observed <= bands["q95"]))
        out["width90_pct"] = 100 * np.median((bands["q95"] - bands["q5"]) / median)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--form", default="annealing")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75],
                        help="how much of each run's schedule is seen")
    parser.add_argument("--sources", nargs="+", choices=("multipower", "polypythias"),
                        default=["multipower", "polypythias"])
    options = parser.parse_args()
    form = options.form
    rows = []
    for (source, df, run), fraction in [(case, f) for case in cases() if case[0] in options.sources
                                                  for f in options.fractions]:
        own = df[df["run"] == run]
        cut = int(run_schedules(own)[run].total_steps * fraction)
        seen = pd.concat([df[df["run"] != run], own[own["step"] <= cut]])
        rest = own[own["step"] > cut]
        rest = rest.iloc[np.unique(np.linspace(0, len(rest) - 1, 60).round().astype(int))]
        start = time.perf_counter()
        table, fitted = live_forecast(seen, run, form=form, steps=rest["step"].to_numpy(), progress=False)
        wall = time.perf_counter() - start
        diagnostics = fitted.diagnostics(warn=False)
        observed = rest["loss"].to_numpy()
        point = fit_point(seen, form=form).predict(rest)
        rows.append({"source": source, "run": run, "seen": fraction, "method": f"live bayes ({form})", "wall_s": wall,
                     "divergences": diagnostics.divergences, "max_rhat": diagnostics.max_rhat,
                     **score(observed, table["loss"].to_numpy(), table)})
        rows.append({"source": source, "run": run, "seen": fraction, "method": f"point fit ({form})",
                     **score(observed, np.asarray(point))})
        print(pd.DataFrame(rows[-2:]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.round(4).to_string(index=False))
    table["final_abs_err_pct"] = table["final_err_pct"].abs()
    print("\nmedians by share of the run seen and method:")
    print(table.groupby(["seen", "method"])[["mre_pct", "final_abs_err_pct", "cover50", "cover90", "width90_pct"]]
          .median().round(4).to_string())


if __name__ == "__main__":
    main()
