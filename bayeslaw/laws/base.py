"""What a scaling law is to bayeslaw: a log-loss function of named parameters and data columns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import jax.numpy as jnp
import numpy as np


#: Columns a derived input is computed from (for error messages).
_DERIVED_FROM = {"flops": ("params", "tokens"), "steps": ("tokens", "batch_size")}


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
    derived : Mapping[str, callable]
        Inputs computed from a table rather than read from a column of that name
        (``df -> array``; e.g. ``compute``'s FLOPs where a source gives none).
    """

    name: str
    formula: str
    theta_names: tuple[str, ...]
    inputs: tuple[str, ...]
    log_loss: Callable
    natural: Callable[[Mapping], dict]
    from_natural: Callable[[Mapping], dict]
    init_grid: Mapping[str, np.ndarray] = field(default_factory=dict)
    derived: Mapping[str, Callable] = field(default_factory=dict)

    def columns(self, df, *, where: str = "table") -> dict[str, np.ndarray]:
        """The law's inputs from a table, as float arrays; a missing column or a non-positive or
        non-finite value raises with the column and the first bad rows (``where`` names the table)."""
        out = {}
        for name in self.inputs:
            needs = _DERIVED_FROM.get(name, (name,)) if name in self.derived else (name,)
            missing = [c for c in needs if c not in df.columns]
            if missing:
                raise ValueError(f"{where}: the {self.name} law needs column(s) {missing} (for its input {name!r})")
            values = np.asarray(self.derived[name](df) if name in self.derived else df[name].to_numpy(dtype=float),
                                dtype=float)
            bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
            if bad.size:
                rows = df.index[bad[:5]].tolist()
                raise ValueError(f"{where}: column {'/'.join(needs)!r} gives non-positive or missing {name} at "
                                 f"row(s) {rows} ({bad.size} in all); the {self.name} law needs it positive")
            out[name] = values
        return out

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
