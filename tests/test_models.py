import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy import stats

from bayeslaw.models import D_REF, MODELS, N_REF, NU_MIN, PRIORS, SEED_N_REF, THETA, family_frame, get_model, prepare

THREE_POINTS = pd.DataFrame({
    "family": ["f", "f", "f"],
    "run": ["r1", "r1", "r2"],
    "params": [1e8, 1e8, 1e8],  # r1 and r2: two runs (seeds) of one size
    "tokens": [2e10, 5e10, 5e10],
    "loss": [3.1, 2.9, 2.6],
})


def hand_log_mean(theta, params, tokens):
    """E + A/N^alpha + B/D^beta from the sampled coordinates, by hand."""
    e, a_ref, b_ref, log_alpha, log_beta = theta
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    A = np.exp(a_ref) * N_REF**alpha
    B = np.exp(b_ref) * D_REF**beta
    return np.log(np.exp(e) + A / params**alpha + B / tokens**beta)


def test_trajectory_runs_get_centred_offsets():
    data = prepare(pd.concat([THREE_POINTS, THREE_POINTS.assign(run="r3", tokens=[2e10, 3e10, 5e10])]))
    assert data.run_replicated.tolist() == [True, True, True]  # all three runs share a size
    trace = handlers.trace(handlers.seed(MODELS["complete"], 0)).get_trace(data)
    # offsets only for runs seen twice or more: r1 (2 checkpoints, scaled from a standard normal)
    # and r3 (3 checkpoints, sampled as is: centred); r2, seen once, has none
    assert data.seeded_runs.tolist() == [0, 2]
    u, u_dec = np.asarray(trace["u"]["value"]), np.asarray(trace["u_decentered"]["value"])
    assert u.shape == (2,) and u[1] == u_dec[1] and u[0] != u_dec[0]


def test_the_only_run_of_its_size_carries_no_offset():
    # its offset would trade off against the law's size term: nothing tells them apart
    lone = THREE_POINTS.assign(run="big", params=4e8, tokens=[2e10, 3e10, 5e10])
    data = prepare(pd.concat([THREE_POINTS, lone]))
    assert data.runs == ("big", "r1", "r2") and data.run_replicated.tolist() == [False, True, True]
    assert data.seeded_runs.tolist() == [1]  # r1 only: r2 is seen once, "big" has no sibling
    trace = handlers.trace(handlers.seed(MODELS["hierarchical"], 0)).get_trace(data)
    assert trace["u"]["value"].shape == (1,)


def test_pooled_log_density_matches_a_hand_computation():
    data = prepare(THREE_POINTS)
    y = np.log(THREE_POINTS["loss"].to_numpy())
    values = {
        "theta_shared": np.array([0.55, -1.1, -1.5, np.log(0.33), np.log(0.37)]),
        "sigma_seed_shared": 0.015, "sigma_obs": np.array([0.01]), "nu": np.array([6.0]),
        # r1 (2 points) has an offset, sampled non-centred: u = sigma_seed * u_decentered; r2 (1 point) none
        "u_decentered": np.array([0.004]) / 0.015,
    }
    got, _ = log_density(MODELS["complete"], (data,), {"y": jnp.asarray(y)}, {k: jnp.asarray(v) for k, v in values.items()})

    center = np.array([PRIORS["center"][k] for k in THETA])
    scale = np.array([PRIORS["scale"][k] for k in THETA])
    expected = stats.norm.logpdf(values["theta_shared"], center, scale).sum()
    expected += stats.halfnorm.logpdf(0.015, scale=PRIORS["sigma_seed"])
    expected += stats.halfnorm.logpdf(0.01, scale=PRIORS["sigma_obs"])
    shape, rate = PRIORS["nu"]
    expected += stats.gamma.logpdf(6.0, shape, loc=NU_MIN, scale=1 / rate)  # nu = NU_MIN + Gamma
    expected += stats.norm.logpdf(values["u_decentered"], 0.0, 1.0).sum()  # gamma_seed = 0: constant sigma_seed
    mean = hand_log_mean(values["theta_shared"], THREE_POINTS["params"].to_numpy(), THREE_POINTS["tokens"].to_numpy())
    mean = mean + np.array([0.004, 0.004, 0.0])  # r2 is seen once: no offset in its mean
    expected += stats.t.logpdf(y, df=6.0, loc=mean, scale=0.01).sum()
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_size_dependent_seed_sd_enters_the_run_offsets():
    data = prepare(THREE_POINTS)
    values = {"theta_shared": jnp.zeros(5), "sigma_seed_shared": 0.02, "sigma_obs": jnp.array([0.01]), "nu": jnp.array([5.0]),
              "u_decentered": jnp.array([1.0]), "gamma_seed": 0.3}
    model = handlers.substitute(handlers.seed(MODELS["complete"], 0), data=values)
    trace = handlers.trace(model).get_trace(data, y=None, seed_scaling="size")
    sd = np.asarray(trace["u"]["value"])  # one sd away: u = sd * 1
    expected = 0.02 * (np.exp(data.run_log_params[data.seeded_runs]) / SEED_N_REF) ** -0.3
    np.testing.assert_allclose(sd, expected, rtol=1e-12)


@pytest.mark.parametrize("pooling", sorted(MODELS))
def test_variants_share_sites_and_sample_positive_exponents(pooling):
    data = prepare(pd.concat([THREE_POINTS, THREE_POINTS.assign(family="g", run=["s1", "s1", "s2"])]))
    trace = handlers.trace(handlers.seed(get_model(pooling), jax.random.PRNGKey(1))).get_trace(data)
    for site in ("theta", "alpha", "beta", "sigma_seed", "sigma_obs", "u", "nu", "obs"):
        assert site in trace, f"{pooling} lacks site {site}"
    assert trace["theta"]["value"].shape == (2, 5)
    assert trace["obs"]["value"].shape == (6,)
    assert np.all(np.asarray(trace["alpha"]["value"]) > 0) and np.all(np.asarray(trace["beta"]["value"]) > 0)


def test_unknown_pooling_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown pooling 'partial'; valid: \['complete', 'hierarchical', 'none'\]"):
        get_model("partial")


def test_prior_predictive_losses_are_plausible():
    """The priors give losses of language models, not of anything: checked at the data's scales."""
    from numpyro.infer import Predictive

    grid = pd.DataFrame({"family": "f", "run": [f"r{i}" for i in range(9)],
                         "params": np.repeat([1e8, 1e9, 1e10], 3), "tokens": np.tile([1e10, 1e11, 1e12], 3)})
    draws = Predictive(MODELS["hierarchical"], num_samples=2000)(jax.random.PRNGKey(0), prepare(grid))["obs"]
    loss = np.exp(np.asarray(draws))
    assert 1.5 < np.median(loss) < 4.0
    assert np.quantile(loss, 0.05) > 1.0 and np.quantile(loss, 0.95) < 15.0


def test_prior_predictive_plot(tmp_path):
    from bayeslaw.plots import prior_predictive

    ax, table = prior_predictive(num_samples=400)
    ax.figure.savefig(tmp_path / "prior.png")
    assert (tmp_path / "prior.png").stat().st_size > 10_000
    # the prior median falls with tokens and with parameters, and stays in language-model range
    for _, rows in table.groupby("params"):
        assert rows["q50"].iloc[-1] < rows["q50"].iloc[0]
    last = table[table["tokens"] == table["tokens"].max()].sort_values("params")
    assert np.all(np.diff(last["q50"]) < 0)
    assert table["q50"].between(1.0, 12.0).all()


def test_family_frame_is_a_volume_preserving_bijection():
    # the centred families are sampled in these coordinates: a wrong inverse or a Jacobian other
    # than 1 would silently change the posterior
    data = prepare(pd.concat([THREE_POINTS, THREE_POINTS.assign(family="g", run=["g1", "g1", "g2"], params=3e9)]))
    frame = family_frame(data, np.array([1.0, 0.0]))
    theta = jnp.asarray(np.random.default_rng(0).normal([0.5, -1.0, -1.5, -1.0, -1.0], 0.3, size=(2, 5)))
    np.testing.assert_allclose(frame.inv(frame(theta)), theta, rtol=1e-12)
    np.testing.assert_allclose(frame(theta)[1], theta[1])  # weight 0: identity
    jac = jax.jacfwd(lambda t: frame(t.reshape(2, 5)).ravel())(theta.ravel())
    assert float(jnp.linalg.det(jac)) == pytest.approx(1.0, rel=1e-12)
    # phi's second coordinate is the log slope -dL/dlog N of the N-term at the family's mean log N
    e, a_ref, b_ref, log_alpha, log_beta = np.asarray(theta[0])
    alpha, log_n = np.exp(log_alpha), data.family_log_params[0]
    slope = alpha * np.exp(a_ref + alpha * np.log(N_REF) - alpha * log_n)
    assert float(frame(theta)[0, 1]) == pytest.approx(np.log(slope), rel=1e-12)


def test_sigma_seed_is_a_latent_only_where_replicated_runs_pin_it():
    # family f has two runs of one configuration (seeds); family g has one run per size: no offsets
    seeds = pd.DataFrame({"family": "f", "run": ["s1", "s1", "s2", "s2"], "params": 1e8,
                          "tokens": [2e10, 5e10, 2e10, 5e10], "loss": [3.1, 2.9, 3.12, 2.91]})
    lone = pd.DataFrame({"family": "g", "run": ["g1", "g1", "g2", "g2"], "params": [1e8, 1e8, 4e8, 4e8],
                         "tokens": [2e10, 5e10, 2e10, 5e10], "loss": [3.0, 2.8, 2.7, 2.5]})
    data = prepare(pd.concat([seeds, lone]))
    assert data.seeded_families.tolist() == [True, False]
    trace = handlers.trace(handlers.seed(MODELS["hierarchical"], 0)).get_trace(data)
    assert trace["log_sigma_seed"]["value"].shape == (1,)
    shared = trace["sigma_seed_shared"]["value"]
    sigma_seed = np.asarray(trace["sigma_seed"]["value"])
    assert sigma_seed[1] == pytest.approx(float(shared))  # g: the population's median
    assert sigma_seed[0] == pytest.approx(float(np.exp(trace["log_sigma_seed"]["value"][0])))


@pytest.mark.parametrize("pooling", sorted(MODELS))
def test_nu_is_learnt_or_fixed(pooling):
    data = prepare(THREE_POINTS)
    learnt = handlers.trace(handlers.seed(MODELS[pooling], 0)).get_trace(data)
    assert learnt["nu"]["type"] == "sample" and float(learnt["nu"]["value"]) > NU_MIN
    fixed = handlers.trace(handlers.seed(MODELS[pooling], 0)).get_trace(data, nu=3.0)
    assert fixed["nu"]["type"] == "deterministic" and float(fixed["nu"]["value"]) == 3.0
    with pytest.raises(ValueError, match="must be above NU_MIN"):
        handlers.trace(handlers.seed(MODELS[pooling], 0)).get_trace(data, nu=1.5)
