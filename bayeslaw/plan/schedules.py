"""Planning a run's learning-rate schedule with a fitted schedule law (``multipower``, ``annealing``).

- :func:`schedule_loss`: the loss a planned run reaches under given schedules (curve or final value);
- :func:`best_cooldown`: the WSD cooldown fraction with the lowest final loss for a step budget;
- :func:`cooldown_drop`: how much a cooldown branch from a checkpoint of a constant-rate run will gain;
- :func:`live_forecast`: the rest of a run in flight, from its own checkpoints and the finished runs.

Each takes a point fit (:func:`bayeslaw.fit_point`: the fit's numbers) or a Bayesian fit
(:func:`bayeslaw.fit`: the posterior median with quantile bands). With a Bayesian fit, a planned run is a
new run (its loss carries a seed offset and the run's noise) unless it branches from a trained run
(``parent_run``), whose offset it shares; comparisons between schedules of one run (the best cooldown,
a branch's drop) are made on the law's draws, where the seed is common to both and cancels.

**The law's misfit of a planned schedule.** The run-level likelihood pins every trained run's deviation
from the law to 0 at the run's end (the law is the law of final losses), so the law's draws put the end
of any schedule exactly on the law. A schedule the fit has not seen ends off it: by about the deviation
scale sigma_dev along the trained runs (the 124M cooldown sweeps of wsd_horizons end 0.05-0.46% (sd)
apart around their law, against sigma_dev 0.53%: docs/run_likelihood.md, "The law's misfit of a planned
schedule"). Where nothing else carries it, a planned schedule's end gets that misfit m ~ Normal(0,
sigma_dev^2) in log loss, correlated between two planned schedules as exp(-d / ELL), d the mean gap of
their learning rates over the run (:func:`schedule_distance`), ELL the deviation's correlation length, in
every comparison on the law's draws (``p_best``, a branch's drop). A branch of a trained run carries it in
its band (``Fit.predict``: its offset is its parent's, which carries no misfit of the branch's schedule); a
new run's seed offset already does (a schedule law's runs differ in schedule, so sigma_seed measures the
law's misfit of each).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayeslaw.data.importers import FIT_COLUMNS, as_table
from bayeslaw.data.schedules import DecayType, Schedule, run_schedules
from bayeslaw.inference.nuts import check_branch
from bayeslaw.inference.nuts import fit as bayes_fit
from bayeslaw.laws import forms, get_law
from bayeslaw.laws.runs import ELL
from bayeslaw.plan.trajectory import said_new_family, warn_new_family

__all__ = ["best_cooldown", "cooldown_drop", "live_forecast", "schedule_distance", "schedule_loss"]

BANDS = (0.05, 0.25, 0.5, 0.75, 0.95)
DISTANCE_POINTS = 1000  # points of the run at which two schedules' rates are compared


def _check_schedule_law(fit) -> None:
    law = fit.law if hasattr(fit, "law") else fit.spec.law
    if law.progress != "step":
        raise ValueError(f"schedule planning needs a fit of a law that reads a run's step and schedule "
                         f"(multipower, annealing); the {fit.form} law reads {sorted(law.columns_needed)}")


def check_schedule_form(form: str, *, label: str = "live_forecast: form") -> None:
    """``form`` names a schedule law (one that reads a run's step and schedule), checked before any fit."""
    schedule_laws = forms(lambda law: law.progress == "step")
    if form not in forms():
        raise ValueError(f"{label} {form!r} is not a known law; the schedule laws: {', '.join(schedule_laws)}")
    law = get_law(form)
    if law.progress != "step":
        raise ValueError(f"{label} {form!r} is not a schedule law (it reads {sorted(law.columns_needed)}, not "
                         f"a run's step and schedule); the schedule laws: {', '.join(schedule_laws)}")


def _steps(steps, where: str) -> np.ndarray:
    """``steps`` as whole optimizer steps; empty, non-finite or fractional ones are refused (an int cast
    truncated 12000.7 to 12000 without a word)."""
    at = np.atleast_1d(np.asarray(steps, dtype=float))
    if at.size == 0:
        raise ValueError(f"{where}: steps is empty; give the optimizer steps to forecast, or None for the default")
    bad = ~np.isfinite(at) | (at != np.round(at))
    if bad.any():
        raise ValueError(f"{where}: steps must be whole optimizer steps, found {at[bad][:3].tolist()} "
                         f"(positions {np.flatnonzero(bad)[:3].tolist()})")
    return at.astype(int)


def _bayesian(fit) -> bool:
    return hasattr(fit, "idata")


def _warn_point_family(family: str | None, where: str) -> None:
    """A point fit has one law and no families: a ``family`` given to it is ignored, said (it would read as
    that family's answer). Called by the public answers themselves: the warning points at the caller's line."""
    if family is not None:
        warnings.warn(f"{where}: a point fit has no families; family={family!r} is ignored (the answer is the "
                      f"point fit's one law)", UserWarning, stacklevel=3)


def _targets(fit, schedules: Mapping[str, Schedule], steps, params: float, family: str | None,
             parent_run: str | None) -> pd.DataFrame:
    if not schedules:
        raise ValueError("schedule_loss: no schedules; give a Schedule or a mapping of names to schedules")
    steps = None if steps is None else _steps(steps, "schedule_loss")
    frames = []
    for name, schedule in schedules.items():
        at = np.array([schedule.total_steps]) if steps is None else steps
        if (at < 1).any() or (at > schedule.total_steps).any():
            raise ValueError(f"schedule_loss: steps must lie in 1..{schedule.total_steps} (the schedule {name!r}), "
                             f"found {at[(at < 1) | (at > schedule.total_steps)][:3].tolist()}")
        frames.append(pd.DataFrame({"name": name, "step": at, "description": schedule.describe(),
                                    "schedule": schedule.to_json()}))
    table = pd.concat(frames, ignore_index=True).assign(params=float(params), tokens=np.nan)
    if _bayesian(fit):
        family = fit.family_or_only(family)  # a fit of one family: its runs (else a new family of the population)
    if family is not None:
        table["family"] = family
    table["run"] = "planned-" + table["name"].astype(str)
    if parent_run is not None:
        if _bayesian(fit):
            check_branch(fit, parent_run, params, schedules, where="schedule_loss")
        else:  # a point fit has no run offsets: the branch's answer is the law's, whatever its parent
            warnings.warn(f"a point fit has no run offsets; parent_run={parent_run!r} is ignored (the answer is the "
                          f"law's)", UserWarning, stacklevel=4)
        table["parent_run"] = parent_run
    return table


def _draws(fit, table: pd.DataFrame, kind: str, seed: int) -> np.ndarray:
    """(sample, row) draws of the loss, or (1, row) the point fit's."""
    if _bayesian(fit):
        with said_new_family():  # the planners warn of it themselves (warn_new_family)
            return fit.predict(table, kind=kind, seed=seed).draws.values
    return np.asarray(fit.predict(table), dtype=float)[None, :]


def schedule_distance(a: Schedule, b: Schedule) -> float:
    """The mean gap between two schedules' learning rates over the run, in fractions x of each run, over
    the larger peak rate: d = mean_x |eta_a(x T_a) - eta_b(x T_b)| / max(peak). 0 for one schedule; for
    WSD runs of one budget with cooldown fractions f1 and f2 (linear to 0), |f1 - f2| / 2."""
    x = (np.arange(DISTANCE_POINTS) + 0.5) / DISTANCE_POINTS
    gap = np.abs(a.lr(x * a.total_steps) - b.lr(x * b.total_steps))
    return float(gap.mean() / max(a.peak_lr, b.peak_lr))


def _misfit(fit, schedules: Mapping[str, Schedule], family: str | None, n: int, seed: int) -> np.ndarray:
    """(sample, schedule) draws of the law's misfit at the end of each planned schedule, in log loss: per
    posterior draw Normal(0, sigma_dev^2 R), R_ij = exp(-d_ij / ELL) (the module docstring). sigma_dev is
    the family's, or for a new family that of a family with curves drawn per sample (``Fit.noise_draws``)."""
    rng = np.random.default_rng([seed, 7])  # its own stream: the law's draws stay those of the same seed
    sd = fit.noise_draws([family], seed=rng)["sigma_dev"][:, 0]
    plans = list(schedules.values())
    distance = np.array([[schedule_distance(a, b) for b in plans] for a in plans])
    # the kernel is positive definite for distinct schedules; equal ones (d = 0) make it singular, so an
    # eigen-square-root, not a Cholesky factor
    values, vectors = np.linalg.eigh(np.exp(-distance / ELL))
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    sd = sd if len(sd) == n else rng.choice(sd, n)  # one per predictive draw
    return sd[:, None] * (rng.standard_normal((n, len(plans))) @ root.T)


def schedule_loss(fit, schedules: Schedule | Mapping[str, Schedule], steps=None, *, params: float,
                  family: str | None = None, parent_run: str | None = None, kind: str = "new_run",
                  seed: int = 0) -> pd.DataFrame:
    """The loss (nats per token) of a model of ``params`` parameters under each schedule, at ``steps``
    (default: each schedule's last step): one row per (schedule, step) with ``loss`` (the point fit's, or
    the posterior median) and, for a Bayesian fit, the quantiles ``q5``..``q95``. ``kind="law"`` leaves
    out the run's own noise; ``parent_run`` makes the planned runs branches of that trained run (its
    offset, and each branch's misfit of its own schedule: the module docstring)."""
    _check_schedule_law(fit)
    # a family the fit has not seen (a typo) gets the population's much wider forecast: said, as by the
    # other planners
    if _bayesian(fit):
        warn_new_family(fit, family, "schedule_loss")
    else:
        _warn_point_family(family, "schedule_loss")
    return _schedule_loss(fit, schedules, steps, params, family, parent_run, kind, seed)


def _schedule_loss(fit, schedules, steps, params: float, family: str | None, parent_run: str | None, kind: str,
                   seed: int) -> pd.DataFrame:
    """:func:`schedule_loss` after its checks (best_cooldown's table, which warns of a family once itself)."""
    if isinstance(schedules, Schedule):
        schedules = {"planned": schedules}
    table = _targets(fit, schedules, steps, params, family, parent_run)
    draws = _draws(fit, table, kind, seed)  # a branch's band carries its schedule's misfit (Fit.predict)
    out = table[["name", "step", "description"]].rename(columns={"name": "schedule"})
    out["loss"] = np.median(draws, axis=0)
    if _bayesian(fit):
        for q in BANDS:
            out[f"q{100 * q:g}"] = np.quantile(draws, q, axis=0)
    return out


def best_cooldown(fit, *, total_steps: int, peak_lr: float, params: float, family: str | None = None,
                  warmup_steps: int = 0, final_lr: float = 0.0, decay_type: DecayType = "linear",
                  fractions=None, parent_run: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Final loss of a WSD run of ``total_steps`` for each cooldown fraction (default 0.02-0.6, after the
    warmup), with the best marked (``best``: a point fit's lowest loss; a Bayesian fit's lowest expected loss
    under the law's posterior). A Bayesian fit adds the bands of a new run's final loss and ``p_best``, the
    posterior probability that the fraction is the best of those tried (on the law's draws with each
    fraction's misfit, see the module docstring: the run's seed is common to every fraction). ``parent_run``
    makes the candidates cooldown branches of that trained constant-rate run (its offset then known), of its
    size and peak rate. Two fractions that start the cooldown at one step are refused. An exponential
    cooldown needs ``final_lr`` > 0."""
    _check_schedule_law(fit)
    warmup_steps = _whole_steps(warmup_steps, "warmup_steps", "--warmup", where="best_cooldown")
    total_steps = _whole_steps(total_steps, "total_steps", "--total-steps", least=warmup_steps + 1,
                               meaning=f"the run's length, past its warmup of {warmup_steps} steps",
                               where="best_cooldown")
    if _bayesian(fit):
        warn_new_family(fit, family, "best_cooldown")
    else:
        _warn_point_family(family, "best_cooldown")
    fractions = _fractions(fractions, total_steps, warmup_steps)
    plans = [Schedule.wsd(peak_lr, total_steps, float(f), warmup_steps=warmup_steps, final_lr=final_lr,
                          decay_type=decay_type) for f in fractions]
    # two fractions that round to one cooldown start are one schedule: rows keyed by one name, a p_best split
    # between twins
    first = {}
    for f, plan in zip(fractions, plans, strict=True):
        if plan.decay_start in first:
            raise ValueError(f"best_cooldown: fractions {first[plan.decay_start]:g} and {f:g} (CLI: --cooldown) both "
                             f"start the cooldown at step {plan.decay_start} of {total_steps}: one schedule; give "
                             f"each once")
        first[plan.decay_start] = f
    names = [f"{f:.4g}" for f in fractions]
    if len(set(names)) < len(names):  # distinct schedules, equal to 4 digits: named in full
        names = [str(float(f)) for f in fractions]
    schedules = dict(zip(names, plans, strict=True))
    table = _schedule_loss(fit, schedules, None, params, family, parent_run, "new_run", seed)
    table.insert(1, "cooldown_fraction", fractions)
    table.insert(2, "cooldown_start", [s.decay_start for s in schedules.values()])
    if not _bayesian(fit):
        return table.assign(best=table["loss"] == table["loss"].min())
    # compared on the law's draws, paired across fractions: a new run's seed and noise are common to every
    # fraction, and the medians of independent new-run draws per row differ by sampling noise that picked a
    # different "best" from one seed to the next near a flat optimum
    law = _draws(fit, _targets(fit, schedules, None, params, family, parent_run), "law", seed)
    # the probability on the law's draws with each fraction's misfit: the law alone puts every end on
    # itself, and its p_best was near 1 where the observed best differed (docs/run_likelihood.md)
    ends = law * np.exp(_misfit(fit, schedules, fit.family_or_only(family), law.shape[0], seed))
    table["p_best"] = np.bincount(np.argmin(ends, axis=1), minlength=len(fractions)) / law.shape[0]
    expected = law.mean(axis=0)
    return table.assign(best=expected == expected.min())


def _whole_steps(value, name: str, option: str, *, least: int = 0, meaning: str = "",
                 where: str = "cooldown_drop") -> int:
    """``value`` as a whole number of steps >= ``least``, else an error naming ``name`` and its CLI ``option``: a
    negative or fractional count made a schedule whose own error named neither."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} (CLI: {option}) must be a whole number of steps, found "
                        f"{type(value).__name__} {value!r}")
    if not (np.isfinite(value) and value == round(value) and value >= least):
        why = f" ({meaning})" if meaning else ""
        raise ValueError(f"{where}: {name} (CLI: {option}) must be a whole number of steps >= {least}{why}, "
                         f"found {value!r}")
    return int(value)


def _fractions(fractions, total_steps: int, warmup_steps: int) -> np.ndarray:
    """The cooldown fractions to compare: the user's (refused if empty), or the default grid 0.02-0.6 within
    the steps after the warmup, one fraction per cooldown start."""
    if fractions is not None:
        fractions = np.atleast_1d(np.asarray(fractions, dtype=float))
        if fractions.size == 0:
            raise ValueError("best_cooldown: fractions is empty (CLI: --cooldown); give the cooldown fractions to "
                             "compare, or None for the default 0.02-0.6")
        return fractions
    top = float(np.clip((total_steps - warmup_steps) / max(total_steps, 1), 0.0, 0.6))  # a cooldown after the warmup
    grid = np.linspace(min(0.02, top), top, 30)
    # a short run's grid rounds several fractions to one step: the grid's own, so kept once, not refused
    starts = total_steps - np.round(grid * total_steps)
    return grid[np.sort(np.unique(starts, return_index=True)[1])]


def cooldown_drop(fit, *, branch_step: int, cooldown_steps: int, peak_lr: float, params: float,
                  family: str | None = None, warmup_steps: int = 0, final_lr: float = 0.0,
                  decay_type: DecayType = "linear", seed: int = 0) -> dict:
    """A cooldown branch from step ``branch_step`` of a constant-rate run, decaying over ``cooldown_steps``:
    the loss at the branch's end with the cooldown and without (the constant run there), and the drop.
    ``branch_step`` is a step at or after the warmup; ``cooldown_steps`` 0 is no cooldown (the branch is the
    constant run: a drop of 0, a baseline). A Bayesian fit adds ``drop_q5``/``drop_q95`` (the law's draws with
    the two schedules' misfits: one run, so its seed cancels)."""
    _check_schedule_law(fit)
    # checked here, in the arguments' own names: the schedules built below refused a negative cooldown as "a
    # wsd schedule needs decay_start between warmup_steps ... found <branch_step>", naming neither
    warmup_steps = _whole_steps(warmup_steps, "warmup_steps", "--warmup")
    cooldown_steps = _whole_steps(cooldown_steps, "cooldown_steps", "--cooldown-steps",
                                  meaning="the length of the branch's cooldown; 0: no cooldown")
    branch_step = _whole_steps(branch_step, "branch_step", "--branch-step", least=warmup_steps,
                               meaning=f"a step of the constant run at or after its warmup: warmup_steps="
                                       f"{warmup_steps}, CLI: --warmup")
    end = branch_step + cooldown_steps
    if end <= warmup_steps:  # branch_step == warmup_steps with no cooldown: a run that ends with its warmup
        raise ValueError(f"cooldown_drop: branch_step={branch_step} (CLI: --branch-step) with cooldown_steps=0 ends "
                         f"the branch at the warmup's end (warmup_steps={warmup_steps}, CLI: --warmup): no step "
                         f"after the warmup to compare; give cooldown_steps > 0 or a later branch_step")
    if _bayesian(fit):
        warn_new_family(fit, family, "cooldown_drop")
    else:
        _warn_point_family(family, "cooldown_drop")
    branch = Schedule("wsd", peak_lr, end, warmup_steps, final_lr, branch_step, decay_type)
    constant = Schedule("constant", peak_lr, end, warmup_steps)
    schedules = {"cooldown": branch, "constant": constant}
    law = _draws(fit, _targets(fit, schedules, None, params, family, None), "law", seed)
    if _bayesian(fit):  # the band of the drop carries the two schedules' misfits (the module docstring)
        law = law * np.exp(_misfit(fit, schedules, fit.family_or_only(family), law.shape[0], seed))
    drop = law[:, 1] - law[:, 0]
    out = {"step": end, "loss_cooldown": float(np.median(law[:, 0])), "loss_constant": float(np.median(law[:, 1])),
           "drop": float(np.median(drop))}
    if _bayesian(fit):
        out.update(drop_q5=float(np.quantile(drop, 0.05)), drop_q95=float(np.quantile(drop, 0.95)))
    return out


def _check_fit_is_current(fit, own: pd.DataFrame, schedule: Schedule, run: str) -> None:
    """A given fit must have seen the run's newest checkpoint in the table: one made on an earlier cut of the
    run conditions the forecast on the older checkpoints only, while the default steps start at the newest.
    Compared by the last step past the warmup (the fit leaves the warmup out, ``after_warmup``, and thins the
    rest, always keeping each run's last checkpoint)."""
    rows = fit.training_rows()
    seen = rows.loc[rows["run"] == run, "step"]
    logged = own.loc[own["step"].to_numpy(dtype=float) > schedule.warmup_steps, "step"]
    if seen.empty or logged.empty:  # refused elsewhere: a run the fit left out, or no checkpoint past the warmup
        return
    fit_last, table_last = int(seen.max()), int(logged.max())
    if table_last > fit_last:
        raise ValueError(f"live_forecast: run {run!r} has checkpoints the fit has not seen (the fit's last step of it "
                         f"{fit_last}, the table's {table_last}): fit= was made on an earlier cut of the run, and its "
                         f"forecast would ignore the newer ones; refit without fit= (or pass the table the fit was "
                         f"made from)")


def live_forecast(df: pd.DataFrame, run: str, *, form: str | None = None, steps=None, fit=None,
                  seed: int = 0, **fit_options):
    """The rest of run ``run``, in flight: its loss at ``steps`` (default: 50 steps from its last logged
    checkpoint to its schedule's end) with bands, and the fit it came from.

    ``df`` holds the finished runs and the run in flight (its checkpoints so far and its ``schedule``,
    whose ``total_steps`` is where the run will end). The Bayesian fit of all of them (``fit`` if given, made
    on this table: one that has not seen the run's newest checkpoint is refused; else :func:`bayeslaw.fit` of
    ``form``, default annealing, with ``fit_options``) learns the law from the finished runs and the run's
    offset and deviation from its own checkpoints, so its forecast is conditioned on both.
    Returns (table of step, loss = median, q5..q95, observed where logged; the Fit).
    """
    # everything is checked before the fit, which takes minutes
    given = fit is not None
    if fit is None:
        form = "annealing" if form is None else form
        check_schedule_form(form)
    else:  # a given fit is used as it is: options of another fit would be dropped without a word
        _check_schedule_law(fit)
        ignored = [f"form={form!r} (the fit's is {fit.form!r})"] if form not in (None, fit.form) else []
        ignored += [f"{name}=" for name in sorted(fit_options)]
        if ignored:
            raise ValueError(f"live_forecast: {', '.join(ignored)} given with fit=, which is fitted already; leave "
                             f"them out, or leave out fit= to fit with them")
    df = as_table(df, name="live_forecast's table", needs=FIT_COLUMNS)
    own = df.loc[df["run"] == run]
    if own.empty:
        raise ValueError(f"live_forecast: run {run!r} is not in the table (runs: {sorted(df['run'].unique())[:5]}...)")
    schedule = run_schedules(own, where="live_forecast")[run]
    if not (own["step"].to_numpy(dtype=float) > schedule.warmup_steps).any():
        # a schedule law's fit leaves out the warmup's checkpoints (after_warmup), and with them such a run
        raise ValueError(f"live_forecast: run {run!r} has no checkpoint past its warmup (step <= "
                         f"{schedule.warmup_steps}), which a schedule law's fit leaves out; its forecast would not "
                         f"be conditioned on its own checkpoints: forecast it after step {schedule.warmup_steps}")
    last = int(own["step"].max())
    if steps is None:
        steps = np.unique(np.linspace(last, schedule.total_steps, 50).round().astype(int))
    steps = _steps(steps, "live_forecast")
    beyond = steps[(steps < 1) | (steps > schedule.total_steps)]
    if beyond.size:  # the run ends where its schedule does: a step past it is not the run's
        raise ValueError(f"live_forecast: steps {beyond[:3].tolist()} lie outside run {run!r}'s schedule (steps "
                         f"1..{schedule.total_steps}, its total_steps); forecast within it")
    if fit is None:
        fit = bayes_fit(df, form=form, seed=seed, **fit_options)
    if run not in fit.runs:  # left out of the fit: nothing conditions on it
        raise ValueError(f"live_forecast: run {run!r} is not among the fit's runs (the fit left it out, e.g. as a "
                         f"diverged run by rising='drop', or all its rows by the fit's cuts; or fit= was made "
                         f"without it); its forecast would not be conditioned on its own checkpoints")
    if given:
        _check_fit_is_current(fit, own, schedule, run)
    first = own.iloc[0]
    targets = pd.DataFrame({"run": run, "family": first["family"], "params": float(first["params"]),
                            "step": steps, "tokens": np.nan, "schedule": schedule.to_json()})
    draws = fit.predict(targets, kind="new_run", seed=seed).draws.values
    out = pd.DataFrame({"run": run, "step": steps, "loss": np.median(draws, axis=0)})
    for q in BANDS:
        out[f"q{100 * q:g}"] = np.quantile(draws, q, axis=0)
    # a restart's checkpoints logged twice: the last of each, as the fit keeps them (duplicates="last"; with
    # "error" the fit refused them)
    observed = own.drop_duplicates("step", keep="last").set_index("step")["loss"]
    out["observed"] = out["step"].map(observed)
    return out, fit
