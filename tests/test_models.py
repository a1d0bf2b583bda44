import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy import stats

from bayeslaw.models import (D_REF, MODELS, N_REF, PRIORS, SEED_N_REF, SHAPE_DEGREE, centered_families, get_model,
                             get_parameterization, pooled_view, prepare, prior_vector)

family_frame = get_parameterization("chinchilla").frame  # (data, centered) -> the family frame
from bayeslaw.models.runs import (JITTER, RunMarginal, bridge_kernel, offset_loading, run_basis, run_covariance,
                                  shape_basis)

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


def test_every_run_is_laid_out_by_tokens_with_its_fraction_of_the_run():
    table = pd.concat([THREE_POINTS, THREE_POINTS.assign(run="r3", tokens=[4e10, 2e10, 5e10])])
    data = prepare(table)
    assert data.runs == ("r1", "r2", "r3") and data.run_points.tolist() == [2, 1, 3]
    assert data.run_mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    # r3's rows (3, 4, 5 in the table) ordered by tokens: 2e10 (row 4), 4e10 (row 3), 5e10 (row 5)
    assert data.run_index[2].tolist() == [4, 3, 5]
    np.testing.assert_allclose(data.fraction, [0.4, 1.0, 1.0, 0.8, 0.4, 1.0])
    assert data.curve_families.tolist() == [True] and data.replicated_families.tolist() == [True]
    # a stated run_tokens (a run seen only in part) sets the fractions
    np.testing.assert_allclose(prepare(THREE_POINTS.assign(run_tokens=1e11)).fraction, [0.2, 0.5, 0.5])
    with pytest.raises(ValueError, match="beyond their run's run_tokens"):
        prepare(THREE_POINTS.assign(run_tokens=3e10))


def _padded_runs(rng, mask):
    """Random fractions of each padded run's real checkpoints (sorted, the last at 1) and their eigenbasis."""
    x = np.ones(mask.shape)
    for r in range(mask.shape[0]):
        k = int(mask[r].sum())
        x[r, :k] = np.append(np.sort(rng.uniform(0.05, 0.99, k - 1)), 1.0)
    return (x, *run_basis(x, mask))


@pytest.mark.parametrize("grows", [False, True], ids=["constant offset", "offset loading t = x"])
def test_run_marginal_matches_a_dense_gaussian_per_run(grows):
    """The Sherman-Morrison evaluation in the eigenbasis equals the dense N(loc, C_r) of each run's real
    checkpoints, C_r = a t t^T + b K + c I (t = 1, or the offset's loading)."""
    rng = np.random.default_rng(0)
    mask = np.ones((5, 7), dtype=bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    x, eigvals, eigvecs = _padded_runs(rng, mask)
    t = x if grows else np.ones_like(x)
    a, b, c = rng.uniform(1e-4, 1e-3, 5), rng.uniform(1e-5, 1e-4, 5), rng.uniform(1e-6, 1e-5, 5)
    loc = rng.normal(0, 0.01, (5, 7)) * mask
    y = (loc + rng.normal(0, 0.02, (5, 7))) * mask
    marginal = RunMarginal(jnp.asarray(loc), eigvals, eigvecs, mask, a, b, c, loading=t if grows else None)
    got = np.asarray(marginal.log_prob(jnp.asarray(y)))
    for r in range(5):
        k = int(mask[r].sum())
        cov = (a[r] * np.outer(t[r, :k], t[r, :k]) + b[r] * np.asarray(bridge_kernel(x[r, :k, None], x[r, None, :k]))
               + (c[r] + JITTER) * np.eye(k))
        assert got[r] == pytest.approx(stats.multivariate_normal(loc[r, :k], cov).logpdf(y[r, :k]), rel=1e-10)
    # run_covariance builds the same matrix
    dense = np.asarray(run_covariance(x, mask, np.sqrt(a), np.sqrt(b), np.sqrt(c), loading=t if grows else None))
    k = int(mask[1].sum())
    np.testing.assert_allclose(dense[1, :k, :k], a[1] * np.outer(t[1, :k], t[1, :k]) + b[1] * np.asarray(
        bridge_kernel(x[1, :k, None], x[1, None, :k])) + (c[1] + JITTER) * np.eye(k), rtol=1e-12)
    # its draws have that covariance on the real checkpoints and are 0 on the padded ones
    draws = np.asarray(marginal.sample(jax.random.PRNGKey(0), (100_000,)))
    assert np.all(draws[:, ~mask] == 0)
    cov0 = (a[0] * np.outer(t[0], t[0]) + b[0] * np.asarray(bridge_kernel(x[0, :, None], x[0, None, :]))
            + (c[0] + JITTER) * np.eye(7))
    se = np.sqrt((np.outer(np.diag(cov0), np.diag(cov0)) + cov0**2) / len(draws))  # of a sample covariance
    assert np.all(np.abs(np.cov(draws[:, 0].T) - cov0) < 4.5 * se)


def test_the_offset_loads_on_the_fraction_of_a_run_or_of_its_branch_tree():
    """A run of its own loads its offset by its fraction x; in a branch tree, by tokens over the tree's end,
    so that a branch and its parent load the shared offset alike where they meet."""
    progress = np.array([1e10, 5e10, 2e10, 4e10, 3e10, 3.5e10])
    run_end = np.array([5e10, 5e10, 4e10, 4e10, 3.5e10, 3.5e10])  # r0 alone; r1 (to 4e10), r2 (branch to 3.5e10)
    tree = np.array(["r0", "r0", "r1", "r1", "r1", "r1"])
    loading, tree_end = offset_loading(progress, progress / run_end, tree)
    np.testing.assert_allclose(loading[:2], [0.2, 1.0], rtol=1e-15)
    np.testing.assert_allclose(loading[2:], progress[2:] / 4e10, rtol=1e-15)
    np.testing.assert_allclose(tree_end, [5e10, 5e10, 4e10, 4e10, 4e10, 4e10])
    # and prepare() reads them from the table: the branch's rows against its parent's end
    df = pd.DataFrame({"family": "f", "run": ["a", "a", "b", "b"], "params": 1e8,
                       "tokens": [2e10, 4e10, 3e10, 3.5e10], "loss": [3.0, 2.9, 2.95, 2.9],
                       "parent_run": [None, None, "a", "a"]})
    data = prepare(df)
    np.testing.assert_allclose(data.fraction, [0.5, 1.0, 3 / 3.5, 1.0])
    np.testing.assert_allclose(data.loading, [0.5, 1.0, 0.75, 0.875])
    np.testing.assert_allclose(data.run_tree_end, [4e10, 4e10])


def test_runs_of_one_branch_tree_share_their_offset_in_the_joint_density_and_in_draws():
    """Runs 0, 2, 3 form one tree (one offset u), run 1 its own: the summed per-run log densities equal the
    dense Gaussian of all their checkpoints with covariance a t t' between every two checkpoints of the
    tree (t, t' the offset's loadings on them)."""
    rng = np.random.default_rng(1)
    mask = np.ones((4, 5), dtype=bool)
    mask[2, 3:] = False
    x, eigvals, eigvecs = _padded_runs(rng, mask)
    a, b, c = np.full(4, 4e-4), rng.uniform(1e-5, 1e-4, 4), rng.uniform(1e-6, 1e-5, 4)
    tree = np.array([0, 1, 0, 0])
    before = ((tree[:, None] == tree[None, :]) & np.triu(np.ones((4, 4), bool), 1)).astype(float)
    loc = rng.normal(0, 0.01, (4, 5)) * mask
    y = (loc + rng.normal(0, 0.02, (4, 5))) * mask
    t = rng.uniform(0.3, 1.0, (4, 5))
    t[:, -1] = 1.0
    marginal = RunMarginal(jnp.asarray(loc), eigvals, eigvecs, mask, a, b, c, before, loading=t)
    got = np.asarray(marginal.log_prob(jnp.asarray(y)))
    slots = [(r, i) for r in range(4) for i in range(5) if mask[r, i]]
    cov = np.zeros((len(slots), len(slots)))
    for p_, (r, i) in enumerate(slots):
        for q, (s_, j) in enumerate(slots):
            cov[p_, q] = (a[r] * t[r, i] * t[s_, j] if tree[r] == tree[s_] else 0.0) + (
                b[r] * float(bridge_kernel(x[r, i], x[s_, j])) + (c[r] + JITTER) * (i == j) if r == s_ else 0.0)
    dense = stats.multivariate_normal(np.array([loc[r, i] for r, i in slots]), cov).logpdf(
        np.array([y[r, i] for r, i in slots]))
    assert got.sum() == pytest.approx(dense, rel=1e-10)
    # without the tree, runs 2 and 3 would carry offsets of their own: a different density
    alone = np.asarray(RunMarginal(jnp.asarray(loc), eigvals, eigvecs, mask, a, b, c, loading=t).log_prob(
        jnp.asarray(y)))
    assert abs(alone.sum() - dense) > 1e-3
    draws = np.asarray(marginal.sample(jax.random.PRNGKey(0), (40_000,)))
    # the last checkpoints (x = 1: no deviation, loading 1) of runs 0 and 3 covary by a; those of runs 0 and 1 do not
    ends = draws[:, :, 4] - loc[:, 4]
    assert np.cov(ends[:, 0], ends[:, 3])[0, 1] == pytest.approx(a[0], rel=0.05)
    assert abs(np.corrcoef(ends[:, 0], ends[:, 1])[0, 1]) < 0.02


def test_the_deviation_along_a_run_vanishes_at_its_end():
    x = np.array([0.2, 0.5, 0.9, 1.0])
    k = np.asarray(bridge_kernel(x[:, None], x[None, :]))
    assert k[-1].tolist() == [0.0, 0.0, 0.0, 0.0] and np.all(np.diag(k)[:-1] > 0)
    assert np.all(np.linalg.eigvalsh(k) > -1e-12)  # a covariance
    assert shape_basis(1.0).tolist() == [0.0] * SHAPE_DEGREE  # g_f(1) = 0: the law of final losses


@pytest.mark.parametrize("rho", [None, 0.3])
def test_pooled_log_density_matches_a_hand_computation(rho, monkeypatch):
    """rho None: the default, every offset grows from 0; 0.3: rho learnt (PRIORS["offset_start"] set),
    the offset loads by 0.3 + 0.7 x."""
    if rho is not None:
        monkeypatch.setitem(PRIORS, "offset_start", (1.0, 1.0))
    data = prepare(THREE_POINTS)
    y = np.log(THREE_POINTS["loss"].to_numpy())
    values = {
        "theta_shared": np.array([0.55, -1.1, -1.5, np.log(0.33), np.log(0.37)]),
        # sigma_obs 0.01, sigma_dev 0.02: the total sd along a run and the deviation's share of its variance
        "sigma_seed_shared": 0.015, "sigma_curve": np.array([np.hypot(0.01, 0.02)]), "dev_share_curve": np.array([0.8]),
        **({"offset_start_curve": np.array([rho])} if rho is not None else {}),
    }
    w = np.array([0.03, -0.01, 0.005])
    frame = family_frame(pooled_view(data), np.ones(()))  # the pooled theta is sampled in the data's frame
    values["theta_shared"] = np.asarray(frame(jnp.asarray(values["theta_shared"])))
    theta = np.asarray(frame.inv(jnp.asarray(values["theta_shared"])))
    # the model samples w + c, c the law's own curve along the runs in the shape basis: least squares
    # of the law's log loss on (-log x)^k / k! with one multiple of the offset's loading t = x per run (r2,
    # seen once, has no curve)
    x = np.array([0.4, 1.0, 1.0])  # r1 at 2e10 and 5e10 of its 5e10 tokens; r2 at its end
    basis = np.stack([(-np.log(x)) ** k / math.factorial(k) for k in (1, 2, 3)], axis=1)
    t = x[:2]
    basis[:2] -= np.outer(t, t @ basis[:2]) / (t @ t)
    basis[2] = 0.0
    law = hand_log_mean(theta, THREE_POINTS["params"].to_numpy(), THREE_POINTS["tokens"].to_numpy())
    values["shape_total"] = w + np.linalg.pinv(basis, rcond=1e-6) @ law
    got, _ = log_density(MODELS["complete"], (data,), {"y": jnp.asarray(y)}, {k: jnp.asarray(v) for k, v in values.items()})

    center, scale = prior_vector("center"), prior_vector("scale")
    expected = stats.norm.logpdf(theta, center, scale).sum()  # the frame's Jacobian is 1
    expected += stats.lognorm.logpdf(0.015, s=PRIORS["sigma_seed"][1], scale=PRIORS["sigma_seed"][0])
    expected += stats.rayleigh.logpdf(np.hypot(0.01, 0.02), scale=PRIORS["sigma_curve"])
    expected += stats.beta.logpdf(0.8, PRIORS["dev_share"], PRIORS["dev_share"])
    if rho is not None:
        expected += stats.beta.logpdf(rho, *PRIORS["offset_start"])
    expected += stats.norm.logpdf(w, 0.0, PRIORS["shape"]).sum()  # the shift by c has a unit Jacobian
    mean = law + sum(wk * (-np.log(x)) ** (k + 1) / math.factorial(k + 1) for k, wk in enumerate(w))
    # per run: offset (sigma_seed^2, constant seed scaling) loaded by rho + (1 - rho) x, deviation along the
    # run, checkpoint noise
    for rows in ([0, 1], [2]):
        xr = x[rows]
        load = (rho or 0.0) + (1 - (rho or 0.0)) * xr
        cov = (0.015**2 * np.outer(load, load) + 0.02**2 * np.asarray(bridge_kernel(xr[:, None], xr[None, :]))
               + (0.01**2 + JITTER) * np.eye(len(rows)))
        expected += stats.multivariate_normal(mean[rows], cov).logpdf(y[rows])
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_size_dependent_seed_sd_enters_the_run_covariance():
    data = prepare(THREE_POINTS.assign(params=[1e8, 1e8, 4e8]).assign(run=["r1", "r1", "r2"]))
    values = {"theta_shared": jnp.zeros(5), "sigma_seed_shared": 0.02, "sigma_curve": jnp.array([0.01]),
              "dev_share_curve": jnp.array([0.0]), "offset_start_curve": jnp.array([0.5]), "shape_total": jnp.zeros(3),
              "gamma_seed": 0.3}
    model = handlers.substitute(handlers.seed(MODELS["complete"], 0), data=values)
    trace = handlers.trace(model).get_trace(data, y=None, seed_scaling="size")
    marginal = trace["obs"]["fn"]
    expected = (0.02 * (np.exp(data.run_log_params) / SEED_N_REF) ** -0.3) ** 2
    np.testing.assert_allclose(np.asarray(marginal.seed_var), expected, rtol=1e-12)


def test_the_schedule_shape_moves_with_size_in_the_runs_mean(monkeypatch):
    """With curves at three sizes, a row's shape weights are w + v (log N - the family's mean log N): the
    runs' mean moves by basis(x) . v (log N - centre) when v moves, and not at a run's end (x = 1). Off
    by default (PRIORS["shape_size"] = 0: no site), on with a positive prior scale."""
    monkeypatch.setitem(PRIORS, "shape_size", 0.03)
    df = pd.DataFrame({"family": "f", "run": ["r1", "r1", "r2", "r2", "r3", "r3"],
                       "params": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9], "tokens": [2e10, 5e10] * 3,
                       "loss": [3.1, 2.9, 2.8, 2.6, 2.6, 2.4]})
    data = prepare(df)
    assert data.sized_curve_families.tolist() == [True]
    assert prepare(df[df["run"] != "r3"]).sized_curve_families.tolist() == [False]  # two sizes: no size term
    values = {"theta_shared": jnp.zeros(5), "sigma_seed_shared": 0.02, "sigma_curve": jnp.array([np.sqrt(2) * 0.01]),
              "dev_share_curve": jnp.array([0.5]), "offset_start_curve": jnp.array([0.5]), "shape_total": jnp.zeros(3)}
    z = np.array([0.02, -0.01, 0.005])

    def run_mean(size_total):  # v + c'_f is sampled (c'_f the law's own size term along the runs)
        model = handlers.substitute(handlers.seed(MODELS["complete"], 0), data={**values, "shape_size_total": size_total})
        return np.asarray(handlers.trace(model).get_trace(data, y=None)["obs"]["fn"].loc)

    moved = data.per_row(run_mean(jnp.asarray(z))[None])[0] - data.per_row(run_mean(jnp.zeros(3))[None])[0]
    log_n = np.log(df["params"].to_numpy())
    basis = np.asarray(shape_basis(df["tokens"].to_numpy() / 5e10))
    expected = basis @ z * (log_n - log_n.mean())
    np.testing.assert_allclose(moved, expected, rtol=1e-10, atol=1e-14)
    assert moved[1] == 0 and moved[0] != 0 and moved[4] != 0


@pytest.mark.parametrize("pooling", sorted(MODELS))
def test_variants_share_sites_and_sample_positive_exponents(pooling):
    data = prepare(pd.concat([THREE_POINTS, THREE_POINTS.assign(family="g", run=["s1", "s1", "s2"])]))
    trace = handlers.trace(handlers.seed(get_model(pooling), jax.random.PRNGKey(1))).get_trace(data)
    for site in ("theta", "alpha", "beta", "sigma_seed", "sigma_obs", "sigma_dev", "offset_start", "shape", "obs"):
        assert site in trace, f"{pooling} lacks site {site}"
    assert trace["theta"]["value"].shape == (2, 5)
    assert trace["shape"]["value"].shape == (2, SHAPE_DEGREE)
    assert trace["obs"]["value"].shape == (4, 2)  # (run, checkpoint): s1, s2 and r1, r2, padded
    assert np.all(np.asarray(trace["alpha"]["value"]) > 0) and np.all(np.asarray(trace["beta"]["value"]) > 0)


@pytest.mark.parametrize("pooling", sorted(MODELS))
def test_shape_sampled_with_the_law_curve_keeps_the_shape_prior(pooling):
    """The models sample w_f + c_f(theta_f) (the law's own curve along the runs added): w_f must still
    have its prior, Normal(w, tau_w) in the hierarchy, Normal(0, s) otherwise, whatever theta is."""
    from numpyro.infer import Predictive

    grid = pd.DataFrame({"family": np.repeat(["f", "g"], 12), "run": np.repeat([f"r{i}" for i in range(6)], 4),
                         "params": np.repeat([1e8, 3e8, 1e9, 1e8, 3e8, 1e9], 4),
                         "tokens": np.tile([2e9, 5e9, 1e10, 2e10], 6) * np.repeat([1, 3, 10, 1, 3, 10], 4)})
    data = prepare(grid)
    assert np.abs(data.along_run).sum() > 0  # the law's curve does enter
    draws = Predictive(MODELS[pooling], num_samples=4000)(jax.random.PRNGKey(3), data)
    w = np.asarray(draws["shape"])  # (draw, family, K)
    center = np.asarray(draws["shape_mu"])[:, None, :] if pooling == "hierarchical" else 0.0
    sd = PRIORS["tau_shape"] if pooling == "hierarchical" else PRIORS["shape"]
    z = ((w - center) / sd).reshape(len(w), -1)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.08)  # 4 se
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.05)
    beta = np.asarray(draws["beta"]).reshape(len(w), -1)[:, 0]
    assert abs(np.corrcoef(beta, z[:, 0])[0, 1]) < 0.06  # independent of the token exponent


def test_unknown_pooling_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown pooling 'partial'; valid: \['complete', 'hierarchical', 'none'\]"):
        get_model("partial")


def test_prior_predictive_losses_are_plausible():
    """The priors give losses of language models, not of anything: checked at the data's scales."""
    from numpyro.infer import Predictive

    grid = pd.DataFrame({"family": "f", "run": [f"r{i}" for i in range(9)],
                         "params": np.repeat([1e8, 1e9, 1e10], 3), "tokens": np.tile([1e10, 1e11, 1e12], 3)})
    data = prepare(grid)
    draws = Predictive(MODELS["hierarchical"], num_samples=2000)(jax.random.PRNGKey(0), data)["obs"]
    loss = np.exp(data.per_row(draws))
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
    assert abs(float(jnp.linalg.det(jac))) == pytest.approx(1.0, rel=1e-12)
    assert np.all(np.asarray(frame.log_abs_det_jacobian(theta, frame(theta))) == 0.0)
    # psi's first coordinates: the law's log loss at the family's mean log N and log D, and the log slope
    # -dL/dlog N of its N-term there
    e, a_ref, b_ref, log_alpha, log_beta = np.asarray(theta[0])
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    log_n, log_d = data.family_log_params[0], data.family_log_tokens[0]
    t_a = np.exp(a_ref + alpha * np.log(N_REF) - alpha * log_n)
    t_b = np.exp(b_ref + beta * np.log(D_REF) - beta * log_d)
    psi = np.asarray(frame(theta)[0])
    assert psi[0] == pytest.approx(np.log(np.exp(e) + t_a + t_b), rel=1e-12)
    assert psi[1] == pytest.approx(np.log(alpha * t_a), rel=1e-12)
    # and it maps the E -> 0 corner to finite coordinates (no bound: E > 0 is built in)
    corner = theta.at[0, 0].set(-30.0)
    assert np.all(np.isfinite(np.asarray(frame(corner)))) and float(frame.inv(frame(corner))[0, 0]) == pytest.approx(-30.0)


def test_a_family_at_one_size_is_centred_in_its_frame_and_non_centred_without_one():
    # f is seen at one size, g at three: under chinchilla (a family frame) both are centred, theta_f the
    # frame's inverse of the sampled coordinates; under su2024 (no frame) f is mu + diag(tau) L z_f
    g = pd.DataFrame({"family": "g", "run": ["g1", "g2", "g3"], "params": [1e8, 4e8, 1.6e9], "tokens": 5e10,
                      "loss": [3.0, 2.8, 2.6]})
    table = pd.concat([THREE_POINTS, g], ignore_index=True)
    data = prepare(table)
    assert data.family_sizes.tolist() == [1, 3] and centered_families(data).tolist() == [True, True]
    trace = handlers.trace(handlers.seed(MODELS["hierarchical"], 1)).get_trace(data)
    raw, theta = np.asarray(trace["theta_raw"]["value"]), np.asarray(trace["theta"]["value"])
    np.testing.assert_allclose(theta, np.asarray(family_frame(data, np.ones(2)).inv(jnp.asarray(raw))), rtol=1e-10)

    steps = prepare(table.assign(batch_size=1024.0), form="su2024")
    assert centered_families(steps).tolist() == [False, True]
    trace = handlers.trace(handlers.seed(MODELS["hierarchical"], 1)).get_trace(steps)
    mu, tau = np.asarray(trace["mu"]["value"]), np.asarray(trace["tau"]["value"])
    tril = tau[:, None] * np.asarray(trace["corr_chol"]["value"])
    raw, theta = np.asarray(trace["theta_raw"]["value"]), np.asarray(trace["theta"]["value"])
    np.testing.assert_allclose(theta[0], mu + tril @ raw[0], rtol=1e-10)
    np.testing.assert_allclose(theta[1], raw[1], rtol=1e-10)


def test_sigma_seed_is_a_familys_own_only_where_replicated_runs_measure_it_and_curve_noise_only_where_runs_have_curves():
    # family f has two runs of one configuration (seeds); family g has one run per size; h final losses only
    seeds = pd.DataFrame({"family": "f", "run": ["s1", "s1", "s2", "s2"], "params": 1e8,
                          "tokens": [2e10, 5e10, 2e10, 5e10], "loss": [3.1, 2.9, 3.12, 2.91]})
    lone = pd.DataFrame({"family": "g", "run": ["g1", "g1", "g2", "g2"], "params": [1e8, 1e8, 4e8, 4e8],
                         "tokens": [2e10, 5e10, 2e10, 5e10], "loss": [3.0, 2.8, 2.7, 2.5]})
    finals = pd.DataFrame({"family": "h", "run": ["h1", "h2"], "params": [1e8, 4e8], "tokens": 5e10, "loss": [2.9, 2.6]})
    data = prepare(pd.concat([seeds, lone, finals]))
    assert data.replicated_families.tolist() == [True, False, False]
    assert data.curve_families.tolist() == [True, True, False]
    trace = handlers.trace(handlers.seed(MODELS["hierarchical"], 0)).get_trace(data)
    sigma_seed = np.asarray(trace["sigma_seed"]["value"])
    assert trace["log_sigma_seed_z"]["value"].shape == (1,)  # f alone has its own
    shared = float(trace["sigma_seed_shared"]["value"])
    own = shared * np.exp(float(trace["tau_seed"]["value"]) * float(trace["log_sigma_seed_z"]["value"][0]))
    assert sigma_seed[0] == pytest.approx(own)
    assert sigma_seed[0] != pytest.approx(shared)
    np.testing.assert_allclose(sigma_seed[1:], shared)  # g and h: the shared value
    assert trace["sigma_curve"]["value"].shape == (2,)
    assert float(trace["sigma_obs"]["value"][2]) == 0.0 and float(trace["sigma_dev"]["value"][2]) == 0.0
    # a family without curves carries the population's shape (it never enters its likelihood: x = 1)
    np.testing.assert_allclose(trace["shape"]["value"][2], trace["shape_mu"]["value"])
