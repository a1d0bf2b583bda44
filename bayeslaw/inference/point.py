"""Point-estimate fits: what practitioners use today, as the baseline bayeslaw compares against.

Two methods, each the published protocol:

``epoch``       Besiroglu et al. 2024 (Epoch AI's Chinchilla replication): minimise
                sum_i Huber_delta(log L_i - log L(N_i, D_i; theta)), delta = 1e-3, by L-BFGS from
                every point of a grid of starts; keep the best. The grid runs as one vectorised
                JAX computation (``jax.vmap`` over starts of an ``optax.lbfgs`` loop).
``hitchhiker``  Choshen et al. 2025 (IBM/ColPret): least squares on the loss itself,
                ``scipy.optimize.curve_fit`` (TRF, alpha, beta >= 0; dogbox if TRF fails) from one
                start, log A 6.255414, log B 7.3049974, log E 0.6254804, alpha = beta = 0.3526596.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from typing import get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import scipy.optimize

from bayeslaw.data.runs import drop_copies
from bayeslaw.inference.config import PointMethod
from bayeslaw.laws import Law, forms, get_law

__all__ = ["METHODS", "PointFit", "TooFewPoints", "fit_point", "huber", "grid_lbfgs"]

HUBER_DELTA = 1e-3
LINESEARCH_STEPS = 20
# the smallest batch a round runs: each batch size compiles the round anew (seconds), and a round of
# 64 starts costs about what one of 1 does, so the last few stragglers share the 64-wide compilation
MIN_BATCH = 64
# the most (start, point) pairs a grid round holds at once: its line search keeps a few dozen arrays of
# that shape alive, so 2^21 pairs bound a round to a few hundred MB (benchmarks/point_grid_memory.py)
GRID_ELEMENTS = 2**21


def huber(r, delta=HUBER_DELTA):
    """Huber loss: r^2 / 2 where |r| <= delta, delta (|r| - delta / 2) beyond."""
    abs_r = jnp.abs(r)
    return jnp.where(abs_r <= delta, 0.5 * r**2, delta * (abs_r - 0.5 * delta))


@dataclass(frozen=True)
class PointFit:
    """A fitted point estimate of one law.

    ``theta`` holds the parameters in the law's fitting space (``e, a, b, alpha, beta``);
    ``params`` the usual ones (``E, A, B, alpha, beta``).
    """

    form: str
    method: str
    theta: dict[str, float]
    objective: float
    n_points: int
    converged: bool
    details: dict = field(default_factory=dict, repr=False)

    @property
    def law(self) -> Law:
        return get_law(self.form)

    @property
    def params(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.law.natural(self.theta).items()}

    def predict(self, params=None, tokens=None, **inputs) -> np.ndarray:
        """Predicted loss L in nats per token; arguments broadcast like numpy arrays.

        ``params`` may instead be a table: the law's inputs are then read (or derived, e.g. compute's
        FLOPs, su2024's steps = tokens / batch_size) from its columns.
        """
        if isinstance(params, pd.DataFrame):
            inputs, params = self.law.columns(params, where="predict"), None
        if params is not None:
            inputs["params"] = params
        if tokens is not None:
            inputs["tokens"] = tokens
        missing = [k for k in self.law.inputs if k not in inputs]
        if missing:
            raise TypeError(f"{self.form} law needs {list(self.law.inputs)}; missing {missing}")
        arrays = {k: jnp.asarray(np.asarray(inputs[k], dtype=float)) for k in self.law.inputs}
        theta = {k: jnp.asarray(v) for k, v in self.theta.items()}
        return np.asarray(self.law.loss(theta, **arrays))

    def to_series(self) -> pd.Series:
        """Parameters (usual and fitting space) plus the objective, for tables."""
        return pd.Series(
            {**self.params, **{f"theta_{k}": v for k, v in self.theta.items()}, "objective": self.objective},
            name=f"{self.form}/{self.method}",
        )


class TooFewPoints(ValueError):
    """Fewer rows than the law's free parameters: no point fit exists."""


def _inputs(df: pd.DataFrame, law: Law) -> dict[str, np.ndarray]:
    if len(df) < len(law.theta_names):
        raise TooFewPoints(
            f"fit_point: found {len(df)} row(s) while the {law.name} law has {len(law.theta_names)} "
            f"parameters; need at least {len(law.theta_names)} points"
        )
    if "loss" not in df.columns:
        raise ValueError("fit_point: table lacks column 'loss'")
    arrays = law.columns(df, where="fit_point")
    loss = df["loss"].to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(loss) | (loss <= 0))
    if bad.size:
        raise ValueError(f"fit_point: column 'loss' has non-positive or non-finite values at rows {bad[:5].tolist()}")
    return {**arrays, "loss": loss}


def _lbfgs():
    return optax.lbfgs(linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=LINESEARCH_STEPS, initial_guess_strategy="one"))


def _huber_objective(law: Law, data, delta):
    """theta vector -> sum_i w_i Huber_delta(log L_i - log L(inputs_i; theta)); w_i = 0 marks padding."""
    log_y = jnp.log(data["loss"])
    inputs = {k: data[k] for k in law.inputs}

    def objective(vector):
        return jnp.sum(data["weight"] * huber(log_y - law.log_loss(law.unpack(vector), **inputs), delta))

    return objective


@partial(jax.jit, static_argnames=("law",))
def _lbfgs_round(law: Law, carry, data, delta, stop_at, ftol, gtol):
    """Advance every start of the batch ``carry`` until it converges or reaches ``stop_at`` iterations."""
    objective = _huber_objective(law, data, delta)
    solver = _lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def converged(carry_one):
        _, state, value_before, value = carry_one
        grad_max = jnp.max(jnp.abs(optax.tree.get(state, "grad")))
        scale = jnp.maximum(jnp.maximum(jnp.abs(value_before), jnp.abs(value)), 1.0)
        return (optax.tree.get(state, "count") >= 2) & ((grad_max <= gtol) | ((value_before - value) / scale <= ftol))

    def step(carry_one):
        x, state, _, value_before = carry_one
        value, grad = value_and_grad(x, state=state)
        updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(x, updates), state, value_before, value

    def advance(carry_one):
        keep_going = lambda c: (optax.tree.get(c[1], "count") < stop_at) & ~converged(c)  # noqa: E731
        carry_one = jax.lax.while_loop(keep_going, step, carry_one)
        return carry_one, converged(carry_one)

    return jax.vmap(advance)(carry)


@partial(jax.jit, static_argnames=("law",))
def _finish(law: Law, x, data, delta):
    objective = _huber_objective(law, data, delta)
    return jax.vmap(objective)(x), jax.vmap(lambda v: optax.tree.norm(jax.grad(objective)(v)))(x)


def _pad_points(data: dict) -> dict:
    """Pad the points to a power of two (>= 64) with zero weight, so fits of different sizes share compilations."""
    n = len(data["loss"])
    size = max(64, 1 << int(np.ceil(np.log2(n))))
    # padded rows hold ones (a feature matrix's padded row a row of ones): finite, and weighted out
    padded = {k: np.concatenate([np.asarray(v, dtype=float), np.ones((size - n,) + np.shape(v)[1:])])
              for k, v in data.items()}
    padded["weight"] = np.concatenate([np.ones(n), np.zeros(size - n)])
    return {k: jnp.asarray(v) for k, v in padded.items()}


def _batch_size(active: int) -> int:
    """Padded batch for ``active`` starts: 64 or 512 up to 512, the next power of two above. Each size
    compiles the round anew (seconds: the loop holds a zoom line search), so small grids get few sizes;
    a large grid's later rounds, padded by at most 2x, cost a third less than with powers of eight."""
    if active <= MIN_BATCH:
        return MIN_BATCH
    if active <= 512:
        return 512
    return 1 << int(np.ceil(np.log2(active)))


def _padded(indices: np.ndarray, size: int) -> np.ndarray:
    """``indices`` padded to ``size`` with copies of its first (the padding's results are discarded)."""
    return np.concatenate([indices, np.full(size - indices.size, indices[0])])


def _largest_batch(rows: int) -> int:
    """The most starts advanced together on ``rows`` (padded) points: GRID_ELEMENTS (start, point) pairs,
    so that memory stays bounded whatever the number of rows."""
    return max(MIN_BATCH, GRID_ELEMENTS // rows)


def grid_lbfgs(law: Law, starts, data, *, delta=HUBER_DELTA, max_iter=1000, ftol=2.2e-9, gtol=1e-5, round_iters=25):
    """L-BFGS (optax) from every row of ``starts`` on the summed Huber loss of log residuals.

    A start stops as scipy's L-BFGS-B does (which Besiroglu et al. used): when the relative
    decrease of the objective falls to ``ftol``, when the largest gradient component falls
    to ``gtol``, or after ``max_iter`` iterations.

    All starts advance together in one ``jax.vmap``-ed computation. A vmapped loop runs
    until its slowest member stops, and most starts stop within a few dozen iterations
    while a few wander for hundreds; so the batch runs in rounds of ``round_iters``
    iterations, and each round keeps only the starts still running, padded (``_batch_size``). A round runs its
    starts in chunks of at most ``GRID_ELEMENTS`` (start, point) pairs, so memory does not grow with the
    number of starts.

    Returns (final theta vectors, objective values, gradient norms, iterations), one per start.
    """
    starts = jnp.asarray(starts, dtype=jnp.float64)
    data = _pad_points(data)
    n = starts.shape[0]
    inf = jnp.full((n,), jnp.inf)
    carry = (starts, jax.vmap(_lbfgs().init)(starts), inf, inf)
    active = np.arange(n)
    stop_at = 0
    largest = _largest_batch(len(data["weight"]))
    while active.size and stop_at < max_iter:
        stop_at = min(stop_at + round_iters, max_iter)
        still = []
        for chunk in np.split(active, np.arange(largest, active.size, largest)):
            size = min(n, largest, _batch_size(chunk.size))
            batch = _padded(chunk, size)
            sub = jax.tree.map(lambda leaf: leaf[batch], carry)
            sub, done = _lbfgs_round(law, sub, data, delta, stop_at, ftol, gtol)
            carry = jax.tree.map(lambda leaf, new, c=chunk: leaf.at[c].set(new[: c.size]), carry, sub)
            still.append(chunk[~np.asarray(done)[: chunk.size]])
        active = np.concatenate(still)
    x, state = carry[0], carry[1]
    values, grad_norms = np.empty(n), np.empty(n)
    for start in range(0, n, largest):  # in chunks too: the gradient holds a (start, point) array
        part = np.arange(start, min(start + largest, n))
        batch = _padded(part, min(n, largest))  # one compiled size
        v, g = _finish(law, x[batch], data, delta)
        values[part], grad_norms[part] = np.asarray(v)[: part.size], np.asarray(g)[: part.size]
    return x, jnp.asarray(values), jnp.asarray(grad_norms), optax.tree.get(state, "count")


def _fit_epoch(law: Law, data: dict, *, delta: float, max_iter: int, starts=None) -> PointFit:
    starts = law.grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    x, values, grad_norms, iters = grid_lbfgs(
        law, jnp.asarray(starts), {k: jnp.asarray(v) for k, v in data.items()}, delta=delta, max_iter=max_iter
    )
    values = np.asarray(values)
    values = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(values))
    theta = {n: float(v) for n, v in zip(law.theta_names, np.asarray(x[best]), strict=True)}
    iters = np.asarray(iters)
    return PointFit(
        form=law.name,
        method="epoch",
        theta=theta,
        objective=float(values[best]),
        n_points=len(data["loss"]),
        converged=bool(np.isfinite(values[best])),
        details={
            "n_starts": len(starts),
            "best_start": starts[best].tolist(),
            "grad_norm": float(np.asarray(grad_norms)[best]),
            "iterations": int(iters[best]),
            "delta": delta,
            "n_near_best": int(np.sum(values <= values[best] * (1 + 1e-6) + 1e-12)),
        },
    )


def _fit_hitchhiker(law: Law, data: dict, *, start=None, max_nfev: int | None = None) -> PointFit:
    if law.point_start is None:
        raise ValueError(f"method='hitchhiker' (least squares from one start) needs a law with a start; the "
                         f"{law.name} law has none (forms with one: {forms(lambda law: law.point_start)}): use "
                         f"method='epoch'")
    start = dict(law.point_start if start is None else start)
    names = law.theta_names
    # curve_fit's x is the row index: the inputs may be matrices per row (a schedule law's design)
    inputs = {k: jnp.asarray(data[k]) for k in law.inputs}
    x = np.arange(len(data["loss"]))
    y = data["loss"]

    def model(rows, *vector):
        theta = {n: jnp.asarray(v) for n, v in zip(names, vector, strict=True)}
        rows = np.asarray(rows, dtype=int)  # curve_fit passes x as floats
        return np.asarray(law.loss(theta, **{k: v[rows] for k, v in inputs.items()}))

    lower = [law.lower_bounds.get(n, -np.inf) for n in names]
    p0 = [start[n] for n in names]
    method_used = "trf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
        try:
            popt, _ = scipy.optimize.curve_fit(
                model, x, y, p0=p0, bounds=(lower, np.inf), method="trf", max_nfev=max_nfev
            )
        except (RuntimeError, ValueError):
            method_used = "dogbox"
            try:
                popt, _ = scipy.optimize.curve_fit(
                    model, x, y, p0=p0, bounds=(lower, np.inf), method="dogbox", max_nfev=max_nfev
                )
            except (RuntimeError, ValueError) as err:
                return PointFit(law.name, "hitchhiker", dict(start), np.inf, len(y), False, {"error": str(err)})
    theta = {n: float(v) for n, v in zip(names, popt, strict=True)}
    residual = y - model(x, *popt)
    return PointFit(
        form=law.name,
        method="hitchhiker",
        theta=theta,
        objective=float(np.sum(residual**2)),
        n_points=len(y),
        converged=True,
        details={"scipy_method": method_used},
    )


METHODS = get_args(PointMethod)


def fit_point(
    df: pd.DataFrame,
    form: str | Law = "chinchilla",
    method: PointMethod = "epoch",
    *,
    delta: float = HUBER_DELTA,
    max_iter: int = 1000,
    starts=None,
    fixed: dict[str, float] | None = None,
) -> PointFit:
    """Fit one law to all rows of ``df`` by a published point-estimate protocol.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows with the law's input columns (``params``, ``tokens`` for chinchilla) and ``loss``.
    form : str, default "chinchilla"
        A law from :data:`bayeslaw.laws.LAWS` (chinchilla, kaplan, kaplan_e, compute, su2024); its
        inputs are read or derived from the table by ``Law.columns``.
    method : {"epoch", "hitchhiker"}, default "epoch"
        See the module docstring.
    delta, max_iter, starts
        ``epoch`` only: Huber delta on log residuals, L-BFGS iteration cap, and starting
        points (rows in ``law.theta_names`` order; default the published grid).
    fixed : dict, optional
        Parameters held at these values (fitting space, e.g. ``{"a": 6.2, "alpha": 0.34}``)
        while the rest are fitted: the Hitchhiker's Guide's way to fit a family seen through
        one model with A and alpha borrowed from other families.

    Returns
    -------
    PointFit
        ``.params`` (E, A, B, alpha, beta), ``.predict(params, tokens)``.
    """
    law = get_law(form)
    df = drop_copies(df)  # a branch's copy of its parent's checkpoints counts once
    if fixed:
        free = law.fix(fixed)
        starts = None if starts is None else np.asarray(starts, dtype=float)
        if starts is not None and starts.shape[-1] == len(law.theta_names):
            # starts over all of the law's parameters: keep the free columns, each distinct start once
            keep = [law.theta_names.index(n) for n in free.theta_names]
            starts = np.unique(starts[:, keep], axis=0)
        result = fit_point(df, free, method, delta=delta, max_iter=max_iter, starts=starts)
        theta = {**result.theta, **{k: float(v) for k, v in fixed.items()}}
        return replace(result, form=law.name, theta={n: theta[n] for n in law.theta_names},
                       details={**result.details, "fixed": dict(fixed)})
    data = _inputs(df, law)
    if method == "epoch":
        return _fit_epoch(law, data, delta=delta, max_iter=max_iter, starts=starts)
    if method == "hitchhiker":
        return _fit_hitchhiker(law, data)
    raise ValueError(f"unknown method {method!r}; known methods: {list(METHODS)}")
