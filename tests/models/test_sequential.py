"""Sequential: eager build from an Input, lazy build otherwise, add/pop, masks passed along."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError


def test_an_input_first_builds_every_layer_as_it_is_added():
    model = em.Sequential([layers.Input((5,)), layers.Dense(4)])
    assert model.built
    assert [w.shape for w in model.get_weights()] == [(5, 4), (4,)]
    model.add(layers.Dense(2))
    assert [w.shape for w in model.get_weights()][2:] == [(4, 2), (2,)]
    assert model.count_params() == 5 * 4 + 4 + 4 * 2 + 2
    assert len(model.layers) == 2  # the Input is not a layer of the stack
    assert model.input_shape == (None, 5)


def test_without_an_input_the_model_builds_on_its_first_batch():
    model = em.Sequential()
    model.add(layers.Dense(3))
    assert not model.built and model.weights == []
    out = model(np.ones((2, 7), "float32"))
    assert out.shape == (2, 3)
    assert model.built and model.get_weights()[0].shape == (7, 3)
    model.add(layers.Dense(1))
    assert not model.built  # rebuilt (the new layer) on the next call
    assert model(np.ones((2, 7), "float32")).shape == (2, 1)


def test_forward_is_the_composition_of_the_layers():
    model = em.Sequential(
        [layers.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(2)]
    )
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    k1, b1, k2, b2 = model.get_weights()
    expected = np.maximum(x @ k1 + b1, 0) @ k2 + b2
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-5, atol=1e-6)


def test_pop_removes_the_last_layer():
    model = em.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(2)])
    last = model.pop()
    assert isinstance(last, layers.Dense) and last.units == 2
    assert len(model.layers) == 1 and len(model.weights) == 2
    assert model(np.ones((1, 4), "float32")).shape == (1, 3)
    model.pop()
    with pytest.raises(EmberValueError, match="no layers"):
        model.pop()


def test_bad_additions_are_refused_with_clear_errors():
    model = em.Sequential([layers.Dense(2)])
    with pytest.raises(EmberValueError, match="Input can only be the first"):
        model.add(layers.Input((3,)))
    with pytest.raises(EmberTypeError, match="expected a Layer"):
        model.add("dense")
    dense = model.layers[0]
    with pytest.raises(EmberValueError, match="already in the model"):
        model.add(dense)
    eager = em.Sequential([layers.Input((3,))])
    with pytest.raises(ShapeError):
        eager.add(layers.Reshape((2, 2)))  # 3 values cannot become 2x2
    assert eager.layers == []


def test_an_input_checks_the_shape_of_incoming_batches():
    model = em.Sequential([layers.Input((4,)), layers.Dense(2)])
    with pytest.raises(ShapeError, match=r"expected input of shape \(None, 4\)"):
        model(np.ones((3, 5), "float32"))


def test_masks_flow_from_the_layer_that_makes_them_to_layers_that_take_them():
    received = []

    class MaskedMean(layers.Layer):
        """Mean over the time axis of the unmasked steps."""

        def call(self, x, training=None, mask=None):
            received.append(None if mask is None else np.asarray(getattr(mask, "data", mask)))
            m = np.ones(x.shape[:2], bool) if mask is None else received[-1]
            w = m[..., None].astype(x.dtype)
            return (x * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)

    model = em.Sequential([
        layers.Embedding(10, 3, mask_zero=True),
        MaskedMean(),
    ])  # fmt: skip
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    out = model(ids).data
    np.testing.assert_array_equal(received[-1], ids != 0)
    table = model.layers[0].get_weights()[0]
    np.testing.assert_allclose(out[0], table[[1, 2]].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[1], table[3], rtol=1e-6)


def test_a_layer_with_several_outputs_is_refused_in_an_eager_stack():
    class Two(layers.Layer):
        def call(self, x, training=None):
            return [x, x]

    model = em.Sequential([layers.Input((3,))])
    with pytest.raises(EmberValueError, match="must return one"):
        model.add(Two())


def test_sequentials_nest():
    inner = em.Sequential([layers.Dense(4, activation="relu"), layers.Dense(3)])
    outer = em.Sequential([layers.Input((5,)), inner, layers.Dense(2)])
    assert len(outer.weights) == 6
    assert outer(np.ones((2, 5), "float32")).shape == (2, 2)
    outer.compile("sgd", "mse")
    outer.fit(np.ones((8, 5)), np.zeros((8, 2)), epochs=1, verbose=0)


def test_an_lstm_after_a_masking_embedding_ignores_the_padding():
    model = em.Sequential([layers.Embedding(12, 4, mask_zero=True), layers.LSTM(5)])
    padded = np.array([[3, 7, 2, 0, 0], [5, 0, 0, 0, 0]])
    out = model(padded).data
    # the same sequences without their padding: masking must make no difference
    np.testing.assert_allclose(out[0], model(np.array([[3, 7, 2]])).data[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], model(np.array([[5]])).data[0], rtol=1e-5, atol=1e-6)
    unmasked = em.Sequential([layers.Embedding(12, 4), layers.LSTM(5)])
    unmasked(padded)
    unmasked.set_weights(model.get_weights())
    assert not np.allclose(unmasked(padded).data[0], out[0], atol=1e-4)  # the mask mattered
