"""bayeslaw: hierarchical Bayesian scaling laws with honest uncertainty.

Importing bayeslaw switches JAX to float64: NUTS on these laws gets stuck chains in
float32 (see the project notes), and the point fits need the precision too. If JAX has not started
yet, it also gives the CPU at least four host devices, so that NUTS chains run in parallel
(``bayeslaw.fit`` warns when it finds fewer devices than chains).
"""

import os

import jax


def _host_devices(wanted: int = 4) -> None:
    """Ask XLA for ``wanted`` CPU devices, unless JAX has started (then it is too late) or the user chose."""
    from jax._src import xla_bridge

    flags = os.environ.get("XLA_FLAGS", "")
    if xla_bridge.backends_are_initialized() or "xla_force_host_platform_device_count" in flags:
        return
    count = max(wanted, os.cpu_count() or 1)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def _numpyro_submodules() -> None:
    """Every loaded numpyro submodule an attribute of its package. ArviZ registers numpyro as a lazy module
    (``lazy_loader``) when it is imported first, and numpyro's first real import then leaves
    ``numpyro.distributions`` without its ``distribution`` attribute, which ``numpyro.factor`` reads: after
    ``import arviz``, every fit failed with an AttributeError."""
    import importlib
    import sys

    importlib.import_module("numpyro.infer")  # numpyro and the submodules the fits use, loaded

    for name, module in list(sys.modules.items()):
        parent, _, child = name.rpartition(".")
        if name.startswith("numpyro.") and module is not None and not hasattr(sys.modules[parent], child):
            setattr(sys.modules[parent], child, module)


_host_devices()
jax.config.update("jax_enable_x64", True)
_numpyro_submodules()

from bayeslaw import data, laws, metrics  # noqa: E402
from bayeslaw.inference.nuts import Fit, Prediction, fit, load_fit  # noqa: E402
from bayeslaw.inference.batched import fit_many  # noqa: E402
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
    "fit_many",
    "fit_point",
    "laws",
    "load_demo",
    "load_fit",
    "metrics",
    "plan",
    "simulate",
    "simulate_trajectories",
]

# the last stages (evaluation, figures, reports) import on first use, so that ``bl.plots.forest(...)`` and
# ``bl.report.fit_report(...)`` work after ``import bayeslaw as bl`` without loading them for every fit
_LAZY = ("evaluation", "plots", "report")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"bayeslaw.{name}")
    raise AttributeError(f"module 'bayeslaw' has no attribute {name!r}")
