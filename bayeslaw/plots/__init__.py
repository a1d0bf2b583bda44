"""Plots stage (matplotlib): pictures of priors, posteriors, backtests and plans. They draw; they never fit.

- :mod:`bayeslaw.plots.fit`: a fit's figures (prior predictive, posterior predictive curves, forest,
  seed variance, trace, rank, point fits vs posterior) and :func:`form_curves` of a form comparison;
- :mod:`bayeslaw.plots.backtest`: a backtest's ARE heatmaps, target bands and calibration;
- :mod:`bayeslaw.plots.plan`: the compute-optimal allocation frontier.

The report writers (:func:`bayeslaw.report.fit_report`, :func:`bayeslaw.report.backtest_report`) live in
:mod:`bayeslaw.report`, a later stage; ``bayeslaw.plots.fit_report`` and ``backtest_report`` still resolve,
imported on first use so that this package never imports the report at load time.
"""

from __future__ import annotations

from bayeslaw.plots.backtest import are_heatmap, calibration_plot, trajectory_bands
from bayeslaw.plots.fit import (
    forest,
    form_curves,
    point_vs_posterior,
    predictive_curves,
    prior_predictive,
    rank,
    seed_variance,
    trace,
)
from bayeslaw.plots.plan import allocation_frontier

__all__ = [
    "allocation_frontier", "are_heatmap", "backtest_report", "calibration_plot", "fit_report", "forest", "form_curves",
    "point_vs_posterior", "predictive_curves", "prior_predictive", "rank", "seed_variance", "trace",
    "trajectory_bands",
]

_REPORT_WRITERS = ("backtest_report", "fit_report")  # kept at their old public path; they live in bayeslaw.report


def __getattr__(name: str):
    # PEP 562: only on a name not found above, so the report stage loads when a writer is first asked for
    if name in _REPORT_WRITERS:
        from bayeslaw import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
