"""The Fit API's checks of its inputs: each bad input is one line naming the argument or column and the caller's
rows, never a silent wrong answer (one tiny NUTS fit, shared)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayeslaw.evaluation as ev
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import ConvergenceWarning, NewFamilyWarning, fit, prepare_fit
from bayeslaw.inference.point import fit_point
from bayeslaw.simulation import simulate

QUICK = {"chains": 2, "draws": 100, "warmup": 100, "thin": 6, "min_tokens": 5e9, "progress": False}


@pytest.fixture(scope="module")
def sim():
    return simulate(families=2, sizes=(1e8, 4e8, 1.6e9), seeds=2, checkpoints=10, seed=11)


@pytest.fixture(scope="module")
def fitted(sim):
    """The fit and the warnings it gave (a fit this short is not converged)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(sim.data, seed=0, **QUICK)
    return result, caught


@pytest.fixture(scope="module")
def trained(fitted):
    """A trained run of fam0: its name, size and last fitted tokens."""
    rows = fitted[0].training_rows("fam0")
    run = rows["run"].iloc[0]
    own = rows[rows["run"] == run]
    return run, float(own["params"].iloc[0]), float(own["tokens"].max())


def test_a_trained_run_is_refused_at_another_size_or_family_and_kept_past_its_tokens(fitted, trained):
    fit_, _ = fitted
    run, size, tokens = trained
    ok = pd.DataFrame({"family": ["fam0"], "run": [run], "params": [size], "tokens": [tokens]})
    fit_.predict(ok)
    fit_.predict(ok.assign(tokens=3 * tokens))  # the run in flight, later checkpoints: its own
    fit_.predict(ok.assign(run="a-new-run", params=size / 4))  # a new name: a new run
    wrong = ok.set_axis([41])
    with pytest.raises(ValueError, match=re.escape(f"row 41: run '{run}' is a trained run of {size:.4g} parameters, "
                                                   f"the row one of params=2.5e+07")):
        fit_.predict(wrong.assign(params=size / 4))
    with pytest.raises(ValueError, match=rf"row 41: run '{run}' is a trained run of family 'fam0'.*'fam1'"):
        fit_.predict(wrong.assign(family="fam1"))


def test_the_summary_keeps_the_targets_index(fitted, sim):
    fit_, _ = fitted
    sub = sim.data[sim.data["tokens"] > 1e10].iloc[5:9].copy()  # a filtered table: its labels are not 0..n-1
    for kind in ("law", "new_run"):
        summary = fit_.predict(sub.drop(columns="loss"), kind=kind).summary
        assert summary.index.equals(sub.index)
        sub[f"q50_{kind}"] = summary["q50"]
        assert sub[f"q50_{kind}"].notna().all()


def test_fit_checks_loss_params_and_tokens_on_the_callers_rows_before_the_cut(sim):
    data = sim.data.set_axis(sim.data.index + 100)
    early = data.index[data["tokens"] <= QUICK["min_tokens"]][0]  # a row the early cut drops
    late = data.index[-1]
    cases = [("loss", late, np.nan), ("loss", late, -1.0), ("params", late, np.nan), ("tokens", early, -5.0)]
    for column, row, value in cases:
        bad = data.copy()
        bad.loc[row, column] = value
        with pytest.raises(ValueError, match=rf"^fit: column '{column}' has non-positive or non-finite values at "
                                             rf"rows \[{row}\]$"):
            fit(bad, **QUICK)
    with pytest.raises(ValueError, match=r"column 'params' has values below 10,000 .*millions or billions"):
        fit(data.assign(params=data["params"] / 1e6), **QUICK)


def test_predict_refuses_values_in_other_units(fitted):
    fit_, _ = fitted
    targets = pd.DataFrame({"family": ["fam0", "fam0"], "params": [1e9, 1000.0], "tokens": [5e10, 5e10]},
                           index=[7, 8])
    with pytest.raises(ValueError, match=r"column 'params' has values below 10,000 at rows \[8\] \(1000\): "
                                         r"parameter counts in millions"):
        fit_.predict(targets)
    with pytest.raises(ValueError, match=r"column 'tokens' has values below 1,000 at rows \[7\] \(50\): token "
                                         r"counts in billions"):
        fit_.predict(targets.assign(params=1e9, tokens=[50.0, 5e10]))


def test_run_tokens_without_a_run_column_and_a_missing_run_are_named(fitted):
    fit_, _ = fitted
    one = pd.DataFrame({"family": ["fam0"], "params": [1e9], "tokens": [5e10]}, index=[3])
    fit_.predict(one.assign(run_tokens=1e11))
    for value, words in ((1e10, "have tokens beyond their run's run_tokens"),
                         (np.nan, "have missing, non-positive or non-finite"), (-1e11, "have missing, non-positive")):
        with pytest.raises(ValueError, match=rf"^run_tokens: rows \[3\] {words}"):
            fit_.predict(one.assign(run_tokens=value))
    two = pd.concat([one.assign(run="a"), one.assign(run=np.nan).set_axis([4])])
    with pytest.raises(ValueError, match=r"column 'run' is missing \(NaN\) at rows \[4\]"):
        fit_.predict(two)


def test_point_predict_checks_its_arguments(sim):
    point = fit_point(sim.data[(sim.data["family"] == "fam0") & (sim.data["tokens"] > 1e10)], method="hitchhiker")
    assert np.isfinite(point.predict(params=[1e9, 2e9], tokens=1e11)).all()
    for args, words in (((np.nan, 1e11), "argument 'params' has non-positive or non-finite"),
                        ((-1e9, 1e11), "argument 'params' has non-positive"),
                        ((1e9, 0.0), "argument 'tokens' has non-positive"),
                        ((1e9, [1e11, 50.0]), r"argument 'tokens' has values below 1,000 at positions \[1\]"),
                        (([1e9, 2e9, 3e9], [1e11, 1e11]), r"shapes do not broadcast \(params \(3,\), tokens \(2,\)\)")):
        with pytest.raises(ValueError, match=words):
            point.predict(*args)


def test_an_unseen_or_missing_family_warns_once_and_none_is_silent(fitted):
    fit_, _ = fitted
    base = pd.DataFrame({"params": [1e9] * 3, "tokens": [5e10] * 3})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        typo = fit_.predict(base.assign(family=["fam0", "Fam0", np.nan]), kind="law").summary
    said = [str(w.message) for w in caught if issubclass(w.category, NewFamilyWarning)]
    assert len(said) == 1 and "'Fam0' is not a family of the fit" in said[0] and "rows [2] have no family" in said[0]
    assert "(families: fam0, fam1)" in said[0] and said[0].endswith("forecast for a new family from the population")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NewFamilyWarning)
        population = fit_.predict(base.assign(family=[None] * 3), kind="law").summary
        fit_.predict(base.assign(family="fam0"))
    np.testing.assert_allclose(typo["q50"].iloc[1:], population["q50"].iloc[1:])  # the population's law


def test_predict_names_its_bad_arguments(fitted):
    fit_, _ = fitted
    base = pd.DataFrame({"family": ["fam0"], "params": [1e9], "tokens": [5e10]})
    with pytest.raises(ValueError, match="^predict: targets has no rows"):
        fit_.predict(base.iloc[:0])
    with pytest.raises(ValueError, match=r"^predict: quantiles=\(0\.5, 1\.5\); need probabilities in \[0, 1\]"):
        fit_.predict(base, quantiles=(0.5, 1.5))
    for seed in (None, -1, 1.5):
        with pytest.raises(ValueError, match=r"^predict: seed=.*; need a whole number >= 0"):
            fit_.predict(base, seed=seed)
    with pytest.raises(ValueError, match=r"^seed=None: need a whole number >= 0"):
        FitConfig(seed=None)


def test_an_unconverged_fit_warns_once_naming_its_diagnostics(fitted):
    _, caught = fitted
    said = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(said) == 1 and said[0].startswith("fit: not converged (2 chains x 100 draws): ")
    assert "ESS" in said[0] and "run longer" in said[0]
    assert caught[[issubclass(w.category, ConvergenceWarning) for w in caught].index(True)].filename == __file__


def test_the_observations_say_they_are_log_loss(fitted):
    idata = fitted[0].idata
    for group in ("observed_data", "posterior_predictive"):
        assert idata[group]["obs"].attrs == {"long_name": "log loss", "units": "log(nats per token)"}


def test_compare_forms_computes_loo_once_per_model_and_counts_runs(fitted, sim, monkeypatch):
    fit_, _ = fitted
    seen = []
    monkeypatch.setattr(ev, "_fit_all", lambda jobs, where, **kw: ({name: fit_ for name in jobs}, {}))
    original = ev._loo_table
    monkeypatch.setattr(ev, "_loo_table", lambda models: seen.append(models) or original(models))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k of a tiny fit
        result = ev.compare_forms(sim.data, forms=("chinchilla", "compute"), min_tokens=QUICK["min_tokens"])
    assert all(not hasattr(model, "children") for model in seen[0].values())  # LOO results, not the fits again
    runs = fit_.training_rows().groupby("family")["run"].nunique()
    assert result.by_family.set_index("family")["runs"].to_dict() == runs.to_dict()
    assert "rows" not in result.by_family.columns


def test_fit_point_warns_of_several_families_unless_meant(sim):
    rows = sim.data[sim.data["tokens"] > 1e10]
    with pytest.warns(UserWarning, match=r"2 families \(fam0, fam1\) and gets one law for all of them.*"
                                         r"point_fits_by_family"):
        fit_point(rows, method="hitchhiker")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*one law for all")
        fit_point(rows, method="hitchhiker", across_families=True)
        fit_point(rows[rows["family"] == "fam0"], method="hitchhiker")
        prepare_fit(rows, FitConfig(**{k: v for k, v in QUICK.items() if k != "progress"}))  # the NUTS start
