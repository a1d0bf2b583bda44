"""fit_many's checks of its arguments, its warnings naming the table, and its convergence warning."""

import warnings
from types import SimpleNamespace

import jax
import numpy as np
import pytest

import bayeslaw.inference.batched as batched_module
from bayeslaw.inference.batched import fit_many
from bayeslaw.inference.nuts import ConvergenceWarning, Fit, fit
from bayeslaw.simulation import simulate
from test_batched import ACROSS_PROGRAMS, DESIGN, TINY  # the same tiny fits, design and tolerance


@pytest.fixture(scope="module")
def tables():
    full = simulate(seed=1, **DESIGN).data
    wider = simulate(seed=3, **{**DESIGN, "families": 3}).data  # another structure
    return full, wider


class _Stub(Fit):
    """A fit as the stubbed sampler returns it: its seed, and whether its diagnostics pass."""

    def __init__(self, seed: int, converged: bool):
        self.seed, self.converged = seed, converged
        self.idata = SimpleNamespace(posterior=SimpleNamespace(sizes={"chain": 2, "draw": 8}))

    def diagnostics(self, *, warn=True):
        messages = [] if self.converged else [f"r-hat 1.5 > 1.01 (seed {self.seed})"]
        return SimpleNamespace(warning=bool(messages), messages=messages)


@pytest.fixture
def stubbed(monkeypatch):
    """No sampling: a batch's fits and a lone fit are stubs, converged where their seed is even."""
    def sample_batch(batch, key, size, options, devices, starts=None):
        return [_Stub(p.config.seed, p.config.seed % 2 == 0) for p in batch], [None] * len(batch)

    monkeypatch.setattr(batched_module, "_sample_batch", sample_batch)
    monkeypatch.setattr(batched_module, "_retried", lambda batch, fits, *args: fits)
    monkeypatch.setattr(batched_module, "sample_fit", lambda p: _Stub(p.config.seed, p.config.seed % 2 == 0))


def test_unconverged_fits_are_named_in_one_convergence_warning(tables, stubbed):
    full, wider = tables
    order = [full, wider, full, full, full]  # wider: a structure of its own (fitted alone)
    with pytest.warns(ConvergenceWarning) as caught:
        out = fit_many(order, seeds=[10, 11, 12, 13, 15], retry_target_accept=None, **TINY)
    assert [f.seed for f in out] == [10, 11, 12, 13, 15]
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("fit_many: not converged: fit(s) [1, 3, 4] of 5 (2 chains x 8 draws): ")
    assert "fit 1: r-hat 1.5 > 1.01 (seed 11); fit 3: r-hat" in messages[0] and "fit 0:" not in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # every fit converged: no warning
        fit_many([full, full], seeds=[2, 4], retry_target_accept=None, **TINY)


def test_a_real_unconverged_batch_warns_once_and_is_fit_s_draws_with_one_chain(tables):
    """Two one-family tables (one program) and a table of its own structure (fitted alone by NumPyro's MCMC,
    whose own "fit: not converged" is folded into fit_many's one warning); one chain of 8 draws: none
    converges. With one chain NumPyro's MCMC does not split the fit's key: neither does the program."""
    full, _ = tables
    one = full[full["family"] == full["family"].iloc[0]]
    late = one[one.groupby("run")["tokens"].rank(method="first") > 2]
    other = one[one["params"] < one["params"].max()]  # fewer runs: another structure
    options = {**TINY, "chains": 1, "retry_target_accept": None}
    with pytest.warns(ConvergenceWarning) as caught:
        out = fit_many([one, other, late], seeds=[3, 4, 5], **options)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1 and messages[0].startswith("fit_many: not converged: fit(s) [0, 1, 2] of 3 (1 chains")
    # as fit(..., extend=0) records it: the batched fits too
    assert [f.idata.attrs.get("bayeslaw_extensions") for f in out] == [0, 0, 0]
    assert [f.config["seed"] for f in out] == [3, 4, 5]
    alone = fit(one, seed=3, chain_method="vectorized", extend=0, progress=False, **options)  # not padded
    np.testing.assert_allclose(out[0].site_draws("theta"), alone.site_draws("theta"), atol=ACROSS_PROGRAMS)


@pytest.mark.parametrize("bad, error, match", [
    ({"batch_size": True}, ValueError, r"fit_many: batch_size=True: need a whole number >= 1"),
    ({"batch_size": 1.5}, ValueError, r"batch_size=1\.5"),
    ({"batch_size": "2"}, ValueError, r"batch_size='2'"),
    ({"batch_size": None}, ValueError, r"batch_size=None"),
    ({"devices": 0}, ValueError, r"fit_many: devices=0: need a whole number from 1 to"),
    ({"devices": -1}, ValueError, r"devices=-1"),
    ({"devices": 1.5}, ValueError, r"devices=1\.5"),
    ({"seeds": [1.5, 2]}, ValueError, r"fit_many: seeds\[0\]=1\.5: need a whole number >= 0"),
    ({"seeds": [1, 2.0]}, ValueError, r"seeds\[1\]=2\.0"),
    ({"seeds": [0, True]}, ValueError, r"seeds\[1\]=True"),
    ({"seeds": "12"}, TypeError, r"fit_many: seeds='12': need a list of whole numbers"),
    ({"seeds": 3}, TypeError, r"fit_many: seeds=3: need a list"),
    ({"seeds": [1, 2], "seed": 7}, ValueError, r"fit_many: seed=7 and seeds: .* pass one of them"),
])
def test_bad_options_are_one_line_errors_naming_the_option(tables, stubbed, bad, error, match):
    full, _ = tables
    with pytest.raises(error, match=match) as raised:
        fit_many([full, full], **{**TINY, **bad})
    assert "\n" not in str(raised.value)


def test_more_devices_than_jax_has_is_refused_before_sampling(tables, stubbed):
    with pytest.raises(ValueError, match=rf"devices={jax.local_device_count() + 1}: .* to {jax.local_device_count()}"):
        fit_many([tables[0], tables[0]], devices=jax.local_device_count() + 1, **TINY)


def test_tables_must_be_a_list_not_one_table(tables, stubbed):
    full, _ = tables
    # a DataFrame iterates over its column names: it was read as tables "family", "run", ...
    with pytest.raises(TypeError, match=r"fit_many: tables=DataFrame: need a list of DataFrames; for one table pass"):
        fit_many(full, **TINY)
    out = fit_many((t for t in (full, full)), seeds=[2, 4], **TINY)  # any iterable of tables
    assert [f.seed for f in out] == [2, 4]


def test_options_are_checked_even_without_tables():
    with pytest.raises(ValueError, match="unknown pooling 'partial'"):
        fit_many([], pooling="partial")
    with pytest.raises(ValueError, match="batch_size=0"):
        fit_many([], batch_size=0)
    assert fit_many([]) == []


def test_a_tables_warning_names_the_table(tables, stubbed):
    full, _ = tables
    first = full["run"].iloc[0]
    short = full.assign(tokens=np.where(full["run"] == first, full["tokens"] / 100, full["tokens"]))
    with pytest.warns(UserWarning, match=r"^fit_many: table 1: fit: the early cut .* left out 1 of") as caught:
        fit_many([full, short], seeds=[2, 4], **{**TINY, "min_tokens": 5e9})
    assert not any("table 0" in str(w.message) for w in caught)


def test_a_start_that_fails_names_its_table(tables, monkeypatch):
    """A start with a non-finite potential (check_start's RuntimeError), in a program's second fit and in a
    fit of its own structure: the error names the table, not a position in a batch or nothing."""
    full, wider = tables
    one = full[full["family"] == full["family"].iloc[0]]  # a smaller program
    real, calls = batched_module.check_start, []

    def check_start(value, grad, z):
        calls.append(1)
        if len(calls) == 2:
            # the second fit: table 2
            raise RuntimeError("fit: the start has a non-finite potential or gradient (potential nan)")
        real(value, grad, z)

    def sample_fit(prepared):  # alone: the second table's start fails
        if prepared.config.seed == 2:
            raise RuntimeError("fit: the start has a non-finite potential or gradient (potential inf)")

    monkeypatch.setattr(batched_module, "check_start", check_start)
    monkeypatch.setattr(batched_module, "sample_fit", sample_fit)
    with pytest.raises(RuntimeError, match=r"^fit_many: table 2: fit: the start has a non-finite potential .*nan"):
        fit_many([one, wider, one, one], seeds=[1, 2, 3, 4], **TINY)  # one batch: tables 0, 2, 3
    with pytest.raises(RuntimeError, match=r"^fit_many: table 1: fit: the start has a non-finite potential .*inf"):
        fit_many([one, wider], seeds=[1, 2], **TINY)
