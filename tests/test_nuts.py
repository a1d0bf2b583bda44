import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayeslaw.evaluation import CALIBRATION_SIMULATE, calibration_study, coverage_table
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import Fit, fit, load_fit, prepare_fit
from bayeslaw.models import PRIORS
from bayeslaw.models.runs import shape_basis
from bayeslaw.simulation import simulate

QUICK = {"chains": 2, "draws": 150, "warmup": 150, "thin": 6, "min_tokens": 5e9, "progress": False}


@pytest.fixture(scope="module")
def sim():
    return simulate(families=2, sizes=(1e8, 4e8, 1.6e9), seeds=2, checkpoints=10, seed=11)


@pytest.fixture(scope="module")
def fitted(sim):
    return fit(sim.data, seed=0, **QUICK)


def test_datatree_has_every_group_with_named_coords(fitted, sim):
    idata = fitted.idata
    assert isinstance(idata, xr.DataTree)
    for group in ("posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive", "constant_data"):
        assert group in idata.children, f"missing group {group}"
    post = idata.posterior
    assert list(post["family"].values) == ["fam0", "fam1"]
    assert set(idata.constant_data["run"].values) == set(sim.data["run"])
    assert list(post["curve_family"].values) == ["fam0", "fam1"]
    assert post["theta"].dims == ("chain", "draw", "family", "theta_dim")
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150
    assert "energy" in idata.sample_stats and "diverging" in idata.sample_stats
    n_obs = idata.observed_data.sizes["obs_id"]
    # the likelihood factorises over runs: one pointwise log likelihood per run; predictive draws per row
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "run")
    assert idata.log_likelihood["obs"].shape == (2, 150, sim.data["run"].nunique())
    assert idata.posterior_predictive["obs"].shape == (2, 150, n_obs)
    assert n_obs == fitted.idata.attrs["bayeslaw_rows_fitted"] < len(sim.data)  # cut and thinned
    rows = fitted.training_rows()
    np.testing.assert_allclose(np.exp(idata.observed_data["obs"].values), rows["loss"])
    assert idata.attrs["bayeslaw_sampled_sites"]  # what the diagnostics read


def test_unconverged_reads_rhat_and_ess_as_the_diagnostics_do():
    from bayeslaw.inference.nuts import unconverged

    rng = np.random.default_rng(0)
    iid = {"a": rng.normal(size=(4, 1000, 3)), "fixed": np.zeros((4, 1000))}
    assert not unconverged(iid, ["a", "fixed"])  # a constant site has no r-hat to read
    apart = {"a": iid["a"] + np.array([0.0, 0.0, 0.0, 0.3])[:, None, None]}  # one chain off by 0.3 sd
    assert unconverged(apart, ["a"])
    assert unconverged({"a": rng.normal(size=(4, 60, 3))}, ["a"])  # 240 draws: ESS < 400
    assert not unconverged({"a": rng.normal(size=(1, 60))}, ["a"])  # one chain: nothing to compare


def test_diagnostics_leave_out_constant_elements_not_whole_sites(fitted):
    """A sampled site fixed in some entries has no r-hat there (0 / 0): those entries are left out, and
    the site's other entries are still read (a NaN r-hat would read as a chain that never moved)."""
    from bayeslaw.inference.nuts import convergence_table

    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 1000, 2, 3))
    a[:, :, 1, 2] = 0.5  # one entry pinned
    posterior = xr.Dataset({"a": (("chain", "draw", "f", "k"), a), "fixed": (("chain", "draw"), np.zeros((4, 1000))),
                            "corr_chol": (("chain", "draw"), rng.normal(size=(4, 1000)))},
                           coords={"f": ["x", "y"], "k": [0, 1, 2]})
    table = convergence_table(posterior, ["a", "fixed", "corr_chol"])
    assert len(table) == 5 and "a[y, 2]" not in table.index and table["r_hat"].notna().all()
    assert table["r_hat"].max() < 1.01
    # the fit's diagnostics read the same table: pin one entry of a sampled site in a real fit's posterior
    fitted = copy.deepcopy(fitted)
    sites = fitted.idata.attrs["bayeslaw_sampled_sites"].split(",")
    name = next(n for n in sites if fitted.idata.posterior[n].ndim > 2)
    values = fitted.idata.posterior[name].values.copy()
    values[(slice(None), slice(None)) + (0,) * (values.ndim - 2)] = 0.25
    fitted.idata.posterior[name] = (fitted.idata.posterior[name].dims, values)
    diagnostics = fitted.diagnostics(warn=False)
    assert np.isfinite(diagnostics.max_rhat)
    assert len(diagnostics.table) == len(convergence_table(fitted.idata.posterior.to_dataset(), sites))


def test_an_unconverged_fit_draws_more_blocks_going_on_from_its_chains(sim):
    """Tiny chains miss the targets, so a fit with extend=1 draws one more block per chain after the first,
    with no new warmup; extend=0 stops at the first. The draws of the first block are the same."""
    options = {**QUICK, "draws": 40, "warmup": 100}
    once, more = fit(sim.data, extend=0, **options), fit(sim.data, extend=1, **options)
    assert once.idata.attrs["bayeslaw_extensions"] == 0 and more.idata.attrs["bayeslaw_extensions"] == 1
    assert once.idata.posterior.sizes["draw"] == 40 and more.idata.posterior.sizes["draw"] == 80
    assert more.idata.sample_stats["diverging"].shape == (2, 80)
    assert more.idata.log_likelihood["obs"].shape[:2] == (2, 80)
    first = more.site_draws("theta").reshape(2, 80, -1)[:, :40]
    np.testing.assert_array_equal(first, once.site_draws("theta").reshape(2, 40, -1))
    # the second block goes on from the first block's last state: its step size is the adapted one
    step = more.idata.sample_stats["step_size"].values
    np.testing.assert_allclose(step[:, 40:], step[:, :1].repeat(40, axis=1))


def test_predict_shapes_and_summary(fitted):
    targets = pd.DataFrame({"family": ["fam0", "fam1", "unseen"], "params": [3e9, 3e9, 3e9], "tokens": [2e11] * 3})
    for kind in ("law", "new_run"):
        pred = fitted.predict(targets, kind=kind)
        assert pred.draws.shape == (300, 3)
        assert {"mean", "sd", "q5", "q50", "q95"} <= set(pred.summary.columns)
        assert (pred.summary["q5"] <= pred.summary["q50"]).all() and (pred.summary["q50"] <= pred.summary["q95"]).all()
    law_pred, new_pred = fitted.predict(targets, kind="law"), fitted.predict(targets, kind="new_run")
    law, new_run = law_pred.summary, new_pred.summary
    # a new run adds seed and checkpoint noise: visible in the sd where the law is pinned (seen families)
    assert (new_run["sd"] > law["sd"]).iloc[:2].all()
    # ... and for every target, the same parameter draws (same seed) plus a noise of positive spread
    # (for the unseen family the law's own spread dwarfs it, so its sd may go either way in 300 draws)
    noise = np.log(new_pred.draws.values) - np.log(law_pred.draws.values)
    assert (noise.std(axis=0) > 0.002).all()
    assert law.loc[2, "q95"] - law.loc[2, "q5"] > law.loc[0, "q95"] - law.loc[0, "q5"]  # unseen family: wider


def test_law_mean_never_rises_with_params_or_tokens(fitted):
    params, tokens = np.geomspace(1e8, 1e11, 6), np.geomspace(1e10, 1e13, 6)
    grid = pd.DataFrame([(p, t) for p in params for t in tokens], columns=["params", "tokens"]).assign(family="fam0")
    draws = fitted.predict(grid, kind="law").draws.values.reshape(-1, 6, 6)
    assert np.all(np.diff(draws, axis=1) <= 0) and np.all(np.diff(draws, axis=2) <= 0)  # every draw, not just the mean


def test_known_run_is_conditioned_on_its_own_checkpoints(fitted, sim):
    """A run seen in training (e.g. a partly trained target) is predicted from its own offset and deviation."""
    run = max(sim.truth["runs"], key=lambda r: abs(sim.truth["runs"][r]["offset"]))  # the most unusual seed
    rows = sim.data[(sim.data["run"] == run)].iloc[[-1]]
    targets = rows[["family", "params", "tokens"]].assign(run_tokens=rows["tokens"].max())
    own = fitted.predict(targets.assign(run=run), kind="new_run", seed=3).draws.values[:, 0]
    fresh = fitted.predict(targets, kind="new_run", seed=3).draws.values[:, 0]
    # the run's own checkpoints move its forecast the way its offset lies, and narrow it
    assert np.sign(np.median(own) - np.median(fresh)) == np.sign(sim.truth["runs"][run]["offset"])
    assert np.std(own) < 0.7 * np.std(fresh)


def test_new_run_predictive_follows_the_schedule_shape_and_has_finite_moments(fitted):
    """Mid-run checkpoints carry the family's shape g_f(x) and the deviation's variance; the end of a run neither."""
    end = pd.DataFrame({"family": ["fam0"], "params": [1e10], "tokens": [1e11]})  # beyond the fitted sizes
    mid = end.assign(tokens=5e10, run_tokens=1e11)
    law, at_end, at_mid = (fitted.predict(t, kind=k, seed=0, form_error=0.0).draws.values[:, 0]
                           for t, k in ((mid, "law"), (end, "new_run"), (mid, "new_run")))
    # fam0's weights at N = 1e10: w + v (log N - the family's mean log N), v its change per e-fold of N (0
    # at the default PRIORS["shape_size"])
    const = fitted.idata.constant_data
    centre = np.mean(const["log_params"].values[const["obs_family"].values == 0])
    shape = fitted.site_draws("shape")[:, 0] + fitted.site_draws("shape_size")[:, 0] * (np.log(1e10) - centre)
    g_mid = shape @ np.asarray(shape_basis(0.5))
    # the shift from the law at x = 0.5 is the shape term, up to the noise's Monte Carlo error
    assert np.mean(np.log(at_mid) - np.log(law)) == pytest.approx(np.mean(g_mid), abs=0.003)
    # Gaussian in log loss: the loss itself has finite moments (no heavy tails)
    for draws in (at_end, at_mid):
        assert np.isfinite(draws).all() and draws.max() / np.median(draws) < 1.5


def test_shape_weights_at_a_size():
    """Fit.noise_draws' shape at log N, per draw and row ((draw, row, ...) as predict reads them): w + v
    (log N - the family's mean log N)."""
    from bayeslaw.inference.nuts import shape_weights

    w = np.array([[0.1, 0.0, 0.0], [0.2, 0.0, 0.0]])  # two draws
    v = np.array([[0.01, 0.02, 0.0], [0.03, 0.0, 0.01]])
    noise = {"shape": np.stack([w, w], 1), "shape_size": np.stack([v, v], 1), "shape_centre": np.full((2, 2), np.log(1e8))}
    got = shape_weights(noise, np.log([1e8, 1e8 * np.e**2]))  # rows at the centre and two e-folds above
    np.testing.assert_allclose(got[:, 0], w)
    np.testing.assert_allclose(got[:, 1], w + 2 * v)


def test_the_offsets_share_at_a_runs_start_is_learnt(monkeypatch):
    """rho (offset_start, learnt when PRIORS["offset_start"] is set): runs whose offsets are there from the
    start (rho 0.9, runs that differ in what the law does not read) against offsets that grow from nothing
    (rho 0, seeds of one configuration)."""
    monkeypatch.setitem(PRIORS, "offset_start", (1.0, 1.0))
    medians = {}
    for rho in (0.0, 0.9):
        sim = simulate(families=1, sizes=(1e8, 4e8), seeds=4, checkpoints=10, sigma_seed=0.03, offset_start=rho,
                       seed=5)
        medians[rho] = float(np.median(fit(sim.data, seed=0, **QUICK).site_draws("offset_start")[:, 0]))
    assert medians[0.0] < 0.35 and medians[0.9] > 0.6, medians


def test_a_targets_draws_do_not_depend_on_the_other_targets_of_the_call(fitted):
    """With one seed, a target's new-run draws are the same alone, beside another target, in either order."""
    a = pd.DataFrame({"family": ["fam0"], "params": [4e8], "tokens": [1e11]})
    b = pd.DataFrame({"family": ["fam0"], "params": [1.6e9], "tokens": [2e11]})
    alone = fitted.predict(a, seed=5).draws.values[:, 0]
    np.testing.assert_array_equal(fitted.predict(pd.concat([a, b]), seed=5).draws.values[:, 0], alone)
    np.testing.assert_array_equal(fitted.predict(pd.concat([b, a]), seed=5).draws.values[:, 1], alone)
    assert not np.array_equal(fitted.predict(a, seed=6).draws.values[:, 0], alone)


def test_forecast_beyond_the_fitted_sizes_carries_the_form_error(fitted):
    """Outside its family's fitted sizes (1e8-1.6e9) a run's forecast widens by kappa per e-fold of N; inside it does not."""
    targets = pd.DataFrame({"family": ["fam0", "fam0"], "params": [4e8, 1.6e10], "tokens": [1e11, 1e11]})
    sd = fitted.form_error_sd(["fam0", "fam0"], np.log(targets["params"]), 0.03)
    assert sd[0] == 0.0 and sd[1] == pytest.approx(0.03 * np.log(10.0))
    default, none = (np.log(fitted.predict(targets, seed=2, form_error=k).draws.values) for k in (None, 0.0))
    extra = PRIORS["form_error"] * np.log(10.0)
    assert np.var(default[:, 0]) == pytest.approx(np.var(none[:, 0]), rel=1e-9)  # inside: unchanged
    assert np.var(default[:, 1]) - np.var(none[:, 1]) == pytest.approx(extra**2, rel=0.15)
    for bad in (-0.01, np.nan, np.inf):  # not a row of NaN forecasts
        with pytest.raises(ValueError, match="need a finite number >= 0"):
            fitted.predict(targets, form_error=bad)


def test_an_unseen_family_is_drawn_by_the_model_from_the_population(fitted):
    # theta_new ~ MVN(mu, diag(tau) L L^T diag(tau)) per draw: standardised, N(0, I) within Monte Carlo error
    theta = fitted.sampled_theta("unseen", seed=1)
    mu, tau, chol = fitted.site_draws("mu"), fitted.site_draws("tau"), fitted.site_draws("corr_chol")
    z = np.linalg.solve(tau[:, :, None] * chol, (theta - mu)[..., None])[..., 0]
    n = z.shape[0]
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(n)), z.mean(axis=0)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.2)
    noise = fitted.noise_draws(["unseen"], seed=1)
    # its runs are unreplicated: the shared seed spread; its shape weights around the population's
    np.testing.assert_array_equal(noise["sigma_seed"][:, 0], fitted.site_draws("sigma_seed_shared"))
    w = (noise["shape"][:, 0] - fitted.site_draws("shape_mu")) / PRIORS["tau_shape"]
    assert np.all(np.abs(w.mean(axis=0)) < 4 / np.sqrt(n)) and np.allclose(w.std(axis=0), 1.0, atol=0.2)
    # a fitted family keeps its own draws
    np.testing.assert_array_equal(fitted.sampled_theta("fam0"), fitted.site_draws("theta")[:, 0])


def test_the_predictive_is_replicated_in_chunks_of_draws(sim, fitted, monkeypatch):
    """Chunks of 7 draws (the last padded): the same fit's log likelihood to the bit, and a posterior
    predictive of the same distribution, each draw its own (no chunk a copy of another)."""
    import bayeslaw.inference.nuts as nuts

    data = prepare_fit(sim.data, FitConfig(**{k: v for k, v in QUICK.items() if k != "progress"})).data
    monkeypatch.setattr(nuts, "REPLICATE_ELEMENTS", 7 * data.run_mask.size)
    chunked = fit(sim.data, seed=0, **QUICK)
    np.testing.assert_array_equal(chunked.idata.log_likelihood["obs"].values, fitted.idata.log_likelihood["obs"].values)
    ppc, whole = (f.idata.posterior_predictive["obs"].values.reshape(-1, len(data.family)) for f in (chunked, fitted))
    assert ppc.shape == whole.shape and np.isfinite(ppc).all()
    assert len(np.unique(ppc[:, 0])) == len(ppc)
    se = whole.std(axis=0) / np.sqrt(len(whole))
    assert np.all(np.abs(ppc.mean(axis=0) - whole.mean(axis=0)) < 6 * np.sqrt(2) * se)


def test_a_fit_without_its_replicates_draws_and_forecasts_alike(sim, fitted, tmp_path):
    """posterior_predictive=False: the same draws, diagnostics and forecast as the default fit, no replicate
    groups, and it saves and loads as they are."""
    bare = fit(sim.data, seed=0, posterior_predictive=False, **QUICK)
    assert "posterior_predictive" not in bare.idata.children and "log_likelihood" not in bare.idata.children
    xr.testing.assert_equal(bare.idata.posterior.to_dataset(), fitted.idata.posterior.to_dataset())
    assert bare.diagnostics(warn=False).max_rhat == fitted.diagnostics(warn=False).max_rhat
    targets = pd.DataFrame({"family": ["fam0", "fam1"], "params": [3e9, 3e9], "tokens": [6e10, 6e10]})
    pd.testing.assert_frame_equal(bare.predict(targets, seed=2).summary, fitted.predict(targets, seed=2).summary)
    back = load_fit(bare.save(tmp_path / "bare.nc"))
    assert "posterior_predictive" not in back.idata.children
    pd.testing.assert_frame_equal(back.predict(targets, seed=2).summary, bare.predict(targets, seed=2).summary)


def test_predict_works_in_chunks_of_rows_with_the_same_forecast(sim, fitted, monkeypatch):
    """Chunks of 5 target rows (a run's rows split across chunks, its trained tree's conditioning among them,
    two families and the population in one call): the draws and summary of the whole call, to rounding."""
    import bayeslaw.inference.nuts as nuts

    trained = sim.data[sim.data["run"].isin(fitted.runs[:2])].groupby("run").tail(4)
    own = trained[["family", "run", "params", "tokens"]].assign(tokens=lambda t: t["tokens"] * 1.1)
    new = pd.DataFrame({"family": ["fam1"] * 6 + [None] * 3, "run": ["n1"] * 6 + ["n2"] * 3, "params": 4e8,
                        "tokens": np.geomspace(2e10, 2e11, 9)})
    targets = pd.concat([own.drop(columns="run").assign(run=own["run"]), new], ignore_index=True)
    targets["run_tokens"] = targets.groupby("run")["tokens"].transform("max")
    whole = fitted.predict(targets, seed=4)
    monkeypatch.setattr(nuts, "PREDICT_ROW_ELEMENTS", 5 * whole.draws.shape[0])
    chunked = fitted.predict(targets, seed=4)
    np.testing.assert_allclose(chunked.draws.values, whole.draws.values, rtol=1e-13)
    numeric = [c for c in whole.summary.columns if c != "kind" and c not in targets.columns]
    np.testing.assert_allclose(chunked.summary[numeric].to_numpy(float), whole.summary[numeric].to_numpy(float),
                               rtol=1e-13)
    # the trained runs' rows are conditioned on their own checkpoints: tighter than a new run's of that size
    assert chunked.summary["sd"].iloc[:len(own)].max() < chunked.summary["sd"].iloc[len(own):].min()


def test_a_rows_draws_do_not_depend_on_the_other_rows_of_the_call(sim, fitted):
    """Each family's rows predicted alone and all in one call (trained runs, a new run, the population): the
    same draws, as the backtest scores a cell's families from one call."""
    trained = sim.data[sim.data["run"].isin(fitted.runs[:3])].groupby("run").tail(3)
    new = pd.DataFrame({"family": ["fam1"] * 4 + [None] * 2, "run": ["n1"] * 4 + ["n2"] * 2, "params": 4e8,
                        "tokens": np.geomspace(2e10, 2e11, 6)})
    targets = pd.concat([trained[["family", "run", "params", "tokens"]], new], ignore_index=True)
    together = fitted.predict(targets, seed=3).draws.values
    groups = targets.groupby(targets["family"].fillna("population"), sort=False).indices
    assert len(groups) == 3
    for rows in groups.values():
        alone = fitted.predict(targets.iloc[rows], seed=3).draws.values
        np.testing.assert_allclose(alone, together[:, rows], rtol=1e-13)


def test_save_load_round_trip_is_exact(fitted, tmp_path):
    path = fitted.save(tmp_path / "fit.nc")
    assert not list(tmp_path.glob("*.tmp"))
    back = load_fit(path)
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data", "constant_data", "sample_stats"):
        xr.testing.assert_identical(back.idata[group].to_dataset(), fitted.idata[group].to_dataset())
    assert back.pooling == "hierarchical" and back.config == fitted.config
    targets = pd.DataFrame({"family": ["fam0"], "params": [1e9], "tokens": [1e11]})
    pd.testing.assert_frame_equal(back.predict(targets).summary, fitted.predict(targets).summary)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fit(tmp_path / "nope.nc")


def test_diagnostics_come_from_arviz_and_warn_on_a_bad_run(sim, fitted):
    diag = fitted.diagnostics(warn=False)
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(diag.table.columns)
    assert len(diag.bfmi) == 2 and diag.divergences >= 0
    # chains that disagree: the second chain's draws of every family's law moved by half the first's sd
    bad = fitted.idata.copy()
    theta = bad.posterior["theta"].copy()
    theta[1] = theta[1] + 0.5 * theta[0].std("draw")
    bad["posterior"] = bad.posterior.to_dataset().assign(theta=theta)
    bad = Fit(bad)
    with pytest.warns(RuntimeWarning, match="r-hat"):
        report = bad.diagnostics()
    assert report.warning and report.max_rhat > 1.01
    assert "more warmup" in str(report)


@pytest.mark.parametrize("pooling", ["none", "complete"])
def test_other_poolings_fit_and_predict(sim, pooling):
    result = fit(sim.data, pooling=pooling, seed=0, chains=1, draws=60, warmup=60, thin=4, progress=False)
    targets = pd.DataFrame({"family": ["fam0", "new"], "params": [1e9, 1e9], "tokens": [1e11, 1e11]})
    if pooling == "none":  # no population: a family it has not seen is refused, not forecast from the prior
        with pytest.raises(ValueError, match="family 'new' is not in this fit"):
            result.predict(targets)
        targets = targets.iloc[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = result.predict(targets)
    assert np.isfinite(pred.draws.values).all()
    if pooling == "complete":  # one law: every family predicts the same law
        np.testing.assert_allclose(result.site_draws("alpha")[:, 0], result.site_draws("alpha")[:, 1])


def test_a_target_without_a_family_is_of_a_one_family_fits_family(sim):
    """A one-family fit (a user's minimal table) has no population beyond its prior: rows without a family
    column are that family's, not a new family's."""
    one = fit(sim.data[sim.data["family"] == "fam0"], seed=0, chains=1, draws=60, warmup=60, thin=4, progress=False)
    target = pd.DataFrame({"params": [1e9], "tokens": [1e11]})
    bare = one.predict(target).summary
    named = one.predict(target.assign(family="fam0")).summary
    np.testing.assert_array_equal(bare.filter(like="q"), named.filter(like="q"))
    with pytest.raises(ValueError, match="family 'new' is not in this fit.*pooling='none' has no population"):
        one.predict(target.assign(family="new"))  # a typo would have had the prior's forecast


def test_config_is_stored_once_and_refits_exactly(sim, fitted, tmp_path):
    """Refitting with the stored configuration (its seed among it) gives the same draws."""
    assert fitted.config == {**FitConfig().to_dict(), "seed": 0, **{k: v for k, v in QUICK.items() if k != "progress"}}
    again = fit(sim.data, **fitted.config)
    np.testing.assert_array_equal(again.idata.posterior["theta"].values, fitted.idata.posterior["theta"].values)
    # a fit saved before the configuration was recorded: rebuilt from the attributes it carries
    legacy = fitted.idata.copy()
    legacy.attrs = {k: v for k, v in legacy.attrs.items() if k != "bayeslaw_config"}
    legacy.attrs.update({"bayeslaw_form": "chinchilla", "bayeslaw_pooling": "hierarchical",
                         "bayeslaw_seed_scaling": "constant", "bayeslaw_seed": 0, "bayeslaw_min_tokens": -1.0,
                         "bayeslaw_min_fraction": -1.0, "bayeslaw_thin": 20})
    path = Fit(legacy).save(tmp_path / "legacy.nc")
    old = load_fit(path)
    assert old.pooling == "hierarchical" and old.config["min_tokens"] is None and old.config["thin"] == 20
    assert old.config["chains"] == fitted.config["chains"] and old.config["draws"] == fitted.config["draws"]
    with pytest.raises(ValueError, match="unknown seed_scaling 'linear'; valid: 'constant', 'size'"):
        fit(sim.data, seed_scaling="linear")
    with pytest.raises(ValueError, match="unknown chain_method"):
        fit(sim.data, chain_method="threads")


def test_fit_refuses_bad_requests(sim):
    with pytest.raises(ValueError, match="unknown pooling"):
        fit(sim.data, pooling="partial")
    runs = sim.data["run"].nunique()
    with pytest.warns(UserWarning, match=f"left out {runs} of {runs} run\\(s\\) whole .*every row of famil"):
        with pytest.raises(ValueError, match="row\\(s\\) left after the early cut"):
            fit(sim.data, min_tokens=1e13)
    with pytest.raises(ValueError, match="unknown"):
        fit(sim.data, form="kaplan2020")
    with pytest.raises(ValueError, match="batch_size"):  # su2024 reads the batch size and steps
        fit(sim.data.drop(columns="batch_size"), form="su2024")
    # a restart logged twice: refused naming the run and rows, unless the last is kept
    twice = pd.concat([sim.data, sim.data.iloc[[5]].assign(loss=sim.data["loss"].iloc[5] * 1.01)])
    run = sim.data["run"].iloc[5]
    with pytest.raises(ValueError, match=f"run '{run}' has two or more rows at the same tokens .*different losses"):
        fit(twice)
    # a diverged run (its loss ends twice where it started): refused naming it, its rows and the rise
    run = sim.data["run"].iloc[0]
    last = sim.data.index[sim.data["run"] == run].max()
    blown = sim.data.assign(loss=sim.data["loss"].where(sim.data.index != last, sim.data.loc[last, "loss"] * 2.5))
    with pytest.raises(ValueError, match=rf"run '{run}' ends \d+% above its first checkpoint .*rows \[\d+, {last}\].*diverged"):
        fit(blown, min_tokens=None)
    # kept when asked (data drawn from the model's own prior, the calibration study): no error before sampling
    from bayeslaw.inference.config import FitConfig
    from bayeslaw.inference.nuts import prepare_fit

    assert len(prepare_fit(blown, FitConfig(min_tokens=None, rising="keep")).y) > 0
    # or left out when asked, saying which (a source whose table the user cannot edit: wsd_horizons has one)
    with pytest.warns(UserWarning, match=rf"left out 1 diverged run\(s\).*'{run}'"):
        dropped = prepare_fit(blown, FitConfig(min_tokens=None, rising="drop"))
    assert run not in set(dropped.rows["run"]) and len(dropped.rows) > 0
    with pytest.raises(ValueError, match="rising"):
        FitConfig(rising="skip")
    # a late rise that a run can show without diverging (the smallest PolyPythias models: up to +8%) is kept
    from bayeslaw.data.runs import rising_runs

    first = sim.data.index[sim.data["run"] == run].min()
    risen = sim.data.assign(loss=sim.data["loss"].where(sim.data.index != last, sim.data.loc[first, "loss"] * 1.1))
    assert run not in rising_runs(risen).index
    spiked = risen.assign(loss=risen["loss"].where(risen.index != last, risen.loc[first, "loss"] * 1.3))
    assert run in rising_runs(spiked).index
    # a family seen at one size: refused alone, a warning naming it beside others
    one_size = sim.data[(sim.data["family"] == "fam0") & (sim.data["params"] == 1e8)]
    with pytest.raises(ValueError, match=r"\['fam0'\] seen at a single model size cannot be extrapolated"):
        fit(one_size)


def test_duplicates_last_keeps_the_restart_and_single_size_families_warn(sim):
    from bayeslaw.inference.nuts import check_checkpoints

    twice = pd.concat([sim.data, sim.data.iloc[[5]].assign(loss=9.9)], ignore_index=True)
    with pytest.warns(UserWarning, match="1 repeated checkpoint row"):
        kept = check_checkpoints(twice, "last")
    assert len(kept) == len(sim.data) and 9.9 in kept["loss"].values
    assert kept.groupby("run")["tokens"].apply(lambda t: t.is_monotonic_increasing).all()
    mixed = pd.concat([sim.data[sim.data["family"] == "fam1"],
                       sim.data[(sim.data["family"] == "fam0") & (sim.data["params"] == 1e8)]])
    with pytest.warns(UserWarning, match=r"\['fam0'\] seen at a single model size: their size exponent is the population's"):
        prepared = prepare_fit(mixed, FitConfig(thin=3))  # fit's checks: sampling it is the backtest's (test_backtest)
    assert prepared.config.pooling == "hierarchical" and prepared.data.n_families == 2


def test_small_calibration_study_covers_near_nominal():
    """A small version of benchmarks/calibration.py: intervals cover the truth near their nominal rate. Data
    sets 0 and 1 are fitted as one program (fit_many), data set 2 alone (bl.fit)."""
    study = calibration_study(3, seed=100, fit_options={"draws": 150, "warmup": 150}, batch=2)
    assert set(study["dataset"]) == {0, 1, 2}
    table = coverage_table(study)
    assert set(table["quantity"]) == {"E", "alpha", "beta", "sigma_seed", "target_loss"}
    overall = study.groupby("prob")["covered"].mean()
    assert overall[0.9] >= 0.7, table
    assert 0.25 <= overall[0.5] <= 0.85, table


def test_prior_simulation_draws_truth_and_losses_from_the_model():
    """SBC's data sets: the truth is a draw from the model's priors (its spread across draws is the prior's),
    and the losses follow the law at that truth within the drawn noise."""
    import jax
    from numpyro.infer import Predictive

    from bayeslaw.evaluation import calibration_simulation, prior_simulation
    from bayeslaw.models import get_model, prepare

    design = simulate(families=2, sizes=(1e8, 1e9), seeds=2, checkpoints=5, first_tokens=1e10, seed=3).data
    first = prior_simulation(design, seed=7)
    again = prior_simulation(design, seed=7)
    pd.testing.assert_frame_equal(first.data, again.data)
    assert not np.allclose(first.data["loss"], prior_simulation(design, seed=8).data["loss"])
    assert (first.data[["run", "params", "tokens"]].to_numpy() == design[["run", "params", "tokens"]].to_numpy()).all()

    # the law at the truth: each run's final loss sits within its offset and noise of it
    for family, truth in first.truth["families"].items():
        rows = first.data[first.data["family"] == family]
        final = rows.loc[rows.groupby("run")["tokens"].idxmax()]
        law = first.true_loss(family, final["params"], final["tokens"])
        f = sorted(first.truth["families"]).index(family)
        noise = np.hypot(truth["sigma_seed"], first.truth["sites"]["sigma_obs"][f])
        assert np.all(np.abs(np.log(final["loss"].to_numpy()) - np.log(law)) < 6 * noise)

    # the truth across seeds has the prior's distribution (against the model's own prior draws)
    alphas = np.array([prior_simulation(design, seed=s).truth["families"]["fam0"]["natural"]["alpha"]
                       for s in range(60)])
    reference = np.asarray(Predictive(get_model("hierarchical"), num_samples=4000)(
        jax.random.PRNGKey(1), prepare(design))["alpha"])[:, 0]
    lo, hi = np.quantile(reference, [0.1, 0.9])
    inside = np.mean((alphas >= lo) & (alphas <= hi))
    assert 0.8 - 3 * np.sqrt(0.16 / 60) <= inside <= 0.8 + 3 * np.sqrt(0.16 / 60)

    fixed = calibration_simulation(5, truth="fixed")
    pd.testing.assert_frame_equal(fixed.data, simulate(seed=5, **CALIBRATION_SIMULATE).data)


def test_coverage_table_standard_errors_count_data_sets_as_the_units():
    # data set 0 covers 3 of 4 checkpoints, data set 1 covers 1 of 4, data set 2 all: 8 of 12 rows
    covered = [1, 1, 1, 0] + [1, 0, 0, 0] + [1, 1, 1, 1]
    study = pd.DataFrame({"dataset": np.repeat([0, 1, 2], 4), "quantity": "target_loss", "family": "f", "prob": 0.5,
                          "covered": np.array(covered, dtype=bool), "width": 1.0, "error": None})
    row = coverage_table(study).iloc[0]
    assert row["n"] == 12 and row["datasets"] == 3 and row["coverage"] == pytest.approx(8 / 12)
    assert row["se"] == pytest.approx(np.sqrt(0.25 / 12))
    assert row["se_datasets"] == pytest.approx(np.std([0.75, 0.25, 1.0], ddof=1) / np.sqrt(3))


def test_laplace_coordinates_whiten_the_mode_to_the_shrinkage_variance_and_keep_flat_directions_at_unit_scale():
    """z = m + A u: m the mode, A A^T = H^-1 / 1e-3 where the curvature is at least 1 (the Laplace covariance
    in u is 1e-3 I), A's eigenvalue 1 / sqrt(1e-3) along a flat or non-convex direction."""
    import jax
    import jax.numpy as jnp
    from bayeslaw.inference.nuts import LAPLACE_GRADIENT_TOL, SHRINKAGE_VARIANCE, laplace_coordinates

    mean = jnp.array([0.3, -1.0, 2.0])
    # a correlated pair pinned far tighter than 1 (a ridge), and a third coordinate with curvature 0.25
    precision = jnp.array([[2e6, -1.8e6, 0.0], [-1.8e6, 2e6, 0.0], [0.0, 0.0, 0.25]])
    potential = lambda z: 0.5 * (z - mean) @ precision @ (z - mean)  # noqa: E731
    m, A = laplace_coordinates(jax.jit(jax.value_and_grad(potential)), jnp.zeros(3))
    # the mode, to the optimiser's tolerance: the gradient's largest component at most 1e-3
    assert np.max(np.abs(np.asarray(jax.grad(potential)(jnp.asarray(m))))) <= LAPLACE_GRADIENT_TOL
    np.testing.assert_allclose(m, np.asarray(mean), atol=LAPLACE_GRADIENT_TOL / 0.25)
    covariance = np.asarray(A @ A.T) * SHRINKAGE_VARIANCE
    pair = np.linalg.inv(np.asarray(precision[:2, :2]))
    np.testing.assert_allclose(covariance[:2, :2], pair, rtol=1e-5, atol=1e-12)
    assert covariance[2, 2] == pytest.approx(1.0) and np.allclose(covariance[2, :2], 0.0, atol=1e-12)
    # the density in u is the density in z, shifted by a constant: its gradient is A^T dU/dz
    u = jnp.array([0.01, -0.02, 0.5])
    np.testing.assert_allclose(np.asarray(jax.grad(lambda u: potential(m + A @ u))(u)),
                               np.asarray(A.T @ jax.grad(potential)(m + A @ u)), rtol=1e-8)
    # no mode (a saddle: negative curvature along the first axis): the optimiser ends at a finite point no
    # higher than the start, and the non-convex direction is scaled as one of curvature 1
    saddle = lambda z: -0.5 * z[0] ** 2 + 2.0 * z[1] ** 2  # noqa: E731
    m, A = laplace_coordinates(jax.value_and_grad(saddle), jnp.array([0.0, 1.0]))
    assert np.all(np.isfinite(np.asarray(m))) and float(saddle(m)) <= float(saddle(jnp.array([0.0, 1.0])))
    np.testing.assert_allclose(np.abs(np.linalg.eigvalsh(np.asarray(A))) ** 2 * SHRINKAGE_VARIANCE,
                               sorted([1.0, 1 / 4.0]), rtol=1e-8)
    # a gradient component that is not finite off the mode (here d/dz1 once z0 moves): that Hessian entry
    # counts as 0 and its mirror stays finite, so the map is the curvature's elsewhere
    def ragged(z):
        value, grad = jax.value_and_grad(lambda z: 2.0 * z @ z)(z)
        return value, grad.at[1].set(jnp.where(z[0] != 0.0, jnp.nan, grad[1]))

    m, A = laplace_coordinates(ragged, jnp.zeros(2))
    np.testing.assert_allclose(np.asarray(A) ** 2 * SHRINKAGE_VARIANCE * 4.0, np.eye(2), rtol=1e-6, atol=1e-12)


def test_each_chain_starts_at_its_own_laplace_draw_and_at_the_mode_where_that_draw_has_no_density():
    """laplace_start: one start per chain, u ~ N(0, 1e-3 I) (z ~ N(m, H^-1)), reproducible from the seed, and
    u = 0 (the mode) for a draw whose potential is not finite."""
    import jax
    import jax.numpy as jnp
    from bayeslaw.inference.nuts import SHRINKAGE_VARIANCE, laplace_start

    mean = jnp.array([1.0, -2.0, 0.5])
    # a unit Gaussian around mean, with no density where z_0 > mean_0 (half of the Laplace draws)
    walled = lambda z: jnp.where(z[0] > mean[0], jnp.inf, 0.5 * (z - mean) @ (z - mean))  # noqa: E731
    value_and_grad = jax.jit(jax.value_and_grad(walled))
    center, root, u0 = laplace_start(value_and_grad, mean - 0.1, chains=16, seed=3)
    assert u0.shape == (16, 3)
    np.testing.assert_allclose(center, np.asarray(mean), atol=1e-3)
    z = np.asarray(center + u0 @ root.T)
    outside = np.all(np.asarray(u0) == 0.0, axis=1)
    assert 0 < outside.sum() < 16  # some draws fell beyond the wall and start at the mode, the others where drawn
    assert np.all(z[~outside, 0] <= float(mean[0])) and len({tuple(row) for row in z[~outside]}) == (~outside).sum()
    # in z the draws have the posterior's own scale (unit here), not the shrinkage variance's
    assert 0.2 < np.std(np.asarray(u0)[~outside] / np.sqrt(SHRINKAGE_VARIANCE)) < 3.0
    np.testing.assert_array_equal(laplace_start(value_and_grad, mean - 0.1, chains=16, seed=3)[2], u0)
    assert not np.array_equal(laplace_start(value_and_grad, mean - 0.1, chains=16, seed=4)[2], u0)


def test_a_start_with_a_non_finite_density_is_refused_in_one_line():
    """compiled_initialize traces NumPyro's start and compiles only its unconstrained values, so NumPyro's
    own start check no longer runs: the check on the concrete start is bayeslaw's (check_start)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.flatten_util import ravel_pytree

    from bayeslaw.inference.nuts import check_start, compiled_initialize

    def model(y):
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        s = numpyro.sample("s", dist.HalfNormal(1.0))
        numpyro.factor("wall", jnp.where(x > 5.0, -jnp.inf, 0.0))  # no density beyond 5
        numpyro.sample("obs", dist.Normal(x, s), obs=y)

    def start(x):
        info = compiled_initialize(model, {"x": jnp.asarray(x), "s": jnp.asarray(2.0)}, (jnp.asarray(0.5),), {})
        flat, unravel = ravel_pytree(info.param_info.z)
        potential = info.potential_fn(jnp.asarray(0.5))
        return info.param_info.z, jax.value_and_grad(lambda v: potential(unravel(v)))(flat)

    z, (value, grad) = start(1.0)
    assert float(z["x"]) == 1.0 and np.isclose(float(z["s"]), np.log(2.0))  # s unconstrained: log
    check_start(value, grad, z)  # finite: no error
    z, (value, grad) = start(6.0)
    with pytest.raises(RuntimeError, match="non-finite potential") as error:
        check_start(value, grad, z)
    assert "\n" not in str(error.value)
    with pytest.raises(RuntimeError, match=r"non-finite sites \['s'\]"):
        check_start(1.0, np.array([0.0, np.nan]), {"x": np.asarray(1.0), "s": np.asarray(np.inf)})


def test_bayeslaw_imported_after_arviz_fits():
    """ArviZ registers numpyro as a lazy module; imported first, it left numpyro.distributions without the
    submodule numpyro.factor reads, and every fit failed. A fresh interpreter: the import order is the test."""
    import subprocess
    import sys

    code = ("import arviz\n"
            "import bayeslaw\n"
            "import numpyro\n"
            "from numpyro import handlers\n"
            "with handlers.trace() as tr, handlers.seed(rng_seed=0):\n"
            "    numpyro.factor('f', 0.0)\n"
            "assert tr['f']['type'] == 'sample'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_results_show_their_tables_by_size():
    """A result's repr is one short line whatever its draws hold (the generated one printed every draw), and a
    notebook shows its main table under it."""
    from bayeslaw.inference.nuts import summarize
    from bayeslaw.results import brief

    targets = pd.DataFrame({"params": [1e9, 2e9], "tokens": [2e10, 4e10]})
    prediction = summarize(np.full((4000, 2), 3.0), targets, kind="law")
    text = repr(prediction)
    assert "\n" not in text and len(text) < 200, text
    assert "sample: 4000" in text and "<DataFrame 2 rows x" in text and "kind='law'" in text
    page = prediction._repr_html_()
    assert page.count("<table") == 1 and "q95" in page
    simulation = simulate(families=1, sizes=(1e8, 2e8, 4e8), seeds=1, checkpoints=4, seed=0)
    assert repr(simulation).startswith("Simulation(data=<DataFrame ") and "truth" not in repr(simulation)
    assert len(brief("x" * 500)) == 80 and brief({"a": np.zeros(20)}) == "{'a': ...}"


def test_a_run_in_flight_carries_the_laws_misfit_of_the_schedule_it_has_not_run():
    """0 up to the last logged fraction, then growing as the deviation's OU process towards 1 (of sigma_dev^2);
    a finished run (seen to its end) adds nothing."""
    from bayeslaw.inference.nuts import in_flight_misfit
    from bayeslaw.models.runs import ELL

    share = in_flight_misfit(np.array([0.5, 0.9, 0.95, 1.0, 3.0]), 0.9)
    assert share[0] == 0.0 and share[1] == 0.0
    assert 0.0 < share[2] < share[3] < share[4] < 1.0
    assert share[3] == pytest.approx(1.0 - np.exp(-2 * 0.1 / ELL))
    assert not in_flight_misfit(np.array([0.2, 1.0]), 1.0).any()


def test_predict_warns_of_tokens_far_outside_the_fitted_ones(fitted):
    """The band carries the law's form error in N, none in D: tokens ten times beyond the family's are said,
    naming the rows; tokens among the fitted ones, and a size far beyond them, are not."""
    rows = fitted.training_rows("fam0")
    far = pd.DataFrame({"family": "fam0", "params": 1e9, "tokens": [rows["tokens"].max(), 1e17]})
    with pytest.warns(UserWarning, match=r"rows \[1\] ask for D = 1e\+17 tokens, more than 10 times outside the "
                                         r"fitted tokens"):
        fitted.predict(far)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict(far.iloc[:1].assign(params=1e12), form_error=0.0)


def test_a_targets_draws_do_not_depend_on_how_its_values_are_held(fitted):
    """1e9 written as an int, a family given as None or left out (both the population): the same question, the
    same draws (the CLI builds float columns, a caller may not)."""
    floats = pd.DataFrame({"family": ["fam0"], "params": [1e9], "tokens": [1.4e11]})
    ints = pd.DataFrame({"family": ["fam0"], "params": [1_000_000_000], "tokens": [140_000_000_000]})
    np.testing.assert_array_equal(fitted.predict(ints).draws.values, fitted.predict(floats).draws.values)
    population = [fitted.predict(t, seed=3).draws.values for t in
                  (floats.drop(columns="family"), floats.assign(family=[None]), floats.assign(family=[np.nan]))]
    np.testing.assert_array_equal(population[0], population[1])
    np.testing.assert_array_equal(population[0], population[2])
    # a row without a family draws alike alone and beside a named family's row (its column then holds text)
    beside = fitted.predict(pd.concat([floats, floats.assign(family=[None])], ignore_index=True), seed=3)
    np.testing.assert_array_equal(beside.draws.values[:, 1], population[1][:, 0])
