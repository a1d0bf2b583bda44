"""What schedule-aware laws read of a learning-rate schedule, precomputed per checkpoint.

For a run with learning rate eta_k at step k (k = 1..t, warmup included) and a checkpoint at step t:

    S1(t)  = sum_{k<=t} eta_k                                  the area under the schedule
    S2(t)  = sum_{k<=t} m_k,  m_k = lam m_{k-1} + (eta_{k-1} - eta_k)     the annealing area (Tissue et al.
             2024: the decreases of the rate, smoothed by momentum lam)
    LD(t)  = B sum_{k<=t} d_k G(eta_k^-gamma S_k(t)),  d_k = eta_{k-1} - eta_k,  S_k(t) = sum_{k<=j<=t} eta_j
             the multi-power law's loss drop (Luo et al. 2025), G(x) = 1 - (C x + 1)^-beta

S1 and S2 do not depend on the law's parameters: one number per checkpoint. LD's summand does (gamma,
C, beta sit inside a power), and the sum has a term per step where the rate changes: about 10^8 terms
over the multipower data, too many per NUTS gradient. So it is a quadrature over bins of at most
``bin_steps`` steps in which log eta moves by at most MAX_LOG_CHANGE, one way: within bin j, the steps
k <= t are summed as one term with weight W_j = sum d_k and the change-weighted means of eta_k and of
S_k(t),

    LD(t) ~ B sum_j W_j(t) G(etabar_j(t)^-gamma Sbar_j(t)),

exact where a bin holds one change (a step change of the rate) and second order in the bin width
elsewhere. G is curved where S_k(t) is small, i.e. for the steps just before the checkpoint, so each
checkpoint's last ~870 steps are split into bins of its own that narrow towards it (from 4 steps); the rest
share bins (``benchmarks/schedule_laws.py`` reports the error against the per-step sum; within 1e-4 nats
at checkpoints after the warmup, where the laws are fitted, a short warmup's end and a decay's first steps
included). LD counts every
change of the rate, as Luo et al.'s released fitting code does: the warmup's rises (d_k < 0) enter as a
negative drop, about B eta_peak once G saturates, which is part of what their published constants fit
(without it those constants put every curve of their data about 3% low). The warmup's bins narrow
towards its end (its log rate spans orders of magnitude, but G is near 1 far from a checkpoint). The
design is a (checkpoint, bin) matrix per input; padded bins have W = 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import warnings

import numpy as np

import jax.numpy as jnp

from bayeslaw.data.schedules import Schedule
from bayeslaw.laws.base import ExtrapolationWarning, Sampling

__all__ = ["ANNEALING_MOMENTUM", "BIN_STEPS", "LR_REF", "LR_SLOPE_PRIORS", "SIZE_REF", "annealing_area", "at_peak_lr",
           "at_size", "check_forecast_steps", "drop_design", "drop_exact", "lr_area", "size_sampling", "schedule_inputs",
           "warn_outside_fitted"]

BIN_STEPS = 200  # at most this many steps per quadrature bin of the loss-drop sum
MAX_LOG_CHANGE = 0.01  # and at most this fall of log eta within a bin (a jump is a bin of its own: exact)
# the warmup's bins: WARMUP_FIRST_BIN steps at its end, each bin before WARMUP_BIN_GROWTH times wider (at most
# bin_steps). G is curved in S_k(t) where S is small, i.e. for the warmup's last steps seen from the first
# checkpoints after it; far from them it is near 1 and wide bins are exact enough
WARMUP_FIRST_BIN = 4
WARMUP_BIN_GROWTH = 1.3
RATE_FLOOR = 1e-6  # of the peak: the smallest rate the loss-drop design uses (eta^-gamma stays finite)
ANNEALING_MOMENTUM = 0.999  # lam of Tissue et al. 2024's annealing area (their value)
SIZE_REF = 1e8  # parameters: a schedule law's constants are quoted at this size (where its runs are)
LR_REF = 1e-3  # and at this peak learning rate
#: how far (a factor) a forecast's model size may lie outside the fitted sizes before a schedule law warns: its
#: constants are linear in log N, a description near the fitted sizes (at_size)
SIZE_REACH = float(np.e)
PEAK_LR_RTOL = 0.01  # a peak rate within 1% of a fitted one is that rate


#: Normal prior (centre, scale, prior mean of the spread across families) of the term both schedule laws
#: share, L0 + A S1^-alpha, and of its slopes in log N; each law puts its own coordinates between the two,
#: in its coordinate order. Centred on Luo et al.'s 25M and 100M fits (L0 2.8-3.2, A 0.5-0.6, alpha 0.45-0.51).
POWER_PRIORS = {
    "l0": (float(np.log(2.8)), 0.5, 0.2),
    "a": (float(np.log(0.5)), 1.0, 0.5),
    "log_alpha": (float(np.log(0.5)), 0.5, 0.3),
}
POWER_SLOPE_PRIORS = {
    "l0_n": (-0.05, 0.1, 0.05),
    "a_n": (0.0, 0.3, 0.1),
    "alpha_n": (0.0, 0.1, 0.05),
}
# the power term's slopes in log peak rate, between two limits: the loss reads the rate's area exactly
# (0) or the steps alone (A ~ eta^alpha: a_lr near 0.5); centred between them
LR_SLOPE_PRIORS = {
    "l0_lr": (0.0, 0.1, 0.05),
    "a_lr": (0.25, 0.3, 0.1),
    "alpha_lr": (0.0, 0.2, 0.1),
}


def at_size(theta, params, varying: tuple[str, ...]) -> dict:
    """The law's log-constants at N parameters: k(N) = k + k_n log(N / SIZE_REF) for each k in ``varying``.

    The published laws are fits of one size; over sizes their constants move with N. Linear in log N is
    a local description, for sizes near the fitted ones (log L0 -> -inf as N -> inf): forecasting far
    beyond them in N is the final-loss laws' job.
    """
    x = jnp.log(jnp.asarray(params) / SIZE_REF)
    return {**theta, **{k: theta[k] + theta[f"{k}_n"] * x for k in varying}}


def at_peak_lr(theta, peak_lr, varying: tuple[str, ...], exponents: tuple[str, ...] = ()) -> dict:
    """The law's constants at a run's peak learning rate: k(eta) = k + k_lr log(eta / LR_REF) for each
    log-constant k in ``varying``, and x(eta) = x (eta / LR_REF)^x_lr for each exponent x in ``exponents``.

    S1 and S2 read the rate's absolute value, yet a law fitted at one peak rate does not carry to
    another: swept over peak rates, a longer area at a hotter rate buys less than the law says, and a
    cooldown's drop grows more slowly than the rate (C falls with it). Power laws in eta, as in N. An
    exponent scales rather than shifts: the models sample it as log x, and at one peak rate its slope
    then trades against log x along a straight ridge, which NUTS' dense mass matrix takes in its stride
    (a shift bends that ridge: 8 times the leapfrog steps on one-rate data).
    """
    x = jnp.log(jnp.asarray(peak_lr) / LR_REF)
    return {**theta, **{k: theta[k] + theta[f"{k}_lr"] * x for k in varying},
            **{k: theta[k] * jnp.exp(theta[f"{k}_lr"] * x) for k in exponents}}


def size_sampling(priors: Mapping[str, tuple[float, float, float]], theta_names: tuple[str, ...],
                  slopes: Iterable[str] = ()) -> Sampling:
    """How the Bayesian models sample a schedule law: its own parameters, each exponent x as ``log_x``
    (positive: a longer or hotter schedule never raises the loss). ``priors`` is keyed by the coordinates.

    The families' spreads of the law's constants are correlated in the hierarchy, those of its ``slopes``
    (in log N and log peak rate) independent: a handful of families cannot inform the 66 correlations of
    twelve coordinates, and the slopes a family's rows do not identify (its size slopes at one size) are
    the population's prior, whose draws of such a correlation matrix leave NUTS a hundred weakly-identified
    directions (docs/run_likelihood.md, "Schedule laws across families")."""
    names = tuple(priors)
    law_of = {name: name.removeprefix("log_") for name in names}
    if sorted(law_of.values()) != sorted(theta_names):
        raise ValueError(f"size_sampling: coordinates {names} do not cover the law's parameters {theta_names}")
    slopes = set(slopes)

    def to_law(theta) -> dict:
        return {law_of[n]: (jnp.exp(theta[..., i]) if n.startswith("log_") else theta[..., i])
                for i, n in enumerate(names)}

    def from_law(params) -> np.ndarray:
        return np.array([np.log(params[law_of[n]]) if n.startswith("log_") else params[n] for n in names], dtype=float)

    return Sampling(priors=dict(priors), to_law=to_law, from_law=from_law, explains_shape=True,
                    correlated=tuple(n for n in names if law_of[n] not in slopes))


def lr_area(schedule: Schedule, steps) -> np.ndarray:
    """S1(t) = sum of eta_k over k = 1..t, warmup included."""
    steps = np.asarray(steps, dtype=int)
    cumulative = np.concatenate([[0.0], np.cumsum(schedule.per_step(int(steps.max(initial=1))))])
    return cumulative[steps]


def annealing_area(schedule: Schedule, steps, momentum: float = ANNEALING_MOMENTUM) -> np.ndarray:
    """S2(t) = sum_{k<=t} m_k, m_k = lam m_{k-1} + (eta_{k-1} - eta_k), counting the changes after the warmup:
    those of steps k > W, the first of them the change from the warmup's last rate (the peak) into step W + 1."""
    steps = np.asarray(steps, dtype=int)
    eta = schedule.per_step(int(steps.max(initial=1)))
    drop = np.concatenate([[0.0], eta[:-1] - eta[1:]])  # drop[i] = d_{i+1} = eta_i - eta_{i+1}; d_1 = 0
    # the warmup's rises d_1..d_W (indices 0..W-1) are left out; d_{W+1} is a decrease after the warmup and counts
    # (a schedule that drops right after its warmup, two_stage with decay_start at W or W + 1, drops there alone)
    drop[: schedule.warmup_steps] = 0.0
    # m = lam m + d is a linear recurrence: an exponentially weighted cumulative sum (scipy.signal.lfilter
    # computes it in C; the closed form lam^k cumsum(d / lam^k) overflows over 10^5 steps)
    from scipy.signal import lfilter

    m = lfilter([1.0], [1.0, -momentum], drop)
    return np.concatenate([[0.0], np.cumsum(m)])[steps]


def _changes(schedule: Schedule, last: int):
    """eta_k (k = 1..last at index k - 1), d_k = eta_{k-1} - eta_k and A(k) = sum_{j<=k} eta_j. eta_0 is the
    warmup's start (0) where the schedule warms up, else eta_1: a run without warmup starts at its rate."""
    eta = schedule.per_step(last)
    first = float(schedule.lr(0)) if schedule.warmup_steps > 0 else eta[0]
    previous = np.concatenate([[first], eta[:-1]])
    area = np.concatenate([[0.0], np.cumsum(eta)])  # A(k), A(0) = 0
    return eta, previous - eta, area


def _bin_starts(eta: np.ndarray, warmup: int, bin_steps: int, max_change: float = MAX_LOG_CHANGE) -> np.ndarray:
    """First step of each bin. In the warmup: bins that widen by WARMUP_BIN_GROWTH from WARMUP_FIRST_BIN steps
    at its end back to its start. After it: a new bin every ``bin_steps`` steps, wherever log eta has moved
    by ``max_change`` since the bin began (so a jump is a bin of its own), and wherever the rate turns from
    falling to rising or back."""
    end, width, ends = min(warmup, len(eta)), float(WARMUP_FIRST_BIN), []
    while end >= 1:
        ends.append(end)
        end -= int(round(width))
        width = min(width * WARMUP_BIN_GROWTH, bin_steps)
    warm = np.array([1] + [e + 1 for e in reversed(ends[1:])], dtype=int) if ends else np.zeros(0, dtype=int)
    k = np.arange(warmup + 1, len(eta) + 1)
    if not len(k):
        return warm
    log_eta = np.log(np.maximum(eta, RATE_FLOOR * eta.max()))  # a cooldown to 0 ends at the floor
    step = np.concatenate([[0.0], log_eta[k[:-1] - 1] - log_eta[k[1:] - 1]])  # > 0 where the rate falls
    # every part of the key is non-decreasing in k, so the key grows wherever one of them does
    turns = np.zeros(len(k))
    turns[step != 0] = np.cumsum(np.diff(np.sign(step[step != 0]), prepend=0.0) != 0)  # runs of one direction
    turns = np.maximum.accumulate(turns)
    key = turns + np.floor(np.cumsum(np.abs(step)) / max_change) + (k - k[0]) // bin_steps
    return np.concatenate([warm, k[np.flatnonzero(np.diff(key, prepend=-1.0))]])


def _own_offsets(bin_steps: int) -> np.ndarray:
    """How far back from a checkpoint its own bins end: widths from WARMUP_FIRST_BIN steps, each WARMUP_BIN_GROWTH
    times the one after it, until they reach ``bin_steps`` (0, 4, 9, 16, ..., ~870 at 200 steps)."""
    offsets, width = [0], float(WARMUP_FIRST_BIN)
    while width < bin_steps:
        offsets.append(offsets[-1] + int(round(width)))
        width *= WARMUP_BIN_GROWTH
    return np.array(offsets)


def drop_design(schedule: Schedule, steps, bin_steps: int = BIN_STEPS) -> dict[str, np.ndarray]:
    """The binned loss-drop design of checkpoints at ``steps``: ``drop_weight`` W, ``drop_lr`` etabar and
    ``drop_area`` Sbar, each (checkpoint, bin); a checkpoint's bins where the rate does not change are left out
    (at least one column)."""
    steps = np.asarray(steps, dtype=int)
    last = int(steps.max(initial=1))
    eta, drop, area = _changes(schedule, last)
    k = np.arange(1, last + 1)
    # prefix sums over k of d_k, d_k eta_k and d_k A(k - 1): a bin's part up to t is a difference of two
    p0 = np.concatenate([[0.0], np.cumsum(drop)])
    p1 = np.concatenate([[0.0], np.cumsum(drop * eta)])
    p2 = np.concatenate([[0.0], np.cumsum(drop * area[k - 1])])
    starts = _bin_starts(eta, schedule.warmup_steps, bin_steps)
    # G(eta_k^-gamma S_k(t)) is curved in k where S_k(t) is small, i.e. over the steps just before the checkpoint
    # (wherever it is: a short warmup's end, the first steps of a decay): each checkpoint's last ~870 steps are
    # split further into its own bins, narrowing towards it as the warmup's do towards its end. The shared bins'
    # starts stay starts (a jump stays a bin of its own, a bin keeps one direction and 0.01 of log eta)
    own = _own_offsets(bin_steps)[1:]
    width = len(starts) + len(own)
    lower = np.zeros((len(steps), width), dtype=int)  # a bin is the steps lower < k <= upper; padding: 0, 0
    upper = np.zeros_like(lower)
    for i, t in enumerate(steps):
        bounds = np.union1d(starts[starts <= t], t + 1 - own[own < t]) - 1
        lower[i, : len(bounds)] = bounds
        upper[i, : len(bounds)] = np.append(bounds[1:], t)
    weight = p0[upper] - p0[lower]  # within a bin every d_k has one sign: W = 0 only where nothing changes
    # a checkpoint's changing bins first, then the padding; as many columns as the checkpoint with the most
    order = np.argsort(weight == 0, axis=1, kind="stable")
    lower, upper, weight = (np.take_along_axis(a, order, axis=1) for a in (lower, upper, weight))
    keep = max(int((weight != 0).sum(1).max(initial=0)), 1)
    lower, upper, weight = lower[:, :keep], upper[:, :keep], weight[:, :keep]
    safe = np.where(weight != 0, weight, 1.0)
    lr = np.where(weight != 0, (p1[upper] - p1[lower]) / safe, 1.0)
    # eta^-gamma at a rate of 0 (the last step of a cooldown to 0) is infinite: floor it, G saturates there
    lr = np.maximum(lr, RATE_FLOOR * eta.max())
    mean_before = (p2[upper] - p2[lower]) / safe
    s_bar = np.where(weight != 0, area[steps][:, None] - mean_before, 1.0)
    return {"drop_weight": weight, "drop_lr": lr, "drop_area": np.maximum(s_bar, 0.0)}


def drop_exact(schedule: Schedule, steps, *, gamma: float, c: float, beta: float) -> np.ndarray:
    """sum_k d_k G(eta_k^-gamma S_k(t)) per checkpoint, step by step (the reference the bins are checked against).

    A rate of 0 (the last step of a cooldown to 0) is floored as in :func:`drop_design` (RATE_FLOOR of the peak):
    eta_k^-gamma S_k(t) there is 0 * inf, whose limit along the cooldown (S_k(t) = 0, gamma < 1) is 0."""
    steps = np.asarray(steps, dtype=int)
    eta, drop, area = _changes(schedule, int(steps.max(initial=1)))
    rate = np.maximum(eta, RATE_FLOOR * eta.max())  # the design's floor: a finite reference where the rate is 0
    where = np.flatnonzero(drop != 0) + 1  # steps k where the rate changes
    out = np.zeros(len(steps))
    for i, t in enumerate(steps):
        k = where[where <= t]
        s_k = area[t] - area[k - 1]
        out[i] = np.sum(drop[k - 1] * (1.0 - (c * rate[k - 1] ** -gamma * s_k + 1.0) ** -beta))
    return out


_CACHE: dict = {}  # the last tables' inputs: a law derives each of its inputs from the same columns


def schedule_inputs(columns: Mapping, bin_steps: int = BIN_STEPS) -> dict[str, np.ndarray]:
    """Per-row schedule inputs from ``step`` and ``schedule`` (JSON) columns: ``lr_area`` (S1),
    ``annealing_area`` (S2), the run's ``peak_lr`` and the loss-drop design, padded to a common number of
    bins."""
    steps = np.asarray(columns["step"], dtype=float)
    texts = np.asarray(columns["schedule"], dtype=object)
    key = (steps.tobytes(), "\n".join(map(str, texts)), bin_steps)
    if key not in _CACHE:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _schedule_inputs(steps, texts, bin_steps)
    return _CACHE[key]


def _schedule_inputs(steps: np.ndarray, texts: np.ndarray, bin_steps: int) -> dict[str, np.ndarray]:
    bad = np.flatnonzero(~(steps >= 1) | (steps != np.round(steps)))
    if bad.size:
        raise ValueError(f"column 'step' has values that are not steps >= 1 at rows {bad[:5].tolist()} ({bad.size} in all); "
                         f"schedule laws need each checkpoint's optimizer step")
    out = {"lr_area": np.zeros(len(steps)), "annealing_area": np.zeros(len(steps)), "peak_lr": np.ones(len(steps))}
    designs = []
    for text in dict.fromkeys(texts.tolist()):
        rows = np.flatnonzero(texts == text)
        try:
            schedule = Schedule.from_json(text)
        except ValueError as error:  # named by its rows: a table's own check (run_schedules) names its run
            raise ValueError(f"column 'schedule', rows {rows[:5].tolist()}: {error}") from None
        t = steps[rows].astype(int)
        out["lr_area"][rows] = lr_area(schedule, t)
        out["annealing_area"][rows] = annealing_area(schedule, t)
        out["peak_lr"][rows] = schedule.peak_lr
        designs.append((rows, drop_design(schedule, t, bin_steps)))
    width = max((d["drop_weight"].shape[1] for _, d in designs), default=1)  # no rows: an empty design
    for name, fill in (("drop_weight", 0.0), ("drop_lr", 1.0), ("drop_area", 1.0)):
        matrix = np.full((len(steps), width), fill)
        for rows, design in designs:
            matrix[rows, : design[name].shape[1]] = design[name]
        out[name] = matrix
    return out


def check_forecast_steps(steps, texts, *, where: str) -> None:
    """Refuse forecast rows whose ``step`` lies outside the run from its warmup's end (warmup_steps <= step <=
    total_steps of the row's ``schedule``, JSON ``texts``), naming the rows: a schedule law describes a run
    after its warmup (its fits leave the warmup's checkpoints out, and inside it S1 -> 0 sends L0 + A S1^-alpha
    to hundreds of nats), and a run ends with its schedule."""
    steps = np.asarray(steps, dtype=float)
    texts = np.asarray(texts, dtype=object)
    for text in dict.fromkeys(texts.tolist()):
        rows = np.flatnonzero(texts == text)
        schedule = Schedule.from_json(text)
        at = steps[rows]
        first = max(schedule.warmup_steps, 1)  # the warmup's last step: the rate at its peak, S1 well away from 0
        bad = rows[~((at >= first) & (at <= schedule.total_steps))]
        if bad.size:
            raise ValueError(f"{where}: rows {bad[:5].tolist()} ask for steps {steps[bad[:3]].astype(int).tolist()} "
                             f"outside {schedule.describe()}: a schedule law forecasts a run from its warmup's end to "
                             f"its end (steps {first}..{schedule.total_steps})")


def warn_outside_fitted(params, peak_lr, sizes, rates, *, where: str) -> None:
    """Warn, naming the rows, where a forecast's model size ``params`` lies more than :data:`SIZE_REACH` times
    outside the fitted ``sizes`` (lo, hi), or its ``peak_lr`` outside the fitted peak ``rates`` (lo, hi); each
    bound a number or one per row (a family's own): the schedule laws' constants move with log N and log eta
    around the fitted runs (:func:`at_size`, :func:`at_peak_lr`), slopes that data at one size or one rate
    leave to their priors, and beyond the fitted rates the law can fall to its floor."""
    params, peak_lr = np.asarray(params, dtype=float), np.asarray(peak_lr, dtype=float)
    lo, hi = (np.broadcast_to(np.asarray(v, dtype=float), params.shape) for v in sizes)
    far = np.flatnonzero((params > hi * SIZE_REACH) | (params < lo / SIZE_REACH))
    if far.size:
        i = far[0]
        warnings.warn(f"{where}: rows {far[:5].tolist()} ask for N = {params[i]:.3g}, more than {SIZE_REACH:.3g} "
                      f"times outside the fitted sizes ({lo[i]:.3g}..{hi[i]:.3g}): a schedule law's constants are "
                      f"linear in log N near the sizes it was fitted on; forecast a far larger run's final loss with "
                      f"a final-loss law (chinchilla)", ExtrapolationWarning, stacklevel=3)
    lo, hi = (np.broadcast_to(np.asarray(v, dtype=float), params.shape) for v in rates)
    off = np.flatnonzero((peak_lr > hi * (1 + PEAK_LR_RTOL)) | (peak_lr < lo * (1 - PEAK_LR_RTOL)))
    if off.size:
        i = off[0]
        one = bool(np.isclose(lo[i], hi[i], rtol=PEAK_LR_RTOL))
        warnings.warn(f"{where}: rows {off[:5].tolist()} ask for peak_lr {peak_lr[i]:.3g}, outside the fitted peak "
                      f"rates ({f'{lo[i]:.3g}' if one else f'{lo[i]:.3g}..{hi[i]:.3g}'}): the law's slopes in the "
                      f"peak rate are {'its priors alone' if one else 'extrapolated'} there", ExtrapolationWarning,
                      stacklevel=3)
