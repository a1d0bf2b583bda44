import numpy as np
import pandas as pd
import pytest

from bayeslaw.inference.nuts import fit
from bayeslaw.plan import pilot_rows, rank_pilots
from bayeslaw.simulation import simulate

TARGET = {"family": "fam0", "params": 2.8e9, "tokens": 1e11}
LINEARIZATIONS = ("mean", "draws")


@pytest.fixture(scope="module")
def fitted():
    """One family at three small sizes (two seeds each), seen past the default 10B-token cut."""
    sim = simulate(families=1, sizes=(7e7, 1.6e8, 4.1e8), seeds=2, checkpoints=6, seed=3)
    return fit(sim.data, pooling="complete", chains=1, draws=200, warmup=150, thin=None, progress=False, seed=0)


@pytest.fixture(scope="module")
def candidates():
    return pd.DataFrame({"params": [1e9, 1.6e8, 2e9, 5e7, 1e9], "tokens": [1e11] * 5, "seeds": [1, 4, 1, 1, 4]},
                        index=["1B x1", "160M x4", "2B x1", "50M x1", "1B x4"])


@pytest.mark.parametrize("linearize", LINEARIZATIONS)
@pytest.mark.parametrize("kind", ["law", "new_run"])
def test_expected_variance_never_exceeds_current(fitted, candidates, linearize, kind):
    table = rank_pilots(fitted, TARGET, candidates, linearize=linearize, kind=kind, checkpoints=3)
    assert len(table) == len(candidates) and set(table.index) == set(candidates.index)
    assert (table["sd_after"] <= table["sd_now"] + 1e-12).all()
    assert (table["sd_after"] > 0).all()
    np.testing.assert_allclose(table["cost_flops"], 6 * table["params"] * table["tokens"] * table["seeds"])
    if kind == "new_run":  # the target's own seed and checkpoint noise stay: a floor the pilot cannot remove
        law = rank_pilots(fitted, TARGET, candidates, linearize=linearize, kind="law", checkpoints=3)
        assert (table["sd_after"] > law.loc[table.index, "sd_after"]).all()


@pytest.mark.parametrize("linearize", LINEARIZATIONS)
def test_more_seeds_never_increase_the_expected_variance(fitted, linearize):
    seeds = [1, 2, 4, 8]
    table = rank_pilots(fitted, TARGET, pd.DataFrame({"params": 4e8, "tokens": 1e11, "seeds": seeds}, index=seeds),
                        linearize=linearize, checkpoints=3).sort_index()
    assert (np.diff(table["sd_after"].to_numpy()) <= 1e-12).all()
    assert table["sd_after"].iloc[-1] < table["sd_after"].iloc[0]  # and they do help


@pytest.mark.parametrize("linearize", LINEARIZATIONS)
def test_a_pilot_near_the_target_beats_a_far_tiny_one(fitted, linearize):
    """The Hitchhiker's finding: models of similar size predict best (equal seeds and tokens)."""
    near_far = pd.DataFrame({"params": [2e9, 3e7], "tokens": [1e11, 1e11], "seeds": [2, 2]}, index=["near", "far"])
    table = rank_pilots(fitted, TARGET, near_far, linearize=linearize)
    assert table.loc["near", "variance_reduction"] > table.loc["far", "variance_reduction"]


def test_ranking_does_not_depend_on_candidate_order(fitted, candidates):
    forward = rank_pilots(fitted, TARGET, candidates)
    backward = rank_pilots(fitted, TARGET, candidates.iloc[::-1])
    pd.testing.assert_series_equal(forward["rank"].sort_index(), backward["rank"].sort_index())
    np.testing.assert_allclose(forward["sd_after"].sort_index(), backward["sd_after"].sort_index())
    assert forward["rank"].min() == 1 and forward["reduction_per_eflop"].is_monotonic_decreasing


def test_bad_candidates_name_the_column_and_rows(fitted):
    with pytest.raises(ValueError, match=r"lack column\(s\) \['tokens'\]"):
        rank_pilots(fitted, TARGET, pd.DataFrame({"params": [1e9]}))
    bad = pd.DataFrame({"params": [1e9, -1.0, 0.0], "tokens": [1e11] * 3}, index=["ok", "neg", "zero"])
    with pytest.raises(ValueError, match=r"'params'.*\['neg', 'zero'\]"):
        rank_pilots(fitted, TARGET, bad)
    with pytest.raises(ValueError, match=r"'seeds'.*\[1\]"):
        rank_pilots(fitted, TARGET, pd.DataFrame({"params": [1e9, 1e9], "tokens": [1e11] * 2, "seeds": [1, 1.5]}))
    with pytest.raises(ValueError, match=r"row\(s\) \[0\] name a family"):
        rank_pilots(fitted, TARGET, pd.DataFrame({"params": [1e9], "tokens": [1e11], "family": ["other"]}))
    with pytest.raises(ValueError, match="early cut"):  # the fit's 10B-token cut would drop the whole pilot
        rank_pilots(fitted, TARGET, pd.DataFrame({"params": [1e9], "tokens": [5e9]}))
    one = pd.DataFrame({"params": [1e9], "tokens": [1e11]})
    for checkpoints in (0, -2, 2.5):  # was taken as 1 (a final loss only), as the column's 0 is not
        with pytest.raises(ValueError, match=rf"rank_pilots: checkpoints={checkpoints} is not a whole number >= 1"):
            rank_pilots(fitted, TARGET, one, checkpoints=checkpoints)


def test_a_target_family_not_in_the_fit_is_the_population_with_a_warning(fitted):
    one = pd.DataFrame({"params": [1e9], "tokens": [1e11]})
    with pytest.warns(UserWarning, match=r"rank_pilots: 'fam9' is not a family of the fit \(families: fam0\): "
                                         r"forecast for a new family from the population"):
        rank_pilots(fitted, {**TARGET, "family": "fam9"}, one)


def test_pilot_rows_are_log_spaced_past_the_cut():
    rows = pilot_rows({"params": 1e9, "tokens": 1e11, "seeds": 3, "batch_size": 2**21}, checkpoints=4,
                      first_fraction=0.05, min_tokens=1e10, family="f")
    assert len(rows) == 12 and rows["run"].nunique() == 3 and (rows["family"] == "f").all()
    assert (rows["tokens"] > 1e10).all() and rows["tokens"].max() == pytest.approx(1e11)
    assert np.allclose(np.diff(np.log(rows["tokens"].iloc[:4])), np.log(10) / 3, rtol=1e-4)  # log-spaced
    assert (rows["batch_size"] == 2**21).all()
    for bad in ({"checkpoints": 0}, {"checkpoints": -1}, {"seeds": 0}):  # 0 seeds: no rows at all, silently
        name, value = next(iter(bad.items()))
        with pytest.raises(ValueError, match=f"pilot p: {name}={value} is not a whole number >= 1"):
            pilot_rows({"params": 1e9, "tokens": 1e11, **bad}, name="p")
    with pytest.raises(ValueError, match="checkpoints=0 is not a whole number"):
        pilot_rows({"params": 1e9, "tokens": 1e11}, checkpoints=0)


def test_laplace_agrees_with_a_refit(fitted):
    """The expected posterior variance of one candidate, linear-Gaussian vs NUTS refits on simulated
    outcomes (a 1B model, one seed, its final loss: a run without a sibling, so no offset in the refit)."""
    one = pd.DataFrame({"params": [1e9], "tokens": [1e11], "seeds": [1]})
    refit = rank_pilots(fitted, TARGET, one, method="refit", outcomes=1,
                        refit_options={"draws": 150, "warmup": 150}, baseline="fit")
    laplace = rank_pilots(fitted, TARGET, one, linearize="draws")
    ratio = laplace["sd_after"].iloc[0] ** 2 / refit["sd_after"].iloc[0] ** 2
    assert 0.5 < ratio < 2.0, f"laplace / refit expected variance {ratio:.2f}"
    assert refit["sd_after"].iloc[0] < refit["sd_now"].iloc[0]
    assert np.isnan(refit["sd_after_se"].iloc[0])  # one outcome has no spread: not an se of exactly 0


def test_a_candidate_whose_refits_fail_is_reported_unranked(fitted, monkeypatch):
    """A candidate's failed refits leave it without a reduction and a rank (its error beside it); the
    others are ranked as usual."""
    from bayeslaw.plan import pilots

    refit = pilots._refit_cell

    def fails_for_the_second(job):
        if any((t["run"].str.contains("pilot1")).any() for t in job["tables"]):
            raise FloatingPointError("simulated failure")
        return refit(job)

    monkeypatch.setattr(pilots, "_refit_cell", fails_for_the_second)
    two = pd.DataFrame({"params": [1e9, 2e9], "tokens": [1e11, 1e11]})
    out = rank_pilots(fitted, TARGET, two, method="refit", outcomes=1, refit_options={"draws": 60, "warmup": 60},
                      baseline="fit")
    assert out.loc[0, "rank"] == 1 and np.isfinite(out.loc[0, "sd_after"]) and out.loc[0, "error"] is None
    assert pd.isna(out.loc[1, "rank"]) and np.isnan(out.loc[1, "sd_after"])
    assert "simulated failure" in out.loc[1, "error"]
    assert list(out.index) == [0, 1]  # the ranked first, the unranked last


@pytest.mark.parametrize("option", ["seed", "seeds", "extend"])
def test_refit_options_the_ranking_sets_itself_are_refused_in_its_words(fitted, option):
    # were passed to fit_many: a seed clashed with the ranking's own seeds, extend is no option of a program
    two = pd.DataFrame({"params": [1e9, 2e9], "tokens": [1e11, 1e11]})
    with pytest.raises(ValueError, match=rf"^rank_pilots: refit_options \['{option}'\]: set by the ranking itself"):
        rank_pilots(fitted, TARGET, two, method="refit", outcomes=1, refit_options={option: 3}, baseline="fit")
