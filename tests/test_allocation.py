"""Compute-optimal allocation under uncertainty (bayeslaw.plan.allocation).

Most tests build a Fit from hand-made posterior draws (``_fit_from_draws``): the optimum is a property
of the law's draws, and a point-mass posterior is then easy to make. One test runs a small NUTS fit.
"""

import json
import warnings

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayeslaw as bl
import bayeslaw.plots
from bayeslaw.inference.nuts import Fit
from bayeslaw.laws import ExtrapolationWarning, get_law
from bayeslaw.models import get_parameterization
from bayeslaw.plan import allocation as al
from bayeslaw.plan import optimal_allocation

BUDGETS = np.geomspace(1e19, 1e25, 4)


def _fit_from_draws(form, theta, *, families=("fam0",), pooling="complete", sigma_seed=0.01, sigma_obs=0.004,
                    rows=None, hierarchical_tau=0.3):
    """A Fit whose posterior holds ``theta`` (sample, K) in the sampled coordinates of ``form``, one chain.

    complete pooling: every family shares theta; hierarchical: mu = theta, a population spread of
    ``hierarchical_tau`` (identity correlation), each family at mu. ``rows``: the training table stored in
    constant_data/observed_data (default: a 10-row grid of the first draw's law).
    """
    spec = get_parameterization(form)
    theta = np.asarray(theta, dtype=float)
    n, k, f = theta.shape[0], theta.shape[1], len(families)
    per_family = np.broadcast_to(theta[:, None, :], (n, f, k))
    posterior = {
        "theta": (("chain", "draw", "family", "theta_dim"), per_family[None].copy()),
        "sigma_seed": (("chain", "draw", "family"), np.full((1, n, f), sigma_seed)),
        "sigma_obs": (("chain", "draw", "family"), np.full((1, n, f), sigma_obs)),
        "sigma_seed_shared": (("chain", "draw"), np.full((1, n), sigma_seed)),
        "gamma_seed": (("chain", "draw"), np.zeros((1, n))),
        "sigma_dev": (("chain", "draw", "family"), np.zeros((1, n, f))),
        "shape": (("chain", "draw", "family", "shape_dim"), np.zeros((1, n, f, 3))),
    }
    if pooling == "complete":
        posterior["theta_shared"] = (("chain", "draw", "theta_dim"), theta[None])
        posterior["shape_total"] = (("chain", "draw", "shape_dim"), np.zeros((1, n, 3)))
    elif pooling == "hierarchical":
        posterior.update({"mu": (("chain", "draw", "theta_dim"), theta[None]),
                          "tau": (("chain", "draw", "theta_dim"), np.full((1, n, k), hierarchical_tau)),
                          "corr_chol": (("chain", "draw", "corr_dim", "corr_dim_bis"),
                                        np.broadcast_to(np.eye(k), (1, n, k, k)).copy()),
                          "tau_seed": (("chain", "draw"), np.full((1, n), 0.1)),
                          "shape_mu": (("chain", "draw", "shape_dim"), np.zeros((1, n, 3)))})
    coords = {"chain": [0], "draw": np.arange(n), "family": list(families), "theta_dim": list(spec.names),
              "corr_dim": list(spec.names), "corr_dim_bis": list(spec.names)}
    used = {dim for dims, _ in posterior.values() for dim in dims}
    post = xr.Dataset({name: xr.DataArray(v, dims=dims) for name, (dims, v) in posterior.items()},
                      coords={c: v for c, v in coords.items() if c in used})
    if rows is None:
        law_theta = {name: np.asarray(v)[0] for name, v in spec.to_law(theta).items()}
        grid = pd.DataFrame([(nn, d) for nn in (1e8, 3e8, 1e9) for d in (2e10, 6e10, 2e11)] + [(3e9, 3e11)],
                            columns=["params", "tokens"])
        grid["batch_size"] = 2.0**21
        grid["loss"] = np.asarray(spec.law.loss(law_theta, **spec.law.columns(grid)))
        rows = grid.assign(family=families[0])
    inputs = spec.law.columns(rows)
    family_index = {name: i for i, name in enumerate(families)}
    runs = [f"r{i}" for i in range(len(rows))]
    constant = xr.Dataset({**{f"input_{name}": ("obs_id", v) for name, v in inputs.items()},
                           "obs_family": ("obs_id", rows["family"].map(family_index).to_numpy()),
                           "obs_run": ("obs_id", np.arange(len(rows))),
                           "log_params": ("obs_id", np.log(rows["params"].to_numpy(dtype=float))),
                           "log_tokens": ("obs_id", np.log(rows["tokens"].to_numpy(dtype=float))),
                           "step": ("obs_id", np.zeros(len(rows), dtype=int))},
                          coords={"family": list(families), "run": runs})
    observed = xr.Dataset({"obs": ("obs_id", np.log(rows["loss"].to_numpy(dtype=float)))})
    tree = xr.DataTree.from_dict({"posterior": post, "constant_data": constant, "observed_data": observed})
    tree.attrs.update({"bayeslaw_form": form, "bayeslaw_pooling": pooling, "bayeslaw_seed_scaling": "constant",
                       "bayeslaw_rows_fitted": len(rows)})
    return Fit(tree)


def _draws(form, n=40, seed=0, scale=0.3):
    """Sampled-coordinate draws around the prior centre of ``form``, (n, K)."""
    spec = get_parameterization(form)
    rng = np.random.default_rng(seed)
    return spec.vector("center") + scale * spec.vector("scale") * rng.standard_normal((n, len(spec.names)))


def _law_theta(form, draws):
    return {k: np.asarray(v) for k, v in get_parameterization(form).to_law(draws).items()}


def _grid_log_params(form, theta, flops, *, batch_size=None, points=4001, half_width=None):
    """Brute force: log N minimising the law on a dense log grid, per draw and budget (sample, budget).

    The grid is centred on sqrt(C / 6) (``half_width`` in log N each side, default 8 decades in all)."""
    law = get_law(form)
    half_width = 4 * np.log(10) if half_width is None else half_width
    offsets = np.linspace(-half_width, half_width, points)
    out = np.empty((len(next(iter(theta.values()))), len(flops)))
    for j, c in enumerate(flops):
        log_n = 0.5 * np.log(c / 6) + offsets  # (grid,)
        values = np.asarray(al.log_loss_on_budget(law, {k: v[:, None] for k, v in theta.items()}, log_n[None, :],
                                                  np.log(c), batch_size))
        out[:, j] = log_n[np.argmin(values, axis=1)]
    return out, offsets[1] - offsets[0]


@pytest.mark.parametrize("form", ["chinchilla", "kaplan", "kaplan_e"])
def test_closed_form_agrees_with_grid_search_and_the_numeric_path(form):
    theta = _law_theta(form, _draws(form))
    closed, at_bound = al.optimal_log_params(form, theta, BUDGETS)
    grid, step = _grid_log_params(form, theta, BUDGETS)
    numeric, numeric_at_bound = al.numeric_log_params(form, theta, BUDGETS)
    assert closed.shape == (40, len(BUDGETS)) and not at_bound.any() and not numeric_at_bound.any()
    np.testing.assert_allclose(closed, grid, atol=step)  # the grid's argmin is within one step of the optimum
    np.testing.assert_allclose(numeric, closed, atol=1e-6)
    # and it is a minimum: the loss at the closed form is below the grid's best (up to rounding)
    law, columns = get_law(form), {k: v[:, None] for k, v in theta.items()}
    at_closed = np.asarray(al.log_loss_on_budget(law, columns, closed, np.log(BUDGETS)))
    at_grid = np.asarray(al.log_loss_on_budget(law, columns, grid, np.log(BUDGETS)))
    assert np.all(at_closed <= at_grid + 1e-12)


def test_su2024_numeric_optimum_agrees_with_grid_search():
    theta = _law_theta("su2024", _draws("su2024", n=12, scale=0.2))
    budgets, batch = np.array([1e19, 1e22]), 2.0**20
    numeric, at_bound = al.optimal_log_params("su2024", theta, budgets, batch_size=batch)
    grid, step = _grid_log_params("su2024", theta, budgets, batch_size=batch, points=2001)
    assert not at_bound.any()
    np.testing.assert_allclose(numeric, grid, atol=step)
    # the optimum depends on the batch size (steps = D / B): a 16x larger batch moves it
    other, _ = al.optimal_log_params("su2024", theta, budgets, batch_size=16 * batch)
    assert np.max(np.abs(other - numeric)) > 10 * step


def test_chinchilla_optimum_uses_the_whole_budget_and_scales_with_exponent_beta_over_alpha_plus_beta():
    draws = _draws("chinchilla", n=50)
    fit = _fit_from_draws("chinchilla", draws)
    point = bl.fit_point(fit.training_rows(), method="hitchhiker")
    allocation = optimal_allocation(fit, BUDGETS, point=point)
    d = allocation.draws
    np.testing.assert_allclose(6 * d["params_opt"] * d["tokens_opt"], d["flops"], rtol=1e-10)
    np.testing.assert_allclose(d["tokens_per_param"], d["tokens_opt"] / d["params_opt"], rtol=1e-12)
    log_n = np.log(d["params_opt"].to_numpy()).reshape(50, len(BUDGETS))
    slopes = np.diff(log_n, axis=1) / np.diff(np.log(BUDGETS))[None, :]
    theta = _law_theta("chinchilla", draws)
    expected = theta["beta"] / (theta["alpha"] + theta["beta"])
    np.testing.assert_allclose(slopes, np.broadcast_to(expected[:, None], slopes.shape), rtol=1e-9)
    assert np.all(slopes > 0)  # N* grows with C in every draw
    # the summary's median is the draws' median
    np.testing.assert_allclose(allocation.summary["params_opt_q50"], np.median(np.exp(log_n), axis=0), rtol=1e-12)


def test_regret_is_nonnegative_and_zero_for_a_point_mass_posterior():
    draws = _draws("chinchilla", n=60, scale=0.5)
    fit = _fit_from_draws("chinchilla", draws)
    point = bl.fit_point(fit.training_rows(), method="hitchhiker")
    spread = optimal_allocation(fit, BUDGETS, point=point)
    assert (spread.draws["regret"] >= -1e-12).all()
    assert (spread.summary["expected_regret"] > 0).all()  # a spread posterior disagrees with any one allocation
    summary = spread.summary
    np.testing.assert_allclose(summary["expected_regret"],
                               summary["expected_loss_at_point"] - summary["expected_loss_opt"], rtol=1e-9)
    # posterior = a point mass at the point fit: every draw's optimum is the point's, regret 0
    at_point = np.tile(get_parameterization("chinchilla").from_law(point.theta), (30, 1))
    mass = optimal_allocation(_fit_from_draws("chinchilla", at_point), BUDGETS, point=point)
    np.testing.assert_allclose(mass.draws["regret"], 0.0, atol=1e-12)
    np.testing.assert_allclose(mass.summary["params_opt_q50"], mass.summary["point_params"], rtol=1e-9)
    np.testing.assert_allclose(mass.summary["expected_loss_at_point"], point.predict(
        mass.summary["point_params"].to_numpy(), mass.summary["point_tokens"].to_numpy()), rtol=1e-10)


def test_new_run_adds_noise_around_the_law_and_none_when_the_noise_is_zero():
    draws = _draws("chinchilla", n=200, scale=0.1)
    point = bl.fit_point(_fit_from_draws("chinchilla", draws).training_rows(), method="hitchhiker")
    noisy = optimal_allocation(_fit_from_draws("chinchilla", draws, sigma_seed=0.05, sigma_obs=0.02), BUDGETS,
                               point=point).draws
    ratio = np.log(noisy["loss_new_run"] / noisy["loss_law"])
    assert 0.03 < ratio.std() < 0.09  # sd of log loss about sqrt(0.05^2 + 0.02^2 * 5 / 3) = 0.056
    # the population of a hierarchical fit draws theta at random: the noise must still be only the noise
    quiet = _fit_from_draws("chinchilla", draws, pooling="hierarchical", sigma_seed=0.0, sigma_obs=0.0)
    result = optimal_allocation(quiet, BUDGETS, family=None, point=point, seed=3, form_error=0.0)
    assert result.population
    np.testing.assert_allclose(result.draws["loss_new_run"], result.draws["loss_law"], rtol=1e-12)
    # by default a run beyond the fitted sizes also carries the law's form error there (at the median N*)
    wide = optimal_allocation(quiet, BUDGETS, family=None, point=point, seed=3).draws
    log_ratio = np.log(wide["loss_new_run"] / wide["loss_law"]).to_numpy().reshape(200, -1)
    median_n = np.median(wide["params_opt"].to_numpy().reshape(200, -1), axis=0)
    expected = quiet.form_error_sd([None] * len(median_n), np.log(median_n))
    assert expected.max() > 0
    np.testing.assert_allclose(log_ratio.std(axis=0), expected, rtol=0.25, atol=1e-12)
    # ... and it is the same population draw as Fit.law_theta(seed=3) (the law's loss there)
    theta = quiet.law_theta(None, seed=3)
    expected = al._loss_at(get_law("chinchilla"), theta, np.log(result.draws["params_opt"].to_numpy()).reshape(200, -1),
                           np.log(BUDGETS)[None, :], None)
    np.testing.assert_allclose(result.draws["loss_law"].to_numpy().reshape(200, -1), expected, rtol=1e-12)


def test_unseen_family_gets_the_population_and_default_point_fit_uses_the_training_rows(monkeypatch):
    draws = _draws("chinchilla", n=30)
    fit = _fit_from_draws("chinchilla", draws)
    calls = []

    def quick_fit_point(rows, *, form, method, warn_early, across_families):  # the epoch grid takes a minute
        calls.append((rows, form, method))
        return bl.fit_point(rows, form=form, method="hitchhiker", warn_early=warn_early,
                            across_families=across_families)

    monkeypatch.setattr(al, "fit_point", quick_fit_point)
    seen = optimal_allocation(fit, BUDGETS, family="fam0")
    with warnings.catch_warnings(record=True) as caught:  # the population's, as documented, but said once
        warnings.simplefilter("always")
        unseen = optimal_allocation(fit, BUDGETS, family="not-a-family")
    # BUDGETS reach past the fitted sizes: that ExtrapolationWarning is tested in test_plan_sim_checks.py
    family = [w for w in caught
              if issubclass(w.category, UserWarning) and not issubclass(w.category, ExtrapolationWarning)]
    assert [str(w.message) for w in family] == [
        "optimal_allocation: 'not-a-family' is not a family of the fit (families: fam0): forecast for a new family "
        "from the population"]
    assert family[0].filename == __file__  # it points at the caller's line
    assert not seen.population and unseen.population
    rows, form, method = calls[0]
    assert (form, method) == ("chinchilla", "epoch") and len(rows) == fit.idata.attrs["bayeslaw_rows_fitted"]
    assert set(rows.columns) >= {"params", "tokens", "loss", "family"}
    # complete pooling: the population is the shared law, so the allocation is the family's
    pd.testing.assert_series_equal(seen.summary["params_opt_q50"], unseen.summary["params_opt_q50"])


def test_a_family_not_in_the_fit_is_the_population_with_a_warning_and_none_is_silent():
    """A mistyped family got the population's forecast silently; None asks for the population by name."""
    from bayeslaw.plan import minimum_loss, tokens_to_loss

    fit = _fit_from_draws("chinchilla", _draws("chinchilla", n=5), families=("fam0", "fam1"), pooling="hierarchical")
    for answer in (lambda family: tokens_to_loss(fit, 1e9, 2.5, family=family),
                   lambda family: minimum_loss(fit, 1e9, family=family)):
        with pytest.warns(UserWarning, match=r"'fam9' is not a family of the fit \(families: fam0, fam1\): forecast "
                                             r"for a new family from the population"):
            typo = answer("fam9").summary
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            population = answer(None).summary
            answer("fam0")
        np.testing.assert_allclose(typo["q50"], population["q50"])  # the same population draw (seed 0)


def test_the_default_point_fit_does_not_warn_of_the_fits_own_early_checkpoints(monkeypatch):
    """A fit made with min_tokens=None (CLI: --min-tokens 0) kept its early checkpoints on purpose; the point
    fit of those same rows advised cutting them (EarlyCheckpointWarning) on every `plan --flops`."""
    from bayeslaw.inference.point import EarlyCheckpointWarning

    n, d = np.repeat([1e8, 3e8, 1e9], 4), np.tile([2e9, 6e9, 2e10, 6e10], 3)
    rows = pd.DataFrame({"params": n, "tokens": d, "loss": 1.8 + 400 / n**0.34 + 400 / d**0.28, "family": "fam0"})
    fit = _fit_from_draws("chinchilla", _draws("chinchilla", n=20), rows=rows)
    tree = fit.idata.copy()  # three runs of four checkpoints each, two of them at or below 10B tokens
    runs = [f"run{x:g}" for x in np.unique(n)]
    tree["constant_data"] = tree["constant_data"].to_dataset().drop_vars("run").assign_coords(run=runs).assign(
        obs_run=("obs_id", np.repeat(np.arange(3), 4)))
    fit = Fit(tree)
    with pytest.warns(EarlyCheckpointWarning):  # these rows do draw the warning from a point fit of them
        bl.fit_point(fit.training_rows("fam0"), method="hitchhiker")
    monkeypatch.setattr(al, "fit_point", lambda rows, *, form, method, warn_early, across_families: bl.fit_point(
        rows, form=form, method="hitchhiker", warn_early=warn_early))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EarlyCheckpointWarning)
        optimal_allocation(fit, BUDGETS, family="fam0")


def test_bad_inputs_raise_clear_errors():
    chinchilla = _fit_from_draws("chinchilla", _draws("chinchilla", n=5))
    point = bl.fit_point(chinchilla.training_rows(), method="hitchhiker")
    with pytest.raises(ValueError, match="non-positive or non-finite budget"):
        optimal_allocation(chinchilla, [1e21, 0.0], point=point)
    with pytest.raises(ValueError, match="non-positive or non-finite budget"):
        optimal_allocation(chinchilla, -1e21, point=point)
    with pytest.raises(ValueError, match="only su2024"):
        optimal_allocation(chinchilla, 1e21, point=point, batch_size=2**20)
    with pytest.raises(ValueError, match="need a family name"):
        optimal_allocation(chinchilla, 1e21, point=point, family=3)
    compute_rows = pd.DataFrame({"params": [1e8, 1e9, 1e10], "tokens": [1e10, 1e11, 1e12], "loss": [3.0, 2.5, 2.2],
                                 "family": "fam0"})
    compute = _fit_from_draws("compute", _draws("compute", n=5), rows=compute_rows)
    with pytest.raises(ValueError, match="no split into parameters and tokens"):
        optimal_allocation(compute, 1e21)
    su = _fit_from_draws("su2024", _draws("su2024", n=5))
    with pytest.raises(ValueError, match="needs batch_size"):
        optimal_allocation(su, 1e21)
    unpooled = _fit_from_draws("chinchilla", _draws("chinchilla", n=5), pooling="none")
    with pytest.raises(ValueError, match="has no population law"):
        optimal_allocation(unpooled, 1e21, family="unknown", point=point)
    kaplan_point = bl.PointFit("kaplan", "epoch", _law_theta("kaplan", _draws("kaplan", n=1)), 0.0, 10, True)
    for wrong in (kaplan_point, {"E": 1.0}):
        with pytest.raises(ValueError, match="need a bayeslaw.PointFit of the fit's form"):
            optimal_allocation(chinchilla, 1e21, point=wrong)


def test_an_unpooled_fit_refuses_a_family_it_has_not_seen_everywhere_it_forecasts():
    """pooling='none' has no population: an unseen (mistyped) family would get the prior's forecast, which
    no answer gives silently (allocation refused it; predict and the trajectory answers did not)."""
    from bayeslaw.plan import minimum_loss, tokens_to_loss

    two = _fit_from_draws("chinchilla", _draws("chinchilla", n=5), families=("fam0", "fam1"), pooling="none")
    target = pd.DataFrame({"family": ["fam9"], "params": [1e9], "tokens": [1e11]})
    with pytest.raises(ValueError, match="family 'fam9' is not in this fit.*no population law"):
        two.predict(target)
    with pytest.raises(ValueError, match="family 'fam9' is not in this fit"):
        tokens_to_loss(two, 1e9, 2.5, family="fam9")
    with pytest.raises(ValueError, match="no family named"):  # several families, none named
        minimum_loss(two, 1e9)
    assert np.isfinite(two.predict(target.assign(family="fam1")).summary["q50"]).all()


def test_trajectory_answers_refuse_non_positive_or_non_finite_inputs():
    from bayeslaw.plan import minimum_loss, tokens_to_loss

    fit = _fit_from_draws("chinchilla", _draws("chinchilla", n=5))
    for params, loss, name in ((0.0, 2.5, "params"), (-1e9, 2.5, "params"), (1e9, -2.0, "loss"),
                               (1e9, np.nan, "loss")):
        with pytest.raises(ValueError, match=f"{name}: need finite positive values"):
            tokens_to_loss(fit, params, loss, family="fam0")
    with pytest.raises(ValueError, match="params: need finite positive values"):
        minimum_loss(fit, [1e9, 0.0], family="fam0")


def test_su2024_allocation_end_to_end_and_the_plot():
    draws = _draws("su2024", n=40, scale=0.2)
    fit = _fit_from_draws("su2024", draws)
    # the point estimate: the law at the draws' mean (a point fit of su2024 runs a Newton solve per row and start)
    point_theta = _law_theta("su2024", draws.mean(axis=0, keepdims=True))
    point = bl.PointFit("su2024", "epoch", {k: float(v[0]) for k, v in point_theta.items()}, 0.0, 10, True)
    allocation = optimal_allocation(fit, BUDGETS, point=point, batch_size=2**20)
    assert allocation.batch_size == 2**20 and (allocation.summary["at_bound"] == 0).all()
    assert (allocation.draws["regret"] >= -1e-9).all()
    d = allocation.draws
    np.testing.assert_allclose(6 * d["params_opt"] * d["tokens_opt"], d["flops"], rtol=1e-10)
    payload = json.loads(json.dumps(allocation.to_dict()))
    assert payload["form"] == "su2024" and len(payload["summary"]) == len(BUDGETS)
    assert payload["summary"][0]["flops"] == pytest.approx(BUDGETS[0])
    fig = bl.plots.allocation_frontier(allocation)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert "FLOPs" in ax.get_xlabel()
    assert "parameters" in fig.axes[0].get_ylabel() and "tokens" in fig.axes[1].get_ylabel()
    # the median line is the summary's median N*
    median_line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(median_line.get_ydata(), allocation.summary["params_opt_q50"], rtol=1e-12)


@pytest.mark.slow  # NUTS compilation: 34-54 s measured on 2 cores shared at load 6-9
def test_allocation_from_a_small_nuts_fit():
    """The real fit's constant_data rebuilds its training rows, and the allocation behaves on a real posterior."""
    sim = bl.simulation.simulate(families=1, sizes=(70e6, 160e6, 410e6), seeds=2, checkpoints=4, seed=1)
    fit = bl.fit(sim.data, pooling="complete", chains=1, draws=80, warmup=80, thin=4, progress=False)
    rows = fit.training_rows("fam0")
    assert len(rows) == fit.idata.attrs["bayeslaw_rows_fitted"]
    # the rebuilt rows are the data's rows (loss and inputs), after the fit's early cut
    merged = rows.merge(sim.data, on=["run", "step"], how="left", suffixes=("", "_data"), validate="one_to_one")
    for column in ("params", "tokens", "loss"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_data"], rtol=1e-12)
    point = bl.fit_point(rows, method="hitchhiker")
    allocation = optimal_allocation(fit, [1e20, 1e22], family="fam0", point=point)
    s = allocation.summary
    assert (s["expected_regret"] >= 0).all() and (s["params_opt_q5"] < s["params_opt_q95"]).all()
    assert (np.diff(s["params_opt_q50"]) > 0).all() and (np.diff(s["loss_law_q50"]) < 0).all()
    # the new run's band is wider than the law's
    # a new run adds its offset and checkpoint noise to the law's spread (on average over budgets: 80 draws)
    assert ((s["loss_new_run_q95"] - s["loss_new_run_q5"]) > (s["loss_law_q95"] - s["loss_law_q5"])).mean() >= 0.5
    assert (s["loss_new_run_q95"] - s["loss_new_run_q5"]).mean() > (s["loss_law_q95"] - s["loss_law_q5"]).mean()
