"""Importers for real training logs: each returns the long table of :mod:`bayeslaw.data.validation`.

=================================  ====================================================================
reader                             input
=================================  ====================================================================
:func:`read_wandb_json`            Weights & Biases run exports ``{"name", "config", "summary", "history"}``
                                   (the llm-baselines format of ``lr_schedules/wsd_horizons``)
:func:`read_wandb_csv`             a W&B chart export: a step column and ``"<run> - <metric>"`` columns
:func:`read_tensorboard`           TensorBoard event files (needs ``pip install 'bayeslaw[tb]'``)
:func:`complete_minimal`           a table ``run, params, tokens, loss`` completed with defaults
:func:`as_table`                   a table as it is when complete, else :func:`complete_minimal`'s
:func:`import_paths`               any of the above, the format detected per path (``bayeslaw import``)
=================================  ====================================================================

Every importer reports what it read, converted and left out in ``df.attrs["import_report"]`` (a list of
lines, like the loaders' ``df.attrs["filtering"]``); nothing is dropped silently. Losses are converted
to nats per token by the metric's name (:func:`loss_to_nats`). The W&B JSON importer also rebuilds each
run's learning-rate schedule (:class:`bayeslaw.data.schedules.Schedule`, JSON in a ``schedule`` column)
and checks it against the logged learning rate (``schedule_error``, ``schedule_flag`` columns).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslaw.data.files import read_csv_file, read_parquet_file
from bayeslaw.data.runs import branch_roots
from bayeslaw.data.schedules import SCHEDULE_TOLERANCE, Schedule, lr_error, run_schedules
from bayeslaw.data.sources import parse_count
from bayeslaw.data.validation import REQUIRED_COLUMNS, DataValidationError, validate

__all__ = [
    "SCHEDULE_TOLERANCE",
    "ImportFormatError",
    "MissingExtraError",
    "FIT_COLUMNS",
    "as_table",
    "complete_minimal",
    "detect_format",
    "import_paths",
    "loss_to_nats",
    "read_params_sidecar",
    "read_tensorboard",
    "read_wandb_csv",
    "read_wandb_json",
]



class ImportFormatError(ValueError):
    """An input file is not in the format its importer reads; the message names file, run, column, rows."""


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed; the message names the extra that installs it."""


# --------------------------------------------------------------------------- shared helpers


def _label(params: float) -> str:
    """A parameter count as a size label, 3 significant digits: 123,587,328 -> '124M'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= scale:
            return f"{params / scale:.3g}{suffix}"
    return f"{params:.3g}"


def _short(names, limit: int = 5) -> str:
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(str(n) for n in names[:limit]) + more


class _Shared(dict):
    """A ``params``/``tokens_per_step`` mapping that :func:`import_paths` hands to every input: a key for
    another input's run is no typo in this one, so the caller checks the keys against all runs at once."""


def _unmatched(given, runs, option: str = "--params / params=") -> str:
    """The keys of ``given`` naming none of ``runs``, for an error about a run without a count: a typo's cause."""
    keys = [k for k in given if k not in set(runs)] if isinstance(given, Mapping) else []
    return f" ({option} given for {_short(repr(k) for k in keys)}, which name(s) no run here)" if keys else ""


def _check_run_keys(runs, params, tokens_per_step, where: str | None) -> None:
    """Refuse a ``params``/``tokens_per_step`` key that names no run: a typo would otherwise be ignored
    (and a W&B run would fall back, unseen, to its summary's count)."""
    runs = list(runs)
    for given, option in ((params, "--params / params="), (tokens_per_step, "--tokens-per-step / tokens_per_step=")):
        if isinstance(given, Mapping) and not isinstance(given, _Shared):
            unknown = [k for k in given if k not in set(runs)]
            if unknown:
                raise ImportFormatError(f"{where + ': ' if where else ''}{option} name(s) no run: "
                                        f"{_short(repr(k) for k in unknown)}; runs: {_short(sorted(runs), 8)}")


def _read_csv(path: Path, what: str, **kwargs) -> pd.DataFrame:
    return read_csv_file(path, what, ImportFormatError, **kwargs)


_PER_BYTE = re.compile(r"bpb|per[_ -]?byte|bits[_ -]?per[_ -]?char|bpc", re.IGNORECASE)
# the log of a perplexity is the cross-entropy itself (ln ppl = nats, log2 ppl = bits): never take its log again
_LOG_PERPLEXITY = re.compile(r"(^|[^a-z])(log|ln)(2|10)?[_ -]?(perplexity|ppl)", re.IGNORECASE)
_PERPLEXITY = re.compile(r"perplexity|(^|[^a-z])ppl([^a-z]|$)", re.IGNORECASE)
_BITS = re.compile(r"bits|log2|(^|[^a-z])bpt([^a-z]|$)", re.IGNORECASE)
# scores of a model's outputs, which no loss law describes (a name with 'loss' in it is a loss whatever else it says)
_NOT_A_LOSS = re.compile(r"acc(uracy)?|f1|bleu|rouge|exact[_ -]?match|(^|[^a-z])em([^a-z]|$)|score|reward|"
                         r"grad[_ -]?norm|(^|[^a-z])lr([^a-z]|$)|learning[_ -]?rate", re.IGNORECASE)


def loss_to_nats(values, metric: str, *, where: str = "") -> tuple[np.ndarray, str]:
    """Loss values in nats per token, by the metric's name; returns (values, the rule applied).

    Rule (by name, case-insensitive): a log-perplexity ('log_perplexity', 'log_ppl', 'ln_ppl') is the
    cross-entropy already -> as is (nats), 'log2_ppl' -> x ln 2 (bits), 'log10_ppl' -> x ln 10;
    a name with 'perplexity' or 'ppl' is a perplexity -> ln(ppl);
    'bits', 'log2' or 'bpt' is bits per token -> x ln 2; 'bpb'/'per byte'/'bpc' is per byte or
    character, which no table of tokens can use -> error; an accuracy, F1, BLEU, ROUGE, exact match, score,
    reward, gradient norm or learning rate (a name without 'loss', 'perplexity' or 'ppl') is not a loss ->
    error; anything else is taken as nats per token (the cross-entropy PyTorch and JAX report).
    """
    values = np.asarray(values, dtype=float)
    if _NOT_A_LOSS.search(metric) and not re.search(r"loss|perplexity|ppl", metric, re.IGNORECASE):
        raise ImportFormatError(f"{where}metric {metric!r} is not a loss (an accuracy, score or other quantity that "
                                "no scaling law of the loss describes); import a loss, perplexity or bits metric")
    if _PER_BYTE.search(metric):
        raise ImportFormatError(f"{where}metric {metric!r} is per byte or character, not per token; "
                                "convert it to nats per token first (bytes per token are not in the log)")
    log_ppl = _LOG_PERPLEXITY.search(metric)
    if log_ppl:
        base = log_ppl.group(3)
        if base is None:
            return values, f"{metric!r} is a log-perplexity: already nats per token (loss = ln ppl, as is)"
        return values * math.log(float(base)), f"{metric!r} is a log{base}-perplexity: loss = value x ln {base}"
    if _PERPLEXITY.search(metric):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(values), f"{metric!r} is a perplexity: loss = ln(ppl)"
    if _BITS.search(metric):
        return values * math.log(2.0), f"{metric!r} is in bits: loss = bits x ln 2"
    return values, f"{metric!r} taken as nats per token (no 'perplexity', 'ppl', 'bits' or 'log2' in the name)"


# validate's "rows 3, 4 and 2 more" and run_schedules' "rows [3, 4]": both number the importer's own rows
_ROWS = re.compile(r"\brows \[?((?:\d+, )*\d+)\]?(?: and (\d+) more)?")


def _validate_curves(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """:func:`validate` of an importer's long table, its errors naming run and step instead of row numbers
    (the long table's rows are the importer's own, no line of the input)."""
    try:
        return validate(df, name=name)
    except DataValidationError as error:
        rows = df.reset_index(drop=True)

        def checkpoints(match: re.Match) -> str:
            shown = [int(i) for i in match.group(1).split(", ")]
            named = [f"run {rows.at[i, 'run']!r} step {rows.at[i, 'step']}" if i < len(rows) else f"row {i}"
                     for i in shown]
            return "at " + ", ".join(named) + (f" and {match.group(2)} more" if match.group(2) else "")

        raise DataValidationError(_ROWS.sub(checkpoints, str(error), count=1)) from None


def _keep_last_per_step(steps, columns: Mapping[str, Iterable]) -> tuple[pd.DataFrame, int, int]:
    """One row per step, the last logged attempt's; returns (rows sorted by step, dropped, dropped that differ).

    A restart re-logs steps after resuming from a checkpoint, and an export lists the attempts
    (runs of increasing steps) in no reliable order (most W&B exports list the final attempt first).
    A restart resumes from a checkpoint at or after the previous attempt's start, so attempts are
    ordered in time by (first step, last step); the latest attempt's value is kept for every step.
    """
    frame = pd.DataFrame({"step": np.asarray(steps, dtype=float), **{k: list(v) for k, v in columns.items()}})
    if frame.empty:
        return frame, 0, 0
    attempt = np.concatenate([[0], np.cumsum(np.diff(frame["step"].to_numpy()) <= 0)])
    frame["_attempt"] = attempt
    frame["_first"] = frame.groupby("_attempt")["step"].transform("first")
    frame["_last"] = frame.groupby("_attempt")["step"].transform("last")
    frame["_pos"] = np.arange(len(frame))
    ordered = frame.sort_values(["_first", "_last", "_attempt", "_pos"], kind="stable")
    kept = ordered.drop_duplicates("step", keep="last")
    dropped = ordered.loc[~ordered.index.isin(kept.index)]
    differ = 0
    if len(dropped) and columns:
        first_col = next(iter(columns))
        final = kept.set_index("step")[first_col]
        differ = int((dropped[first_col].to_numpy() != final.loc[dropped["step"]].to_numpy()).sum())
    out = kept.sort_values("step").drop(columns=["_attempt", "_first", "_last", "_pos"]).reset_index(drop=True)
    return out, len(dropped), differ


# --------------------------------------------------------------------------- W&B JSON run exports

_DECAY_TYPES = {None: "linear", "linear": "linear", "sqrt": "1-sqrt", "1-sqrt": "1-sqrt", "cosine": "cosine",
                "exp": "exponential", "exponential": "exponential"}
_SHAPE_FAMILY = {"cosine": "cosine", "wsd": "wsd", "constant": "constant", "wsd_two_stage": "wsd_twostage"}
_WORLD = re.compile(r"(?:^|_)ws(\d+)(?:_|$)")
_JOIN_KEYS = ("n_layer", "n_embd", "n_head", "lr", "dataset", "batch_size", "acc_steps", "sequence_length",
              "warmup_steps", "model", "vocab_size")


def _schedule_from_config(config: Mapping, where: str) -> Schedule:
    """The run's Schedule from an llm-baselines config.

    Rules (llm-baselines, src/optim/schedule.py and torch's OneCycleLR as it calls it):
    - 'cos': cosine from ``lr`` at step warmup_steps - 1 to the final lr at iterations - 1 (torch's
      OneCycleLR counts from 0; the logs match this to 1e-12, and Schedule(warmup, iterations) only to 1e-2
      near the end of a cosine to zero); final lr =
      ``cos_final_lr`` where it is >= 0 (an absolute lr: the logs end at 1e-7 for 1e-7 at every peak),
      else (-1 or absent) lr / 10 (OneCycleLR's div_factor 1e2 and final_div_factor 0.1).
    - 'wsd': stable at ``lr``, cooldown over the last int(wsd_fract_decay x iterations) steps (floor,
      as llm-baselines computes it) to wsd_final_lr_scale x lr, ``decay_type`` linear (default) or
      sqrt (= 1-sqrt); a cooldown fraction of 0 is a constant lr.
    - 'wsd_twostage': stable until ``wsd_twostage_transition_after``, a linear transition over
      ``wsd_twostage_transition_steps`` to ``wsd_twostage_factor`` x lr, then the WSD cooldown from that
      rate (Schedule's 'wsd_two_stage'; the logs match it to 1e-12).
    Warmup: linear from lr/100 in llm-baselines (cosine-shaped for 'cos'), linear from 0 in Schedule;
    the check therefore starts after the warmup.
    """
    peak = _config_number(config, "lr", where, low=0.0)
    total = _config_number(config, "iterations", where, whole=True, low=0)
    warmup = _config_number(config, "warmup_steps", where, whole=True, default=0, low=-1)
    if warmup >= total:
        raise ImportFormatError(f"{where}: config.warmup_steps {warmup} is not below config.iterations {total}")
    scheduler = config.get("scheduler", "cos")
    try:
        return _schedule_of(config, scheduler, peak, total, warmup, where)
    except ImportFormatError:
        raise
    except ValueError as error:  # Schedule's own check of what the config describes (a final lr above the peak)
        raise ImportFormatError(f"{where}: config (scheduler {scheduler!r}, lr, iterations, warmup_steps and the "
                                f"scheduler's keys) describes no valid schedule: {error}") from None


_NO_DEFAULT = object()


def _config_number(config: Mapping, key: str, where: str, *, whole: bool = False, default=_NO_DEFAULT,
                   low: float | None = None, high: float | None = None):
    """config[key] as a float (an int where ``whole``), ``default`` where absent or null; a text, list or
    fractional count, or a value not above ``low`` (not above ``high``), is refused naming the key: a config
    value that is not what it should be would otherwise build another schedule or another token count."""
    value = config.get(key)
    if value is None:
        if default is _NO_DEFAULT:
            raise ImportFormatError(f"{where}: config lacks {key!r}" if key not in config
                                    else f"{where}: config.{key} is null")
        return default
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ImportFormatError(f"{where}: config.{key} {value!r} is not a number")
    if whole and number != round(number):
        raise ImportFormatError(f"{where}: config.{key} {value!r} is not a whole number")
    if low is not None and not number > low:
        raise ImportFormatError(f"{where}: config.{key} {value!r}: need a number above {low:g}")
    if high is not None and number > high:
        raise ImportFormatError(f"{where}: config.{key} {value!r}: need a number at most {high:g}")
    return int(number) if whole else number


def _schedule_of(config: Mapping, scheduler, peak: float, total: int, warmup: int, where: str) -> Schedule:
    """The Schedule of :func:`_schedule_from_config`, the config's values read by :func:`_config_number`."""
    if scheduler == "cos":
        final = _config_number(config, "cos_final_lr", where, default=-1.0)
        final = peak / 10.0 if final < 0 else final
        # OneCycleLR(total_steps=iterations) ends its warmup at step warmup - 1 and its cosine at
        # iterations - 1 (phase ends pct_start x total - 1 and total - 1): one step earlier than WSD's lambda
        return Schedule("cosine", peak, total - 1, max(warmup - 1, 0), final_lr=final)
    if scheduler in ("wsd", "wsd_twostage"):
        fraction = _config_number(config, "wsd_fract_decay", where, default=0.1)
        if not 0 <= fraction <= 1:
            raise ImportFormatError(f"{where}: config.wsd_fract_decay {fraction:g}: need a fraction in [0, 1]")
        final = _config_number(config, "wsd_final_lr_scale", where, default=0.0) * peak
        decay = config.get("decay_type")
        if not isinstance(decay, (str, type(None))) or decay not in _DECAY_TYPES:  # a list is no name (nor hashable)
            known = sorted(k for k in _DECAY_TYPES if k)
            raise ImportFormatError(f"{where}: unknown config.decay_type {decay!r}; known: {known}")
        cooldown = int(fraction * total)  # llm-baselines: n_anneal_steps = int(fract_decay * n_iterations)
        start = max(total - cooldown, warmup)
        if scheduler == "wsd_twostage":
            after = _config_number(config, "wsd_twostage_transition_after", where, whole=True, default=start)
            after = min(max(after, warmup), start)
            steps = min(_config_number(config, "wsd_twostage_transition_steps", where, whole=True, default=0),
                        start - after)
            factor = _config_number(config, "wsd_twostage_factor", where, default=1.0)
            return Schedule("wsd_two_stage", peak, total, warmup, final_lr=final, decay_start=start,
                            decay_type=_DECAY_TYPES[decay], second_lr=factor * peak, transition_start=after,
                            transition_steps=steps)
        if cooldown == 0:
            return Schedule("constant", peak, total, warmup)
        return Schedule("wsd", peak, total, warmup, final_lr=final, decay_start=start,
                        decay_type=_DECAY_TYPES[decay])
    raise ImportFormatError(f"{where}: unknown config.scheduler {scheduler!r}; known: cos, wsd, wsd_twostage")


def _schedule_error(schedule: Schedule, steps: np.ndarray, logged: np.ndarray) -> tuple[float, float]:
    """Max relative error of the rebuilt lr against the logged lr (:func:`~bayeslaw.data.schedules.lr_error`):
    (after warmup, during warmup); NaN where nothing was compared."""
    error = lr_error(schedule, steps, logged)
    after = np.asarray(steps, dtype=float) > schedule.warmup_steps

    def worst(values):
        values = values[np.isfinite(values)]
        return float(values.max()) if len(values) else float("nan")

    return worst(error[after]), worst(error[~after])


def _json_files(paths) -> list[Path]:
    files: list[Path] = []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
        path = Path(path)
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            if not found:
                raise ImportFormatError(f"folder {str(path)!r} holds no .json W&B run exports")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"file {str(path)!r} does not exist")
    return files


def _read_export(file: Path) -> dict:
    """The export as a dict, its shape checked: config and summary mappings, history a mapping of blocks or
    the W&B API's list of rows (:func:`_history_from_rows`); a wrong type is refused naming file, run and key."""
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImportFormatError(f"{str(file)!r}: not a JSON file ({error})") from None
    missing = [k for k in ("config", "summary", "history") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ImportFormatError(f"{str(file)!r}: not a W&B run export, missing key(s) {missing} "
                                "(expected {'name', 'config', 'summary', 'history'})")
    where = f"{str(file)!r} (run {file.stem!r})"
    for key in ("config", "summary"):  # a null summary is an export without one; a null config has no schedule
        if not isinstance(data[key], Mapping) and not (key == "summary" and data[key] is None):
            raise ImportFormatError(f"{where}: {key} is of type {type(data[key]).__name__}, not a mapping of names to "
                                    "values")
    if isinstance(data["history"], list):
        data["history"] = _history_from_rows(data["history"], where)
    elif not isinstance(data["history"], Mapping):
        raise ImportFormatError(f"{where}: history is of type {type(data['history']).__name__}; need blocks "
                                "{'val': {'iter': [...], 'val_loss': [...]}} or a list of rows with '_step'")
    return data


#: the validation loss and learning-rate keys of a W&B API history (a list of rows), first found is read
_ROW_LOSS_KEYS = ("val_loss", "val/loss", "val_perplexity", "val/perplexity")
_ROW_LR_KEYS = ("train_lr", "train/lr", "lr")


def _history_from_rows(rows: list, where: str) -> dict:
    """A W&B API history (``run.history()``: one row per logged step, ``_step`` and the metrics logged then) as
    the export's blocks: val (the first of :data:`_ROW_LOSS_KEYS` found), train (train_lr), and 'rows' (every
    other metric, reported as not read). A row without the key is a step that logged other metrics."""
    bad = [i for i, r in enumerate(rows) if not isinstance(r, Mapping) or r.get("_step") is None]
    if bad:
        raise ImportFormatError(f"{where}: history is a list of rows, and {len(bad)} row(s) are no mapping with a "
                                f"'_step' (index {_short(bad)})")
    keys = sorted({k for r in rows for k in r if not str(k).startswith("_")})
    loss_key = next((k for k in _ROW_LOSS_KEYS if k in keys), None)
    if loss_key is None:
        raise ImportFormatError(f"{where}: history rows hold no validation loss (need one of {list(_ROW_LOSS_KEYS)}; "
                                f"found {_short(keys, 8)})")
    lr_key = next((k for k in _ROW_LR_KEYS if k in keys), None)

    def block(key):
        logged = [r for r in rows if r.get(key) is not None]
        return [r["_step"] for r in logged], [r[key] for r in logged]

    history = {"val": dict(zip(("iter", loss_key), block(loss_key)))}
    if lr_key is not None:
        steps, values = block(lr_key)
        history["train"] = {"iter": steps, "train_lr": values}
    others = [k for k in keys if k not in (loss_key, lr_key)]
    if others:
        history["rows"] = {k: block(k)[1] for k in others}
    return history


def _history_block(history: Mapping, block: str, value_key: str | None, file: Path):
    """(steps, values as floats, value key) of a history block such as val/val_loss; None when absent."""
    part = history.get(block)
    if not isinstance(part, Mapping) or "iter" not in part:
        return None
    if value_key is None:
        return part["iter"], None, None
    if value_key not in part:
        return None
    where = f"{str(file)!r} (run {file.stem!r}): history.{block}"
    for key in ("iter", value_key):
        if not isinstance(part[key], list):
            raise ImportFormatError(f"{where}.{key} is of type {type(part[key]).__name__}, not a list of values")
    if len(part[value_key]) != len(part["iter"]):
        raise ImportFormatError(f"{where}.{value_key} has {len(part[value_key])} values for {len(part['iter'])} "
                                "iterations")
    return _iterations(part["iter"], f"{where}.iter"), _history_values(part[value_key], f"{where}.{value_key}"), \
        value_key


def _history_values(values: list, where: str) -> np.ndarray:
    """A history's logged values as floats: null, NaN and inf kept (left out later and counted), text refused
    by its index (a value that is no number is no loss)."""
    series = pd.Series(values, dtype=object)
    numbers = pd.to_numeric(series, errors="coerce")
    text = np.flatnonzero(numbers.isna().to_numpy() & series.map(lambda v: isinstance(v, (str, list, dict))).to_numpy())
    if len(text):
        raise ImportFormatError(f"{where}: {len(text)} non-numeric value(s) (index {_short(text.tolist())}: "
                                f"{_short(repr(values[i]) for i in text[:3])})")
    return numbers.to_numpy(dtype=float)


def _iterations(values, where: str) -> np.ndarray:
    """A history's iterations as whole numbers; a null, text or fractional one is refused by its index
    (a step is a count of optimizer steps: rounding one would misplace its loss on the curve)."""
    steps = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(steps))
    if len(bad):
        raise ImportFormatError(f"{where}: {len(bad)} missing or non-numeric iteration(s) (index "
                                f"{_short(bad.tolist())}: {_short(repr(values[i]) for i in bad[:3])})")
    frac = np.flatnonzero(steps != np.round(steps))
    if len(frac):
        raise ImportFormatError(f"{where}: {len(frac)} fractional iteration(s) (index {_short(frac.tolist())}: "
                                f"{_short(steps[frac][:3].tolist())}); need whole steps")
    return steps


def _val_loss(history: Mapping, file: Path):
    """The validation loss block: val_loss (nats), else val_perplexity (converted to nats by its name)."""
    for key in _ROW_LOSS_KEYS:
        found = _history_block(history, "val", key, file)
        if found:
            return found
    val = history.get("val", {})
    keys = [k for k in val if k != "iter"] if isinstance(val, Mapping) else []
    raise ImportFormatError(f"{str(file)!r}: no validation loss in history.val (found {keys}; need val_loss "
                            "or val_perplexity)")


def read_wandb_json(paths, *, params: Mapping[str, float] | None = None, family: str | None = None,
                    source: str = "wandb_json", join_branches: bool = True, sidecar=None,
                    tokens_per_step: float | Mapping[str, float] | None = None) -> pd.DataFrame:
    """W&B run exports (one JSON per run, or folders of them, searched recursively) as a long table.

    Per run (``run`` = the file name without .json): params = ``params[run]``, else the ``sidecar``'s
    (CSV run,params[,tokens_per_step,family], :func:`read_params_sidecar`), else summary.parameters;
    tokens per step = ``tokens_per_step[run]``, else the sidecar's, else batch_size x acc_steps x
    sequence_length x world size (world size from 'ws<N>' in the file name, else config.world_size); a
    single ``tokens_per_step`` number must agree with that (it is meant for runs without a count of their
    own; one that disagrees is refused); a key of ``params``/``tokens_per_step`` that names no run is refused;
    step = history.val.iter (whole numbers), tokens = step x tokens per step;
    loss = history.val.val_loss (nats; a perplexity is converted, :func:`loss_to_nats`); seed = config.seed;
    family = '<dataset>-<schedule shape>' of the run's branch tree's first run (a cooldown branch is of its
    parent's family), or ``family``, or the sidecar's for the run; model = the size label of params (e.g. '124M');
    lr = the logged learning rate at the step (history.train.train_lr), else the rebuilt schedule's;
    batch_size = tokens per step; run_tokens = iterations x tokens per step (the planned end of the
    schedule); ``schedule`` = the run's Schedule as JSON, checked against the logged lr
    (``schedule_error``: max relative error after warmup; ``schedule_flag``: error > 1e-3 or unchecked).

    Restarts: the last logged attempt's value is kept per step (:func:`_keep_last_per_step`), the dropped
    duplicates counted per run. Cooldown branches (config.resume_from = '<...>/<parent>/ckpts/<N>', parent
    another run's file name or W&B name, same model, data, peak lr and batch): the parent's checkpoints
    before step N (after the parent's own join) are copied into the branch, marked ``copied`` with
    ``parent_run`` set, so each branch is a whole run; a branch without its parent keeps its own rows.
    Dropped: checkpoints at step 0 (0 tokens), NaN losses, the one 'final-val' evaluation per run.
    """
    files = _json_files(paths)
    report: list[str] = [f"read {len(files)} W&B run export(s) (JSON)"]
    runs: dict[str, dict] = {}
    by_name: dict[str, str] = {}
    for file in files:
        data = _read_export(file)
        run = file.stem
        if run in runs:
            raise ImportFormatError(f"two exports are named {run!r}: {str(runs[run]['file'])!r} and {str(file)!r}; "
                                    "rename one (the file name is the run id)")
        runs[run] = {"file": file, "data": data}
        by_name.setdefault(run, run)
    for run, info in runs.items():  # W&B names second: a file name wins over another run's W&B name
        name = info["data"].get("name")
        if isinstance(name, str):
            by_name.setdefault(name, run)

    _check_run_keys(runs, params, tokens_per_step, f"W&B export(s) under {_short(str(p) for p in files[:2])}")
    side = _sidecar_table(sidecar)
    per_run: dict[str, dict] = {}
    origins: dict[str, int] = {}
    tokens_given: list[str] = []
    disagree: list[str] = []
    conversions: dict[str, int] = {}
    world_notes: dict[str, int] = {}
    tokens_notes: dict[str, int] = {}
    notes: list[str] = []
    unread: dict[str, int] = {}
    for run, info in runs.items():
        file, data = info["file"], info["data"]
        where = f"{str(file)!r} (run {run!r})"
        try:  # a value of the wrong type that no check below names: still one line naming file and run
            config, summary, history = data["config"], data["summary"], data["history"]
            row = side.loc[run] if side is not None and run in side.index else None
            if run in (params or {}):
                value, origin = params[run], "--params / params="
            elif row is not None:
                value, origin = row["params"], "the sidecar"
            else:
                value = summary.get("parameters") if isinstance(summary, Mapping) else None
                origin = "summary.parameters"
            origins[origin] = origins.get(origin, 0) + 1
            try:  # the notation --params and the sidecar take: 1.2e8, 124M
                value = None if value is None else parse_count(value)
            except (TypeError, ValueError):
                raise ImportFormatError(f"{where}: {origin} {value!r} is not a number") from None
            if value is None or not np.isfinite(value) or value <= 0:
                raise ImportFormatError(f"{where}: no parameter count (summary.parameters); give --params {run}=N "
                                        f"(params= in Python) or a sidecar CSV run,params{_unmatched(params, runs)}")
            match = _WORLD.search(file.stem)
            if match:
                world, origin = int(match.group(1)), f"the file name ('ws{match.group(1)}')"
                if config.get("world_size") is not None and _config_number(
                        config, "world_size", where, whole=True, low=0) != world:
                    raise ImportFormatError(f"{where}: world size {world} in the file name but {config['world_size']} "
                                            "in config.world_size")
            elif config.get("world_size") is not None:
                world = _config_number(config, "world_size", where, whole=True, low=0)
                origin = "config.world_size (no 'ws<N>' in the file name)"
            else:
                world, origin = 1, "neither file name nor config: taken as 1"
            lacking = [k for k in ("batch_size", "acc_steps", "sequence_length") if k not in config]
            if lacking:
                raise ImportFormatError(f"{where}: config lacks {lacking[0]!r}, needed for tokens per step")
            parts = [_config_number(config, k, where, whole=True, low=0)
                     for k in ("batch_size", "acc_steps", "sequence_length")]
            per_step = float(np.prod(parts) * world)
            world_notes[origin] = world_notes.get(origin, 0) + 1
            tokens_notes[f"{parts[0]} x {parts[1]} x {parts[2]} x {world} = {per_step:,.0f}"] = (
                tokens_notes.get(f"{parts[0]} x {parts[1]} x {parts[2]} x {world} = {per_step:,.0f}", 0) + 1)
            # a per-run count (RUN=N, the sidecar) overrides the config's product, e.g. where the world size is
            # not in the export; one number for every run is for runs without a count and must not contradict one
            given = tokens_per_step.get(run) if isinstance(tokens_per_step, Mapping) else None
            if given is None and row is not None and "tokens_per_step" in row.index \
                    and pd.notna(row["tokens_per_step"]):
                given = row["tokens_per_step"]
            if given is not None:
                given = parse_count(given)
                tokens_given.append(f"{run} ({given:,.0f}, config {per_step:,.0f})")
                per_step = given
            elif tokens_per_step is not None and not isinstance(tokens_per_step, Mapping) \
                    and float(tokens_per_step) != per_step:
                disagree.append(f"{run} ({per_step:,.0f})")

            steps, values, key = _val_loss(history, file)
            val, dup, differ = _keep_last_per_step(steps, {"value": values})
            loss, rule = loss_to_nats(val["value"].to_numpy(dtype=float), key, where=f"{where}: ")
            conversions[rule] = conversions.get(rule, 0) + 1
            val = val.assign(loss=loss).drop(columns="value")
            key_used = {"val": key, "train": "train_lr"} | {b: None for b in history if b not in ("val", "train")}
            train = _history_block(history, "train", "train_lr", file)
            if train:
                lr_log, lr_dup, _ = _keep_last_per_step(train[0], {"lr": train[1]})
            else:
                lr_log, lr_dup = pd.DataFrame({"step": [], "lr": []}), 0
            for block, part in history.items():  # what else the export holds, reported as not read
                if block != "final-val" and isinstance(part, Mapping):
                    for key, values in part.items():
                        if key not in ("iter", key_used[block]) and isinstance(values, list) and len(values):
                            unread[f"history.{block}.{key}"] = unread.get(f"history.{block}.{key}", 0) + 1
            final_val = history.get("final-val", {})
            n_final = len(final_val.get("iter") or []) if isinstance(final_val, Mapping) else 0
            schedule = _schedule_from_config(config, where)
            shape_family = _SHAPE_FAMILY[schedule.shape]
            per_run[run] = {
                "file": file, "config": config, "params": float(value), "per_step": per_step, "val": val,
                "iterations": _config_number(config, "iterations", where, whole=True, low=0),
                "lr_log": lr_log, "dup": dup, "differ": differ, "lr_dup": lr_dup, "final_val": n_final,
                "schedule": schedule,
                "family": (row["family"] if row is not None and "family" in row.index and pd.notna(row["family"])
                           else family or f"{config.get('dataset', 'unknown')}-{shape_family}"),
                "seed": _config_number(config, "seed", where, whole=True, default=0), "name": data.get("name"),
            }
        except ImportFormatError:
            raise
        except (TypeError, ValueError, KeyError) as error:
            raise ImportFormatError(f"{where}: {error}") from None

    if disagree:
        raise ImportFormatError(f"--tokens-per-step / tokens_per_step={float(tokens_per_step):,.0f} for every run "
                                f"contradicts the config of W&B run(s) {_short(disagree)}; give RUN=N for the runs "
                                "without a count (or for a W&B run, to override its config)")
    # ---- cooldown branches: join each to its parent (parents first, so a chain is joined whole)
    joined, zero, unjoined, restarts, mismatched = [], [], [], [], []
    parent_of: dict[str, tuple[str, int]] = {}
    for run, info in per_run.items():
        resume = info["config"].get("resume_from")
        if not resume or not isinstance(resume, str):
            continue
        parts = resume.rstrip("/").split("/")
        try:
            point = int(parts[-1])
            folder = parts[-3] if parts[-2] == "ckpts" else parts[-2]
        except (ValueError, IndexError):
            unjoined.append(f"{run} (resume_from {resume!r} not '<...>/<run>/ckpts/<step>')")
            continue
        if folder in (run, info["name"]):
            restarts.append(run)
            continue
        parent = by_name.get(folder)
        if parent is None:
            unjoined.append(f"{run} (parent {folder!r} not among the files)")
            continue
        differs = [k for k in _JOIN_KEYS if per_run[parent]["config"].get(k) != info["config"].get(k)]
        if differs:
            mismatched.append(f"{run} (parent {parent!r} differs in {differs})")
            continue
        parent_of[run] = (parent, point)

    done: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def whole(run: str, seen: tuple = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(val rows, logged lr) of ``run`` with its ancestors' rows before each branch point."""
        if run in done:
            return done[run]
        if run in seen:
            raise ImportFormatError(f"runs {list(seen)} resume from each other in a cycle")
        info = per_run[run]
        val = info["val"].assign(copied=False, parent_run=None)
        lr_log = info["lr_log"]
        if run in parent_of:
            parent, point = parent_of[run]
            pval, plr = whole(parent, (*seen, run))
            first = val["step"].min() if len(val) else np.inf
            take = pval.loc[(pval["step"] < point) & (pval["step"] < first)].assign(copied=True, parent_run=parent)
            if point == 0:
                zero.append(run)
            else:
                joined.append((run, parent, point, len(take)))
            val = pd.concat([take, val], ignore_index=True)
            val["parent_run"] = parent
            lr_first = lr_log["step"].min() if len(lr_log) else np.inf
            lr_log = pd.concat([plr.loc[(plr["step"] <= point) & (plr["step"] < lr_first)], lr_log], ignore_index=True)
        done[run] = (val, lr_log)
        return done[run]

    frames, lr_filled = [], 0
    check: dict[str, tuple[float, float]] = {}
    for run, info in per_run.items():
        val, lr_log = whole(run) if join_branches else (info["val"].assign(copied=False, parent_run=None),
                                                       info["lr_log"])
        schedule = info["schedule"]
        logged = lr_log.set_index("step")["lr"].astype(float) if len(lr_log) else pd.Series(dtype=float)
        check[run] = (_schedule_error(schedule, logged.index.to_numpy(dtype=float), logged.to_numpy(dtype=float))
                      if len(logged) else (float("nan"), float("nan")))
        lr = np.array(logged.reindex(val["step"]).to_numpy(dtype=float), copy=True)
        fill = ~np.isfinite(lr)
        lr[fill] = schedule.lr(val["step"].to_numpy(dtype=float)[fill])
        lr_filled += int(fill.sum())
        per_step = info["per_step"]
        frames.append(pd.DataFrame({
            "family": info["family"], "model": _label(info["params"]), "run": run, "seed": info["seed"],
            "params": info["params"], "tokens": val["step"].to_numpy(dtype=float) * per_step,
            "step": val["step"].astype(int), "loss": val["loss"].to_numpy(dtype=float), "loss_name": "val_loss",
            "source": source, "batch_size": per_step, "lr": lr, "run_tokens": info["iterations"] * per_step,
            "schedule": schedule.to_json(), "peak_lr": schedule.peak_lr,
            "schedule_error": check[run][0], "schedule_flag": not check[run][0] <= SCHEDULE_TOLERANCE,
            "copied": val["copied"].to_numpy(dtype=bool), "parent_run": val["parent_run"].to_numpy(dtype=object),
        }))
    df = pd.concat(frames, ignore_index=True)
    df["flops"] = 6.0 * df["params"] * df["tokens"]
    # a branch continues its parent's run (one model, data and start; they share a run offset): it is of the
    # family of its tree's first run, whatever its own schedule's shape
    own_family = df.groupby("run")["family"].first()
    tree_family = branch_roots(df).map(own_family)
    moved = sorted(tree_family.index[tree_family != own_family.loc[tree_family.index]])
    df["family"] = df["run"].map(tree_family)

    # ---- what was left out
    at_zero = df["tokens"] <= 0
    nan_loss = ~np.isfinite(df["loss"].to_numpy(dtype=float))
    left = []
    if at_zero.any():
        left.append(f"left out {int(at_zero.sum())} checkpoint(s) at step 0 in {df.loc[at_zero, 'run'].nunique()} "
                    "run(s): 0 tokens (the initial model), and the table needs tokens > 0")
    if (nan_loss & ~at_zero).any():
        bad = nan_loss & ~at_zero
        left.append(f"left out {int(bad.sum())} checkpoint(s) with a missing (null) or non-finite loss (NaN, inf: "
                    f"a diverged value) (runs "
                    f"{_short(df.loc[bad, 'run'].unique())})")
    df = df.loc[~at_zero & ~nan_loss].reset_index(drop=True)
    n_final = sum(i["final_val"] for i in per_run.values())
    if n_final:
        left.append(f"left out {n_final} 'final-val' evaluation(s) (at a run's last iteration, on a larger "
                    "evaluation set than val_loss's, so not the same metric; repeated after restarts)")

    # ---- report
    report.append(f"{df['run'].nunique()} runs, {len(df)} rows; families: "
                  + ", ".join(f"{k} ({v} runs)" for k, v in df.groupby("family")["run"].nunique().items()))
    report.append("params from " + ", ".join(f"{k} ({v} runs)" for k, v in origins.items())
                  + f": {_short(df.groupby('model')['params'].first().sort_values().index, 12)}")
    report.append("tokens per step = batch_size x acc_steps x sequence_length x world size: "
                  + "; ".join(f"{k} ({v} runs)" for k, v in tokens_notes.items())
                  + "; world size from " + "; ".join(f"{k} ({v} runs)" for k, v in world_notes.items()))
    if tokens_given:
        report.append(f"tokens per step given (--tokens-per-step RUN=N or the sidecar) instead of the config's for "
                      f"{len(tokens_given)} run(s): {_short(tokens_given)}")
    report.extend(f"loss: {rule} ({n} runs)" for rule, n in conversions.items())
    dups = {r: (i["dup"], i["differ"]) for r, i in per_run.items() if i["dup"]}
    if dups:
        report.append(f"restarts: {len(dups)} run(s) log some steps more than once; kept the last logged attempt per "
                      f"step and dropped {sum(d for d, _ in dups.values())} duplicate checkpoint(s) "
                      f"({sum(x for _, x in dups.values())} with a different loss than the kept one); per run:")
        report.extend(f"  {r}: {d} duplicate(s) dropped ({x} differing)" for r, (d, x) in dups.items())
    lr_dups = sum(i["lr_dup"] for i in per_run.values())
    if lr_dups:
        report.append(f"restarts: {lr_dups} duplicated logged-lr value(s) dropped the same way (last attempt kept)")
    if restarts:
        report.append(f"{len(restarts)} run(s) resume from their own checkpoint (a restart, nothing to join): "
                      f"{_short(restarts)}")
    copied = df.loc[df["copied"]].groupby("run").size()  # counted after the step-0 rows are left out
    joined = [(r, p, k, int(copied.get(r, 0))) for r, p, k, _ in joined]
    if joined:
        report.append(f"cooldown branches joined to their parent: {len(joined)}, {sum(n for *_, n in joined)} parent "
                      "checkpoint(s) copied before the branch point (column copied = True, parent_run = the parent); "
                      "each branch keeps its own run name:")
        report.extend(f"  {r} <- {p} before step {k}: {n} checkpoint(s)" for r, p, k, n in joined)
    if moved:
        report.append(f"{len(moved)} branch(es) of another schedule shape than their parent take its family (a branch "
                      f"continues its parent's run): {_short(moved)}")
    if zero:
        report.append(f"{len(zero)} branch(es) resume from their parent's step-0 checkpoint and log from step 0: "
                      f"nothing copied ({_short(zero)})")
    for text, group in (("no parent file", unjoined), ("parent config differs", mismatched)):
        if group:
            report.append(f"{len(group)} branch(es) not joined ({text}); kept with their own rows only, run_tokens = "
                          "their final tokens:")
            report.extend(f"  {line}" for line in group)  # one per line, as the joined ones
    if not join_branches:
        report.append("branches not joined (join_branches=False)")
    report.extend(left)
    if unread:
        report.append("not read (other metrics): " + ", ".join(f"{k} ({v} runs)" for k, v in sorted(unread.items())))
    report.append(f"lr: the logged train_lr at each checkpoint's step; the rebuilt schedule's at {lr_filled} "
                  "checkpoint(s) without a logged lr")
    errors = {r: e for r, (e, _) in check.items()}
    flagged = {r: e for r, e in errors.items() if not e <= SCHEDULE_TOLERANCE}
    ok = [e for e in errors.values() if e <= SCHEDULE_TOLERANCE]
    report.append(f"schedule check (rebuilt Schedule vs logged lr after warmup, relative): {len(ok)} of {len(errors)} "
                  f"run(s) within {SCHEDULE_TOLERANCE:g} (max {max(ok) if ok else float('nan'):.2g})"
                  + (f"; {len(flagged)} flagged (schedule_flag = True):" if flagged else ""))
    report.extend(f"  FLAGGED {r}: max relative error {e:.3g}" + ("" if np.isfinite(e) else " (no logged lr)")
                  for r, e in flagged.items())
    warm = [w for _, w in check.values() if np.isfinite(w)]
    if warm:
        report.append(f"warmup not checked: logged warmup starts at lr/100 (cosine-shaped for 'cos'), Schedule's at 0 "
                      f"(max relative difference in warmup {max(warm):.2g})")
    report.extend(notes)
    df.attrs["import_report"] = report
    df.attrs["schedule_check"] = {r: (None if not np.isfinite(e) else e) for r, e in errors.items()}
    return _validate_curves(df, f"W&B export(s) {_short(str(p) for p in files[:1])}"
                            + (" ..." if len(files) > 1 else ""))


# --------------------------------------------------------------------------- params for CSV / TensorBoard


def read_params_sidecar(path: str | os.PathLike) -> pd.DataFrame:
    """A small CSV ``run,params[,tokens_per_step,family]`` (one row per run; counts as 1.2e8 or 124M) for
    chart exports, TensorBoard, and W&B JSON exports (where it overrides the export's counts)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sidecar file {str(path)!r} does not exist")
    table = _read_csv(path, "sidecar")
    # 'run, params' or ' small ': spaces around a name are the CSV's layout, not part of the name
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("run", "params") if c not in table.columns]
    if missing:
        raise ImportFormatError(f"sidecar {str(path)!r}: missing column(s) {missing}; need run,params"
                                "[,tokens_per_step,family]")
    table["run"] = table["run"].astype(str).str.strip()
    if "family" in table.columns:
        table["family"] = table["family"].map(lambda v: v.strip() if isinstance(v, str) else v)
    dup = table.index[table["run"].duplicated()]
    if len(dup):
        raise ImportFormatError(f"sidecar {str(path)!r}: run {table.loc[dup[0], 'run']!r} listed twice (lines "
                                f"{[int(i) + 2 for i in dup[:5]]})")
    for column in ("params", "tokens_per_step"):
        if column in table.columns:  # the notation --params takes: 1.2e8, 124M, 1.5B
            numbers = table[column].map(_count)
            # params is needed for every run listed; an empty tokens_per_step cell leaves the run's own count
            given = table[column].notna() if column == "tokens_per_step" else True
            bad = table.index[given & ~(numbers > 0)]
            if len(bad):
                raise ImportFormatError(f"sidecar {str(path)!r}, column {column!r}: need positive numbers (lines "
                                        f"{[int(i) + 2 for i in bad[:5]]})")
            table[column] = numbers.astype(float)
    return table.set_index("run")


def _count(value) -> float:
    """A count as --params reads it (1.2e8, 124M); NaN where it is none."""
    try:
        return parse_count(value) if pd.notna(value) else float("nan")
    except ValueError:
        return float("nan")


def _sidecar_table(sidecar) -> pd.DataFrame | None:
    return read_params_sidecar(sidecar) if sidecar is not None and not isinstance(sidecar, pd.DataFrame) else sidecar


def _run_settings(runs, where: str, params, sidecar, tokens_per_step, family,
                  report: list[str] | None = None, known=None) -> dict[str, dict]:
    """params, tokens per step and family of each run, where each came from added to ``report``.

    params: ``params[run]``, then the sidecar's. Tokens per step: ``tokens_per_step[run]``, then the
    sidecar's row for the run, then one ``tokens_per_step`` number for every run: a per-run count is more
    specific than one for all runs (as for W&B JSON runs), so it wins; where the two differ the report says so.
    ``known``: every run the input names (runs left out for want of values included), for the key check.
    """
    _check_run_keys(runs if known is None else known, params, tokens_per_step, where)
    side = _sidecar_table(sidecar)
    out, missing, no_tokens, overridden = {}, [], [], []
    params_from: dict[str, int] = {}
    tokens_from: dict[str, int] = {}
    for run in runs:
        row = side.loc[run] if side is not None and run in side.index else None
        if isinstance(params, Mapping) and run in params:
            value, origin = params[run], "--params / params="
        else:
            value, origin = (None, None) if row is None else (row["params"], "the sidecar")
        side_tokens = (row["tokens_per_step"] if row is not None and "tokens_per_step" in row.index
                       and pd.notna(row["tokens_per_step"]) else None)
        if isinstance(tokens_per_step, Mapping) and tokens_per_step.get(run) is not None:
            per_step, tokens_origin = tokens_per_step[run], "--tokens-per-step RUN=N / tokens_per_step={run: N}"
        elif side_tokens is not None:
            per_step, tokens_origin = side_tokens, "the sidecar"
            if tokens_per_step is not None and not isinstance(tokens_per_step, Mapping) \
                    and _count(tokens_per_step) != float(side_tokens):
                overridden.append(f"{run} ({float(side_tokens):,.0f})")
        elif tokens_per_step is not None and not isinstance(tokens_per_step, Mapping):
            per_step, tokens_origin = tokens_per_step, "--tokens-per-step N / tokens_per_step=N (every run)"
        else:
            per_step, tokens_origin = None, None
        fam = row["family"] if row is not None and "family" in row.index and pd.notna(row["family"]) else family
        for given, what in ((value, "params"), (per_step, "tokens per step")):
            if given is not None and not _count(given) > 0:  # the notation --params takes: 1.2e8, 124M
                raise ImportFormatError(f"{where}: run {run!r}: {what} {given!r} is not a positive number")
        if value is None:
            missing.append(run)
        else:
            params_from[origin] = params_from.get(origin, 0) + 1
        if per_step is None:
            no_tokens.append(run)
        else:
            tokens_from[tokens_origin] = tokens_from.get(tokens_origin, 0) + 1
        out[run] = {"params": None if value is None else _count(value),
                    "per_step": None if per_step is None else _count(per_step), "family": fam or "default"}
    if missing:
        raise ImportFormatError(f"{where}: no parameter count for run(s) {_short(missing)}; give --params RUN=N "
                                "(params={'RUN': N}) or a sidecar CSV run,params[,tokens_per_step,family]"
                                + _unmatched(params, runs))
    if no_tokens:
        raise ImportFormatError(f"{where}: no tokens per step for run(s) {_short(no_tokens)}; give --tokens-per-step "
                                "(tokens_per_step=) or a tokens_per_step column in the sidecar"
                                + _unmatched(tokens_per_step, runs, "--tokens-per-step / tokens_per_step="))
    if report is not None:
        report.append("params from " + ", ".join(f"{k} ({v} run(s))" for k, v in params_from.items())
                      + "; tokens per step from " + ", ".join(f"{k} ({v} run(s))" for k, v in tokens_from.items()))
        if overridden:
            report.append(f"tokens per step: the sidecar's per-run count, not --tokens-per-step "
                          f"{_count(tokens_per_step):,.0f}, for {len(overridden)} run(s): {_short(overridden)}")
    return out


def _long_from_curves(curves: pd.DataFrame, settings: dict, where: str, source: str,
                      report: list[str]) -> pd.DataFrame:
    """curves (run, metric, step, value, [lr]) -> the long table: dedup steps, convert units, drop step 0/NaN."""
    frames, dup_lines, rules = [], [], {}
    for (run, metric), group in curves.groupby(["run", "metric"], sort=False):
        kept, dup, differ = _keep_last_per_step(group["step"], {"value": group["value"]})
        if dup:
            dup_lines.append(f"  {run} / {metric}: {dup} duplicate step(s) dropped ({differ} differing), last kept")
        loss, rule = loss_to_nats(kept["value"].to_numpy(dtype=float), metric, where=f"{where}, run {run!r}: ")
        rules[rule] = rules.get(rule, 0) + 1
        info = settings[run]
        frames.append(pd.DataFrame({
            "family": info["family"], "model": _label(float(info["params"])), "run": run, "seed": 0,
            "params": float(info["params"]), "tokens": kept["step"].to_numpy(dtype=float) * float(info["per_step"]),
            "step": kept["step"].astype(int), "loss": loss, "loss_name": metric, "source": source,
            "batch_size": float(info["per_step"]),
        }))
    df = pd.concat(frames, ignore_index=True)
    df["flops"] = 6.0 * df["params"] * df["tokens"]
    if dup_lines:
        report.append(f"restarts: {len(dup_lines)} curve(s) log a step more than once; last logged kept:")
        report.extend(dup_lines)
    report.extend(f"loss: {rule} ({n} curve(s))" for rule, n in rules.items())
    at_zero = df["tokens"] <= 0
    bad = ~np.isfinite(df["loss"].to_numpy(dtype=float)) & ~at_zero
    if at_zero.any():
        report.append(f"left out {int(at_zero.sum())} checkpoint(s) at step <= 0 (no tokens seen yet)")
    if bad.any():
        report.append(f"left out {int(bad.sum())} checkpoint(s) with a non-finite loss (NaN or inf: a diverged value, "
                      f"or a perplexity <= 0) (runs "
                      f"{_short(df.loc[bad, 'run'].unique())})")
    df = df.loc[~at_zero & ~bad].reset_index(drop=True)
    report.append(f"{df['run'].nunique()} run(s), {len(df)} rows; tokens = step x tokens per step; flops = 6ND; seed 0")
    return df


# --------------------------------------------------------------------------- W&B CSV chart export

_STEP_NAMES = ("step", "_step", "global_step", "trainer/global_step", "iter", "iteration")


def read_wandb_csv(path: str | os.PathLike, *, params: Mapping[str, float] | None = None, sidecar=None,
                   tokens_per_step: float | Mapping[str, float] | None = None, family: str | None = None,
                   source: str | None = None) -> pd.DataFrame:
    """A W&B chart export (wide CSV) as a long table.

    Columns: a step column ('Step', '_step', 'global_step', ...) and one per run and metric named
    ``"<run> - <metric>"``; the ``__MIN``/``__MAX`` columns W&B adds (the band of a smoothed or sampled
    chart) are left out and counted. No model size is in the file: params come from ``params={run: N}``
    or the ``sidecar`` CSV (run,params[,tokens_per_step,family]); tokens = step x tokens per step (a run's
    own count, ``tokens_per_step[run]`` or the sidecar's, before one number for every run). Only a metric
    named as a loss (loss, perplexity, ppl, bits, nll, cross_entropy) is read, each its own ``loss_name``,
    in nats (:func:`loss_to_nats`); other metrics (epoch, tokens, mfu) and runs without values are named as
    left out. Empty cells (steps a run did not
    log) are skipped, duplicated steps keep the last row; both are reported in ``attrs["import_report"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {str(path)!r} does not exist")
    where = f"{str(path)!r}"
    # only an empty cell is a step the run did not log; 'nan' or 'inf' is a value it logged (a diverged loss)
    raw = _read_csv(path, "chart export", keep_default_na=False, na_values=[""])
    lower = {c.lower(): c for c in raw.columns}
    step_col = next((lower[n] for n in _STEP_NAMES if n in lower), None)
    if step_col is None:
        raise ImportFormatError(f"{where}: no step column (looked for {list(_STEP_NAMES)}, any case); "
                                f"columns: {_short(raw.columns, 8)}")
    steps = pd.to_numeric(raw[step_col], errors="coerce")
    if steps.isna().any():
        rows = [int(i) + 2 for i in raw.index[steps.isna()][:5]]
        raise ImportFormatError(f"{where}, column {step_col!r}: non-numeric or empty step(s) (lines {rows})")
    fractional = raw.index[steps != np.round(steps)]
    if len(fractional):  # a step counts optimizer steps: cutting 1.5 to 1 would misplace its loss on the curve
        raise ImportFormatError(f"{where}, column {step_col!r}: {len(fractional)} fractional step(s) (lines "
                                f"{[int(i) + 2 for i in fractional[:5]]}: {_short(steps[fractional][:3].tolist())}); "
                                "need whole optimizer steps")
    report = [f"read {where}: W&B chart export, {len(raw)} rows, step column {step_col!r}"]
    bands = [c for c in raw.columns if c.endswith(("__MIN", "__MAX"))]
    other = [c for c in raw.columns if c != step_col and c not in bands and " - " not in c]
    curves_cols = [c for c in raw.columns if c != step_col and c not in bands and " - " in c]
    if bands:
        report.append(f"left out {len(bands)} __MIN/__MAX column(s) (W&B's band around a smoothed or sampled curve, "
                      "not a logged value)")
    if other:
        report.append(f"left out {len(other)} column(s) not named '<run> - <metric>': {_short(other)}")
    if not curves_cols:
        raise ImportFormatError(f"{where}: no '<run> - <metric>' columns (columns: {_short(raw.columns, 8)})")
    # a chart export holds any logged metric (epoch, tokens, mfu, memory, time...): only a loss-like name is a
    # loss curve (no name test can tell an 'epoch' from a loss in nats); the others are listed as left out
    named = [(c, *(part.strip() for part in c.rsplit(" - ", 1))) for c in curves_cols]
    losses = [(c, run, metric) for c, run, metric in named if _LOSS_COLUMN.search(metric)
              and not _SCALER_TAG.search(metric)]
    if not losses:
        for c, run, metric in named:  # a score or lr named as such: loss_to_nats' reason, naming run and metric
            loss_to_nats([], metric, where=f"{where}, run {run!r}: ")
        raise ImportFormatError(f"{where}: no loss column (a metric named with 'loss', 'perplexity', 'ppl', 'bits', "
                                f"'nll' or 'cross_entropy'); columns: {_short(curves_cols, 8)}")
    loss_columns = {c for c, _, _ in losses}
    not_losses = [c for c in curves_cols if c not in loss_columns]
    if not_losses:
        report.append(f"left out {len(not_losses)} non-loss column(s) (no 'loss', 'perplexity', 'ppl', 'bits', 'nll' "
                      f"or 'cross_entropy' in the metric's name): {_short(not_losses, 8)}")
    long, empty, without = [], 0, []
    for column, run, metric in losses:
        values = pd.to_numeric(raw[column], errors="coerce")
        blank = raw[column].isna() | (raw[column].astype(str).str.strip() == "")
        text = raw[column].astype(str).str.strip().str.lower()
        text_bad = raw.index[values.isna() & ~blank & ~text.isin(["nan", "+nan", "-nan"])]
        if len(text_bad):
            raise ImportFormatError(f"{where}, column {column!r}: non-numeric value(s) (lines "
                                    f"{[int(i) + 2 for i in text_bad[:5]]})")
        present = ~blank
        if not present.any():  # a run the chart lists without one logged value: named, not dropped unseen
            without.append((run, column))
            continue
        empty += int(blank.sum())
        long.append(pd.DataFrame({"run": run, "metric": metric, "step": steps[present], "value": values[present]}))
    if empty:
        report.append(f"skipped {empty} empty cell(s) (steps at which a run logged nothing)")
    kept_runs = {frame["run"].iloc[0] for frame in long}
    for run in dict.fromkeys(r for r, _ in without):
        columns = [c for r, c in without if r == run]
        report.append(f"left out run {run!r}: no values (column(s) {_short(columns)} empty)" if run not in kept_runs
                      else f"left out column(s) {_short(columns)} of run {run!r}: no values")
    if not long:
        raise ImportFormatError(f"{where}: no values under the '<run> - <metric>' columns "
                                f"({'a header only' if raw.empty else 'every cell empty'})")
    curves = pd.concat(long, ignore_index=True)
    header_runs = list(dict.fromkeys(run for _, run, _ in named))
    for run in header_runs:
        if run not in {r for _, r, _ in losses}:
            report.append(f"left out run {run!r}: no loss column")
    settings = _run_settings(curves["run"].unique(), where, params, sidecar, tokens_per_step, family, report,
                             known=header_runs)
    df = _long_from_curves(curves, settings, where, source or path.name, report)
    df.attrs["import_report"] = report
    df.attrs["left_out_runs"] = [r for r in header_runs if r not in settings]  # keys for them name a run
    return _validate_curves(df, where)


# --------------------------------------------------------------------------- TensorBoard


def _event_accumulator():
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise MissingExtraError("reading TensorBoard event files needs the 'tb' extra: pip install 'bayeslaw[tb]' "
                                "(installs tensorboard)") from None
    return EventAccumulator


_LOSS_TAG = re.compile(r"loss|perplexity|ppl|cross[_-]?entropy", re.IGNORECASE)
# mixed-precision loss scalers (Megatron's 'loss-scale', DeepSpeed's 'loss_scale', 'grad-scale'): a factor
# of 2^k the loss is multiplied by before backward, not a loss, though the name says 'loss'
_SCALER_TAG = re.compile(r"(loss|grad)[\s_-]*scal(e|er|ing)", re.IGNORECASE)
_LR_TAG = re.compile(r"(^|[/_])(lr|learning[_-]?rate)", re.IGNORECASE)
# a chart column's metric is a loss by these names (a per-byte one too, for loss_to_nats to refuse with its reason)
_LOSS_COLUMN = re.compile(_LOSS_TAG.pattern + r"|nll|xent|" + _BITS.pattern + "|" + _PER_BYTE.pattern, re.IGNORECASE)


def _event_files(path: Path) -> list[Path]:
    if path.is_file():
        if "tfevents" not in path.name:
            raise ImportFormatError(f"{str(path)!r}: not a TensorBoard event file (no 'tfevents' in the name)")
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*tfevents*") if p.is_file())
        if not found:
            raise ImportFormatError(f"folder {str(path)!r} holds no TensorBoard event files (*tfevents*)")
        return found
    raise FileNotFoundError(f"file {str(path)!r} does not exist")


def _lr_tags_differ(lr: pd.DataFrame, run: str, tag: str, other: str) -> bool:
    """Whether ``other``'s lr differs from ``tag``'s (relative 1e-6) at a step both log for ``run``."""
    values = [lr[(lr["run"] == run) & (lr["metric"] == t)].drop_duplicates("step", keep="last").set_index("step")
              ["value"] for t in (tag, other)]
    both = values[0].index.intersection(values[1].index)
    return not np.allclose(values[0].loc[both], values[1].loc[both], rtol=1e-6, atol=0.0)


def read_tensorboard(path: str | os.PathLike, *, tags: Iterable[str] | None = None,
                     params: Mapping[str, float] | None = None, sidecar=None,
                     tokens_per_step: float | Mapping[str, float] | None = None, family: str | None = None,
                     source: str | None = None) -> pd.DataFrame:
    """TensorBoard event files (a file, or a folder searched recursively) as a long table.

    A run is the folder holding its event files (relative to ``path``; several files in one folder,
    e.g. after a restart, are one run, ordered by wall time, the last logged value per step kept).
    Loss curves: the scalar ``tags`` given (``bayeslaw import --tags``), else every tag with 'loss',
    'perplexity', 'ppl' or 'cross_entropy' in its name but for loss scalers ('loss-scale', 'loss_scale',
    'grad-scale': fp16 scaling factors), each its own ``loss_name``, in nats; a learning-rate tag ('lr',
    'learning_rate') fills the ``lr`` column (several, e.g. per param group 'lr/pg0', 'lr/pg1': the
    first by name, the others reported as left out, with whether they differ); other tags, and runs
    without a loss tag, are left out and listed. An event file that is not empty but yields no event
    (corrupt, truncated at the start, or not an event file) is refused, naming it. Params and tokens per
    step as for :func:`read_wandb_csv`. Reads through tensorboard's EventAccumulator (extra ``[tb]``).
    """
    accumulator = _event_accumulator()
    path = Path(path)
    files = _event_files(path)
    base = path if path.is_dir() else path.parent
    tags = None if tags is None else ([tags] if isinstance(tags, str) else list(tags))
    report = [f"read {len(files)} TensorBoard event file(s) under {str(path)!r}"]
    rows, lr_rows, skipped, empty = [], [], set(), []
    run_tags: dict[str, set] = {}
    for file in files:
        rel = file.parent.relative_to(base).as_posix() if file.parent != base else (base.name or "run")
        run_tags.setdefault(rel, set())
        acc = accumulator(str(file), size_guidance={"scalars": 0, "tensors": 0})
        try:
            acc.Reload()
            acc.FirstEventTimestamp()  # every event file starts with a file_version event
        except ValueError:  # EventAccumulator logs a read error instead of raising: no event read at all
            size = file.stat().st_size
            if size == 0:  # a writer that was opened and never flushed: nothing to lose
                empty.append(file)
                continue
            raise ImportFormatError(f"{str(file)!r}: no TensorBoard event could be read from its {size:,} bytes "
                                    "(corrupt or not an event file); remove it or give the other files") from None
        except Exception as error:  # a corrupt or truncated file: name it
            raise ImportFormatError(f"{str(file)!r}: cannot read TensorBoard events ({error})") from None
        scalars = {t: [(e.wall_time, e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags().get("scalars", [])}
        for tag in acc.Tags().get("tensors", []):  # TF2 writes scalars as 0-d tensors
            from tensorboard.util import tensor_util
            events = []
            for e in acc.Tensors(tag):
                value = tensor_util.make_ndarray(e.tensor_proto)
                if value.size == 1:
                    events.append((e.wall_time, e.step, float(value.reshape(-1)[0])))
            if events:
                scalars.setdefault(tag, events)
        for tag, events in scalars.items():
            run_tags[rel].add(tag)
            if tags is not None:
                wanted = tag in tags
            else:
                wanted = bool(_LOSS_TAG.search(tag)) and not _SCALER_TAG.search(tag)
            target = rows if wanted else (lr_rows if _LR_TAG.search(tag) else None)
            if target is None:
                skipped.add(tag)
                continue
            target.extend({"run": rel, "metric": tag, "wall": w, "step": s, "value": v} for w, s, v in events)
    all_tags = sorted(set().union(*run_tags.values())) if run_tags else []
    if tags is not None:
        found = {r["metric"] for r in rows}
        missing = [t for t in tags if t not in found]
        if missing:
            raise ImportFormatError(f"{str(path)!r}: tag(s) {missing} not found; scalar tags: {_short(all_tags, 12)}")
    if not rows:
        raise ImportFormatError(f"{str(path)!r}: no loss tags (names with 'loss', 'perplexity', 'ppl', loss scalers "
                                f"excepted); scalar tags: {_short(all_tags, 12)}; select them with --tags TAG "
                                "(tags=[...] in Python)")
    if empty:
        report.append(f"left out {len(empty)} empty event file(s) (0 bytes): {_short(str(f) for f in empty)}")
    with_loss = {r["run"] for r in rows}
    for run, found in run_tags.items():  # a run without a loss curve is named, never dropped unseen
        if run not in with_loss:
            report.append(f"left out run {run!r}: no loss tag (scalar tags: {_short(sorted(found), 8) or 'none'})")
    scalers = sorted(t for t in skipped if _SCALER_TAG.search(t) and _LOSS_TAG.search(t))
    if scalers:
        report.append(f"left out loss-scaler tag(s) {_short(scalers)} (fp16 loss scaling factors, not losses)")
    if skipped - set(scalers):
        report.append(f"left out {len(skipped - set(scalers))} non-loss scalar tag(s): "
                      f"{_short(sorted(skipped - set(scalers)), 8)}")
    curves = pd.DataFrame(rows).sort_values(["run", "metric", "wall"], kind="stable")
    settings = _run_settings(curves["run"].unique(), f"{str(path)!r}", params, sidecar, tokens_per_step, family,
                             report, known=list(run_tags))
    df = _long_from_curves(curves, settings, f"{str(path)!r}", source or "tensorboard", report)
    if lr_rows:
        # one lr tag per run: several (a trainer's per-param-group 'lr/pg0', 'lr/pg1') may differ, and merging
        # them would mix two rates; the first by name (param group 0, the model's main group) is kept, the
        # others named in the report (with how often they differ from it)
        lr = pd.DataFrame(lr_rows).sort_values(["run", "wall"], kind="stable")
        chosen = lr.groupby("run")["metric"].min()
        lr_all, lr = lr, lr[lr["metric"] == lr["run"].map(chosen)]
        for run, tag in chosen.items():
            others = sorted(set(lr_all.loc[lr_all["run"] == run, "metric"]) - {tag})
            if others:
                differ = [o for o in others if _lr_tags_differ(lr_all, run, tag, o)]
                report.append(f"lr of run {run!r} from tag {tag!r} (the first by name); left out lr tag(s) "
                              f"{_short(others)}" + (f", which differ from it: {_short(differ)}" if differ else
                                                     " (the same values)"))
        lr = lr.drop_duplicates(["run", "step"], keep="last")
        df = df.merge(lr[["run", "step", "value"]].rename(columns={"value": "lr"}), on=["run", "step"], how="left")
        report.append(f"lr from tag(s) {_short(sorted(set(chosen)))} at "
                      f"{int(df['lr'].notna().sum())} of {len(df)} checkpoints")
    df.attrs["import_report"] = report
    return _validate_curves(df, f"{str(path)!r}")


# --------------------------------------------------------------------------- minimal tables


def complete_minimal(df: pd.DataFrame, *, source: str = "user", family: str = "default",
                     name: str | None = None, first_row: int = 0, duplicates: bool | str = True) -> pd.DataFrame:
    """A minimal table ``run, params, tokens, loss`` (optionally family, step, ...) completed to the schema.

    For laws of steps, ``run, params, step, loss`` with a ``schedule`` column (``tokens`` then missing:
    NaN). Defaults for the columns it lacks: family ``family``, model = size label of params (e.g.
    '124M'), seed 0, step -1, flops = 6 N D, loss_name 'loss' (taken as nats), source ``source``. Counts
    may be size labels ('150M', as --params reads them). A given ``loss_name`` names the metric: one that
    is no loss (an accuracy, a learning rate) is refused; in a minimal table a perplexity or bits metric is
    converted to nats (:func:`loss_to_nats`), while a complete table (every schema column) is in the
    schema's units already (an importer's output keeps e.g. 'val/perplexity' beside a loss in nats).
    Columns it has are kept; the filled ones are listed in ``attrs["import_report"]``. ``name``,
    ``first_row`` and ``duplicates`` as in :func:`~bayeslaw.data.validation.validate`; ``duplicates="last"``
    keeps the last row of a (run, step, tokens, loss_name) logged twice (a restart's), as the other
    importers do, and counts the rows dropped.
    """
    where = f" in {name}" if name else ""
    if not isinstance(df, pd.DataFrame):
        raise ImportFormatError(f"expected a pandas DataFrame{where}, got {type(df).__name__}")
    # tokens or, for laws of the schedule, the step: the one a checkpoint's position along its run is read from
    position = "step" if "tokens" not in df.columns and "step" in df.columns else "tokens"
    missing = [c for c in ("run", "params", position, "loss") if c not in df.columns]
    if missing:
        raise ImportFormatError(f"missing column(s) {missing}{where}; a minimal table needs run, params, tokens, loss "
                                "(or run, params, step, loss with a schedule; optionally family, ...)")
    complete = set(REQUIRED_COLUMNS) <= set(df.columns)
    out = df.copy()
    report = []
    for column in ("params", "tokens"):  # one count parser for --params, the sidecar and tables: 150M, 1.2e8
        if column in out.columns and not pd.api.types.is_numeric_dtype(out[column]):
            counts = out[column].map(_count)
            labels = counts.notna() & pd.to_numeric(out[column], errors="coerce").isna()
            out[column] = out[column].where(counts.isna(), counts)  # an unreadable cell stays, for validate to name
            if labels.any():
                report.append(f"{column}: {int(labels.sum())} size label(s) read as counts (e.g. "
                              f"{df[column][labels].iloc[0]!r} = {counts[labels].iloc[0]:g})")
    if "loss_name" in out.columns:
        loss = pd.to_numeric(out["loss"], errors="coerce")
        for metric, rows in out.groupby("loss_name", sort=False).groups.items():  # a missing name: validate's
            lines = ", ".join(str(i + first_row) for i in rows[:5])
            converted, rule = loss_to_nats(loss.loc[rows].to_numpy(dtype=float), str(metric),
                                           where=f"{name or 'table'}, column 'loss_name' (rows {lines}): ")
            as_is = "taken as nats" in rule or "already nats" in rule
            if complete and not as_is:
                report.append(f"loss: {metric!r} taken as nats as it is (a complete table is in the schema's units; "
                              f"{len(rows)} rows)")
            elif not as_is:
                numeric = loss.loc[rows].notna().to_numpy()
                out["loss"] = out["loss"].astype(float if pd.api.types.is_numeric_dtype(out["loss"]) else object)
                out.loc[rows[numeric], "loss"] = converted[numeric]
                report.append(f"loss: {rule} ({len(rows)} rows)")
    params = pd.to_numeric(out["params"], errors="coerce")
    tokens = pd.to_numeric(out["tokens"], errors="coerce") if "tokens" in out.columns else np.nan
    defaults = {
        "family": (lambda: family, f"family {family!r}"),
        "model": (lambda: params.map(lambda p: _label(p) if np.isfinite(p) and p > 0 else "unknown"),
                  "model = size label"),
        "seed": (lambda: 0, "seed 0"), "step": (lambda: -1, "step -1"),
        "tokens": (lambda: np.nan, "tokens missing where the step is given"),
        "flops": (lambda: 6.0 * params * tokens, "flops 6ND"),
        "loss_name": (lambda: "loss", "loss_name 'loss' (taken as nats)"),
        "source": (lambda: source, f"source {source!r}"),
    }
    filled = []
    for column, (make, _) in defaults.items():
        if column not in out.columns:
            out[column] = make()
            filled.append(column)
    report[:0] = [f"minimal table{where}: {len(out)} rows, {out['run'].nunique()} run(s)",
                  "filled with defaults: " + (", ".join(filled) + " (" + ", ".join(defaults[c][1] for c in filled)
                                              + ")" if filled else "nothing (all columns given)")]
    keep_last = duplicates == "last"
    out = validate(out, name=name, first_row=first_row, duplicates=False if keep_last else duplicates)
    if keep_last:  # after validate, so that its errors number the input's rows
        out, dropped = _keep_last_rows(out)
        if dropped:
            report.append(f"restarts: {sum(dropped.values())} row(s) repeat a checkpoint (run, tokens or step, "
                          "loss_name) logged again later; kept the last logged attempt per step and dropped the others: "
                          + _short(f"{run} ({n})" for run, n in dropped.items()))
    out.attrs["import_report"] = report
    return out


def _keep_last_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``df`` with one row per (run, step, tokens, loss_name), the last attempt's (:func:`_keep_last_per_step`,
    along tokens, or the step where tokens are missing); returns (rows in the input's order, dropped per run)."""
    # a checkpoint repeats at equal tokens (validate's key where tokens are known), or at an equal step
    known = df["tokens"].notna()
    if not (df[known].duplicated(subset=["run", "tokens", "loss_name"]).any()
            or df[~known].duplicated(subset=["run", "step", "loss_name"]).any()):
        return df, {}
    keep, dropped = [], {}
    for (run, _), group in df.groupby(["run", "loss_name"], sort=False):
        position = group["tokens"].where(group["tokens"].notna(), group["step"])
        kept, n, _ = _keep_last_per_step(position, {"loss": group["loss"], "_row": group.index})
        keep.extend(kept["_row"])
        if n:
            dropped[run] = dropped.get(run, 0) + n
    out = df.loc[sorted(keep)].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out, dropped


#: the columns a fit reads beside the law's inputs; a split or backtest also reads ``model``
FIT_COLUMNS = ("family", "run", "params", "loss")


def as_table(df: pd.DataFrame, *, name: str | None = None, needs=tuple(REQUIRED_COLUMNS),
             duplicates: bool = True) -> pd.DataFrame:
    """``df`` as it is when it has the columns its caller reads (``needs``: default every required column
    of the schema), else completed from a minimal table by :func:`complete_minimal` (one family,
    'default', unless a ``family`` column says otherwise) and validated. Every public function that takes
    a table calls this first, with the columns it reads (:data:`FIT_COLUMNS` for a fit), so that a
    minimal table is accepted everywhere. ``duplicates=False``: rows of one run at one checkpoint are left
    to the caller (``bl.fit``'s ``duplicates`` option)."""
    if isinstance(df, pd.DataFrame) and set(needs) <= set(df.columns):
        return df
    return complete_minimal(df, name=name, duplicates=duplicates)


# --------------------------------------------------------------------------- format detection


def detect_format(path: str | os.PathLike) -> str:
    """'wandb_json', 'wandb_csv', 'tensorboard' or 'table' (a minimal/complete CSV or parquet) for ``path``."""
    path = Path(path)
    if path.is_dir():
        has_json = next(path.rglob("*.json"), None) is not None
        has_tb = next((p for p in path.rglob("*tfevents*") if p.is_file()), None) is not None
        if has_json and has_tb:
            raise ImportFormatError(f"folder {str(path)!r} holds both .json exports and TensorBoard events; "
                                    "give the subfolders one at a time")
        if has_json:
            return "wandb_json"
        if has_tb:
            return "tensorboard"
        raise ImportFormatError(f"folder {str(path)!r} holds neither .json W&B exports nor TensorBoard event files")
    if not path.exists():
        raise FileNotFoundError(f"file {str(path)!r} does not exist")
    if "tfevents" in path.name:
        return "tensorboard"
    suffix = path.suffix.lower()
    if path.name.lower().endswith(".json.gz"):  # pandas would read its bytes as a CSV table with odd columns
        raise ImportFormatError(f"{str(path)!r}: a gzipped JSON file; decompress it (gunzip) and give the .json "
                                "W&B export")
    if suffix == ".json":
        return "wandb_json"
    if suffix in (".parquet", ".pq"):
        return "table"
    if suffix in (".csv", ".gz", ".txt"):
        header = _read_csv(path, "file", nrows=0).columns
        if any(" - " in str(c) for c in header):
            return "wandb_csv"
        return "table"
    raise ImportFormatError(f"{str(path)!r}: unknown input type {suffix!r}; give a W&B .json export (or a folder of "
                            "them), a W&B chart .csv, a TensorBoard events file/folder, or a .csv/.parquet table")


def _read_table_file(path: Path, source: str | None, family: str | None, sidecar=None) -> pd.DataFrame:
    """A CSV/parquet table (:func:`complete_minimal`, a step logged twice keeping its last row), the sidecar's
    params, family and tokens per step applied to the runs it names, the logged lr checked against the schedule."""
    if path.suffix.lower() in (".parquet", ".pq"):
        raw, first_row = read_parquet_file(path, "file", ImportFormatError), 0
    else:
        raw, first_row = _read_csv(path, "file"), 2  # errors number the CSV's lines (the header is line 1)
    name = f"file {str(path)!r}"
    side = _sidecar_table(sidecar)
    notes = _table_sidecar(raw, side, name, first_row, family) if side is not None and "run" in raw.columns else []
    out = complete_minimal(raw, source=source or path.name, family=family or "default", name=name,
                           first_row=first_row, duplicates="last")
    report = [*out.attrs["import_report"], *notes]
    if "lr" in out.columns:
        empty = out["lr"].isna()
        if empty.any():  # an lr column with gaps: the rows are kept (the loss is there), the gaps counted
            report.append(f"lr: {int(empty.sum())} empty cell(s) in {out.loc[empty, 'run'].nunique()} run(s) "
                          f"({_short(out.loc[empty, 'run'].unique())}); the lr column is NaN there")
        if "schedule" in out.columns and out["schedule"].notna().any() and "schedule_flag" not in out.columns:
            out = _flag_schedules(out, report)
    out.attrs["import_report"] = report
    return out


def _table_sidecar(raw: pd.DataFrame, side: pd.DataFrame, name: str, first_row: int, family) -> list[str]:
    """Fill ``raw`` (in place) from the sidecar rows naming its runs: params and family where the table's
    column or cell is empty, tokens per step as batch_size (and tokens = step x it where the table has no
    tokens); a value that differs from the table's is refused (which one is right is the user's to say)."""
    runs = raw["run"].astype(str)
    named = runs.isin(side.index)
    if not named.any():
        return []
    notes = []
    for column, target in (("params", "params"), ("family", "family"), ("tokens_per_step", "batch_size")):
        if column not in side.columns:
            continue
        given = runs.map(side[column]).where(named)
        has = given.notna()
        if not has.any():
            continue
        if target in raw.columns:
            own = raw[target] if target == "family" else raw[target].map(_count)
            both = has & own.notna()
            differ = both & ((own != given) if target == "family" else
                             ~np.isclose(own.astype(float), given.astype(float), rtol=1e-9, atol=0.0))
            if differ.any():
                i = differ.index[differ][0]
                def show(v):
                    return repr(v) if isinstance(v, str) else f"{float(v):g}"

                raise ImportFormatError(f"{name}, run {runs[i]!r}, column {target!r}: the table says "
                                        f"{show(raw.at[i, target])} and the sidecar's {column} {show(given[i])} "
                                        f"({int(differ.sum())} row(s), e.g. row {int(i) + first_row}); remove one of "
                                        "them")
            fill = has & own.isna()
            agree = int(both.sum())
            if fill.any():
                raw[target] = raw[target].astype(object).where(~fill, given)
        else:
            fill, agree = has, 0
            if target == "params" and not named.all():
                unnamed = runs[~named].unique()
                raise ImportFormatError(f"{name}: no params column, and the sidecar names no params for run(s) "
                                        f"{_short(repr(r) for r in unnamed)}; add them to the sidecar or the table")
            raw[target] = given.where(has, (family or "default") if target == "family" else np.nan)
        if target == "batch_size" and "tokens" not in raw.columns and "step" in raw.columns:
            steps = pd.to_numeric(raw["step"], errors="coerce")
            raw["tokens"] = (steps * raw["batch_size"].astype(float)).where(steps > 0)
            notes.append(f"sidecar: tokens = step x its tokens_per_step for {runs[has].nunique()} run(s)")
        notes.append(f"sidecar: {target} for {runs[has].nunique()} run(s) of the table ({int(fill.sum())} row(s) "
                     f"filled, {agree} already agreeing)")
    return notes


def _flag_schedules(out: pd.DataFrame, report: list[str]) -> pd.DataFrame:
    """schedule_error and schedule_flag columns as the W&B JSON importer writes them: each run's described
    schedule against its logged lr after the warmup (flagged: error > SCHEDULE_TOLERANCE or nothing compared);
    a flagged run is kept, for the user to see (a fit refuses it: check_logged_lr)."""
    schedules = run_schedules(out[out["schedule"].notna()], where="column 'schedule'")
    errors = {}
    for run, schedule in schedules.items():
        own = out[out["run"] == run]
        errors[run] = _schedule_error(schedule, own["step"].to_numpy(dtype=float), own["lr"].to_numpy(dtype=float))[0]
    out = out.assign(schedule_error=out["run"].map(errors).astype(float),
                     schedule_flag=out["run"].map({r: not e <= SCHEDULE_TOLERANCE for r, e in errors.items()})
                     .fillna(False).astype(bool))
    flagged = {r: e for r, e in errors.items() if not e <= SCHEDULE_TOLERANCE}
    report.append(f"schedule check (described schedule vs logged lr after warmup, relative): "
                  f"{len(errors) - len(flagged)} of {len(errors)} run(s) within {SCHEDULE_TOLERANCE:g}"
                  + (f"; {len(flagged)} flagged (schedule_flag = True):" if flagged else ""))
    report.extend(f"  FLAGGED {r}: max relative error {e:.3g}" + ("" if np.isfinite(e) else " (no logged lr)")
                  for r, e in flagged.items())
    return out


def import_paths(paths, *, params: Mapping[str, float] | None = None, sidecar=None,
                 tokens_per_step: float | Mapping[str, float] | None = None, family: str | None = None,
                 source: str | None = None, tags: Iterable[str] | None = None) -> pd.DataFrame:
    """Import every path (format detected per path, :func:`detect_format`) into one validated table.

    W&B JSON paths are read together, so that a cooldown branch finds its parent in another path.
    ``params``/``tokens_per_step`` keys and ``sidecar`` rows apply to the run they name in any input (a key
    naming no run is refused; sidecar rows naming none are reported); ``tags`` selects TensorBoard loss tags
    (refused without a TensorBoard input). A run name in two inputs is refused, naming both.
    ``attrs["import_report"]`` holds every importer's lines, each prefixed by its format.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise ImportFormatError("no input paths given")
    formats = {p: detect_format(p) for p in paths}
    tags = None if tags is None else ([tags] if isinstance(tags, str) else list(tags))
    if tags is not None and "tensorboard" not in formats.values():
        raise ImportFormatError(f"--tags / tags= {_short(tags)} select TensorBoard loss tags, and no input is a "
                                "TensorBoard event file or folder")
    side = read_params_sidecar(sidecar) if sidecar is not None else None
    # every input sees every key; the keys are checked against all inputs' runs below
    shared_params = _Shared(params) if isinstance(params, Mapping) else params
    shared_tokens = _Shared(tokens_per_step) if isinstance(tokens_per_step, Mapping) else tokens_per_step
    frames = []  # (format, the input as named in messages, table)
    json_paths = [p for p in paths if formats[p] == "wandb_json"]
    json_tokens, json_note = shared_tokens, []
    if json_paths and tokens_per_step is not None and not isinstance(tokens_per_step, Mapping) and (
            {"wandb_csv", "tensorboard"} & set(formats.values())):
        # one number beside chart/TensorBoard inputs is theirs (they log no tokens per step); W&B JSON runs
        # have their own in the config (alone, the JSON reader refuses a number that contradicts it)
        json_tokens = None
        json_note = [f"tokens per step {float(tokens_per_step):,.0f} (--tokens-per-step / tokens_per_step=) applied "
                     "to the chart/TensorBoard runs only; W&B JSON runs keep their config's (give RUN=N to override)"]
    if json_paths:
        frame = read_wandb_json(json_paths, params=shared_params, family=family, sidecar=side,
                                tokens_per_step=json_tokens, source=source or "wandb_json")
        frame.attrs["import_report"] = [*frame.attrs.get("import_report", []), *json_note]
        frames.append(("wandb_json", _short((str(p) for p in json_paths), 3), frame))
    for p in paths:
        kind = formats[p]
        if kind == "wandb_csv":
            frames.append((kind, str(p), read_wandb_csv(p, params=shared_params, sidecar=side,
                                                        tokens_per_step=shared_tokens, family=family, source=source)))
        elif kind == "tensorboard":
            frames.append((kind, str(p), read_tensorboard(p, tags=tags, params=shared_params, sidecar=side,
                                                          tokens_per_step=shared_tokens, family=family,
                                                          source=source)))
        elif kind == "table":
            frames.append((kind, str(p), _read_table_file(p, source, family, side)))
    report = [f"{kind}: {line}" for kind, _, frame in frames for line in frame.attrs.get("import_report", [])]
    inputs_of: dict[str, list[str]] = {}
    left_out: set[str] = set()  # runs an input names but left out (no values): a key for one names a run
    for _, name, frame in frames:
        left_out.update(frame.attrs.get("left_out_runs", []))
        frame.attrs = {}
        for run in frame["run"].unique():
            inputs_of.setdefault(run, []).append(name)
    _check_run_keys([*inputs_of, *left_out], params, tokens_per_step, None)
    table_runs = {run for kind, _, frame in frames if kind == "table" for run in frame["run"].unique()}
    for given, option in ((params, "--params / params="), (tokens_per_step, "--tokens-per-step / tokens_per_step=")):
        named = [k for k in (given if isinstance(given, Mapping) else {}) if k in table_runs]
        if named:  # a table keeps its own columns: an override would be ignored
            raise ImportFormatError(f"{option} given for run(s) {_short(repr(k) for k in named)} of a table input, "
                                    "which has its own params and tokens columns; edit the table instead")
    if side is not None:
        unused = [r for r in side.index if r not in inputs_of]
        if unused:
            report.append(f"sidecar: {len(unused)} row(s) name no imported run, not used: {_short(unused)}")
    shared = {run: names for run, names in inputs_of.items() if len(names) > 1}
    if shared:  # by input path, not source: two files named chart.csv in two folders are two inputs
        run, names = next(iter(shared.items()))
        more = f" ({len(shared)} such runs: {_short(shared)})" if len(shared) > 1 else ""
        raise ImportFormatError(f"run {run!r} appears in {' and '.join(repr(n) for n in names)}{more}; "
                                "import one of them, or rename the runs (e.g. a sidecar per input)")
    table = pd.concat([f for _, _, f in frames], ignore_index=True)
    if "schedule_flag" in table.columns:  # only W&B JSON runs have a schedule to check: False for the others
        table["schedule_flag"] = table["schedule_flag"].eq(True)
    out = _validate_curves(table, "the imported table")
    out.attrs["import_report"] = report
    return out
