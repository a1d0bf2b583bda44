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
- polypythias: the highest seed of each size (lineage A, the two spiking 410m runs left out);
- wsd_horizons: the 50k-step WSD branches of the 124M slimpajama run at peak rate 1e-3 with linear
  cooldowns over the last 10%, 20% and 40%, seen to 25%, 50% and 75% of their cooldown (a branch logs
  only its cooldown: before it, it is its parent), beside that family's other runs at that rate (the
  stable run and its branches).

    BAYESLAW_DATA=../shared/data python benchmarks/live_forecast.py [--form annealing] [--fractions 0.25 0.5 0.75]
        [--sources multipower polypythias wsd_horizons] [--without-misfit]

``--without-misfit`` also scores each fit's forecast without the law's misfit of the part of the schedule
the run has not run (``bayeslaw.inference.nuts.in_flight_misfit`` set to 0: the model before it), from the
same fit.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw.data as bd
import bayeslaw.inference.nuts as nuts
from bayeslaw.data.schedules import run_schedules
from bayeslaw.inference.point import fit_point
from bayeslaw.plan import live_forecast


WSD_BRANCH = ("ann124-{}_slimpajama_llama_norm_nlayers12_nhead12_lr0.001_sched_wsd_warmup300_decay_linear_{}"
              "_iter50000_bs50x2_ws2_seed0_data_seed1337")


def cases(sources) -> list[tuple[str, pd.DataFrame, str, str]]:
    """(source, table, held-out run, what its fractions are of: 'run' or 'cooldown')."""
    out = []
    if "multipower" in sources:
        mp = bd.load("multipower")
        out += [("multipower", mp, f"multipower-{size}-cosine_72000", "run") for size in ("25M", "100M")]
    if "polypythias" in sources:
        pythia = bd.load("polypythias")
        pythia = pythia[(pythia["lineage"] == "A") & ~pythia["outlier"].astype(bool)]
        held = pythia.groupby("model")["seed"].max()
        out += [("polypythias", pythia, f"pythia-{size}-seed{seed}", "run") for size, seed in held.items()]
    if "wsd_horizons" in sources:
        wh = bd.load("wsd_horizons")
        wh = wh[(wh["family"] == "slimpajama-constant") & np.isclose(wh["peak_lr"], 1e-3)
                & wh["model"].astype(str).str.contains("124")]
        out += [("wsd_horizons", wh, WSD_BRANCH.format(c, c), "cooldown") for c in ("0.1", "0.2", "0.4")]
    return out


def cut_step(schedule, fraction: float, of: str) -> int:
    """The last step seen: ``fraction`` of the run, or of its cooldown (from its start to the run's end)."""
    if of == "run":
        return int(schedule.total_steps * fraction)
    start = schedule.decay_start
    return int(start + fraction * (schedule.total_steps - start))


def score(observed: np.ndarray, median: np.ndarray, bands: dict | None = None) -> dict:
    out = {"mre_pct": 100 * np.mean(np.abs(median / observed - 1)), "final_err_pct": 100 * (median[-1] / observed[-1] - 1)}
    if bands is not None:
        out["cover50"] = np.mean((observed >= bands["q25"]) & (observed <= bands["q75"]))
        out["cover90"] = np.mean((observed >= bands["q5"]) & (observed <= bands["q95"]))
        out["width90_pct"] = 100 * np.median((bands["q95"] - bands["q5"]) / median)
        last = (np.asarray(bands["q5"])[-1], np.asarray(bands["q95"])[-1])
        out["final_in90"] = float(last[0] <= observed[-1] <= last[1])  # the final loss inside its 90% band
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--form", default="annealing")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75],
                        help="how much of each run's schedule is seen")
    parser.add_argument("--sources", nargs="+", choices=("multipower", "polypythias", "wsd_horizons"),
                        default=["multipower", "polypythias", "wsd_horizons"])
    parser.add_argument("--without-misfit", action="store_true",
                        help="also score each forecast without the in-flight misfit (the model before it)")
    options = parser.parse_args()
    form = options.form
    rows = []
    for (source, df, run, of), fraction in [(case, f) for case in cases(options.sources) for f in options.fractions]:
        own = df[df["run"] == run]
        cut = cut_step(run_schedules(own)[run], fraction, of)
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
        if options.without_misfit:
            misfit, nuts.in_flight_misfit = nuts.in_flight_misfit, lambda x, seen: np.zeros(np.shape(x))
            try:
                before, _ = live_forecast(seen, run, steps=rest["step"].to_numpy(), fit=fitted)
            finally:
                nuts.in_flight_misfit = misfit
            rows.append({"source": source, "run": run, "seen": fraction, "method": f"live bayes ({form}), no misfit",
                         **score(observed, before["loss"].to_numpy(), before)})
        rows.append({"source": source, "run": run, "seen": fraction, "method": f"point fit ({form})",
                     **score(observed, np.asarray(point))})
        print(pd.DataFrame(rows[-3 if options.without_misfit else -2:]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.round(4).to_string(index=False))
    table["final_abs_err_pct"] = table["final_err_pct"].abs()
    print("\nmedians by share of the run seen and method:")
    print(table.groupby(["seen", "method"])[["mre_pct", "final_abs_err_pct", "cover50", "cover90", "width90_pct",
                                             "final_in90"]]
          .median().round(4).to_string())


if __name__ == "__main__":
    main()
