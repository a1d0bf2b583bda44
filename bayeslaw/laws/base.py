"""What a scaling law is to bayeslaw: a log-loss function of named parameters and data columns, and
what else the law can answer (its Bayesian coordinates, a compute-optimal split, trajectory questions).

Callers ask the law (``law.sampling``, ``law.split``, ``law.trajectory``, ``law.columns_needed``)
rather than branching on its name, so a new law is its module and one registry line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import jax.numpy as jnp
import numpy as np
import pandas as pd

__all__ = ["C_REF", "D_REF", "N_REF", "S_REF", "ExtrapolationWarning", "Law", "PathFit", "Sampling", "Trajectory"]

# Reference scales of the sampled coordinates: a power-law term is sampled as its log loss at the
# reference (which the data pin), not as its constant (which sits far from the data on a ridge with
# the exponent).
N_REF = 1e9  # parameters
D_REF = 1e11  # tokens
S_REF = 1e4  # optimizer steps
C_REF = 6.0 * N_REF * D_REF  # FLOPs: 6 N D at N_REF, D_REF


class ExtrapolationWarning(UserWarning):
    """A forecast asked for where the fit measured nothing the forecast's band could carry (tokens far beyond
    the fitted ones, a schedule law's size or peak rate far from its fitted runs). Planners that extrapolate
    by design (a compute-optimal allocation's tokens) filter it."""


@dataclass(frozen=True, eq=False)
class PathFit:
    """A published point fit that is an optimiser's path rather than a minimum (``fit_point(method="adamw")``).

    From ``start(df, inputs) -> dict`` (natural parameters, as ``law.natural`` names them; ``inputs`` are
    the law's inputs and ``loss`` of the table's rows), ``steps`` steps of AdamW on sum_i Huber_1e-3(log L_i
    - log L(inputs_i)) in those natural parameters, with a rate per parameter (``rates``) and decoupled
    weight decay, stopped after ``patience`` steps without improvement or at a gradient norm below
    ``grad_tol``; the parameters after the best step are kept. The path does not fit the law's
    ``held_alone`` parameters (its slopes in N and in the peak rate): it holds them, and is refused on a
    table of several sizes or several peak rates.
    """

    start: Callable
    rates: Mapping[str, float]
    steps: int = 200
    patience: int = 20
    weight_decay: float = 1e-2
    grad_tol: float = 1e-5
    source: str = ""


@dataclass(frozen=True, eq=False)
class Sampling:
    """How the Bayesian models sample a law: the coordinates NUTS moves in, their priors, the map to the law.

    ``priors[name]`` = (centre, scale, tau) per sampled coordinate, in order: the Normal prior of the
    coordinate (of the population mean mu in the hierarchy) and the prior mean of its spread across
    families (Gamma(10)). ``to_law(theta)`` gives the law's own parameters (its ``theta_names``) from
    theta (..., K); ``from_law(params) -> (K,)`` inverts it (starting values). ``frame``, optional:
    ``frame(log_params, log_tokens, centered)`` -> the bijection (a NumPyro Transform) a centred family
    is sampled in, given the mean log N and log D of each family's rows and a 0/1 switch per family.
    ``explains_shape``: the law itself describes how a run's loss moves along the run (it reads the
    learning-rate schedule), so the models add no schedule shape g_f of their own (see :mod:`bayeslaw.models`).
    ``correlated``: the coordinates whose spreads across families are correlated in the hierarchy (an
    LKJ prior); None: all of them. The others (a schedule law's size and rate slopes) spread independently.
    """

    priors: Mapping[str, tuple[float, float, float]]
    to_law: Callable[..., dict]
    from_law: Callable[[Mapping], np.ndarray]
    frame: Callable | None = None
    explains_shape: bool = False
    correlated: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.correlated is not None and (unknown := set(self.correlated) - set(self.priors)):
            raise ValueError(f"Sampling: correlated coordinates {sorted(unknown)} are not among {tuple(self.priors)}")

    @property
    def names(self) -> tuple[str, ...]:
        """The sampled coordinates of a family's theta_f, in order."""
        return tuple(self.priors)

    def vector(self, key: str) -> np.ndarray:
        """Prior "center", "scale" or "tau" per coordinate, in ``names`` order."""
        column = {"center": 0, "scale": 1, "tau": 2}[key]
        return np.array([self.priors[n][column] for n in self.names])

    @property
    def correlated_names(self) -> tuple[str, ...]:
        """The coordinates correlated across families, in ``names`` order."""
        if self.correlated is None:
            return self.names
        return tuple(n for n in self.names if n in self.correlated)


@dataclass(frozen=True)
class Trajectory:
    """Answers about a training trajectory (laws of steps and batch size): functions of the law's
    parameters theta (a mapping of arrays) and N parameters, a loss L, B tokens per step."""

    minimum_loss: Callable  # (theta, params) -> L_inf(N)
    critical_batch_size: Callable  # (theta, loss) -> Bcrit(L), tokens per step
    min_steps: Callable  # (theta, params, loss) -> fewest steps (infinite batch) to reach L
    min_tokens: Callable  # (theta, params, loss) -> fewest tokens (small batch) to reach L
    steps_to_loss: Callable  # (theta, params, loss, batch_size) -> steps at batch B to reach L


@dataclass(frozen=True)
class DataToLoss:
    """A law of N and D solved for D: functions of the law's parameters theta (fitting space, arrays that
    broadcast) and N parameters, a loss L in nats per token."""

    minimum_loss: Callable  # (theta, params) -> L(N, D -> infinity), nats per token
    tokens_to_loss: Callable  # (theta, params, loss) -> D with L(N, D) = loss; infinite at or below the minimum


@dataclass(frozen=True, eq=False)  # hashed by identity: a static argument of jitted fits
class Law:
    """A scaling law L(inputs; theta) and what it can answer.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"chinchilla"``.
    formula : str
        The law in words, for reports.
    theta_names : tuple of str
        Names of the fitted parameters, in the (log-)space the fits work in.
    inputs : tuple of str
        What the law reads (e.g. ``("params", "tokens")``): table columns, or derived ones.
    log_loss : callable
        ``log_loss(theta: Mapping[str, Array], **inputs) -> Array``: log L in log-nats.
    natural : callable
        ``natural(theta) -> dict`` of the parameters as usually reported (E, A, ...).
    from_natural : callable
        Inverse of ``natural``.
    init_grid : Mapping[str, array]
        Values per parameter whose Cartesian product starts the grid point fit.
    derived : Mapping[str, (columns, callable)]
        Inputs computed from other columns rather than read from a column of their name:
        ``name -> (columns it needs, f(mapping of column arrays) -> array)``; the input's own column
        is passed too where the table has it (e.g. ``compute``'s FLOPs, 6 N D where a source gives none).
    sampling : Sampling or None
        The Bayesian models' coordinates and priors; None: point fits only.
    coarse_grid : Mapping[str, tuple] or None
        A subset of ``init_grid`` for studies that run many point fits; None: the full grid.
    point_start : Mapping[str, float] or None
        The one start of least squares (``method="hitchhiker"``); None: that method is not offered.
    lower_bounds : Mapping[str, float]
        Lower bounds of parameters in least squares (the others unbounded), e.g. exponents >= 0.
    optimal_log_params : callable or None
        Closed-form compute-optimal split: ``(theta, log(C / 6)) -> log N*`` (arrays broadcasting).
    numeric_split : bool
        The loss depends on how a FLOP budget C = 6 N D is split (it reads N and D, or steps), so
        the optimum can be searched numerically where there is no closed form.
    trajectory : Trajectory or None
        Answers about training trajectories (steps, critical batch size); None: not offered.
    data_to_loss : DataToLoss or None
        The law solved for its tokens (the loss with unlimited data, the tokens to a loss) where it has a
        closed form; None: not offered (a law of steps answers through ``trajectory``).
    constants_at : callable or None
        ``(theta, values) -> theta``: a law whose constants move with the inputs of :attr:`held_alone` (a
        schedule law's with N and the peak rate) gives them at ``values`` (``{"params": N, "peak_lr": eta}``),
        the slopes folded in as its loss reads them; None: its constants are what they are.
    features : tuple of str
        Inputs that may be zero or hold an array per row (e.g. a schedule law's loss-drop design,
        (row, bin)): checked finite only. Every other input must be positive.
    path : PathFit or None
        A published point fit that follows an optimiser's path (``fit_point(method="adamw")``); None: not offered.
    held_alone : Mapping[str, Mapping[str, float]]
        ``input -> {parameter: value}``: parameters a point fit holds at these values when every row has
        one value of the input (a size slope on one model size, a rate slope at one peak rate), where the
        data cannot tell them from the constants they multiply (:meth:`held_in`).
    """

    name: str
    formula: str
    theta_names: tuple[str, ...]
    inputs: tuple[str, ...]
    log_loss: Callable
    natural: Callable[[Mapping], dict]
    from_natural: Callable[[Mapping], dict]
    init_grid: Mapping[str, np.ndarray] = field(default_factory=dict)
    derived: Mapping[str, tuple[tuple[str, ...], Callable]] = field(default_factory=dict)
    sampling: Sampling | None = None
    coarse_grid: Mapping[str, tuple] | None = None
    point_start: Mapping[str, float] | None = None
    lower_bounds: Mapping[str, float] = field(default_factory=dict)
    optimal_log_params: Callable | None = None
    numeric_split: bool = False
    trajectory: Trajectory | None = None
    data_to_loss: DataToLoss | None = None
    constants_at: Callable | None = None
    features: tuple[str, ...] = ()
    path: PathFit | None = None
    held_alone: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def columns_needed(self) -> tuple[str, ...]:
        """Table columns the law's inputs are read or derived from, in order."""
        needed = [c for name in self.inputs for c in (self.derived[name][0] if name in self.derived else (name,))]
        return tuple(dict.fromkeys(needed))

    @property
    def progress(self) -> str:
        """The column that orders a run's checkpoints and measures how far along the run they are:
        ``step`` for a law that reads the learning-rate schedule (a run's end is its schedule's last
        step), ``tokens`` otherwise."""
        return "step" if "schedule" in self.columns_needed else "tokens"

    @property
    def split(self) -> str | None:
        """How the law splits a FLOP budget into parameters and tokens: "closed-form", "numerical" or None."""
        if self.optimal_log_params is not None:
            return "closed-form"
        return "numerical" if self.numeric_split else None

    def inputs_from(self, columns: Mapping) -> dict:
        """The law's inputs from column arrays (numpy or jax), deriving those it does not read directly."""
        return {name: (self.derived[name][1](columns) if name in self.derived else columns[name])
                for name in self.inputs}

    def reference_point(self, inputs: Mapping) -> dict[str, float]:
        """Where a law whose constants move with its inputs (:attr:`constants_at`: a schedule law's size N and
        peak rate) quotes them for rows with these ``inputs``: their median N and peak rate (geometric), where
        the rows measure them; {} for a law with fixed constants."""
        if self.constants_at is None:
            return {}
        return {name: float(np.exp(np.median(np.log(np.asarray(inputs[name], dtype=float)))))
                for name in self.held_alone}

    def held_in(self, df, *, where: str = "table", inputs: Mapping | None = None) -> dict[str, float]:
        """The parameters of :attr:`held_alone` that ``df`` cannot identify: those of each input with one
        value over all its rows (``inputs``: the table's, where the caller has read them already)."""
        if not self.held_alone:
            return {}
        inputs = self.columns(df, where=where) if inputs is None else inputs
        return {name: value for column, held in self.held_alone.items()
                if np.unique(inputs[column]).size == 1 for name, value in held.items()}

    def columns(self, df, *, where: str = "table") -> dict[str, np.ndarray]:
        """The law's inputs from a table, as float arrays; a missing column or a non-positive or
        non-finite value raises with the column and the first bad rows (``where`` names the table)."""
        needs = {name: self.derived[name][0] if name in self.derived else (name,) for name in self.inputs}
        for name, columns in needs.items():
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise ValueError(f"{where}: the {self.name} law needs column(s) {missing} (for its input {name!r})")
        # a derived input's own column is passed too where the table has it (e.g. a given flops column)
        present = [c for c in dict.fromkeys([*self.columns_needed, *self.inputs]) if c in df.columns]
        # numeric columns as floats; text ones (a schedule's JSON) as they are, for the derived inputs
        arrays = {c: df[c].to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(df[c]) else df[c].to_numpy(dtype=object)
                  for c in present}
        out = {name: np.asarray(values, dtype=float) for name, values in self.inputs_from(arrays).items()}
        for name, values in out.items():
            invalid = ~np.isfinite(values) if name in self.features else ~np.isfinite(values) | (values <= 0)
            bad = np.flatnonzero(invalid.reshape(len(values), -1).any(axis=1)) if len(values) else np.empty(0, int)
            if bad.size:
                rows = df.index[bad[:5]].tolist()
                raise ValueError(f"{where}: column {'/'.join(needs[name])!r} gives non-positive or missing {name} at "
                                 f"row(s) {rows} ({bad.size} in all); the {self.name} law needs it positive")
        return out

    def loss(self, theta: Mapping, **inputs):
        """L = exp(log_loss), in nats per token."""
        return jnp.exp(self.log_loss(theta, **inputs))

    def grid(self, coarse: bool = False) -> np.ndarray:
        """Cartesian product of ``init_grid`` (of ``coarse_grid`` where asked and given), shape
        (n_starts, n_theta), columns in ``theta_names`` order."""
        values = self.coarse_grid if coarse and self.coarse_grid is not None else self.init_grid
        axes = [np.asarray(values[n], dtype=float) for n in self.theta_names]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    def unpack(self, vector) -> dict:
        """A flat vector (last axis in ``theta_names`` order) as a dict of arrays."""
        return {n: vector[..., i] for i, n in enumerate(self.theta_names)}

    def fix(self, values: Mapping[str, float]) -> Law:
        """The same law with some parameters held at ``values`` (fitting space): fits see only the rest.

        Used by the Hitchhiker's transfer baseline (A and alpha borrowed from other families). The
        result is for point fits: it has no Bayesian coordinates, split or trajectory answers.
        """
        unknown = sorted(set(values) - set(self.theta_names))
        if unknown:
            raise ValueError(f"{self.name} law has no parameter(s) {unknown}; its parameters: {list(self.theta_names)}")
        fixed = {k: float(v) for k, v in values.items()}
        parent = self

        def log_loss(theta, **inputs):
            return parent.log_loss({**theta, **fixed}, **inputs)

        def free(grid):
            return None if grid is None else {k: v for k, v in grid.items() if k not in fixed}

        return replace(
            self,
            theta_names=tuple(n for n in self.theta_names if n not in fixed),
            log_loss=log_loss,
            natural=lambda theta: parent.natural({**theta, **fixed}),
            init_grid=free(self.init_grid),
            coarse_grid=free(self.coarse_grid),
            point_start=free(self.point_start),
            sampling=None,
            optimal_log_params=None,
            numeric_split=False,
            trajectory=None,
            data_to_loss=None,
            constants_at=None,
            held_alone={column: {k: v for k, v in held.items() if k not in fixed}
                        for column, held in self.held_alone.items()},
        )
