"""Merging layers: Add and Concatenate over lists of tensors."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, ShapeError


def test_add_sums_its_inputs_for_a_residual_block(rng):
    a, b, c = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3))
    np.testing.assert_allclose(layers.Add()([a, b, c]).data, a + b + c, rtol=1e-6)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    dense = layers.Dense(5)
    y = layers.Add()([x, dense(x)])
    np.testing.assert_allclose(y.data, x + dense(x).data, rtol=1e-6)
    assert layers.Add().compute_output_shape([(None, 5), (None, 5)]) == (None, 5)


def test_concatenate_joins_along_the_axis(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(layers.Concatenate()([a, b]).data, np.concatenate([a, b], -1))
    np.testing.assert_array_equal(
        layers.Concatenate(axis=1)([a, a]).data, np.concatenate([a, a], 1)
    )
    assert layers.Concatenate().compute_output_shape([(None, 3, 4), (None, 3, 2)]) == (None, 3, 6)


def test_merge_gradients(float64, rng):
    a = em.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = em.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    assert em.gradcheck(lambda a, b: layers.Concatenate()([a, b]), [a, b])
    c = em.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert em.gradcheck(lambda a, c: layers.Add()([a, c]), [a, c])


def test_merge_errors_name_the_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"sum.*\(2, 3\).*\(2, 4\)"):
        layers.Add(name="sum")([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ShapeError, match=r"cat.*but -1"):
        layers.Concatenate(name="cat")([np.ones((2, 3)), np.ones((3, 3))])
    with pytest.raises(EmberTypeError, match="list of at least 2"):
        layers.Add()(np.ones((2, 3)))
    c = layers.Concatenate(axis=1)
    assert layers.Concatenate.from_config(c.get_config()).axis == 1
