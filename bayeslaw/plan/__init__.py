"""Plan stage: the answers a training plan needs, as posterior draws with bands.

- :mod:`bayeslaw.plan.trajectory`: loss trajectories with a critical batch size (a su2024 fit):
  minimum loss, steps and tokens to a loss, critical batch size, the loss curve at any batch size.
- :mod:`bayeslaw.plan.allocation`: the compute-optimal split of a FLOP budget C = 6 N D into parameters
  and tokens per posterior draw, and the expected regret of the point estimate's split.
- :mod:`bayeslaw.plan.pilots`: which pilot runs would sharpen a target's forecast most per FLOP.
- :mod:`bayeslaw.plan.schedules`: a schedule law's loss under planned learning-rate schedules, the best
  cooldown fraction for a step budget, the drop a cooldown branch will give, and the rest of a run in
  flight (bands from a Bayesian fit; a point fit's numbers).
"""

from bayeslaw.plan.allocation import Allocation, optimal_allocation
from bayeslaw.plan.pilots import pilot_rows, rank_pilots
from bayeslaw.plan.schedules import best_cooldown, cooldown_drop, live_forecast, schedule_distance, schedule_loss
from bayeslaw.plan.trajectory import critical_batch_size, loss_curve, minimum_loss, steps_to_loss, tokens_to_loss

__all__ = ["Allocation", "best_cooldown", "cooldown_drop", "critical_batch_size", "live_forecast", "loss_curve",
           "minimum_loss", "optimal_allocation", "pilot_rows", "rank_pilots", "schedule_distance", "schedule_loss",
           "steps_to_loss", "tokens_to_loss"]
