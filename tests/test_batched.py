"""Many NUTS fits as one program (bayeslaw.inference.batched) against one fit at a time."""

import numpy as np
import pytest
from numpyro.infer import log_likelihood

from bayeslaw.inference.batched import fit_many, structure
from bayeslaw.inference.config import FitConfig
from bayeslaw.inference.nuts import fit, prepare_fit
from bayeslaw.models import get_model
from bayeslaw.simulation import simulate

TINY = {"chains": 2, "draws": 8, "warmup": 8, "thin": None, "min_tokens": None}
# fit_many's program reads a table as arguments and fit's as constants: the same arithmetic up to
# floating-point order, whose last bits NUTS amplifies along its trajectories by an amount that depends on the
# compiled code (theta 4e-11 apart after 16 iterations here, 4e-7 with XLA's backend at optimisation level 0).
# Another key, start, padding or density moves the draws by order 1: the tolerance sits between the two.
ACROSS_PROGRAMS = 1e-5
DESIGN = {"families": 2, "sizes": (1e8, 4e8, 1.6e9), "seeds": 2, "checkpoints": 6, "first_tokens": 1e10,
          "max_tokens": 1e11}


@pytest.fixture(scope="module")
def tables():
    full = simulate(seed=1, **DESIGN).data
    # the same design with each run's first two checkpoints missing: fewer rows and narrower runs (padded)
    late = simulate(seed=2, **DESIGN).data
    late = late[late.groupby("run")["tokens"].rank(method="first") > 2]
    # another structure: three families
    wider = simulate(seed=3, **{**DESIGN, "families": 3}).data
    return [full, late, wider]


@pytest.fixture(scope="module")
def batched(tables):
    return fit_many(tables[:2], seeds=[5, 6], **TINY)  # one structure: one program, one compilation


def test_a_batched_fit_has_the_draws_of_its_own_fit(tables, batched):
    """A table's batched fit is the fit of that table alone (NumPyro's NUTS with vectorized chains, the
    same seed), up to floating-point order (ACROSS_PROGRAMS)."""
    for i in (0,):  # fitted beside the padded table
        one = fit(tables[i], seed=5 + i, chain_method="vectorized", progress=False, **TINY)
        many = batched[i]
        assert many.families == one.families and many.runs == one.runs
        for name in ("theta", "sigma_seed", "sigma_obs", "shape"):
            np.testing.assert_allclose(many.site_draws(name), one.site_draws(name), atol=ACROSS_PROGRAMS,
                                       err_msg=name)
        np.testing.assert_array_equal(many.idata.sample_stats["n_steps"].values, one.idata.sample_stats["n_steps"].values)
        np.testing.assert_allclose(many.idata.log_likelihood["obs"].values, one.idata.log_likelihood["obs"].values,
                                   rtol=ACROSS_PROGRAMS)
        np.testing.assert_allclose(many.idata.posterior_predictive["obs"].values,
                                   one.idata.posterior_predictive["obs"].values, atol=ACROSS_PROGRAMS)
        assert many.config["chain_method"] == "vectorized" and many.config["seed"] == 5 + i
        assert many.idata.attrs["bayeslaw_target_accept"] == one.idata.attrs["bayeslaw_target_accept"]
        assert many.idata.attrs["bayeslaw_sampled_sites"] == one.idata.attrs["bayeslaw_sampled_sites"]


def test_padding_leaves_the_density_unchanged(tables, batched):
    """The table with fewer rows and checkpoints per run was padded to its neighbour's shape: the log
    likelihood per run the program computed on padded arrays is its own model's at the same draws (NUTS
    itself amplifies the last bit of a density into other draws, so the draws are not compared)."""
    prepared = prepare_fit(tables[1], FitConfig(**TINY))
    many = batched[1]
    assert many.idata.posterior_predictive.sizes["obs_id"] == len(prepared.y) < len(tables[0])
    samples = {name: many.site_draws(name) for name in many.idata.attrs["bayeslaw_sampled_sites"].split(",")}
    own = log_likelihood(get_model(prepared.config.pooling), samples, prepared.data, y=prepared.y,
                         seed_scaling="constant")["obs"]
    np.testing.assert_allclose(many.idata.log_likelihood["obs"].values.reshape(own.shape), own, rtol=1e-9)
    assert np.ptp(own) > 1.0  # the draws differ: the check compares densities at many points


def test_structure_groups_what_one_program_can_sample(tables):
    config = FitConfig(**TINY)
    full, late, wider = (structure(prepare_fit(t, config)) for t in tables)
    assert full == late  # row counts and checkpoints per run are padded, not structure
    assert full != wider


def test_tables_of_one_structure_share_a_program_split_evenly(tables, monkeypatch):
    import bayeslaw.inference.batched as batched_module

    calls = []

    def record(batch, key, size, options, devices, starts=None):
        calls.append(([p.config.seed for p in batch], size))
        return [p.config.seed for p in batch], [None] * len(batch)

    monkeypatch.setattr(batched_module, "_sample_batch", record)
    monkeypatch.setattr(batched_module, "sample_fit", lambda prepared: -prepared.config.seed)
    order = [tables[0], tables[2], tables[1], tables[0], tables[0]]
    out = fit_many(order, seeds=[10, 11, 12, 13, 14], batch_size=3, retry_target_accept=None, **TINY)
    assert out == [10, -11, 12, 13, 14]  # each table's fit in the order given
    # four tables of one structure in batches of at most 3: two programs of 2 (one shape); the other alone,
    # through NumPyro's MCMC
    assert sorted(calls) == [([10, 12], 2), ([13, 14], 2)]


def test_a_structure_of_its_own_is_fitted_as_bayeslaw_fit_with_vectorised_chains(tables):
    (alone,) = fit_many(tables[2:], seeds=[7], **TINY)
    one = fit(tables[2], seed=7, chain_method="vectorized", extend=0, progress=False, **TINY)
    np.testing.assert_array_equal(alone.site_draws("theta"), one.site_draws("theta"))
    assert alone.config == one.config


def test_fit_many_names_the_table_that_cannot_be_fitted(tables):
    with pytest.raises(ValueError, match=r"fit_many: table 1: fit: 0 row\(s\) left"):
        fit_many([tables[0], tables[0].iloc[:0]], **TINY)
    with pytest.raises(ValueError, match="2 seeds for 1 tables"):
        fit_many(tables[:1], seeds=[1, 2], **TINY)


def test_a_fit_that_diverges_is_sampled_again_at_the_retry_acceptance_in_fit_and_in_fit_many(tables):
    """At target_accept 0.3 after 8 warmup iterations NUTS diverges; the fit is then sampled again from its
    start and key at retry_target_accept: bit for bit the draws of a fit asked for at that acceptance straight
    away, in fit and in fit_many (whose diverging fits are sampled again as one more program of its shape)
    alike. Each against its own kind: fit_many's program is fit's potential on padded arrays, the same up to
    floating-point order, which NUTS amplifies over the draws by a machine's own amount (1e-11 on one, 4e-7
    on another); test_a_batched_fit_has_the_draws_of_its_own_fit compares the two kinds."""
    from bayeslaw.inference.nuts import retry_accept

    config = FitConfig(**TINY, target_accept=0.3, retry_target_accept=0.95)
    assert retry_accept(config, {"diverging": np.array([[False, True]])}) == 0.95
    assert retry_accept(config, {"diverging": np.zeros((2, 8), bool)}) is None
    assert retry_accept(FitConfig(**TINY, target_accept=0.96, retry_target_accept=0.95),
                        {"diverging": np.ones((2, 8), bool)}) is None  # not above the first run's
    table = tables[0][tables[0]["family"] == tables[0]["family"].iloc[0]]  # one family: a smaller program
    options = {**TINY, "chain_method": "vectorized", "extend": 0, "progress": False}
    direct = fit(table, seed=4, target_accept=0.95, retry_target_accept=None, **options)
    retried = fit(table, seed=4, target_accept=0.3, retry_target_accept=0.95, **options)
    assert retried.idata.attrs["bayeslaw_target_accept"] == 0.95  # its first run diverged
    np.testing.assert_array_equal(retried.site_draws("theta"), direct.site_draws("theta"))
    assert retried.config["target_accept"] == 0.3  # the configuration refits the same way
    many = fit_many([table, table], seeds=[4, 5], target_accept=0.3, retry_target_accept=0.95, **TINY)
    assert many[0].idata.attrs["bayeslaw_target_accept"] == 0.95
    straight = fit_many([table, table], seeds=[4, 5], target_accept=0.95, retry_target_accept=None, **TINY)
    np.testing.assert_array_equal(many[0].site_draws("theta"), straight[0].site_draws("theta"))
