"""The backtest harness on the demo data, in quick mode (small NUTS runs)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayeslaw.cli import app
from bayeslaw.evaluation import backtest
from bayeslaw.plots import backtest_report
from bayeslaw.simulation import load_demo


FIT_MANY_CALLS = []  # (tables, pooling) of each fit_many call of the quick backtest


@pytest.fixture(scope="module")
def quick():
    from bayeslaw import evaluation

    df = load_demo().data
    real = evaluation.fit_many

    def recording(tables, **options):
        FIT_MANY_CALLS.append((len(tables), options["pooling"]))
        return real(tables, **options)

    evaluation.fit_many = recording
    try:
        return backtest(df, ks=(2,), fractions=(0.0, 0.3), methods=("hitchhiker",), poolings=("hierarchical",),
                        transfer=True, families=["fam0", "fam1"], thin=6, compare=False, progress=False,
                        fit_options={"chains": 1, "draws": 60, "warmup": 150}, batch=True)
    finally:
        evaluation.fit_many = real


def test_the_bayesian_cells_of_one_k_are_fitted_together(quick):
    # k=2 at q 0 and 0.3: one fit_many call of two tables; each transfer case is a fit of its own
    assert FIT_MANY_CALLS == [(2, "hierarchical")]
    bayes = quick.cells[(quick.cells["case"] == "scaling") & (quick.cells["method"] == "bayes-hierarchical")]
    assert sorted(bayes["q"].unique()) == [0.0, 0.3] and bayes["divergences"].notna().all()  # one chain: no r-hat
    # point fits: 2 families x 2 q, and 2 transfer; NUTS fits: one per q, and 2 transfer
    assert quick.timing["fits"] == 2 * 2 + 2 + 2 + 2


def test_cells_cover_every_family_k_q_and_method(quick):
    cells = quick.cells
    scaling = cells[cells["case"] == "scaling"]
    assert set(scaling["method"]) == {"hitchhiker", "bayes-hierarchical"}
    assert len(scaling) == 2 * 2 * 2  # families x q x methods
    transfer = cells[cells["case"] == "transfer"]
    assert set(transfer["family"]) == {"fam0", "fam1"} and set(transfer["method"]) == {"hitchhiker", "bayes-hierarchical"}
    assert (cells["train_models"][cells["case"] == "scaling"] == 2).all()
    # the demo's laws are smooth: from two sizes and one short chain every method predicts the target
    # within 15% (the transfer cases, one model each, are the furthest off: 4-11% across machines). The
    # one-size family is centred in its frame, whose ridge 60 warmup iterations do not find (26% off)
    assert (cells["are"] < 0.15).all()
    bayes = cells[cells["method"].str.startswith("bayes")]
    assert bayes["coverage90"].between(0, 1).all() and (bayes["width90"] > bayes["width50"]).all()
    assert cells.loc[cells["method"] == "hitchhiker", "coverage90"].isna().all()


def test_seeing_part_of_the_target_run_does_not_hurt_much(quick):
    # q = 0.3 adds the target's early checkpoints (the bayes fit then uses that run's own offset)
    b = quick.cells[(quick.cells["case"] == "scaling") & (quick.cells["method"] == "bayes-hierarchical")]
    by_q = b.groupby("q")["are"].mean()
    assert by_q[0.3] <= by_q[0.0] * 1.5


def test_predictions_are_the_targets_late_checkpoints(quick):
    demo = load_demo().data
    p = quick.predictions
    for family, rows in p.groupby("family"):
        target = demo[demo["family"] == family].sort_values("params")["model"].iloc[-1]
        assert (rows["model"] == target).all()
        fraction = rows["tokens"] / demo[demo["model"] == target]["tokens"].max()
        assert (fraction >= 0.7 - 1e-12).all()
    b = p[p["method"] == "bayes-hierarchical"]
    assert (b["q05"] <= b["predicted"]).all() and (b["predicted"] <= b["q95"]).all()


def test_report_folder_has_tables_figures_and_markdown(quick, tmp_path):
    report = backtest_report(quick, tmp_path / "report")
    folder = report.parent
    for name in ("cells.csv", "predictions.csv", "aggregate_by_family.csv", "aggregate_by_k.csv", "are_heatmap.png",
                 "trajectories.png", "calibration.png", "transfer_trajectories.png"):
        assert (folder / name).stat().st_size > 0, name
    text = report.read_text()
    assert "## Verdict" in text and "bayes-hierarchical: median ARE" in text
    again = pd.read_csv(folder / "cells.csv")
    assert len(again) == len(quick.cells)
    assert not list(folder.glob(".*.tmp"))


def test_backtest_refuses_families_it_cannot_score():
    df = load_demo().data
    with pytest.raises(ValueError, match=r"unknown family\(ies\) \['nope'\]"):
        backtest(df, families=["nope"], progress=False)
    small = df[df["params"] <= np.sort(df["params"].unique())[1]]
    with pytest.raises(ValueError, match="no family has at least min_sizes=3"):
        backtest(small, progress=False)


def test_cli_backtest_quick_writes_report(tmp_path):
    result = CliRunner().invoke(app, ["backtest", "demo", "--quick", "--q", "0", "--family", "fam2", "--out", str(tmp_path / "bt"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bt" / "report.md").exists()
    assert '"aggregate"' in result.output


def test_point_fit_on_fewer_points_than_parameters_is_counted_not_dropped():
    # a final-loss family (one row per model): k = 2 smallest models give 2 points for 5 parameters
    demo = load_demo().data
    fam0 = demo[demo["family"] == "fam0"]
    final = fam0.loc[fam0.groupby("model")["tokens"].idxmax()].assign(family="finals")
    df = pd.concat([demo[demo["family"] == "fam1"], final], ignore_index=True)
    result = backtest(df, ks=(2,), fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False,
                      thin=6, compare=False, progress=False)
    cells = result.cells.set_index("family")
    assert np.isnan(cells.loc["finals", "are"]) and np.isfinite(cells.loc["fam1", "are"])
    table = result.aggregate(("method",)).set_index("method")
    assert table.loc["hitchhiker", "cells"] == 1 and table.loc["hitchhiker", "unscored"] == 1
    everything = result.aggregate(("family", "method"), common=False).set_index("family")
    assert everything.loc["finals", "unscored"] == 1 and everything.loc["fam1", "cells"] == 1


def test_unpooled_cells_fit_only_the_scored_families_and_say_why_one_seen_at_a_single_size_is_not():
    from bayeslaw import evaluation

    df = load_demo().data
    # fam1's 160M and 410M models given the 70M model's size: its k=3 training rows hold a single size;
    # fam2 keeps three models, too few to be scored at k=3
    df = df.assign(params=df["params"].where(~df["model"].isin(["fam1-160M", "fam1-410M"]), 7e7))
    df = df[~df["model"].isin(["fam2-160M", "fam2-410M"])]
    seen = []
    real = evaluation.fit

    def recording(rows, **options):
        seen.append(sorted(rows["family"].unique()))
        return real(rows, **options)

    evaluation.fit = recording
    try:
        with pytest.warns(RuntimeWarning, match=r"fewer models below its target than k \(k=3: fam2\)"):
            result = backtest(df, ks=(3,), fractions=(0.0,), methods=(), poolings=("none",), transfer=False,
                              thin=5, compare=False, progress=False,
                              fit_options={"chains": 1, "draws": 60, "warmup": 60})
    finally:
        evaluation.fit = real
    assert seen == [["fam0"]]  # fam2 is not scored at k=3, fam1 cannot be fitted on its own
    cells = result.cells.set_index("family")
    assert np.isfinite(cells.loc["fam0", "are"]) and pd.isna(cells.loc["fam0", "error"])
    assert np.isnan(cells.loc["fam1", "are"])
    assert cells.loc["fam1", "error"] == "no unpooled forecast: the family's training rows hold a single model size"


# --- checks before anything runs, what a study says about itself -------------------------------------------

POINT_ONLY = dict(fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False, thin=6, compare=False,
                  progress=False)


def _no_fit(*args, **kwargs):
    raise AssertionError("a fit ran before the options were checked")


def test_a_k_no_family_can_take_is_refused_in_one_line_before_the_folder_is_made(tmp_path):
    # was: the study ran, then `error: case` (an empty cells table) with study.json and cells/ left behind;
    # with --k 2 --k 5 it exited 0 with only k=2 cells while report.md said k = [2, 5]
    out = tmp_path / "bt"
    for ks in (["--k", "5"], ["--k", "2", "--k", "5"]):
        result = CliRunner().invoke(app, ["backtest", "demo", "--family", "fam0", "--quick", *ks, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.output.strip() == ("error: backtest: k=5 is more models than any family has below its target; "
                                         "the largest valid k is 4 (per family: fam0 4)")
        assert not out.exists()


def test_a_k_some_families_cannot_take_is_named_in_a_warning_and_the_report(tmp_path):
    from bayeslaw.report import backtest_report

    df = load_demo().data
    df = df[~df["model"].isin(["fam1-160M", "fam1-410M"])]  # fam1: 2 models below its target
    with pytest.warns(RuntimeWarning, match=r"fewer models below its target than k \(k=3: fam1\)"):
        result = backtest(df, ks=(2, 3), families=["fam0", "fam1"], **POINT_ONLY)
    assert result.settings["left_out"] == {3: ["fam1"]}
    assert sorted(result.cells.loc[result.cells["k"] == 3, "family"]) == ["fam0"]
    text = backtest_report(result, tmp_path / "bt").read_text()
    assert "## Families not scored at some k" in text and "- k = 3: fam1" in text


@pytest.mark.parametrize("options, message", [
    ({"poolings": ("nosuch",)}, "backtest: unknown pooling 'nosuch'; valid: 'hierarchical', 'none', 'complete'"),
    ({"fit_options": {"chains": 0}}, "backtest: chains=0: need a positive whole number"),
    ({"fit_options": {"draws": 0}}, "backtest: draws=0: need a positive whole number"),
    ({"fit_options": {"chian": 2}}, r"backtest: fit_options \['chian'\] are not options of bayeslaw.fit"),
    ({"ks": (0,)}, r"backtest: k=0 must be a whole number >= 1"),
])
def test_bad_study_options_are_refused_before_any_fit(monkeypatch, tmp_path, options, message):
    # was: the point fits ran, then every Bayesian cell failed, and the study exited 0 with a summary of NaN
    from bayeslaw import evaluation

    monkeypatch.setattr(evaluation, "fit_point", _no_fit)
    monkeypatch.setattr(evaluation, "fit", _no_fit)
    settings = {**POINT_ONLY, "poolings": ("hierarchical",), "ks": (2,), **options}
    with pytest.raises(ValueError, match=message):
        backtest(load_demo().data, families=["fam0"], folder=tmp_path / "bt", **settings)
    assert not (tmp_path / "bt").exists()


@pytest.mark.parametrize("args, message", [
    (["--chains", "0"], "error: --chains 0: need a whole number >= 1"),
    (["--draws", "0"], "error: --draws 0: need a whole number >= 1"),
    (["--pooling", "nosuch"], "error: unknown --pooling 'nosuch'; valid: 'hierarchical', 'none', 'complete'"),
    (["--q", "1.5"], "error: --q 1.5: need a fraction of the target's run seen in [0, 0.7) (its last 30% is the test)"),
])
def test_cli_backtest_refuses_bad_options_in_one_line_before_reading_the_data(monkeypatch, tmp_path, args, message):
    from bayeslaw import evaluation

    monkeypatch.setattr(evaluation, "backtest", _no_fit)
    result = CliRunner().invoke(app, ["backtest", "demo", "--quick", *args, "--out", str(tmp_path / "bt")])
    assert result.exit_code == 2 and result.output.strip() == message
    assert not (tmp_path / "bt").exists()


def test_quick_keeps_the_chains_draws_and_transfer_given_explicitly(monkeypatch, tmp_path):
    # was: --quick replaced fit_options (and transfer) whatever the user gave
    from bayeslaw import evaluation

    seen = {}

    def stop(df, **options):
        seen.update(options)
        raise ValueError("stopped")

    monkeypatch.setattr(evaluation, "backtest", stop)
    args = ["backtest", "demo", "--quick", "--out", str(tmp_path / "bt")]
    assert CliRunner().invoke(app, [*args, "--chains", "2", "--draws", "40", "--transfer"]).exit_code == 2
    assert seen["fit_options"] == {"chains": 2, "draws": 40, "warmup": 40} and seen["transfer"] is True
    assert CliRunner().invoke(app, args).exit_code == 2
    assert seen["fit_options"] == {"chains": 1, "draws": 150, "warmup": 150} and seen["transfer"] is False
    assert seen["ks"] == (2,) and seen["poolings"] == ("hierarchical",)


@pytest.fixture
def point_only_cli(monkeypatch):
    """The CLI's backtest with point fits only (hitchhiker; no NUTS): fast, and its coverage columns are NaN."""
    from bayeslaw import evaluation

    real = evaluation.backtest
    monkeypatch.setattr(evaluation, "backtest", lambda df, **options: real(df, **{**options, **POINT_ONLY}))


def test_cli_backtest_json_is_strict_json_and_a_resume_counts_only_the_fits_it_ran(point_only_cli, tmp_path):
    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))

    out = tmp_path / "bt"
    args = ["backtest", "demo", "--family", "fam0", "--family", "fam1", "--quick", "--out", str(out)]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    payload = strict(first.output)  # was NaN for the point fits' coverage: not JSON
    assert payload["aggregate"][0]["coverage90"] is None
    assert payload["timing"]["fits"] == 2 and payload["timing"]["reused"] == 0
    # an interrupted study: one cell kept, the other to run again
    cells = sorted((out / "cells").glob("*.pkl"))
    cells[0].unlink()
    again = CliRunner().invoke(app, [*args, "--resume", "--json"])
    assert strict(again.output)["timing"] | {"wall_s": 0, "fit_s_sum": 0} == {"fits": 1, "reused": 1, "wall_s": 0,
                                                                              "fit_s_sum": 0}
    nothing = CliRunner().invoke(app, [*args, "--resume"])
    assert nothing.exit_code == 0, nothing.output
    assert f"0 fits in 0 s, 2 read back from {out} (resumed)" in " ".join(nothing.output.split())
    assert "0 fits in 0 s wall, 2 more read back from the study folder (resumed)" in (out / "report.md").read_text()


@pytest.mark.filterwarnings("ignore::bayeslaw.inference.point.EarlyCheckpointWarning")  # no cut, on purpose
def test_report_of_a_study_without_early_cut_or_thinning(tmp_path):
    # was: TypeError on f"{None:g}", a report folder without report.md; and "thinned to None"
    from bayeslaw.report import backtest_report

    result = backtest(load_demo().data, ks=(2,), families=["fam0"], **{**POINT_ONLY, "thin": None}, min_tokens=None)
    text = backtest_report(result, tmp_path / "bt").read_text()
    assert "no early cut, not thinned;" in text and "None" not in text.split("## Verdict")[0]


def test_a_report_that_fails_writes_nothing(monkeypatch, tmp_path):
    from bayeslaw import plots
    from bayeslaw.report import backtest_report

    result = backtest(load_demo().data, ks=(2,), families=["fam0"], **POINT_ONLY)
    monkeypatch.setattr(plots, "calibration_plot", _no_fit)
    with pytest.raises(AssertionError):
        backtest_report(result, tmp_path / "bt")
    assert not (tmp_path / "bt").exists()  # no tables or figures of a report that has no report.md


def test_cli_study_names_shared_among_the_data_it_takes(tmp_path):
    result = CliRunner().invoke(app, ["study", "nosuch", "--out", str(tmp_path / "st")])
    assert result.exit_code == 2 and "neither 'shared'" in result.output and not (tmp_path / "st").exists()
