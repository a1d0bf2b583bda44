"""Learning-rate schedules: a run's learning rate at every optimizer step, rebuilt from a short description.

A :class:`Schedule` is stored in a table as JSON in a ``schedule`` column (the same string on every
row of a run), so that a table of checkpoints carries what schedule-aware laws need without a row per
step. Shapes, with W warmup steps (linear from 0 to the peak), T total steps, peak lr eta_max and final
lr eta_min, for steps t = 1..T:

    constant    eta_max after warmup
    cosine      eta_min + (eta_max - eta_min) (1 + cos(pi (t - W) / (T - W))) / 2
    linear      eta_max + (eta_min - eta_max) (t - W) / (T - W)
    wsd         eta_max until the cooldown starts at step T_d, then decays to eta_min at T by ``decay_type``:
                linear, exponential (eta_max (eta_min / eta_max)^u), cosine, or 1-sqrt
                (eta_min + (eta_max - eta_min)(1 - sqrt(u))), u = (t - T_d) / (T - T_d)
    two_stage   eta_max until step T_d, then ``second_lr`` to the end
    wsd_two_stage
                eta_max until step T_a (``transition_start``), linear over ``transition_steps`` to
                ``second_lr``, which holds until the cooldown starts at T_d; then the WSD cooldown from
                ``second_lr`` to eta_min (llm-baselines' ``wsd_twostage``)

The cooldown start is ``decay_start`` (the first step at the decayed rate) or, for WSD, derived from a
cooldown fraction: T_d = T - round(fraction T).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Literal, get_args

import numpy as np
import pandas as pd

from bayeslaw.data.files import is_number, is_whole

__all__ = ["SCHEDULE_TOLERANCE", "DecayType", "Schedule", "ScheduleShape", "after_warmup", "check_logged_lr", "lr_error",
           "run_schedules"]

ScheduleShape = Literal["constant", "cosine", "linear", "wsd", "two_stage", "wsd_two_stage"]
DecayType = Literal["linear", "exponential", "cosine", "1-sqrt"]


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``lr(steps)`` for steps 1..``total_steps`` (see the module docstring)."""

    shape: ScheduleShape
    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    final_lr: float = 0.0
    decay_start: int | None = None
    decay_type: DecayType = "linear"
    second_lr: float | None = None
    transition_start: int | None = None
    transition_steps: int = 0

    def __post_init__(self):
        # types first: a step count of 1000.7 or true (JSON), or a rate of "3e-4", would fail later in lr()
        # or per_step() naming no field
        for name in ("total_steps", "warmup_steps", "decay_start", "transition_start", "transition_steps"):
            value = getattr(self, name)
            if value is None and name in ("decay_start", "transition_start"):
                continue
            if not (is_whole(value) or (is_number(value) and np.isfinite(value) and value == round(value))):
                raise ValueError(f"schedule: {name} must be a whole number of steps, found {value!r}")
            if not isinstance(value, (int, np.integer)):
                object.__setattr__(self, name, int(value))  # 1000.0 from JSON: the same step count
        for name in ("peak_lr", "final_lr", "second_lr"):
            value = getattr(self, name)
            if value is None and name == "second_lr":
                continue
            if not is_number(value) or not np.isfinite(value):
                raise ValueError(f"schedule: {name} must be a finite number, found {value!r}")
        if self.shape not in get_args(ScheduleShape):
            raise ValueError(f"schedule: unknown shape {self.shape!r}; valid: {list(get_args(ScheduleShape))}")
        if self.decay_type not in get_args(DecayType):
            raise ValueError(f"schedule: unknown decay_type {self.decay_type!r}; valid: {list(get_args(DecayType))}")
        if not (self.peak_lr > 0 and self.final_lr >= 0):
            raise ValueError(f"schedule: need peak_lr > 0 and final_lr >= 0, found {self.peak_lr}, {self.final_lr}")
        if self.final_lr > self.peak_lr:  # the peak is the largest rate: a final rate above it is a swapped pair
            raise ValueError(f"schedule: final_lr ({self.final_lr:g}) is above peak_lr ({self.peak_lr:g}); the rate "
                             f"decays from the peak to the final rate")
        if not 0 <= self.warmup_steps < self.total_steps:
            raise ValueError(f"schedule: need 0 <= warmup_steps < total_steps, found {self.warmup_steps}, {self.total_steps}")
        if self.shape in ("wsd", "two_stage", "wsd_two_stage"):
            if self.decay_start is None or not self.warmup_steps <= self.decay_start <= self.total_steps:
                raise ValueError(f"schedule: a {self.shape} schedule needs decay_start between warmup_steps "
                                 f"({self.warmup_steps}) and total_steps ({self.total_steps}), found {self.decay_start}")
        if self.shape in ("two_stage", "wsd_two_stage") and not (self.second_lr is not None and self.second_lr >= 0):
            raise ValueError(f"schedule: a {self.shape} schedule needs second_lr >= 0")
        if self.second_lr is not None and self.second_lr > self.peak_lr:  # peak_lr is the largest rate, as above
            raise ValueError(f"schedule: second_lr ({self.second_lr:g}) is above peak_lr ({self.peak_lr:g}); the "
                             f"second stage runs at a rate below the peak")
        if self.shape == "wsd_two_stage":
            start, end = self.transition_start, (self.transition_start or 0) + self.transition_steps
            if start is None or self.transition_steps < 0 or not self.warmup_steps <= start <= end <= self.decay_start:
                raise ValueError(f"schedule: a wsd_two_stage schedule needs warmup_steps ({self.warmup_steps}) <= "
                                 f"transition_start ({start}) <= transition_start + transition_steps ({end}) <= "
                                 f"decay_start ({self.decay_start})")
        if self.shape in ("wsd", "wsd_two_stage") and self.decay_type == "exponential" and self.final_lr <= 0:
            raise ValueError("schedule: an exponential cooldown needs final_lr > 0")
        if self.shape == "wsd_two_stage" and self.decay_type == "exponential" and not self.second_lr > 0:
            # its cooldown is second_lr (final_lr / second_lr)^u: a zero second rate divides by zero
            raise ValueError(f"schedule: an exponential cooldown from second_lr needs second_lr > 0, found "
                             f"{self.second_lr!r}")

    @classmethod
    def wsd(cls, peak_lr: float, total_steps: int, cooldown_fraction: float, *, warmup_steps: int = 0,
            final_lr: float = 0.0, decay_type: DecayType = "linear") -> Schedule:
        """Warmup-stable-decay with the last ``cooldown_fraction`` of the steps in the cooldown."""
        if not 0.0 <= cooldown_fraction <= 1.0:
            raise ValueError(f"schedule: cooldown_fraction must be in [0, 1], found {cooldown_fraction}")
        start = total_steps - int(round(cooldown_fraction * total_steps))
        if start < warmup_steps:  # not moved to the warmup's end: two fractions would then name one schedule
            raise ValueError(f"schedule: cooldown_fraction {cooldown_fraction:g} would start the cooldown at step "
                             f"{start}, inside the warmup ({warmup_steps} steps) of a {total_steps}-step run; the "
                             f"largest fraction is {(total_steps - warmup_steps) / total_steps:.6g}")
        return cls("wsd", peak_lr, total_steps, warmup_steps, final_lr, start, decay_type)

    def lr(self, steps) -> np.ndarray:
        """The learning rate at optimizer steps ``steps`` (1-based; beyond ``total_steps`` the last value)."""
        t = np.minimum(np.asarray(steps, dtype=float), self.total_steps)
        w, total, top, low = self.warmup_steps, self.total_steps, self.peak_lr, self.final_lr
        if self.shape == "constant":
            after = np.full_like(t, top)
        elif self.shape == "cosine":
            after = low + (top - low) * 0.5 * (1.0 + np.cos(np.pi * (t - w) / (total - w)))
        elif self.shape == "linear":
            after = top + (low - top) * (t - w) / (total - w)
        elif self.shape == "two_stage":
            after = np.where(t < self.decay_start, top, self.second_lr)
        else:  # wsd, wsd_two_stage: the cooldown from the rate before it (eta_max, or second_lr)
            start = self.decay_start
            stable = top
            if self.shape == "wsd_two_stage":
                second, t_a = self.second_lr, self.transition_start
                v = np.clip((t - t_a) / max(self.transition_steps, 1), 0.0, 1.0)
                stable = np.where(t <= t_a, top, top + (second - top) * v)
                top = second
            u = np.clip((t - start) / max(total - start, 1), 0.0, 1.0)
            decayed = {"linear": lambda: top + (low - top) * u,
                       "exponential": lambda: top * (low / top) ** u,
                       "cosine": lambda: low + (top - low) * 0.5 * (1.0 + np.cos(np.pi * u)),
                       "1-sqrt": lambda: low + (top - low) * (1.0 - np.sqrt(u))}[self.decay_type]()
            after = np.where(t < start, stable, decayed)
            top = self.peak_lr
        warm = top * t / max(w, 1)
        return np.where(t <= w, warm, after)

    def per_step(self, last_step: int | None = None) -> np.ndarray:
        """lr at steps 1..``last_step`` (default ``total_steps``): index i holds step i + 1."""
        return self.lr(np.arange(1, (self.total_steps if last_step is None else last_step) + 1))

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        try:
            given = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"schedule: not a JSON schedule description: {str(text)[:80]!r}") from error
        if not isinstance(given, dict):
            raise ValueError(f"schedule: not a JSON schedule description (an object of fields): {str(text)[:80]!r}")
        valid = [f.name for f in fields(cls)]
        if unknown := sorted(set(given) - set(valid)):  # a TypeError of __init__ would name no field list
            raise ValueError(f"schedule: unknown field(s) {unknown}; valid: {valid}")
        if missing := [f.name for f in fields(cls) if f.name not in given and f.default is MISSING]:
            raise ValueError(f"schedule: missing field(s) {missing}")
        return cls(**given)

    def describe(self) -> str:
        """One line, e.g. ``wsd 3e-4 -> 3e-5 over 24000 steps (warmup 2160, exponential cooldown from 20000)``."""
        text = f"{self.shape} {self.peak_lr:g}"
        if self.shape == "wsd_two_stage":
            text += (f" then {self.second_lr:g} from step {self.transition_start} (over {self.transition_steps} "
                     f"steps)")
        if self.shape in ("cosine", "linear", "wsd", "wsd_two_stage"):
            text += f" -> {self.final_lr:g}"
        if self.shape == "two_stage":
            text += f" then {self.second_lr:g} from step {self.decay_start}"
        text += f" over {self.total_steps} steps (warmup {self.warmup_steps}"
        if self.shape in ("wsd", "wsd_two_stage"):
            text += f", {self.decay_type} cooldown from {self.decay_start}"
        return text + ")"


def lr_error(schedule: Schedule, steps, logged) -> np.ndarray:
    """Relative error of the rebuilt lr against a logged one, per logged value: |lr(t) - logged| over the
    larger of the two (0 where both are 0).

    The lr logged at iteration t is compared with ``schedule.lr(t)``, for 1 <= t < total_steps: the
    value logged at the last iteration is the rate after the last step, never used (0 for a constant
    run). NaN where nothing is compared (that last value, step 0, a missing log).
    """
    steps, logged = np.asarray(steps, dtype=float), np.asarray(logged, dtype=float)
    compared = (steps >= 1) & (steps < schedule.total_steps) & np.isfinite(logged)
    rebuilt = schedule.lr(np.where(compared, steps, 1.0))
    scale = np.maximum(np.abs(rebuilt), np.abs(logged))
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.where(scale > 0, np.abs(rebuilt - logged) / scale, 0.0)
    return np.where(compared, error, np.nan)


SCHEDULE_TOLERANCE = 1e-3  # max relative error between a described schedule and the logged lr (after warmup)

#: how far past its schedule's end (a fraction of its steps) a run's checkpoints may lie, read at the schedule's
#: last rate: an evaluation after the last step, or a schedule counted from 0 (llm-baselines' cosine ends at
#: iterations - 1); further, the schedule is not the run's
SCHEDULE_OVERRUN = 0.01


def run_schedules(df: pd.DataFrame, *, where: str = "table", first_row: int = 0) -> dict[str, Schedule]:
    """Each run's :class:`Schedule` from the ``schedule`` column; a run with two descriptions, one that
    does not parse, or one that ends before the run's last checkpoint (``step``, by more than
    :data:`SCHEDULE_OVERRUN`) raises naming the run and rows (the table's index plus ``first_row``: 2 gives
    a CSV file's line numbers)."""
    if "schedule" not in df.columns:
        raise ValueError(f"{where}: no 'schedule' column (a JSON learning-rate schedule per run; see bayeslaw.data.schedules)")
    out = {}
    for run, text in df.groupby("run", sort=False)["schedule"]:
        if text.isna().any():
            rows = (text.index[text.isna()][:5] + first_row).tolist()
            raise ValueError(f"{where}: run {run!r} has no schedule (rows {rows}); leave it out of a schedule law's fit")
        values = text.unique()
        if len(values) != 1:
            rows = (text.index[text != values[0]][:5] + first_row).tolist()
            raise ValueError(f"{where}: run {run!r} has {len(values)} different schedules (rows {rows})")
        try:
            out[run] = Schedule.from_json(values[0])
        except (ValueError, TypeError) as error:
            rows = (text.index[:3] + first_row).tolist()
            raise ValueError(f"{where}: run {run!r}, column 'schedule' (rows {rows}...): {error}") from None
        if "step" in df.columns:
            steps = df.loc[text.index, "step"]
            end = out[run].total_steps
            past = steps.index[steps.to_numpy(dtype=float) > end + max(1.0, SCHEDULE_OVERRUN * end)]
            if len(past):
                rows = (past[:5] + first_row).tolist()
                raise ValueError(f"{where}: run {run!r}: {len(past)} checkpoint(s) past the end of its schedule (rows "
                                 f"{rows}, steps up to {steps.max():g}; the schedule's total_steps is {end}): a "
                                 f"schedule must cover its run's checkpoints")
    return out


def check_logged_lr(df: pd.DataFrame, *, where: str = "table") -> None:
    """Refuse a run whose logged ``lr`` (where the table has the column) differs after the warmup from its
    described ``schedule`` by more than :data:`SCHEDULE_TOLERANCE`, naming the run and rows: the schedule laws
    read the description, so one that is not the run's (a peak rate off by 10x, another cooldown) would be
    fitted without a word. (The importers flag such runs and keep them, for the user to see; a fit refuses.)"""
    if "lr" not in df.columns:
        return
    for run, schedule in run_schedules(df, where=where).items():
        own = df.loc[df["run"] == run]
        steps, logged = own["step"].to_numpy(dtype=float), own["lr"].to_numpy(dtype=float)
        error = lr_error(schedule, steps, logged)
        error[~(steps > schedule.warmup_steps)] = np.nan  # the warmup's off-by-ones: not compared
        bad = np.flatnonzero(error > SCHEDULE_TOLERANCE)
        if bad.size:
            i = bad[0]
            raise ValueError(f"{where}: run {run!r}: its logged lr differs from its schedule ({schedule.describe()}) "
                             f"by up to {np.nanmax(error):.3g} (relative) at {bad.size} checkpoint(s) (rows "
                             f"{own.index[bad[:5]].tolist()}; step {steps[i]:g}: logged {logged[i]:.4g}, described "
                             f"{float(schedule.lr(steps[i])):.4g}): fix the schedule, or drop the lr column to fit the "
                             f"schedule as described")


def after_warmup(df: pd.DataFrame, *, where: str = "table") -> pd.DataFrame:
    """Rows past their run's warmup (step > the schedule's warmup_steps): where the schedule laws describe
    a run (the warmup's own curve is not theirs to describe)."""
    warmup = df["run"].map({run: s.warmup_steps for run, s in run_schedules(df, where=where).items()})
    return df.loc[df["step"].to_numpy(dtype=float) > warmup.to_numpy(dtype=float)]
