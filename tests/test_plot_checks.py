"""The plots refuse bad input in one line, draw what they are given without dropping it unsaid, and leave
no figure open when they fail (bayeslaw.plots)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bayeslaw import plots  # noqa: E402
from bayeslaw.evaluation import FormComparison  # noqa: E402
from bayeslaw.inference.nuts import Fit, fit  # noqa: E402
from bayeslaw.inference.point import fit_point  # noqa: E402
from bayeslaw.simulation import simulate  # noqa: E402

# small and fast, not converged: these tests check what the plots accept and draw, not the posterior
TINY = {"chains": 1, "draws": 40, "warmup": 40, "thin": 5, "min_tokens": 5e9, "dense_mass": False, "progress": False}


@pytest.fixture(scope="module")
def sim():
    return simulate(families=2, sizes=(1e8, 4e8, 1.6e9), seeds=2, checkpoints=8, seed=11).data


@pytest.fixture(scope="module")
def fitted(sim):
    return fit(sim, seed=0, **TINY)


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")  # what other test files of this process left open is not a plot's here
    yield
    plt.close("all")


# --- a fit's plots ------------------------------------------------------------------------------------------

def test_a_plot_that_fails_midway_leaves_no_figure_open(fitted, sim, monkeypatch):
    """An error (or a notebook's interrupt) after the figure is made: the half-drawn figure is closed, not
    left in pyplot's list to be shown beneath the traceback."""
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Fit, "predict", interrupted)
    before = plt.get_fignums()  # figures other tests of this process left open are not this plot's
    with pytest.raises(KeyboardInterrupt):
        plots.predictive_curves(fitted, sim)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("bad", [np.nan, 0.0, -1.0])
@pytest.mark.parametrize("plot", ["predictive_curves", "seed_variance"])
def test_a_missing_or_non_positive_loss_is_refused_by_its_row(fitted, sim, plot, bad):
    """On a log loss axis such a point would vanish unsaid (and seed_variance's spread turn NaN): refused,
    naming the column and the row by the table's own label."""
    data = sim.set_axis(sim.index + 100)
    data.loc[105, "loss"] = bad
    with pytest.raises(ValueError, match=r"'loss'.*\[105\]"):
        getattr(plots, plot)(fitted, data)
    assert plt.get_fignums() == []


def test_a_loss_column_of_text_is_refused(fitted, sim):
    """Text that reads as numbers would be drawn as categories on the loss axis."""
    with pytest.raises(TypeError, match="'loss'"):
        plots.predictive_curves(fitted, sim.assign(loss=sim["loss"].astype(str)))


@pytest.mark.parametrize("plot", ["predictive_curves", "seed_variance"])
def test_an_empty_table_or_no_table(fitted, sim, plot):
    with pytest.raises(ValueError, match="data has no rows"):
        getattr(plots, plot)(fitted, sim.iloc[:0])
    with pytest.raises(TypeError, match="data must be a pandas DataFrame.*found str"):
        getattr(plots, plot)(fitted, "runs.csv")
    with pytest.raises(TypeError, match="needs a bayeslaw Fit.*found DataFrame"):
        getattr(plots, plot)(sim, sim)  # the arguments swapped


def test_predictive_curves_families_and_max_runs(fitted, sim):
    with pytest.raises(ValueError, match="families is empty"):  # else an empty figure
        plots.predictive_curves(fitted, sim, families=[])
    with pytest.raises(TypeError, match="families=3"):
        plots.predictive_curves(fitted, sim, families=3)
    with pytest.raises(TypeError, match="max_runs=2.5"):  # named: it failed deep in the drawing
        plots.predictive_curves(fitted, sim, max_runs=2.5)
    with pytest.raises(TypeError, match="max_runs='3'"):
        plots.predictive_curves(fitted, sim, max_runs="3")
    assert plt.get_fignums() == []
    figure = plots.predictive_curves(fitted, sim, families=["fam1", "fam1"], max_runs=1)
    assert [ax.get_title() for ax in figure.axes] == ["fam1"]  # one panel per family named


def _comparison(fitted):
    """A FormComparison of one form (the fit's), as compare_forms returns it."""
    rows = fitted.training_rows()
    by_family = pd.DataFrame({"family": fitted.families, fitted.form: [10.0, 20.0], "best": fitted.form})
    return FormComparison(pd.DataFrame(), by_family, pd.DataFrame(), {fitted.form: fitted}, rows)


def test_form_curves_of_one_family_by_name(fitted):
    """One family by name is one panel (list("fam0") would be its letters); max_runs=0 would draw empty panels."""
    comparison = _comparison(fitted)
    figure = plots.form_curves(comparison, families="fam0", max_runs=2)
    assert [ax.get_title() for ax in figure.axes] == ["fam0: best chinchilla"]
    with pytest.raises(ValueError, match=r"\['fam9'\] not among the compared families"):
        plots.form_curves(comparison, families=["fam9"])
    with pytest.raises(ValueError, match="families is empty"):
        plots.form_curves(comparison, families=[])
    with pytest.raises(ValueError, match="max_runs=0"):
        plots.form_curves(comparison, max_runs=0)
    with pytest.raises(TypeError, match="needs a FormComparison.*found Fit"):
        plots.form_curves(fitted)
    assert plt.get_fignums() == [figure.number]


@pytest.mark.parametrize("plot", ["trace", "rank"])
def test_trace_and_rank_var_names(fitted, plot):
    with pytest.raises(ValueError, match="var_names is empty"):  # else ArviZ fails on an empty grid, naming nothing
        getattr(plots, plot)(fitted, var_names=[])
    with pytest.raises(TypeError, match="var_names=3"):
        getattr(plots, plot)(fitted, var_names=3)
    assert plt.get_fignums() == []


def test_point_vs_posterior_refuses_what_is_not_point_fits(fitted, sim):
    with pytest.raises(TypeError, match="point_fits must be a dict.*found list"):
        plots.point_vs_posterior(fitted, [fit_point(sim[sim["family"] == "fam0"], method="hitchhiker",
                                                    warn_early=False)])
    with pytest.raises(TypeError, match=r"\['fam0'\] are not PointFits"):
        plots.point_vs_posterior(fitted, {"fam0": {"E": 1.7}})


def test_prior_predictive_checks_its_table_and_grid():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['q05'\]"):
        plots.prior_predictive(pd.DataFrame({"params": [1e9], "tokens": [1e10], "q25": [3.0], "q50": [3.1],
                                             "q75": [3.2], "q95": [3.5]}))
    with pytest.raises(ValueError, match="sizes must be one or more positive numbers"):
        plots.prior_predictive(sizes=())
    with pytest.raises(ValueError, match="tokens must be one or more positive numbers"):
        plots.prior_predictive(tokens=[0.0, 1e10])  # a log axis
    assert plt.get_fignums() == []


# --- a backtest's plots -------------------------------------------------------------------------------------

def _cells(failed=()):
    """A backtest's cells: two families, k = 2, q in (0, 0.3), a point and a Bayesian method; the cells in
    ``failed`` ((family, q, method)) have no ARE, as a fit that raised leaves them."""
    rows = []
    for i, family in enumerate(("fam0", "fam1")):
        for q in (0.0, 0.3):
            for method in ("bayes-hierarchical", "hitchhiker"):
                bayes = method.startswith("bayes")
                lost = (family, q, method) in failed
                rows.append({"case": "scaling", "family": family, "k": 2, "q": q, "method": method,
                             "are": np.nan if lost else 0.01 * (1 + i) + q / 10, "error": "boom" if lost else None,
                             "failed": lost, "coverage50": 0.5 if bayes and not lost else np.nan,
                             "coverage90": 0.9 if bayes and not lost else np.nan})
    return pd.DataFrame(rows)


def _predictions(runs=("s0", "s1", "s2")):
    """A backtest's predictions of one family's target, several runs (seeds) at the same checkpoints."""
    rows = []
    tokens = (5e10, 7e10, 1e11)
    for r, run in enumerate(runs):
        offset = 0.02 * r  # each run's own prediction (its fitted offset at q > 0)
        for t in tokens:
            law = 2.5 - 0.1 * np.log10(t / 5e10)
            for method in ("bayes-hierarchical", "hitchhiker"):
                bayes = method.startswith("bayes")
                predicted = law + offset if bayes else law
                rows.append({"family": "fam0", "model": "2800M", "run": f"fam0-2800M-{run}", "params": 2.8e9,
                             "tokens": t, "loss": law + offset + 0.005, "case": "scaling", "k": 2, "q": 0.3,
                             "method": method, "predicted": predicted,
                             **{c: predicted + d if bayes else np.nan
                                for c, d in (("q05", -0.03), ("q25", -0.01), ("q75", 0.01), ("q95", 0.03))}})
    return pd.DataFrame(rows)


def test_are_heatmap_of_one_method_by_name():
    """One method by name is one panel (list("hitchhiker") would be ten, one per letter)."""
    figure = plots.are_heatmap(_cells(), methods="hitchhiker")
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["hitchhiker"]
    with pytest.raises(ValueError, match=r"methods \['epoch'\] not in the cells"):
        plots.are_heatmap(_cells(), methods=["epoch"])  # else an empty panel
    with pytest.raises(ValueError, match="family 'fam9' not in the cells"):  # else a figure of no panel
        plots.are_heatmap(_cells(), family="fam9")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['are'\]"):  # the predictions passed for the cells
        plots.are_heatmap(_predictions())
    assert plt.get_fignums() == [figure.number]


def test_are_heatmap_says_when_a_median_leaves_out_a_failed_family():
    """A (k, q) cell whose fit failed for one family: the median is the other family's ARE alone, which the
    panel says; a cell of no ARE at all says so too."""
    cells = _cells(failed=[("fam1", 0.3, "bayes-hierarchical"), ("fam0", 0.3, "hitchhiker"),
                           ("fam1", 0.3, "hitchhiker")])
    figure = plots.are_heatmap(cells)
    texts = {ax.get_title(): sorted(t.get_text() for t in ax.texts) for ax in figure.axes if ax.get_title()}
    bayes_q3 = 100 * cells.loc[(cells["q"] == 0.3) & (cells["method"] == "bayes-hierarchical"), "are"].median()
    bayes_q0 = 100 * cells.loc[(cells["q"] == 0.0) & (cells["method"] == "bayes-hierarchical"), "are"].median()
    assert texts["bayes-hierarchical"] == sorted([f"{bayes_q0:.1f}", f"{bayes_q3:.1f}\n1/2 fam."])
    hitch_q0 = 100 * cells.loc[(cells["q"] == 0.0) & (cells["method"] == "hitchhiker"), "are"].median()
    assert texts["hitchhiker"] == sorted([f"{hitch_q0:.1f}", "no ARE"])


def test_are_heatmap_rows_are_the_same_k_in_every_panel():
    """Cells of two backtests joined (a point method at k = 2 and 3, the Bayesian one at k = 3 alone): the
    panels share their k axis, so each value sits in the row its k labels, not in the first row."""
    cells = _cells()
    cells = pd.concat([cells[cells["method"] == "hitchhiker"], cells.assign(k=3)], ignore_index=True)
    figure = plots.are_heatmap(cells)
    ticks = [int(t.get_text()) for t in figure.axes[0].get_yticklabels()]  # shared by the panels
    assert ticks == [2, 3]
    for ax in (ax for ax in figure.axes if ax.get_title()):
        for text in ax.texts:
            i, j = (round(v) for v in text.get_position()[::-1])
            rows = cells[(cells["method"] == ax.get_title()) & (cells["k"] == ticks[i])
                         & np.isclose(cells["q"], [0.0, 0.3][j])]
            assert not rows.empty and text.get_text() == f"{100 * rows['are'].median():.1f}"


def test_trajectory_bands_draw_each_run_of_a_target():
    """The target's runs (seeds) share their checkpoints, each with its own prediction (one line through all
    of them would zigzag between them): each run is its own line, in its method's colour."""
    predictions = _predictions()
    ax = plots.trajectory_bands(predictions, q=0.3).axes[0]
    medians = [line for line in ax.lines if line.get_color() != "k"]
    bayes = predictions[predictions["method"] == "bayes-hierarchical"]
    assert len(medians) == 2 * bayes["run"].nunique()  # a line per run and method
    expected = {tuple(np.round(rows.sort_values("tokens")["predicted"], 9)) for _, rows in bayes.groupby("run")}
    drawn = {tuple(np.round(line.get_ydata(), 9)) for line in medians}
    assert expected <= drawn
    for line in medians:
        assert np.all(np.diff(line.get_xdata()) > 0)  # along tokens, never back
    assert len({line.get_color() for line in medians}) == 2  # a colour per method
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["observed", "bayes-hierarchical median", "hitchhiker"]  # each method named once


def test_trajectory_bands_name_what_they_cannot_draw():
    predictions = _predictions()
    with pytest.raises(ValueError, match="case='transfr'"):  # else an empty figure
        plots.trajectory_bands(predictions, case="transfr")
    with pytest.raises(ValueError, match="q=1.5"):
        plots.trajectory_bands(predictions, q=1.5)
    with pytest.warns(UserWarning, match=r"no predictions at case=scaling, k=5, q=0.3.*\(2, 0.3\)"):
        figure = plots.trajectory_bands(predictions, k=5, q=0.3)  # cells that failed, or were not run
    assert "no predictions" in figure.axes[0].texts[0].get_text()


def test_calibration_plot_without_a_bayesian_cell_says_so():
    every_bayes_failed = _cells(failed=[(f, q, "bayes-hierarchical") for f in ("fam0", "fam1") for q in (0.0, 0.3)])
    ax = plots.calibration_plot(every_bayes_failed).axes[0]
    assert len(ax.lines) == 1 and "no Bayesian cell" in ax.texts[0].get_text()  # the nominal line alone
    ax = plots.calibration_plot(_cells()).axes[0]
    assert not ax.texts and len(ax.lines) == 2
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['coverage50', 'coverage90'\]"):
        plots.calibration_plot(_predictions())


# --- a plan's plot ------------------------------------------------------------------------------------------

def test_allocation_frontier_of_one_budget_shows_its_bands(fitted, sim):
    """A band over one budget has no area, so the 50%/90% intervals the legend names are interval bars at the
    budget, from the draws' quantiles."""
    from bayeslaw.plan import optimal_allocation

    # the default epoch grid is slow
    point = fit_point(sim[sim["family"] == "fam0"], method="hitchhiker", warn_early=False)
    allocation = optimal_allocation(fitted, [1e20], family="fam0", point=point)
    figure = plots.allocation_frontier(allocation)
    for ax, column in zip(figure.axes, ("params_opt", "tokens_opt"), strict=True):
        values = allocation.draws[column].to_numpy(dtype=float)
        for gid, (lo, hi) in (("band90", (0.05, 0.95)), ("band50", (0.25, 0.75))):
            band = next(c for c in ax.collections if c.get_gid() == gid)
            (segment,) = band.get_segments()
            np.testing.assert_allclose(segment[:, 0], [1e20, 1e20])
            np.testing.assert_allclose(sorted(segment[:, 1]), np.quantile(values, [lo, hi]), rtol=1e-9)
            assert np.max(band.get_linewidth()) > 0
