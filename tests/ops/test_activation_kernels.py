"""ops/activation.py's ReLU with its compiled kernels (ember/ops/kernels/activation.py) against
the NumPy path (kernels switched off) and the definition: large float32/float64 arrays, zeros
and NaN, element ranges, and inputs the kernels do not take (small, strided, mixed dtypes)."""

import numpy as np
import pytest

import ember as em
from ember.ops import _accel
from ember.ops import activation as A

pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")


def _relu(x, gy, on):
    with _accel.enabled(on):
        t = em.tensor(x, requires_grad=True, dtype=x.dtype)
        y = A.relu(t)
        y.backward(gy)
    return y.data, t.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_matches_the_numpy_path_and_the_definition(dtype):
    r = np.random.default_rng(0)
    x = r.standard_normal((8, 16, 16, 9)).astype(dtype)  # above the kernels' size threshold
    x.reshape(-1)[::7] = 0.0  # exact zeros: the gradient there is 0
    gy = r.standard_normal(x.shape).astype(dtype)
    assert x.size >= A._KERNEL_MIN
    y0, g0 = _relu(x, gy, on=False)
    y1, g1 = _relu(x, gy, on=True)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(g1, g0)
    np.testing.assert_array_equal(y1, np.where(x > 0, x, 0))
    np.testing.assert_array_equal(g1, np.where(x > 0, gy, 0))
    assert y1.dtype == g1.dtype == dtype


def test_compiled_relu_zeros_and_nan(monkeypatch):
    monkeypatch.setattr(A, "_KERNEL_MIN", 1)
    x = np.array([[-1.0, np.nan, 0.0, 2.0, -0.0, 3.0], [5.0, -2.0, np.nan, 0.5, 1.0, -3.0]])
    x = x.astype(np.float32)
    gy = np.arange(12, dtype=np.float32).reshape(2, 6) + 1
    y, g = _relu(x, gy, on=True)
    expected = np.array([[0, np.nan, 0, 2, 0, 3], [5, 0, np.nan, 0.5, 1, 0]])
    np.testing.assert_array_equal(y, expected)  # NaN propagates as NumPy's maximum
    np.testing.assert_array_equal(g, np.where(np.nan_to_num(expected) > 0, gy, 0))


def test_relu_inputs_the_kernels_do_not_take_use_the_numpy_path():
    r = np.random.default_rng(1)
    big = r.standard_normal((64, 64, 8)).astype(np.float32)
    strided = big[:, ::2]  # not contiguous
    assert A._flat_kernels(strided) is None
    assert A._flat_kernels(big[:2]) is None  # below the size threshold
    assert A._flat_kernels(big, big.astype(np.float64)) is None  # mixed dtypes
    assert A._flat_kernels(big.astype(np.float16)) is None  # no float16 kernels
    gy = r.standard_normal(strided.shape).astype(np.float32)
    y, g = _relu(strided, gy, on=True)
    np.testing.assert_array_equal(y, np.maximum(strided, 0))
    np.testing.assert_array_equal(g, np.where(strided > 0, gy, 0))


def test_relu_kernel_writes_exactly_the_elements_asked_for():
    from ember.ops.kernels import activation as K

    out = np.maximum(np.linspace(-3, 3, 41), 0).astype(np.float32)
    g = np.arange(41, dtype=np.float32)
    gx = np.full(41, 9.0, np.float32)
    K.relu_backward(g, out, gx, 10, 25)
    np.testing.assert_array_equal(gx[10:25], np.where(out[10:25] > 0, g[10:25], 0))
    assert (gx[:10] == 9).all() and (gx[25:] == 9).all()
