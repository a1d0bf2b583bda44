import json

import numpy as np
import pandas as pd
import pytest

from bayeslaw.data import read_table
from bayeslaw.simulation import DEMO_PATH, DEMO_SETTINGS, DEMO_TRUTH_PATH, load_demo, simulate


def test_same_seed_same_data_other_seed_other_data():
    a = simulate(seed=7)
    b = simulate(seed=7)
    c = simulate(seed=8)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert a.truth == b.truth
    assert not np.allclose(a.data["loss"], c.data["loss"])


def test_shape_and_truth_structure():
    sim = simulate(families=["x", "y"], sizes=(1e8, 1e9), seeds=4, checkpoints=5, seed=0)
    df, truth = sim
    assert len(df) == 2 * 2 * 4 * 5
    assert df["run"].nunique() == 16 and set(df["seed"]) == {0, 1, 2, 3}
    assert set(truth["families"]) == {"x", "y"}
    assert set(truth["runs"]) == set(df["run"])
    json.dumps(truth)  # serialisable
    # the noise-free law is what the simulator says it is
    rows = df[df["family"] == "x"]
    np.testing.assert_allclose(sim.true_loss("x", rows["params"], rows["tokens"]), rows["true_law"], rtol=1e-12)


def test_seed_offsets_carry_the_seed_variance():
    sim = simulate(families=1, sizes=(1e8,), seeds=400, checkpoints=3, sigma_seed=0.02, sigma_obs=1e-4, seed=2,
                   shape=(0.0, 0.0, 0.0), shape_scale=0.0, sigma_dev=0.0)
    offsets = np.array([r["offset"] for r in sim.truth["runs"].values()])
    assert abs(offsets.std() - 0.02) < 0.003
    # the run-level offset shows up in the data, growing along the run: log loss minus law is u_r x up to
    # checkpoint noise (x the fraction of the run), u_r at the run's end
    df = sim.data
    x = df["tokens"] / df.groupby("run")["tokens"].transform("max")
    resid = np.log(df["loss"] / df["true_law"])
    offset = df["run"].map({r: v["offset"] for r, v in sim.truth["runs"].items()})
    assert (resid - offset * x).abs().max() < 5e-4
    assert abs(resid[x == 1].std() - 0.02) < 0.003 and resid[x < 0.5].std() < 0.5 * resid[x == 1].std()


def test_runs_follow_their_family_shape_and_a_deviation_pinned_at_the_end():
    sim = simulate(families=1, sizes=(1e8,), seeds=600, checkpoints=6, sigma_seed=0.01, sigma_obs=1e-4,
                   sigma_dev=0.004, shape=(0.01, 0.0, -0.002), shape_scale=0.0, first_tokens=1e10, seed=4)
    df = sim.data
    resid = np.log(df["loss"] / df["true_law"]).to_numpy().reshape(600, 6)
    offset = np.array([sim.truth["runs"][r]["offset"] for r in df["run"].unique()])
    x = (df["tokens"] / df["tokens"].max()).to_numpy()[:6]
    g = 0.01 * -np.log(x) - 0.002 * (-np.log(x)) ** 3 / 6
    # at the run's end: the offset alone (g(1) = 0, the deviation is pinned at 0), up to checkpoint noise
    np.testing.assert_allclose(resid[:, -1], offset, atol=5e-4)
    # before it: the family's shape on average, and the bridge's spread, sd_dev (1 - exp(-2 (1 - x) / ell))^(1/2)
    deviation = resid - offset[:, None] * x[None, :]
    np.testing.assert_allclose(deviation.mean(axis=0), g, atol=0.0006)
    sd = deviation.std(axis=0)
    np.testing.assert_allclose(sd[:-1], 0.004 * np.sqrt(1 - np.exp(-2 * (1 - x[:-1]) / 0.2)), rtol=0.15)
    assert sim.truth["families"]["fam0"]["shape"] == [0.01, 0.0, -0.002]


def test_size_dependent_seed_variance():
    sim = simulate(families=1, sizes=(1e8, 1e10), seeds=3, seed_size_exponent=0.25, sigma_seed=0.02, seed=0)
    sds = {r.split("-s")[0]: v["sigma_seed"] for r, v in sim.truth["runs"].items()}
    assert np.isclose(sds["fam0-100M"], 0.02) and np.isclose(sds["fam0-10000M"], 0.02 * 100**-0.25)


def test_embedded_demo_is_the_simulator_output():
    assert DEMO_PATH.exists() and DEMO_TRUTH_PATH.exists()
    fresh = simulate(**DEMO_SETTINGS)
    stored = read_table(DEMO_PATH)
    np.testing.assert_allclose(stored["loss"], fresh.data["loss"], rtol=1e-9)
    assert (stored["run"] == fresh.data["run"]).all()
    truth = json.loads(DEMO_TRUTH_PATH.read_text())
    fresh_truth = json.loads(json.dumps(fresh.truth["families"]))
    assert truth["families"].keys() == fresh_truth.keys()
    for family, values in truth["families"].items():  # to rounding: exp() may differ in the last bit by CPU
        for group in values:
            assert values[group] == pytest.approx(fresh_truth[family][group], rel=1e-12), (family, group)
    assert load_demo().truth["settings"] == DEMO_SETTINGS
