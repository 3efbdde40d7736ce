"""Data adapters: batches from every accepted input, epochs, class weights."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.errors import EmberTypeError
from ember.training import data_adapter as da


def test_arrays_are_batched_in_order_or_shuffled_per_pass():
    x = np.arange(10, dtype="float32")[:, None]
    y = np.arange(10)
    adapter = da.adapt(x, y, batch_size=4, shuffle=False)
    assert adapter.steps == 3
    batches = list(adapter.batches())
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    em.set_seed(0)
    shuffled = da.adapt(x, y, batch_size=4, shuffle=True)
    first = np.concatenate([b[1] for b in shuffled.batches()])
    second = np.concatenate([b[1] for b in shuffled.batches()])
    assert sorted(first) == list(range(10)) and not np.array_equal(first, second)
    em.set_seed(0)
    expected = em.backend.rng().permutation(10)  # the order comes from ember's generator
    np.testing.assert_array_equal(first, expected)
    for xb, yb, _ in da.adapt(x, y, batch_size=4, shuffle="batch").batches():
        np.testing.assert_array_equal(xb[:, 0], yb)  # rows keep their pairing


def test_float64_inputs_become_floatx_once():
    adapter = da.adapt(np.zeros((4, 2)), np.zeros(4), batch_size=2)
    assert adapter.x.dtype == np.float32 and adapter.y.dtype == np.float32


def test_batch_forms_unpack_like_keras():
    assert da.unpack(1) == (1, None, None)
    assert da.unpack((1,)) == (1, None, None)
    assert da.unpack([1, 2]) == (1, 2, None)
    assert da.unpack((1, 2, 3)) == (1, 2, 3)
    assert da.unpack({"x": 1, "y": 2}) == (1, 2, None)


def test_steps_per_epoch_restarts_a_pass_when_one_runs_out():
    x = np.arange(5, dtype="float32")[:, None]
    it = da.EpochIterator(da.adapt(x, np.arange(5), batch_size=2), steps_per_epoch=4)
    epoch1 = [b[1].tolist() for b in it.epoch()]
    epoch2 = [b[1].tolist() for b in it.epoch()]
    assert epoch1 == [[0, 1], [2, 3], [4], [0, 1]]
    assert epoch2 == [[2, 3], [4], [0, 1], [2, 3]]


def test_a_generator_is_read_once():
    gen = ((np.ones((2, 1)), np.zeros(2)) for _ in range(3))
    it = da.EpochIterator(da.adapt(gen))
    assert len(list(it.epoch())) == 3
    assert list(it.epoch()) == [] and it.exhausted


def test_unknown_inputs_are_refused():
    with pytest.raises(EmberTypeError, match="x must be"):
        da.adapt(object())


def test_class_weight_to_sample_weight_follows_keras_label_rules():
    cw = {0: 0.5, 2: 4.0}
    np.testing.assert_allclose(da.class_weight_to_sample_weight(np.array([0, 1, 2]), cw),
                               [0.5, 1.0, 4.0])  # fmt: skip
    onehot = np.eye(3)[[2, 0]]
    np.testing.assert_allclose(da.class_weight_to_sample_weight(onehot, cw), [4.0, 0.5])
    column = np.array([[0.0], [1.0]])
    np.testing.assert_allclose(da.class_weight_to_sample_weight(column, {1: 3.0}), [1.0, 3.0])


def test_balanced_class_weight_matches_scikit_learn():
    utils = pytest.importorskip("sklearn.utils")
    y = np.array([0, 0, 0, 0, 1, 2, 2, 5])
    got = da.balanced_class_weight(y)
    classes = np.unique(y)
    expected = utils.compute_class_weight("balanced", classes=classes, y=y)
    assert list(got) == classes.tolist()
    np.testing.assert_allclose(list(got.values()), expected)
