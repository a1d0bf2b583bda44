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


@pytest.mark.parametrize("name", ["chinchilla", "kaplan", "kaplan_e"])
def test_a_law_solved_for_its_tokens_inverts_the_law(name):
    """D(L; N) puts the law back on L, a loss at or below the law's floor is never reached, and more tokens
    are needed for a lower loss."""
    law = get_law(name)
    rng = np.random.default_rng(0)
    from bayeslaw.models import get_parameterization

    spec = get_parameterization(name)
    theta = {k: np.asarray(v)[:, None] for k, v in spec.to_law(
        spec.vector("center") + 0.3 * spec.vector("scale") * rng.standard_normal((50, len(spec.names)))).items()}
    params = np.array([[1e8, 1e9, 1e10]])
    answers = law.data_to_loss
    floor = answers.minimum_loss(theta, params)
    losses = floor * 1.05, floor * 1.2
    tokens = [answers.tokens_to_loss(theta, params, loss) for loss in losses]
    for loss, d in zip(losses, tokens, strict=True):
        ok = np.isfinite(d) & (d > 0) & (d < 1e30)
        assert ok.mean() > 0.9
        back = np.exp(np.asarray(law.log_loss({k: np.broadcast_to(v, d.shape) for k, v in theta.items()},
                                              params=np.broadcast_to(params, d.shape), tokens=np.where(ok, d, 1.0))))
        np.testing.assert_allclose(back[ok], loss[ok], rtol=1e-9)
    assert (tokens[0] >= tokens[1]).all()
    assert np.isinf(answers.tokens_to_loss(theta, params, floor)).all()
    assert np.isinf(answers.tokens_to_loss(theta, params, floor * 0.99)).all()
