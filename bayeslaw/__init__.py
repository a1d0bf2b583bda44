"""bayeslaw: hierarchical Bayesian scaling laws with honest uncertainty.

Importing bayeslaw switches JAX to float64: NUTS on these laws gets stuck chains in
float32 (see the project notes), and the point fits need the precision too.
"""

import jax

jax.config.update("jax_enable_x64", True)

from bayeslaw import data, laws, metrics  # noqa: E402
from bayeslaw.inference.nuts import Fit, Prediction, fit, load_fit  # noqa: E402
from bayeslaw.inference.point import PointFit, fit_point  # noqa: E402
from bayeslaw.simulation import Simulation, load_demo, simulate, simulate_trajectories  # noqa: E402
from bayeslaw import plan  # noqa: E402
from bayeslaw.evaluation import compare_forms  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Fit",
    "PointFit",
    "Prediction",
    "Simulation",
    "compare_forms",
    "data",
    "fit",
    "fit_point",
    "laws",
    "load_demo",
    "load_fit",
    "metrics",
    "plan",
    "simulate",
    "simulate_trajectories",
]
