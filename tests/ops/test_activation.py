"""Activations: numerical stability at extreme inputs, and gelu without SciPy."""

import math
import sys
import warnings

import numpy as np

import ember as em
from ember import ops


def test_sigmoid_softplus_softmax_stay_finite_and_quiet_at_extremes():
    x = em.tensor([[-1000.0, 0.0, 1000.0]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        outs = [ops.sigmoid(x), ops.softplus(x), ops.softmax(x), ops.log_softmax(x)]
        sum(o.sum() for o in outs[:2]).backward()
    for o in outs:
        assert np.all(np.isfinite(o.numpy()))
    np.testing.assert_allclose(outs[0].numpy(), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(outs[1].numpy(), [[0.0, math.log(2.0), 1000.0]])
    np.testing.assert_allclose(outs[3].numpy(), [[-2000.0, -1000.0, 0.0]])
    # d/dx [sigmoid + softplus] = sigmoid (1 - sigmoid) + sigmoid
    np.testing.assert_allclose(x.grad, [[0.0, 0.25 + 0.5, 0.0 + 1.0]])


def test_gelu_falls_back_to_math_erf_without_scipy(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # makes the import fail
    a = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    y = ops.gelu(em.tensor(a, dtype=np.float64))
    expected = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in a]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


def test_activation_options_given_as_numpy_floats_do_not_upcast():
    x = em.tensor([-1.0, 2.0], requires_grad=True)
    for y in (
        ops.leaky_relu(x, np.float64(0.1)),
        ops.elu(x, np.float64(0.5)),
        ops.swish(x, np.float64(1.5)),
    ):
        assert y.dtype == np.float32
