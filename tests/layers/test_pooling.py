"""layers/pooling.py: pooling layers' outputs and shapes (by hand), masks, errors, configs."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import get_registered


def test_max_and_average_pooling_2x2_by_hand():
    x = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]], np.float32)
    x = x.reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(layers.MaxPool2D()(x).data.ravel(), [4, 8, 12, 16])
    np.testing.assert_allclose(layers.AveragePooling2D()(x).data.ravel(), [2.5, 6.5, 10.5, 14.5])


@pytest.mark.parametrize(
    "cls, kwargs, in_shape, out_shape",
    [
        (layers.MaxPooling2D, {}, (2, 28, 28, 3), (2, 14, 14, 3)),
        (layers.MaxPooling2D, {}, (2, 7, 7, 3), (2, 3, 3, 3)),  # floor(7 / 2)
        (layers.MaxPooling2D, {"padding": "same"}, (2, 7, 7, 3), (2, 4, 4, 3)),  # ceil(7 / 2)
        (layers.AveragePooling2D, {"pool_size": 3, "strides": 1}, (1, 5, 6, 2), (1, 3, 4, 2)),
        (layers.AvgPool2D, {"pool_size": (2, 3), "strides": (1, 2)}, (1, 4, 7, 1), (1, 3, 3, 1)),
        (layers.GlobalAveragePooling2D, {}, (2, 5, 6, 4), (2, 4)),
        (layers.GlobalMaxPooling2D, {"keepdims": True}, (2, 5, 6, 4), (2, 1, 1, 4)),
        (layers.GlobalAveragePooling1D, {}, (2, 7, 4), (2, 4)),
        (layers.GlobalMaxPooling1D, {"keepdims": True}, (2, 7, 4), (2, 1, 4)),
    ],
)
def test_pooling_output_shapes_by_hand(cls, kwargs, in_shape, out_shape):
    layer = cls(**kwargs)
    assert layer.compute_output_shape((None, *in_shape[1:])) == (None, *out_shape[1:])
    assert layer(np.zeros(in_shape, np.float32)).shape == out_shape


def test_pooling_has_no_weights():
    layer = layers.MaxPool2D()
    layer(np.zeros((1, 4, 4, 1), np.float32))
    assert layer.weights == [] and layer.count_params() == 0


def test_pooling_passes_gradients_to_the_input(float64):
    x = em.tensor(np.arange(16.0).reshape(1, 4, 4, 1), requires_grad=True)
    layers.AveragePooling2D()(x).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((1, 4, 4, 1), 0.25))


def test_global_average_pooling_1d_with_a_mask_averages_the_kept_steps():
    x = np.arange(12.0, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[True, True, False], [False, False, False]])
    y = layers.GlobalAveragePooling1D()(x, mask=mask).data
    np.testing.assert_allclose(y[0], [(0 + 2) / 2, (1 + 3) / 2])
    np.testing.assert_array_equal(y[1], [0.0, 0.0])  # every step masked: zeros, not NaN
    assert layers.GlobalAveragePooling1D().compute_mask(x, mask) is None


def test_global_average_pooling_1d_rejects_a_mask_of_another_shape():
    with pytest.raises(ShapeError, match=r"gap: expected a mask of shape \(2, 3\)"):
        layers.GlobalAveragePooling1D(name="gap")(np.ones((2, 3, 2)), mask=np.ones((2, 4)))


def test_pooling_explain_gives_the_same_padding():
    text = layers.MaxPool2D(2, padding="same", name="p").explain((7, 8, 3))
    assert "p: input (7, 8, 3) -> output (4, 4, 3)" in text
    assert "= 1 -> top 0, bottom 1" in text and "= 0 -> left 0, right 0" in text


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "cls", [layers.MaxPool2D, layers.AveragePooling2D, layers.GlobalAveragePooling2D]
)
def test_2d_pooling_given_a_3d_input_names_layer_expected_and_received(cls):
    with pytest.raises(
        ShapeError, match=r"pool_x: expected a 4-D input \(batch, height, width, channels\).*"
        r"\(28, 28, 1\)",
    ):  # fmt: skip
        cls(name="pool_x")(np.zeros((28, 28, 1), np.float32))


def test_1d_global_pooling_given_images_names_the_expected_shape():
    with pytest.raises(ShapeError, match=r"g1: expected a 3-D input \(batch, steps, features\)"):
        layers.GlobalMaxPooling1D(name="g1")(np.zeros((1, 4, 4, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"pool_size": 0}, EmberValueError, "pool_size must be a positive int.*pool_size=0"),
        ({"strides": (2, 2, 2)}, EmberValueError, r"strides=\(2, 2, 2\)"),
        ({"padding": "full"}, EmberValueError, "padding must be 'valid' or 'same'"),
    ],
)
def test_pooling_validates_its_config(kwargs, error, message):
    with pytest.raises(error, match=message):
        layers.MaxPooling2D(**kwargs)


def test_global_pooling_validates_keepdims():
    with pytest.raises(EmberTypeError, match="keepdims must be a bool, received keepdims='yes'"):
        layers.GlobalAveragePooling2D(keepdims="yes")


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "layer",
    [
        layers.MaxPooling2D((3, 2), strides=1, padding="same"),
        layers.AveragePooling2D(2),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.GlobalMaxPooling2D(),
        layers.GlobalAveragePooling1D(),
        layers.GlobalMaxPooling1D(keepdims=True),
    ],
)
def test_pooling_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def test_pooling_aliases_are_the_same_classes_and_loadable_by_both_names():
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool2D is layers.AveragePooling2D
    assert get_registered("MaxPool2D") is get_registered("MaxPooling2D")
    assert get_registered("AvgPool2D") is get_registered("AveragePooling2D")
