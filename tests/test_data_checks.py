"""The data layer's refusals of bad input: each one line naming column, run and rows."""

import numpy as np
import pandas as pd
import pytest

from bayeslaw.data import DataValidationError, DuplicateRowsError, read_table, validate
from bayeslaw.data.schedules import Schedule
from bayeslaw.data.split import cut_early, hitchhiker_split, thin_checkpoints


def table(n=4, run="r", params=1e8, model="m") -> pd.DataFrame:
    tokens = np.array([1e9 * (i + 1) for i in range(n)])
    return pd.DataFrame({
        "family": "f", "model": model, "run": run, "seed": 0, "params": params, "tokens": tokens,
        "step": np.arange(n), "flops": 6 * params * tokens, "loss": [3.0 - 0.1 * i for i in range(n)],
        "loss_name": "val", "source": "test",
    })


def family(sizes=(1e8, 2e8, 4e8), n=30) -> pd.DataFrame:
    parts = []
    for i, p in enumerate(sizes):
        t = table(n, run=f"r{i}", params=p, model=f"m{i}")
        t["tokens"] = np.geomspace(1e9, 1e11, n)
        t["flops"] = 6 * p * t["tokens"]
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def test_thinning_without_tokens_is_refused_not_the_first_row():
    df = table(30)
    df["tokens"] = np.nan
    df["flops"] = np.nan
    with pytest.raises(ValueError, match=r"column 'tokens' is missing .*run 'r'.*by='step'"):
        thin_checkpoints(df, per_run=5)
    assert thin_checkpoints(df, per_run=5, by="step")["step"].max() == 29  # the last is kept
    with pytest.raises(ValueError, match=r"no 'step' column"):
        thin_checkpoints(df.drop(columns="step"), per_run=5, by="step")


@pytest.mark.parametrize("column, value", [("params", 2e8), ("family", "g"), ("model", "m2"), ("seed", 1)])
def test_a_run_whose_run_level_column_changes_is_refused(tmp_path, column, value):
    df = table()
    df.loc[2, column] = value
    if column == "params":
        df["flops"] = 6 * df["params"] * df["tokens"]
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=rf"column '{column}' in file .*t\.csv.*run 'r' changes .*row 2.*row 4"):
        read_table(path)


def test_same_tokens_or_same_step_twice_is_a_duplicate_naming_both_rows(tmp_path):
    df = table()
    same_tokens = pd.concat([df, df.iloc[[1]].assign(step=9, loss=2.5)], ignore_index=True)
    with pytest.raises(DuplicateRowsError, match=r"row 4 repeats row 1 at the same tokens.*run 'r'"):
        validate(same_tokens)
    same_step = pd.concat([df, df.iloc[[1]].assign(tokens=1.5e9, flops=9e17, loss=2.5)], ignore_index=True)
    path = tmp_path / "s.csv"
    same_step.to_csv(path, index=False)
    with pytest.raises(DuplicateRowsError, match=r"row 6 repeats row 3 at the same step"):
        read_table(path)
    assert len(read_table(path, duplicates=False)) == 5  # left to the caller's option, as before


@pytest.mark.parametrize("options, message", [
    ({"test_from": 1.5}, r"test_from=1\.5 must lie in \(0, 1\]"),
    ({"test_from": -0.1}, r"test_from=-0\.1 must lie"),
    ({"test_from": float("nan")}, r"test_from=nan must lie"),
    ({"k": 0}, r"k=0 must be a positive whole number"),
    ({"k": 1.5}, r"k=1\.5 must be a positive whole number"),
    ({"k": True}, r"k=True must be a positive whole number"),
    ({"min_tokens": "1e10"}, r"min_tokens='1e10' must be a finite number"),
    ({"min_tokens": 1e12}, r"no train rows remain in any family \(\['f'\]"),
])
def test_split_arguments_are_checked_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        hitchhiker_split(family(), **options)


def test_cut_early_refuses_a_nan_bound():
    with pytest.raises(ValueError, match=r"min_tokens=nan must be a finite number"):
        cut_early(family(), min_tokens=float("nan"))


def test_models_tied_at_the_largest_size_are_all_the_target():
    df = family((1e8, 2e8, 4e8, 4e8))
    split = hitchhiker_split(df, min_tokens=None)
    assert set(split.test["model"]) == {"m2", "m3"}
    assert set(split.train["model"]) == {"m0", "m1"}


@pytest.mark.parametrize("column", ["outlier", "copied"])
def test_bool_columns_read_words_and_refuse_other_text(tmp_path, column):
    df = table().assign(**{column: ["no", "yes", "False", "1"]})
    assert validate(df)[column].tolist() == [False, True, False, True]
    bad = table().assign(**{column: ["no", "maybe", "", "0"]})
    path = tmp_path / "b.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=rf"column '{column}' in file .*b\.csv.*rows 3: 'maybe'"):
        read_table(path)


def test_a_repeated_header_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("run,params,tokens,loss,tokens\nr,1e8,1e9,3.0,2e9\nr,1e8,2e9,2.9,3e9\n")
    with pytest.raises(DataValidationError, match=r"d\.csv.*\['tokens'\] appear more than once"):
        read_table(path)


@pytest.mark.parametrize("fields, message", [
    ({"total_steps": 1000.7}, r"total_steps must be a whole number of steps, found 1000\.7"),
    ({"warmup_steps": 10.5}, r"warmup_steps must be a whole number"),
    ({"total_steps": True}, r"total_steps must be a whole number of steps, found True"),
    ({"total_steps": "10"}, r"total_steps must be a whole number of steps, found '10'"),
    ({"peak_lr": float("inf")}, r"peak_lr must be a finite number"),
])
def test_schedule_fields_are_checked_by_name(fields, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**{"shape": "cosine", "peak_lr": 1e-3, "total_steps": 1000, **fields})


def test_an_exponential_cooldown_from_a_zero_second_rate_is_refused():
    with pytest.raises(ValueError, match=r"second_lr > 0"):
        Schedule("wsd_two_stage", 1e-3, 1000, 0, 1e-5, 800, "exponential", 0.0, 100, 10)
    with pytest.raises(ValueError, match=r"total_steps must be a whole number"):
        Schedule.from_json('{"shape": "cosine", "peak_lr": 0.001, "total_steps": "10"}')


def test_upper_case_suffix_is_read(tmp_path):
    path = tmp_path / "OUT.CSV"
    table().to_csv(path, index=False)
    assert len(read_table(path)) == 4
    from bayeslaw.cli import _check_data_name

    _check_data_name(str(path))


@pytest.mark.parametrize("change, message", [
    ({"batch_size": -1.0}, r"column 'batch_size'.*non-positive"),
    ({"epochs": -2.0}, r"column 'epochs'.*non-positive"),
    ({"run_tokens": 2e9}, r"column 'run_tokens'.*below their tokens.*rows 4, 5"),
    ({"parent_run": "r"}, r"column 'parent_run'.*run 'r' names itself"),
    ({"flops": 5.0}, r"column 'flops'.*outside 0\.1-10 x 6ND"),
])
def test_optional_columns_out_of_range_are_refused(tmp_path, change, message):
    df = table().assign(**change)
    path = tmp_path / "o.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=message):
        read_table(path)


def test_a_parent_run_cycle_is_refused():
    df = pd.concat([table(run="a").assign(parent_run="b"), table(run="b").assign(parent_run="a")], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"run 'a' descends from itself \(a -> b -> a\)"):
        validate(df)


def test_keep_last_drops_a_checkpoint_logged_again_at_equal_tokens_and_another_step():
    from bayeslaw.data.importers import complete_minimal

    df = pd.DataFrame({"run": ["a", "a", "a"], "params": [1e8] * 3, "tokens": [1e9, 2e9, 2e9], "step": [10, 20, 30],
                       "loss": [3.5, 3.2, 3.1]})
    out = complete_minimal(df, duplicates="last")
    assert out["loss"].tolist() == [3.5, 3.1] and out["step"].tolist() == [10, 30]
    assert "restarts: 1 row(s)" in out.attrs["import_report"][-1]


def test_a_data_root_that_is_a_file_is_named_as_a_file(tmp_path):
    # said "does not exist" of a file the user can see
    import bayeslaw.data as bd

    path = tmp_path / "sim.csv"
    path.write_text("run,loss\n")
    with pytest.raises(bd.DataNotFoundError, match=r"sim.csv' is a file, not a folder"):
        bd.load("chinchilla", root=path)
    with pytest.raises(bd.DataNotFoundError, match=r"nowhere' does not exist"):
        bd.load("chinchilla", root=tmp_path / "nowhere")
