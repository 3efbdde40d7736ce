"""ops/norm.py's batch norm with its compiled kernels (ember/ops/kernels/norm.py) against the
NumPy path of the same op (kernels switched off) and against a float64 transcription of the
formula: training outputs, batch statistics and every gradient (also through the returned
statistics), without gamma/beta, a large mean (the one-pass statistics must not cancel),
row ranges, and inference with moving statistics."""

import numpy as np
import pytest

import ember as em
from ember.ops import _accel
from ember.ops import norm as N

pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")


def _train(x, gamma, beta, gy, on, g_stats=False):
    """(y, mean, var, dx, dgamma, dbeta) of one training batch_norm call."""
    dtype = x.dtype
    with _accel.enabled(on):
        tx = em.tensor(x, requires_grad=True, dtype=dtype)
        tg = None if gamma is None else em.tensor(gamma, requires_grad=True, dtype=dtype)
        tb = None if beta is None else em.tensor(beta, requires_grad=True, dtype=dtype)
        y, mean, var = N.batch_norm(tx, tg, tb, training=True)
        loss = (y * em.tensor(gy.astype(dtype))).sum()
        if g_stats:  # gradients reach the returned statistics too
            loss = loss + (mean * 0.5).sum() + (var * 2.0).sum()
        loss.backward()
    grads = [t.grad if t is not None else None for t in (tx, tg, tb)]
    return [y.data, mean.data, var.data, *grads]


def _data(shape, dtype, seed, loc=0.0):
    r = np.random.default_rng(seed)
    c = shape[-1]
    x = (r.standard_normal(shape) * (r.random(c) + 0.5) + loc).astype(dtype)
    gamma = (r.random(c) + 0.5).astype(dtype)
    beta = r.standard_normal(c).astype(dtype)
    gy = r.standard_normal(shape)
    return x, gamma, beta, gy


def _close(ours, ref, dtype):
    for a, b in zip(ours, ref):
        if b is None:
            assert a is None
            continue
        assert a.dtype == np.dtype(dtype)
        tol = 2e-5 if dtype == np.float32 else 1e-11
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 8), (4, 5, 7, 3), (3, 6, 6, 32), (2, 4, 4, 65)])
@pytest.mark.parametrize("affine", [True, False])
def test_compiled_batch_norm_matches_the_numpy_path(shape, affine, dtype):
    x, gamma, beta, gy = _data(shape, dtype, seed=shape[-1])
    if not affine:
        gamma = beta = None
    ref = _train(x, gamma, beta, gy, on=False)
    _close(_train(x, gamma, beta, gy, on=True), ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_batch_norm_gradient_through_the_statistics(dtype):
    x, gamma, beta, gy = _data((5, 3, 3, 4), dtype, seed=1)
    ref = _train(x, gamma, beta, gy, on=False, g_stats=True)
    _close(_train(x, gamma, beta, gy, on=True, g_stats=True), ref, dtype)


def test_compiled_batch_norm_statistics_do_not_cancel_for_a_large_mean():
    # mean 1e4, standard deviation ~1: E[x^2] - E[x]^2 in float32 would lose every digit
    x, gamma, beta, gy = _data((16, 6, 6, 8), np.float32, seed=2, loc=1e4)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 1, 2))
    var = ((x64 - mean) ** 2).mean(axis=(0, 1, 2))  # the definition, in float64
    xhat = (x64 - mean) / np.sqrt(var + 1e-3)
    y, m, v, *_ = _train(x, gamma, beta, gy, on=True)
    np.testing.assert_allclose(m, mean, rtol=1e-6)
    np.testing.assert_allclose(v, var, rtol=1e-4)
    # y = x scale + shift rounds at the scale of x (float32 spacing near 1e4 is 1e-3)
    np.testing.assert_allclose(y, xhat * gamma + beta, atol=1e-2)


@pytest.mark.parametrize("c", [3, 32, 200])
def test_norm_kernels_sum_exactly_the_rows_asked_for(c):
    # rows lo:hi, including a tail of rows that do not fill a block of 128 // c rows
    from ember.ops.kernels import norm as K

    r = np.random.default_rng(c)
    x = r.standard_normal((101, c)).astype(np.float32)
    g = r.standard_normal((101, c)).astype(np.float32)
    shift, mean = r.standard_normal(c), r.standard_normal(c)
    s1, s2 = np.empty(c), np.empty(c)
    for lo, hi in ((0, 101), (5, 98), (7, 8), (50, 50)):
        d = x[lo:hi].astype(np.float64) - shift
        K.moments(x, shift, s1, s2, lo, hi)
        np.testing.assert_allclose(s1, d.sum(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s2, (d * d).sum(axis=0), rtol=1e-12, atol=1e-12)
        g64 = g[lo:hi].astype(np.float64)
        K.grad_sums(g, x, mean, s1, s2, lo, hi)
        np.testing.assert_allclose(s1, g64.sum(axis=0), rtol=1e-12, atol=1e-12)
        e2 = (g64 * (x[lo:hi] - mean)).sum(axis=0)
        np.testing.assert_allclose(s2, e2, rtol=1e-12, atol=1e-12)


def test_compiled_batch_norm_gradcheck(float64):
    r = np.random.default_rng(4)
    with _accel.enabled(True):
        x = em.tensor(r.standard_normal((3, 2, 2, 3)), requires_grad=True)
        g = em.tensor(r.random(3) + 0.5, requires_grad=True)
        b = em.tensor(r.standard_normal(3), requires_grad=True)

        def fn(x, g, b):
            y, mean, var = N.batch_norm(x, g, b)
            return y * mean + var

        assert em.gradcheck(fn, [x, g, b])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_batch_norm_inference_matches_the_numpy_path(dtype):
    x, gamma, beta, gy = _data((4, 5, 5, 16), dtype, seed=5)
    r = np.random.default_rng(6)
    mm, mv = r.standard_normal(16).astype(dtype), (r.random(16) + 0.5).astype(dtype)
    outs = []
    for on in (False, True):
        with _accel.enabled(on):
            tx = em.tensor(x, requires_grad=True, dtype=dtype)
            y = N.batch_norm(tx, gamma, beta, mm, mv, training=False)
            (y * em.tensor(gy.astype(dtype))).sum().backward()
            outs.append((y.data, tx.grad))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=tol, atol=tol)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=tol, atol=tol)
    # and the formula: (x - mean) / sqrt(var + eps) * gamma + beta
    expected = (x.astype(np.float64) - mm) / np.sqrt(mv.astype(np.float64) + 1e-3) * gamma + beta
    np.testing.assert_allclose(outs[1][0], expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
