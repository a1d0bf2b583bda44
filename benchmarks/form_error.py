"""How wide must a forecast be beyond the fitted sizes? The law's form error per e-fold of N.

For the held-out targets of ``real_targets.py`` (every family of the shared data with three or more
sizes, up to three targets each, predicted from the sizes below), ``bl.fit`` at its defaults, and the
``new_run`` predictive of the target's last 30% of checkpoints without form error
(``form_error=0``). Each draw then gets kappa * Delta * z added to its log loss (Delta: e-folds of N
from the family's largest fitted size to the target, as ``Fit.form_error_sd``; z standard normal),
for a grid of kappa. Printed per kappa: 50% / 90% coverage (per target, averaged over targets with
equal weight), the families whose 90% coverage is below 0.7, the mean CRPS / loss and the median
90% half-width; then leave-one-family-out: kappa chosen on the other families (90% coverage closest
to 0.9), scored on the one left out. The library's default (``PRIORS["form_error"]``) is that choice.

    BAYESLAW_DATA=../shared/data python benchmarks/form_error.py --out form-error   # ~10 min on 2 cores
    ... --out form-error --resume                                                   # reuse the fits
    ... --out form-error --resume --span 1 2 3 4          # a form error that grows as the fitted span shrinks
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import numpy as np

os.environ.setdefault("BAYESLAW_COMPILATION_CACHE", "off")  # timed cold; compilation_cache.py times the cache
import bayeslaw as bl
from bayeslaw.laws import CHINCHILLA
from bayeslaw.models import PRIORS
from real_targets import cases, score, shared_families, sizes

KAPPAS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04)


def fit_targets(out: Path, resume: bool, max_targets: int, seed: int) -> list[dict]:
    df = shared_families()
    targets = []
    for _, family, target, train, test, _ in cases(df, sorted(df["family"].unique()), max_targets, [],
                                                   len(CHINCHILLA.theta_names)):
        path = out / f"{family}_{target:.3g}.npz"
        if not (resume and path.exists()):
            start = time.perf_counter()
            fit = bl.fit(train, seed=seed, progress=False)
            columns = ["family", "run", "params", "tokens", *(c for c in ("run_tokens",) if c in test.columns)]
            draws = fit.predict(test[columns], kind="new_run", seed=seed, form_error=0.0).draws.values
            fitted = np.unique(sizes(train[train["family"] == family]))
            np.savez(path, y=test["loss"].to_numpy(float), log_draws=np.log(np.asarray(draws, float)),
                     delta=np.log(target / fitted.max()), span=np.log(fitted.max() / fitted.min()), family=family,
                     target=target)
            print(f"{family} {target:.3g}: {time.perf_counter() - start:.0f} s", flush=True)
            jax.clear_caches()
        with np.load(path) as z:
            targets.append({k: z[k] for k in z.files})
    return targets


def scores(t: dict, kappa: float, rng: np.random.Generator, s0: float = 0.0) -> tuple[float, float, float, float]:
    """(50% coverage, 90% coverage, mean CRPS / loss, mean 90% half-width / loss) of one target, as real_targets
    scores it, its draws widened by kappa * Delta (times max(1, s0 / span) with ``s0``: see --span)."""
    widen = max(1.0, s0 / float(t["span"])) if s0 else 1.0
    draws = np.exp(t["log_draws"] + kappa * float(t["delta"]) * widen * rng.standard_normal(t["log_draws"].shape))
    s = score(t["y"], np.median(draws, axis=0), draws)
    return s["cov50"], s["cov90"], s["crps_rel"], s["halfwidth90_rel"]


def below_floor(s: np.ndarray, family: np.ndarray, floor: float = 0.7) -> dict:
    """The families whose mean 90% coverage (``s[:, 1]``, per target) is below ``floor``."""
    return {f: round(float(s[family == f, 1].mean()), 2) for f in sorted(set(family)) if s[family == f, 1].mean() < floor}


def leave_family_out(grid: dict, family: np.ndarray):
    """Per family, the grid key whose 90% coverage on the other families is closest to 0.9, and the family's
    scores under it: (key per family, held-out scores per target)."""
    chosen, held = {}, np.zeros((len(family), next(iter(grid.values())).shape[1]))
    for f in sorted(set(family)):
        chosen[f] = min(grid, key=lambda k: abs(grid[k][family != f, 1].mean() - 0.9))
        held[family == f] = grid[chosen[f]][family == f]
    return chosen, held


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="form-error")
    parser.add_argument("--resume", action="store_true", help="reuse the fits saved in --out")
    parser.add_argument("--max-targets-per-family", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--span", type=float, nargs="*", default=(),
                        help="also try a form error growing as the fitted span shrinks, with these s0 (e-folds)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = fit_targets(out, args.resume, args.max_targets_per_family, args.seed)
    family = np.array([str(t["family"]) for t in targets])
    rng = np.random.default_rng(args.seed)
    table = {k: np.array([scores(t, k, rng) for t in targets]) for k in KAPPAS}
    print(f"{len(targets)} targets of {len(set(family))} families; library default kappa {PRIORS['form_error']}")
    print("kappa  cov50  cov90  mean CRPS/loss  median half-width  families with cov90 < 0.7")
    for kappa, s in table.items():
        print(f"{kappa:5.3f}  {s[:, 0].mean():.3f}  {s[:, 1].mean():.3f}  {s[:, 2].mean():.4f}          "
              f"{np.median(s[:, 3]):.4f}             {below_floor(s, family)}")
    print("leave one family out: kappa chosen on the others, the family's coverage 50% / 90%")
    chosen, held = leave_family_out(table, family)
    for f, kappa in chosen.items():
        print(f"  {f:26s} kappa {kappa:.3f}: {held[family == f, 0].mean():.2f} / {held[family == f, 1].mean():.2f}")
    print(f"leave one family out, over targets: 50% {held[:, 0].mean():.3f}, 90% {held[:, 1].mean():.3f}")
    if args.span:
        span_study(targets, family, args.span, args.seed)


def span_study(targets: list[dict], family: np.ndarray, s0s, seed: int) -> None:
    """A form error that grows as the fitted sizes' span shrinks, kappa * Delta * max(1, s0 / span) (span: e-folds
    of N between the family's smallest and largest fitted size): in sample over (kappa, s0), then leave one
    family out, (kappa, s0) chosen on the other families by 90% coverage closest to 0.9."""
    grid = {}
    for kappa in KAPPAS[1:]:
        for s0 in (0.0, *s0s):
            rng = np.random.default_rng(seed)
            grid[(kappa, s0)] = np.array([scores(t, kappa, rng, s0) for t in targets])
    print("\nspan term: kappa * Delta * max(1, s0 / span); in sample, the best few by 90% coverage near 0.9 with no "
          "family below 0.7")
    for (kappa, s0), s in sorted(grid.items(), key=lambda kv: abs(kv[1][:, 1].mean() - 0.9))[:6]:
        print(f"  kappa {kappa:.3f} s0 {s0:.0f}: {s[:, 0].mean():.3f} / {s[:, 1].mean():.3f}, CRPS {s[:, 2].mean():.4f}, "
              f"below 0.7: {below_floor(s, family)}")
    chosen, held = leave_family_out(grid, family)
    for f, (kappa, s0) in chosen.items():
        print(f"  left out {f:26s} kappa {kappa:.3f} s0 {s0:.0f}: {held[family == f, 0].mean():.2f} / "
              f"{held[family == f, 1].mean():.2f}")
    print(f"span term, leave one family out: 50% {held[:, 0].mean():.3f}, 90% {held[:, 1].mean():.3f}, CRPS "
          f"{held[:, 2].mean():.4f}; families below 0.7: {below_floor(held, family)}")


if __name__ == "__main__":
    main()
