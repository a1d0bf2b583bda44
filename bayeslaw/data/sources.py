"""Loaders for the public data sets in ``$BAYESLAW_DATA``, one function per source.

Each loader takes the source's folder and returns the long table of
:mod:`bayeslaw.data.validation` (validated by :func:`bayeslaw.data.load`).
Any row a loader filters out is reported in ``df.attrs["filtering"]`` (a list of
sentences) and logged on the ``bayeslaw.data`` logger; nothing is dropped silently.
Values a loader corrects in place are reported the same way in ``df.attrs["corrections"]``.

Shared conventions: params = number of parameters; tokens = training tokens seen at the
checkpoint; flops = 6 * params * tokens unless the source gives training FLOPs; loss in nats
per token (perplexity -> ln(ppl)); step = optimizer step or -1 where unknown; seed = 0 where the
source gives none. Where a source has several loss metrics, ``loss_name=`` picks one; an
unknown name raises ``ValueError`` listing the valid ones. ``data/SOURCES.md`` documents
provenance and every judgment call.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslaw.data.validation import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

logger = logging.getLogger("bayeslaw.data")

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parse_count(value) -> float:
    """A count such as ``"2.8B"``, ``"85B"``, ``"410m"`` or ``7e9`` as a float."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMbBtT]?)\s*", str(value))
    if not match:
        raise ValueError(f"cannot read {value!r} as a count (expected e.g. 2.8B, 410M, 7e9)")
    return float(match.group(1)) * _SUFFIX[match.group(2).upper()]


@dataclass(frozen=True)
class Source:
    """A public data set: its name, folder under the data root, files, and loader."""

    name: str
    folder: str
    files: tuple[str, ...]
    description: str
    loader: Callable[..., pd.DataFrame]
    # curves under many learning-rate schedules, for the schedule laws: left out of load_all() by default
    schedules: bool = False


SOURCES: dict[str, Source] = {}


# --------------------------------------------------------------------------- shared helpers


class _Notes:
    """Sentences about what a loader dropped or corrected, logged as they are written."""

    def __init__(self, source: str):
        self.source = source
        self.filtering: list[str] = []
        self.corrections: list[str] = []

    def drop(self, df: pd.DataFrame, mask, reason: str) -> pd.DataFrame:
        """Drop the rows where ``mask`` is true, reporting how many and why."""
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            runs = df.loc[mask, "run"].nunique() if "run" in df.columns else 0
            sentence = f"{self.source}: dropped {int(mask.sum())} row(s) in {runs} run(s): {reason}."
            self.filtering.append(sentence)
            logger.info(sentence)
        return df.loc[~mask]

    def correct(self, sentence: str) -> None:
        sentence = f"{self.source}: {sentence}"
        self.corrections.append(sentence)
        logger.info(sentence)


def _check_loss_name(source: str, loss_name: str, valid) -> None:
    if loss_name not in valid:
        raise ValueError(f"unknown loss_name {loss_name!r} for source {source!r}; valid names: {sorted(valid)}")


def _count_label(value: float) -> str:
    """A parameter count as a short label, 3 significant digits: 35,500,000 -> '35.5M'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _finish(df: pd.DataFrame, notes: _Notes, *, loss_name: str) -> pd.DataFrame:
    """Fill the shared defaults (flops = 6ND, step -1, seed 0), keep the schema columns, attach notes."""
    out = df.copy()
    out["params"] = out["params"].astype(float)
    out["tokens"] = out["tokens"].astype(float)
    if "flops" not in out.columns:
        out["flops"] = 6.0 * out["params"] * out["tokens"]  # float: int64 6ND overflows past 9e18
    defaults = {"step": -1, "seed": 0, "loss_name": loss_name, "source": notes.source}
    for column, value in defaults.items():
        if column not in out.columns:
            out[column] = value
    columns = list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in out.columns]
    out = out[columns].reset_index(drop=True)
    out.attrs["filtering"] = list(notes.filtering)
    out.attrs["corrections"] = list(notes.corrections)
    return out


def _dict_field(text: str, key: str) -> str:
    """``key`` of a Python-literal dict stored as text, e.g. "{'tensorboard': 'abc'}" -> 'abc'."""
    return str(ast.literal_eval(text)[key])


# --------------------------------------------------------------------------- Chinchilla


def load_chinchilla(folder: Path, *, loss_name: str = "chinchilla_extracted") -> pd.DataFrame:
    """Hoffmann et al. (2022) final losses, extracted from their plots (245 points, one run each).

    params = "Model Size"; flops = "Training FLOP" (given); tokens = flops / (6 params).
    Loss as extracted (nats). All 245 points are kept (Epoch AI's replication drops 5 later).
    """
    notes = _Notes("chinchilla")
    _check_loss_name(notes.source, loss_name, ("chinchilla_extracted",))
    raw = pd.read_csv(folder / "chinchila_extracted.csv")
    run = [f"chinchilla-{i:03d}" for i in range(len(raw))]
    df = pd.DataFrame(
        {
            "family": "chinchilla",
            "model": run,
            "run": run,
            "params": raw["Model Size"].astype(float),
            "flops": raw["Training FLOP"].astype(float),
            "loss": raw["loss"],
        }
    )
    df["tokens"] = df["flops"] / (6.0 * df["params"])
    df = notes.drop(df, df["loss"].isna(), "no loss")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- datablations


_DATABLATIONS_BATCH = 256 * 2048  # tokens per step (see load_datablations)


def load_datablations(folder: Path, *, loss_name: str = "validation") -> pd.DataFrame:
    """Muennighoff et al. (2023) data-constrained runs: 48 loss trajectories (2.8B/4.2B/8.7B x C4/OSCAR x epochs).

    A run is one TensorBoard id of ``model_args`` (equivalently data x size x epochs).
    params = parse_count(num_params) (nominal: 2.8B, 4.2B, 8.7B); tokens = token_num;
    unique_tokens = tokens_per_epoch; epochs = the run's planned passes over its unique data.
    The file's ``flops`` column is NOT training FLOPs (flops x token_num is constant within a
    run, so it falls as training goes on); flops = 6ND instead.
    batch_size = 524,288 tokens per step (256 sequences of 2048 tokens: Muennighoff et al.'s Appendix
    hyperparameters, as we read them; the file does not say. Consistent with the file: every token
    count is a multiple of 104,857,600 = 200 steps of it); step = tokens / batch_size.
    Loss: the held-out validation loss in the file (nats).
    """
    notes = _Notes("datablations")
    _check_loss_name(notes.source, loss_name, ("validation",))
    raw = pd.read_csv(folder / "datablations_losses.csv")
    label = raw["num_params"].astype(str)
    epochs = raw["epochs"].astype(float)
    df = pd.DataFrame(
        {
            "family": "datablations-" + raw["data"],
            "model": label,
            "run": "datablations-" + raw["data"] + "-" + label + "-" + epochs.map("{:g}ep".format),
            "params": label.map(parse_count),
            "tokens": raw["token_num"].astype(float),
            "loss": raw["loss"],
            "epochs": epochs,
            "unique_tokens": raw["tokens_per_epoch"].map(parse_count),
            "tensorboard": raw["model_args"].map(lambda s: _dict_field(s, "tensorboard")),
            "batch_size": float(_DATABLATIONS_BATCH),
            "step": (raw["token_num"].astype(float) / _DATABLATIONS_BATCH).round().astype(int),
        }
    )
    if df.groupby("tensorboard")["run"].nunique().max() != 1 or df.groupby("run")["tensorboard"].nunique().max() != 1:
        raise ValueError("datablations: runs named by data-size-epochs do not match the TensorBoard ids one to one")
    df = notes.drop(df, df["loss"].isna(), "no loss")
    return _finish(df, notes, loss_name=loss_name)


_CODE_LOSSES = {"c4_validation": 1, "python_validation": 2}  # loss name -> value of the file's "Seed" column


def load_datablations_code(folder: Path, *, loss_name: str = "c4_validation") -> pd.DataFrame:
    """Muennighoff et al. (2023) 4.2B runs on C4 mixed with Python code: 9 trajectories.

    The file's ``Seed`` column is not a seed: Seed 1 holds the C4 validation loss (~2.5-3.6 nats)
    and Seed 2 the Python validation loss (~0.55-0.77 nats) of the same run at the same tokens
    (ColPret reads them as gen_loss and code_loss). ``loss_name`` picks one; seed is 0.
    The ``epochs`` column is the mixture percentage (10..90; ColPret calls it % code), kept only in
    the run id ``datablations-code-mix<pct>``; no epochs column is set. params = 4.2B (nominal);
    tokens = token_num; unique_tokens = tokens_per_epoch as given ("85B"); flops = 6ND (the file's
    ``flops`` column falls with tokens, as in ``datablations``).
    """
    notes = _Notes("datablations_code")
    _check_loss_name(notes.source, loss_name, _CODE_LOSSES)
    raw = pd.read_csv(folder / "datablations_code_losses.csv")
    raw = raw[raw["Seed"] == _CODE_LOSSES[loss_name]]
    mix = raw["epochs"].astype(int).astype(str)
    df = pd.DataFrame(
        {
            "family": "datablations-code",
            "model": raw["num_params"].astype(str),
            "run": "datablations-code-mix" + mix,
            "params": raw["num_params"].map(parse_count),
            "tokens": raw["token_num"].astype(float),
            "loss": raw["loss"],
            "unique_tokens": raw["tokens_per_epoch"].map(parse_count),
        }
    )
    df = notes.drop(df, df["loss"].isna(), "no loss")
    return _finish(df, notes, loss_name=loss_name)


_BUDGET_LABEL = re.compile(r"([1-9]\d*)([bm])(\d*)")


def _budget_value(label: str) -> float:
    """A datablations size label as a number: '2b8' -> 2.8e9, '100m' -> 1e8, '1b25' -> 1.25e9."""
    whole, unit, frac = _BUDGET_LABEL.fullmatch(label).groups()
    return float(f"{whole}.{frac}" if frac else whole) * (1e9 if unit == "b" else 1e6)


def _contour_budget(name: str, tokens_hint: float) -> tuple[float, float]:
    """(tokens, unique tokens) encoded in a run name such as '2b855b1b25' (2.8B params, 55B, 1.25B).

    The name splits into three size labels; of the valid splits, the one whose token budget is
    closest to ``tokens_hint`` (the file's token_num) wins.
    """
    splits = [
        (name[i:j], name[j:])
        for i in range(1, len(name))
        for j in range(i + 1, len(name))
        if all(_BUDGET_LABEL.fullmatch(part) for part in (name[:i], name[i:j], name[j:]))
    ]
    if not splits:
        raise ValueError(f"datablations_contour: cannot read run name {name!r} as params+tokens+unique tokens")
    tokens, unique = min(splits, key=lambda s: abs(math.log(_budget_value(s[0]) / tokens_hint)))
    return _budget_value(tokens), _budget_value(unique)


def load_datablations_contour(folder: Path, *, loss_name: str = "openLM_loss") -> pd.DataFrame:
    """Muennighoff et al. (2023) final losses of 229 runs (7M-8.7B params, 100M-900B tokens, 1-9000 epochs).

    One run per row (``model_args`` name, e.g. '2b855b4b' = 2.8B params, 55B tokens, 4B unique).
    params = num_params (as given; note the '25m' runs are listed with 35.5M); tokens = token_num;
    unique_tokens = the unique-token budget read from the run name (the file's tokens_per_epoch
    column is a constant 1.5B and is ignored); epochs = tokens / unique_tokens. Where the file's
    token_num/epochs disagree with the run name (one row, '2b855b1b25', read as 55.1B tokens and
    2.2 epochs), the name wins and the correction is reported in ``attrs["corrections"]``.
    flops = 6ND (the file's flops equal 6ND up to that row). Loss: ``openLM_loss`` (nats).
    """
    notes = _Notes("datablations_contour")
    _check_loss_name(notes.source, loss_name, ("openLM_loss",))
    raw = pd.read_csv(folder / "datablations_contour_losses.csv")
    name = raw["model_args"].map(lambda s: _dict_field(s, "name"))
    budgets = [_contour_budget(n, t) for n, t in zip(name, raw["token_num"])]
    tokens = np.array([b[0] for b in budgets])
    unique = np.array([b[1] for b in budgets])
    off = ~np.isclose(tokens, raw["token_num"], rtol=1e-3) | ~np.isclose(tokens / unique, raw["epochs"], rtol=1e-3)
    for i in np.flatnonzero(off):
        notes.correct(
            f"run {name[i]!r}: file says {raw['token_num'][i]:.4g} tokens and {raw['epochs'][i]:.4g} epochs, "
            f"its name says {tokens[i]:.4g} tokens of {unique[i]:.4g} unique ({tokens[i] / unique[i]:.4g} epochs); "
            "used the name"
        )
    params = raw["num_params"].astype(float)
    df = pd.DataFrame(
        {
            "family": "datablations-contour-" + raw["data"],
            "model": params.map(_count_label),
            "run": "datablations-contour-" + name,
            "params": params,
            "tokens": tokens,
            "loss": raw["openLM_loss"],
            "epochs": tokens / unique,
            "unique_tokens": unique,
        }
    )
    df = notes.drop(df, df["loss"].isna(), "no loss")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- OLMo


# run -> (model, seed, exact params, tokens per optimizer step). Params computed from the official
# configs (d_model, layers, SwiGLU width, vocab 50304; 1B ties its embeddings, 7B does not); the
# file's num_params "1B"/"7B" are nominal. Batch: 1B 2048 x 2048 tokens (configs/official/OLMo-1B.yaml,
# HF revision step738020-tokens3095B); 7B and Twin 2160 x 2048 (HF revisions step556000-tokens2460B
# and step450000-tokens1991B; ColPret's 4e6 is a round figure).
_OLMO_RUNS = {
    "OLMo-1B": ("OLMo-1B", 0, 1_176_764_416, 2048 * 2048),
    "OLMo-7B": ("OLMo-7B", 0, 6_888_095_744, 2160 * 2048),
    "OLMo-7B-Twin-2T": ("OLMo-7B", 1, 6_888_095_744, 2160 * 2048),
}
_OLMO_METRICS = ("/CrossEntropyLoss", "/Perplexity")
_OLMO_V2 = "v2-small-"


def _olmo_loss_names(columns) -> set[str]:
    names = set()
    for column in columns:
        for metric in _OLMO_METRICS:
            if column.endswith(metric):
                name = column[: -len(metric)]
                names.add(name[len(_OLMO_V2) :] if name.startswith(_OLMO_V2) else name)
    return names


def _olmo_loss(raw: pd.DataFrame, loss_name: str) -> pd.Series:
    """Loss in nats for ``loss_name``: the CE column, else ln(perplexity), with or without 'v2-small-'."""
    loss = pd.Series(np.nan, index=raw.index)
    for prefix in ("", _OLMO_V2):
        for metric, convert in (("/CrossEntropyLoss", lambda x: x), ("/Perplexity", np.log)):
            column = f"{prefix}{loss_name}{metric}"
            if column in raw.columns:
                loss = loss.fillna(convert(raw[column].astype(float)))
    return loss


def load_olmo(folder: Path, *, loss_name: str = "c4_en-validation") -> pd.DataFrame:
    """OLMo-1B, OLMo-7B and OLMo-7B-Twin-2T (Groeneveld et al. 2024) evaluation trajectories.

    family 'olmo'. The Twin is a second run of the 7B configuration (on other hardware): model
    'OLMo-7B', seed 1 (a replicate index, not the RNG seed). params: exact counts from the official
    configs (1,176,764,416 and 6,888,095,744; the file's '1B'/'7B' are nominal). tokens = Step x
    batch (1B: 4,194,304 tokens/step; 7B and Twin: 4,423,680); flops = 6ND.
    Loss: held-out validation cross-entropy on the named set (nats). The runs logged the same
    sets under different names: OLMo-1B as 'v2-small-<set>' (OLMo's v2_small eval data), the 7B
    runs without prefix, the Twin mostly as Perplexity only. The loader takes, per row, the
    CrossEntropyLoss column, else ln(Perplexity), each with or without the 'v2-small-' prefix.
    Rows with no value for the chosen set are dropped and reported.
    """
    notes = _Notes("olmo")
    raw = pd.read_csv(folder / "olmo.csv")
    raw["model_name"] = raw["model_name"].str.strip()  # the file writes "OLMo-1B " with a trailing space
    _check_loss_name(notes.source, loss_name, _olmo_loss_names(raw.columns))
    unknown = set(raw["model_name"]) - set(_OLMO_RUNS)
    if unknown:
        raise ValueError(f"olmo: unexpected model_name(s) {sorted(unknown)}")
    spec = raw["model_name"].map(_OLMO_RUNS)
    batch = spec.map(lambda s: float(s[3]))
    df = pd.DataFrame(
        {
            "family": "olmo",
            "model": spec.map(lambda s: s[0]),
            "run": raw["model_name"],
            "seed": spec.map(lambda s: s[1]),
            "params": spec.map(lambda s: float(s[2])),
            "step": raw["Step"].astype(int),
            "tokens": raw["Step"] * batch,
            "batch_size": batch,
            "loss": _olmo_loss(raw, loss_name),
        }
    )
    df = notes.drop(df, df["loss"].isna(), f"no {loss_name} loss logged at that step")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- T5 on the Pile


# T5 v1.1 parameter counts (untied input/output embeddings, vocab 32128, gated-GELU MLP), as used by
# ColPret; the gin configs in the file have the v1.1 dimensions (d_model 768/1024/2048/4096).
_T5_PARAMS = {"base": 247_586_304, "large": 783_173_632, "xl": 2_849_804_288, "xxl": 11_135_426_560}
_T5_LOSSES = ("train_cross_entropy", "val_log_perplexity")


def _gin_macro(config: str, macro: str) -> str:
    match = re.search(rf"(?<![A-Z_]){macro} = (.+?)(?:\\n|\n)", config)
    if not match:
        raise ValueError(f"t5_pile: no {macro} in the gin config")
    return match.group(1)


def load_t5_pile(folder: Path, *, loss_name: str = "train_cross_entropy") -> pd.DataFrame:
    """Pile-T5 (EleutherAI, T5 v1.1 base/large/xl/xxl on the Pile) trajectories, 2M steps each.

    tokens = steps x BATCH_SIZE x input length, read from the ``config`` gin text
    (2048 x 512 = 1,048,576 tokens/step; the 114 target tokens per sequence are not counted).
    params: T5 v1.1 counts; flops = 6ND (a rough figure for an encoder-decoder).
    Loss (nats), by ``loss_name``:

    - ``train_cross_entropy`` (default): ``cross_ent_loss`` / (BATCH_SIZE x target length 114),
      the span-corruption cross-entropy per target token of the training batches. The file's
      per-token columns (``*_per_all_target_tokens``, ``loss_per_nonpadding_target_token``) and
      ``accuracy`` turn negative after step 0 and ``non_padding_fraction`` exceeds 1, so only the
      batch sums are usable; at step 0 the sum / (2048 x 114) equals the per-token column exactly.
    - ``val_log_perplexity``: ln(``val_perplexity``). Its values (1.03-1.84) are no per-token
      perplexity: ln(ppl) is about 114/2048 of the cross-entropy per target token. ColPret fits
      log2 of this column; the scale differs, so compare it only with itself.

    Dropped and reported: step-0 rows (0 tokens), rows without the chosen loss, and rows whose loss
    exceeds the run's step-0 loss (xxl step 600000: cross_ent_loss 1.6e9, 10,000x its neighbours).
    """
    notes = _Notes("t5_pile")
    _check_loss_name(notes.source, loss_name, _T5_LOSSES)
    raw = pd.read_csv(folder / "t5_pile.csv")
    configs = raw.dropna(subset=["config"]).groupby("model_name")["config"].first()
    per_step, targets = {}, {}
    for model, config in configs.items():
        batch = int(_gin_macro(config, "BATCH_SIZE"))
        lengths = ast.literal_eval(_gin_macro(config, "TASK_FEATURE_LENGTHS"))
        per_step[model] = float(batch * lengths["inputs"])
        targets[model] = float(batch * lengths["targets"])
    batch_tokens = raw["model_name"].map(per_step)
    if loss_name == "train_cross_entropy":
        loss = raw["cross_ent_loss"] / raw["model_name"].map(targets)
    else:
        loss = np.log(raw["val_perplexity"])
    df = pd.DataFrame(
        {
            "family": "t5-pile",
            "model": raw["model_name"],
            "run": "t5-pile-" + raw["model_name"],
            "params": raw["model_name"].map(_T5_PARAMS).astype(float),
            "step": raw["steps"].astype(int),
            "tokens": raw["steps"] * batch_tokens,
            "batch_size": batch_tokens,
            "lr": raw["learning_rate"],
            "loss": loss,
            "initial_loss": raw["model_name"].map(loss[raw["steps"] == 0].groupby(raw["model_name"]).first()),
        }
    )
    df = notes.drop(df, df["step"] == 0, "step 0 (no tokens seen)")
    df = notes.drop(df, df["loss"].isna(), f"no {loss_name} at that step")
    df = notes.drop(df, df["loss"] > df["initial_loss"], "loss above the run's step-0 loss (a corrupt log value)")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- over-training


def load_overtrain(folder: Path, *, loss_name: str = "c4_val") -> pd.DataFrame:
    """Gadre et al. (2024) over-training runs: final losses, one run per row (104 runs).

    family 'overtrain-<dataset_name>' (rw_original, rpj, c4_original); model = architecture
    (model_name); run = name. params = N, tokens = D, flops as given (= 6ND). Loss: one of the
    ``loss_<name>`` columns (not the upper/lower bounds), nats; default ``c4_val``.
    """
    notes = _Notes("overtrain")
    raw = pd.read_csv(folder / "overtrain_downstreams.csv", dtype={"flops": float})  # ints past int64
    valid = [
        c[len("loss_") :]
        for c in raw.columns
        if c.startswith("loss_") and not c.startswith(("loss_upper_", "loss_lower_"))
    ]
    _check_loss_name(notes.source, loss_name, valid)
    df = pd.DataFrame(
        {
            "family": "overtrain-" + raw["dataset_name"],
            "model": raw["model_name"],
            "run": raw["name"],
            "params": raw["N"].astype(float),
            "tokens": raw["D"].astype(float),
            "flops": raw["flops"],
            "loss": raw[f"loss_{loss_name}"],
        }
    )
    df = notes.drop(df, df["loss"].isna(), f"no {loss_name} loss")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- PolyPythias


# Total parameter counts from the Pythia README (embedding + non-embedding).
_PYTHIA_PARAMS = {"14m": 14_067_712, "70m": 70_426_624, "160m": 162_322_944, "410m": 405_334_016}
_PYTHIA_BATCH = 1024 * 2048  # tokens per optimizer step
# The learning-rate schedule of each size (EleutherAI/pythia models/<size>/pythia-<size>.yml): Adam lr
# and min_lr, warmup 0.01 x 143,000 train-iters, cosine decay to min_lr at lr-decay-iters 143,000.
_PYTHIA_LR = {"14m": (1e-3, 1e-4), "70m": (1e-3, 1e-4), "160m": (6e-4, 6e-5), "410m": (3e-4, 3e-5)}
_PYTHIA_STEPS, _PYTHIA_WARMUP = 143_000, 1_430


def load_polypythias(folder: Path, *, loss_name: str = "train_loss") -> pd.DataFrame:
    """PolyPythias multi-seed training loss (14m/70m/160m/410m), binned every 100 steps.

    family 'pythia', model = size, seed kept, lineage kept (70m has a second lineage 'B' of
    seeds 1-9, run id suffixed '-B'). step = step_end; tokens given (= step x 2,097,152);
    batch_size 2,097,152; params = the Pythia parameter counts; flops = 6ND.
    Loss: loss_mean, the mean per-batch training loss over the 100-step bin (nats).
    outlier = the run has a flag in final_loss_last1000steps.csv: the two 410m runs that spike
    after a resume (seeds 3, 4) and every 70m lineage-B run (flagged there as the slower,
    non-standard config), so ``outlier & (lineage == 'A')`` selects the two spike runs.
    schedule = the size's published Pythia schedule (lineage A; lineage B's config is not published:
    missing).
    """
    from bayeslaw.data.schedules import Schedule

    notes = _Notes("polypythias")
    _check_loss_name(notes.source, loss_name, ("train_loss",))
    raw = pd.read_csv(folder / "polypythias_trainloss_bin100.csv")
    flags = pd.read_csv(folder / "final_loss_last1000steps.csv")
    key = ["size", "lineage", "seed"]
    flagged = flags.loc[flags["outlier_flag"].notna(), key].assign(outlier=True)
    raw = raw.merge(flagged, on=key, how="left", validate="many_to_one")
    unknown = set(raw["size"]) - set(_PYTHIA_PARAMS)
    if unknown:
        raise ValueError(f"polypythias: no parameter count for size(s) {sorted(unknown)}")
    suffix = np.where(raw["lineage"] == "A", "", "-" + raw["lineage"])
    df = pd.DataFrame(
        {
            "family": "pythia",
            "model": raw["size"],
            "run": "pythia-" + raw["size"] + "-seed" + raw["seed"].astype(str) + suffix,
            "seed": raw["seed"].astype(int),
            "params": raw["size"].map(_PYTHIA_PARAMS).astype(float),
            "step": raw["step_end"].astype(int),
            "tokens": raw["tokens"].astype(float),
            "batch_size": float(_PYTHIA_BATCH),
            "loss": raw["loss_mean"],
            "outlier": raw["outlier"].fillna(False).astype(bool),
            "lineage": raw["lineage"],
            "schedule": raw["size"].map({size: Schedule("cosine", peak, _PYTHIA_STEPS, _PYTHIA_WARMUP, final).to_json()
                                         for size, (peak, final) in _PYTHIA_LR.items()}).where(raw["lineage"] == "A"),
        }
    )
    df = notes.drop(df, df["loss"].isna(), "no training loss in the bin")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- OLMo model ladder


# Parameter counts (embedding + non-embedding) from OLMo-ladder/src/ladder/ladder.py, via SOURCE.txt.
_LADDER_PARAMS = {
    "190M": 190_354_176,
    "370M": 371_262_464,
    "760M": 758_220_288,
    "1B": 1_279_395_840,
    "3B": 3_169_537_280,
}
_LADDER_BUDGETS = ("0.5xC", "1xC", "2xC", "5xC", "10xC", "1xC-rerun")
_LADDER_FILES = tuple(f"{size}-{budget}.csv" for size in _LADDER_PARAMS for budget in _LADDER_BUDGETS)
_LADDER_CE = re.compile(r"eval/(.+-validation)/CrossEntropyLoss")


def load_olmo_ladder(folder: Path, *, loss_name: str = "c4_en-validation") -> pd.DataFrame:
    """OLMo model-ladder runs (Bhagia et al. 2024): 5 sizes x 5 token budgets, plus a 1xC rerun per size.

    family 'olmo-ladder', model = size, run = file stem (e.g. '1B-2xC'; the Chinchilla multiple is
    only in the run id). The '-rerun' file is a replicate of the same 1xC configuration: seed 1
    (the original is seed 0; whether the RNG seed changed is not recorded). params: exact counts
    from SOURCE.txt; step = _step; tokens = throughput/total_tokens; flops =
    throughput/total_training_Gflops x 1e9 (OLMo's count, which includes attention and exceeds 6ND);
    batch_size = batch_size_in_tokens; lr = optim/learning_rate_group0.
    Loss: held-out validation cross-entropy eval/<loss_name>/CrossEntropyLoss (nats).
    """
    notes = _Notes("olmo_ladder")
    frames = []
    for file in _LADDER_FILES:
        raw = pd.read_csv(folder / file)
        valid = {m.group(1) for c in raw.columns if (m := _LADDER_CE.fullmatch(c))}
        _check_loss_name(notes.source, loss_name, valid)
        stem = Path(file).stem
        size = stem.split("-")[0]
        frames.append(
            pd.DataFrame(
                {
                    "family": "olmo-ladder",
                    "model": size,
                    "run": stem,
                    "seed": 1 if stem.endswith("-rerun") else 0,
                    "params": float(_LADDER_PARAMS[size]),
                    "step": raw["_step"].astype(int),
                    "tokens": raw["throughput/total_tokens"].astype(float),
                    "flops": raw["throughput/total_training_Gflops"].astype(float) * 1e9,
                    "batch_size": raw["batch_size_in_tokens"].astype(float),
                    "lr": raw["optim/learning_rate_group0"],
                    "loss": raw[f"eval/{loss_name}/CrossEntropyLoss"],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df = notes.drop(df, df["loss"].isna(), f"no {loss_name} loss at that step")
    df = notes.drop(df, df["tokens"] <= 0, "no tokens seen yet")
    return _finish(df, notes, loss_name=loss_name)


# --------------------------------------------------------------------------- multi-power law schedules

_MULTIPOWER_PEAK, _MULTIPOWER_FINAL, _MULTIPOWER_WARMUP = 3e-4, 3e-5, 2160
_MULTIPOWER_PARAMS = {"25M": 25e6, "100M": 100e6}  # nominal: the repository gives no exact counts


def _multipower_schedule(name: str):
    """The published schedule of a multipower run from its file name (the repository's src/data_loader.py)."""
    from bayeslaw.data.schedules import Schedule

    peak, final, warmup = _MULTIPOWER_PEAK, _MULTIPOWER_FINAL, _MULTIPOWER_WARMUP
    kind, *numbers = name.split("_")
    if kind == "constant":
        return Schedule("constant", peak, int(numbers[0]), warmup)
    if kind == "cosine":
        return Schedule("cosine", peak, int(numbers[0]), warmup, final)
    if kind in ("wsd", "wsdld"):  # stable to the first number, then exponential (wsd) or linear decay to the second
        return Schedule("wsd", peak, int(numbers[1]), warmup, final, int(numbers[0]),
                        "exponential" if kind == "wsd" else "linear")
    if kind == "wsdcon":  # peak to step 8000, then K x 1e-5 to step 16000
        return Schedule("two_stage", peak, 16000, warmup, 0.0, 8000, second_lr=int(numbers[0]) * 1e-5)
    raise ValueError(f"multipower: no published schedule for run file {name!r}.csv")


def load_multipower(folder: Path, *, loss_name: str = "train_loss") -> pd.DataFrame:
    """Luo et al. 2025's loss curves: 25M and 100M models under 9 learning-rate schedules each.

    family 'multipower', model = size, run 'multipower-<size>-<schedule>'; params nominal (25e6,
    100e6); step and lr as logged (every 128 steps after the 2,160 warmup steps); tokens and flops
    unknown (NaN: the source gives no tokens per step); loss = training loss (nats). Each run's
    schedule is rebuilt from its name (``schedule``, JSON) and checked against the logged lr.
    """
    from bayeslaw.data.schedules import lr_error

    notes = _Notes("multipower")
    _check_loss_name(notes.source, loss_name, ("train_loss",))
    frames = []
    for size, params in _MULTIPOWER_PARAMS.items():
        for path in sorted((folder / size).glob("*.csv")):
            raw = pd.read_csv(path)
            schedule = _multipower_schedule(path.stem)
            error = np.nan_to_num(lr_error(schedule, raw["step"].to_numpy(), raw["lr"].to_numpy()), nan=0.0)
            if not error.max(initial=0.0) <= 1e-9:
                row = int(np.argmax(error))
                raise ValueError(f"multipower: {path}: the rebuilt schedule ({schedule.describe()}) differs from the "
                                 f"logged lr by {error[row]:.2e} at step {raw['step'].iloc[row]} (row {row})")
            frames.append(pd.DataFrame({
                "family": "multipower", "model": size, "run": f"multipower-{size}-{path.stem}", "seed": 0,
                "params": params, "tokens": np.nan, "flops": np.nan, "step": raw["step"].astype(int),
                "lr": raw["lr"].astype(float), "loss": raw["loss"].astype(float), "schedule": schedule.to_json()}))
    if not frames:
        raise ValueError(f"multipower: no <size>/<schedule>.csv files under {folder}")
    df = pd.concat(frames, ignore_index=True)
    df = notes.drop(df, df["loss"].isna(), "no loss logged")
    df = _multipower_branches(df)
    branches = df.loc[df["parent_run"].notna()].groupby("run")
    notes.correct(f"{branches.ngroups} runs are branches of another run of their size (their first checkpoints are "
                  f"bit-identical to it): parent_run names it and their {int(df['copied'].sum())} rows before the "
                  f"branch point are marked copied")
    return _finish(df, notes, loss_name=loss_name)


def _multipower_branches(df: pd.DataFrame) -> pd.DataFrame:
    """Mark the runs that branch from another run of their size: those whose first logged checkpoint is
    bit-identical to it (same step and loss) are one branch tree, rooted at its constant-rate run (the
    stable phase the others leave) or else its longest run; a branch's rows equal to the root's at the same step
    are ``copied``, and ``parent_run`` names the root."""
    df = df.assign(copied=False, parent_run=None)
    first = df.sort_values("step").groupby("run").first()
    for _, tree in first.groupby(["model", "step", "loss"]):
        if len(tree) < 2:
            continue
        runs = tree.index.tolist()
        constant = [r for r in runs if json.loads(tree.loc[r, "schedule"])["shape"] == "constant"]
        root = constant[0] if constant else max(runs, key=lambda r: int((df["run"] == r).sum()))
        root_loss = df.loc[df["run"] == root].set_index("step")["loss"]
        for run in runs:
            if run == root:
                continue
            rows = df.index[df["run"] == run]
            same = df.loc[rows, "step"].map(root_loss).to_numpy() == df.loc[rows, "loss"].to_numpy()
            df.loc[rows, "copied"] = same
            df.loc[rows, "parent_run"] = root
    return df


# --------------------------------------------------------------------------- registry


def _register(name: str, folder: str, files: tuple[str, ...], description: str, loader, *, schedules: bool = False) -> None:
    SOURCES[name] = Source(name, folder, files, description, loader, schedules)


_register(
    "chinchilla",
    "colpret",
    ("chinchila_extracted.csv",),
    "Hoffmann et al. 2022 final losses extracted from plots (245 points)",
    load_chinchilla,
)
_register(
    "datablations",
    "colpret",
    ("datablations_losses.csv",),
    "Muennighoff et al. 2023 data-constrained trajectories, 2.8B-8.7B on C4/OSCAR (48 runs)",
    load_datablations,
)
_register(
    "datablations_code",
    "colpret",
    ("datablations_code_losses.csv",),
    "Muennighoff et al. 2023 4.2B runs on C4 + Python mixtures (9 runs; C4 or Python loss)",
    load_datablations_code,
)
_register(
    "datablations_contour",
    "colpret",
    ("datablations_contour_losses.csv",),
    "Muennighoff et al. 2023 final losses, 7M-8.7B params x repeated data (229 runs)",
    load_datablations_contour,
)
_register(
    "olmo",
    "colpret",
    ("olmo.csv",),
    "OLMo-1B, OLMo-7B and OLMo-7B-Twin-2T validation-loss trajectories",
    load_olmo,
)
_register(
    "t5_pile",
    "colpret",
    ("t5_pile.csv",),
    "Pile-T5 base/large/xl/xxl training trajectories (EleutherAI)",
    load_t5_pile,
)
_register(
    "overtrain",
    "colpret",
    ("overtrain_downstreams.csv",),
    "Gadre et al. 2024 over-training runs, final losses (104 runs, 3 data sets)",
    load_overtrain,
)
_register(
    "polypythias",
    "polypythias_trainloss",
    ("polypythias_trainloss_bin100.csv", "final_loss_last1000steps.csv"),
    "PolyPythias multi-seed training loss, 14m-410m, 100-step bins (44 runs)",
    load_polypythias,
)
_register(
    "olmo_ladder",
    "olmo_ladder_runs",
    _LADDER_FILES,
    "OLMo model ladder, 190M-3B x 0.5-10x Chinchilla tokens + 1xC reruns (30 runs)",
    load_olmo_ladder,
)
_register(
    "multipower",
    "lr_schedules/multipower",
    tuple(f"{size}/{name}.csv" for size in _MULTIPOWER_PARAMS for name in (
        "constant_24000", "constant_72000", "cosine_24000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000",
        "wsdcon_3", "wsdcon_9", "wsdcon_18")),
    "Luo et al. 2025 loss curves, 25M and 100M x 9 learning-rate schedules, with per-step lr (18 runs)",
    load_multipower,
    schedules=True,
)


# --------------------------------------------------------------------------- learning-rate schedules


def load_wsd_horizons(folder: Path, *, loss_name: str = "val_loss") -> pd.DataFrame:
    """WSD and cosine runs across sizes and horizons (Hagele et al. 2024; Schaipp et al. 2025), 213 W&B exports.

    Every ``*.json`` of the folder and of ``horizon_transfer/`` through
    :func:`bayeslaw.data.importers.read_wandb_json`: params = summary.parameters, tokens = val iter x
    102,400 (50 x 2 sequences of 512 tokens x world size 2), loss = val_loss (nats), a rebuilt
    ``schedule`` per run checked against the logged lr, restarts deduplicated (last attempt kept),
    cooldown branches joined to their stable-LR parent (the parent's checkpoints before the branch point
    copied, ``copied`` = True). The importer's report goes to ``attrs["filtering"]`` (what was left
    out) and ``attrs["corrections"]`` (the rest: conversions, joins, the schedule check).
    """
    from bayeslaw.data.importers import read_wandb_json

    _check_loss_name("wsd_horizons", loss_name, {"val_loss"})
    df = read_wandb_json(folder, source="wsd_horizons")
    report = df.attrs.pop("import_report")
    df.attrs.pop("schedule_check", None)  # the same numbers are the schedule_error column
    df.attrs["filtering"] = [f"wsd_horizons: {line}" for line in report if "left out" in line or "dropped" in line]
    df.attrs["corrections"] = [f"wsd_horizons: {line}" for line in report
                               if not ("left out" in line or "dropped" in line)]
    return df


_register(
    "wsd_horizons",
    "lr_schedules/wsd_horizons",
    ("SOURCE.txt",),
    "Hagele et al. 2024 / Schaipp et al. 2025 WSD and cosine runs, 33M-209M, horizons 3k-200k steps (213 runs)",
    load_wsd_horizons,
    schedules=True,
)
