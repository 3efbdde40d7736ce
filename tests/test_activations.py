"""Activation functions: values against NumPy transcriptions of their formulas, gradcheck in
float64, dtype preservation and the get/serialize lookups."""

import math

import numpy as np
import pytest
from scipy.special import erf

import ember as em
from ember import activations as A
from ember.errors import EmberTypeError, EmberValueError

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


REFERENCE = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
    "sigmoid": _sig,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "swish": lambda x: x * _sig(x),
    "silu": lambda x: x * _sig(x),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "linear": lambda x: x,
}

# values kept away from the kinks (0, +-3) so central differences are exact enough
X = np.array([[-4.1, -2.5, -0.7, -0.2], [0.3, 0.9, 2.2, 4.4]])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_matches_its_formula(name):
    out = A.get(name)(em.tensor(X, dtype=np.float64))
    np.testing.assert_allclose(out.data, REFERENCE[name](X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(set(REFERENCE) - {"linear"}))
def test_activation_gradcheck_float64(name, float64):
    x = em.tensor(X, requires_grad=True)
    assert em.gradcheck(A.get(name), [x])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_keeps_float32(name):
    out = A.get(name)(np.asarray(X, dtype=np.float32))
    assert out.dtype == np.float32


def test_swish_takes_beta():
    out = A.swish(em.tensor(X, dtype=np.float64), beta=1.7)
    np.testing.assert_allclose(out.data, X * _sig(1.7 * X), rtol=1e-12)


def test_relu_options_follow_keras():
    x = em.tensor(X, dtype=np.float64)
    out = A.relu(x, negative_slope=0.1, max_value=2.0, threshold=0.5)
    expected = np.where(X >= 2.0, 2.0, np.where(X >= 0.5, X, 0.1 * (X - 0.5)))
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_relu_options_gradcheck(float64):
    x = em.tensor(X, requires_grad=True)
    assert em.gradcheck(lambda t: A.relu(t, 0.1, 2.0, 0.5), [x])


def test_gelu_tanh_approximation():
    out = A.gelu(em.tensor(X, dtype=np.float64), approximate=True)
    c = math.sqrt(2 / math.pi)
    np.testing.assert_allclose(out.data, 0.5 * X * (1 + np.tanh(c * (X + 0.044715 * X**3))))


def test_softmax_on_another_axis():
    out = A.softmax(em.tensor(X, dtype=np.float64), axis=0)
    np.testing.assert_allclose(out.data, _softmax(X.T).T, rtol=1e-12)


def test_get_and_serialize():
    assert A.get(None) is A.linear
    assert A.get("ReLU") is A.relu

    def custom(x):
        return x

    assert A.get(custom) is custom
    for name in REFERENCE:
        assert A.get(A.serialize(A.get(name))) is A.get(name)
    assert A.serialize(None) == "linear"
    assert A.serialize(custom) == "custom"


def test_get_rejects_unknown_names_and_non_callables():
    with pytest.raises(EmberValueError, match="rellu"):
        A.get("rellu")
    with pytest.raises(EmberTypeError, match="activation"):
        A.get(3)
