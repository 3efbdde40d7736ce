"""ops/pool.py: max and average pooling against a loop transcription of their definition, the
one-element max-pool gradient (first maximum, as PyTorch), SAME average pooling over the real
elements only, global pooling, gradcheck of every op, dtypes and errors."""

import itertools

import numpy as np
import pytest

import ember as em
from ember.errors import EmberValueError, ShapeError
from ember.ops.conv import conv_geometry
from ember.ops.pool import (
    avg_pool2d,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool2d,
)


def reference_pool(x, pool, strides, padding, kind):
    """Each window's max, or mean over its real (non-padding) elements, one output at a time."""
    (oh, ow), (top, _, left, _) = conv_geometry(x.shape[1:3], pool, strides, padding, 1)
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0] - top, j * strides[1] - left
            win = x[:, max(r0, 0) : r0 + pool[0], max(c0, 0) : c0 + pool[1]]
            y[:, i, j] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y


# (pool, strides, padding): tiling, tiling after SAME padding, overlapping, gaps between windows
CASES = [
    ((2, 2), (2, 2), "valid"), ((2, 2), (2, 2), "same"), ((3, 3), (2, 2), "same"),
    ((3, 3), (1, 1), "valid"), ((3, 2), (1, 2), "same"), ((2, 2), (3, 3), "valid"),
]  # fmt: skip


@pytest.mark.parametrize("pool, strides, padding", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_the_definition(pool, strides, padding, kind, rng):
    x = rng.standard_normal((2, 7, 6, 3))
    op = max_pool2d if kind == "max" else avg_pool2d
    y = op(em.tensor(x, dtype=np.float64), pool, strides, padding)
    np.testing.assert_allclose(y.data, reference_pool(x, pool, strides, padding, kind), rtol=1e-12)


def test_max_pool_gradient_goes_to_the_first_maximum_of_a_tied_window():
    # PyTorch picks the first maximum in row-major window order (e.g. all zeros after ReLU)
    x = np.array([[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 3.0, 2.0]]).reshape(1, 2, 4, 1)
    t = em.tensor(x, requires_grad=True, dtype=np.float64)
    max_pool2d(t, 2).sum().backward()
    expected = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 4, 1)
    np.testing.assert_array_equal(t.grad, expected)


def test_overlapping_max_windows_add_their_gradients():
    # windows of 3 with stride 1 over a row whose maximum is in the middle: all 3 pick it
    x = np.array([0.0, 1.0, 5.0, 2.0, 0.5]).reshape(1, 1, 5, 1)
    t = em.tensor(x, requires_grad=True, dtype=np.float64)
    max_pool2d(t, (1, 3), strides=1).sum().backward()
    np.testing.assert_array_equal(t.grad.ravel(), [0.0, 0.0, 3.0, 0.0, 0.0])


def test_same_max_pool_never_picks_the_padding():
    x = -np.ones((1, 3, 3, 1))  # every real value is below the zero a zero-padding would add
    y = max_pool2d(em.tensor(x, dtype=np.float64), 2, padding="same")
    np.testing.assert_array_equal(y.data, -np.ones((1, 2, 2, 1)))


def test_same_avg_pool_divides_by_the_real_elements():
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    y = avg_pool2d(em.tensor(x, dtype=np.float64), 2, padding="same")
    # windows: [[0,1],[3,4]], [[2],[5]], [[6,7]], [[8]] (padding after, as TensorFlow)
    np.testing.assert_allclose(y.data.ravel(), [2.0, 3.5, 6.5, 8.0])


def test_global_pools_reduce_height_and_width(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    t = em.tensor(x, dtype=np.float64)
    np.testing.assert_allclose(global_avg_pool2d(t).data, x.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_array_equal(global_max_pool2d(t).data, x.max(axis=(1, 2)))
    assert global_avg_pool2d(t, keepdims=True).shape == (2, 1, 1, 5)
    assert global_max_pool2d(t, keepdims=True).shape == (2, 1, 1, 5)


def test_global_1d_pools_reduce_the_steps(rng):
    x = rng.standard_normal((2, 6, 3))
    t = em.tensor(x, dtype=np.float64)
    np.testing.assert_allclose(global_avg_pool1d(t).data, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(global_max_pool1d(t).data, x.max(axis=1))
    assert global_max_pool1d(t, keepdims=True).shape == (2, 1, 3)


def test_global_max_pool_gradient_goes_to_the_first_maximum():
    x = np.zeros((1, 2, 2, 1))
    t = em.tensor(x, requires_grad=True, dtype=np.float64)
    global_max_pool2d(t).sum().backward()
    np.testing.assert_array_equal(t.grad.ravel(), [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
def test_pooling_keeps_float32(op, rng):
    x = em.tensor(rng.standard_normal((2, 5, 5, 3)).astype(np.float32), requires_grad=True)
    y = op(x, 2, padding="same")
    y.sum().backward()
    assert y.dtype == x.grad.dtype == np.float32


@pytest.mark.parametrize("op", [global_avg_pool2d, global_max_pool2d])
def test_global_pooling_keeps_float32(op, rng):
    x = em.tensor(rng.standard_normal((2, 5, 5, 3)).astype(np.float32), requires_grad=True)
    y = op(x)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == np.float32


# ------------------------------------------------------------------------------ gradcheck

GRAD_CASES = [
    (p, s, pad)
    for p, s, pad in itertools.product([2, 3], [1, 2, 3], ["valid", "same"])
]  # fmt: skip


@pytest.mark.parametrize("pool, stride, padding", GRAD_CASES)
@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
def test_pooling_gradcheck(op, pool, stride, padding, float64, rng):
    # distinct values, so that no window's maximum is tied within the finite-difference step
    x = rng.permutation(2 * 5 * 6 * 2).reshape(2, 5, 6, 2) / 10.0
    t = em.tensor(x, requires_grad=True)
    assert em.gradcheck(lambda t: op(t, pool, stride, padding), [t])


@pytest.mark.parametrize(
    "op, shape",
    [(global_avg_pool2d, (2, 3, 4, 2)), (global_max_pool2d, (2, 3, 4, 2)),
     (global_avg_pool1d, (2, 5, 3)), (global_max_pool1d, (2, 5, 3))],
)  # fmt: skip
def test_global_pooling_gradcheck(op, shape, float64, rng):
    x = rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0
    t = em.tensor(x, requires_grad=True)
    assert em.gradcheck(op, [t])
    assert em.gradcheck(lambda t: op(t, keepdims=True), [t])


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d, global_avg_pool2d, global_max_pool2d])
def test_2d_pooling_rejects_a_3d_input(op, rng):
    with pytest.raises(
        ShapeError, match=r"4-D input \(batch, height, width, channels\).*\(4, 4, 2\)"
    ):
        op(rng.standard_normal((4, 4, 2)))


@pytest.mark.parametrize("op", [global_avg_pool1d, global_max_pool1d])
def test_1d_global_pooling_rejects_a_4d_input(op, rng):
    with pytest.raises(ShapeError, match=r"3-D input \(batch, steps, features\)"):
        op(rng.standard_normal((2, 4, 4, 2)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pool_size": 0}, r"max_pool2d: pool_size must be a positive int.*pool_size=0"),
        ({"strides": (2,)}, r"max_pool2d: strides must be .*strides=\(2,\)"),
        ({"padding": "causal"}, "max_pool2d: padding must be 'valid' or 'same'"),
    ],
)
def test_max_pool_rejects_bad_arguments(kwargs, message, rng):
    with pytest.raises(EmberValueError, match=message):
        max_pool2d(rng.standard_normal((1, 4, 4, 1)), **kwargs)


def test_valid_pooling_rejects_a_window_larger_than_the_input(rng):
    with pytest.raises(ShapeError, match="avg_pool2d: .*smaller than the window"):
        avg_pool2d(rng.standard_normal((1, 2, 2, 1)), 3)


@pytest.mark.parametrize("pool, strides, padding", CASES)
def test_max_pool_one_image_per_chunk_matches_whole_batch(pool, strides, padding, monkeypatch):
    from ember.ops import pool as pool_module

    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((5, 7, 6, 3)), 1)  # rounded: ties inside windows
    g = rng.standard_normal(max_pool2d(x, pool, strides, padding).shape)
    results = []
    for chunk in (1 << 30, 1):  # the whole batch in one chunk, then one image per chunk
        monkeypatch.setattr(pool_module, "_CHUNK_BYTES", chunk)
        t = em.tensor(x, requires_grad=True, dtype=np.float64)
        y = max_pool2d(t, pool, strides, padding)
        y.backward(g)
        results.append((y.data, t.grad))
    np.testing.assert_array_equal(results[0][0], reference_pool(x, pool, strides, padding, "max"))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
