"""Behaviour pinned: a fixed-seed small fit's posterior arrays equal the stored ones (tests/golden/).

A refactor that keeps the model keeps every draw; rerun ``tests/golden/make_golden.py`` only for a
change meant to alter the sampled model, and say so in its commit.
"""

from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", ["chinchilla_hierarchical"])
def test_fixed_seed_fit_reproduces_the_stored_posterior(case):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    stored = np.load(GOLDEN / "fits.npz")
    expected = {key.split("/", 1)[1]: stored[key] for key in stored.files if key.startswith(case + "/")}
    assert expected, f"no stored arrays for {case}"
    got = make.posterior_arrays(*make.CASES[case])
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-9, atol=1e-12, err_msg=f"{case}: {name}")
