"""Fit files and the options that reach them: --duplicates on a file, a fit file's name and attributes,
the columns a law needs, --new-family on an unpooled fit and fit-point's --method in the CLI's words.
One tiny NUTS fit (unpooled, 1 chain x 10 draws) for the whole module."""

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayeslaw.cli import app
from bayeslaw.data import DuplicateRowsError, read_table

runner = CliRunner()
TINY = ["--chains", "1", "--draws", "10", "--warmup", "10", "--no-progress", "--extend", "0",
        "--retry-target-accept", "0"]


def stderr_of(result) -> str:
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def restart(tmp_path_factory):
    """sim.csv (2 families, 1 seed) and restart.csv: its family fam0 with two checkpoints logged again (a
    restart's, 0.01 nats higher) at the end, file lines 82 and 83."""
    folder = tmp_path_factory.mktemp("fitfiles")
    data = folder / "sim.csv"
    result = runner.invoke(app, ["simulate", "--out", str(data), "--seed", "1", "--families", "2", "--seeds", "1"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(data)
    fam0 = df[df["family"] == "fam0"]
    again = fam0.iloc[[70, 71]].assign(loss=lambda d: d["loss"] + 0.01)
    path = folder / "restart.csv"
    pd.concat([fam0, again]).to_csv(path, index=False)
    return {"folder": folder, "data": data, "restart": path, "again": again}


@pytest.fixture(scope="module")
def unpooled(restart):
    """`bayeslaw fit restart.csv --duplicates last --pooling none`, every row kept (the repeated ones sit below
    the default early cut): the module's one NUTS fit, and its stderr."""
    out = restart["folder"] / "rs.nc"
    result = runner.invoke(app, ["fit", str(restart["restart"]), "--duplicates", "last", "--pooling", "none",
                                 "--min-tokens", "0", "--thin", "0", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return {"fit": out, "stderr": stderr_of(result)}


# --- 1: --duplicates reaches the file's validation ----------------------------------------------------


def test_fit_duplicates_last_reads_the_file_and_keeps_the_last(restart, unpooled):
    from bayeslaw.inference.nuts import load_fit

    assert "2 repeated checkpoint row(s) in 1 run(s)" in unpooled["stderr"]
    rows = load_fit(unpooled["fit"]).training_rows()
    again = restart["again"]
    kept = rows.merge(again[["run", "step"]], on=["run", "step"])
    assert len(kept) == 2 and len(rows) == 80  # one row per checkpoint: the first logging of each is gone
    np.testing.assert_allclose(np.sort(kept["loss"]), np.sort(again["loss"]), rtol=1e-9)


def test_fit_duplicates_error_names_the_file_lines_and_the_option(restart, tmp_path):
    result = runner.invoke(app, ["fit", str(restart["restart"]), "--out", str(tmp_path / "f.nc"), *TINY])
    assert result.exit_code == 2, result.output
    message = stderr_of(result)
    assert f"2 duplicated (run, tokens) row(s) in file '{restart['restart']}'" in message
    assert "(rows 82, 83;" in message and message.endswith("--duplicates last keeps the last logged row of each "
                                                           "(a restart's)")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.nc").exists()


def test_duplicates_last_reaches_a_parquet_file(restart, unpooled, tmp_path, monkeypatch):
    import bayeslaw.inference.nuts as nuts

    path = tmp_path / "restart.parquet"
    pd.read_csv(restart["restart"]).to_parquet(path, index=False)
    seen = {}

    def fake_fit(df, **options):
        seen.update(rows=len(df), duplicates=options["duplicates"])
        return nuts.load_fit(unpooled["fit"])

    monkeypatch.setattr(nuts, "fit", fake_fit)
    result = runner.invoke(app, ["fit", str(path), "--duplicates", "last", "--out", str(tmp_path / "f.nc"), *TINY])
    assert result.exit_code == 0, result.output
    assert seen == {"rows": 82, "duplicates": "last"}  # every row reached the fit, which keeps the last


def test_a_command_without_duplicates_gives_no_advice_it_cannot_follow(restart, unpooled, tmp_path):
    result = runner.invoke(app, ["report", str(unpooled["fit"]), "--data", str(restart["restart"]),
                                 "--out", str(tmp_path / "rep")])
    assert result.exit_code == 2, result.output
    message = stderr_of(result)
    assert "duplicated (run, tokens) row(s)" in message and "--duplicates" not in message


def test_read_table_leaves_duplicates_to_the_caller_when_asked(restart):
    with pytest.raises(DuplicateRowsError, match=r"rows 82, 83"):
        read_table(restart["restart"])
    assert len(read_table(restart["restart"], duplicates=False)) == 82


# --- 2: a fit file's configuration that this version cannot read ---------------------------------------


def _corrupt(source, path, **attrs):
    """A copy of ``source`` with ``attrs`` set (None: deleted)."""
    shutil.copy(source, path)
    with h5py.File(path, "a") as f:
        for key, value in attrs.items():
            if value is None:
                del f.attrs[key]
            else:
                f.attrs[key] = value
    return path


@pytest.mark.parametrize("case, message", [
    ("unknown", "attribute bayeslaw_config has option(s) ['frobnicate'] this bayeslaw version does not know "
                "(written by another bayeslaw version?)"),
    ("truncated", "attribute bayeslaw_config is not valid JSON (Unterminated string starting at"),
    ("no_form", "no bayeslaw_config attribute and no bayeslaw_form attribute (the fit's law and pooling): not a "
                "complete bayeslaw fit (written by another bayeslaw version?)"),
    # other bayeslaw_* attributes but no configuration: was "no bayeslaw_* attributes", which they contradict
    ("no_config", "no bayeslaw_config attribute and no bayeslaw_form or bayeslaw_pooling attribute (the fit's law "
                  "and pooling)"),
    ("form_left_out", "attribute bayeslaw_config lacks option(s) ['form'] (the fit's law and pooling): not a "
                      "complete bayeslaw fit"),
    ("not_ours", "is a netCDF file but not a bayeslaw fit (no bayeslaw_* attributes)"),
])
def test_a_fit_file_it_cannot_read_is_one_line_naming_the_file(unpooled, tmp_path, case, message):
    with h5py.File(unpooled["fit"], "r") as f:
        config = json.loads(f.attrs["bayeslaw_config"])
        ours = [k for k in f.attrs if k.startswith("bayeslaw_")]
    attrs = {
        "unknown": {"bayeslaw_config": json.dumps({**config, "frobnicate": 3})},
        "truncated": {"bayeslaw_config": json.dumps(config)[:40]},
        # a legacy fit (no JSON) that names its pooling but not its law: was "error: bayeslaw_form"
        "no_form": {"bayeslaw_config": None, "bayeslaw_pooling": "none"},
        "no_config": {"bayeslaw_config": None},
        "form_left_out": {"bayeslaw_config": json.dumps({k: v for k, v in config.items() if k != "form"})},
        "not_ours": dict.fromkeys(ours),
    }[case]
    path = _corrupt(unpooled["fit"], tmp_path / f"{case}.nc", **attrs)
    result = runner.invoke(app, ["diagnose", str(path)])
    assert result.exit_code == 2, result.output
    assert stderr_of(result).startswith(f"error: '{path}'") and message in stderr_of(result)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


# --- 3: the law's column before the checkpoints ---------------------------------------------------------


def test_fit_without_tokens_names_the_column_not_duplicates(restart, tmp_path):
    path = tmp_path / "notokens.csv"
    pd.read_csv(restart["data"])[["family", "run", "params", "loss", "step"]].to_csv(path, index=False)
    for cut in ("0", "1e10"):  # with the cut, too: the early cut would have named it, after the duplicates
        result = runner.invoke(app, ["fit", str(path), "--out", str(tmp_path / "nt.nc"), "--min-tokens", cut, *TINY])
        assert result.exit_code == 2, result.output
        message = stderr_of(result)
        assert message == "error: fit: column 'tokens' is missing; the chinchilla law needs it (it reads ['params', " \
                          "'tokens'])"


def test_check_checkpoints_refuses_rows_it_cannot_order():
    from bayeslaw.inference.nuts import check_checkpoints

    df = pd.DataFrame({"run": ["a", "a", "a"], "tokens": [1e9, np.nan, np.nan], "loss": [3.0, 2.9, 2.8]})
    with pytest.raises(ValueError, match=r"fit: column 'tokens' is missing at rows \[1, 2\] \(2 of 3\)"):
        check_checkpoints(df)


# --- 4: --new-family needs a population ---------------------------------------------------------------


def test_predict_new_family_of_an_unpooled_fit_names_the_option(unpooled):
    result = runner.invoke(app, ["predict", str(unpooled["fit"]), "--params", "1e9", "--tokens", "2e10",
                                 "--new-family"])
    assert result.exit_code == 2, result.output
    message = stderr_of(result)
    assert message.startswith("error: --new-family needs a hierarchical fit (`bayeslaw fit --pooling hierarchical`); "
                              f"'{unpooled['fit']}' is fitted with pooling 'none'")
    assert "(a fit of one family is unpooled: a population needs two or more)" in message
    assert "'nan'" not in message


# --- 5: a fit file's name says netCDF --------------------------------------------------------------------


@pytest.mark.parametrize("name, ends", [("f.json", "ends in '.json'"), ("f", "has no suffix"),
                                        ("f.csv", "ends in '.csv'")])
def test_fit_refuses_an_out_that_is_not_nc_before_fitting(restart, tmp_path, monkeypatch, name, ends):
    import bayeslaw.inference.nuts as nuts

    fits = []
    monkeypatch.setattr(nuts, "fit", lambda *args, **kwargs: fits.append(1))
    out = tmp_path / name
    result = runner.invoke(app, ["fit", str(restart["data"]), "--out", str(out), *TINY])
    assert result.exit_code == 2, result.output
    assert stderr_of(result) == (f"error: --out '{out}': a fit file is written as netCDF (.nc); its name {ends}, "
                                 f"e.g. '{out.with_suffix('.nc')}'")
    assert not fits and not out.exists()


# --- 6: fit-point's --method in the CLI's words -----------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--method", "hitchhiker", "--form", "kaplan"],
     "--method hitchhiker (least squares from one start) needs a law with a start; the kaplan law has none "
     "(forms with one: ['annealing', 'chinchilla', 'multipower']): use --method epoch"),
    (["--method", "adamw"], "--method adamw follows a law's published optimiser path; the chinchilla law has none "
                            "(forms with one: ['multipower']): use --method epoch"),
    (["--method", "hitchhiker", "--polish", "2"],
     "--polish 2 runs the epoch grid's best ends on; --method hitchhiker has no grid: drop --polish or use "
     "--method epoch"),
])
def test_fit_point_method_errors_name_the_cli_option(restart, args, message):
    result = runner.invoke(app, ["fit-point", str(restart["data"]), *args])
    assert result.exit_code == 2, result.output
    assert stderr_of(result) == f"error: {message}"
    assert "method='" not in result.stderr


def test_fit_point_says_what_its_cut_left_out_and_does_not_advise_cutting(restart):
    """The cut is --min-tokens' (said once, on stderr); fit_point's advice to cut early checkpoints would
    contradict the --min-tokens 0 the user typed. A family of one model size is warned of."""
    kept = runner.invoke(app, ["fit-point", str(restart["data"]), "--method", "hitchhiker", "--min-tokens", "0"])
    assert kept.exit_code == 0, kept.output
    assert "cut them first" not in stderr_of(kept) and "early cut" not in stderr_of(kept)
    cut = runner.invoke(app, ["fit-point", str(restart["data"]), "--method", "hitchhiker"])
    assert "the early cut (--min-tokens 1e+10) left out" in stderr_of(cut) and "cut them first" not in stderr_of(cut)
    df = pd.read_csv(restart["data"])
    one = restart["folder"] / "one.csv"
    df[df["params"] == df["params"].max()].to_csv(one, index=False)
    solo = runner.invoke(app, ["fit-point", str(one), "--method", "hitchhiker"])
    assert "the law's size term is not identified" in stderr_of(solo), solo.output


def test_plan_without_family_on_an_unpooled_fit_of_several_families_asks_for_one(restart):
    out = restart["folder"] / "two.nc"
    fitted = runner.invoke(app, ["fit", str(restart["data"]), "--pooling", "none", "--out", str(out), *TINY])
    assert fitted.exit_code == 0, fitted.output
    result = runner.invoke(app, ["plan", str(out), "--flops", "1e21", "--point-method", "hitchhiker"])
    assert result.exit_code == 2, result.output
    assert (f"--family is needed: '{out}' is fitted with pooling 'none' over families ['fam0', 'fam1']"
            in stderr_of(result)) and "Traceback" not in result.output
