"""layers/conv.py: Conv2D's weights (order, shapes, count), output shapes for SAME and VALID
computed by hand, explain(), errors, config round trip and gradcheck."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError


def gradcheck_layer(layer, x):
    """gradcheck the layer's output against its input and every weight (float64), calling the
    real call() with gradcheck's copies of the weights put in place."""
    x = em.tensor(x, requires_grad=True)
    layer(x)  # build
    names = [k for k, v in vars(layer).items() if any(v is p for p in layer.trainable_weights)]
    params = [getattr(layer, k) for k in names]

    def fn(x, *ws):
        for k, w in zip(names, ws):
            object.__setattr__(layer, k, w)
        try:
            return layer(x)
        finally:
            for k, p in zip(names, params):
                object.__setattr__(layer, k, p)

    return em.gradcheck(fn, [x, *[em.tensor(p.data, requires_grad=True) for p in params]])


def test_conv2d_weights_are_kernel_then_bias_in_keras_shapes():
    conv = layers.Conv2D(8, (3, 5), name="c")
    conv(np.zeros((1, 9, 9, 4), np.float32))
    assert [w.shape for w in conv.get_weights()] == [(3, 5, 4, 8), (8,)]
    assert [w.name for w in conv.weights] == ["c/kernel", "c/bias"]
    assert conv.count_params() == 3 * 5 * 4 * 8 + 8
    assert all(w.dtype == np.float32 for w in conv.get_weights())


def test_conv2d_without_bias_has_only_a_kernel():
    conv = layers.Conv2D(2, 1, use_bias=False)
    conv(np.zeros((1, 4, 4, 3), np.float32))
    assert [w.shape for w in conv.get_weights()] == [(1, 1, 3, 2)]
    assert conv.count_params() == 6


@pytest.mark.parametrize(
    "kwargs, in_shape, out_shape",
    [
        ({"kernel_size": 3}, (2, 28, 28, 1), (2, 26, 26, 5)),
        ({"kernel_size": 3, "padding": "same"}, (2, 28, 28, 1), (2, 28, 28, 5)),
        ({"kernel_size": 3, "strides": 2}, (2, 28, 27, 1), (2, 13, 13, 5)),  # (28-3)//2+1
        ({"kernel_size": 3, "strides": 2, "padding": "same"}, (2, 7, 8, 1), (2, 4, 4, 5)),
        ({"kernel_size": (2, 4), "padding": "valid"}, (1, 5, 6, 2), (1, 4, 3, 5)),
        ({"kernel_size": 3, "dilation_rate": 2}, (1, 9, 10, 1), (1, 5, 6, 5)),  # span 5
        ({"kernel_size": 5, "dilation_rate": 2, "padding": "same"}, (1, 9, 9, 1), (1, 9, 9, 5)),
    ],
)
def test_conv2d_output_shapes_by_hand(kwargs, in_shape, out_shape):
    conv = layers.Conv2D(5, **kwargs)
    assert conv.compute_output_shape((None, *in_shape[1:])) == (None, *out_shape[1:])
    assert conv(np.zeros(in_shape, np.float32)).shape == out_shape


def test_compute_output_shape_does_not_build_the_layer():
    conv = layers.Conv2D(4, 3, padding="same")
    assert conv.compute_output_shape((None, None, 12, 3)) == (None, None, 12, 4)
    assert not conv.built and conv.kernel is None


def test_conv2d_computes_the_convolution_then_the_activation(rng):
    conv = layers.Conv2D(2, 2, activation="relu")
    x = rng.standard_normal((1, 3, 3, 1)).astype(np.float32)
    y = conv(x).data
    k, b = conv.get_weights()
    expected = np.zeros((1, 2, 2, 2), np.float32)
    for i in range(2):
        for j in range(2):
            window = x[0, i : i + 2, j : j + 2, 0]  # (2, 2)
            expected[0, i, j] = np.maximum((window[:, :, None] * k[:, :, 0]).sum((0, 1)) + b, 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_conv2d_gradcheck_float64(float64, rng):
    layer = layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh")
    assert gradcheck_layer(layer, rng.standard_normal((2, 5, 6, 2)))
    dilated = layers.Conv2D(2, (2, 3), dilation_rate=(1, 2), bias_initializer="ones")
    assert gradcheck_layer(dilated, rng.standard_normal((1, 4, 7, 2)))


def test_conv2d_casts_float64_inputs_to_its_float32_weights(rng):
    conv = layers.Conv2D(2, 3)
    y = conv(em.tensor(rng.standard_normal((1, 4, 4, 1)), dtype=np.float64))
    assert y.dtype == np.float32


def test_explain_gives_the_formula_and_the_exact_same_padding():
    text = layers.Conv2D(32, 3, strides=2, padding="same", name="c1").explain((28, 27, 1))
    # height: ceil(28/2) = 14, total max(13*2 + 3 - 28, 0) = 1 -> top 0, bottom 1
    assert "c1: input (28, 27, 1) -> output (14, 14, 32)" in text
    assert "ceil(28 / 2) = 14" in text and "= 1 -> top 0, bottom 1" in text
    # width: ceil(27/2) = 14, total max(13*2 + 3 - 27, 0) = 2 -> left 1, right 1
    assert "= 2 -> left 1, right 1" in text
    assert "3 * 3 * 1 * 32 = 288 weights + 32 biases = 320" in text


def test_explain_valid_padding_and_dilation():
    text = layers.Conv2D(4, 3, dilation_rate=2).explain((None, 10, 11, 3))
    assert "output (6, 7, 4)" in text
    assert "(3 - 1) * 2 + 1 = 5" in text and "floor((10 - 5) / 1) + 1 = 6" in text
    assert "no padding" in text


# ------------------------------------------------------------------------------ errors


def test_conv2d_given_a_3d_input_names_layer_expected_and_received():
    conv = layers.Conv2D(4, 3, name="conv_a")
    with pytest.raises(
        ShapeError,
        match=r"conv_a: expected a 4-D input \(batch, height, width, channels\), "
        r"received an input of shape \(28, 28, 1\)",
    ):
        conv(np.zeros((28, 28, 1), np.float32))


def test_conv2d_whose_channel_count_changed_after_build_raises():
    conv = layers.Conv2D(4, 3, name="conv_b")
    conv(np.zeros((1, 6, 6, 3), np.float32))
    with pytest.raises(
        ShapeError, match=r"conv_b: expected an input with 3 channels .*received .*\(1, 6, 6, 5\)"
    ):
        conv(np.zeros((1, 6, 6, 5), np.float32))


def test_conv2d_input_smaller_than_the_kernel_raises_naming_the_layer():
    with pytest.raises(ShapeError, match=r"conv_c: the input's spatial size \(2, 8\)"):
        layers.Conv2D(4, 3, name="conv_c")(np.zeros((1, 2, 8, 1), np.float32))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"filters": 0}, EmberValueError, "filters must be a positive int, received filters=0"),
        ({"filters": 2.5}, EmberValueError, "filters=2.5"),
        ({"kernel_size": (3, 0)}, EmberValueError, r"kernel_size must be .*\(3, 0\)"),
        ({"strides": "2"}, EmberValueError, "strides must be a positive int or a pair"),
        ({"padding": "causal"}, EmberValueError, "padding must be 'valid' or 'same'"),
        ({"strides": 2, "dilation_rate": 2}, EmberValueError, "cannot be combined"),
        ({"activation": "nope"}, EmberValueError, "unknown activation 'nope'"),
        ({"data_format": "channels_first"}, EmberValueError, "channels_last"),
        ({"bogus": 1}, EmberTypeError, "unexpected keyword"),
    ],
)
def test_conv2d_validates_its_config(kwargs, error, message):
    args = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=message):
        layers.Conv2D(**args)


# ------------------------------------------------------------------------------ config


def test_conv2d_config_round_trip_rebuilds_an_equal_layer():
    conv = layers.Conv2D(
        6, (3, 2), strides=(2, 1), padding="same", activation="relu", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer="l2", name="c9",
    )  # fmt: skip
    config = conv.get_config()
    assert config["kernel_size"] == [3, 2] and config["strides"] == [2, 1]
    again = layers.Conv2D.from_config(config)
    assert again.get_config() == config
    again(np.zeros((1, 5, 5, 2), np.float32))
    assert [w.shape for w in again.weights] == [(3, 2, 2, 6)]


def test_convolution2d_is_an_alias_loadable_by_both_names():
    from ember.layers.base import get_registered

    assert layers.Convolution2D is layers.Conv2D
    assert get_registered("Conv2D") is get_registered("Convolution2D") is layers.Conv2D


def test_conv2d_regularizers_add_their_penalties_to_losses():
    conv = layers.Conv2D(2, 3, kernel_regularizer=em.regularizers.L2(0.5), bias_regularizer="l1")
    conv(np.zeros((1, 4, 4, 1), np.float32))
    conv.set_weights([np.ones((3, 3, 1, 2)), np.full(2, -2.0)])
    penalties = sorted(float(p.item()) for p in conv.losses)
    # L2(0.5): 0.5 * 18 ones; "l1" is Keras's L1(0.01): 0.01 * (2 + 2)
    np.testing.assert_allclose(penalties, [0.04, 9.0], rtol=1e-6)
