import numpy as np
import pandas as pd
import pytest

from bayeslaw.data import DataValidationError, read_table, validate


def table(n=4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "family": ["f"] * n,
            "model": ["m"] * n,
            "run": ["r"] * n,
            "seed": [0] * n,
            "params": [1e8] * n,
            "tokens": [1e9 * (i + 1) for i in range(n)],
            "step": list(range(n)),
            "flops": [6e17 * (i + 1) for i in range(n)],
            "loss": [3.0 - 0.1 * i for i in range(n)],
            "loss_name": ["val"] * n,
            "source": ["test"] * n,
        }
    )


def test_clean_table_passes_and_gets_canonical_dtypes():
    df = table()
    df["params"] = ["1e8"] * 4  # numbers as text are read
    out = validate(df)
    assert out["params"].dtype == "float64"
    assert out["step"].dtype == "int64"
    assert list(out.columns[:3]) == ["family", "model", "run"]
    assert len(out) == len(df)


def test_missing_column_is_named():
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['tokens'\]"):
        validate(table().drop(columns="tokens"))


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("loss", -1.0, r"column 'loss'.*1 non-positive value\(s\) \(rows 2\); need loss > 0"),
        ("params", 0.0, r"column 'params'.*non-positive.*rows 2"),
        ("tokens", float("nan"), r"column 'tokens'.*missing \(NaN\).*rows 2"),
        ("loss", "abc", r"column 'loss'.*non-numeric.*rows 2: 'abc'"),
        ("step", 1.5, r"column 'step'.*non-integer.*rows 2"),
    ],
)
def test_bad_values_name_column_and_row(column, value, pattern):
    df = table().assign(step=-1)  # steps unknown: tokens are required
    df[column] = df[column].astype(object)
    df.loc[2, column] = value
    with pytest.raises(DataValidationError, match=pattern):
        validate(df, name="mine.csv")


def test_tokens_may_be_missing_only_where_the_step_is_known():
    df = table()
    df.loc[[1, 2], ["tokens", "flops"]] = np.nan
    out = validate(df)
    assert out["tokens"].isna().sum() == 2 and out["flops"].isna().sum() == 2
    df.loc[2, "step"] = -1
    with pytest.raises(DataValidationError, match=r"column 'tokens'.*1 missing \(NaN\).*rows 2"):
        validate(df)


def test_error_lists_first_rows_and_counts_the_rest():
    df = table(12)
    df.loc[3:, "loss"] = 0.0
    with pytest.raises(DataValidationError, match=r"9 non-positive.*rows 3, 4, 5, 6, 7 and 4 more"):
        validate(df)


def test_duplicated_run_step_rows_are_refused():
    df = pd.concat([table(), table().iloc[[1]]], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"1 duplicated \(run, tokens\) row\(s\).*rows 4"):
        validate(df)


def test_a_branch_of_another_family_than_its_parent_is_refused():
    """A branch shares its parent's run offset, whose prior is one family's: across families it has none."""
    parent = table().assign(parent_run=None)
    branch = table().assign(run="b", parent_run="r", tokens=lambda d: d["tokens"] + 5e8, step=lambda d: d["step"] + 10)
    validate(pd.concat([parent, branch], ignore_index=True))  # one family: fine
    crossed = pd.concat([parent, branch.assign(family="g")], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"run 'b' \(family 'g'\) branches from 'r' of family 'f' \(1 such "
                                                  r"branch\(es\); rows 6\); .*give it the parent's family"):
        validate(crossed, first_row=2)
    validate(pd.concat([parent, branch.assign(family="g", parent_run="absent")], ignore_index=True))  # no parent here


def test_read_table_names_the_file_and_fills_defaults(tmp_path):
    good = table().drop(columns=["flops", "seed", "step", "source"])
    path = tmp_path / "runs.csv"
    good.to_csv(path, index=False)
    out = read_table(path)
    assert (out["flops"] == 6 * out["params"] * out["tokens"]).all()
    assert (out["source"] == "runs.csv").all()

    bad = table()
    bad.loc[1, "loss"] = -2
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'loss' in file '.*bad\.csv' \(rows are line numbers\).*rows 3\)"):
        read_table(bad_path)


def test_read_table_parquet_roundtrip(tmp_path):
    path = tmp_path / "runs.parquet"
    table().to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), validate(table()))


@pytest.mark.parametrize("column, value, cause", [
    ("loss", 20.1 ** 2, r"above 20 \(rows 3: 404\.01\); a perplexity written as loss"),
    ("tokens", 1.4, r"below 1000 \(rows 3: 1\.4\); token counts in billions"),
    ("params", 190.0, r"below 10000 \(rows 3: 190\); parameter counts in millions or billions"),
])
def test_values_outside_the_units_are_refused_with_their_likely_cause(tmp_path, column, value, cause):
    bad = table()
    bad.loc[1, column] = value
    path = tmp_path / "runs.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=rf"column '{column}' in file .*runs\.csv.*: 1 value\(s\) {cause}"):
        read_table(path)
    ok = table()
    # the bounds themselves pass (params for the whole run: a run has one size; flops 6ND to match)
    ok.loc[slice(None) if column == "params" else 1, column] = {"loss": 19.9, "tokens": 1e3, "params": 1e4}[column]
    ok["flops"] = 6 * ok["params"] * ok["tokens"]
    validate(ok)


def test_a_schedule_must_cover_its_run_and_a_learning_rate_is_not_negative(tmp_path):
    from bayeslaw.data.schedules import Schedule

    steps = table().assign(step=[1000, 2000, 3030, 4000], schedule=Schedule("cosine", 3e-4, 3000, 100).to_json())
    path = tmp_path / "runs.csv"
    steps.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'schedule' in file .*runs\.csv.*run 'r': 1 checkpoint\(s\) "
                                                  r"past the end of its schedule \(rows \[5\], steps up to 4000; the "
                                                  r"schedule's total_steps is 3000\)"):
        read_table(path)
    validate(steps.assign(schedule=Schedule("cosine", 3e-4, 4000, 100).to_json()))
    with pytest.raises(DataValidationError, match=r"column 'lr'.*1 value\(s\) below 0 \(rows 2: -0.001\)"):
        validate(table().assign(lr=[1e-3, 1e-3, -1e-3, 0.0]))
