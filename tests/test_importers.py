"""Importers of real training logs (bayeslaw.data.importers) and the `bayeslaw import` command.

Synthetic W&B exports, chart CSVs and TensorBoard files are written to tmp_path; one test reads the real
wsd_horizons folder from $BAYESLAW_DATA and skips without it.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayeslaw.data as bd
from bayeslaw.cli import app
from bayeslaw.data.importers import (
    ImportFormatError,
    MissingExtraError,
    as_table,
    complete_minimal,
    detect_format,
    import_paths,
    loss_to_nats,
    read_tensorboard,
    read_wandb_csv,
    read_wandb_json,
)
from bayeslaw.data.schedules import Schedule

runner = CliRunner()
PER_STEP = 4 * 1 * 8 * 2  # batch_size x acc_steps x sequence_length x world size ('ws2' in the names)


# --------------------------------------------------------------------------- synthetic W&B exports


def llm_baselines_lr(t, peak, total, warmup, scheduler="wsd", fraction=0.0, final=None):
    """The lr llm-baselines logs at iteration t (written out here, independent of Schedule)."""
    t = np.asarray(t, dtype=float)
    if scheduler == "cos":  # torch OneCycleLR(total_steps=total, pct_start=warmup/total, div 1e2, final_div 0.1)
        final = peak / 10 if final is None else final
        pct = np.clip((t - (warmup - 1)) / ((total - 1) - (warmup - 1)), 0, 1)
        decay = final + (peak - final) / 2 * (1 + np.cos(np.pi * pct))
        warm = peak / 100 + (peak - peak / 100) / 2 * (1 - np.cos(np.pi * t / (warmup - 1)))
        return np.where(t < warmup - 1, warm, decay)
    n_anneal = int(fraction * total)
    hold = total - n_anneal
    warm = t / warmup + (1 - t / warmup) / 100
    cool = 1 - (t - hold) / max(n_anneal, 1)
    return peak * np.where(t < warmup, warm, np.where(t < hold, 1.0, np.where(t < total, cool, 0.0)))


def export(folder: Path, stem: str, *, val_iters, val_loss=None, lr_iters=None, lr=None, params=1.2e6,
           config=None, val_key="val_loss") -> Path:
    """Write one W&B run export {"name", "config", "summary", "history"} like lr_schedules/wsd_horizons."""
    cfg = {"lr": 1e-3, "iterations": 1000, "warmup_steps": 100, "scheduler": "wsd", "wsd_fract_decay": 0.0,
           "decay_type": "linear", "batch_size": 4, "acc_steps": 1, "sequence_length": 8, "world_size": 2,
           "dataset": "toy", "seed": 0, "n_layer": 2, "n_embd": 8, "n_head": 2, "model": "llama", "resume_from": None}
    cfg.update(config or {})
    if val_loss is None:
        val_loss = [4.0 - 0.001 * i for i in val_iters]
    if lr_iters is None:
        lr_iters = list(range(50, cfg["iterations"] + 1, 50))
    if lr is None:
        lr = llm_baselines_lr(lr_iters, cfg["lr"], cfg["iterations"], cfg["warmup_steps"], cfg["scheduler"],
                              cfg["wsd_fract_decay"]).tolist()
    history = {"val": {"iter": list(val_iters), val_key: list(val_loss)},
               "train": {"iter": list(lr_iters), "train_lr": list(lr)},
               "final-val": {"iter": [cfg["iterations"]], "final_val_loss": [3.0]}}
    summary = {} if params is None else {"parameters": params}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps({"name": stem, "config": cfg, "summary": summary, "history": history}))
    return path


def test_restart_keeps_the_last_attempt_and_counts_the_duplicates(tmp_path):
    # attempt 1 logs 0..600, the restart from the 400 checkpoint relogs 400, 600 with other values;
    # the export lists the final attempt first (as most wsd_horizons files do)
    iters = [400, 600, 800, 1000, 0, 200, 400, 600]
    losses = [3.40, 3.30, 3.20, 3.10, 9.0, 3.60, 3.45, 3.35]
    export(tmp_path, "toy_run_iter1000_bs4x1_ws2", val_iters=iters, val_loss=losses)
    df = read_wandb_json(tmp_path)
    run = df[df["run"] == "toy_run_iter1000_bs4x1_ws2"].set_index("step")
    assert list(run.index) == [200, 400, 600, 800, 1000]  # step 0 (0 tokens) left out
    assert run.loc[400, "loss"] == 3.40 and run.loc[600, "loss"] == 3.30  # the restart's values
    report = "\n".join(df.attrs["import_report"])
    assert "dropped 2 duplicate checkpoint(s) (2 with a different loss" in report
    assert "toy_run_iter1000_bs4x1_ws2: 2 duplicate(s) dropped" in report
    assert "left out 1 checkpoint(s) at step 0" in report
    assert run.loc[200, "tokens"] == 200 * PER_STEP and run.loc[200, "batch_size"] == PER_STEP
    assert run.loc[200, "flops"] == pytest.approx(6 * 1.2e6 * 200 * PER_STEP)
    assert (run["run_tokens"] == 1000 * PER_STEP).all()
    assert "world size from the file name ('ws2')" in report


def test_cooldown_branch_is_joined_to_its_parent(tmp_path):
    stable = "toy_stable_iter1000_bs4x1_ws2"
    export(tmp_path, stable, val_iters=range(0, 1001, 100))  # constant lr after warmup
    branch_cfg = {"wsd_fract_decay": 0.4, "resume_from": f"/scratch/exps/{stable}/ckpts/600"}
    export(tmp_path, "ann0.4_toy_iter1000_bs4x1_ws2", val_iters=range(600, 1001, 100),
           val_loss=[3.0, 2.9, 2.8, 2.7, 2.6], lr_iters=list(range(650, 1001, 50)),
           lr=llm_baselines_lr(range(650, 1001, 50), 1e-3, 1000, 100, "wsd", 0.4).tolist(), config=branch_cfg)
    orphan_cfg = {"wsd_fract_decay": 0.2, "resume_from": "/scratch/exps/not_here/ckpts/800"}
    export(tmp_path, "ann0.2_orphan_iter1000_bs4x1_ws2", val_iters=[800, 900, 1000], lr_iters=[850, 900, 950, 1000],
           lr=llm_baselines_lr([850, 900, 950, 1000], 1e-3, 1000, 100, "wsd", 0.2).tolist(), config=orphan_cfg)
    df = read_wandb_json(tmp_path)
    branch = df[df["run"] == "ann0.4_toy_iter1000_bs4x1_ws2"].set_index("step")
    assert list(branch.index) == list(range(100, 1001, 100))  # parent's 100..500 + its own 600..1000
    assert branch.loc[100:500, "copied"].all() and not branch.loc[600:, "copied"].any()
    assert set(branch["parent_run"]) == {stable}
    parent = df[df["run"] == stable].set_index("step")
    np.testing.assert_allclose(branch.loc[100:500, "loss"], parent.loc[100:500, "loss"])
    assert branch.loc[700, "loss"] == 2.9
    schedule = Schedule.from_json(branch["schedule"].iloc[0])
    assert (schedule.shape, schedule.decay_start, schedule.total_steps) == ("wsd", 600, 1000)
    assert branch["schedule_error"].iloc[0] < 1e-12  # parent's logged lr before 600 + its own after
    orphan = df[df["run"] == "ann0.2_orphan_iter1000_bs4x1_ws2"]
    assert list(orphan["step"]) == [800, 900, 1000] and (orphan["run_tokens"] == 1000 * PER_STEP).all()
    report = "\n".join(df.attrs["import_report"])
    assert "cooldown branches joined to their parent: 1, 5 parent checkpoint(s) copied" in report
    assert "1 branch(es) not joined (no parent file)" in report and "ann0.2_orphan" in report
    assert Schedule.from_json(parent["schedule"].iloc[0]).shape == "constant"
    # the branch continues its constant-rate parent, so it is of the parent's family; the orphan keeps its own
    assert set(branch["family"]) == set(parent["family"]) == {"toy-constant"} and set(orphan["family"]) == {"toy-wsd"}
    assert "1 branch(es) of another schedule shape than their parent take its family" in report


def test_schedule_check_matches_cosine_and_wsd_and_flags_a_mismatch(tmp_path):
    cos = {"scheduler": "cos", "cos_final_lr": -1, "iterations": 2000, "warmup_steps": 300}
    export(tmp_path, "toy_cos_iter2000_bs4x1_ws2", val_iters=range(200, 2001, 200), config=cos)
    zero = {"scheduler": "cos", "cos_final_lr": 1e-7, "iterations": 2000, "warmup_steps": 300}
    lr_iters = list(range(50, 2001, 50))
    export(tmp_path, "toy_coszero_iter2000_bs4x1_ws2", val_iters=range(200, 2001, 200), config=zero,
           lr_iters=lr_iters, lr=llm_baselines_lr(lr_iters, 1e-3, 2000, 300, "cos", final=1e-7).tolist())
    sqrt = {"wsd_fract_decay": 0.3, "decay_type": "sqrt", "iterations": 1000}
    lr_iters = list(range(50, 1001, 50))
    hold = 1000 - int(0.3 * 1000)
    lr_sqrt = [1e-3 if t < hold else 1e-3 * (1 - math.sqrt((t - hold) / 300)) for t in lr_iters]
    lr_sqrt[0] = llm_baselines_lr(50, 1e-3, 1000, 100)[()]
    export(tmp_path, "toy_sqrt_iter1000_bs4x1_ws2", val_iters=range(200, 1001, 200), config=sqrt,
           lr_iters=lr_iters, lr=lr_sqrt)
    wrong = {"scheduler": "cos", "iterations": 1000}  # config says cosine, the log is constant
    export(tmp_path, "toy_wrong_iter1000_bs4x1_ws2", val_iters=range(200, 1001, 200), config=wrong,
           lr_iters=list(range(50, 1001, 50)), lr=[1e-3] * 20)
    df = read_wandb_json(tmp_path)
    error = df.groupby("run")["schedule_error"].first()
    flag = df.groupby("run")["schedule_flag"].first()
    for run in ("toy_cos_iter2000_bs4x1_ws2", "toy_coszero_iter2000_bs4x1_ws2", "toy_sqrt_iter1000_bs4x1_ws2"):
        assert error[run] < 1e-9 and not flag[run], (run, error[run])
    assert error["toy_wrong_iter1000_bs4x1_ws2"] > 0.5 and flag["toy_wrong_iter1000_bs4x1_ws2"]
    report = "\n".join(df.attrs["import_report"])
    assert "3 of 4 run(s) within 0.001" in report and "FLAGGED toy_wrong_iter1000_bs4x1_ws2" in report
    assert df.attrs["schedule_check"]["toy_wrong_iter1000_bs4x1_ws2"] > 0.5
    assert Schedule.from_json(df.loc[df["run"] == "toy_cos_iter2000_bs4x1_ws2", "schedule"].iloc[0]).final_lr == 1e-4
    sqrt_schedule = Schedule.from_json(df.loc[df["run"] == "toy_sqrt_iter1000_bs4x1_ws2", "schedule"].iloc[0])
    assert sqrt_schedule.decay_type == "1-sqrt"


def test_perplexity_and_bits_are_converted_to_nats(tmp_path):
    export(tmp_path, "toy_ppl_iter1000_bs4x1_ws2", val_iters=[500, 1000], val_loss=[math.e ** 3.5, math.e ** 3.2],
           val_key="val_perplexity")
    df = read_wandb_json(tmp_path)
    np.testing.assert_allclose(df["loss"], [3.5, 3.2])
    assert any("is a perplexity: loss = ln(ppl)" in line for line in df.attrs["import_report"])
    values, rule = loss_to_nats([2.0], "eval/loss_bits")
    assert values[0] == pytest.approx(2.0 * math.log(2)) and "bits" in rule
    assert loss_to_nats([20.0], "val/ppl")[0][0] == pytest.approx(math.log(20.0))
    assert loss_to_nats([3.0], "val/loss")[0][0] == 3.0
    with pytest.raises(ImportFormatError, match="per byte"):
        loss_to_nats([1.0], "eval/bpb")


@pytest.mark.parametrize("metric", ["eval/accuracy", "val_acc", "hellaswag/acc_norm", "eval/f1", "train/grad_norm",
                                    "lr"])
def test_a_metric_that_is_not_a_loss_is_refused(tmp_path, metric):
    with pytest.raises(ImportFormatError, match=rf"metric '{metric}' is not a loss"):
        loss_to_nats([0.4], metric)
    assert loss_to_nats([3.0], "train/loss_acc")[0][0] == 3.0  # a name with 'loss' in it is a loss
    path = tmp_path / "chart.csv"
    pd.DataFrame({"Step": [100, 200], f"runA - {metric}": [0.3, 0.4]}).to_csv(path, index=False)
    with pytest.raises(ImportFormatError, match=rf"chart.csv'?, run 'runA': metric '{metric}' is not a loss"):
        read_wandb_csv(path, params={"runA": 1e8}, tokens_per_step=1000)


def test_wandb_json_errors_name_the_file(tmp_path):
    path = export(tmp_path, "toy_noparams_iter1000_bs4x1_ws2", val_iters=[500, 1000], params=None)
    with pytest.raises(ImportFormatError, match=r"toy_noparams.*no parameter count.*params="):
        read_wandb_json(path)
    assert read_wandb_json(path, params={"toy_noparams_iter1000_bs4x1_ws2": 5e6})["params"].iloc[0] == 5e6
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ImportFormatError, match="broken.json.*not a JSON file"):
        read_wandb_json(bad)


# --------------------------------------------------------------------------- chart CSV, TensorBoard, minimal


def chart(path: Path) -> Path:
    pd.DataFrame({
        "Step": [0, 100, 200, 300, 300],
        "small - val/loss": [9.0, 4.0, 3.5, 3.2, 3.1],
        "small - val/loss__MIN": [9.0, 3.9, 3.4, 3.1, 3.0],
        "small - val/loss__MAX": [9.0, 4.1, 3.6, 3.3, 3.2],
        "big - val/perplexity": [None, math.e ** 3.8, math.e ** 3.3, None, math.e ** 3.0],
    }).to_csv(path, index=False)
    return path


def test_wandb_csv_chart_export(tmp_path):
    path = chart(tmp_path / "chart.csv")
    df = read_wandb_csv(path, params={"small": 1e7, "big": 1.2e8}, tokens_per_step=1000)
    small = df[df["run"] == "small"].set_index("step")
    assert list(small.index) == [100, 200, 300] and small.loc[300, "loss"] == 3.1  # last row of step 300 kept
    big = df[df["run"] == "big"].set_index("step")
    np.testing.assert_allclose(big["loss"], [3.8, 3.3, 3.0])
    assert set(df["model"]) == {"10M", "120M"} and (df["tokens"] == df["step"] * 1000).all()
    report = "\n".join(df.attrs["import_report"])
    assert "left out 2 __MIN/__MAX column(s)" in report and "skipped 2 empty cell(s)" in report
    assert "small / val/loss: 1 duplicate step(s) dropped" in report
    sidecar = tmp_path / "runs.csv"
    sidecar.write_text("run,params,tokens_per_step,family\nsmall,1e7,2000,fam-a\nbig,1.2e8,2000,fam-b\n")
    df = read_wandb_csv(path, sidecar=sidecar)
    assert df.groupby("run")["family"].first().to_dict() == {"big": "fam-b", "small": "fam-a"}
    assert (df["tokens"] == df["step"] * 2000).all()


def test_wandb_csv_without_params_names_the_run(tmp_path):
    path = chart(tmp_path / "chart.csv")
    with pytest.raises(ImportFormatError, match=r"chart.csv.*no parameter count for run\(s\) big"):
        read_wandb_csv(path, params={"small": 1e7}, tokens_per_step=1000)
    with pytest.raises(ImportFormatError, match="no tokens per step"):
        read_wandb_csv(path, params={"small": 1e7, "big": 1e8})


def test_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path / "logs" / "runA"))
    for wall, (step, loss) in enumerate([(0, 9.0), (100, 4.0), (200, 3.5), (100, 3.9)]):  # a restart relogs 100
        values = [summary_pb2.Summary.Value(tag="val/loss", simple_value=loss),
                  summary_pb2.Summary.Value(tag="train/lr", simple_value=1e-3),
                  summary_pb2.Summary.Value(tag="grad_norm", simple_value=1.0)]
        writer.add_event(event_pb2.Event(wall_time=1000.0 + wall, step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    assert detect_format(tmp_path / "logs") == "tensorboard"
    df = read_tensorboard(tmp_path / "logs", params={"runA": 3e7}, tokens_per_step=512)
    run = df.set_index("step")
    assert list(run.index) == [100, 200] and run.loc[100, "loss"] == pytest.approx(3.9)  # last logged kept
    assert run.loc[200, "lr"] == pytest.approx(1e-3) and run.loc[200, "tokens"] == 200 * 512
    report = "\n".join(df.attrs["import_report"])
    assert "grad_norm" in report and "1 duplicate step(s) dropped" in report


def test_tensorboard_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing.event_accumulator", None)
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    with pytest.raises(MissingExtraError, match=r"bayeslaw\[tb\]"):
        read_tensorboard(tmp_path, params={"x": 1e6}, tokens_per_step=1)


def test_complete_minimal_fills_defaults():
    df = complete_minimal(pd.DataFrame({"run": ["a", "a", "b"], "params": [1e8, 1e8, 4e8],
                                        "tokens": [1e9, 2e9, 2e9], "loss": [3.5, 3.2, 3.0]}))
    assert list(df.columns[:11]) == list(bd.REQUIRED_COLUMNS)
    row = df.iloc[0]
    assert (row["family"], row["model"], row["seed"], row["step"], row["loss_name"], row["source"]) == (
        "default", "100M", 0, -1, "loss", "user")
    assert row["flops"] == 6 * 1e8 * 1e9
    assert "filled with defaults: family, model, seed, step, flops, loss_name, source" in df.attrs["import_report"][1]
    kept = complete_minimal(pd.DataFrame({"run": ["a"], "params": [1e8], "tokens": [1e9], "loss": [3.0],
                                          "family": ["mine"], "step": [7]}))
    assert (kept["family"].iloc[0], kept["step"].iloc[0]) == ("mine", 7)
    with pytest.raises(ImportFormatError, match=r"missing column\(s\) \['tokens'\]"):
        complete_minimal(pd.DataFrame({"run": ["a"], "params": [1e8], "loss": [3.0]}))


def test_complete_minimal_takes_steps_for_schedule_laws():
    schedule = Schedule("cosine", 3e-4, 1000, 100, 3e-5).to_json()
    df = complete_minimal(pd.DataFrame({"run": ["a", "a"], "params": [1e8, 1e8], "step": [500, 1000],
                                        "loss": [3.5, 3.2], "schedule": [schedule, schedule]}))
    assert df["tokens"].isna().all() and df["flops"].isna().all()
    assert list(df["step"]) == [500, 1000]
    with pytest.raises(bd.DataValidationError, match="column 'tokens'"):  # no tokens and no step to stand in
        complete_minimal(pd.DataFrame({"run": ["a"], "params": [1e8], "step": [-1], "loss": [3.0]}))


def minimal_runs(families=None) -> pd.DataFrame:
    """run, params, tokens, loss of four sizes on a Chinchilla-like law (a family column where given)."""
    rows = []
    for n in (1e8, 2e8, 4e8, 8e8):
        for d in np.geomspace(1.2e10, 1e11, 6):
            rows.append({"run": f"r{n:.0e}", "params": n, "tokens": d,
                         "loss": 1.8 + 400 / n ** 0.34 + 400 / d ** 0.28})
    df = pd.DataFrame(rows)
    return df if families is None else pd.concat([df.assign(family=f, run=df["run"] + f) for f in families])


def test_as_table_passes_a_complete_table_and_completes_a_minimal_one():
    full = complete_minimal(minimal_runs())
    assert as_table(full) is full
    out = as_table(minimal_runs(), name="x")
    assert set(bd.REQUIRED_COLUMNS) <= set(out.columns) and set(out["family"]) == {"default"}
    assert set(as_table(minimal_runs(["a", "b"]))["family"]) == {"a", "b"}
    with pytest.raises(ImportFormatError, match=r"missing column\(s\) \['params'\] in x"):
        as_table(minimal_runs().drop(columns=["params"]), name="x")


def test_a_minimal_table_is_accepted_everywhere(tmp_path):
    from bayeslaw import evaluation, fit_point
    from bayeslaw.inference.config import FitConfig
    from bayeslaw.inference.nuts import prepare_fit

    df = minimal_runs()
    split = bd.hitchhiker_split(df, k=2)
    assert split.models == {"default": ["100M", "200M"]} and len(split.test) > 0
    assert fit_point(df, method="hitchhiker").converged
    prepared = prepare_fit(df, FitConfig(chains=1, draws=10, warmup=10))
    assert prepared.rows["family"].unique().tolist() == ["default"] and len(prepared.rows) == len(df)
    # a restart logged twice is the fit's to resolve, by its duplicates option, not refused on the way in
    restarted = pd.concat([df, df.iloc[[2]].assign(loss=9.0)], ignore_index=True)
    with pytest.raises(ValueError, match="a restart logged twice"):
        prepare_fit(restarted, FitConfig(chains=1, draws=10, warmup=10))
    last = prepare_fit(restarted, FitConfig(chains=1, draws=10, warmup=10, duplicates="last"))
    assert len(last.rows) == len(df) and 9.0 in last.rows["loss"].to_numpy()
    result = evaluation.backtest(df, ks=(2,), fractions=(0.0,), methods=("hitchhiker",), poolings=(), transfer=False,
                                 compare=False, progress=False)
    assert set(result.cells["family"]) == {"default"} and result.cells["are"].notna().all()
    df.to_csv(tmp_path / "mini.csv", index=False)
    out = runner.invoke(app, ["fit-point", str(tmp_path / "mini.csv"), "--method", "hitchhiker", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["family"] == "default"


def test_import_paths_combines_formats(tmp_path):
    (tmp_path / "runs").mkdir()
    export(tmp_path / "runs", "toy_run_iter1000_bs4x1_ws2", val_iters=[500, 1000])
    minimal = pd.DataFrame({"run": ["m"], "params": [1e8], "tokens": [1e9], "loss": [3.0]})
    minimal.to_csv(tmp_path / "m.csv", index=False)
    chart(tmp_path / "chart.csv")
    df = import_paths([tmp_path / "runs", tmp_path / "m.csv", tmp_path / "chart.csv"],
                      params={"small": 1e7, "big": 1e8}, tokens_per_step=100, family="fam")
    assert set(df["run"]) == {"toy_run_iter1000_bs4x1_ws2", "m", "small", "big"}
    assert set(df["family"]) == {"fam"}
    assert {line.split(":")[0] for line in df.attrs["import_report"]} == {"wandb_json", "table", "wandb_csv"}


# --------------------------------------------------------------------------- CLI


def test_cli_import_writes_the_table_and_reports(tmp_path):
    export(tmp_path, "toy_run_iter1000_bs4x1_ws2", val_iters=[0, 500, 1000, 500], val_loss=[9.0, 3.5, 3.2, 3.4])
    out = tmp_path / "out" / "table.parquet"
    result = runner.invoke(app, ["import", str(tmp_path / "toy_run_iter1000_bs4x1_ws2.json"), "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["rows"] == 2 and payload["runs"] == 1 and payload["schedule_flagged"] == []
    assert any("1 duplicate(s) dropped" in line for line in payload["report"])
    table = pd.read_parquet(out)
    assert list(table["loss"]) == [3.4, 3.2] and "schedule" in table.columns
    result = runner.invoke(app, ["import", str(tmp_path), "--out", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert "imported 1 runs, 2 rows" in result.output and "wrote" in result.output


def test_cli_import_chart_with_params_options(tmp_path):
    path = chart(tmp_path / "chart.csv")
    out = tmp_path / "t.parquet"
    args = ["import", str(path), "--out", str(out), "--params", "small=10M", "--params", "big=1.2e8",
            "--tokens-per-step", "1000", "--family", "mine"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert set(table["family"]) == {"mine"} and table.groupby("run")["params"].first().to_dict() == {
        "big": 1.2e8, "small": 1e7}


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: chart(d / "chart.csv"), ["--params", "small=1e7", "--tokens-per-step", "10"],
         "no parameter count for run(s) big"),
        (lambda d: (d / "broken.json").write_text("{oops") and d / "broken.json", [], "broken.json"),
        (lambda d: chart(d / "chart.csv"), ["--params", "small"], "--params: 'small' is not RUN=N"),
        (lambda d: d / "missing.json", [], "does not exist"),
    ],
)
def test_cli_import_errors_are_one_line_and_write_nothing(tmp_path, make, extra, message):
    path = make(tmp_path)
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["import", str(path), "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.parquet*"))


# --------------------------------------------------------------------------- the real wsd_horizons folder


def test_real_wsd_horizons(data_root):
    folder = data_root / "lr_schedules" / "wsd_horizons"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the lr_schedules data is not in this BAYESLAW_DATA")
    df = bd.load("wsd_horizons", data_root)
    runs = df.groupby("run").first()
    assert len(runs) == 213 and len(df) == 38333
    assert runs["params"].between(33e6, 209e6).all() and runs["params"].nunique() == 8
    assert set(df["source"]) == {"wsd_horizons"} and (df["batch_size"] == 102400).all()
    # every rebuilt schedule matches the logged lr after warmup, the four wsd_twostage runs included
    assert not runs["schedule_flag"].any() and runs["schedule_error"].max() < 1e-9
    two_stage = runs[runs.index.str.contains("wsd_twostage")]
    assert len(two_stage) == 4 and two_stage["schedule"].str.contains('"wsd_two_stage"').all()
    notes = "\n".join(df.attrs["filtering"] + df.attrs["corrections"])
    assert "dropped 2858 duplicate checkpoint(s)" in notes
    assert "cooldown branches joined to their parent: 99" in notes
    assert (df["tokens"] <= df["run_tokens"]).all() and df.loc[df["copied"], "parent_run"].notna().all()


# --------------------------------------------------------------------------- defects found by probing the importers


def tb_run(folder: Path, events, *, wall0: float = 1000.0) -> Path:
    """A TensorBoard event file in ``folder`` of (step, {tag: value}) events."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for i, (step, values) in enumerate(events):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                             for t, v in values.items()])
        writer.add_event(event_pb2.Event(wall_time=wall0 + i, step=step, summary=summary))
    writer.close()
    return folder


def test_tensorboard_loss_scaler_is_not_a_loss_and_tags_select_losses(tmp_path):
    pytest.importorskip("tensorboard")
    tb_run(tmp_path / "logs" / "gpt", [(s, {"lm loss": 4.0 - s / 1000, "loss-scale": 65536.0,
                                            "lm loss validation": 4.1 - s / 1000}) for s in (100, 200, 300)])
    df = read_tensorboard(tmp_path / "logs", params={"gpt": 1.25e8}, tokens_per_step=1000)
    assert set(df["loss_name"]) == {"lm loss", "lm loss validation"}  # Megatron's fp16 scaler is left out
    assert any("loss-scaler tag(s) loss-scale" in line for line in df.attrs["import_report"])
    out = tmp_path / "t.parquet"
    result = runner.invoke(app, ["import", str(tmp_path / "logs"), "--out", str(out), "--params", "gpt=125M",
                                 "--tokens-per-step", "1000", "--tags", "lm loss validation,lm loss"])
    assert result.exit_code == 0, result.output
    assert set(pd.read_parquet(out)["loss_name"]) == {"lm loss", "lm loss validation"}
    result = runner.invoke(app, ["import", str(tmp_path / "logs"), "--out", str(out), "--params", "gpt=125M",
                                 "--tokens-per-step", "1000", "--tags", "lm loss validation"])
    assert result.exit_code == 0 and set(pd.read_parquet(out)["loss_name"]) == {"lm loss validation"}
    tb_run(tmp_path / "noloss" / "r", [(100, {"train/accuracy": 0.5})])
    result = runner.invoke(app, ["import", str(tmp_path / "noloss"), "--out", str(out), "--params", "r=1e7",
                                 "--tokens-per-step", "10"])
    assert result.exit_code == 2 and "--tags" in result.output and "train/accuracy" in result.output
    chart(tmp_path / "chart.csv")
    result = runner.invoke(app, ["import", str(tmp_path / "chart.csv"), "--out", str(out), "--tags", "x"])
    assert result.exit_code == 2 and "no input is a TensorBoard" in result.output


def test_tensorboard_names_runs_left_out_and_refuses_a_corrupt_file(tmp_path):
    pytest.importorskip("tensorboard")
    tb_run(tmp_path / "logs" / "runA", [(s, {"val/loss": 4.0 - s / 1000}) for s in (100, 200)])
    tb_run(tmp_path / "logs" / "runN", [(s, {"train/accuracy": 0.5}) for s in (100, 200)])
    (tmp_path / "logs" / "runA" / "events.out.tfevents.9.empty").write_bytes(b"")
    df = read_tensorboard(tmp_path / "logs", params={"runA": 1e7}, tokens_per_step=1000)
    report = "\n".join(df.attrs["import_report"])
    assert "left out run 'runN': no loss tag (scalar tags: train/accuracy)" in report
    assert "left out 1 empty event file(s)" in report
    (tmp_path / "logs" / "runA" / "events.out.tfevents.10.bad").write_bytes(bytes(range(256)) * 2)
    with pytest.raises(ImportFormatError, match=r"events.out.tfevents.10.bad'.*no TensorBoard event could be read"):
        read_tensorboard(tmp_path / "logs", params={"runA": 1e7}, tokens_per_step=1000)


def test_cli_import_of_json_and_chart_flags_only_checked_schedules(tmp_path):
    export(tmp_path, "toy_run_iter1000_bs4x1_ws2", val_iters=[500, 1000])
    chart(tmp_path / "chart.csv")
    out = tmp_path / "t.parquet"
    result = runner.invoke(app, ["import", str(tmp_path / "toy_run_iter1000_bs4x1_ws2.json"),
                                 str(tmp_path / "chart.csv"), "--out", str(out), "--params", "small=1e7", "--params", "big=1e8",
                                 "--tokens-per-step", "1000", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["schedule_flagged"] == [] and all(m["schedule_flagged"] == 0 for m in payload["models"])
    assert any("W&B JSON runs keep their config's" in line for line in payload["report"])
    table = pd.read_parquet(out)
    assert table["schedule_flag"].dtype == bool and not table["schedule_flag"].any()
    json_run = table[table["run"] == "toy_run_iter1000_bs4x1_ws2"]
    assert (json_run["batch_size"] == PER_STEP).all()  # the chart's tokens per step is not the JSON run's


def test_a_params_or_tokens_key_that_names_no_run_is_refused(tmp_path):
    path = chart(tmp_path / "chart.csv")
    with pytest.raises(ImportFormatError, match=r"--params / params= name\(s\) no run: 'typo'; runs: big, small"):
        read_wandb_csv(path, params={"small": 1e7, "big": 1e8, "typo": 1e8}, tokens_per_step=1000)
    with pytest.raises(ImportFormatError, match=r"tokens_per_step= name\(s\) no run: 'smal'"):
        read_wandb_csv(path, params={"small": 1e7, "big": 1e8}, tokens_per_step={"smal": 10, "big": 10})
    export(tmp_path, "toy_run_iter1000_bs4x1_ws2", val_iters=[500, 1000])
    with pytest.raises(ImportFormatError, match=r"name\(s\) no run: 'toy_run'"):  # would fall back to the summary's
        read_wandb_json(tmp_path / "toy_run_iter1000_bs4x1_ws2.json", params={"toy_run": 5e6})
    pd.DataFrame({"run": ["m"], "params": [1e8], "tokens": [1e9], "loss": [3.0]}).to_csv(tmp_path / "m.csv")
    with pytest.raises(ImportFormatError, match=r"given for run\(s\) 'm' of a table input"):
        import_paths([tmp_path / "m.csv"], params={"m": 2e8})
    out = tmp_path / "t.parquet"
    result = runner.invoke(app, ["import", str(path), "--out", str(out), "--params", "small=1e7", "--params",
                                 "big=1e8", "--params", "bgi=1e8", "--tokens-per-step", "1000"])
    assert result.exit_code == 2 and "'bgi'" in result.output and "runs: big, small" in result.output
    assert not out.exists()


def test_sidecar_and_tokens_per_step_apply_to_wandb_json(tmp_path):
    export(tmp_path, "toy_run_iter1000_bs4x1_ws2", val_iters=[500, 1000], params=None)
    path = tmp_path / "toy_run_iter1000_bs4x1_ws2.json"
    with pytest.raises(ImportFormatError, match=r"give --params toy_run_iter1000_bs4x1_ws2=N"):
        read_wandb_json(path)
    sidecar = tmp_path / "side.csv"
    sidecar.write_text("run,params,tokens_per_step,family\ntoy_run_iter1000_bs4x1_ws2,33M,,mine\nother,1e7,,\n")
    df = import_paths([path], sidecar=sidecar)
    assert (df["params"] == 33e6).all() and set(df["family"]) == {"mine"} and (df["batch_size"] == PER_STEP).all()
    assert any("1 row(s) name no imported run, not used: other" in line for line in df.attrs["import_report"])
    df = read_wandb_json(path, params={"toy_run_iter1000_bs4x1_ws2": 2e6},
                         tokens_per_step={"toy_run_iter1000_bs4x1_ws2": 128})
    assert (df["batch_size"] == 128).all() and (df["tokens"] == df["step"] * 128).all()
    assert any("instead of the config's" in line for line in df.attrs["import_report"])
    with pytest.raises(ImportFormatError, match="contradicts the config"):  # alone, one number would do nothing
        read_wandb_json(path, params={"toy_run_iter1000_bs4x1_ws2": 2e6}, tokens_per_step=100)


@pytest.mark.parametrize("kind", ["parent_is_a_file", "out_is_a_folder"])
def test_cli_import_bad_out_is_one_line(tmp_path, kind):
    path = chart(tmp_path / "chart.csv")
    if kind == "parent_is_a_file":
        (tmp_path / "f.parquet").write_text("x")
        out, message = tmp_path / "f.parquet" / "t.parquet", "is a file, not a folder"
    else:
        (tmp_path / "d.parquet").mkdir()
        out, message = tmp_path / "d.parquet", "is a folder; give a file name"
    result = runner.invoke(app, ["import", str(path), "--out", str(out), "--params", "small=1e7", "--params",
                                 "big=1e8", "--tokens-per-step", "1000"])
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_import_write_error_is_one_line(tmp_path, monkeypatch):
    import bayeslaw.cli as cli

    def fail(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cli, "write_atomic", fail)
    path = chart(tmp_path / "chart.csv")
    result = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "T.CSV"), "--params", "small=1e7",
                                 "--params", "big=1e8", "--tokens-per-step", "1000"])
    assert result.exit_code == 2 and "--out" in result.output and "Permission denied" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_write_atomic_gives_the_umask_mode(tmp_path):
    import os
    import stat

    from bayeslaw.data.files import write_atomic

    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "a.csv", lambda p: p.write_text("x"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 less the umask, not mkstemp's 0o600
        path.chmod(0o664)
        write_atomic(path, lambda p: p.write_text("y"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o664 and path.read_text() == "y"  # a replaced file's mode
    finally:
        os.umask(old)


def test_cli_import_out_suffix_is_case_insensitive(tmp_path):
    path = chart(tmp_path / "chart.csv")
    result = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "T.CSV"), "--params", "small=1e7",
                                 "--params", "big=1e8", "--tokens-per-step", "1000"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "T.CSV")) == 6


def test_unreadable_inputs_name_the_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ImportFormatError, match=r"empty.csv' is empty"):
        import_paths([tmp_path / "empty.csv"])
    (tmp_path / "header.csv").write_text("Step,x - val/loss\n")
    with pytest.raises(ImportFormatError, match=r"header.csv': no values .* \(a header only\)"):
        read_wandb_csv(tmp_path / "header.csv", params={"x": 1e7}, tokens_per_step=10)
    export(tmp_path, "nulliter_ws2", val_iters=[500, None, 1000], val_loss=[3.5, 3.4, 3.2])
    with pytest.raises(ImportFormatError, match=r"nulliter_ws2.json' \(run 'nulliter_ws2'\): history.val.iter: 1 "
                                                r"missing or non-numeric iteration\(s\) \(index 1: None\)"):
        read_wandb_json(tmp_path / "nulliter_ws2.json")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(ImportFormatError, match=r"bad.parquet': not a readable parquet file"):
        import_paths([tmp_path / "bad.parquet"])


def test_log_perplexity_is_nats_already():
    values = np.array([3.0, 2.5])
    np.testing.assert_allclose(loss_to_nats(values, "val/log_perplexity")[0], values)
    np.testing.assert_allclose(loss_to_nats(values, "train/log_ppl")[0], values)
    assert "already nats" in loss_to_nats(values, "log_ppl")[1]
    np.testing.assert_allclose(loss_to_nats(values, "val/log2_perplexity")[0], values * math.log(2))
    np.testing.assert_allclose(loss_to_nats(values, "val/perplexity")[0], np.log(values))


def test_validation_errors_name_run_and_step(tmp_path):
    path = tmp_path / "huge.csv"
    pd.DataFrame({"Step": [100, 200], "r1 - val/loss": [3.0, 45.0]}).to_csv(path, index=False)
    with pytest.raises(bd.DataValidationError, match=r"above 20 \(at run 'r1' step 200: 45\)"):
        read_wandb_csv(path, params={"r1": 1e7}, tokens_per_step=1000)


def test_runs_in_two_files_of_one_name_name_both(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        chart(tmp_path / folder / "chart.csv")
    with pytest.raises(ImportFormatError, match=r"run 'small' appears in '.*a/chart.csv' and '.*b/chart.csv'"):
        import_paths([tmp_path / "a" / "chart.csv", tmp_path / "b" / "chart.csv"],
                     params={"small": 1e7, "big": 1e8}, tokens_per_step=1000)


def test_fractional_steps_are_refused_and_the_sidecar_reads_size_labels(tmp_path):
    path = tmp_path / "frac.csv"
    pd.DataFrame({"Step": [100, 200.5], "r1 - val/loss": [3.0, 2.9]}).to_csv(path, index=False)
    with pytest.raises(ImportFormatError, match=r"column 'Step': 1 fractional step\(s\) \(lines \[3\]: 200.5\)"):
        read_wandb_csv(path, params={"r1": 1e7}, tokens_per_step=1000)
    export(tmp_path, "frac_ws2", val_iters=[500, 750.5])
    with pytest.raises(ImportFormatError, match=r"1 fractional iteration\(s\) \(index 1: 750.5\)"):
        read_wandb_json(tmp_path / "frac_ws2.json")
    sidecar = tmp_path / "side.csv"
    sidecar.write_text("run,params,tokens_per_step\nsmall,33M,1k\nbig,1.2e8,1000\n")
    df = read_wandb_csv(chart(tmp_path / "chart.csv"), sidecar=sidecar)
    assert df.groupby("run")["params"].first().to_dict() == {"big": 1.2e8, "small": 33e6}
    assert (df["batch_size"] == 1000).all()
