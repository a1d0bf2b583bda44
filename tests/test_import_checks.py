"""Checks of the importers' inputs (bayeslaw.data.importers): malformed W&B exports are one-line errors naming
file, run and field; nothing is dropped or overridden without a report line. Files are written to tmp_path."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from bayeslaw.data.importers import ImportFormatError, import_paths, read_tensorboard, read_wandb_csv, read_wandb_json
from bayeslaw.data.schedules import Schedule

BASE = {"name": "r_ws2", "config": {"lr": 1e-3, "iterations": 1000, "warmup_steps": 100, "scheduler": "wsd",
                                    "wsd_fract_decay": 0.0, "decay_type": "linear", "batch_size": 4, "acc_steps": 1,
                                    "sequence_length": 8, "dataset": "toy", "seed": 0},
        "summary": {"parameters": 1.2e6}, "history": {"val": {"iter": [100, 200], "val_loss": [3.9, 3.8]}}}


def export(tmp_path, edit, name="r_ws2"):
    data = copy.deepcopy(BASE)
    edit(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def report(df) -> str:
    return "\n".join(df.attrs["import_report"])


# --------------------------------------------------------------------------- W&B JSON


def test_wandb_api_history_rows_are_read(tmp_path):
    rows = [{"_step": 100, "val/loss": 3.9, "train/lr": 1e-3}, {"_step": 150, "train/loss": 3.95},
            {"_step": 200, "val/loss": 3.8, "train/lr": 1e-3}]
    df = read_wandb_json(export(tmp_path, lambda d: d.update(history=rows)))
    assert df["step"].tolist() == [100, 200] and df["loss"].tolist() == [3.9, 3.8]
    assert "history.rows.train/loss" in report(df)  # the other metric is named as not read
    bad = export(tmp_path, lambda d: d.update(history=[{"val/loss": 3.9}]), "nostep_ws2")
    with pytest.raises(ImportFormatError, match=r"nostep_ws2.json' \(run 'nostep_ws2'\): history is a list of "
                                                r"rows.*'_step'"):
        read_wandb_json(bad)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["config"].update(batch_size=None), r"config.batch_size is null"),
    (lambda d: d["config"].update(decay_type=["linear"]), r"unknown config.decay_type \['linear'\]"),
    (lambda d: d.update(config=[1, 2]), r"config is of type list"),
    (lambda d: d["history"]["val"].update(val_loss=3.9), r"history.val.val_loss is of type float, not a list"),
    (lambda d: d["history"]["val"].update(iter=100), r"history.val.iter is of type int, not a list"),
    (lambda d: d["config"].update(scheduler="wsd_twostage", wsd_fract_decay=0.2, wsd_twostage_factor=None,
                                  wsd_twostage_transition_after=[1]),
     r"config.wsd_twostage_transition_after \[1\] is not"),
    (lambda d: d["config"].update(world_size="two"), r"config.world_size 'two' is not a number"),
    (lambda d: d["config"].update(lr=-1e-3), r"config.lr -0.001: need a number above 0"),
    (lambda d: d["config"].update(warmup_steps=5000), r"config.warmup_steps 5000 is not below config.iterations 1000"),
    (lambda d: d["history"]["val"].update(val_loss=[3.9, "abc"]), r"history.val.val_loss: 1 non-numeric value.*'abc'"),
    (lambda d: d["config"].update(seed="abc"), r"config.seed 'abc' is not a number"),
    (lambda d: d["config"].update(wsd_fract_decay="x"), r"config.wsd_fract_decay 'x' is not a number"),
    (lambda d: d["history"].update(train={"iter": [100, 200], "train_lr": ["a", 1e-3]}),
     r"history.train.train_lr: 1 non-numeric value\(s\) \(index 0: 'a'\)"),
    (lambda d: d["config"].update(scheduler="cos", cos_final_lr="none"), r"config.cos_final_lr 'none' is not a number"),
    (lambda d: d["config"].update(iterations=0), r"config.iterations 0: need a number above 0"),
])
def test_malformed_wandb_json_is_one_error_naming_file_run_and_field(tmp_path, edit, message):
    with pytest.raises(ImportFormatError, match=r"r_ws2.json' \(run 'r_ws2'\): " + message) as error:
        read_wandb_json(export(tmp_path, edit))
    assert "\n" not in str(error.value)


def test_wandb_json_null_twostage_transition_takes_the_default_and_size_labels_are_counts(tmp_path):
    df = read_wandb_json(export(tmp_path, lambda d: (d["config"].update(
        scheduler="wsd_twostage", wsd_fract_decay=0.2, wsd_twostage_transition_after=None),
        d["summary"].update(parameters="150M"))))
    assert (df["params"] == 150e6).all() and (df["model"] == "150M").all()
    assert Schedule.from_json(df["schedule"].iloc[0]).transition_start == 800


def test_wandb_json_past_the_schedule_names_run_and_step(tmp_path):
    path = export(tmp_path, lambda d: d["history"]["val"].update(iter=[100, 1200]))
    with pytest.raises(ValueError, match=r"past the end of its schedule \(at run 'r_ws2' step 1200"):
        read_wandb_json(path)


# --------------------------------------------------------------------------- chart CSV


def test_chart_keeps_only_loss_columns_and_names_the_others(tmp_path):
    path = tmp_path / "epoch.csv"
    path.write_text("Step,runA - val/loss,runA - epoch,runA - _step,runA - tokens\n100,4.0,0.5,100,1e5\n"
                    "200,3.5,1.0,200,2e5\n")
    df = read_wandb_csv(path, params={"runA": 1e8}, tokens_per_step=1024)
    assert set(df["loss_name"]) == {"val/loss"} and df["loss"].tolist() == [4.0, 3.5]
    assert "left out 3 non-loss column(s)" in report(df) and "runA - epoch" in report(df)
    only = tmp_path / "only.csv"
    only.write_text("Step,runA - tokens\n100,1e5\n")
    with pytest.raises(ImportFormatError, match="no loss column"):
        read_wandb_csv(only, params={"runA": 1e8}, tokens_per_step=1024)


def test_chart_names_an_empty_run_and_a_diverged_value(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("Step,runA - val/loss,runB - val/loss\n100,4.0,\n200,nan,\n300,3.0,\n")
    df = read_wandb_csv(path, params={"runA": 1e8, "runB": 1e8}, tokens_per_step=1024)
    text = report(df)
    assert "left out run 'runB': no values" in text
    assert "1 checkpoint(s) with a non-finite loss" in text and "empty cell" not in text


def test_per_run_sidecar_tokens_win_over_one_number(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("Step,a - val/loss,b - val/loss\n100,4.0,4.1\n")
    sidecar = tmp_path / "side.csv"
    sidecar.write_text("run , params,tokens_per_step\n a ,1e8,2000\nb,2e8,\n")  # spaces around names stripped
    df = read_wandb_csv(path, sidecar=sidecar, tokens_per_step=1000)
    assert df.set_index("run")["batch_size"].to_dict() == {"a": 2000.0, "b": 1000.0}
    assert "the sidecar's per-run count, not --tokens-per-step 1,000, for 1 run(s): a" in report(df)
    assert "params from the sidecar (2 run(s))" in report(df)


# --------------------------------------------------------------------------- TensorBoard


def test_tensorboard_several_lr_tags_keep_the_first_and_report(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path / "logs" / "runA"))
    for step in (100, 200):
        values = [summary_pb2.Summary.Value(tag="val/loss", simple_value=4.0 - step / 1000),
                  summary_pb2.Summary.Value(tag="lr/pg1", simple_value=2e-3),
                  summary_pb2.Summary.Value(tag="lr/pg0", simple_value=1e-3)]
        writer.add_event(event_pb2.Event(wall_time=1000.0 + step, step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    df = read_tensorboard(tmp_path / "logs", params={"runA": 1e8}, tokens_per_step=100)
    assert df["lr"].tolist() == pytest.approx([1e-3, 1e-3])
    assert "lr of run 'runA' from tag 'lr/pg0'" in report(df) and "which differ from it: lr/pg1" in report(df)


# --------------------------------------------------------------------------- tables


def test_table_loss_name_is_checked_and_converted(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"run": ["a", "a"], "params": [1e8, 1e8], "tokens": [1e9, 2e9], "loss": [30.0, 20.0],
                  "loss_name": "val_perplexity"}).to_csv(path, index=False)
    df = import_paths([path])
    np.testing.assert_allclose(df["loss"], [math.log(30), math.log(20)])
    assert "is a perplexity: loss = ln(ppl)" in report(df) and "loss_name 'loss'" not in report(df)
    pd.DataFrame({"run": ["a"], "params": [1e8], "tokens": [1e9], "loss": [0.5], "loss_name": "val/accuracy"}
                 ).to_csv(path, index=False)
    with pytest.raises(ImportFormatError, match=r"t.csv', column 'loss_name' \(rows 2\): metric 'val/accuracy' is not"):
        import_paths([path])


def test_table_size_labels_and_a_repeated_step_keep_the_last(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("run,params,tokens,loss\na,150M,1e9,3.5\na,150M,2e9,3.3\na,150M,2e9,3.2\n")
    df = import_paths([path])
    assert (df["params"] == 150e6).all() and df["loss"].tolist() == [3.5, 3.2]
    assert "dropped the others: a (1)" in report(df) and "'150M' = 1.5e+08" in report(df)


def test_table_takes_the_sidecar_and_refuses_a_conflict(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("run,step,loss\na,100,3.5\na,200,3.4\n")
    sidecar = tmp_path / "side.csv"
    sidecar.write_text("run,params,tokens_per_step,family\na,1e8,1000,fam\n")
    df = import_paths([path], sidecar=sidecar)
    assert (df["params"] == 1e8).all() and set(df["family"]) == {"fam"} and df["tokens"].tolist() == [1e5, 2e5]
    assert "sidecar: params for 1 run(s) of the table" in report(df)
    path.write_text("run,params,tokens,loss\na,2e8,1e9,3.5\n")
    with pytest.raises(ImportFormatError, match=r"t.csv', run 'a', column 'params': the table says 2e\+08 and the "
                                                r"sidecar's params 1e\+08"):
        import_paths([path], sidecar=sidecar)


def test_table_lr_that_contradicts_its_schedule_is_flagged_and_gaps_reported(tmp_path):
    schedule = Schedule("cosine", 1e-3, 1000, 100, 1e-4)
    path = tmp_path / "s.csv"
    pd.DataFrame({"run": ["a", "a", "b", "b"], "params": 1e8, "step": [500, 1000, 500, 1000],
                  "loss": [3.5, 3.2, 3.5, 3.3], "lr": [float(schedule.lr(500)), None, 5e-3, None],
                  "schedule": schedule.to_json()}).to_csv(path, index=False)
    df = import_paths([path])
    assert df.groupby("run")["schedule_flag"].first().to_dict() == {"a": False, "b": True}
    assert "FLAGGED b" in report(df) and "lr: 2 empty cell(s) in 2 run(s)" in report(df)


def test_gzipped_json_is_refused_as_such(tmp_path):
    (tmp_path / "r.json.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(ImportFormatError, match="gzipped JSON"):
        import_paths([tmp_path / "r.json.gz"])


def test_cli_import_refuses_an_out_that_is_one_of_its_inputs(tmp_path):
    from typer.testing import CliRunner

    from bayeslaw.cli import app

    table = tmp_path / "runs.csv"
    table.write_text("run,params,tokens,loss\na,1e8,1e9,3.5\na,1e8,2e9,3.2\n")
    before = table.read_text()
    result = CliRunner().invoke(app, ["import", str(table), "--out", str(table)])
    assert result.exit_code == 2 and "is an input" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert table.read_text() == before  # the user's file is untouched
