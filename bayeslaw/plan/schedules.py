"""Planning a run's learning-rate schedule with a fitted schedule law (``multipower``, ``annealing``).

- :func:`schedule_loss`: the loss a planned run reaches under given schedules (curve or final value);
- :func:`best_cooldown`: the WSD cooldown fraction with the lowest final loss for a step budget;
- :func:`cooldown_drop`: how much a cooldown branch from a checkpoint of a constant-rate run will gain.

They take a point fit (:func:`bayeslaw.fit_point`) of a law that reads a run's steps and schedule;
the answers are the fit's, without a band.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayeslaw.data.schedules import DecayType, Schedule

__all__ = ["best_cooldown", "cooldown_drop", "schedule_loss"]


def _check_schedule_law(fit) -> None:
    needed = set(fit.law.columns_needed)
    if not needed <= {"step", "schedule"} or "schedule" not in needed:
        raise ValueError(f"schedule planning needs a fit of a law that reads a run's step and schedule; the {fit.form} "
                         f"law reads {sorted(needed)}")


def schedule_loss(fit, schedules: Schedule | Mapping[str, Schedule], steps=None) -> pd.DataFrame:
    """The fitted law's loss (nats per token) under each schedule: at ``steps`` (default: the last step
    of each schedule), one row per (schedule, step) with columns ``schedule``, ``step``, ``loss``."""
    _check_schedule_law(fit)
    if isinstance(schedules, Schedule):
        schedules = {"planned": schedules}
    frames = []
    for name, schedule in schedules.items():
        at = np.atleast_1d(np.asarray([schedule.total_steps] if steps is None else steps, dtype=int))
        if (at < 1).any():
            raise ValueError(f"schedule_loss: steps must be >= 1, found {at[at < 1][:3].tolist()}")
        frames.append(pd.DataFrame({"schedule": name, "step": at, "description": schedule.describe(),
                                    "schedule_json": schedule.to_json()}))
    table = pd.concat(frames, ignore_index=True)
    loss = fit.predict(table.rename(columns={"schedule": "name", "schedule_json": "schedule"}))
    return table.drop(columns="schedule_json").assign(loss=np.asarray(loss, dtype=float))


def best_cooldown(fit, *, total_steps: int, peak_lr: float, warmup_steps: int = 0, final_lr: float = 0.0,
                  decay_type: DecayType = "linear", fractions=None) -> pd.DataFrame:
    """Final loss of a WSD run of ``total_steps`` for each cooldown fraction (default 0.02-0.6), with the
    best marked (``best``). An exponential cooldown needs ``final_lr`` > 0."""
    fractions = np.linspace(0.02, 0.6, 30) if fractions is None else np.asarray(fractions, dtype=float)
    schedules = {f"{f:.4g}": Schedule.wsd(peak_lr, total_steps, float(f), warmup_steps=warmup_steps,
                                          final_lr=final_lr, decay_type=decay_type) for f in fractions}
    table = schedule_loss(fit, schedules)
    table.insert(1, "cooldown_fraction", fractions)
    table.insert(2, "cooldown_start", [s.decay_start for s in schedules.values()])
    return table.assign(best=table["loss"] == table["loss"].min())


def cooldown_drop(fit, *, branch_step: int, cooldown_steps: int, peak_lr: float, warmup_steps: int = 0,
                  final_lr: float = 0.0, decay_type: DecayType = "linear") -> dict:
    """A cooldown branch from step ``branch_step`` of a constant-rate run, decaying over ``cooldown_steps``:
    the loss at the branch's end with the cooldown and without (the constant run there), and the drop."""
    end = branch_step + cooldown_steps
    branch = Schedule("wsd", peak_lr, end, warmup_steps, final_lr, branch_step, decay_type)
    constant = Schedule("constant", peak_lr, end, warmup_steps)
    table = schedule_loss(fit, {"cooldown": branch, "constant": constant})
    with_cooldown, without = table["loss"].to_numpy()
    return {"step": end, "loss_cooldown": with_cooldown, "loss_constant": without, "drop": without - with_cooldown}
