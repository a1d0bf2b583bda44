"""Laws stage: scaling-law functional forms as pure ``jax.numpy`` functions, and what each can answer.

Each law is one module holding its formula, inputs, point-fit grids, Bayesian coordinates and priors,
and capabilities (:class:`~bayeslaw.laws.base.Law`); the registry below makes it known by name.
Parameters live in an unconstrained-ish log space (``e = log E``...) because the fits are better
conditioned there. A new law is its module and one line: ``register(MY_LAW)``.
"""

from __future__ import annotations

from collections.abc import Callable

from bayeslaw.laws.annealing import ANNEALING
from bayeslaw.laws.base import C_REF, D_REF, N_REF, S_REF, DataToLoss, ExtrapolationWarning, Law, Sampling, Trajectory
from bayeslaw.laws.chinchilla import CHINCHILLA
from bayeslaw.laws.compute import COMPUTE
from bayeslaw.laws.kaplan import KAPLAN, KAPLAN_E
from bayeslaw.laws.multipower import MULTIPOWER
from bayeslaw.laws.su2024 import SU2024

DEFAULT_FORM = "chinchilla"  # the law a fit, a backtest or a plan uses unless told otherwise

LAWS: dict[str, Law] = {}


def register(law: Law, *, replace: bool = False) -> Law:
    """Make ``law`` known by its name to every stage (fits, predictions, plans, CLI); returns it."""
    if not isinstance(law, Law):
        raise TypeError(f"register: need a bayeslaw.laws.Law, found {type(law).__name__}")
    if law.name in LAWS and not replace and LAWS[law.name] is not law:
        raise ValueError(f"register: a law named {law.name!r} is registered already; pass replace=True to replace it")
    LAWS[law.name] = law
    return law


for _law in (CHINCHILLA, KAPLAN, KAPLAN_E, COMPUTE, SU2024, MULTIPOWER, ANNEALING):
    register(_law)


def get_law(form: str | Law) -> Law:
    """The law called ``form``; an unknown name raises with the known ones."""
    if isinstance(form, Law):
        return form
    try:
        return LAWS[form]
    except KeyError:
        raise ValueError(f"unknown form {form!r}; known forms: {sorted(LAWS)}") from None


def forms(where: Callable[[Law], object] = lambda law: True) -> list[str]:
    """Names of the registered laws for which ``where(law)`` holds, e.g. ``forms(lambda law: law.trajectory)``."""
    return sorted(name for name, law in LAWS.items() if where(law))


__all__ = ["ANNEALING", "CHINCHILLA", "COMPUTE", "MULTIPOWER", "C_REF", "DEFAULT_FORM", "D_REF", "KAPLAN", "KAPLAN_E", "LAWS", "N_REF",
           "SU2024", "S_REF", "DataToLoss", "ExtrapolationWarning", "Law", "Sampling", "Trajectory", "forms", "get_law",
           "register"]
