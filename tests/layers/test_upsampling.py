"""UpSampling2D and the upsample2d op: nearest-neighbour values against np.repeat, gradcheck,
shapes, config and errors."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberValueError, ShapeError
from ember.ops.upsample import upsample2d


def test_upsampling_repeats_each_pixel_into_a_block(rng):
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    out = layers.UpSampling2D((2, 3))(x).numpy()
    expected = np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32


def test_upsample2d_gradcheck(float64, rng):
    x = em.tensor(rng.normal(size=(2, 3, 2, 3)), requires_grad=True)
    weights = rng.normal(size=(2, 6, 4, 3))  # a non-uniform upstream gradient
    assert em.gradcheck(lambda t: (upsample2d(t, (2, 2)) * weights).sum(), [x])
    x2 = em.tensor(rng.normal(size=(1, 2, 2, 1)), requires_grad=True)
    assert em.gradcheck(lambda t: (upsample2d(t, (3, 1)) ** 2).sum(), [x2])


def test_upsample_backward_sums_each_block():
    x = em.tensor(np.zeros((1, 2, 2, 1)), requires_grad=True)
    g = np.arange(16.0).reshape(1, 4, 4, 1)
    (upsample2d(x, 2) * g).sum().backward()
    expected = np.array([[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]])
    np.testing.assert_array_equal(x.grad[0, :, :, 0], expected)


def test_upsampling_shapes_config_and_errors():
    layer = layers.UpSampling2D(2)
    assert layer.compute_output_shape((None, 7, 7, 16)) == (None, 14, 14, 16)
    clone = layers.UpSampling2D.from_config(layers.UpSampling2D((2, 3)).get_config())
    assert clone.size == (2, 3)
    with pytest.raises(EmberValueError, match="size must be a positive int"):
        layers.UpSampling2D(0)
    with pytest.raises(EmberValueError, match="interpolation must be 'nearest'"):
        layers.UpSampling2D(2, interpolation="bilinear")
    with pytest.raises(ShapeError, match="4-D input"):
        layers.UpSampling2D(2)(np.zeros((2, 3, 4)))
    with pytest.raises(EmberValueError, match="channels_last"):
        layers.UpSampling2D(2, data_format="channels_first")
