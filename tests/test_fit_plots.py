"""The everyday plots of a fitted posterior and the fit report (bayeslaw.plots)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import bayeslaw.data as bd  # noqa: E402
from bayeslaw import plots  # noqa: E402
from bayeslaw.evaluation import point_fits_by_family  # noqa: E402
from bayeslaw.inference.nuts import fit  # noqa: E402
from bayeslaw.inference.point import fit_point  # noqa: E402
from bayeslaw.report import fit_report_files  # noqa: E402
from bayeslaw.simulation import simulate  # noqa: E402

# small and fast, not converged: a diagonal mass matrix keeps NUTS' trees short
QUICK = {"chains": 2, "draws": 150, "warmup": 100, "thin": 5, "min_tokens": 5e9,
         "target_accept": 0.8, "dense_mass": False, "progress": False}
PNGS = ("predictive_curves.png", "forest.png", "seed_variance.png", "point_vs_posterior.png", "trace.png", "rank.png")


@pytest.fixture(scope="module")
def sim():
    return simulate(families=2, sizes=(1e8, 4e8, 1.6e9), seeds=2, checkpoints=8, seed=11)


@pytest.fixture(scope="module")
def fitted(sim):
    return fit(sim.data, seed=0, **QUICK)


@pytest.fixture(scope="module")
def hitchhiker(sim):
    """Point fits per family (the Hitchhiker's single start: fast; epoch's 4500-start grid is the default)."""
    return {f: fit_point(rows, method="hitchhiker") for f, rows in sim.data.groupby("family")}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _by_gid(ax, prefix):
    artists = [*ax.lines, *ax.collections]
    return {a.get_gid().split(":", 1)[1]: a for a in artists if (a.get_gid() or "").startswith(prefix)}


def _band_at(band, x):
    """The (low, high) of a fill_between polygon at x."""
    vertices = band.get_paths()[0].vertices
    ys = vertices[np.isclose(vertices[:, 0], x, rtol=1e-9), 1]
    return ys.min(), ys.max()


def _check_bands(ax):
    medians, band50, band90 = _by_gid(ax, "median:"), _by_gid(ax, "band50:"), _by_gid(ax, "band90:")
    assert medians and set(medians) == set(band50) == set(band90)
    for run, line in medians.items():
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True):
            lo50, hi50 = _band_at(band50[run], x)
            lo90, hi90 = _band_at(band90[run], x)
            assert lo90 <= lo50 <= y <= hi50 <= hi90, (run, x)
    return medians


def test_predictive_curves_panels_runs_and_bands(fitted, sim):
    figure = plots.predictive_curves(fitted, sim.data, max_runs=3)
    assert isinstance(figure, Figure)
    assert [ax.get_title() for ax in figure.axes] == ["fam0", "fam1"]
    for ax in figure.axes:
        medians = _check_bands(ax)
        assert len(medians) == 3  # spread over sizes: the smallest and the largest model among them
        sizes = {float(sim.data.loc[sim.data["run"] == run, "params"].iloc[0]) for run in medians}
        assert min(sizes) == 1e8 and max(sizes) == 1.6e9
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert len(ax.get_legend().get_texts()) == 3


def test_predictive_curves_from_the_fit_alone(fitted):
    """Without data, the rows come from the DataTree: every fitted point is drawn, at its observed loss."""
    figure = plots.predictive_curves(fitted)  # 6 runs per family: all of them
    dots = [line for ax in figure.axes for line in ax.lines if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in dots) == fitted.idata.attrs["bayeslaw_rows_fitted"]
    observed = np.sort(np.exp(fitted.idata.observed_data["obs"].values))
    np.testing.assert_allclose(np.sort(np.concatenate([line.get_ydata() for line in dots])), observed)
    for ax in figure.axes:
        assert len(_check_bands(ax)) == 6


def test_bands_are_the_fits_prediction_of_each_run(fitted, sim):
    """kind="law": the bands are fit.predict(kind="law") at the run's own checkpoints (a fitted run in
    kind="new_run" keeps its fitted offset, whose trade-off with the law can make its band the narrower one)."""
    ax = plots.predictive_curves(fitted, sim.data, families="fam0", max_runs=2, kind="law").axes[0]
    for run, band in _by_gid(ax, "band90:").items():
        targets = sim.data[sim.data["run"] == run].sort_values("tokens").drop(columns="loss")
        expected = fitted.predict(targets, kind="law").summary
        limits = np.array([_band_at(band, x) for x in expected["tokens"]])
        np.testing.assert_allclose(limits, expected[["q5", "q95"]].to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(_by_gid(ax, "median:")[run].get_ydata(), expected["q50"], rtol=1e-9)


def test_predictive_curves_of_a_family_the_fit_has_not_seen(fitted, sim):
    """A held-out family, named: the population's prediction, wider than that of the fitted family it copies."""
    fam0 = sim.data[sim.data["family"] == "fam0"]
    heldout = fam0.assign(family="heldout", run="heldout-" + fam0["run"])
    figure = plots.predictive_curves(fitted, pd.concat([fam0, heldout]), families=["fam0", "heldout"], max_runs=2)
    assert "not fitted" in figure.axes[1].get_title() and "not fitted" not in figure.axes[0].get_title()

    def width(ax):
        return np.mean([np.subtract(*_band_at(band, x)[::-1]) for run, band in _by_gid(ax, "band90:").items()
                        for x in _by_gid(ax, "median:")[run].get_xdata()])
    assert width(figure.axes[1]) > width(figure.axes[0])
    assert len(_check_bands(figure.axes[1])) == 2


def test_predictive_curves_of_final_losses_draw_interval_bars(fitted, sim):
    """One row per run (final losses): a band over a single point has no area, so each run's 50% / 90%
    intervals are bars with a width, around the median."""
    finals = sim.data.loc[sim.data.groupby("run")["tokens"].idxmax()]
    ax = plots.predictive_curves(fitted, finals, families="fam0", max_runs=3).axes[0]
    medians = _check_bands(ax)
    assert len(medians) == 3 and all(len(line.get_xdata()) == 1 for line in medians.values())
    for prefix in ("band50:", "band90:"):
        assert all(np.max(band.get_linewidth()) > 0 for band in _by_gid(ax, prefix).values())


def test_predictive_curves_bad_input(fitted, sim):
    with pytest.raises(ValueError, match="kind"):
        plots.predictive_curves(fitted, kind="median")
    with pytest.raises(ValueError, match="loss"):
        plots.predictive_curves(fitted, sim.data.drop(columns="loss"))
    with pytest.raises(ValueError, match="fam9"):
        plots.predictive_curves(fitted, sim.data, families=["fam9"])
    with pytest.raises(ValueError, match="none of the fit's"):  # else an empty figure
        plots.predictive_curves(fitted, sim.data.assign(family="other"))


def test_forest_rows_are_the_families_and_the_population(fitted):
    figure = plots.forest(fitted)
    names = list(fitted.spec.law.natural(fitted.law_theta("fam0")))
    assert [ax.get_title() for ax in figure.axes] == names == ["E", "A", "B", "alpha", "beta"]
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["fam0", "fam1", "population mean (mu)", "new family"]
    medians = fitted.params().set_index(["family", "parameter"])["median"]
    for ax, name in zip(figure.axes, names, strict=True):
        dots = [line for line in ax.lines if line.get_marker() == "o"]
        assert len(dots) == len(labels)
        for family, dot in zip(fitted.families, dots, strict=False):
            np.testing.assert_allclose(dot.get_xdata()[0], medians[(family, name)], rtol=1e-5)
    assert figure.axes[1].get_xscale() == "log" and figure.axes[3].get_xscale() == "linear"  # A spans decades


def test_seed_variance_against_the_spread_across_seeds(fitted, sim):
    figure = plots.seed_variance(fitted, sim.data)
    assert [ax.get_title() for ax in figure.axes] == ["fam0", "fam1"]
    final = sim.data.sort_values("tokens").groupby("run").agg(family=("family", "first"), params=("params", "first"),
                                                              loss=("loss", "last"))
    sigma_seed = fitted.site_draws("sigma_seed")
    for i, (ax, family) in enumerate(zip(figure.axes, fitted.families, strict=True)):
        empirical = final[final["family"] == family].groupby("params")["loss"].agg(lambda v: np.log(v).std(ddof=1))
        points = next(line for line in ax.lines if line.get_marker() == "o")
        np.testing.assert_allclose(points.get_xdata(), empirical.index)
        np.testing.assert_allclose(points.get_ydata(), empirical.to_numpy())
        median = ax.lines[0].get_ydata()  # constant seed_scaling: a flat line at sigma_seed's posterior median
        np.testing.assert_allclose(median, np.median(sigma_seed[:, i]))
    assert any("sigma_seed" in t.get_text() for t in figure.legends[0].get_texts())


def test_trace_and_rank_of_the_main_sites(fitted):
    figure = plots.trace(fitted)
    assert isinstance(figure, Figure)
    labels = {ax.get_ylabel() for ax in figure.axes} - {""}
    assert {"e", "alpha", "beta", "sigma_obs", "sigma_seed"} <= labels
    assert not labels & {"obs", "theta_raw", "shape_total"}  # per-row and sampling-coordinate sites
    one = plots.trace(fitted, var_names="alpha")
    assert {ax.get_ylabel() for ax in one.axes} - {""} == {"alpha"}

    figure = plots.rank(fitted, var_names=["alpha", "sigma_obs"])
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert sorted(titles) == sorted(f"{v}\n{f}" for v in ("alpha", "sigma_obs") for f in fitted.families)
    with pytest.raises(ValueError, match="no posterior site"):
        plots.rank(fitted, var_names=["alpha", "Alpha"])


def test_rank_of_more_panels_than_arviz_draws_shows_the_families_with_the_largest_rhat(fitted, monkeypatch):
    # ArviZ refuses a figure of more than plot.max_subplots panels (a fit of six families of a schedule
    # law has 90): the plot keeps the families whose sites have the largest r-hat, as many as fit, and says so
    import arviz as az
    from arviz_base import rcParams

    monkeypatch.setitem(rcParams, "plot.max_subplots", 3)  # 2 sites x 2 families = 4 panels
    rhat = az.rhat(fitted.idata, var_names=["alpha", "sigma_obs"])
    worst = fitted.families[int(np.argmax(np.maximum(rhat["alpha"].values, rhat["sigma_obs"].values)))]
    figure = plots.rank(fitted, var_names=["alpha", "sigma_obs"])
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert sorted(titles) == [f"alpha\n{worst}", f"sigma_obs\n{worst}"]
    assert figure._suptitle.get_text().endswith("the 1 of 2 families with the largest r-hat")


def test_run_labels_drop_what_every_run_shares():
    from bayeslaw.plots.fit import run_labels

    sweep = [f"ann124-{f}_slimpajama_llama_norm_nlayers12_lr0.001_iter{n}_seed0" for f, n in ((0.2, 50000), (0.9, 35000))]
    assert run_labels(sweep) == ["ann124-0.2_iter50000", "ann124-0.9_iter35000"]
    cut = "a" * 17 + "…" + "b" * 18  # 36 characters: the start and end of each name, which read alike here
    assert run_labels(["a" * 30 + "x" + "b" * 30, "a" * 30 + "y" + "b" * 30]) == [f"1: {cut}", f"2: {cut}"]
    assert run_labels(["only-run"]) == ["only-run"]


def test_point_vs_posterior_marks_each_point_fit(fitted, sim, hitchhiker):
    figure = plots.point_vs_posterior(fitted, hitchhiker)
    assert [ax.get_title() for ax in figure.axes] == ["E", "A", "B", "alpha", "beta"]
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == fitted.families
    for ax in figure.axes:
        marks = [line for line in ax.lines if line.get_marker() == "x"]
        expected = [hitchhiker[f].params[ax.get_title()] for f in fitted.families]
        np.testing.assert_allclose([m.get_xdata()[0] for m in marks], expected)
        assert len(ax.collections) >= len(fitted.families)  # a density per family
    with pytest.raises(ValueError, match="fam9"):
        plots.point_vs_posterior(fitted, {"fam9": hitchhiker["fam0"]})


def test_point_vs_posterior_says_which_family_has_no_point_fit(fitted, sim):
    """Point fits made by evaluation; a family with fewer rows than parameters gets none, and the figure says why."""
    fam1 = sim.data.index[sim.data["family"] == "fam1"]
    rows = sim.data[(sim.data["family"] == "fam0") | sim.data.index.isin(fam1[:3])]
    point_fits, failures = point_fits_by_family(fitted, rows, method="hitchhiker")
    figure = plots.point_vs_posterior(fitted, point_fits, failures=failures)
    assert "no point fit for fam1" in figure.get_suptitle()
    assert len([line for line in figure.axes[0].lines if line.get_marker() == "x"]) == 1


def test_fit_report_writes_every_file(fitted, sim, hitchhiker, tmp_path):
    report = plots.fit_report(fitted, tmp_path / "report", data=sim.data, point_fits=hitchhiker)
    assert report == tmp_path / "report" / "report.md"
    files = {p.name for p in report.parent.iterdir()}
    assert files == {*PNGS, "params.csv", "diagnostics.csv", "diagnostics.txt", "report.md"}  # no temporary left
    assert fit_report_files(fitted) == [*PNGS, "params.csv", "diagnostics.csv", "diagnostics.txt", "report.md"]
    text = report.read_text()
    for png in PNGS:
        assert f"]({png})" in text
        assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chains x 150 draws" in text and "hierarchical" in text and "fam0, fam1" in text
    assert f"divergences {fitted.diagnostics(warn=False).divergences}" in text
    params = pd.read_csv(report.parent / "params.csv")
    assert len(params) == len(fitted.params()) and set(params["family"]) == set(fitted.families)
    assert "r_hat" in pd.read_csv(report.parent / "diagnostics.csv").columns
    assert not plt.get_fignums()  # every figure closed


def test_fit_report_fails_cleanly(fitted, hitchhiker, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot make the report folder"):
        plots.fit_report(fitted, blocker / "report", point_fits=hitchhiker)
    assert blocker.read_text() == "not a folder"

    def broken(*args, **kwargs):
        raise RuntimeError("rank plot failed")

    for name in ("predictive_curves", "forest", "seed_variance", "point_vs_posterior", "trace"):  # cheap stand-ins
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: plt.figure())
    monkeypatch.setattr(plots, "rank", broken)  # the last figure drawn
    out = tmp_path / "half"
    with pytest.raises(RuntimeError, match="rank plot failed"):
        plots.fit_report(fitted, out, point_fits=hitchhiker)
    # figures are drawn before anything is written, the folder too: no PNG, no report.md, no empty folder
    assert not out.exists()
    assert not plt.get_fignums()


def test_fit_report_makes_the_point_fits_it_is_not_given(fitted, sim, hitchhiker, tmp_path, monkeypatch):
    """Without point_fits the report (not the plot) asks evaluation for them, and the figure says who has none."""
    import bayeslaw.report

    asked, drawn = [], []

    def point_fits_by_family(fit, data, **options):  # the epoch grid is slow; the call is what is checked
        asked.append((fit, data, options))
        return {"fam0": hitchhiker["fam0"]}, {"fam1": "too few rows"}

    def point_vs_posterior(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    real = plots.point_vs_posterior
    monkeypatch.setattr(bayeslaw.report, "point_fits_by_family", point_fits_by_family)
    monkeypatch.setattr(plots, "point_vs_posterior", point_vs_posterior)
    for name in ("predictive_curves", "forest", "seed_variance", "trace", "rank"):  # cheap stand-ins
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: plt.figure())
    plots.fit_report(fitted, tmp_path / "report", data=sim.data)
    assert len(asked) == 1 and asked[0][0] is fitted and asked[0][1] is sim.data
    assert asked[0][2].get("method", "epoch") == "epoch"
    assert "no point fit for fam1: too few rows" in drawn[0].get_suptitle()


def test_point_fits_beside_a_fit_read_the_rows_the_fit_read(fitted, sim):
    """Given the whole table, the point fits are cut early as the fit's rows were: the same fits as on the cut
    rows, without a warning to cut them (which report --data could not follow)."""
    import warnings

    rows = bd.cut_early(sim.data, min_tokens=fitted.config["min_tokens"])  # the fit's own cut
    assert len(rows) < len(sim.data)  # the table has checkpoints the fit's cut left out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole, _ = point_fits_by_family(fitted, sim.data, method="hitchhiker")
    cut, _ = point_fits_by_family(fitted, rows, method="hitchhiker")
    for family in fitted.families:
        assert whole[family].params == pytest.approx(cut[family].params, rel=1e-12)


def test_a_picture_of_the_data_does_not_warn_of_its_own_rows(fitted, sim):
    """The curves are drawn at the table's checkpoints, early ones included: predict would warn of those
    tokens (far below the fitted ones), the picture does not (they are drawn, not asked for)."""
    import warnings

    from bayeslaw.laws import ExtrapolationWarning

    early = sim.data.assign(tokens=sim.data["tokens"] / 100)  # runs a hundredth as long
    with pytest.warns(ExtrapolationWarning):
        fitted.predict(early.drop(columns="loss"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        plots.predictive_curves(fitted, early)
