"""Synthetic tasks: shapes, dtypes, and that each task is what its definition says."""

import numpy as np
import pytest

from ember import datasets
from ember.errors import EmberValueError


@pytest.mark.parametrize(
    "fn, x_shape, y_shape, x_kind",
    [
        (datasets.spirals, (2,), (), "f"),
        (datasets.xor, (2,), (), "f"),
        (datasets.adding_problem, (100, 2), (1,), "f"),
        (datasets.copy_task, (40,), (40,), "i"),
        (datasets.imbalanced, (2,), (), "f"),
    ],
)
def test_synthetic_tasks_return_documented_shapes_and_a_fixed_split(fn, x_shape, y_shape, x_kind):
    (xtr, ytr), (xte, yte) = fn()
    assert xtr.shape == (800,) + x_shape and xte.shape == (200,) + x_shape
    assert ytr.shape == (800,) + y_shape and yte.shape == (200,) + y_shape
    assert xtr.dtype.kind == x_kind and (x_kind == "i" or xtr.dtype == np.float32)
    (xtr2, _), _ = fn()
    np.testing.assert_array_equal(xtr, xtr2)
    (xtr3, _), _ = fn(seed=1)
    assert not np.array_equal(xtr, xtr3)


def test_xor_labels_are_one_in_the_off_diagonal_quadrants():
    (x, y), _ = datasets.xor(noise=0.0)
    np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(int))
    assert 0.4 < y.mean() < 0.6


def test_spirals_have_balanced_classes_with_radius_up_to_one():
    (x, y), (xt, yt) = datasets.spirals(n_samples=300, n_classes=3, noise=0.0)
    assert np.bincount(np.concatenate([y, yt])).tolist() == [100, 100, 100]
    r = np.linalg.norm(np.concatenate([x, xt]), axis=1)
    assert r.max() <= 1.0 + 1e-6 and r.min() >= 0.05 - 1e-6


def test_adding_problem_target_is_the_sum_of_the_two_marked_values():
    (x, y), _ = datasets.adding_problem(n_samples=50, seq_len=20)
    marks = x[:, :, 1]
    assert np.all(marks.sum(axis=1) == 2)
    assert np.all(marks[:, :10].sum(axis=1) == 1) and np.all(marks[:, 10:].sum(axis=1) == 1)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(axis=1), rtol=1e-6)


def test_copy_task_target_repeats_the_symbols_after_the_delimiter():
    (x, y), _ = datasets.copy_task(n_samples=20, seq_len=5, delay=7, n_symbols=4)
    assert x.shape == (16, 17)
    np.testing.assert_array_equal(y[:, 12:], x[:, :5])
    assert np.all(y[:, :12] == 0)
    assert np.all(x[:, 11] == 5) and np.all(x[:, 5:11] == 0) and np.all(x[:, 12:] == 0)
    assert x[:, :5].min() >= 1 and x[:, :5].max() <= 4


def test_imbalanced_keeps_the_class_ratio_in_both_splits():
    (x, y), (xt, yt) = datasets.imbalanced(n_samples=1000, weights=(0.9, 0.1))
    assert np.bincount(y).tolist() == [720, 80] and np.bincount(yt).tolist() == [180, 20]


def test_synthetic_tasks_reject_bad_sizes():
    with pytest.raises(EmberValueError, match="n_samples"):
        datasets.spirals(n_samples=0)
    with pytest.raises(EmberValueError, match="weights"):
        datasets.imbalanced(weights=(1.0,))
