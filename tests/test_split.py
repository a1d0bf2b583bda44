import numpy as np
import pandas as pd
import pytest

from bayeslaw.data import cut_early, hitchhiker_split, thin_checkpoints
from bayeslaw.simulation import simulate


@pytest.fixture(scope="module")
def sim_df():
    return simulate(families=2, seeds=2, checkpoints=16, seed=1).data


def test_cut_early_by_tokens_and_fraction(sim_df):
    cut = cut_early(sim_df, min_tokens=1e10)
    assert (cut["tokens"] > 1e10).all() and len(cut) < len(sim_df)
    frac = cut_early(sim_df, min_tokens=None, min_fraction=0.5)
    last = sim_df.groupby("run")["tokens"].transform("max")
    assert (frac["tokens"] >= 0.5 * last.loc[frac.index]).all()
    assert set(frac["run"]) == set(sim_df["run"])  # every run keeps its end
    with pytest.raises(ValueError, match="min_fraction"):
        cut_early(sim_df, min_fraction=1.5)


def test_thin_keeps_last_checkpoint_and_bounds_count(sim_df):
    thin = thin_checkpoints(sim_df, per_run=5)
    counts = thin.groupby("run").size()
    assert counts.max() <= 6 and counts.min() >= 4
    last = sim_df.loc[sim_df.groupby("run")["tokens"].idxmax()]
    assert set(last.index) <= set(thin.index)
    # an empty table (a cut that left nothing) stays empty, with its columns
    empty = thin_checkpoints(sim_df.iloc[:0], per_run=5)
    assert empty.empty and list(empty.columns) == list(sim_df.columns)


def test_hitchhiker_split_targets_largest_model(sim_df):
    split = hitchhiker_split(sim_df, k=2, min_tokens=5e9)
    for family, test in split.test.groupby("family"):
        rows = sim_df[sim_df["family"] == family]
        assert (test["params"] == rows["params"].max()).all()
        last = rows.groupby("run")["tokens"].transform("max").loc[test.index]
        assert (test["tokens"] >= 0.7 * last).all()
        train = split.train[split.train["family"] == family]
        assert train["params"].nunique() == 2
        assert set(train["params"]) == set(np.sort(rows["params"].unique())[:2])
        assert (train["tokens"] > 5e9).all()
    # '<=' keeps each training run's final checkpoint (the paper's '<' lost it)
    final = split.train.groupby("run")["tokens"].max()
    assert np.allclose(final, sim_df.groupby("run")["tokens"].max().loc[final.index])


def test_split_fractions_and_errors(sim_df):
    split = hitchhiker_split(sim_df, train_fraction=0.3, target_fraction=0.2, min_tokens=None)
    target_rows = split.train[split.train["params"] == sim_df["params"].max()]
    assert len(target_rows) > 0
    assert (target_rows["tokens"] <= 0.2 * 1e11 + 1).all()
    with pytest.raises(ValueError, match="k=9"):
        hitchhiker_split(sim_df, k=9)
    one_model = sim_df[sim_df["model"] == sim_df["model"].iloc[0]]
    with pytest.raises(ValueError, match="needs a target and at least one smaller model"):
        hitchhiker_split(one_model)
    assert isinstance(split.train, pd.DataFrame)


def test_thinning_keeps_the_tables_order_whatever_its_index(sim_df):
    """The same rows in the same order give the same thinned table, however they are labelled (a table built
    by pd.concat, a slice): sorting the kept labels reordered the rows, and a fit's draws with them."""
    relabelled = sim_df.set_axis(np.arange(len(sim_df))[::-1] * 7)
    a = thin_checkpoints(sim_df, per_run=5)
    b = thin_checkpoints(relabelled, per_run=5)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_repeated_index_labels_select_rows_by_position(sim_df):
    """Frames concatenated without ignore_index repeat labels: thinning, the early cut and the split keep the
    same rows as on a fresh index (a label shared by two runs kept the other run's rows too)."""
    fresh = sim_df.reset_index(drop=True)
    repeated = fresh.set_axis(np.arange(len(fresh)) // 3)  # every label on three rows, across runs
    thinned = thin_checkpoints(repeated, per_run=4)
    assert thinned.reset_index(drop=True).equals(thin_checkpoints(fresh, per_run=4).reset_index(drop=True))
    cut = cut_early(repeated, min_tokens=None, min_fraction=0.5)
    assert cut.reset_index(drop=True).equals(cut_early(fresh, min_tokens=None, min_fraction=0.5).reset_index(drop=True))
    a = hitchhiker_split(repeated, min_tokens=None, min_fraction=0.2)
    b = hitchhiker_split(fresh, min_tokens=None, min_fraction=0.2)
    for got, want in ((a.train, b.train), (a.test, b.test)):
        assert got.reset_index(drop=True).equals(want.reset_index(drop=True))
