"""BatchNormalization: Keras semantics for statistics, modes, freezing, weights and errors."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import training_mode


def gradcheck_layer(layer, x, training=False):
    """gradcheck a layer against its input and every trainable weight (see test_core)."""
    x = em.tensor(x, requires_grad=True)
    layer(x, training=training)
    params = layer.trainable_weights
    attrs = {id(p): [k for k, v in vars(layer).items() if v is p] for p in params}

    def fn(x, *ws):
        for p, w in zip(params, ws):
            for k in attrs[id(p)]:
                object.__setattr__(layer, k, w)
        try:
            return layer(x, training=training)
        finally:
            for p in params:
                for k in attrs[id(p)]:
                    object.__setattr__(layer, k, p)

    return em.gradcheck(fn, [x, *(em.tensor(p.data, requires_grad=True) for p in params)])


def test_weights_are_gamma_beta_moving_mean_moving_variance():
    bn = layers.BatchNormalization()
    bn(np.ones((2, 4, 4, 3), np.float32))
    names = [w.name.split("/")[-1] for w in bn.weights]
    assert names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert all(w.shape == (3,) for w in bn.weights)
    np.testing.assert_array_equal(np.stack(bn.get_weights()), [[1] * 3, [0] * 3, [0] * 3, [1] * 3])


def test_center_and_scale_false_drop_beta_and_gamma():
    bn = layers.BatchNormalization(center=False, scale=False)
    bn(np.ones((2, 3), np.float32))
    assert [w.name.split("/")[-1] for w in bn.weights] == ["moving_mean", "moving_variance"]


def test_training_normalizes_with_batch_statistics_and_updates_moving_ones(rng):
    x = (rng.standard_normal((64, 3)) * [1, 2, 3] + [5, -1, 0]).astype(np.float32)
    bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    y = bn(x, training=True).data
    mu, var = x.astype(np.float64).mean(0), x.astype(np.float64).var(0)  # biased variance
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
    # Keras: moving = moving * momentum + batch * (1 - momentum)
    np.testing.assert_allclose(bn.moving_mean.data, 0.1 * mu, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.data, 0.9 + 0.1 * var, rtol=1e-5)
    bn(x, training=True)
    np.testing.assert_allclose(bn.moving_mean.data, 0.9 * 0.1 * mu + 0.1 * mu, rtol=1e-5)


def test_inference_uses_the_moving_statistics_and_updates_nothing(rng):
    bn = layers.BatchNormalization(epsilon=0.01)
    x = rng.standard_normal((8, 2)).astype(np.float32)
    bn(x)
    bn.set_weights([[2.0, 3.0], [0.5, -0.5], [1.0, -1.0], [4.0, 0.25]])
    before = bn.get_weights()
    y = bn(x).data
    expected = (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 0.01) * [2, 3] + [0.5, -0.5]
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    for a, b in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_mode_context_selects_batch_statistics(rng):
    bn = layers.BatchNormalization()
    x = (rng.standard_normal((32, 2)) + 10).astype(np.float32)
    with training_mode(True):
        y = bn(x).data
    assert abs(y.mean()) < 1e-4
    assert bn.moving_mean.data.min() > 0


def test_frozen_layer_always_uses_moving_statistics_and_never_updates_them(rng):
    bn = layers.BatchNormalization()
    x = (rng.standard_normal((16, 3)) * 4 + 3).astype(np.float32)
    bn(x)
    bn.trainable = False
    before = bn.get_weights()
    y = bn(x, training=True).data  # Keras's fine-tuning rule
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-3), rtol=1e-5)
    for a, b in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not bn(em.tensor(x), training=True).requires_grad


def test_moving_statistics_receive_no_gradient(rng):
    bn = layers.BatchNormalization()
    x = em.tensor(rng.standard_normal((8, 3)).astype(np.float32), requires_grad=True)
    bn(x, training=True).sum().backward()
    assert bn.moving_mean.grad is None and bn.moving_variance.grad is None
    assert bn.gamma.grad is not None and bn.beta.grad is not None


@pytest.mark.parametrize("axis, shape", [(-1, (4, 3)), (-1, (2, 3, 3, 2)), (1, (3, 2, 4))])
def test_gradcheck_training_and_inference(axis, shape, float64, rng):
    x = rng.standard_normal(shape)
    assert gradcheck_layer(layers.BatchNormalization(axis=axis), x, training=True)
    bn = layers.BatchNormalization(axis=axis)
    bn(x)
    c = shape[axis]
    bn.set_weights([rng.random(c) + 0.5, rng.standard_normal(c), rng.standard_normal(c),
                    rng.random(c) + 0.5])  # fmt: skip
    assert gradcheck_layer(bn, x, training=False)


def test_other_axis_normalizes_that_axis(rng):
    x = (rng.standard_normal((4, 3, 5)) + np.arange(3)[:, None]).astype(np.float32)
    y = layers.BatchNormalization(axis=1)(x, training=True).data
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-5)


def test_channel_count_change_raises_naming_the_layer():
    bn = layers.BatchNormalization(name="bn1")
    bn(np.ones((2, 4), np.float32))
    with pytest.raises(ShapeError, match=r"bn1.*4 channels.*\(2, 5\)"):
        bn(np.ones((2, 5), np.float32))
    with pytest.raises(ShapeError, match="axis=3"):
        layers.BatchNormalization(axis=3)(np.ones((2, 4), np.float32))


def test_config_validation_and_round_trip():
    with pytest.raises(EmberValueError, match="momentum must be in"):
        layers.BatchNormalization(momentum=1.5)
    with pytest.raises(EmberValueError, match="epsilon must be positive"):
        layers.BatchNormalization(epsilon=0)
    with pytest.raises(EmberTypeError, match="axis"):
        layers.BatchNormalization(axis="last")
    bn = layers.BatchNormalization(axis=1, momentum=0.9, center=False, gamma_regularizer="l2")
    assert layers.BatchNormalization.from_config(bn.get_config()).get_config() == bn.get_config()


def test_float32_stays_float32(rng):
    bn = layers.BatchNormalization()
    x = rng.standard_normal((4, 3))  # float64 data into a float32 layer
    assert bn(x, training=True).dtype == np.float32
    assert bn.moving_variance.dtype == np.float32
