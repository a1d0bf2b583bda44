import numpy as np
import pytest

from bayeslaw.metrics import are, crps


def test_are_is_mean_absolute_relative_error():
    assert are([2.0, 4.0], [2.2, 3.0]) == pytest.approx((0.1 + 0.25) / 2)
    assert are(np.ones(3), np.ones(3)) == 0.0


def test_are_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        are([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no points"):
        are([], [])


def test_crps_matches_its_definition_and_rewards_sharp_correct_forecasts():
    rng = np.random.default_rng(0)
    draws = rng.normal(3.0, 0.1, size=(400, 2))
    y = np.array([3.0, 3.5])
    brute = [np.mean(np.abs(draws[:, j] - y[j])) - 0.5 * np.mean(np.abs(draws[:, j][:, None] - draws[:, j][None, :]))
             for j in range(2)]
    np.testing.assert_allclose(crps(draws, y), brute, rtol=1e-12)
    # a normal's closed form: sigma (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)); z = 0 gives 0.1 * 0.2337
    assert crps(draws, y)[0] == pytest.approx(0.1 * (2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi)), rel=0.1)
    assert crps(draws, y)[1] > crps(draws, y)[0]
    # a point forecast (every draw equal) scores its absolute error
    assert crps(np.full((5, 1), 2.0), np.array([2.5]))[0] == pytest.approx(0.5)
