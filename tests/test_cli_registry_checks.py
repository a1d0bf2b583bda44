"""Registry, fit-file and option checks: a user's law refused at register(), a fit read under another law of its
name refused, laws imported by the CLI from BAYESLAW_LAWS, and options named as the user typed them."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayeslaw as bl
from bayeslaw.cli import app
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import check_quantiles, load_fit
from bayeslaw.laws import CHINCHILLA, LAWS, Sampling, get_law, register
from bayeslaw.report import _write_report

runner = CliRunner()


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# --- register -----------------------------------------------------------------------------------------------
def test_register_refuses_a_law_without_a_full_init_grid():
    partial = dict(CHINCHILLA.init_grid)
    del partial["b"]
    with pytest.raises(ValueError, match=r"'nogrid'.*init_grid lacks parameter\(s\) \['b'\]"):
        register(replace(CHINCHILLA, name="nogrid", init_grid=partial))
    with pytest.raises(ValueError, match=r"'nogrid'.*init_grid lacks"):
        register(replace(CHINCHILLA, name="nogrid", init_grid={}))
    assert "nogrid" not in LAWS


def test_register_refuses_priors_that_do_not_match_from_law():
    two = dict(list(CHINCHILLA.sampling.priors.items())[:2])
    sampling = Sampling(two, CHINCHILLA.sampling.to_law, CHINCHILLA.sampling.from_law)
    with pytest.raises(ValueError, match=r"'badpriors'.*from_law gives 5 value\(s\).*priors has 2"):
        register(replace(CHINCHILLA, name="badpriors", sampling=sampling))
    assert "badpriors" not in LAWS


def test_unknown_form_says_how_to_make_a_law_known():
    with pytest.raises(ValueError, match="BAYESLAW_LAWS=module"):
        get_law("no_such_law")


# --- options checked by the API ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [-5, float("nan"), "1e10"])
def test_fit_config_refuses_a_negative_min_tokens(value):
    with pytest.raises(ValueError, match=r"^min_tokens="):
        FitConfig(min_tokens=value)
    assert FitConfig(min_tokens=0).min_tokens == 0


@pytest.mark.parametrize("quantiles", ["0.5", (1.5,), (), (0.5, -0.1)])
def test_quantiles_refused_naming_the_function(quantiles):
    with pytest.raises(ValueError, match=r"^optimal_allocation: quantiles="):
        check_quantiles(quantiles, "optimal_allocation")
    check_quantiles((0.05, 0.5, 0.95), "optimal_allocation")


def test_report_removes_its_own_figures_it_does_not_write(tmp_path):
    (tmp_path / "rank.png").write_bytes(b"old")
    (tmp_path / "mine.png").write_bytes(b"user's")
    _write_report(tmp_path, "fit_report", {"trace.png": lambda tmp: Path(tmp).write_bytes(b"new")}, ["# r"],
                  own=("trace.png", "rank.png"))
    assert not (tmp_path / "rank.png").exists()
    assert (tmp_path / "mine.png").read_bytes() == b"user's"
    assert (tmp_path / "trace.png").read_bytes() == b"new"


# --- the CLI's options, named as typed ----------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (["fit-point", "demo", "--min-tokens", "-5"], "--min-tokens -5"),
    (["fit-point", "demo", "--method", "foo"], "--method: unknown method 'foo'"),
    (["fit", "demo", "--out", "x.nc", "--min-tokens", "nan"], "--min-tokens nan"),
    (["fit", "demo", "--out", "x.nc", "--seed", "-1"], "--seed -1"),
])
def test_cli_options_refused_before_reading_data(args, expected):
    line = _error(runner.invoke(app, args))
    assert expected in line


def test_cli_unimportable_bayeslaw_laws(monkeypatch):
    monkeypatch.setenv("BAYESLAW_LAWS", "no_such_module_xyz")
    line = _error(runner.invoke(app, ["fit-point", "demo", "--method", "foo"]))
    assert "BAYESLAW_LAWS='no_such_module_xyz'" in line


def test_fit_point_family_comma_separated():
    result = runner.invoke(app, ["fit-point", "demo", "--family", "fam0,fam1", "--method", "hitchhiker", "--json"])
    assert result.exit_code == 0, result.output
    assert "fam0" in result.output and "fam1" in result.output


# --- a fit file -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fit_file(tmp_path_factory) -> Path:
    df = bl.load_demo().data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = bl.fit(df[df.family == "fam0"], pooling="none", chains=2, draws=20, warmup=20, progress=False)
    path = tmp_path_factory.mktemp("fit") / "f.nc"
    fitted.save(path)
    return path


def test_load_fit_refuses_a_fit_of_another_law_with_its_name(fit_file):
    renamed = {f"x{i}": v for i, v in enumerate(CHINCHILLA.sampling.priors.values())}
    other = replace(CHINCHILLA, sampling=replace(CHINCHILLA.sampling, priors=renamed))
    register(other, replace=True)
    try:
        with pytest.raises(ValueError, match=r"f\.nc.*\['e', 'a_ref'.*differ.*'chinchilla'.*\['x0', 'x1'"):
            load_fit(fit_file)
    finally:
        register(CHINCHILLA, replace=True)
    assert load_fit(fit_file).form == "chinchilla"


@pytest.mark.parametrize(("args", "expected"), [
    (["--params", "1e9", "--tokens", "1e11", "--seed", "-1"], "--seed -1"),
    (["--params", "1e9", "--tokens", "1e11", "--form-error", "-1"], "--form-error -1"),
])
def test_predict_options_named(fit_file, args, expected):
    assert expected in _error(runner.invoke(app, ["predict", str(fit_file), *args]))


def test_report_point_method_without_a_path(fit_file, tmp_path):
    line = _error(runner.invoke(app, ["report", str(fit_file), "--out", str(tmp_path / "r"), "--point-method",
                                      "adamw"]))
    assert "--point-method adamw" in line and "method='adamw'" not in line


def test_predict_quantiles_string(fit_file):
    fit = load_fit(fit_file)
    targets = pd.DataFrame({"family": ["fam0"], "params": [1e9], "tokens": [1e11]})
    with pytest.raises(ValueError, match=r"^predict: quantiles='0.5'"):
        fit.predict(targets, quantiles="0.5")
    assert np.isfinite(fit.predict(targets, quantiles=(0.5,)).summary.filter(like="q").to_numpy()).all()
