"""Embedding layer: lookup, masks, pretrained tables, errors, gradcheck."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberValueError
from ember.initializers import Constant


def test_lookup_shape_weights_and_default_uniform_init():
    e = layers.Embedding(100, 8)
    ids = np.array([[1, 2, 3], [4, 5, 99]])
    y = e(ids)
    assert y.shape == (2, 3, 8) and y.dtype == np.float32
    (table,) = e.get_weights()
    assert table.shape == (100, 8)
    assert np.abs(table).max() <= 0.05  # Keras's "uniform": U(-0.05, 0.05)
    np.testing.assert_array_equal(y.data, table[ids])
    assert e.compute_output_shape((None, 3)) == (None, 3, 8)


def test_pretrained_vectors_via_constant_or_set_weights(rng):
    matrix = rng.standard_normal((5, 3))
    e = layers.Embedding(5, 3, embeddings_initializer=Constant(matrix), trainable=False)
    np.testing.assert_allclose(e(np.array([4, 0])).data, matrix[[4, 0]], rtol=1e-6)
    assert e.trainable_weights == []
    e2 = layers.Embedding(5, 3)
    e2(np.array([0]))
    e2.set_weights([matrix])
    np.testing.assert_allclose(e2(np.array([[2]])).data, matrix[[[2]]], rtol=1e-6)


def test_mask_zero_marks_padding():
    ids = np.array([[3, 1, 0, 0], [2, 0, 0, 0]])
    mask = layers.Embedding(5, 2, mask_zero=True).compute_mask(ids)
    np.testing.assert_array_equal(np.asarray(mask), ids != 0)
    assert layers.Embedding(5, 2).compute_mask(ids) is None


def test_out_of_range_ids_name_layer_input_dim_and_value():
    e = layers.Embedding(10, 4, name="words")
    with pytest.raises(EmberValueError, match=r"words.*input_dim=10.*received the id 12"):
        e(np.array([[1, 12]]))
    with pytest.raises(EmberValueError, match=r"words.*-2"):
        e(np.array([[-2, 1]]))


def test_gradients_reach_the_used_rows_only(rng):
    e = layers.Embedding(6, 2)
    ids = np.array([[1, 1], [3, 0]])
    e(ids).sum().backward()
    np.testing.assert_array_equal(e.embeddings.grad[:, 0], [1, 2, 0, 1, 0, 0])


def test_gradcheck(float64, rng):
    e = layers.Embedding(4, 3)
    ids = np.array([[0, 3], [3, 1]])
    e(ids)

    def fn(table):
        old = e.embeddings
        e.embeddings = table
        try:
            return e(ids)
        finally:
            e.embeddings = old

    assert em.gradcheck(fn, [em.tensor(e.embeddings.data, requires_grad=True)])


def test_config_validation_and_round_trip():
    with pytest.raises(EmberValueError, match="input_dim must be a positive int"):
        layers.Embedding(0, 4)
    with pytest.raises(EmberValueError, match="output_dim"):
        layers.Embedding(4, -1)
    e = layers.Embedding(7, 2, mask_zero=True, embeddings_regularizer="l2")
    assert layers.Embedding.from_config(e.get_config()).get_config() == e.get_config()
