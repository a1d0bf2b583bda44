"""Pilot-run design: which small runs sharpen the forecast of a big one most, per FLOP.

Given a posterior (a :class:`~bayeslaw.inference.nuts.Fit`), a target (family, N parameters, D
tokens) and candidate pilot runs (N, D, seeds; cost 6 N D x seeds FLOPs unless given),
:func:`rank_pilots` ranks the candidates by the expected reduction of the target's predictive
variance of log loss per FLOP.

``method="laplace"`` (default): a linear-Gaussian update. Over the family's posterior (its draws of
the sampled coordinates theta, ``fit.spec.names``; a hierarchical fit's draws already carry what the
population says about the family), with R the pilot's observation covariance (checkpoint noise on
the diagonal, plus each run's offset and deviation along the run: one block per run, as in
:mod:`bayeslaw.models.runs`):

- ``linearize="mean"``: the textbook Laplace step. m, S the mean and covariance of the draws, J the
  Jacobian of log L at the pilot's rows and g its gradient at the target (``jax.jacfwd`` at m):

      S_new = (S^-1 + J^T R^-1 J)^-1 = S - S J^T (J S J^T + R)^-1 J S     (Woodbury; no S^-1 needed)
      var_law(target) = g^T S_new g

- ``linearize="draws"`` (default): the same update with log L linearised statistically over the
  draws instead of at m (the Bayes linear adjustment; an ensemble Kalman step):

      var_law(target) = Var(y_t) - c^T (C + R)^-1 c

  with y_t the draws of log L at the target, C the covariance of the draws of log L at the pilot's
  rows and c their covariance with y_t. It starts from the draws' own variance (what
  ``fit.predict`` reports) and is the expected squared error of the best linear estimate of y_t
  from the pilot's data, so it bounds the expected posterior variance from above. A small fit's
  posterior lies on a curved ridge (a and alpha, e and the size term) where the Jacobian at m is a
  poor guide: on ``benchmarks/pilot_design.py`` (3 sizes, a 2.8B target, 5 candidates) "mean"
  overstated the current sd 1.6x (0.049 against the draws' 0.031) and ranked the candidates against
  NUTS refits with Spearman -0.2 / +0.1, "draws" +0.9.

New-run variance adds the target's seed variance sigma_seed(N)^2 and checkpoint noise sigma_obs^2
(a final checkpoint: the deviation along the run is 0 there). In a linear-Gaussian model the
posterior variance does not depend on what the pilot will show, so no outcome is simulated: the
expected posterior variance is exact there, and here as good as the linearisation. The noise scales
are fixed at their posterior means (of the variances), and the pilot updates neither the noise nor
the population of a hierarchical fit.

``method="refit"``: the reference. It simulates the pilot's outcomes from the current posterior
predictive, appends them to the fit's training rows, refits with the same form and pooling by NUTS
and measures the target's predictive variance from the draws, averaged over ``outcomes``
simulations. Slow (one NUTS fit per candidate and outcome; a candidate's outcomes are fitted as one
program, ``fit_many``): for checking the Laplace ranking.

Variances are of log loss (log nats per token; an sd of 0.01 is about 1% of the loss); costs in
FLOPs; ``reduction_per_eflop`` is the variance removed per 1e18 FLOPs.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.linalg

from bayeslaw.executor import CellError, run_cells
from bayeslaw.inference.batched import fit_many, release_compiled
from bayeslaw.inference.config import PredictionKind, check_choice
from bayeslaw.inference.nuts import Fit, shape_weights
from bayeslaw.models import seed_sd
from bayeslaw.models.runs import offset_shape, run_covariance, shape_basis
from bayeslaw.plan.trajectory import said_new_family, warn_new_family

__all__ = ["EFLOP", "pilot_rows", "rank_pilots"]

EFLOP = 1e18  # FLOPs: the unit of reduction_per_eflop
PILOT_FAMILY = "pilot"  # the family name of pilots (and target) when the target names none (the population)


def _positive_field(value, name: str, where: str) -> float:
    """A run's size or length (params, tokens, batch_size) as a finite number > 0, naming the field and value if
    not: a string or a non-positive size failed deep inside numpy, or passed into rows of a run of -1 parameters."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, (bool, np.bool_)) or not (np.isfinite(number) and number > 0):
        shown = value.item() if isinstance(value, np.generic) else value  # -5, not np.int64(-5)
        raise ValueError(f"{where}: {name}={shown!r} is not a finite number > 0")
    return number


def _target_table(target, family: str | None, law_columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, str | None]:
    table = pd.DataFrame([dict(target)]) if isinstance(target, Mapping) else pd.DataFrame(target).reset_index(drop=True)
    if len(table) != 1:
        raise ValueError(f"rank_pilots: target has {len(table)} rows; give one (a dict or a one-row DataFrame)")
    needed = list(dict.fromkeys(["params", "tokens", *law_columns]))  # as a candidate: N and D, and the law's inputs
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"rank_pilots: target lacks {missing}; found {list(table.columns)}; it needs {needed}")
    for column in (c for c in needed if c != "schedule"):  # a schedule is text (JSON), the rest are numbers
        _positive_field(table[column].iloc[0], column, "rank_pilots: target")
    if family is None and "family" in table.columns and pd.notna(table["family"].iloc[0]):
        family = str(table["family"].iloc[0])
    return table, family


def _check_candidates(candidates: pd.DataFrame, law_columns: tuple[str, ...], family: str | None) -> pd.DataFrame:
    """Positive finite params, tokens, seeds, checkpoints and cost_flops; whole seeds and checkpoints."""
    if not isinstance(candidates, pd.DataFrame) or candidates.empty:
        raise ValueError("rank_pilots: candidates must be a non-empty DataFrame with columns params, tokens "
                         "(optional: seeds, checkpoints, cost_flops)")
    if not candidates.index.is_unique:
        repeated = candidates.index[candidates.index.duplicated()].unique().tolist()
        raise ValueError(f"rank_pilots: candidates' index repeats {repeated[:5]}; each candidate needs its own "
                         f"label (candidates.reset_index(drop=True))")
    needed = list(dict.fromkeys(["params", "tokens", *law_columns]))  # a pilot is N and D, plus what the law reads
    missing = [c for c in needed if c not in candidates.columns]
    if missing:
        raise ValueError(f"rank_pilots: candidates lack column(s) {missing}; found {list(candidates.columns)}; "
                         f"each candidate needs {needed}")
    if "family" in candidates.columns:
        other = candidates.index[candidates["family"].astype(object) != family].tolist()
        if other:
            raise ValueError(f"rank_pilots: candidate row(s) {other[:5]} name a family other than the target's "
                             f"({family!r}); pilots are runs of the target's family: drop the column or fix those rows")
    for column in ("params", "tokens", "seeds", "checkpoints", "cost_flops", *needed):
        if column not in candidates.columns:
            continue
        values = pd.to_numeric(candidates[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0)
        if column in ("seeds", "checkpoints"):
            bad |= np.isfinite(values) & (values != np.round(values))
        if bad.any():
            rows = candidates.index[bad].tolist()
            what = "a whole number >= 1" if column in ("seeds", "checkpoints") else "positive and finite"
            raise ValueError(f"rank_pilots: candidates column {column!r} is not {what} at row(s) {rows[:5]} "
                             f"({len(rows)} in all; values {candidates[column][bad].tolist()[:5]})")
    return candidates


def _whole(value, name: str, where: str) -> int:
    """A count (checkpoints, seeds) as a whole number >= 1, as the candidates' columns are checked: 0 or a
    negative count would otherwise be taken as 1 (one checkpoint) or as no runs at all."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not np.isfinite(number) or number < 1 or number != round(number):
        raise ValueError(f"{where}: {name}={value!r} is not a whole number >= 1")
    return int(number)


def _resolve_min_tokens(fit: Fit, min_tokens) -> float | None:
    if isinstance(min_tokens, str):
        if min_tokens != "fit":
            raise ValueError(f"min_tokens={min_tokens!r}: use 'fit' (the fit's own cut), None or a number of tokens")
        return fit.config["min_tokens"]
    return None if min_tokens is None else float(min_tokens)


def pilot_rows(candidate: Mapping, *, checkpoints: int = 1, first_fraction: float = 0.1,
               min_tokens: float | None = None, family: str | None = None, name: str = "pilot") -> pd.DataFrame:
    """The rows a pilot run adds to the data: ``seeds`` runs, each seen at ``checkpoints`` token counts.

    Checkpoints are log-spaced from max(``first_fraction`` x D, just above ``min_tokens``) to D (one
    checkpoint: D alone), so that a fit with that early cut keeps them all. Extra columns of the
    candidate (e.g. ``batch_size``) are carried to every row. Runs are named ``{name}-s{seed}``.
    ``checkpoints`` and the candidate's ``seeds`` and ``checkpoints`` are whole numbers >= 1.
    """
    k = _whole(candidate.get("checkpoints", _whole(checkpoints, "checkpoints", f"pilot {name}")), "checkpoints",
               f"pilot {name}")
    seeds = _whole(candidate.get("seeds", 1), "seeds", f"pilot {name}")
    missing = [key for key in ("params", "tokens") if key not in candidate]
    if missing:
        raise ValueError(f"pilot {name}: candidate lacks {missing}; found {list(candidate.keys())}; a pilot needs "
                         f"params (parameters) and tokens (training tokens)")
    params = _positive_field(candidate["params"], "params", f"pilot {name}")
    tokens = _positive_field(candidate["tokens"], "tokens", f"pilot {name}")
    if min_tokens is not None and tokens <= min_tokens:
        raise ValueError(f"pilot {name}: its {tokens:.3g} tokens are at or below the early cut min_tokens="
                         f"{min_tokens:.3g}, which would drop every checkpoint; train it longer or pass a smaller "
                         f"min_tokens (None: no cut)")
    if not 0 < first_fraction <= 1:
        raise ValueError(f"first_fraction={first_fraction} must lie in (0, 1]")
    first = first_fraction * tokens if min_tokens is None else max(first_fraction * tokens, min_tokens * (1 + 1e-6))
    grid = np.geomspace(first, tokens, k) if k > 1 else np.array([tokens])
    extra = {c: candidate[c] for c in candidate.keys()
             if c not in ("params", "tokens", "seeds", "checkpoints", "cost_flops", "family", "run")}
    table = pd.DataFrame({
        "run": np.repeat([f"{name}-s{s}" for s in range(seeds)], len(grid)),
        "seed": np.repeat(np.arange(seeds), len(grid)),
        "params": params,
        "tokens": np.tile(grid, seeds),
        **extra,
    })
    return table.assign(family=family) if family is not None else table


def _noise_draws(fit: Fit, family: str | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per draw: sigma_seed (at SEED_N_REF), gamma_seed, sigma_obs, sigma_dev, offset_start and the shape
    (shape, shape_size, shape_centre) of ``family``, as in ``Fit.predict``."""
    noise = fit.noise_draws([family], seed=rng)
    return {"gamma_seed": noise["gamma_seed"],
            **{k: noise[k][:, 0] for k in ("sigma_seed", "sigma_obs", "sigma_dev", "offset_start", "shape", "shape_size",
                                            "shape_centre")}}


def _run_noise(noise: Mapping[str, np.ndarray], rows: pd.DataFrame) -> np.ndarray:
    """E over the draws of each run's noise covariance (offset + deviation along the run + checkpoint noise),
    block-diagonal over the pilot's runs: (rows, rows), rows in ``rows``' order."""
    R = np.zeros((len(rows), len(rows)))
    seed_var = np.asarray(seed_sd(noise["sigma_seed"], noise["gamma_seed"], np.log(float(rows["params"].iloc[0])))) ** 2
    # the deviation and checkpoint parts are linear in their variances: their mean over draws is the
    # covariance at the mean variances; the offset's, s^2 l l^T with l per draw, is averaged draw by draw
    sds = [np.zeros(1), *(np.sqrt(np.array([np.mean(noise[k] ** 2)])) for k in ("sigma_dev", "sigma_obs"))]
    for _, idx in rows.groupby("run", sort=False).indices.items():
        x = rows["tokens"].to_numpy(float)[idx] / rows["tokens"].to_numpy(float)[idx].max()
        # a pilot run is a run of its own: its offset loads on its fraction x
        load = offset_shape(x[None, :], noise["offset_start"][:, None])  # (draw, n)
        R[np.ix_(idx, idx)] = (np.asarray(run_covariance(x[None], np.ones((1, len(idx)), bool), *sds))[0]
                               + np.einsum("s,si,sj->ij", seed_var, load, load) / len(seed_var))
    return R


def _seed_variance(noise: Mapping[str, np.ndarray], params: float) -> float:
    """E[sigma_seed(N)^2], sigma_seed(N) = sigma_seed (N / 1e8)^-gamma_seed: the variance of a run's offset."""
    sd = np.asarray(seed_sd(noise["sigma_seed"], noise["gamma_seed"], np.log(params)))
    return float(np.mean(sd**2))


def _inputs(fit: Fit, table: pd.DataFrame, where: str) -> dict:
    return {k: jnp.asarray(v) for k, v in fit.spec.law.columns(table, where=where).items()}


def _jacobian(fit: Fit, m: np.ndarray, inputs: Mapping) -> np.ndarray:
    """d log L / d theta at theta = m for each row of ``inputs``: (rows, K)."""
    return np.asarray(jax.jacfwd(lambda theta: fit.spec.log_mean(theta, inputs))(jnp.asarray(m)))


def _laplace_variance(S: np.ndarray, g: np.ndarray, J: np.ndarray, R: np.ndarray) -> float:
    """g^T S_new g with S_new = S - S J^T (J S J^T + R)^-1 J S, through the Cholesky factor of J S J^T + R."""
    chol = np.linalg.cholesky(J @ S @ J.T + R)
    v = scipy.linalg.solve_triangular(chol, J @ S @ g, lower=True)
    return float(max(g @ S @ g - v @ v, 0.0))


def _bayes_linear_variance(target_draws: np.ndarray, pilot_draws: np.ndarray, R: np.ndarray) -> float:
    """Var(y_t) - c^T (C + R)^-1 c from the draws: y_t the target's log L, C the covariance of the pilot
    rows' log L, c their covariance with y_t (the expected squared error of the best linear estimate of
    y_t from the pilot's data: an upper bound on the expected posterior variance)."""
    centred_t = target_draws - target_draws.mean()
    centred_p = pilot_draws - pilot_draws.mean(axis=0)
    n = len(target_draws) - 1
    chol = np.linalg.cholesky(centred_p.T @ centred_p / n + R)
    v = scipy.linalg.solve_triangular(chol, centred_p.T @ centred_t / n, lower=True)
    return float(max(centred_t @ centred_t / n - v @ v, 0.0))


def rank_pilots(
    fit: Fit,
    target,
    candidates: pd.DataFrame,
    *,
    family: str | None = None,
    method: str = "laplace",
    kind: PredictionKind = "law",
    checkpoints: int = 1,
    first_fraction: float = 0.1,
    min_tokens: float | str | None = "fit",
    linearize: str = "draws",
    data: pd.DataFrame | None = None,
    outcomes: int = 3,
    refit_options: Mapping | None = None,
    baseline: str = "refit",
    seed: int = 0,
    workers: int = 1,
    client=None,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Rank candidate pilot runs by the expected reduction of the target's predictive variance of log loss per FLOP.

    Parameters
    ----------
    fit : Fit
        The current posterior (any form and pooling).
    target : dict or one-row DataFrame
        ``params``, ``tokens`` (and the law's other inputs, e.g. ``batch_size`` for su2024), optionally
        ``family`` (none: a family the fit has not seen, i.e. the population's prediction; a name that is
        not one of the fit's families is that too, with a UserWarning: a typo would otherwise pass).
    candidates : DataFrame
        One row per pilot: ``params``, ``tokens`` (and the law's other inputs); optional ``seeds``
        (runs, default 1), ``checkpoints`` (per run, default the keyword) and ``cost_flops``
        (default 6 N D x seeds). Pilots are runs of the target's family.
    family : str, optional
        The family of target and pilots (overrides the target's ``family``).
    method : {"laplace", "refit"}
        The linear-Gaussian update (fast; see the module docstring) or the NUTS refit on simulated
        outcomes (the reference, slow).
    kind : {"law", "new_run"}
        Variance of the law's log loss at the target, or of one new run's (+ seed and checkpoint
        noise). With ``laplace`` the noise is not updated by the pilot, so both rank alike.
    checkpoints, first_fraction : int, float
        Each pilot run is seen at ``checkpoints`` (a whole number >= 1) token counts log-spaced from
        ``first_fraction`` x D (or just above ``min_tokens``) to D; 1: its final loss only.
    min_tokens : "fit", float or None
        The early cut the pilot's checkpoints must clear: "fit" takes the fit's own (10B tokens by
        default: a pilot at or below it raises; the simulator's runs are shorter, so pass a smaller
        cut, or None, when the fit was made with one).
    linearize : {"draws", "mean"}
        ``laplace`` only: "draws" (default), log L linearised statistically over the posterior draws
        (the Bayes linear adjustment Var(y_t) - c^T (C + R)^-1 c, with C, c the draws' covariances of
        log L at the pilot's rows and with the target); "mean", linearised at the posterior mean
        (Jacobians by ``jax.jacfwd``, the textbook Laplace update). See the module docstring for why
        "draws" is the default.
    data : DataFrame, optional
        ``refit`` only: the table the fit was made from (refit with its cut and thinning); default:
        the fitted rows, rebuilt from ``fit.idata``.
    outcomes : int
        ``refit`` only: simulated pilot outcomes averaged per candidate (two or more for
        ``sd_after_se``).
    refit_options : mapping, optional
        ``refit`` only: NUTS settings for ``bayeslaw.fit`` (default 1 chain, 200 draws, 200 warmup).
    baseline : {"refit", "fit"}
        ``refit`` only: the current variance from refits of the data without the pilot (same NUTS
        settings and seeds as the refits with it, so that their MCMC noise compares alike; default)
        or from ``fit`` itself (saves ``outcomes`` refits).
    seed : int
        Seed of the draws used (population draws, simulated outcomes, refits).
    workers, client, scheduler : optional
        ``refit`` only: where the refits run (:func:`bayeslaw.executor.run_cells`: here, a Dask
        ``client``, a ``scheduler`` address, or a LocalCluster of ``workers`` processes). A candidate
        whose refit raised gets NaN and the error in an ``error`` column.

    Returns
    -------
    DataFrame
        One row per candidate (its index kept), sorted by rank: ``params, tokens, seeds, checkpoints,
        cost_flops``; ``sd_now`` and ``sd_after`` (sd of the target's log loss now and expected after
        the pilot), ``variance_reduction`` (= sd_now^2 - sd_after^2, (log nats)^2),
        ``fraction_removed``, ``reduction_per_eflop`` (variance_reduction per 1e18 FLOPs) and
        ``rank`` (1: most per FLOP); ``laplace`` adds ``sd_now_draws`` (the draws' sd, a check on the
        linearisation), ``refit`` adds ``sd_after_se`` (the spread over outcomes / sqrt(outcomes); NaN
        with one outcome, which has no spread to measure).
        ``attrs`` record method, kind and units.
    """
    if method not in ("laplace", "refit"):
        raise ValueError(f"unknown method {method!r}; use 'laplace' or 'refit'")
    check_choice(kind, PredictionKind, "kind")
    if linearize not in ("mean", "draws"):
        raise ValueError(f"unknown linearize {linearize!r}; use 'mean' or 'draws'")
    if baseline not in ("refit", "fit"):
        raise ValueError(f"unknown baseline {baseline!r}; use 'refit' or 'fit'")
    checkpoints = _whole(checkpoints, "checkpoints", "rank_pilots")
    target_table, family = _target_table(target, family, fit.spec.law.columns_needed)
    family = fit.family_or_only(family)
    warn_new_family(fit, family, "rank_pilots")
    candidates = _check_candidates(candidates, fit.spec.law.columns_needed, family)
    cut = _resolve_min_tokens(fit, min_tokens)
    seeds = pd.to_numeric(candidates["seeds"]).astype(int) if "seeds" in candidates else pd.Series(1, candidates.index)
    ks = (pd.to_numeric(candidates["checkpoints"]).astype(int) if "checkpoints" in candidates
          else pd.Series(int(checkpoints), candidates.index))
    cost = (pd.to_numeric(candidates["cost_flops"]).astype(float) if "cost_flops" in candidates
            else 6.0 * candidates["params"].astype(float) * candidates["tokens"].astype(float) * seeds)
    pilots = {i: pilot_rows(row, checkpoints=checkpoints, first_fraction=first_fraction, min_tokens=cut,
                            name=f"pilot{i}") for i, row in candidates.iterrows()}
    run_family = family if family is not None else PILOT_FAMILY

    rng = np.random.default_rng(seed)
    theta = fit.sampled_theta(family, seed=rng)  # (S, K): the family's draws, or the population's
    noise = _noise_draws(fit, family, rng)
    target_params = float(target_table["params"].iloc[0])
    noise_var_new_run = _seed_variance(noise, target_params) + float(np.mean(noise["sigma_obs"] ** 2))
    extra_var = noise_var_new_run if kind == "new_run" else 0.0
    target_inputs = _inputs(fit, target_table, "rank_pilots: target")

    out = pd.DataFrame({"params": candidates["params"].astype(float), "tokens": candidates["tokens"].astype(float),
                        "seeds": seeds, "checkpoints": ks, "cost_flops": cost}, index=candidates.index)
    if method == "laplace":
        m, S = theta.mean(axis=0), np.atleast_2d(np.cov(theta, rowvar=False))
        g = _jacobian(fit, m, target_inputs)[0]
        target_draws = np.asarray(fit.spec.log_mean(jnp.asarray(theta), target_inputs))  # (S,)
        sd_after = {}
        for i, rows in pilots.items():
            inputs = _inputs(fit, rows, f"rank_pilots: candidate {i!r}")
            J = _jacobian(fit, m, inputs) if linearize == "mean" else None
            R = _run_noise(noise, rows)
            if linearize == "mean":
                sd_after[i] = np.sqrt(_laplace_variance(S, g, J, R) + extra_var)
            else:
                pilot_draws = np.asarray(jax.vmap(lambda th: fit.spec.log_mean(th, inputs))(jnp.asarray(theta)))
                sd_after[i] = np.sqrt(_bayes_linear_variance(target_draws, pilot_draws, R) + extra_var)
        sd_draws = np.sqrt(float(np.var(target_draws, ddof=1)) + extra_var)
        out["sd_now"] = np.sqrt(float(g @ S @ g) + extra_var) if linearize == "mean" else sd_draws
        out["sd_after"] = pd.Series(sd_after)
        out["sd_now_draws"] = sd_draws
    else:
        out["sd_now"], out["sd_after"], out["sd_after_se"], out["error"] = _refit_variances(
            fit, target_table, pilots, family, run_family, theta, noise, kind=kind, data=data, outcomes=outcomes,
            refit_options=refit_options, baseline=baseline, rng=rng, seed=seed,
            executor={"workers": workers, "client": client, "scheduler": scheduler})
    out["variance_reduction"] = out["sd_now"] ** 2 - out["sd_after"] ** 2
    out["fraction_removed"] = out["variance_reduction"] / out["sd_now"] ** 2
    out["reduction_per_eflop"] = out["variance_reduction"] / (out["cost_flops"] / EFLOP)
    # a candidate whose refits failed has no reduction and no rank (NaN, its error beside it)
    out["rank"] = out["reduction_per_eflop"].rank(ascending=False, method="min").astype("Int64")
    out = out.sort_values(["rank", "cost_flops"], kind="stable")
    out.attrs.update({"method": method, "kind": kind, "family": family, "units": "sd of log loss (log nats per "
                      "token); variance_reduction in (log nats)^2; reduction_per_eflop per 1e18 FLOPs"})
    return out


def _refit_cell(job: dict) -> list[float]:
    """The refits of one candidate of :func:`rank_pilots` (one per simulated outcome; or the data without a
    pilot), as one program (:func:`~bayeslaw.inference.batched.fit_many`: the tables share one structure):
    the variance of the target's log loss under each refitted posterior."""
    posteriors = fit_many(job["tables"], seeds=job["seeds"], **job["settings"])
    variances = [_target_variance(posterior, job["target"], job["kind"], job["predict_seed"]) for posterior in posteriors]
    release_compiled(len(posteriors))
    return variances


def _refit_variances(fit, target_table, pilots, family, run_family, theta, noise, *, kind, data, outcomes,
                     refit_options, baseline, rng, seed, executor):
    """Per candidate: the current sd, the sd after the pilot (root of the mean variance over simulated
    outcomes, each a NUTS refit) and its standard error, from the draws of log loss at the target.
    A candidate's refits are one cell of :func:`bayeslaw.executor.run_cells`, fitted as one program; a
    candidate whose refits failed gets NaN and its ``error``."""
    if outcomes < 1:
        raise ValueError(f"outcomes={outcomes}: need at least one simulated pilot outcome")
    # the refits' seeds are the pilot ranking's (seed + 1 + outcome), and a program's fits draw one block each
    taken = sorted({"seed", "seeds", "extend"} & set(refit_options or {}))
    if taken:
        raise ValueError(f"rank_pilots: refit_options {taken}: set by the ranking itself (its seed gives the "
                         f"refits seed + 1 + outcome; they draw one block each); leave them out")
    options = {"chains": 1, "draws": 200, "warmup": 200, "progress": False, **(refit_options or {})}
    options.pop("chain_method", None)  # a program's chains are vectorised
    settings = {k: fit.config[k] for k in ("form", "pooling", "seed_scaling", "min_tokens", "min_fraction", "thin")}
    if data is None:  # the fitted rows: already cut and thinned
        base, settings = fit.training_rows(), {**settings, "min_tokens": None, "min_fraction": None, "thin": None}
    else:
        base = data
    refit_target = target_table.assign(family=run_family)

    def job(tables):  # outcome o is refitted with seed + 1 + o, with the pilot and without it alike
        return {"tables": tables, "seeds": [seed + 1 + o for o in range(outcomes)], "settings": {**settings, **options},
                "target": refit_target, "kind": kind, "predict_seed": seed}

    jobs, candidate = {}, {}  # cell name -> job; cell name -> candidate index
    if baseline == "refit":  # the same NUTS settings and seeds without the pilot: MCMC noise alike on both sides
        jobs["now"] = job([base] * outcomes)
    for i, rows in pilots.items():
        inputs = _inputs(fit, rows, f"rank_pilots: candidate {i!r}")
        tables = []
        for o in range(outcomes):
            d = rng.integers(theta.shape[0])  # one posterior draw: law and noise scales
            log_law = np.asarray(fit.spec.log_mean(jnp.asarray(theta[d]), inputs))
            one = {k: v[d:d + 1] for k, v in noise.items()}  # the run-level noise of that draw
            fraction = rows["tokens"].to_numpy(float) / rows.groupby("run")["tokens"].transform("max").to_numpy(float)
            shape = shape_weights({k: noise[k][d] for k in ("shape", "shape_size", "shape_centre")},
                                  np.log(rows["params"].to_numpy(float)))  # (row, K): at each pilot's size
            log_loss = (log_law + np.sum(np.asarray(shape_basis(fraction)) * shape, axis=-1)
                        + np.linalg.cholesky(_run_noise(one, rows)) @ rng.standard_normal(len(rows)))
            batch = rows["batch_size"].to_numpy(float) if "batch_size" in rows else 1.0
            pilot = rows.assign(family=run_family, run=[f"{run_family}-{r}-o{o}" for r in rows["run"]],
                                loss=np.exp(log_loss), step=np.round(rows["tokens"].to_numpy(float) / batch))
            tables.append(pd.concat([base, pilot], ignore_index=True))
        name = f"candidate={i}"
        jobs[name], candidate[name] = job(tables), i
    results = run_cells(_refit_cell, jobs, desc="pilot refits", **executor)
    variances, errors = {}, {}
    for name, result in results.items():
        i = candidate.get(name, "now")
        if isinstance(result, CellError):
            errors[i] = result.error
        else:
            variances[i] = result
    if "now" in errors:
        raise RuntimeError(f"rank_pilots: a refit without the pilot failed ({errors['now']})")
    now = np.sqrt(np.mean(variances["now"])) if baseline == "refit" else np.sqrt(_target_variance(fit, refit_target, kind, seed))
    after, se = {}, {}
    for i in pilots:
        if i in errors:
            after[i] = se[i] = np.nan
            continue
        after[i] = np.sqrt(np.mean(variances[i]))
        # delta method: se of the sd; the sample sd of the variances (ddof=1), NaN from one outcome (no spread to
        # measure: ddof=0 gave an se of exactly 0, a certainty one refit does not give)
        spread = np.std(variances[i], ddof=1) if len(variances[i]) > 1 else np.nan
        se[i] = spread / np.sqrt(len(variances[i])) / (2 * after[i])
    return now, pd.Series(after), pd.Series(se), pd.Series({i: errors.get(i) for i in pilots}, dtype=object)


def _target_variance(fit: Fit, target: pd.DataFrame, kind, seed) -> float:
    """Variance of the target's log loss over the fit's predictive draws."""
    with said_new_family():  # rank_pilots warns of it itself
        draws = fit.predict(target, kind=kind, seed=seed).draws.values[:, 0]
    return float(np.var(np.log(draws)))
