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


LAWS_ENV = "BAYESLAW_LAWS"  # modules (comma-separated) the CLI imports at startup: laws registered outside bayeslaw


def _check_law(law: Law) -> None:
    """What every stage relies on and a fit would only find late: a full ``init_grid`` (the point fits'
    starts, also the Bayesian fits' starting values) and ``point_start`` / ``coarse_grid`` where given over
    all of ``theta_names``; and ``sampling.from_law`` giving one value per prior (``sampling.names``)."""
    for attr in ("init_grid", "coarse_grid", "point_start"):
        values = getattr(law, attr)
        if values is None and attr != "init_grid":
            continue
        if missing := [n for n in law.theta_names if n not in (values or {})]:
            raise ValueError(f"register: law {law.name!r}: {attr} lacks parameter(s) {missing}; it needs a value "
                             f"list (point_start: a value) for each of theta_names {list(law.theta_names)}")
    if law.sampling is not None:
        import numpy as np

        point = {n: float(np.median(np.asarray(law.init_grid[n], dtype=float))) for n in law.theta_names}
        try:
            size = np.asarray(law.sampling.from_law(point)).size
        except Exception:  # noqa: BLE001 - a map that needs more than the law's parameters: not checkable here
            return
        if size != len(law.sampling.names):
            raise ValueError(f"register: law {law.name!r}: sampling.from_law gives {size} value(s) but sampling.priors "
                             f"has {len(law.sampling.names)} coordinate(s) {list(law.sampling.names)}; they must match")


def register(law: Law, *, replace: bool = False) -> Law:
    """Make ``law`` known by its name to every stage (fits, predictions, plans, CLI); returns it.

    The law is checked first: its ``init_grid`` (and ``coarse_grid`` / ``point_start`` where given) must cover
    all of its ``theta_names``, and its ``sampling.from_law`` must give one value per prior; else a ValueError
    names the law. A law registered by a module outside bayeslaw is known to the command line once that
    module is imported: name it in the environment variable ``BAYESLAW_LAWS`` (``module[,module]``, importable
    from the current directory or ``PYTHONPATH``), which the CLI imports at startup.
    """
    if not isinstance(law, Law):
        raise TypeError(f"register: need a bayeslaw.laws.Law, found {type(law).__name__}")
    if law.name in LAWS and not replace and LAWS[law.name] is not law:
        raise ValueError(f"register: a law named {law.name!r} is registered already; pass replace=True to replace it")
    _check_law(law)
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
        raise ValueError(f"unknown form {form!r}; known forms: {sorted(LAWS)} (a law registered by another module: "
                         f"import it first (CLI: {LAWS_ENV}=module))") from None


def forms(where: Callable[[Law], object] = lambda law: True) -> list[str]:
    """Names of the registered laws for which ``where(law)`` holds, e.g. ``forms(lambda law: law.trajectory)``."""
    return sorted(name for name, law in LAWS.items() if where(law))


__all__ = ["ANNEALING", "CHINCHILLA", "COMPUTE", "MULTIPOWER", "C_REF", "DEFAULT_FORM", "D_REF", "KAPLAN", "KAPLAN_E",
           "LAWS", "LAWS_ENV", "N_REF", "SU2024", "S_REF", "DataToLoss", "ExtrapolationWarning", "Law", "Sampling",
           "Trajectory", "forms", "get_law", "register"]
