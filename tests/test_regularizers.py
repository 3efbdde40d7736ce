"""Regularizers: penalties against their formulas, gradients, lookups and configs."""

import numpy as np
import pytest

import ember as em
from ember import regularizers as R
from ember.errors import EmberTypeError, EmberValueError

W = np.array([[1.0, -2.0], [0.5, 0.0]])


def test_penalties_match_keras_formulas():
    assert R.L1(0.1)(W).item() == pytest.approx(0.1 * 3.5)
    assert R.L2(0.1)(W).item() == pytest.approx(0.1 * 5.25)  # no 1/2 factor, as Keras
    assert R.L1L2(0.1, 0.2)(W).item() == pytest.approx(0.1 * 3.5 + 0.2 * 5.25)
    assert R.L1L2()(W).item() == 0.0


def test_keras_default_factors():
    assert R.get("l1").l1 == 0.01 and R.get("l2").l2 == 0.01
    assert (R.L1L2().l1, R.L1L2().l2) == (0.0, 0.0)


def test_penalty_is_a_differentiable_scalar_of_the_weight_dtype(float64):
    w = em.Parameter(W + 0.1)
    p = R.L1L2(0.3, 0.7)(w)
    assert p.shape == () and p.dtype == np.float64
    assert em.gradcheck(R.L1L2(0.3, 0.7), [em.tensor(W + 0.1, requires_grad=True)])
    p.backward()
    np.testing.assert_allclose(w.grad, 0.3 * np.sign(W + 0.1) + 1.4 * (W + 0.1))


def test_float32_weights_give_float32_penalties():
    assert R.L2()(em.Parameter(W.astype(np.float32))).dtype == np.float32


def test_get_serialize_round_trip():
    for reg in (R.L1(0.2), R.L2(0.3), R.L1L2(0.1, 0.4)):
        again = R.get(R.serialize(reg))
        assert type(again) is type(reg) and again.get_config() == reg.get_config()
    assert R.get(None) is None and R.serialize(None) is None
    assert isinstance(R.get("l1_l2"), R.L1L2)

    def custom(w):
        return w.sum()

    assert R.get(custom) is custom


def test_bad_identifiers_and_factors_are_rejected():
    with pytest.raises(EmberValueError, match="l3"):
        R.get("l3")
    with pytest.raises(EmberTypeError, match="regularizer"):
        R.get(5)
    with pytest.raises(EmberValueError, match="l2 must be >= 0, received l2=-1"):
        R.L2(-1)
