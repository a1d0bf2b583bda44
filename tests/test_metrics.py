import numpy as np
import pytest

from bayeslaw.metrics import are


def test_are_is_mean_absolute_relative_error():
    assert are([2.0, 4.0], [2.2, 3.0]) == pytest.approx((0.1 + 0.25) / 2)
    assert are(np.ones(3), np.ones(3)) == 0.0


def test_are_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        are([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no points"):
        are([], [])
