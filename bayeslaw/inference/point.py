"""Point-estimate fits: what practitioners use today, as the baseline bayeslaw compares against.

Three methods, each a published protocol:

``epoch``       Besiroglu et al. 2024 (Epoch AI's Chinchilla replication): minimise
                sum_i Huber_delta(log L_i - log L(N_i, D_i; theta)), delta = 1e-3, by L-BFGS from
                every point of a grid of starts; keep the best. Each start is scipy's L-BFGS-B
                (default options, as they ran it), replayed step for step by :func:`grid_lbfgs`:
                all starts advance together in one JAX computation, one evaluation per step each.
``hitchhiker``  Choshen et al. 2025 (IBM/ColPret): least squares on the loss itself,
                ``scipy.optimize.curve_fit`` (TRF, alpha, beta >= 0; dogbox if TRF fails) from one
                start, log A 6.255414, log B 7.3049974, log E 0.6254804, alpha = beta = 0.3526596.
``adamw``       a law's published optimiser path (``Law.path``; the multi-power law's: Luo et al. 2025,
                one model size): from the law's start, AdamW steps on sum_i Huber_1e-3(log L_i -
                log L_i(theta)) in the natural parameters, a rate per parameter, stopped after a
                number of steps without improvement; the best step is kept. Its answer is where that
                path is, not a minimum of the objective: for the multi-power law it reproduces the
                published constants (benchmarks/schedule_laws.py --reproduce), which the minimum does not.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from typing import get_args

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize

from bayeslaw.data.runs import drop_copies, one_metric_per_run
from bayeslaw.data.schedules import check_logged_lr, run_schedules
from bayeslaw.data.split import DEFAULT_MIN_TOKENS
from bayeslaw.data.validation import PLAUSIBLE
from bayeslaw.inference.config import PointMethod
from bayeslaw.laws import Law, forms, get_law
from bayeslaw.laws.schedule_terms import check_forecast_steps, warn_outside_fitted

__all__ = ["METHODS", "EarlyCheckpointWarning", "PointFit", "TooFewPoints", "check_columns", "check_values",
           "fit_point", "huber", "grid_lbfgs"]

HUBER_DELTA = 1e-3
# the smallest batch of the grid: each batch size compiles anew (seconds), and a step of 64 starts
# costs little more than one of 1, so the last stragglers share the 64-wide compilation
MIN_BATCH = 64
# the most (start, point) pairs the grid advances together: an evaluation's arrays of that shape (0.5 MB
# each) stay in cache (the 4,500-start Chinchilla grid takes ~30% longer with 2^18 pairs, twice as long
# with 2^21), and memory stays bounded whatever the number of rows (benchmarks/point_grid_memory.py)
GRID_ELEMENTS = 2**16


#: the schema's bounds on a law input's units (:data:`bayeslaw.data.validation.PLAUSIBLE`), the loaders' refusal:
#: column -> (bound below which a value is in other units, the likely slip)
UNITS = {column: (bound, cause) for column, bound, side, cause in PLAUSIBLE
         if column in ("params", "tokens") and side == "below"}


def check_values(column: str, values, labels, *, where: str, positive: bool = True, noun: str = "column",
                 at: str = "rows") -> None:
    """Refuse, in one line naming ``column`` and the first bad ``labels`` (the caller's row labels), values that
    are missing, infinite, non-positive (``positive``) or in the wrong units (:data:`UNITS`: params below
    10,000 or tokens below 1,000 read as millions or billions): a law of them would answer, wrongly."""
    if not len(labels):  # nothing given (an optional column that is all missing): nothing to check
        return
    values = np.asarray(values, dtype=float).reshape(len(labels), -1)
    labels = list(labels)
    bad = np.flatnonzero((~np.isfinite(values) | ((values <= 0) if positive else False)).any(axis=1))
    if bad.size:
        kind = "non-positive or non-finite" if positive else "non-finite"
        raise ValueError(f"{where}: {noun} {column!r} has {kind} values at {at} {[labels[i] for i in bad[:5]]}"
                         f"{f' ({bad.size} in all)' if bad.size > 5 else ''}")
    if column in UNITS:
        bound, cause = UNITS[column]
        low = np.flatnonzero((values < bound).any(axis=1))
        if low.size:
            shown = ", ".join(f"{v:g}" for v in values[low[:3], 0])
            raise ValueError(f"{where}: {noun} {column!r} has values below {bound:,.0f} at {at} "
                             f"{[labels[i] for i in low[:5]]} ({shown}): {cause}")


def check_columns(df: pd.DataFrame, columns, *, where: str, optional=()) -> None:
    """:func:`check_values` on each of ``columns`` that ``df`` has, naming ``df``'s own row labels; in an
    ``optional`` column a missing value (NaN) means "not given" and passes (a schedule law's tokens)."""
    for column in columns:
        if column not in df.columns:
            continue
        raw = df[column]
        values = pd.to_numeric(raw, errors="coerce")  # text reads as missing: refused below, named
        given = raw.notna().to_numpy() if column in optional else np.ones(len(df), dtype=bool)
        check_values(column, values.to_numpy(dtype=float, na_value=np.nan)[given], df.index[given], where=where)


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

    def params_at(self, at: dict[str, float]) -> dict[str, float]:
        """:attr:`params` with a law's constants moved to ``at`` (``Law.constants_at``: a schedule law's size N
        and peak rate, e.g. ``law.reference_point`` of the fitted rows, where ``Fit.params`` quotes a family's);
        :attr:`params` itself is at the law's reference size and rate (1e8, 1e-3)."""
        if not at or self.law.constants_at is None:
            return self.params
        return {k: float(v) for k, v in self.law.natural(self.law.constants_at(self.theta, at)).items()}

    def predict(self, params=None, tokens=None, **inputs) -> np.ndarray:
        """Predicted loss L in nats per token; arguments broadcast like numpy arrays.

        ``params`` may instead be a table: the law's inputs are then read (or derived, e.g. compute's
        FLOPs, su2024's steps = tokens / batch_size) from its columns. A schedule law's rows must lie from
        their warmup's end to their schedule's end (refused otherwise), and a row far from the fitted sizes or
        peak rates is warned of (:func:`~bayeslaw.laws.schedule_terms.warn_outside_fitted`).
        """
        table = None
        if isinstance(params, pd.DataFrame):
            table, params = params, None
            if table.empty:
                raise ValueError("predict: the table has no rows; give one row per target")
            inputs = self.law.columns(table, where="predict")
            check_columns(table, UNITS, where="predict", optional=("tokens",) if self.law.progress == "step" else ())
            if self.law.progress == "step":
                check_forecast_steps(table["step"], table["schedule"], where="predict")
                if (fitted := self.details.get("fitted")) is not None:
                    warn_outside_fitted(inputs["params"], inputs["peak_lr"], fitted["params"], fitted["peak_lr"],
                                        where="predict")
        if params is not None:
            inputs["params"] = params
        if tokens is not None:
            inputs["tokens"] = tokens
        missing = [k for k in self.law.inputs if k not in inputs]
        if missing:
            raise TypeError(f"{self.form} law needs {list(self.law.inputs)}; missing {missing}")
        arrays = {k: np.asarray(inputs[k], dtype=float) for k in self.law.inputs}
        if table is None:
            self._check_arguments(arrays)
        arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
        theta = {k: jnp.asarray(v) for k, v in self.theta.items()}
        return np.asarray(self.law.loss(theta, **arrays))

    def _check_arguments(self, arrays: dict) -> None:
        """Arguments checked as a table's columns are (named, in the schema's units); they must broadcast."""
        try:
            shape = np.broadcast_shapes(*(np.shape(v) for v in arrays.values()))
        except ValueError:
            shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
            raise ValueError(f"predict: the inputs' shapes do not broadcast ({shapes}); give scalars or arrays of "
                             f"one length") from None
        for name, values in arrays.items():
            flat = np.broadcast_to(values, shape).reshape(-1) if shape else values.reshape(1)
            check_values(name, flat, range(flat.size), where="predict", positive=name not in self.law.features,
                         noun="argument", at="positions")

    def to_series(self) -> pd.Series:
        """Parameters (usual and fitting space) plus the objective, for tables."""
        return pd.Series(
            {**self.params, **{f"theta_{k}": v for k, v in self.theta.items()}, "objective": self.objective},
            name=f"{self.form}/{self.method}",
        )


class TooFewPoints(ValueError):
    """Fewer rows than the law's free parameters: no point fit exists."""


def _inputs(df: pd.DataFrame, law: Law) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The law's inputs and the loss, rows in one order (and that order, positions in ``df``)."""
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
    data = {**arrays, "loss": loss}
    # one order of the rows whatever order the table came in: the objective's sum rounds by order, and on a flat
    # valley L-BFGS stops where those last bits lead it (a shuffled table gave another optimum)
    rows = {k for k, v in data.items() if np.ndim(v) >= 1 and len(v) == len(loss)}
    order = np.lexsort([np.asarray(data[k], dtype=float) for k in sorted(rows) if np.ndim(data[k]) == 1])
    return {k: np.asarray(v)[order] if k in rows else v for k, v in data.items()}, order


def _huber_objective(law: Law, data, delta):
    """theta vector -> sum_i w_i Huber_delta(log L_i - log L(inputs_i; theta)); w_i = 0 marks padding."""
    log_y = jnp.log(data["loss"])
    inputs = {k: data[k] for k in law.inputs}

    def objective(vector):
        return jnp.sum(data["weight"] * huber(log_y - law.log_loss(law.unpack(vector), **inputs), delta))

    return objective


# --- the grid's L-BFGS -------------------------------------------------------------------------------------
#
# Each start runs scipy's L-BFGS-B (no bounds), as Besiroglu et al. did, step for step: the direction -H g of
# the last MEMORY (s, y) pairs (H0 = s'y / y'y; a pair with s'y <= eps |s'g| is skipped), the More-Thuente
# line search of MINPACK-2 (dcsrch: sufficient decrease 1e-3, curvature 0.9, xtol 0.1, first step
# 1 / |d| then 1, at most MAXLS trials; a failed search drops the memory and restarts down the gradient,
# or ends the start if the memory was empty already), and its stopping rules; a trial where the objective
# or its gradient is not finite counts as a trial and halves the step. It is not optax's L-BFGS: optax's
# line search is a while loop nested in each iteration, which vmap runs in lockstep, so each iteration
# of a batch costs its longest search (and optax's zoom search stops elsewhere than scipy's). Here a
# start is a state machine that takes exactly one objective-and-gradient evaluation per step of the
# batch (its line search's next trial, or a new start's first point), so no start waits on another's.
# The batch's values sit on the last axis (a start's vector is a column), which XLA vectorises.

MEMORY = 10  # (s, y) pairs: scipy's maxcor
MAXLS = 20  # line-search trials: scipy's maxls
MAXFUN = 15000  # evaluations per start: scipy's maxfun
LS_FTOL, LS_GTOL, LS_XTOL = 1e-3, 0.9, 0.1  # L-BFGS-B's dcsrch constants
STPMAX = 1e10  # L-BFGS-B's largest step, unbounded problem
EPS = float(np.finfo(np.float64).eps)


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2 dcstep, elementwise: the safeguarded cubic / quadratic step and the updated interval."""
    sgnd = dp * jnp.sign(dx)
    theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
    s = jnp.maximum(jnp.maximum(jnp.abs(theta), jnp.abs(dx)), jnp.abs(dp))
    root = (theta / s) ** 2 - (dx / s) * (dp / s)
    # case 1: a higher function value; the minimum is bracketed
    gamma = s * jnp.sqrt(root)
    gamma1 = jnp.where(stp < stx, -gamma, gamma)
    stpc1 = stx + ((gamma1 - dx) + theta) / (((gamma1 - dx) + gamma1) + dp) * (stp - stx)
    stpq1 = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
    stpf1 = jnp.where(jnp.abs(stpc1 - stx) < jnp.abs(stpq1 - stx), stpc1, stpc1 + (stpq1 - stpc1) / 2.0)
    # case 2: a lower value, derivatives of opposite sign; the minimum is bracketed
    gamma2 = jnp.where(stp > stx, -gamma, gamma)
    stpc2 = stp + ((gamma2 - dp) + theta) / (((gamma2 - dp) + gamma2) + dx) * (stx - stp)
    stpq = stp + (dp / (dp - dx)) * (stx - stp)
    stpf2 = jnp.where(jnp.abs(stpc2 - stp) > jnp.abs(stpq - stp), stpc2, stpq)
    # case 3: a lower value, derivatives of the same sign, decreasing in magnitude
    gamma3 = s * jnp.sqrt(jnp.maximum(0.0, root))
    gamma3 = jnp.where(stp > stx, -gamma3, gamma3)
    r3 = ((gamma3 - dp) + theta) / ((gamma3 + (dx - dp)) + gamma3)
    stpc3 = jnp.where((r3 < 0.0) & (gamma3 != 0.0), stp + r3 * (stx - stp), jnp.where(stp > stx, stpmax, stpmin))
    near = jnp.where(jnp.abs(stpc3 - stp) < jnp.abs(stpq - stp), stpc3, stpq)
    near = jnp.where(stp > stx, jnp.minimum(stp + 0.66 * (sty - stp), near), jnp.maximum(stp + 0.66 * (sty - stp), near))
    far = jnp.where(jnp.abs(stpc3 - stp) > jnp.abs(stpq - stp), stpc3, stpq)
    far = jnp.maximum(stpmin, jnp.minimum(stpmax, far))
    stpf3 = jnp.where(brackt, near, far)
    # case 4: a lower value, derivatives of the same sign, not decreasing in magnitude
    theta4 = 3.0 * (fp - fy) / (sty - stp) + dy + dp
    s4 = jnp.maximum(jnp.maximum(jnp.abs(theta4), jnp.abs(dy)), jnp.abs(dp))
    gamma4 = s4 * jnp.sqrt((theta4 / s4) ** 2 - (dy / s4) * (dp / s4))
    gamma4 = jnp.where(stp > sty, -gamma4, gamma4)
    stpc4 = stp + ((gamma4 - dp) + theta4) / (((gamma4 - dp) + gamma4) + dy) * (sty - stp)
    stpf4 = jnp.where(brackt, stpc4, jnp.where(stp > stx, stpmax, stpmin))

    higher, opposite = fp > fx, sgnd < 0.0
    stpf = jnp.where(higher, stpf1, jnp.where(opposite, stpf2, jnp.where(jnp.abs(dp) < jnp.abs(dx), stpf3, stpf4)))
    # the interval: y takes the trial if it is higher, else the old x if the derivatives changed sign
    to_y = higher | opposite
    sty, fy, dy = (jnp.where(higher, new, jnp.where(opposite, old_x, old_y))
                   for new, old_x, old_y in ((stp, stx, sty), (fp, fx, fy), (dp, dx, dy)))
    stx, fx, dx = (jnp.where(higher, old, new) for old, new in ((stx, stp), (fx, fp), (dx, dp)))
    return stx, fx, dx, sty, fy, dy, stpf, brackt | to_y


def _dcsrch(ls, stp, f, g):
    """MINPACK-2 dcsrch, elementwise, after an evaluation (f, g = value and slope at step ``stp``):
    (new line-search state, next trial step, whether the search has ended: converged or a warning)."""
    ftest = ls["finit"] + stp * ls["gtest"]
    stage2 = ls["stage2"] | ((f <= ftest) & (g >= 0.0))
    brackt, stmin, stmax = ls["brackt"], ls["stmin"], ls["stmax"]
    ended = ((brackt & ((stp <= stmin) | (stp >= stmax)))
             | (brackt & (stmax - stmin <= LS_XTOL * stmax))
             | ((stp == STPMAX) & (f <= ftest) & (g <= ls["gtest"]))
             | ((stp == 0.0) & ((f > ftest) | (g >= ls["gtest"])))
             | ((f <= ftest) & (jnp.abs(g) <= LS_GTOL * -ls["ginit"])))
    # first stage, a lower value without sufficient decrease: step on the modified function f - gtest * step
    modified = ~stage2 & (f <= ls["fx"]) & (f > ftest)
    shift = jnp.where(modified, ls["gtest"], 0.0)
    stx, fx, gx, sty, fy, gy, stp_new, brackt = _dcstep(
        ls["stx"], ls["fx"] - ls["stx"] * shift, ls["gx"] - shift, ls["sty"], ls["fy"] - ls["sty"] * shift,
        ls["gy"] - shift, stp, f - stp * shift, g - shift, brackt, stmin, stmax)
    fx, fy, gx, gy = (jnp.where(modified, v + w, v) for v, w in
                      ((fx, stx * shift), (fy, sty * shift), (gx, shift), (gy, shift)))
    # bisect when the bracket did not shrink enough
    width, width1 = ls["width"], ls["width1"]
    stp_new = jnp.where(brackt & (jnp.abs(sty - stx) >= 0.66 * width1), stx + 0.5 * (sty - stx), stp_new)
    width1 = jnp.where(brackt, width, width1)
    width = jnp.where(brackt, jnp.abs(sty - stx), width)
    stmin = jnp.where(brackt, jnp.minimum(stx, sty), stp_new + 1.1 * (stp_new - stx))
    stmax = jnp.where(brackt, jnp.maximum(stx, sty), stp_new + 4.0 * (stp_new - stx))
    stp_new = jnp.clip(stp_new, 0.0, STPMAX)
    stuck = brackt & ((stp_new <= stmin) | (stp_new >= stmax) | (stmax - stmin <= LS_XTOL * stmax))
    stp_new = jnp.where(stuck, stx, stp_new)
    new = dict(brackt=brackt, stx=stx, fx=fx, gx=gx, sty=sty, fy=fy, gy=gy, stmin=stmin, stmax=stmax, width=width,
               width1=width1)
    new = {k: jnp.where(ended, ls[k], v) for k, v in new.items()}
    return dict(new, stage2=stage2), stp_new, ended


# XLA fuses elementwise code into loops that recompute a shared input for each output; the state
# machine's values feed many outputs, so they are computed once (materialised) at these barriers.
_keep = jax.lax.optimization_barrier


def _dot(a, b):
    """Dot products of the batch's vectors (the first axis: a start's vector, the last: the batch)."""
    return jnp.sum(a * b, axis=0)


def _direction(g, S, Y, rho, theta):
    """-H g by the two-loop recursion: pairs newest first, H0 = 1 / theta (= s'y / y'y of the newest); an
    empty slot (rho = 0) is a no-op."""
    def newest_first(q, pair):
        s, y, rho_i = pair
        a = rho_i * _dot(s, q)
        return q - a * y, a

    def oldest_first(r, pair):
        s, y, rho_i, a = pair
        return r + s * (a - rho_i * _dot(y, r)), None

    q, alphas = jax.lax.scan(newest_first, g, (S, Y, rho))
    r, _ = jax.lax.scan(oldest_first, q / theta, (S, Y, rho, alphas), reverse=True)
    return -r


def _blank_state(x):
    """The batch's state before the first evaluation (``fresh``) of its starts ``x`` (parameter, start)."""
    (k, b), zero, zero_i = x.shape, jnp.zeros(x.shape[1:]), jnp.zeros(x.shape[1:], dtype=jnp.int32)
    false = jnp.zeros(b, dtype=bool)
    ls = {name: zero for name in ("finit", "ginit", "gtest", "stx", "fx", "gx", "sty", "fy", "gy", "stmin",
                                   "stmax", "width", "width1")}
    return dict(ls, stage2=false, brackt=false, x=x, f=zero, g=jnp.zeros_like(x), t=x, r=jnp.zeros_like(x),
                d=jnp.zeros_like(x), stp=zero, ifun=zero_i, S=jnp.zeros((MEMORY, k, b)), Y=jnp.zeros((MEMORY, k, b)),
                rho=jnp.zeros((MEMORY, b)), theta=jnp.ones(b), col=zero_i, iter=zero_i, nfev=zero_i,
                fresh=jnp.ones(b, dtype=bool), done=false)


def _advance(st, x_new, f_new, g_new, ftol, gtol, max_iter):
    """One start's L-BFGS-B after one evaluation at ``x_new`` (its first point if ``fresh``, else its
    line search's trial): the state that asks for the next evaluation, or ``done``."""
    fresh = st["fresh"]
    nfev = st["nfev"] + 1
    finite = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new), axis=0)
    gd = _dot(g_new, st["d"])
    ls, stp_next, ended = _keep(_dcsrch(st, st["stp"], f_new, gd))
    accept = ~fresh & finite & ended
    # a non-finite trial counts as one and halves the step towards the search's best
    stp_next = jnp.where(finite, stp_next, st["stx"] + 0.5 * (st["stp"] - st["stx"]))
    ls = {k: jnp.where(finite, v, st[k]) for k, v in ls.items()}
    ifun = st["ifun"] + 1
    searching = ~fresh & ~accept
    failed = searching & (ifun >= MAXLS)
    searching = searching & ~failed

    # the point the next search starts from: the new one, or on a failed search the one before it
    new_point = fresh | accept
    x = jnp.where(new_point, x_new, st["t"])
    f = jnp.where(new_point, f_new, st["finit"])
    g = jnp.where(new_point, g_new, st["r"])
    accept, searching, failed, x, f, g = _keep((accept, searching, failed, x, f, g))
    iters = st["iter"] + accept
    small_grad = jnp.max(jnp.abs(g), axis=0) <= gtol
    small_decrease = st["finit"] - f <= ftol * jnp.maximum(jnp.maximum(jnp.abs(st["finit"]), jnp.abs(f)), 1.0)
    done = ((fresh & (small_grad | ~finite))
            | (accept & (small_grad | small_decrease | (iters >= max_iter) | (nfev > MAXFUN)))
            | (failed & (st["col"] == 0)))

    # the memory: add the pair of an accepted step; drop all after a failed search
    stp = st["stp"]
    dr, ddum = (gd - st["ginit"]) * stp, -st["ginit"] * stp
    y = g_new - st["r"]
    add = accept & (dr > EPS * ddum)
    shift_in = lambda new, old: jnp.where(add, jnp.concatenate([new[None], old[:-1]]), old)  # noqa: E731
    S, Y, rho = shift_in(stp * st["d"], st["S"]), shift_in(y, st["Y"]), shift_in(1.0 / dr, st["rho"])
    theta = jnp.where(add, _dot(y, y) / dr, st["theta"])
    col = jnp.where(add, jnp.minimum(st["col"] + 1, MEMORY), st["col"])

    def forget(keep, S, Y, rho, theta, col):
        return (jnp.where(keep, S, 0.0), jnp.where(keep, Y, 0.0), jnp.where(keep, rho, 0.0),
                jnp.where(keep, theta, 1.0), jnp.where(keep, col, 0))

    S, Y, rho, theta, col = _keep(forget(~failed, S, Y, rho, theta, col))
    # a new search: from a new point, or after a failed one (down the gradient, the memory dropped)
    d = _direction(g, S, Y, rho, theta)
    gd0 = _dot(g, d)
    d, gd0, done = _keep((d, gd0, done))
    uphill = gd0 >= 0.0  # no descent direction: as L-BFGS-B, drop the memory, or stop if it is empty
    done = done | ((fresh | accept | failed) & uphill & (col == 0))
    S, Y, rho, theta, col = forget(~uphill, S, Y, rho, theta, col)
    d = jnp.where(uphill, -g, d)
    gd0 = jnp.where(uphill, -_dot(g, g), gd0)
    stp0 = jnp.where(iters == 0, jnp.minimum(1.0 / jnp.sqrt(_dot(d, d)), STPMAX), 1.0)
    start = ~searching & ~done
    d, gd0, stp0, start = _keep((d, gd0, stp0, start))
    fresh_ls = dict(finit=f, ginit=gd0, gtest=LS_FTOL * gd0, stx=0.0, fx=f, gx=gd0, sty=0.0, fy=f, gy=gd0,
                    stmin=0.0, stmax=stp0 + 4.0 * stp0, width=STPMAX, width1=STPMAX / 0.5,
                    stage2=False, brackt=False)
    new = {k: jnp.where(start, v, ls[k] if k in ls else st[k]) for k, v in fresh_ls.items()}
    new.update(
        x=x, f=f, g=g,
        t=jnp.where(start, x, st["t"]), r=jnp.where(start, g, st["r"]), d=jnp.where(start, d, st["d"]),
        stp=jnp.where(start, stp0, stp_next), ifun=jnp.where(start, 0, ifun),
        S=jnp.where(searching, st["S"], S), Y=jnp.where(searching, st["Y"], Y),
        rho=jnp.where(searching, st["rho"], rho), theta=jnp.where(searching, st["theta"], theta),
        col=jnp.where(searching, st["col"], col),
        iter=iters, nfev=nfev, fresh=jnp.zeros_like(fresh), done=done,
    )
    return new


@partial(jax.jit, static_argnames=("law",))
def _grid_stage(law: Law, slots, index, out, starts, queue_end, next_start, data, delta, ftol, gtol, max_iter,
                exit_at):
    """Advance the batch ``slots`` one evaluation per step until no start is left running, or the queue
    ``starts[:queue_end]`` is empty and at most ``exit_at`` remain (the caller then packs them into a
    smaller batch). A slot whose start ends writes its result to ``out`` (rows of ``starts``) and takes
    the next start of the queue; ``index`` holds each slot's start (n = len(starts): none)."""
    objective = _huber_objective(law, data, delta)
    value_and_grad = jax.vmap(jax.value_and_grad(objective))
    n = starts.shape[0]

    def refill(slots, index, next_start):
        free = index >= n
        queued = next_start + jnp.cumsum(free, dtype=jnp.int32) - 1
        take = free & (queued < queue_end)
        blank = _blank_state(starts[jnp.minimum(queued, n - 1)].T)
        slots = jax.tree.map(lambda b, s: jnp.where(take, b, s), blank, slots)
        return slots, jnp.where(take, queued, index), next_start + jnp.sum(take, dtype=jnp.int32)

    def keep_going(carry):
        _, index, _, next_start = carry
        running = jnp.sum(index < n)
        return (running > 0) & ((next_start < queue_end) | (running > exit_at))

    def step(carry):
        slots, index, out, next_start = carry
        running = index < n
        trial = jnp.where(slots["fresh"], slots["x"], slots["t"] + slots["stp"] * slots["d"])
        f, g = value_and_grad(trial.T)
        new = _advance(slots, trial, f, g.T, ftol, gtol, max_iter)
        new = jax.tree.map(lambda a, b: jnp.where(running, a, b), new, slots)
        rows = jnp.where(running & new["done"], index, n)  # n: dropped
        out = {"x": out["x"].at[rows].set(new["x"].T, mode="drop"), "f": out["f"].at[rows].set(new["f"], mode="drop"),
               "g": out["g"].at[rows].set(jnp.sqrt(_dot(new["g"], new["g"])), mode="drop"),
               "iter": out["iter"].at[rows].set(new["iter"], mode="drop")}
        new, index, next_start = refill(new, jnp.where(rows < n, n, index), next_start)
        return new, index, out, next_start

    slots, index, next_start = refill(slots, index, next_start)
    slots, index, out, next_start = jax.lax.while_loop(keep_going, step, (slots, index, out, next_start))
    return slots, index, out, next_start


def _pad_points(data: dict) -> dict:
    """Pad the points to a power of two (>= 64) with zero weight, so fits of different sizes share compilations."""
    n = len(data["loss"])
    size = max(64, 1 << int(np.ceil(np.log2(n))))
    # padded rows hold ones (a feature matrix's padded row a row of ones): finite, and weighted out
    padded = {k: np.concatenate([np.asarray(v, dtype=float), np.ones((size - n,) + np.shape(v)[1:])])
              for k, v in data.items()}
    padded["weight"] = np.concatenate([np.ones(n), np.zeros(size - n)])
    return {k: jnp.asarray(v) for k, v in padded.items()}


def _largest_batch(rows: int) -> int:
    """The most starts advanced together on ``rows`` (padded) points: GRID_ELEMENTS (start, point) pairs,
    at least MIN_BATCH."""
    return max(MIN_BATCH, GRID_ELEMENTS // rows)


def _run_grid(law: Law, starts, queue_end: int, size: int, data, delta, ftol, gtol, max_iter):
    """L-BFGS-B from ``starts[:queue_end]`` in batches of ``size`` slots, then smaller ones: the results
    (rows of ``starts``; the others untouched) and the last batch size."""
    n, k = starts.shape
    out = {"x": starts, "f": jnp.full((n,), jnp.nan), "g": jnp.full((n,), jnp.nan),
           "iter": jnp.zeros((n,), dtype=jnp.int32)}
    slots = _blank_state(jnp.zeros((k, size)))
    index = jnp.full((size,), n, dtype=jnp.int32)  # the start each slot runs; n: none
    next_start = jnp.zeros((), dtype=jnp.int32)
    args = (data, delta, ftol, gtol, max_iter)
    while True:
        smaller = max(MIN_BATCH, size // 4)
        exit_at = smaller if smaller < size else 0
        slots, index, out, next_start = _grid_stage(law, slots, index, out, starts, queue_end, next_start, *args,
                                                    exit_at)
        running = np.flatnonzero(np.asarray(index) < n)
        if running.size == 0:
            return out, size
        # pack the stragglers into a smaller batch
        size = min(size, max(MIN_BATCH, 1 << int(np.ceil(np.log2(running.size)))))
        rows = np.concatenate([running, np.full(size - running.size, running[0])])
        slots = jax.tree.map(lambda leaf: leaf[..., rows], slots)
        index = jnp.asarray(np.where(np.arange(size) < running.size, np.asarray(index)[rows], n), dtype=jnp.int32)


def _best_distinct(x: np.ndarray, f: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` lowest finite ``f`` whose ``x`` differ (by more than 1e-8 relative)."""
    chosen = []
    for i in np.argsort(np.where(np.isfinite(f), f, np.inf)):
        if len(chosen) == k or not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(x[i] - x[j]) / np.maximum(1.0, np.abs(x[j]))) > 1e-8 for j in chosen):
            chosen.append(i)
    return np.array(chosen, dtype=int)


def grid_lbfgs(law: Law, starts, data, *, delta=HUBER_DELTA, max_iter=1000, ftol=1e7 * EPS, gtol=1e-5, polish=0):
    """scipy's L-BFGS-B (unbounded) from every row of ``starts`` on the summed Huber loss of log residuals.

    Each start runs the algorithm of ``scipy.optimize.minimize(method="L-BFGS-B")`` with its default
    options (which Besiroglu et al. used; see the notes above ``MEMORY``) and stops as it does: when
    the relative decrease of the objective falls to ``ftol``, when the largest gradient component falls
    to ``gtol``, after ``max_iter`` iterations, or when a line search fails with an empty memory.

    With ``polish`` > 0 (default 0: the protocol's answer is the best end of its runs, and the point
    fits keep it), the ``polish`` lowest distinct end points then run on (a fresh L-BFGS-B from each, for at most
    ``max_iter`` more iterations) until an iteration no longer lowers the objective; each keeps the
    lower end. ``ftol`` stops a start where the objective still falls by ~1e-9 relative per step, so
    the grid's best end lies ~1e-9 above its basin's minimum, by an amount that rounding decides (numpy
    and XLA sum in different orders): polished, it reaches the minimum, and so at least the best of
    scipy's own runs. Where the objective is flat along a valley (a family seen at 2-3 sizes, an exponent
    that may go below 0), the polish walks on down the valley and its answer can move far from the
    unpolished one (``benchmarks/bench_point_grid.py --cells``), so it is not the default.

    The starts run in a batch of at most ``_largest_batch`` slots (GRID_ELEMENTS (start, point) pairs:
    memory stays bounded whatever the number of rows or starts), one evaluation per slot per step; a
    slot whose start ends takes the next start. Once all have started, the last few are packed into a
    smaller batch (a power of two, at least MIN_BATCH; each size compiles once), so the stragglers do not
    drag a wide batch along.

    Returns (final theta vectors, objective values, gradient norms, iterations), one per start.
    """
    starts = jnp.asarray(starts, dtype=jnp.float64)
    data = _pad_points(data)
    n = starts.shape[0]
    size = min(n, _largest_batch(len(data["weight"])))
    out, size = _run_grid(law, starts, n, size, data, delta, ftol, gtol, max_iter)
    out = {k: np.array(v) for k, v in out.items()}
    chosen = _best_distinct(out["x"], out["f"], min(polish, size))
    if chosen.size:
        # the same shapes as the grid's last batch, so its compilation serves
        queue = starts.at[: chosen.size].set(out["x"][chosen])
        more, _ = _run_grid(law, queue, chosen.size, size, data, delta, 0.0, 0.0, max_iter)
        more = {k: np.asarray(v)[: chosen.size] for k, v in more.items()}
        lower = more["f"] < out["f"][chosen]
        for key in ("x", "f", "g"):
            out[key][chosen[lower]] = more[key][lower]
        out["iter"][chosen[lower]] += more["iter"][lower]
    return tuple(jnp.asarray(out[key]) for key in ("x", "f", "g", "iter"))


def _fit_epoch(law: Law, data: dict, *, delta: float, max_iter: int, starts=None, polish: int = 0) -> PointFit:
    starts = law.grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    # numpy in: grid_lbfgs pads the points on the host and moves starts and points to the device itself
    x, values, grad_norms, iters = grid_lbfgs(law, starts, data, delta=delta, max_iter=max_iter, polish=polish)
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
            "polish": polish,
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

    # run eagerly, not under jax.jit: curve_fit differentiates by finite differences, and on sparse
    # families its answer moves with the last bits of the law's value (the law jitted, equal to it within
    # 1e-15, moved two of real_targets.py's 24 forecasts: overtrain-rpj 412M 1.9% -> 11.1% off, T5-Pile
    # 2.85B 10.3% -> 14.8%); eager, the baseline is the one every figure here was measured with
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


def _fit_path(law: Law, df: pd.DataFrame, data: dict) -> PointFit:
    import optax  # here only: the package's import would pay for it on every start

    path = law.path
    start = {k: float(v) for k, v in path.start(df, data).items()}
    names = tuple(path.rates)
    inputs = {k: jnp.asarray(data[k]) for k in law.inputs}
    log_y = jnp.log(jnp.asarray(data["loss"]))

    def theta_of(p):
        theta = law.from_natural({k: p[k] for k in names})
        return {n: theta[n] for n in law.theta_names}

    @jax.jit
    def value_and_grad(p):
        return jax.value_and_grad(lambda q: jnp.sum(huber(log_y - law.log_loss(theta_of(q), **inputs))))(p)

    # AdamW with a rate per parameter, p <- p - rate (adam + weight_decay p), as torch.optim.AdamW's groups
    optimizer = optax.chain(optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8), optax.add_decayed_weights(path.weight_decay))
    rates = {k: jnp.asarray(path.rates[k]) for k in names}
    p = {k: jnp.asarray(start[k]) for k in names}
    state = optimizer.init(p)
    best, best_value, lowest, stall, stop = None, np.inf, np.inf, 0, "steps"
    for step in range(path.steps):
        value, grad = value_and_grad(p)
        value = float(value)
        if not np.isfinite(value):
            stop = "non-finite objective"
            break
        updates, state = optimizer.update(grad, state, p)
        p = {k: p[k] - rates[k] * updates[k] for k in names}
        if value < lowest:
            lowest, stall = value, 0
        else:
            stall += 1
        if step > path.patience and stall >= path.patience:
            stop = "patience"
            break
        if float(jnp.sqrt(sum(jnp.sum(g**2) for g in grad.values()))) < path.grad_tol:
            stop = "gradient"
            break
        if value < best_value:  # the parameters after the step whose (pre-step) objective was lowest, as theirs
            best_value, best = value, {k: float(v) for k, v in p.items()}
    chosen = best if best is not None else {k: start[k] for k in names}
    return PointFit(
        form=law.name,
        method="adamw",
        theta={n: float(v) for n, v in theta_of(chosen).items()},
        objective=float(best_value),
        n_points=len(data["loss"]),
        converged=best is not None,
        details={"start": start, "steps": step + 1, "stop": stop, "source": path.source},
    )


METHODS = get_args(PointMethod)


class EarlyCheckpointWarning(UserWarning):
    """A point fit given the first checkpoints of training curves, which the published protocols leave out."""


def _warn_early_checkpoints(df: pd.DataFrame, law: Law) -> None:
    """Warn where a law of tokens is fitted to checkpoints at or before the Hitchhiker's 10B-token cut of runs
    with curves: the protocols fit final losses or the later checkpoints, and the steep start of a curve pulls
    the fit to a degenerate law (E near 0, a small size exponent). Final-loss tables (one row per run) pass."""
    if law.progress != "tokens" or not {"run", "tokens"} <= set(df.columns):
        return
    early = (df["tokens"].to_numpy(dtype=float) <= DEFAULT_MIN_TOKENS) & df["run"].duplicated(keep=False).to_numpy()
    if early.any():
        runs = df.loc[early, "run"].unique()
        warnings.warn(f"fit_point: {int(early.sum())} of {len(df)} rows are checkpoints at or before "
                      f"{DEFAULT_MIN_TOKENS:.0e} tokens of {len(runs)} run(s) with curves (e.g. {runs[0]!r}), which "
                      "the published protocols leave out; cut them first (bayeslaw.data.cut_early(df), as bl.fit "
                      "and `bayeslaw fit-point` do)", EarlyCheckpointWarning, stacklevel=3)


def fit_point(
    df: pd.DataFrame,
    form: str | Law = "chinchilla",
    method: PointMethod = "epoch",
    *,
    delta: float = HUBER_DELTA,
    max_iter: int = 1000,
    starts=None,
    fixed: dict[str, float] | None = None,
    polish: int = 0,
    warn_early: bool = True,
    across_families: bool = False,
) -> PointFit:
    """Fit one law to all rows of ``df`` by a published point-estimate protocol.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows with the law's input columns (``params``, ``tokens`` for chinchilla) and ``loss``.
    form : str, default "chinchilla"
        A law from :data:`bayeslaw.laws.LAWS` (chinchilla, kaplan, kaplan_e, compute, su2024); its
        inputs are read or derived from the table by ``Law.columns``.
    method : {"epoch", "hitchhiker", "adamw"}, default "epoch"
        See the module docstring. ``adamw`` (a law's published optimiser path, one model size) reproduces
        a paper's figures on its own data; ``epoch``, the objective's minimum, is the robust default.
    delta, max_iter, starts
        ``epoch`` only: Huber delta on log residuals, L-BFGS iteration cap, and starting
        points (rows in ``law.theta_names`` order; default the published grid).
    fixed : dict, optional
        Parameters held at these values (fitting space, e.g. ``{"a": 6.2, "alpha": 0.34}``)
        while the rest are fitted: the Hitchhiker's Guide's way to fit a family seen through
        one model with A and alpha borrowed from other families. Without it, a table of one model size
        is warned of: a final-loss law's size term is not identified there.
    warn_early : bool, default True
        Warn of checkpoints at or before the early cut (the published protocols leave them out). False for
        rows a Bayesian fit kept as its own cut chose them (its start, and point fits beside it).
    across_families : bool, default False
        True: one law for the rows of several families, on purpose (a start, a transfer's donor). Without it
        such a table is warned of: each family has its own law (:func:`~bayeslaw.evaluation.point_fits_by_family`).
    polish : int, default 0
        ``epoch`` only: run the ``polish`` best distinct ends of the grid on to their basin's minimum
        (see :func:`grid_lbfgs`). The default keeps the published protocol's answer: scipy's L-BFGS-B
        stops once a step lowers the objective by less than ~2.2e-9, absolute where the objective is
        below 1 (Huber objectives usually are), which can be short of the minimum in a flat valley.

    Returns
    -------
    PointFit
        ``.params`` (E, A, B, alpha, beta), ``.predict(params, tokens)``.
    """
    law = get_law(form)
    if isinstance(polish, bool) or not isinstance(polish, (int, np.integer)) or polish < 0:
        raise ValueError(f"fit_point: polish={polish!r}; need a whole number of grid ends >= 0")
    if polish and method != "epoch":
        raise ValueError(f"fit_point: polish={polish} runs the epoch grid's best ends on; method={method!r} has no grid")
    # the law's input columns and loss are all a point fit reads: no table schema is asked for
    df = drop_copies(df)  # a branch's copy of its parent's checkpoints counts once
    if "run" in df.columns:
        one_metric_per_run(df, where="fit_point")
    if law.progress == "step" and "run" in df.columns:
        run_schedules(df, where="fit_point")  # each run's schedule parses and covers its checkpoints, named if not
        check_logged_lr(df, where="fit_point")
    if warn_early:
        _warn_early_checkpoints(df, law)
    if not across_families and "family" in df.columns and df["family"].nunique() > 1:
        # one law through several families' curves is none of theirs (the demo's beta: 0.78 across three, 0.33 each)
        names = sorted(map(str, df["family"].unique()))
        warnings.warn(f"fit_point: the table holds {len(names)} families ({', '.join(names[:5])}"
                      f"{', ...' if len(names) > 5 else ''}) and gets one law for all of them; fit each apart "
                      f"(bayeslaw.evaluation.point_fits_by_family beside a Bayesian fit, or a groupby), or pass "
                      f"across_families=True where one law is meant", UserWarning, stacklevel=2)
    if fixed is None and law.progress == "tokens" and "params" in law.columns_needed and "params" in df.columns \
            and df["params"].nunique() == 1:
        # one size: the size term's constants trade off freely, and the optimiser's stop reports made-up ones
        warnings.warn(f"fit_point: every row is of one model size (N = {float(df['params'].iloc[0]):.3g}): the law's "
                      f"size term is not identified, so its constants in N (e.g. A, alpha) are wherever the optimiser "
                      f"stopped; fix them from other families (fixed=, the Hitchhiker's one-model transfer) or add "
                      f"sizes", UserWarning, stacklevel=2)
    if method == "adamw":  # a path fits one size (Luo et al. fit each model alone); the size slopes need the grid
        sizes = df["params"].nunique() if "params" in df.columns else 1
        if law.path is None:
            raise ValueError(f"method='adamw' follows a law's published optimiser path; the {law.name} law has none "
                             f"(forms with one: {forms(lambda law: law.path)}): use method='epoch'")

        def unfixed(slopes):  # the path's held slopes that the caller has not fixed
            return {k: v for k, v in slopes.items() if k in law.theta_names and k not in (fixed or {})}

        held_size, held_rate = (unfixed(law.held_alone.get(column, {})) for column in ("params", "peak_lr"))
        if held_size and sizes > 1:
            raise ValueError(f"method='adamw' fits one model size, as {law.path.source} do; the table has {sizes} "
                             f"(column 'params'): fit each size apart, or use method='epoch' for the size slopes")
        # held at 0 on a sweep of peak rates, the rate slopes would fit it with one set of constants without a
        # word (the schedule inputs are cached, so reading them here costs nothing later)
        if held_rate:
            rates = np.unique(np.asarray(law.columns(df, where="fit_point")["peak_lr"], dtype=float))
            if len(rates) > 1:
                raise ValueError(f"method='adamw' fits one peak learning rate, as {law.path.source} do; the table's "
                                 f"runs have {len(rates)} (from their schedules: {', '.join(f'{r:g}' for r in rates[:6])}"
                                 f"{', ...' if len(rates) > 6 else ''}): fit each rate apart, or use method='epoch' "
                                 f"for the rate slopes")
        held = {**held_size, **held_rate}
    else:
        # slopes in N or in the peak rate on a table of one size or one rate: flat directions of the
        # objective, where the optimiser would stop anywhere and carry the constants it reports with it
        held = {k: v for k, v in law.held_in(df, where="fit_point").items() if k not in (fixed or {})}
    fixed = {**held, **(fixed or {})} or None
    if fixed:
        free = law.fix(fixed)
        starts = None if starts is None else np.asarray(starts, dtype=float)
        if starts is not None and starts.shape[-1] == len(law.theta_names):
            # starts over all of the law's parameters: keep the free columns, each distinct start once
            keep = [law.theta_names.index(n) for n in free.theta_names]
            starts = np.unique(starts[:, keep], axis=0)
        result = fit_point(df, free, method, delta=delta, max_iter=max_iter, starts=starts, polish=polish,
                           fixed={}, warn_early=False, across_families=True)  # warned above
        theta = {**result.theta, **{k: float(v) for k, v in fixed.items()}}
        return replace(result, form=law.name, theta={n: theta[n] for n in law.theta_names},
                       details={**result.details, "fixed": dict(fixed)})
    data, order = _inputs(df, law)
    df = df.iloc[order]  # the rows in data's order: a path reads both
    if method == "epoch":
        result = _fit_epoch(law, data, delta=delta, max_iter=max_iter, starts=starts, polish=polish)
    elif method == "hitchhiker":
        result = _fit_hitchhiker(law, data)
    elif method == "adamw":
        result = _fit_path(law, df, data)
    else:
        raise ValueError(f"unknown method {method!r}; known methods: {list(METHODS)}")
    if law.progress != "step":
        return result
    # the sizes and peak rates a schedule law's slopes were measured at, for predict's warnings
    fitted = {c: (float(np.min(data[c])), float(np.max(data[c]))) for c in ("params", "peak_lr")}
    return replace(result, details={**result.details, "fitted": fitted})
