"""The evaluation API as a notebook user meets it: bad arguments refused in one line before anything runs,
scores that do not depend on the order or index of the table, and no cell, fit or grid point lost unannounced."""

import numpy as np
import pandas as pd
import pytest

from bayeslaw import evaluation
from bayeslaw.evaluation import (backtest, bayes_backtest, calibration_study, compare_forms, compare_poolings,
                                 coverage_table, point_backtest, point_fits_by_family, prior_predictive_quantiles)
from bayeslaw.metrics import are, crps
from bayeslaw.simulation import load_demo

POINT_ONLY = dict(fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False, thin=6, compare=False,
                  progress=False, ks=(2,))
TINY = {"chains": 1, "draws": 40, "warmup": 40}


def _no_run(*args, **kwargs):
    raise AssertionError("a fit ran before the arguments were checked")


@pytest.fixture
def no_fits(monkeypatch):
    """Every way a study reaches a fit raises: a check that passes only after fitting fails the test."""
    for name in ("fit", "fit_point", "fit_many", "run_cells"):
        monkeypatch.setattr(evaluation, name, _no_run)


# --- metrics -----------------------------------------------------------------------------------------------

def test_are_refuses_losses_that_are_not_positive_finite_numbers():
    # was: NaN passed the `y_true <= 0` check and the score came out NaN; inf gave NaN with a numpy warning
    for y in ([1.0, np.nan], [1.0, np.inf]):
        with pytest.raises(ValueError, match="are: y_true must be positive, finite losses; 1 of 2"):
            are(y, [1.0, 1.0])
    assert np.isnan(are([2.0, 4.0], [np.nan, 4.0]))  # a method that cannot predict: NaN, counted by the backtest


def test_crps_refuses_no_draws_and_observations_of_another_shape():
    with pytest.raises(ValueError, match=r"crps: no draws \(draws have shape \(0, 3\)\)"):  # was NaN and 3 warnings
        crps(np.ones((0, 3)), np.ones(3))
    for y in (np.ones((2, 3)), np.ones((1, 3))):  # was numpy's broadcast error, and (1, 3) was scored
        with pytest.raises(ValueError, match=r"crps: draws have shape \(5, 3\), observations"):
            crps(np.ones((5, 3)), y)
    # one draw is a point forecast: its absolute error; draws of one target given flat
    np.testing.assert_allclose(crps(np.array([[2.0, 3.0]]), np.array([2.5, 2.0])), [0.5, 1.0])
    assert crps(np.array([1.0, 3.0]), 2.0)[0] == pytest.approx(1.0 - 0.5)  # E|X - y| - E|X - X'| / 2


# --- arguments refused before anything runs -----------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda df: point_backtest(df, methods=()), ValueError, "point_backtest: methods is empty"),
    (lambda df: point_backtest(df, methods="epoch"), TypeError, r"point_backtest: methods='epoch' must be a list"),
    (lambda df: point_backtest(df, methods=("nope",)), ValueError, r"point_backtest: unknown point method\(s\)"),
    (lambda df: backtest(df, **{**POINT_ONLY, "methods": "hitchhiker"}), TypeError, "backtest: methods='hitchhiker'"),
    (lambda df: backtest(df, **{**POINT_ONLY, "fractions": 0.3}), TypeError, r"backtest: fractions=0.3 must be a"),
    (lambda df: backtest(df, **{**POINT_ONLY, "families": "fam0"}), TypeError, "backtest: families='fam0'"),
    (lambda df: backtest(df, **{**POINT_ONLY, "ks": (2, 2)}), ValueError, "backtest: ks lists 2 more than once"),
    (lambda df: backtest(df, **{**POINT_ONLY, "fractions": (0.0, 0.3), "poolings": ("hierarchical",), "batch": True,
                                "fit_options": {"extend": 2}}),
     ValueError, "backtest: fit_options extend=2 with batch"),
    (lambda df: bayes_backtest(df, fit_options={"seed": 3}), ValueError,
     r"bayes_backtest: fit_options \['seed'\] are set by bayes_backtest itself"),
    (lambda df: bayes_backtest(df, fit_options={"chains": 0}), ValueError, "bayes_backtest: chains=0"),
    (lambda df: compare_forms(df, forms=()), ValueError, "compare_forms: forms is empty"),
    (lambda df: compare_forms(df, forms="chinchilla"), TypeError, "compare_forms: forms='chinchilla' must be a list"),
    (lambda df: compare_forms(df, poolings=("nope",)), ValueError, "compare_forms: unknown pooling 'nope'"),
    (lambda df: compare_forms(df, fit_options={"chian": 2}), ValueError, r"compare_forms: fit_options \['chian'\]"),
    (lambda df: compare_forms(df, fit_options={"thin": 2}), ValueError,
     r"compare_forms: fit_options \['thin'\] are set by compare_forms itself"),
    (lambda df: compare_poolings(df, poolings=()), ValueError, "compare_poolings: poolings is empty"),
    (lambda df: compare_poolings(df, poolings=("nope",)), ValueError, "compare_poolings: unknown pooling 'nope'"),
    (lambda df: compare_poolings(df, fit_options={"chian": 2}), ValueError, r"compare_poolings: fit_options \['chian"),
])
def test_study_arguments_are_refused_in_one_line_before_any_fit(no_fits, call, error, message):
    # was: a string iterated as its letters, a repeated k collapsed into one, every fit of a comparison failed
    # ("every fit failed"), an option conflict ended in "got multiple values", an empty list in pandas' concat
    with pytest.raises(error, match=message):
        call(load_demo().data)


@pytest.mark.parametrize("options, message", [
    ({"n_datasets": 0}, "calibration_study: n_datasets=0 must be a whole number >= 1"),
    ({"probs": (50, 90)}, r"calibration_study: probs \[50, 90\] must be central interval probabilities in \(0, 1\)"),
    ({"fit_options": {"chian": 2}}, r"calibration_study: fit_options \['chian'\] are not options of bayeslaw.fit"),
    ({"fit_options": {"chains": 0}}, "calibration_study: chains=0: need a positive whole number"),
    ({"fit_options": {"extend": 2}}, "calibration_study: fit_options extend=2 with batch=8"),
    ({"simulate_options": {"famlies": 2}}, r"calibration_study: simulate_options \['famlies'\] are not options"),
    ({"pooling": "nope"}, "calibration_study: unknown pooling 'nope'"),
])
def test_calibration_study_refuses_its_arguments_before_any_data_set_is_fitted(no_fits, options, message):
    # was: every cell raised with the argument, and the study returned a table of errors (probs in percent
    # after fitting every data set; n_datasets=0 an empty table)
    with pytest.raises(ValueError, match=message):
        calibration_study(**{"n_datasets": 2, **options})


def test_coverage_table_of_a_study_whose_every_fit_failed_says_so():
    study = pd.DataFrame({"dataset": [0, 1], "error": ["TypeError: boom", "TypeError: boom"]})
    with pytest.raises(ValueError, match=r"coverage_table: no data set to score: every fit of the study failed "
                                         r"\(2 row\(s\); TypeError: boom\)"):  # was KeyError: 'quantity'
        coverage_table(study)


def test_aggregate_names_a_grouping_it_cannot_make():
    result = backtest(load_demo().data, families=["fam0"], **POINT_ONLY)
    with pytest.raises(TypeError, match=r"Backtest.aggregate: by='method' must be a list"):  # was KeyError 'm'
        result.aggregate("method")
    with pytest.raises(ValueError, match=r"by=\['methd'\]: \['methd'\] not column\(s\) of cells"):
        result.aggregate(("methd",))


def test_prior_predictive_quantiles_refuses_an_empty_design():
    with pytest.raises(ValueError, match="prior_predictive_quantiles: num_samples=0 must be a whole number >= 1"):
        prior_predictive_quantiles(num_samples=0)
    with pytest.raises(ValueError, match="prior_predictive_quantiles: sizes must be a non-empty list of positive"):
        prior_predictive_quantiles(sizes=(), num_samples=10)


# --- what is scored -------------------------------------------------------------------------------------------

def test_point_backtest_and_backtest_score_a_shuffled_table_as_the_table_itself():
    # was: the point fits' optimum moved with the order the rows came in (hitchhiker fam1: ARE 2.0% -> 2.8%)
    df = load_demo().data
    shuffled = df.sample(frac=1.0, random_state=1)
    a = point_backtest(df, methods=("hitchhiker",), k=2)
    b = point_backtest(shuffled, methods=("hitchhiker",), k=2)
    np.testing.assert_array_equal(a.scores["are"], b.scores["are"])
    pd.testing.assert_frame_equal(a.fits, b.fits)
    c, d = backtest(df, **POINT_ONLY).cells, backtest(shuffled, **POINT_ONLY).cells
    np.testing.assert_array_equal(c["are"], d["are"])


def test_a_table_with_repeated_index_labels_is_thinned_run_by_run():
    # was: thinning kept a row wherever another run's kept row shared its label: 60 training rows, not 36
    df = load_demo().data
    repeated = df.set_axis(np.arange(len(df)) // 3)
    cells = backtest(repeated, **POINT_ONLY).cells.set_index("family")
    for family, rows in df.groupby("family"):
        smallest = rows.groupby("model")["params"].first().sort_values().index[:2]
        late = rows[rows["model"].isin(smallest) & (rows["tokens"] > 1e10)]
        expected = sum(min(6, n) for n in late.groupby("run").size())  # thin=6 checkpoints per run
        assert cells.loc[family, "train_points"] == expected == 36


def test_a_cell_the_early_cut_leaves_without_training_rows_is_kept_unscored_and_named():
    # was: the split of that family raised for the whole study (hitchhiker_split: no train rows remain)
    df = load_demo().data
    short = (df["family"] == "fam0") & df["model"].isin(["fam0-70M", "fam0-160M"]) & (df["tokens"] > 1e10)
    with pytest.warns(RuntimeWarning, match=r"1 cell\(s\) not scored: the early cut .* \[\('fam0', 2, 0.0\)\]"):
        result = backtest(df[~short], **{**POINT_ONLY, "fractions": (0.0, 0.3)})
    cells = result.cells.set_index(["family", "q"])
    assert np.isnan(cells.loc[("fam0", 0.0), "are"]) and "no training rows" in cells.loc[("fam0", 0.0), "error"]
    assert np.isfinite(cells.loc[("fam0", 0.3), "are"])  # the target's own first 30% is left to train on
    assert np.isfinite(cells.drop(index="fam0", level="family")["are"]).all()
    table = result.aggregate(("method",), common=False).set_index("method")
    assert table.loc["hitchhiker", "cells"] == 5 and table.loc["hitchhiker", "unscored"] == 1


def test_prior_predictive_quantiles_draws_each_grid_point_as_its_own_runs_final_loss(monkeypatch):
    # was: runs named by N and D to one digit: 120 grid points in 104 runs, and the smaller D of two in one
    # decade drawn as an early checkpoint of the larger's run (fraction < 1), not a final loss
    seen = []
    real = evaluation.prepare

    def recording(table, *args, **kwargs):
        data = real(table, *args, **kwargs)
        seen.append((table, data))
        return data

    monkeypatch.setattr(evaluation, "prepare", recording)
    result = prior_predictive_quantiles(num_samples=20)
    (table, data), = seen
    assert len(result) == len(table) == 4 * 30
    assert table["run"].nunique() == len(table)
    np.testing.assert_array_equal(np.asarray(data.fraction), 1.0)


# --- comparisons of fitted laws (one tiny NUTS fit) ------------------------------------------------------------

@pytest.fixture(scope="module")
def one_failed_form():
    """compare_forms of chinchilla (fitted) and kaplan_e (its fit raises), on one family of the demo."""
    real = evaluation.fit

    def failing(rows, **options):
        if options["form"] == "kaplan_e":
            raise RuntimeError("boom")
        return real(rows, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation, "fit", failing)
        with pytest.warns(RuntimeWarning) as warned:
            result = compare_forms(load_demo().data.query("family == 'fam0'"), forms=("chinchilla", "kaplan_e"),
                                   thin=4, fit_options=TINY)
    return result, [str(w.message) for w in warned]


def test_compare_forms_warns_of_a_form_whose_fit_failed(one_failed_form):
    # was: left out of the table with no word (compare_poolings warned; compare_forms only kept .failures)
    result, warned = one_failed_form
    assert "compare_forms: the kaplan_e fit failed and is left out (RuntimeError: boom)" in warned
    assert result.failures == {"kaplan_e": "RuntimeError: boom"} and result.table["model"].tolist() == ["chinchilla"]
    # by family: the run-wise elpds summed over the family's runs, all of them here
    assert result.by_family["chinchilla"].sum() == pytest.approx(result.table["elpd"].iloc[0])
    assert result.by_family["runs"].tolist() == [result.rows["run"].nunique()]


def test_compare_forms_refuses_fits_that_saw_other_observations(one_failed_form, monkeypatch):
    # was: compared, though the elpds summed other rows (a schedule law's fit leaves out its runs' warmup)
    import xarray as xr

    from bayeslaw.inference.nuts import Fit

    result, _ = one_failed_form
    fit = result.fits["chinchilla"]
    idata = fit.idata.copy(deep=True)
    observed = idata["observed_data"].to_dataset()
    observed["obs"] = observed["obs"].copy(data=np.where(np.arange(observed["obs"].size) == 0, 0.0,
                                                         observed["obs"].values))
    idata["observed_data"] = xr.DataTree(observed)
    monkeypatch.setattr(evaluation, "_fit_all",
                        lambda jobs, where, **kw: ({"chinchilla": fit, "other": Fit(idata)}, {}))
    with pytest.raises(ValueError, match="compare_forms: the other fit saw other observations than the chinchilla "
                                         "fit .*: their elpds are not comparable"):
        compare_forms(load_demo().data.query("family == 'fam0'"), forms=("chinchilla", "kaplan_e"), thin=4,
                      fit_options=TINY)


def test_compare_forms_gives_every_form_the_rows_after_the_warmup(monkeypatch):
    from bayeslaw.data.schedules import Schedule

    schedule = Schedule("cosine", 1e-3, 4000, 200, 1e-4)
    steps = np.arange(100, 4001, 100)
    df = pd.concat([pd.DataFrame({"run": f"r{n:g}", "params": n, "step": steps, "tokens": steps * 2.0**20,
                                  "loss": 3.0 + 10 / np.sqrt(steps) + 1e8 / n, "schedule": schedule.to_json()})
                    for n in (1e8, 2e8, 4e8)], ignore_index=True)
    seen = {}

    def stop(jobs, where, **kwargs):
        seen.update(jobs)
        raise RuntimeError("stopped")

    monkeypatch.setattr(evaluation, "_fit_all", stop)
    with pytest.warns(UserWarning, match=r"compare_forms: 6 row\(s\) inside their runs' warmup left out for every"):
        with pytest.raises(RuntimeError, match="stopped"):
            compare_forms(df, forms=("chinchilla", "multipower"), min_tokens=None, thin=None)
    for name, job in seen.items():  # was: chinchilla's fit kept the warmup rows that multipower's left out
        assert (job["rows"]["step"] > 200).all() and len(job["rows"]) == 3 * 38, name


def test_point_fits_by_family_refuses_an_unknown_method(one_failed_form):
    # was: caught per family: every family "failed" with the unknown method, and no point fit was shown
    result, _ = one_failed_form
    with pytest.raises(ValueError, match="point_fits_by_family: unknown point method 'nope'"):
        point_fits_by_family(result.fits["chinchilla"], method="nope")


def test_point_fits_beside_a_fit_do_not_depend_on_the_order_of_the_rows_given(one_failed_form):
    result, _ = one_failed_form
    fam0 = load_demo().data.query("family == 'fam0'")
    fits = [point_fits_by_family(result.fits["chinchilla"], rows, method="hitchhiker")[0]["fam0"].params
            for rows in (fam0, fam0.sample(frac=1.0, random_state=3))]
    assert fits[0] == fits[1]


def test_the_bayesian_cells_fit_the_same_rows_whatever_order_the_families_are_named_in(monkeypatch):
    # was: the families' rows concatenated in the order given, so families=[b, a] fitted another table than [a, b]
    # (a fit starts from a point fit of its rows, whose optimum moves with their order)
    seen = []

    def recording(rows, **options):
        seen.append(rows.reset_index(drop=True))
        raise RuntimeError("stopped")

    monkeypatch.setattr(evaluation, "fit", recording)
    for families in (["fam1", "fam0"], ["fam0", "fam1"]):
        backtest(load_demo().data, families=families, **{**POINT_ONLY, "methods": (), "poolings": ("hierarchical",)})
    first, second = seen
    assert first["family"].iloc[0] == "fam0"
    pd.testing.assert_frame_equal(first, second)


def test_a_fraction_of_the_target_that_the_early_cut_empties_is_named():
    # the demo's runs end at 1e11 tokens: their first 10% lies at or below the 1e10 cut, so q=0.1 trained on the
    # rows of q=0 without a word
    with pytest.warns(RuntimeWarning, match=r"the target's first q of its run holds no checkpoint after the early "
                                            r"cut \(min_tokens=10000000000.0\) at \(family, q\) \[\('fam0', 0.1\)\]"):
        result = backtest(load_demo().data, families=["fam0"], **{**POINT_ONLY, "fractions": (0.0, 0.1, 0.3)})
    points = result.cells.set_index("q")["train_points"]
    assert points[0.1] == points[0.0] < points[0.3]


def test_a_point_cell_with_fewer_points_than_parameters_says_why():
    # was: NaN with no reason (error None), so the report's table of unscored cells left the reason blank
    demo = load_demo().data
    fam0 = demo[demo["family"] == "fam0"]
    finals = fam0.loc[fam0.groupby("model")["tokens"].idxmax()]
    result = backtest(finals, **{**POINT_ONLY, "thin": None, "min_tokens": None})
    cell = result.cells.iloc[0]
    assert np.isnan(cell["are"]) and not cell["failed"]
    assert cell["error"] == ("fit_point: found 2 row(s) while the chinchilla law has 5 parameters; need at least 5 "
                             "points")


def test_a_study_whose_every_fit_failed_is_aggregated_and_reported(monkeypatch, tmp_path):
    # was: the cells had no score columns, and aggregate and the report raised KeyError (crps, coverage50, ...)
    # where they were to count the failures
    from bayeslaw.report import backtest_report

    def failing(rows, **options):
        raise RuntimeError("boom")

    monkeypatch.setattr(evaluation, "fit", failing)
    result = backtest(load_demo().data, **{**POINT_ONLY, "methods": (), "poolings": ("hierarchical",)})
    row = result.aggregate(("method",)).set_index("method").loc["bayes-hierarchical"]
    assert row["cells"] == 0 and row["failed"] == 3 and np.isnan(row["crps_mean"])
    text = backtest_report(result, tmp_path / "bt").read_text()
    assert text.count("RuntimeError: boom") >= 3


def test_aggregating_methods_over_cases_they_do_not_share_is_warned_of():
    # the default poolings: bayes-none has no transfer cell, so by=("method",) compared its scaling cells alone
    # with the others' scaling and transfer cells, unannounced (common=True compares within a case's cells)
    cells = pd.DataFrame({"case": ["scaling"] * 2 + ["transfer"], "family": "f", "k": [2, 2, 1], "q": 0.0,
                          "method": ["bayes-hierarchical", "bayes-none", "bayes-hierarchical"],
                          "are": [0.01, 0.02, 0.30], "failed": False, "error": None})
    result = evaluation.Backtest(cells, pd.DataFrame(), None)
    with pytest.warns(RuntimeWarning, match=r"pools the cases, where the methods have cells in different ones "
                                            r"\(bayes-hierarchical: scaling/transfer, bayes-none: scaling\)"):
        table = result.aggregate(("method",)).set_index("method")
    assert table.loc["bayes-hierarchical", "are_mean"] == pytest.approx((0.01 + 0.30) / 2)
    by_case = result.aggregate(("case", "method"))  # no warning: each case's methods compared on its cells
    assert len(by_case) == 3


def test_data_hash_reads_values_not_the_order_of_rows_and_columns_or_an_int_stored_as_float():
    df = load_demo().data.head(60)
    same = df.iloc[::-1][list(reversed(df.columns))].astype({"tokens": "int64"})
    assert evaluation.data_hash(same) == evaluation.data_hash(df)
    other = df.copy()
    other.loc[other.index[5], "loss"] += 1e-9
    assert evaluation.data_hash(other) != evaluation.data_hash(df)
    assert evaluation.data_hash(df.rename(columns={"loss": "loss2"})) != evaluation.data_hash(df)
