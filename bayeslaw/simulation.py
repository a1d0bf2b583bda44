"""Simulated multi-family, multi-seed scaling-law data with known truth.

The generative story is the one the hierarchical model assumes, so that fits can be checked
against the truth:

1. shared Chinchilla parameters mu = (e, a, b, alpha, beta) (default: Besiroglu et al. 2024);
2. per family f: theta_f = mu + diag(scale) L z_f, z_f ~ Normal(0, I), L L^T a correlation matrix;
3. per family f: schedule-shape weights w_f = shape + shape_scale z_f, moving with size by v_f =
   shape_size z'_f per e-fold of N around the sizes' mean log N (g_f(x) = sum_k w_fk (-log x)^k / k!,
   x = D / the run's final tokens; g_f(1) = 0: the law is the law of final losses);
4. per training run r (family f, size N, seed s): u_r ~ Normal(0, sigma_seed(N)) on log loss (its offset
   at the end, loaded along the run by rho + (1 - rho) x, rho = offset_start), with
   sigma_seed(N) = sigma_seed * (N / 1e8)^(-seed_size_exponent), and a smooth deviation along the run
   d_r ~ GP(0, sigma_dev^2 k), the Ornstein-Uhlenbeck bridge pinned to 0 at x = 1 (correlation length ell);
5. per checkpoint i of run r (tokens D_i): log y_i = log L(N, D_i; theta_f) + g_f(x_i; N)
   + u_r (rho + (1 - rho) x_i) + d_r(x_i) + sigma_obs * z_i.

Losses in nats per token; tokens per checkpoint log-spaced up to the run's budget. This is the run-level
model of :mod:`bayeslaw.models`, so fits can be checked against the truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayeslaw.data import read_table, validate
from bayeslaw.data.files import is_number, is_whole, write_atomic
from bayeslaw.laws import CHINCHILLA, DEFAULT_FORM, SU2024, get_law
from bayeslaw.laws.runs import ELL, SHAPE_DEGREE, bridge_kernel, shape_basis
from bayeslaw.results import Result

__all__ = ["DEMO_PATH", "DEMO_TRUTH_PATH", "SHARED_THETA", "SU2024_THETA", "Simulation", "load_demo", "simulate",
           "simulate_trajectories"]

#: Besiroglu et al. 2024's Chinchilla refit, in log space: E 1.817, A 482.0, B 2085, alpha 0.3478, beta 0.3658.
SHARED_THETA = {"e": float(np.log(1.817)), "a": float(np.log(482.0)), "b": float(np.log(2085.0)), "alpha": 0.3478, "beta": 0.3658}
#: How far families stray from the shared values (sd of each theta component across families).
FAMILY_SCALE = {"e": 0.05, "a": 0.15, "b": 0.15, "alpha": 0.02, "beta": 0.02}
#: Correlation of (e, a, b, alpha, beta) across families: a with alpha, b with beta (a larger
#: coefficient comes with a steeper exponent, as across published fits).
FAMILY_CORRELATION = np.array(
    [
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.7, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.7],
        [0.0, 0.7, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.7, 0.0, 1.0],
    ]
)
THETA_ORDER = ("e", "a", "b", "alpha", "beta")
#: Population schedule shape w (g(x) = sum_k w_k (-log x)^k / k!): mid-run checkpoints sit ~0.7% above the
#: law of final losses, as a cosine run's do, and the last stretch bends down to it.
SHAPE = (0.01, 0.0, 0.0)

_ROOT = Path(__file__).resolve().parent.parent
DEMO_PATH = _ROOT / "data" / "demo.csv"
DEMO_TRUTH_PATH = _ROOT / "data" / "demo_truth.json"
DEMO_SETTINGS = {"seed": 20260101}


@dataclass(frozen=True, repr=False)
class Simulation(Result):
    """A simulated table (bayeslaw schema) and the truth that generated it."""

    _main = "data"

    data: pd.DataFrame
    truth: dict = field(repr=False)

    def __iter__(self):  # ``df, truth = simulate()``
        yield self.data
        yield self.truth

    def true_loss(self, family: str | None, params, tokens, batch_size=None) -> np.ndarray:
        """The noise-free law of ``family`` (or of the shared parameters when None): L(N, D), or for a
        law of steps (su2024) L(N, S = D / B; B) with ``batch_size`` B in tokens per step."""
        theta = self.truth["shared"]["theta"] if family is None else self.truth["families"][family]["theta"]
        law = get_law(self.truth.get("form", DEFAULT_FORM))
        if "batch_size" in law.columns_needed and batch_size is None:
            raise TypeError(f"true_loss of a {law.name} simulation needs batch_size (tokens per step)")
        as_array = lambda v: jnp.asarray(np.asarray(v, dtype=float))  # noqa: E731
        columns = {"params": params, "tokens": tokens, **({} if batch_size is None else {"batch_size": batch_size})}
        inputs = law.inputs_from({k: as_array(v) for k, v in columns.items()})
        return np.asarray(law.loss({k: as_array(v) for k, v in theta.items()}, **inputs))


def _chinchilla_loss(theta: dict, params, tokens) -> np.ndarray:
    as_array = lambda v: jnp.asarray(np.asarray(v, dtype=float))  # noqa: E731
    theta = {k: as_array(v) for k, v in theta.items()}
    return np.asarray(CHINCHILLA.loss(theta, params=as_array(params), tokens=as_array(tokens)))


def _su2024_loss(theta: dict, params, steps, batch_size) -> np.ndarray:
    as_array = lambda v: jnp.asarray(np.asarray(v, dtype=float))  # noqa: E731
    return np.asarray(SU2024.loss({k: as_array(v) for k, v in theta.items()}, params=as_array(params),
                                  steps=as_array(steps), batch_size=as_array(batch_size)))


def _natural(theta: dict) -> dict:
    return {k: float(v) for k, v in CHINCHILLA.natural(theta).items()}


def _check_design(where: str, **counts: int) -> None:
    """Each count of a simulated design (families, sizes, seeds, checkpoints) at least 1, named if not (a bool
    is not a count: True would be taken as 1)."""
    for name, count in counts.items():
        if not (is_whole(count) and count >= 1):
            raise ValueError(f"{where}: {name}={count!r}; need at least one (a whole number)")


def _check_positive(where: str, **values) -> None:
    """Each setting a finite number > 0, named if not: a zero or negative token count, batch size or correlation
    length made NaN losses that failed validation far from their cause."""
    for name, value in values.items():
        if not is_number(value) or not (np.isfinite(value) and value > 0):
            raise ValueError(f"{where}: {name}={value!r}; need a finite number > 0")


def _check_seed(where: str, seed) -> None:
    """The generator's seed a whole number >= 0 (numpy's own errors name neither the argument nor the function)."""
    if not is_whole(seed) or seed < 0:
        raise ValueError(f"{where}: seed={seed!r}; need a whole number >= 0")


def _family_names(where: str, families, prefix: str) -> list[str]:
    """``families`` as names: a count gives ``{prefix}0``...; a list its names, distinct strings. A bare string is
    refused: it would be iterated into one family per character."""
    if isinstance(families, str):
        raise ValueError(f"{where}: families={families!r}; give a count or a list of names (one family: "
                         f"[{families!r}])")
    if isinstance(families, (int, np.integer, bool, np.bool_)):
        _check_design(where, families=families)
        return [f"{prefix}{i}" for i in range(families)]
    names = list(families)
    bad = [name for name in names if not (isinstance(name, str) and name)]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"{where}: families={names!r}; need distinct non-empty names (str)")
    _check_design(where, families=len(names))
    return names


def _check_values(where: str, name: str, values, *, whole: bool = False) -> list[float]:
    """A design's list (sizes, batch sizes) as distinct finite numbers > 0, named if not: a repeated value makes
    repeated runs."""
    array = np.atleast_1d(np.asarray(values, dtype=object))
    try:
        numbers = [float(v) for v in array if not isinstance(v, (bool, np.bool_, str))]
    except (TypeError, ValueError):
        numbers = []
    if array.ndim != 1 or array.size == 0 or len(numbers) != array.size or not all(
            np.isfinite(v) and v > 0 for v in numbers) or len(set(numbers)) != len(numbers):
        raise ValueError(f"{where}: {name}={values!r}; need one or more distinct finite numbers > 0")
    return numbers


def _labels(values, unit: float, first: str, widths) -> list[str]:
    """Labels of ``values`` / ``unit`` in format ``{x:.{w}{first}}``, with the first width in ``widths`` that
    makes them distinct and non-zero: the shortest that tells the design's values apart (the default designs
    keep the first width's labels, which the demo data and tests name)."""
    scaled = [v / unit for v in values]
    for width in widths:
        labels = [f"{x:.{width}{first}}" for x in scaled]
        if len(set(labels)) == len(labels) and all(float(label) > 0 for label in labels):
            return labels
    return [repr(x) for x in scaled]


def _size_labels(sizes) -> list[str]:
    """Model-size labels in millions, ``70M``, ``0.1M``, ``70.4M``: whole millions unless that repeats."""
    return [f"{label}M" for label in _labels(sizes, 1e6, "f", range(0, 18))]


def simulate(
    *,
    families: int | list[str] = 3,
    sizes: tuple[float, ...] = (70e6, 160e6, 410e6, 1.0e9, 2.8e9),
    seeds: int = 3,
    max_tokens: float = 1e11,
    checkpoints: int = 16,
    first_tokens: float = 1e9,
    batch_size: float = 2**21,
    shared: dict | None = None,
    family_scale: dict | None = None,
    family_correlation: np.ndarray | None = None,
    sigma_seed: float = 0.01,
    seed_size_exponent: float = 0.0,
    sigma_obs: float = 0.003,
    shape: tuple[float, ...] = SHAPE,
    shape_scale: float = 0.005,
    sigma_dev: float = 0.004,
    ell: float = ELL,
    offset_start: float = 0.0,
    shape_size: float = 0.0,
    seed: int = 0,
) -> Simulation:
    """Draw a data set with known truth (see the module docstring for the generative story).

    Parameters
    ----------
    families : int or list of str, default 3
        Number of families (named ``fam0``...) or a list of their names (one family: ``["name"]``; a bare
        string is refused).
    sizes : tuple of float
        Parameter counts N of the models in every family, distinct; models are labelled in millions
        (``fam0-70M``), with decimals where whole millions would repeat (``0.1M``, ``70.4M``).
    seeds : int, default 3
        Training runs per (family, size), each with its own offset u_r.
    max_tokens, checkpoints, first_tokens : float, int, float
        Each run is trained to ``max_tokens`` and logged at ``checkpoints`` log-spaced token
        counts from ``first_tokens``.
    batch_size : float
        Tokens per optimizer step (sets ``step``).
    shared, family_scale, family_correlation
        mu, the sd of each component across families, and their correlation (defaults above).
    sigma_seed, seed_size_exponent : float
        Run-to-run sd of log loss at N = 1e8, and its decay with size.
    sigma_obs : float
        sd of the Gaussian checkpoint noise on log loss.
    shape, shape_scale : tuple of float, float
        The population's schedule-shape weights (``SHAPE_DEGREE`` of them) and their sd across families.
    sigma_dev, ell : float
        sd of a run's smooth deviation along the run and its correlation length (fraction of the run).
    offset_start : float, default 0
        rho, the share of a run's offset already there at its start (0: it grows from nothing, as seeds of
        one configuration do; 1: a constant offset).
    shape_size : float, default 0
        sd of each family's change of its shape weights per e-fold of N (0: one shape for every size).
    seed : int
        Seed of the random generator (a whole number >= 0): equal seeds give identical data.

    Returns
    -------
    Simulation
        ``.data`` (validated table), ``.truth`` (JSON-serialisable dict); unpacks as ``df, truth``.
    """
    _check_seed("simulate", seed)
    names = _family_names("simulate", families, "fam")
    sizes = _check_values("simulate", "sizes", sizes)
    _check_design("simulate", seeds=seeds, checkpoints=checkpoints)
    _check_positive("simulate", max_tokens=max_tokens, first_tokens=first_tokens, batch_size=batch_size, ell=ell)
    for name, scale in (("sigma_seed", sigma_seed), ("sigma_obs", sigma_obs), ("sigma_dev", sigma_dev),
                        ("shape_scale", shape_scale), ("shape_size", shape_size)):
        if isinstance(scale, (bool, np.bool_)) or not (np.isfinite(scale) and scale >= 0):
            raise ValueError(f"simulate: {name}={scale!r}; need a finite sd of log loss >= 0")
    if not (np.isfinite(seed_size_exponent)):
        raise ValueError(f"simulate: seed_size_exponent={seed_size_exponent!r}; need a finite number")
    # rho is a share of the run's offset: outside [0, 1] the offset would overshoot or change sign along the run
    if isinstance(offset_start, (bool, np.bool_)) or not (0 <= offset_start <= 1):
        raise ValueError(f"simulate: offset_start={offset_start!r}; need a share in [0, 1]")
    if max_tokens < first_tokens or (checkpoints > 1 and max_tokens == first_tokens):
        raise ValueError(f"simulate: max_tokens={max_tokens!r} is not above first_tokens={first_tokens!r}; the "
                         f"checkpoints are log-spaced from first_tokens up to max_tokens")
    rng = np.random.default_rng(seed)
    mu = dict(SHARED_THETA if shared is None else shared)
    scale = dict(FAMILY_SCALE if family_scale is None else family_scale)
    corr = FAMILY_CORRELATION if family_correlation is None else np.asarray(family_correlation)
    chol = np.linalg.cholesky(corr)
    mu_vec = np.array([mu[k] for k in THETA_ORDER])
    scale_vec = np.array([scale[k] for k in THETA_ORDER])

    truth = {
        "generator": "bayeslaw.simulate",
        "seed": seed,
        "form": "chinchilla",
        "shared": {"theta": mu, "natural": _natural(mu)},
        "family_scale": scale,
        "family_correlation": corr.tolist(),
        "sigma_seed": sigma_seed,
        "seed_size_exponent": seed_size_exponent,
        "sigma_obs": sigma_obs,
        "shape": list(shape),
        "shape_scale": shape_scale,
        "sigma_dev": sigma_dev,
        "ell": ell,
        "offset_start": offset_start,
        "shape_size": shape_size,
        "families": {},
        "runs": {},
    }
    if len(shape) != SHAPE_DEGREE:
        raise ValueError(f"shape has {len(shape)} weights; the schedule shape has {SHAPE_DEGREE}")
    steps = np.round(np.geomspace(first_tokens, max_tokens, checkpoints) / batch_size).astype(int)
    # each checkpoint a step of its own: a step 0 has no tokens (no loss), a repeated step a repeated row
    if steps[0] < 1:
        raise ValueError(f"simulate: batch_size={batch_size!r} is more than twice first_tokens={first_tokens!r}: the "
                         f"first checkpoint would come before the first step; use a smaller batch_size")
    if np.any(np.diff(steps) < 1):
        raise ValueError(f"simulate: checkpoints={checkpoints!r} log-spaced from first_tokens={first_tokens!r} to "
                         f"max_tokens={max_tokens!r} repeat optimizer steps of batch_size={batch_size!r} tokens; use "
                         f"fewer checkpoints, a wider token range or a smaller batch_size")
    token_grid = steps * batch_size
    fraction = token_grid / token_grid[-1]
    basis = np.asarray(shape_basis(fraction))
    dev_cov = sigma_dev**2 * np.asarray(bridge_kernel(fraction[:, None], fraction[None, :], ell))
    # the bridge is 0 at x = 1: factor it on the checkpoints before the last
    dev_chol = np.linalg.cholesky(dev_cov[:-1, :-1] + 1e-14 * np.eye(checkpoints - 1)) if checkpoints > 1 else None
    centre = np.mean(np.log(sizes))  # the shape's size term is 0 at the sizes' mean log N
    rows = []
    for family in names:
        theta_vec = mu_vec + scale_vec * (chol @ rng.standard_normal(len(THETA_ORDER)))
        theta = {k: float(v) for k, v in zip(THETA_ORDER, theta_vec, strict=True)}
        w = np.asarray(shape) + shape_scale * rng.standard_normal(SHAPE_DEGREE)
        # drawn only when asked, so that data sets drawn without it stay as they were
        v = shape_size * rng.standard_normal(SHAPE_DEGREE) if shape_size > 0 else np.zeros(SHAPE_DEGREE)
        truth["families"][family] = {"theta": theta, "natural": _natural(theta), "shape": w.tolist(),
                                     "shape_size": v.tolist()}
        for params, label in zip(sizes, _size_labels(sizes), strict=True):
            model = f"{family}-{label}"
            run_sd = sigma_seed * (params / 1e8) ** (-seed_size_exponent)
            law = _chinchilla_loss(theta, params, token_grid)
            for s in range(seeds):
                run = f"{model}-s{s}"
                offset = float(rng.normal(0.0, run_sd))
                truth["runs"][run] = {"offset": offset, "sigma_seed": run_sd}
                deviation = np.zeros(checkpoints)
                if dev_chol is not None:
                    deviation[:-1] = dev_chol @ rng.standard_normal(checkpoints - 1)
                noise = sigma_obs * rng.standard_normal(checkpoints)
                shape_n = w + v * (np.log(params) - centre)
                loss = np.exp(np.log(law) + basis @ shape_n + offset * (offset_start + (1 - offset_start) * fraction)
                              + deviation + noise)
                for tokens, step, value, mean in zip(token_grid, steps, loss, law, strict=True):
                    rows.append(
                        {
                            "family": family,
                            "model": model,
                            "run": run,
                            "seed": s,
                            "params": params,
                            "tokens": float(tokens),
                            "step": int(step),
                            "flops": 6.0 * params * tokens,
                            "loss": float(value),
                            "loss_name": "simulated",
                            "source": "simulated",
                            "batch_size": batch_size,
                            "true_law": float(mean),
                        }
                    )
    return Simulation(validate(pd.DataFrame(rows), name="simulate()"), truth)


def write_demo(path: Path = DEMO_PATH, truth_path: Path = DEMO_TRUTH_PATH) -> Simulation:
    """(Re)make the embedded demo set: ``data/demo.csv`` and its truth in ``data/demo_truth.json``."""
    sim = simulate(**DEMO_SETTINGS)
    truth = {**sim.truth, "settings": DEMO_SETTINGS}
    write_atomic(path, lambda tmp: sim.data.to_csv(tmp, index=False, float_format="%.10g"))
    write_atomic(truth_path, lambda tmp: tmp.write_text(json.dumps(truth, indent=1) + "\n"))
    return sim


def load_demo() -> Simulation:
    """The embedded demo data with its truth; simulated afresh (same seed) if the files are absent."""
    if DEMO_PATH.exists() and DEMO_TRUTH_PATH.exists():
        return Simulation(read_table(DEMO_PATH), json.loads(DEMO_TRUTH_PATH.read_text()))
    sim = simulate(**DEMO_SETTINGS)
    return Simulation(sim.data, {**sim.truth, "settings": DEMO_SETTINGS})


#: Kaplan et al. 2020's constants, which Su et al. 2024 re-estimate: Nc 8.8e13, alphaN 0.076, Sc 2.1e3,
#: alphaS 0.76, B* 2e8 tokens, alphaB 0.21 (fitting space of ``bayeslaw.laws.SU2024``).
SU2024_THETA = {"log_nc": float(np.log(8.8e13)), "alpha_n": 0.076, "log_sc": float(np.log(2.1e3)), "alpha_s": 0.76,
                "log_bstar": float(np.log(2e8)), "alpha_b": 0.21}
#: sd across families of each su2024 constant: the levels move with the setup (data, tokenizer), the
#: exponents and the batch constants are shared (Su et al. find the exponents stable across setups).
SU2024_FAMILY_SCALE = {"log_nc": 0.5, "alpha_n": 0.0, "log_sc": 0.3, "alpha_s": 0.0, "log_bstar": 0.0, "alpha_b": 0.0}


def simulate_trajectories(
    *,
    families: int | list[str] = 2,
    sizes: tuple[float, ...] = (1e7, 3e7, 1e8, 3e8),
    batch_sizes: tuple[float, ...] = (2.5e5, 1e6, 4e6),
    seeds: int = 2,
    first_steps: int = 200,
    max_steps: int = 20000,
    checkpoints: int = 12,
    shared: dict | None = None,
    family_scale: dict | None = None,
    sigma_seed: float = 0.005,
    sigma_obs: float = 0.003,
    seed: int = 0,
) -> Simulation:
    """Loss trajectories from the su2024 law (Su et al. 2024) with known truth, at several batch sizes.

    Per family f: theta_f = shared + family_scale * z (see :data:`SU2024_FAMILY_SCALE`); per run
    (family, size N, batch B tokens/step, seed): offset u_r ~ Normal(0, sigma_seed) on log loss at the
    run's end, growing along it as u_r S / S_max (the models' run offset); per checkpoint at step S
    (``checkpoints`` log-spaced from ``first_steps`` to ``max_steps``):
    log y = log L(N, S; B, theta_f) + u_r S / S_max + sigma_obs z (Gaussian). tokens = S B. ``true_law`` holds L.
    """
    where = "simulate_trajectories"
    _check_seed(where, seed)
    names = _family_names(where, families, "traj")
    sizes = _check_values(where, "sizes", sizes)
    batch_sizes = _check_values(where, "batch_sizes", batch_sizes)
    _check_design(where, seeds=seeds, checkpoints=checkpoints, first_steps=first_steps, max_steps=max_steps)
    if max_steps < first_steps:
        raise ValueError(f"{where}: max_steps={max_steps!r} is below first_steps={first_steps!r}; the checkpoints "
                         f"are log-spaced from first_steps up to max_steps")
    for name, scale in (("sigma_seed", sigma_seed), ("sigma_obs", sigma_obs)):
        if isinstance(scale, (bool, np.bool_)) or not (np.isfinite(scale) and scale >= 0):
            raise ValueError(f"{where}: {name}={scale!r}; need a finite sd of log loss >= 0")
    rng = np.random.default_rng(seed)
    mu = dict(SU2024_THETA if shared is None else shared)
    scale = dict(SU2024_FAMILY_SCALE if family_scale is None else family_scale)
    truth = {"generator": "bayeslaw.simulate_trajectories", "seed": seed, "form": "su2024",
             "shared": {"theta": mu, "natural": {k: float(v) for k, v in SU2024.natural(mu).items()}},
             "family_scale": scale, "sigma_seed": sigma_seed, "seed_size_exponent": 0.0, "sigma_obs": sigma_obs,
             "families": {}, "runs": {}}
    steps = np.unique(np.round(np.geomspace(first_steps, max_steps, checkpoints)).astype(int))
    rows = []
    for family in names:
        theta = {k: float(mu[k] + scale.get(k, 0.0) * rng.standard_normal()) for k in SU2024.theta_names}
        truth["families"][family] = {"theta": theta, "natural": {k: float(v) for k, v in SU2024.natural(theta).items()}}
        for params, size_label in zip(sizes, _size_labels(sizes), strict=True):
            for batch, batch_label in zip(batch_sizes, _labels(batch_sizes, 1e6, "g", range(6, 18)), strict=True):
                model = f"{family}-{size_label}-b{batch_label}M"
                law = _su2024_loss(theta, params, steps.astype(float), batch)
                for s in range(seeds):
                    run = f"{model}-s{s}"
                    offset = float(rng.normal(0.0, sigma_seed))
                    truth["runs"][run] = {"offset": offset, "sigma_seed": sigma_seed}
                    noise = sigma_obs * rng.standard_normal(len(steps))
                    loss = np.exp(np.log(law) + offset * steps / steps[-1] + noise)
                    for step, value, mean in zip(steps, loss, law, strict=True):
                        tokens = float(step * batch)
                        rows.append({"family": family, "model": model, "run": run, "seed": s, "params": params,
                                     "tokens": tokens, "step": int(step), "flops": 6.0 * params * tokens,
                                     "loss": float(value), "loss_name": "simulated", "source": "simulated",
                                     "batch_size": float(batch), "true_law": float(mean)})
    return Simulation(validate(pd.DataFrame(rows), name="simulate_trajectories()"), truth)
