"""Core layers: Input, Dense, Flatten, Reshape, Activation, Dropout, Lambda."""

import math

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError


def gradcheck_layer(layer, x, training=False):
    """gradcheck a layer's output against its input and every trainable weight (float64).

    The weights are swapped for gradcheck's own copies through the attributes that hold them,
    so the numerical and analytic gradients both go through the layer's real call()."""
    x = em.tensor(x, requires_grad=True)
    layer(x, training=training)  # build
    params = layer.trainable_weights
    attrs = {id(p): [k for k, v in vars(layer).items() if v is p] for p in params}
    assert all(attrs.values()), "every weight must be held by an attribute"

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

    ws = [em.tensor(p.data, requires_grad=True) for p in params]
    return em.gradcheck(fn, [x, *ws])


# ---------------------------------------------------------------------------------- Input
def test_input_knows_its_shape_with_a_free_batch_axis():
    i = layers.Input((28, 28, 1))
    assert isinstance(i, layers.InputLayer)
    assert i.shape == (None, 28, 28, 1)
    assert i.compute_output_shape((None, 28, 28, 1)) == (None, 28, 28, 1)
    x = np.zeros((3, 28, 28, 1), np.float32)
    np.testing.assert_array_equal(i(x).data, x)
    assert layers.Input(5).shape == (None, 5)
    assert layers.Input((None, 8), batch_size=4).shape == (4, None, 8)


def test_input_rejects_batches_of_another_shape_naming_both():
    i = layers.Input((28, 28, 1), name="pixels")
    with pytest.raises(ShapeError, match=r"pixels.*\(None, 28, 28, 1\).*\(2, 28, 28\)"):
        i(np.zeros((2, 28, 28)))
    with pytest.raises(EmberValueError, match="shape"):
        layers.Input((28, -1))


def test_input_config_round_trip():
    i = layers.Input((None, 8), batch_size=4, name="seq")
    again = layers.InputLayer.from_config(i.get_config())
    assert again.shape == i.shape and again.name == "seq"


# ---------------------------------------------------------------------------------- Dense
def test_dense_computes_x_w_plus_b_then_the_activation(rng):
    d = layers.Dense(3, activation="tanh")
    x = rng.standard_normal((4, 5)).astype(np.float32)
    d(x)
    w, b = rng.standard_normal((5, 3)), rng.standard_normal(3)
    d.set_weights([w, b])
    expected = np.tanh(x.astype(np.float64) @ w + b)
    np.testing.assert_allclose(d(x).data, expected, rtol=1e-5, atol=1e-6)
    assert d(x).dtype == np.float32


def test_dense_applies_to_the_last_axis_of_higher_rank_inputs(rng):
    d = layers.Dense(2, use_bias=False)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = d(x)
    assert y.shape == (2, 3, 2) and len(d.weights) == 1
    np.testing.assert_allclose(y.data, x @ d.kernel.data, rtol=1e-6)
    assert d.compute_output_shape((None, 3, 4)) == (None, 3, 2)


def test_dense_gradcheck_float64(float64, rng):
    assert gradcheck_layer(layers.Dense(3, activation="sigmoid"), rng.standard_normal((4, 5)))
    assert gradcheck_layer(layers.Dense(2), rng.standard_normal((2, 3, 4)))


def test_dense_whose_input_width_changed_raises_naming_layer_and_widths():
    d = layers.Dense(4, name="fc1")
    d(np.zeros((2, 5), np.float32))
    with pytest.raises(ShapeError, match=r"fc1.*last axis 5.*\(2, 6\)"):
        d(np.zeros((2, 6), np.float32))
    with pytest.raises(ShapeError, match=r"fc1.*rank >= 2"):
        layers.Dense(4, name="fc1")(np.zeros(5, np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": -3}, "units must be a positive int, received units=-3"),
        ({"units": 2.5}, "units must be a positive int"),
        ({"units": 3, "activation": "nope"}, "nope"),
        ({"units": 3, "kernel_initializer": "nope"}, "nope"),
    ],
)
def test_dense_validates_its_config(kwargs, message):
    with pytest.raises(EmberValueError, match=message):
        layers.Dense(**kwargs)


def test_dense_casts_integer_and_float64_inputs_to_its_dtype():
    d = layers.Dense(2)
    assert d(np.ones((1, 3), np.int64)).dtype == np.float32
    assert d(np.ones((1, 3), np.float64)).dtype == np.float32


def test_dense_config_round_trip_rebuilds_an_equal_layer():
    d = layers.Dense(
        7, activation="relu", use_bias=False, kernel_initializer="he_normal",
        kernel_regularizer="l2",
    )  # fmt: skip
    config = d.get_config()
    again = layers.Dense.from_config(config)
    assert again.get_config() == config
    again(np.ones((1, 2), np.float32))
    assert [w.shape for w in again.weights] == [(2, 7)]


def test_dense_with_regularizers_reports_their_penalties():
    d = layers.Dense(2, kernel_regularizer=em.regularizers.L1(0.1), bias_regularizer="l2")
    d(np.ones((1, 2), np.float32))
    d.set_weights([np.array([[1.0, -2.0], [3.0, 0.0]]), np.array([1.0, 1.0])])
    assert [p.item() for p in d.losses] == pytest.approx([0.1 * 6, 0.01 * 2])


# ---------------------------------------------------------------------------------- shapes
def test_flatten_keeps_the_batch_axis(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(layers.Flatten()(x).data, x.reshape(2, 60))
    assert layers.Flatten().compute_output_shape((None, 3, 4, 5)) == (None, 60)
    assert layers.Flatten()(np.ones(3, np.float32)).shape == (3, 1)


def test_flatten_and_reshape_pass_gradients_back(float64, rng):
    assert gradcheck_layer(layers.Flatten(), rng.standard_normal((2, 3, 2)))
    assert gradcheck_layer(layers.Reshape((3, -1)), rng.standard_normal((2, 6)))


def test_reshape_infers_one_axis_and_rejects_impossible_targets():
    r = layers.Reshape((-1, 2), name="rs")
    assert r(np.zeros((3, 4, 3), np.float32)).shape == (3, 6, 2)
    assert r.compute_output_shape((None, 4, 3)) == (None, 6, 2)
    with pytest.raises(ShapeError, match=r"rs.*\(5,\).*\(-1, 2\)"):
        r(np.zeros((3, 5), np.float32))
    with pytest.raises(EmberValueError, match="at most one -1"):
        layers.Reshape((-1, -1))
    assert layers.Reshape.from_config(r.get_config()).target_shape == (-1, 2)


# ---------------------------------------------------------------------------------- elementwise
def test_activation_layer_applies_the_named_function(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(layers.Activation("relu")(x).data, np.maximum(x, 0))
    a = layers.Activation(em.activations.swish)
    assert a.get_config()["activation"] == "swish"
    assert layers.Activation.from_config(a.get_config()).activation is em.activations.swish


def test_activation_layer_gradcheck(float64, rng):
    assert gradcheck_layer(layers.Activation("gelu"), rng.standard_normal((3, 4)))
    assert gradcheck_layer(layers.Activation("softmax"), rng.standard_normal((3, 4)))


def test_dropout_is_the_identity_at_inference():
    x = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    d = layers.Dropout(0.5)
    np.testing.assert_array_equal(d(x).data, x)
    np.testing.assert_array_equal(d(x, training=False).data, x)


def test_dropout_zeroes_a_rate_fraction_and_scales_survivors():
    rate, n = 0.3, 200_000
    y = layers.Dropout(rate)(np.ones(n, np.float32).reshape(-1, 100), training=True).data
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    # fraction dropped within 5 binomial standard errors of rate
    assert abs((~kept).mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    assert y.dtype == np.float32


def test_dropout_gradient_is_the_same_mask(float64):
    d = layers.Dropout(0.4, seed=1)
    x = em.tensor(np.ones((10, 10)), requires_grad=True)
    y = d(x, training=True)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)


def test_dropout_seed_gives_a_layer_its_own_reproducible_stream():
    x = np.ones((20, 20), np.float32)
    em.set_seed(1)
    a = layers.Dropout(0.5, seed=3)(x, training=True).data
    em.set_seed(2)
    b = layers.Dropout(0.5, seed=3)(x, training=True).data
    np.testing.assert_array_equal(a, b)
    # unseeded: follows ember.set_seed
    em.set_seed(5)
    c = layers.Dropout(0.5)(x, training=True).data
    em.set_seed(5)
    np.testing.assert_array_equal(layers.Dropout(0.5)(x, training=True).data, c)


def test_dropout_noise_shape_shares_the_mask_along_axes_of_size_one():
    x = np.ones((4, 5, 6), np.float32)
    y = layers.Dropout(0.5, noise_shape=(None, 1, None))(x, training=True).data
    assert np.all(y == y[:, :1, :])


def test_dropout_validates_rate_and_noise_shape():
    with pytest.raises(EmberValueError, match=r"rate must be in \[0, 1\), received rate=1.5"):
        layers.Dropout(1.5)
    with pytest.raises(EmberTypeError, match="rate"):
        layers.Dropout("0.5")
    with pytest.raises(ShapeError, match="noise_shape"):
        layers.Dropout(0.5, noise_shape=(None, 3))(np.ones((2, 4), np.float32), training=True)
    d = layers.Dropout(0.25, noise_shape=(None, 1), seed=4)
    assert layers.Dropout.from_config(d.get_config()).get_config() == d.get_config()


def test_lambda_wraps_a_function_and_refuses_to_load_code():
    lam = layers.Lambda(lambda t: t * 2.0)
    np.testing.assert_array_equal(lam(np.ones((2, 2), np.float32)).data, np.full((2, 2), 2.0))
    assert lam.compute_output_shape((None, 2)) == (None, 2)
    with pytest.raises(EmberValueError, match="never loads code"):
        layers.Lambda.from_config(lam.get_config())
    config = {**lam.get_config(), "function": lambda t: t + 1.0}
    np.testing.assert_array_equal(layers.Lambda.from_config(config)(np.zeros((1, 1))).data, [[1]])
    with pytest.raises(EmberTypeError, match="callable"):
        layers.Lambda(3)
