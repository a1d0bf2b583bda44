"""Behaviour pinned: each pinned model's log density and gradient at fixed points equal the stored ones
(tests/golden/models.npz).

A refactor that keeps a model keeps its density everywhere; rerun ``tests/golden/make_golden.py`` only
for a change meant to alter a model, and say so in its commit. (Sampled draws are pinned per machine by
``tests/test_nuts.py::test_same_seed_same_draws``: a NUTS path depends on the last bit of every float
operation, which differs between CPUs.)
"""

import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"


def _make():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    return make


@pytest.mark.parametrize("case", ["chinchilla_hierarchical", "annealing_trees"])
def test_each_pinned_model_has_the_stored_density_and_gradient(case):
    make = _make()
    stored = np.load(GOLDEN / "models.npz")
    arrays = {key.split("/", 1)[1]: stored[key] for key in stored.files if key.startswith(case + "/")}
    assert arrays, f"no stored arrays for {case}"
    model, data, y = make.model_and_data(*make.CASES[case])
    for point in range(make.POINTS):
        z = {key.rsplit("/", 1)[1]: jnp.asarray(value) for key, value in arrays.items() if key.startswith(f"{point}/z/")}
        energy, grad = make.potential_and_grad(model, data, y, z)
        assert energy == pytest.approx(float(arrays[f"{point}/potential"]), rel=1e-9, abs=1e-9), f"{case}, point {point}"
        for name, value in grad.items():
            np.testing.assert_allclose(value, arrays[f"{point}/grad/{name}"], rtol=1e-7, atol=1e-9,
                                       err_msg=f"{case}, point {point}: d/d{name}")
