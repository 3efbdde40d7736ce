"""ops/norm.py: the fused batch_norm (training and inference) and dropout."""

import math

import numpy as np
import pytest

import ember as em
from ember.errors import EmberValueError, ShapeError
from ember.ops.norm import batch_norm, dropout


def reference_bn(x, gamma, beta, axis, eps):
    """Batch norm transcribed from Ioffe & Szegedy (2015), Algorithm 1."""
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = -1
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)
    return y, mu.reshape(-1), var.reshape(-1)


@pytest.mark.parametrize("shape, axis", [((6, 4), -1), ((3, 4, 5, 2), -1), ((3, 4, 5), 1)])
def test_batch_norm_training_matches_the_paper(shape, axis, rng):
    x = rng.standard_normal(shape) * 3 + 2
    c = shape[axis]
    gamma, beta = rng.random(c) + 0.5, rng.standard_normal(c)
    y, mean, var = batch_norm(
        em.tensor(x, dtype=np.float64), gamma, beta, training=True, axis=axis, epsilon=1e-3
    )
    ry, rmean, rvar = reference_bn(x, gamma, beta, axis, 1e-3)
    np.testing.assert_allclose(y.data, ry, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean.data, rmean, rtol=1e-12)
    np.testing.assert_allclose(var.data, rvar, rtol=1e-12)  # biased, as Keras's moments


@pytest.mark.parametrize("shape, axis", [((6, 3), -1), ((2, 3, 3, 2), -1), ((3, 4, 2), 1)])
def test_batch_norm_training_gradcheck(shape, axis, float64, rng):
    c = shape[axis]
    x = em.tensor(rng.standard_normal(shape), requires_grad=True)
    g = em.tensor(rng.random(c) + 0.5, requires_grad=True)
    b = em.tensor(rng.standard_normal(c), requires_grad=True)
    assert em.gradcheck(lambda x, g, b: batch_norm(x, g, b, axis=axis)[0], [x, g, b])
    assert em.gradcheck(lambda x: batch_norm(x, axis=axis)[0], [x])


def test_batch_norm_gradient_flows_through_the_returned_statistics(float64, rng):
    x = em.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    g = em.tensor(rng.random(3) + 0.5, requires_grad=True)

    def fn(x, g):
        y, mean, var = batch_norm(x, g, None)
        return y * mean + var

    assert em.gradcheck(fn, [x, g])


@pytest.mark.parametrize("axis", [-1, 1])
def test_batch_norm_inference_uses_the_given_statistics(axis, float64, rng):
    shape = (4, 3, 2)
    c = shape[axis]
    x = rng.standard_normal(shape)
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    gamma, beta = rng.random(c) + 0.5, rng.standard_normal(c)
    y = batch_norm(em.tensor(x), gamma, beta, mean, var, training=False, axis=axis, epsilon=0.01)
    s = [1, 1, 1]
    s[axis] = -1
    expected = (x - mean.reshape(s)) / np.sqrt(var.reshape(s) + 0.01) * gamma.reshape(
        s
    ) + beta.reshape(s)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    ts = [em.tensor(a, requires_grad=True) for a in (x, mean, var, gamma, beta)]
    assert em.gradcheck(
        lambda x, m, v, g, b: batch_norm(x, g, b, m, v, training=False, axis=axis), ts
    )


def test_batch_norm_keeps_float32(rng):
    x = em.tensor(rng.standard_normal((8, 3)).astype(np.float32), requires_grad=True)
    gamma = em.tensor(np.ones(3, np.float32), requires_grad=True)
    y, mean, var = batch_norm(x, gamma, None)
    assert y.dtype == mean.dtype == var.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == gamma.grad.dtype == np.float32
    m = np.zeros(3, np.float32)
    assert batch_norm(x, None, None, m, m + 1, training=False).dtype == np.float32


def test_batch_norm_rejects_mismatched_parameters():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ShapeError, match=r"gamma must have shape \(3,\).*\(4,\)"):
        batch_norm(x, np.ones(4, np.float32), None)
    with pytest.raises(ShapeError, match="axis 5"):
        batch_norm(x, axis=5)
    with pytest.raises(EmberValueError, match="moving_mean"):
        batch_norm(x, training=False)


def test_dropout_op_statistics_and_identity():
    x = np.ones((400, 500), np.float32)
    assert dropout(x, 0.5, training=False).data is x
    y = dropout(x, 0.25, training=True, rng=np.random.default_rng(0)).data
    n = x.size
    assert abs((y == 0).mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    # inverted scaling keeps the expectation: mean within 5 standard errors of 1
    assert abs(y.mean() - 1) < 5 * math.sqrt(0.25 / 0.75 / n)
    np.testing.assert_array_equal(dropout(x, 1.0, training=True).data, 0 * x)


def test_dropout_op_gradcheck(float64):
    x = em.tensor(np.random.default_rng(2).standard_normal((6, 5)), requires_grad=True)
    # a fresh generator with the same seed on every call: the same mask each time
    assert em.gradcheck(lambda t: dropout(t, 0.3, rng=np.random.default_rng(7)), [x])


def test_dropout_op_rejects_bad_rate_and_noise_shape():
    with pytest.raises(EmberValueError, match="rate"):
        dropout(np.ones(3), -0.1)
    with pytest.raises(ShapeError, match="noise_shape"):
        dropout(np.ones((2, 3)), 0.5, noise_shape=(2, 2))


def test_batch_norm_channels_last_over_many_chunks_matches_the_paper(monkeypatch, rng):
    from ember.ops import norm as norm_module

    monkeypatch.setattr(norm_module, "_CHUNK_BYTES", 64)  # 2 rows of 4 float64 channels
    x = rng.standard_normal((3, 5, 7, 4)) * 3.0 + 50.0  # a large mean: two-pass variance
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    xt = em.tensor(x, requires_grad=True, dtype=np.float64)
    y, mean, var = batch_norm(xt, gamma, beta, training=True, epsilon=1e-3)
    ry, rmean, rvar = reference_bn(x, gamma, beta, -1, 1e-3)
    np.testing.assert_allclose(y.data, ry, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(var.data, rvar.reshape(-1), rtol=1e-10)
    g = rng.standard_normal(x.shape)
    y.backward(g)
    # closed form of the paper, written out in float64
    xhat = (x - rmean) / np.sqrt(rvar + 1e-3)
    gh = g * gamma
    expected = gh - gh.mean(axis=(0, 1, 2)) - xhat * (gh * xhat).mean(axis=(0, 1, 2))
    expected /= np.sqrt(rvar + 1e-3)
    np.testing.assert_allclose(xt.grad, expected, rtol=1e-8, atol=1e-10)


def test_batch_norm_float32_statistics_stay_accurate_at_a_large_mean(rng):
    x = (rng.standard_normal((64, 8, 8, 16)) + 100.0).astype(np.float32)
    _, mean, var = batch_norm(em.tensor(x), training=True)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean.data, x64.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(var.data, x64.var(axis=(0, 1, 2)), rtol=1e-4)
