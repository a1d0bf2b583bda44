"""What a scaling law is to bayeslaw: a log-loss function of named parameters and data columns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True, eq=False)  # hashed by identity: a static argument of jitted fits
class Law:
    """A scaling law L(inputs; theta).

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"chinchilla"``.
    formula : str
        The law in words, for reports.
    theta_names : tuple of str
        Names of the fitted parameters, in the (log-)space the fits work in.
    inputs : tuple of str
        Table columns the law reads (e.g. ``("params", "tokens")``).
    log_loss : callable
        ``log_loss(theta: Mapping[str, Array], **inputs) -> Array``: log L in log-nats.
    natural : callable
        ``natural(theta) -> dict`` of the parameters as usually reported (E, A, ...).
    from_natural : callable
        Inverse of ``natural``.
    init_grid : Mapping[str, array]
        Values per parameter whose Cartesian product starts the grid point fit.
    """

    name: str
    formula: str
    theta_names: tuple[str, ...]
    inputs: tuple[str, ...]
    log_loss: Callable
    natural: Callable[[Mapping], dict]
    from_natural: Callable[[Mapping], dict]
    init_grid: Mapping[str, np.ndarray] = field(default_factory=dict)

    def loss(self, theta: Mapping, **inputs):
        """L = exp(log_loss), in nats per token."""
        return jnp.exp(self.log_loss(theta, **inputs))

    def grid(self) -> np.ndarray:
        """Cartesian product of ``init_grid``, shape (n_starts, n_theta), columns in ``theta_names`` order."""
        axes = [np.asarray(self.init_grid[n], dtype=float) for n in self.theta_names]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    def unpack(self, vector) -> dict:
        """A flat vector (last axis in ``theta_names`` order) as a dict of arrays."""
        return {n: vector[..., i] for i, n in enumerate(self.theta_names)}

    def fix(self, values: Mapping[str, float]) -> Law:
        """The same law with some parameters held at ``values`` (fitting space): fits see only the rest.

        Used by the Hitchhiker's transfer baseline (A and alpha borrowed from other families).
        """
        unknown = sorted(set(values) - set(self.theta_names))
        if unknown:
            raise ValueError(f"{self.name} law has no parameter(s) {unknown}; its parameters: {list(self.theta_names)}")
        fixed = {k: float(v) for k, v in values.items()}
        parent = self

        def log_loss(theta, **inputs):
            return parent.log_loss({**theta, **fixed}, **inputs)

        return replace(
            self,
            theta_names=tuple(n for n in self.theta_names if n not in fixed),
            log_loss=log_loss,
            natural=lambda theta: parent.natural({**theta, **fixed}),
            init_grid={k: v for k, v in self.init_grid.items() if k not in fixed},
        )
