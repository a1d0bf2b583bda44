"""Laws stage: scaling-law functional forms as pure ``jax.numpy`` functions.

Each law is one definition used by the point fits, the NumPyro models, prediction
and planning. Parameters live in an unconstrained-ish log space (``e = log E``...)
because the fits are better conditioned there.
"""

from __future__ import annotations

from bayeslaw.laws.base import Law
from bayeslaw.laws.chinchilla import CHINCHILLA
from bayeslaw.laws.compute import COMPUTE
from bayeslaw.laws.kaplan import KAPLAN, KAPLAN_E
from bayeslaw.laws.su2024 import SU2024

LAWS: dict[str, Law] = {law.name: law for law in (CHINCHILLA, KAPLAN, KAPLAN_E, COMPUTE, SU2024)}


def get_law(form: str | Law) -> Law:
    """The law called ``form``; an unknown name raises with the known ones."""
    if isinstance(form, Law):
        return form
    try:
        return LAWS[form]
    except KeyError:
        raise ValueError(f"unknown form {form!r}; known forms: {sorted(LAWS)}") from None


__all__ = ["CHINCHILLA", "COMPUTE", "KAPLAN", "KAPLAN_E", "LAWS", "SU2024", "Law", "get_law"]
