"""ops/pool.py with its compiled kernels (ember/ops/kernels/pool.py) against the NumPy path of
the same ops (kernels switched off): max and average pooling, forward and input gradient, in
float32 and float64, SAME/VALID, tiling, overlapping and gapped windows, odd sizes, ties after a
ReLU, NaN, and the kernels' image ranges."""

import numpy as np
import pytest

import ember as em
from ember.ops import _accel
from ember.ops import pool as P

pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")

# (pool, strides, padding): tiling, tiling with a VALID remainder, SAME, overlapping, gaps
CASES = [
    ((2, 2), (2, 2), "valid"), ((2, 2), (2, 2), "same"), ((3, 3), (2, 2), "same"),
    ((3, 3), (1, 1), "valid"), ((3, 2), (1, 2), "same"), ((2, 2), (3, 3), "valid"),
    ((3, 3), (3, 3), "valid"), ((1, 1), (1, 1), "valid"), ((4, 4), (1, 1), "same"),
]  # fmt: skip


def _run(op, x, gy, pool, strides, padding, on):
    """Output and input gradient of one pooling call with the kernels on or off."""
    with _accel.enabled(on):
        t = em.tensor(x, requires_grad=True, dtype=x.dtype)
        y = op(t, pool, strides, padding)
        y.backward(gy.astype(x.dtype))
    return y.data, t.grad


def _inputs(shape, dtype, kind, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape)
    if kind == "relu":
        x = np.maximum(x, 0)  # windows of tied zeros
    elif kind == "ties":
        x = r.integers(-2, 3, shape).astype(float)  # many ties among non-zero values too
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["normal", "relu", "ties"])
@pytest.mark.parametrize("pool, strides, padding", CASES)
def test_compiled_max_pool_matches_the_numpy_path(pool, strides, padding, kind, dtype):
    x = _inputs((3, 7, 9, 5), dtype, kind, seed=len(kind))
    oh, ow = P._geometry(x, pool, strides, padding, "t")[0]
    gy = np.random.default_rng(1).standard_normal((3, oh, ow, 5))
    y0, g0 = _run(P.max_pool2d, x, gy, pool, strides, padding, on=False)
    y1, g1 = _run(P.max_pool2d, x, gy, pool, strides, padding, on=True)
    np.testing.assert_array_equal(y1, y0)  # a max is exact
    assert g1.dtype == g0.dtype == dtype
    # the same element wins in every window; overlapping windows may add in another order
    np.testing.assert_allclose(g1, g0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool, strides, padding", CASES)
def test_compiled_avg_pool_matches_the_numpy_path(pool, strides, padding, dtype):
    x = _inputs((2, 8, 7, 4), dtype, "normal", seed=3)
    oh, ow = P._geometry(x, pool, strides, padding, "t")[0]
    gy = np.random.default_rng(2).standard_normal((2, oh, ow, 4))
    y0, g0 = _run(P.avg_pool2d, x, gy, pool, strides, padding, on=False)
    y1, g1 = _run(P.avg_pool2d, x, gy, pool, strides, padding, on=True)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y1, y0, rtol=tol, atol=tol)
    np.testing.assert_allclose(g1, g0, rtol=tol, atol=tol)


def test_compiled_max_pool_gives_the_gradient_to_the_first_maximum():
    # hand-computed: each 2x2 window's first maximum in row-major order gets the gradient
    x = np.array([[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 3.0, 2.0]], dtype=np.float32)
    with _accel.enabled(True):
        t = em.tensor(x.reshape(1, 2, 4, 1), requires_grad=True)
        P.max_pool2d(t, 2).sum().backward()
    expected = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 4, 1)
    np.testing.assert_array_equal(t.grad, expected)


def test_compiled_overlapping_max_windows_add_their_gradients():
    x = np.array([0.0, 1.0, 5.0, 2.0, 0.5], dtype=np.float32).reshape(1, 1, 5, 1)
    with _accel.enabled(True):
        t = em.tensor(x, requires_grad=True)
        P.max_pool2d(t, (1, 3), strides=1).sum().backward()
    np.testing.assert_array_equal(t.grad.ravel(), [0.0, 0.0, 3.0, 0.0, 0.0])


def test_compiled_same_max_pool_never_picks_the_padding():
    x = -np.ones((1, 3, 3, 1), dtype=np.float32)
    with _accel.enabled(True):
        t = em.tensor(x, requires_grad=True)
        y = P.max_pool2d(t, 2, padding="same")
        y.sum().backward()
    np.testing.assert_array_equal(y.data, -np.ones((1, 2, 2, 1)))
    # every window's gradient reaches a real element (the first of its window)
    np.testing.assert_array_equal(t.grad[0, :, :, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])


def test_compiled_max_pool_propagates_nan_as_numpy_maximum():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = np.nan  # in the first window, after a number
    x[0, 2, 2, 0] = np.nan  # the first element of the last window
    with _accel.enabled(True):
        y1 = P.max_pool2d(em.tensor(x), 2).data
    with _accel.enabled(False):
        y0 = P.max_pool2d(em.tensor(x), 2).data
    np.testing.assert_array_equal(np.isnan(y1), np.isnan(y0))
    np.testing.assert_array_equal(y1[0, :, :, 0], [[np.nan, 7], [13, np.nan]])
    # the general kernel (overlapping, padded windows) too
    with _accel.enabled(True):
        y1 = P.max_pool2d(em.tensor(x), 3, strides=1, padding="same").data
    with _accel.enabled(False):
        y0 = P.max_pool2d(em.tensor(x), 3, strides=1, padding="same").data
    np.testing.assert_array_equal(y1, y0)
    assert np.isnan(y1).sum() == 13  # every window that holds a NaN


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_compiled_pooling_matches_the_numpy_path_in_chunks(kind, monkeypatch):
    monkeypatch.setattr(P, "_CHUNK_BYTES", 1)  # the NumPy path: one image per chunk
    op = P.max_pool2d if kind == "max" else P.avg_pool2d
    x = _inputs((7, 6, 6, 3), np.float32, "relu", seed=5)
    gy = np.random.default_rng(6).standard_normal((7, 3, 3, 3))
    y0, g0 = _run(op, x, gy, (3, 3), (2, 2), "same", on=False)
    y1, g1 = _run(op, x, gy, (3, 3), (2, 2), "same", on=True)
    np.testing.assert_allclose(y1, y0, rtol=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-6, atol=1e-6)


def test_compiled_pooling_takes_non_contiguous_inputs_and_gradients():
    base = _inputs((2, 6, 8, 6), np.float32, "normal", seed=7)
    x = base[:, :, ::2, ::2]  # strided view
    gy = np.random.default_rng(8).standard_normal((2, 3, 2, 3)).astype(np.float32)
    gy = np.asfortranarray(gy)
    for op in (P.max_pool2d, P.avg_pool2d):
        y0, g0 = _run(op, x, gy, (2, 2), (2, 2), "valid", on=False)
        y1, g1 = _run(op, x, gy, (2, 2), (2, 2), "valid", on=True)
        np.testing.assert_allclose(y1, y0, rtol=1e-6)
        np.testing.assert_allclose(g1, g0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 4, 3, 6), (3, 7, 5), (4, 1, 1, 9)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_compiled_global_avg_pool_matches_the_numpy_path(shape, keepdims, dtype, monkeypatch):
    monkeypatch.setattr(P, "_CHUNK_BYTES", 1)  # the NumPy path: one image per chunk
    x = _inputs(shape, dtype, "normal", seed=9)
    op = P.global_avg_pool2d if len(shape) == 4 else P.global_avg_pool1d
    outs = []
    for on in (False, True):
        with _accel.enabled(on):
            t = em.tensor(x, requires_grad=True, dtype=dtype)
            y = op(t, keepdims=keepdims)
            (y * y).sum().backward()  # d/dx = 2 y / positions
            outs.append((y.data, t.grad))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert outs[1][0].shape == outs[0][0].shape and outs[1][0].dtype == dtype
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=tol, atol=tol)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=tol, atol=tol)
    axes = tuple(range(1, len(shape) - 1))
    np.testing.assert_allclose(outs[1][0], x.mean(axis=axes, keepdims=keepdims), rtol=tol)


def test_pool_kernels_write_exactly_the_images_asked_for():
    from ember.ops.kernels import pool as K

    x = _inputs((5, 6, 6, 3), np.float32, "relu", seed=10)
    out = np.full((5, 3, 3, 3), 9.0, np.float32)
    arg = np.full(out.shape, 9, np.uint8)
    K.max_pool_forward_2x2(x, out, arg, 1, 3)
    with _accel.enabled(False):
        expected = P.max_pool2d(em.tensor(x), 2).data
    np.testing.assert_array_equal(out[1:3], expected[1:3])
    assert (out[[0, 3, 4]] == 9).all() and (arg[[0, 3, 4]] == 9).all()
    gx = np.full(x.shape, 9.0, np.float32)
    K.max_pool_backward_tiles(out, arg, 2, 2, gx, 1, 3)
    assert (gx[[0, 3, 4]] == 9).all() and (gx[1:3] != 9).all()


def test_float16_pooling_and_batch_norm_take_the_numpy_path():
    from ember.ops.norm import batch_norm

    x = _inputs((2, 4, 4, 3), np.float16, "normal", seed=11)
    with _accel.enabled(True):
        t = em.tensor(x, dtype=np.float16)
        outs = [P.max_pool2d(t, 2), P.avg_pool2d(t, 2), P.global_avg_pool2d(t), batch_norm(t)[0]]
    for y in outs:
        assert y.dtype == np.float16
    np.testing.assert_array_equal(outs[0].data, x.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4)))
