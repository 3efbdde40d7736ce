"""The fused Dense + ReLU op (``linear(x, w, b, relu=True)``): against the unfused ops (linear,
then relu), ``gradcheck`` in float64, and the compiled bias/ReLU kernels against the NumPy path
in float32."""

import numpy as np
import pytest

import ember as em
from ember import layers as L
from ember import ops
from ember.ops import _accel
from ember.ops.linalg import linear


def _tensors(dtype, shapes, seed=0, grad=True):
    r = np.random.default_rng(seed)
    return [em.tensor(r.standard_normal(s).astype(dtype), requires_grad=grad) for s in shapes]


def _fused_and_unfused(dtype, x_shape, units, with_bias, accel, seed=0):
    """Output and gradients (x, w, b) of the fused op and of linear-then-relu, under one seed
    and a random upstream gradient."""
    shapes = [x_shape, (x_shape[-1], units)] + ([(units,)] if with_bias else [])
    r = np.random.default_rng(seed + 1)
    up = r.standard_normal((*x_shape[:-1], units)).astype(dtype)
    results = []
    for fused in (True, False):
        ts = _tensors(dtype, shapes, seed)
        b = ts[2] if with_bias else None
        with _accel.enabled(accel):
            y = linear(ts[0], ts[1], b, relu=True) if fused else ops.relu(linear(ts[0], ts[1], b))
            (y * em.tensor(up)).sum().backward()
        results.append((y.numpy(), [t.grad for t in ts]))
    return results


def test_fused_op_is_max_of_x_w_plus_b_and_zero_with_relu_gradients(float64):
    r = np.random.default_rng(0)
    x, w, b = r.standard_normal((5, 4)), r.standard_normal((4, 3)), r.standard_normal(3)
    tx, tw, tb = (em.tensor(v, requires_grad=True) for v in (x, w, b))
    y = linear(tx, tw, tb, relu=True)
    z = x @ w + b
    np.testing.assert_allclose(y.numpy(), np.maximum(z, 0), rtol=1e-12)
    y.sum().backward()
    mask = (z > 0).astype(np.float64)
    np.testing.assert_allclose(tb.grad, mask.sum(0), rtol=1e-12)
    np.testing.assert_allclose(tw.grad, x.T @ mask, rtol=1e-12)
    np.testing.assert_allclose(tx.grad, mask @ w.T, rtol=1e-12)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("x_shape", [(6, 4), (2, 3, 4), (4,)])
def test_fused_op_passes_gradcheck(x_shape, with_bias, float64):
    ts = _tensors(np.float64, [x_shape, (4, 5)] + ([(5,)] if with_bias else []), seed=3)
    assert em.gradcheck(lambda *a: linear(a[0], a[1], *a[2:], relu=True), ts)


@pytest.mark.parametrize("accel", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize(
    "x_shape,with_bias", [((128, 64), True), ((128, 64), False), ((4, 40, 64), True)]
)
def test_fused_op_matches_linear_then_relu_in_float32(x_shape, with_bias, accel):
    if accel:
        pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")
    (y1, g1), (y2, g2) = _fused_and_unfused(np.float32, x_shape, 96, with_bias, accel)
    assert y1.dtype == np.float32
    np.testing.assert_array_equal(y1, y2)  # the same operations in the same order
    assert (y1 == 0).any() and (y1 > 0).any()
    for a, b in zip(g1, g2):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_compiled_path_matches_the_numpy_path():
    pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")
    (y_on, g_on), _ = _fused_and_unfused(np.float32, (128, 64), 96, True, True)
    (y_off, g_off), _ = _fused_and_unfused(np.float32, (128, 64), 96, True, False)
    np.testing.assert_array_equal(y_on, y_off)
    np.testing.assert_array_equal(g_on[0], g_off[0])  # masks agree, the GEMMs are the same
    np.testing.assert_array_equal(g_on[1], g_off[1])
    # the bias gradient sums in float64 there, in float32 here
    np.testing.assert_allclose(g_on[2], g_off[2], rtol=1e-5, atol=1e-6)
    r = np.random.default_rng(1)  # the upstream gradient _fused_and_unfused used
    up = r.standard_normal((128, 96))
    mask = y_on > 0
    exact = (up.astype(np.float32).astype(np.float64) * mask).sum(0)
    np.testing.assert_allclose(g_on[2], exact, rtol=1e-6, atol=1e-6)


def test_nan_propagates_like_the_relu_op():
    x = np.zeros((128, 64), np.float32)
    x[3, 5] = np.nan
    w = np.ones((64, 40), np.float32)
    for accel in (True, False):
        with _accel.enabled(accel):
            y = linear(em.tensor(x), em.tensor(w), em.tensor(np.zeros(40, np.float32)), relu=True)
        assert np.isnan(y.numpy()[3]).all() and not np.isnan(y.numpy()[4]).any()


def test_fused_op_does_not_compute_a_gradient_for_an_input_that_needs_none():
    x = em.tensor(np.ones((8, 3), np.float32))  # data: no gradient wanted
    w, b = _tensors(np.float32, [(3, 4), (4,)], seed=2)
    linear(x, w, b, relu=True).sum().backward()
    assert x.grad is None and w.grad is not None and b.grad is not None


@pytest.mark.parametrize("accel", [True, False], ids=["kernels", "numpy"])
def test_dense_relu_layer_matches_dense_then_relu(accel):
    r = np.random.default_rng(4)
    x = r.standard_normal((64, 70)).astype(np.float32)
    fused = L.Dense(90, activation="relu")
    plain = L.Dense(90)
    fused(em.tensor(x[:1]))  # builds
    plain(em.tensor(x[:1]))
    plain.set_weights(fused.get_weights())
    with _accel.enabled(accel):
        y1 = fused(em.tensor(x))
        y2 = ops.relu(plain(em.tensor(x)))
        y1.sum().backward()
        y2.sum().backward()
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    np.testing.assert_allclose(fused.kernel.grad, plain.kernel.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)
