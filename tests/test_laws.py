import jax.numpy as jnp
import numpy as np
import pytest

from bayeslaw.laws import CHINCHILLA, get_law


def test_chinchilla_matches_the_formula():
    natural = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    theta = {k: jnp.asarray(v) for k, v in CHINCHILLA.from_natural(natural).items()}
    params, tokens = np.array([7e10, 1e9]), np.array([1.4e12, 2e10])
    expected = natural["E"] + natural["A"] / params ** natural["alpha"] + natural["B"] / tokens ** natural["beta"]
    np.testing.assert_allclose(CHINCHILLA.loss(theta, params=params, tokens=tokens), expected, rtol=1e-12)
    back = CHINCHILLA.natural(CHINCHILLA.from_natural(natural))
    assert back == pytest.approx(natural)


def test_published_grid_has_4500_starts():
    grid = CHINCHILLA.grid()
    assert grid.shape == (6 * 6 * 5 * 5 * 5, 5)
    assert set(np.unique(grid[:, CHINCHILLA.theta_names.index("e")])) == {-1.0, -0.5, 0.0, 0.5, 1.0}


def test_unknown_form_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown form 'kaplam'; known forms: \['annealing', 'chinchilla', 'compute', 'kaplan', 'kaplan_e', 'multipower', 'su2024'\]"):
        get_law("kaplam")
