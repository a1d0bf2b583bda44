"""Loaders of bayeslaw.data.sources against the public data in $BAYESLAW_DATA (read, never copied)."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeslaw.data as bd
from bayeslaw.data.sources import SOURCES, parse_count

ROOT = os.environ.get("BAYESLAW_DATA")
if not ROOT or not Path(ROOT).is_dir():
    pytest.skip(
        "BAYESLAW_DATA not set or folder missing: the public data lives beside the checkout in ../shared/data",
        allow_module_level=True,
    )
ROOT = Path(ROOT)


@functools.lru_cache(maxsize=None)
def _load(name: str, loss_name: str | None = None) -> pd.DataFrame:
    options = {} if loss_name is None else {"loss_name": loss_name}
    return bd.load(name, ROOT, **options)


def load(name: str, loss_name: str | None = None) -> pd.DataFrame:
    return _load(name, loss_name).copy()


@functools.lru_cache(maxsize=None)
def raw(folder: str, file: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / folder / file)


# name: rows, runs, families, default loss_name, loss bounds (nats), tokens bounds, params bounds
EXPECTED = {
    "chinchilla": (245, 245, 1, "chinchilla_extracted", (1.5, 6), (1e8, 1e12), (4e7, 2e10)),
    "datablations": (9261, 48, 2, "validation", (2, 8), (1e8, 2e11), (2e9, 1e10)),
    "datablations_code": (148, 9, 1, "c4_validation", (2, 4), (5e9, 1e11), (4e9, 5e9)),
    "datablations_contour": (229, 229, 1, "openLM_loss", (2, 12), (1e8, 1e12), (7e6, 1e10)),
    "olmo": (1708, 3, 1, "c4_en-validation", (2, 5), (4e9, 4e12), (1e9, 7e9)),
    "t5_pile": (795, 4, 1, "train_cross_entropy", (0.5, 2.2), (1e10, 3e12), (2e8, 1.2e10)),
    "overtrain": (104, 104, 3, "c4_val", (2, 7), (5e7, 1e12), (1e7, 7e9)),
    "polypythias": (62920, 44, 1, "train_loss", (2, 11), (2e8, 3.1e11), (1.4e7, 4.1e8)),
    "olmo_ladder": (3569, 30, 1, "c4_en-validation", (2.5, 9), (2e7, 7e11), (1.9e8, 3.2e9)),
    # learning-rate-schedule sources (left out of load_all by default); multipower has no tokens per step
    "multipower": (4162, 18, 1, "train_loss", (2.8, 4.2), None, (2.5e7, 1e8)),
    "wsd_horizons": (38333, 213, 6, "val_loss", (2.7, 7.8), (2e7, 2.1e10), (3.3e7, 2.1e8)),
}
SCHEDULE_SOURCES = ("multipower", "wsd_horizons")


def test_parse_count():
    assert parse_count("2.8B") == pytest.approx(2.8e9)
    assert parse_count("85B") == 85e9
    assert parse_count("410m") == pytest.approx(4.1e8)
    assert parse_count(" 1.5K ") == 1500.0
    assert parse_count("7e9") == 7e9
    assert parse_count(7_000_000_000) == 7e9
    assert parse_count(np.int64(12)) == 12.0
    assert parse_count(1250000000.0) == 1.25e9
    with pytest.raises(ValueError, match="cannot read"):
        parse_count("lots")
    with pytest.raises(ValueError):
        parse_count("2.8X")


def test_registry_matches_the_data_folder():
    assert set(SOURCES) == set(EXPECTED)
    for source in SOURCES.values():
        assert source.description
        for file in source.files:
            assert (ROOT / source.folder / file).is_file(), (source.name, file)
    assert list(bd.sources()["name"]) == list(SOURCES)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shape_units_and_schema(name):
    rows, runs, families, loss_name, loss_range, token_range, param_range = EXPECTED[name]
    df = load(name)
    assert len(df) == rows
    assert df["run"].nunique() == runs
    assert df["family"].nunique() == families
    assert set(df["loss_name"]) == {loss_name}
    assert set(df["source"]) == {name}
    assert list(df.columns[: len(bd.REQUIRED_COLUMNS)]) == list(bd.REQUIRED_COLUMNS)
    assert df["loss"].between(*loss_range).all()
    if token_range is None:
        assert df["tokens"].isna().all() and (df["step"] > 0).all()
    else:
        assert df["tokens"].between(*token_range).all()
    assert df["params"].between(*param_range).all()
    assert (df.groupby("run")["params"].nunique() == 1).all()
    assert (df.groupby("run")["model"].nunique() == 1).all()
    assert not df.duplicated(["run", "tokens" if token_range is not None else "step"]).any()
    assert isinstance(df.attrs["filtering"], list)
    assert isinstance(df.attrs["corrections"], list)


@pytest.mark.parametrize("name", [n for n in EXPECTED if n not in ("olmo_ladder", "multipower")])
def test_flops_are_6nd(name):
    df = load(name)
    np.testing.assert_allclose(df["flops"], 6 * df["params"] * df["tokens"], rtol=1e-9)


def test_ladder_flops_are_olmos_count():
    df = load("olmo_ladder")
    ratio = df["flops"] / (6 * df["params"] * df["tokens"])
    assert ratio.between(1.1, 1.8).all()  # OLMo counts attention and the output layer on top of 6ND
    assert (df.groupby("run")["flops"].apply(lambda s: s.is_monotonic_increasing)).all()
    first = raw("olmo_ladder_runs", "1B-1xC.csv").iloc[0]
    row = df[(df["run"] == "1B-1xC")].iloc[0]
    assert row["flops"] == pytest.approx(first["throughput/total_training_Gflops"] * 1e9)
    assert row["tokens"] == first["throughput/total_tokens"] == first["_step"] * first["batch_size_in_tokens"]
    assert row["loss"] == pytest.approx(first["eval/c4_en-validation/CrossEntropyLoss"])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_unknown_loss_name_lists_valid_ones(name):
    with pytest.raises(ValueError, match=r"unknown loss_name 'no-such-loss'.*valid names: \[.*" + EXPECTED[name][3]):
        bd.load(name, ROOT, loss_name="no-such-loss")


def test_chinchilla_tokens_from_flops():
    df, src = load("chinchilla"), raw("colpret", "chinchila_extracted.csv")
    assert df.loc[0, "tokens"] == pytest.approx(src.loc[0, "Training FLOP"] / (6 * src.loc[0, "Model Size"]))
    assert df.loc[0, "loss"] == src.loc[0, "loss"]
    assert df.loc[0, "run"] == df.loc[0, "model"] == "chinchilla-000"
    assert (df["step"] == -1).all() and (df["seed"] == 0).all()
    assert df.attrs["filtering"] == []


def test_datablations_runs_and_flops_column():
    df, src = load("datablations"), raw("colpret", "datablations_losses.csv")
    assert set(df["family"]) == {"datablations-c4", "datablations-oscar"}
    row = df.iloc[0]
    assert (row["run"], row["params"], row["tokens"], row["loss"]) == (
        "datablations-c4-2.8B-44ep",
        2.8e9,
        src.loc[0, "token_num"],
        src.loc[0, "loss"],
    )
    assert (row["epochs"], row["unique_tokens"]) == (44.0, 1.25e9)
    # the file's flops column is not training FLOPs: it falls as tokens grow within a run
    first_run = src[src["model_args"] == src.loc[0, "model_args"]]
    assert first_run["flops"].is_monotonic_decreasing
    assert df.groupby("run").size().min() > 50
    # 256 x 2048 tokens per step: every token count is a whole number of steps, and step counts up
    assert (df["batch_size"] == 524_288).all()
    np.testing.assert_array_equal(df["step"] * df["batch_size"], df["tokens"])
    assert df.groupby("run")["step"].apply(lambda s: s.is_monotonic_increasing).all()


def test_datablations_code_seed_column_is_the_loss_kind():
    c4, py = load("datablations_code"), load("datablations_code", "python_validation")
    src = raw("colpret", "datablations_code_losses.csv")
    assert len(py) == 148 and set(py["loss_name"]) == {"python_validation"}
    assert (c4["seed"] == 0).all() and (py["seed"] == 0).all()
    first = src[(src["epochs"] == 10) & (src["token_num"] == 5242880000)].set_index("Seed")["loss"]
    pick = lambda d: d[(d["run"] == "datablations-code-mix10") & (d["tokens"] == 5242880000)]["loss"].item()  # noqa: E731
    assert pick(c4) == first[1] and pick(py) == first[2]
    assert (py["loss"] < 1).all() and (c4["loss"] > 2).all()


def test_datablations_contour_name_correction():
    df = load("datablations_contour").set_index("run")
    fixed = df.loc["datablations-contour-2b855b1b25"]
    assert (fixed["tokens"], fixed["unique_tokens"], fixed["epochs"]) == (55e9, 1.25e9, 44.0)
    assert len(df.attrs["corrections"]) == 1 and "2b855b1b25" in df.attrs["corrections"][0]
    src = raw("colpret", "datablations_contour_losses.csv")
    same = src.index != 7
    np.testing.assert_allclose(df["tokens"].to_numpy()[same], src["token_num"][same], rtol=1e-6)
    np.testing.assert_allclose(df["epochs"].to_numpy()[same], src["epochs"][same], rtol=1e-6)
    assert df.loc["datablations-contour-14m900b100m", "loss"] == pytest.approx(4.304018)


def test_olmo_batches_twin_and_loss_sources():
    df = load("olmo")
    by_run = df.groupby("run").agg(model=("model", "first"), seed=("seed", "first"), batch=("batch_size", "first"))
    assert by_run.loc["OLMo-7B-Twin-2T", "model"] == "OLMo-7B" and by_run.loc["OLMo-7B-Twin-2T", "seed"] == 1
    assert by_run.loc["OLMo-7B", "seed"] == 0
    assert by_run.loc["OLMo-1B", "batch"] == 2048 * 2048 and by_run.loc["OLMo-7B", "batch"] == 2160 * 2048
    assert (df["tokens"] == df["step"] * df["batch_size"]).all()
    last_1b = df[df["run"] == "OLMo-1B"]["tokens"].max()
    assert last_1b == pytest.approx(3.095e12, rel=1e-3)  # HF revision step738020-tokens3095B
    src = raw("colpret", "olmo.csv")
    twin = src[(src["model_name"] == "OLMo-7B-Twin-2T") & (src["Step"] == 450000)].iloc[0]
    got = df[(df["run"] == "OLMo-7B-Twin-2T") & (df["step"] == 450000)]["loss"].item()
    assert got == pytest.approx(math.log(twin["c4_en-validation/Perplexity"]))
    seven = src[(src["model_name"] == "OLMo-7B") & (src["Step"] == 556000)].iloc[0]
    got = df[(df["run"] == "OLMo-7B") & (df["step"] == 556000)]["loss"].item()
    assert got == seven["c4_en-validation/CrossEntropyLoss"]
    assert df.attrs["filtering"] == []


def test_olmo_other_loss_drops_are_reported():
    df = load("olmo", "pile-validation")
    assert len(df) == 1708 - 236
    assert df.attrs["filtering"] and "236" in df.attrs["filtering"][0]


def test_t5_tokens_losses_and_filtering():
    df, src = load("t5_pile"), raw("colpret", "t5_pile.csv")
    assert set(df["batch_size"]) == {2048 * 512}
    base = src[(src["model_name"] == "base") & (src["steps"] == 2_000_000)].iloc[0]
    row = df[(df["run"] == "t5-pile-base") & (df["step"] == 2_000_000)].iloc[0]
    assert row["tokens"] == 2_000_000 * 2048 * 512
    assert row["loss"] == pytest.approx(base["cross_ent_loss"] / (2048 * 114))
    assert row["params"] == 247_586_304
    assert len(df.attrs["filtering"]) == 3  # step 0, missing values, one corrupt value
    assert (df["step"] > 0).all()
    val = load("t5_pile", "val_log_perplexity")
    assert len(val) == 807 - 4
    got = val[(val["run"] == "t5-pile-base") & (val["step"] == 2_000_000)]["loss"].item()
    assert got == pytest.approx(math.log(base["val_perplexity"]))


def test_overtrain_values_and_loss_names():
    df = load("overtrain").set_index("run")
    src = raw("colpret", "overtrain_downstreams.csv").set_index("name")
    run = "rpj-open_lm_1b-32.0"
    assert df.loc[run, "loss"] == src.loc[run, "loss_c4_val"]
    assert df.loc[run, "flops"] == pytest.approx(float(src.loc[run, "flops"]))
    assert df.loc[run, "family"] == "overtrain-rpj"
    paloma = load("overtrain", "paloma_c4_en").set_index("run")
    assert paloma.loc[run, "loss"] == src.loc[run, "loss_paloma_c4_en"]
    with pytest.raises(ValueError, match="valid names"):
        bd.load("overtrain", ROOT, loss_name="upper_c4_val")


def test_polypythias_outliers_lineage_and_tokens():
    df = load("polypythias")
    runs = df.groupby("run").agg(
        outlier=("outlier", "first"), lineage=("lineage", "first"), size=("model", "first"), seed=("seed", "first")
    )
    flagged = set(runs.index[runs["outlier"]])
    lineage_b = {f"pythia-70m-seed{s}-B" for s in range(1, 10)}
    assert set(runs.index[runs["lineage"] == "B"]) == lineage_b
    assert flagged == {"pythia-410m-seed3", "pythia-410m-seed4"} | lineage_b
    assert "pythia-70m-seed1" in runs.index and runs.loc["pythia-70m-seed1", "lineage"] == "A"
    assert runs.groupby("size").size().to_dict() == {"14m": 9, "70m": 19, "160m": 7, "410m": 9}
    assert (df["tokens"] == df["step"] * 2_097_152).all()
    params = df.groupby("model")["params"].first().to_dict()
    assert params == {"14m": 14_067_712, "70m": 70_426_624, "160m": 162_322_944, "410m": 405_334_016}
    src = raw("polypythias_trainloss", "polypythias_trainloss_bin100.csv")
    assert df.loc[0, "loss"] == src.loc[0, "loss_mean"] and df.loc[0, "step"] == src.loc[0, "step_end"]


def test_ladder_reruns_and_loss_option():
    df = load("olmo_ladder")
    seeds = df.groupby("run")["seed"].first()
    assert set(seeds[seeds == 1].index) == {f"{s}-1xC-rerun" for s in ("190M", "370M", "760M", "1B", "3B")}
    assert (seeds.drop(seeds[seeds == 1].index) == 0).all()
    assert df.groupby("run")["model"].first()["3B-10xC"] == "3B"
    assert df.groupby("model")["params"].first()["1B"] == 1_279_395_840
    pile = load("olmo_ladder", "pile-validation")
    assert len(pile) == len(df) and set(pile["loss_name"]) == {"pile-validation"}


def test_load_all_concatenates_every_source():
    scaling = {name: expected for name, expected in EXPECTED.items() if name not in SCHEDULE_SOURCES}
    everything = bd.load_all(ROOT)
    assert len(everything) == sum(rows for rows, *_ in scaling.values())
    assert set(everything["source"]) == set(scaling)
    assert everything.groupby("run")["source"].nunique().max() == 1  # run ids do not collide across sources
    with_schedules = bd.load_all(ROOT, schedules=True)
    assert set(with_schedules["source"]) == set(EXPECTED)
    assert with_schedules.groupby("run")["source"].nunique().max() == 1


def test_multipower_schedules_rebuild_the_logged_lr():
    from bayeslaw.data.schedules import run_schedules

    df = load("multipower")
    schedules = run_schedules(df)
    assert len(schedules) == 18
    for run, rows in df.groupby("run"):
        np.testing.assert_allclose(schedules[run].lr(rows["step"]), rows["lr"], rtol=1e-12)
    shapes = {run.split("-", 2)[2]: s.shape for run, s in schedules.items()}
    assert shapes["cosine_24000"] == "cosine" and shapes["wsdcon_9"] == "two_stage"
    assert schedules["multipower-25M-wsd_20000_24000"].decay_type == "exponential"
    assert schedules["multipower-25M-wsdld_20000_24000"].decay_type == "linear"
    # tokens are not known: a cut in tokens refuses the rows instead of dropping them
    with pytest.raises(ValueError, match="column 'tokens' is missing"):
        bd.cut_early(df)


def test_multipower_branches_name_their_parent_and_mark_their_copies():
    """The WSD and two-stage runs repeat a constant-rate run of their size before their decay: one branch
    tree per size, rooted at that run; the copies are exactly the rows before the decay."""
    from bayeslaw.data.runs import branch_roots, drop_copies
    from bayeslaw.data.schedules import run_schedules

    df = load("multipower")
    roots = branch_roots(df)
    assert roots["multipower-25M-wsdcon_9"] == "multipower-25M-constant_72000"
    assert roots["multipower-100M-wsd_20000_24000"] == "multipower-100M-constant_24000"
    assert roots["multipower-25M-cosine_72000"] == "multipower-25M-cosine_72000"
    assert (roots != roots.index).sum() == 10
    schedules = run_schedules(df)
    copied = df[df["copied"].astype(bool)]
    assert len(copied) == 834
    assert (copied["step"] < copied["run"].map(lambda r: schedules[r].decay_start)).all()
    assert len(drop_copies(df)) == len(df) - 834


def test_polypythias_carries_the_published_cosine_schedule_of_each_size():
    from bayeslaw.data.schedules import run_schedules

    df = load("polypythias")
    standard = df[df["lineage"] == "A"]
    schedules = run_schedules(standard)
    s410 = schedules["pythia-410m-seed1"]
    assert (s410.shape, s410.peak_lr, s410.final_lr, s410.total_steps, s410.warmup_steps) == (
        "cosine", 3e-4, 3e-5, 143_000, 1_430)
    assert schedules["pythia-14m-seed1"].peak_lr == 1e-3 and schedules["pythia-160m-seed0"].peak_lr == 6e-4
    assert df.loc[df["lineage"] == "B", "schedule"].isna().all()
    with pytest.raises(ValueError, match="run 'pythia-70m-seed1-B' has no schedule"):
        run_schedules(df[df["run"] == "pythia-70m-seed1-B"])
