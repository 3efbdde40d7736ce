"""Class weights against scikit-learn; random over/under-sampling counts; SMOTE's geometry
(every synthetic point on a segment between a minority point and one of its k nearest minority
neighbours, found independently with scikit-learn)."""

import numpy as np
import pytest

from ember.data import compute_class_weight, oversample, smote, undersample
from ember.data.imbalance import nearest_neighbors
from ember.errors import EmberValueError, ShapeError

sklearn_utils = pytest.importorskip("sklearn.utils", reason="scikit-learn (test oracle) is absent")
from sklearn.neighbors import NearestNeighbors  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight as sk_class_weight  # noqa: E402


def _toy(rng, counts=(60, 15, 8), dims=3):
    x = np.concatenate([rng.normal(i * 3, 1, (n, dims)) for i, n in enumerate(counts)])
    y = np.repeat(np.arange(len(counts)), counts)
    return x.astype(np.float32), y


def test_balanced_class_weights_match_scikit_learn(rng):
    y = rng.choice([0, 1, 4], size=97, p=[0.7, 0.2, 0.1])
    ours = compute_class_weight(y, "balanced")
    classes = np.unique(y)
    expected = sk_class_weight("balanced", classes=classes, y=y)
    assert list(ours) == classes.tolist()
    np.testing.assert_allclose([ours[c] for c in classes.tolist()], expected)


def test_class_weights_read_one_hot_labels(rng):
    y = rng.choice(3, size=40)
    one_hot = np.eye(3)[y]
    assert compute_class_weight(one_hot) == compute_class_weight(y)


def test_dict_class_weights_fill_unnamed_classes_with_one():
    y = np.array([0, 0, 1, 2])
    assert compute_class_weight(y, {1: 3.0}) == {0: 1.0, 1: 3.0, 2: 1.0}


def test_balanced_weights_for_a_listed_class_absent_from_y_raise():
    with pytest.raises(EmberValueError, match=r"\[5\] do not occur"):
        compute_class_weight(np.array([0, 1]), "balanced", classes=[0, 1, 5])


def test_oversample_balances_by_repeating_minority_samples(rng):
    x, y = _toy(rng)
    xr, yr = oversample(x, y, seed=0)
    assert np.bincount(yr).tolist() == [60, 60, 60]
    np.testing.assert_array_equal(xr[: len(x)], x)  # originals first
    originals = {tuple(row) for row in x}
    assert all(tuple(row) in originals for row in xr[len(x) :])
    for row, label in zip(xr[len(x) :], yr[len(x) :]):
        assert y[np.flatnonzero((x == row).all(axis=1))[0]] == label


def test_undersample_keeps_a_subset_of_each_class_in_order(rng):
    x, y = _toy(rng)
    xr, yr = undersample(x, y, seed=0)
    assert np.bincount(yr).tolist() == [8, 8, 8]
    idx = [np.flatnonzero((x == row).all(axis=1))[0] for row in xr]
    assert idx == sorted(idx) and len(set(idx)) == 24
    np.testing.assert_array_equal(y[idx], yr)


def test_nearest_neighbors_match_scikit_learn(rng):
    pts = rng.normal(size=(40, 4))
    ours = nearest_neighbors(pts, 5, chunk=7)  # several chunks
    ref = NearestNeighbors(n_neighbors=6).fit(pts).kneighbors(pts, return_distance=False)[:, 1:]
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_smote_points_lie_on_segments_to_k_nearest_minority_neighbours(k, rng):
    x, y = _toy(rng)
    xr, yr = smote(x, y, k_neighbors=k, seed=1)
    assert np.bincount(yr).tolist() == [60, 60, 60]
    np.testing.assert_array_equal(xr[: len(x)], x)
    synth_x, synth_y = xr[len(x) :].astype(np.float64), yr[len(x) :]
    for c in (1, 2):
        pts = x[y == c].astype(np.float64)
        nn = NearestNeighbors(n_neighbors=k + 1).fit(pts).kneighbors(pts, return_distance=False)
        for s in synth_x[synth_y == c]:
            on_a_segment = False
            for a_i in range(len(pts)):
                a = pts[a_i]
                for b_i in nn[a_i, 1:]:
                    d = pts[b_i] - a
                    u = np.dot(s - a, d) / np.dot(d, d)
                    if -1e-6 <= u <= 1 + 1e-6 and np.linalg.norm(a + u * d - s) < 1e-4:
                        on_a_segment = True
                        break
                if on_a_segment:
                    break
            assert on_a_segment, f"synthetic point {s} of class {c} is on no neighbour segment"


def test_smote_is_seeded_and_keeps_image_shapes(rng):
    x = rng.random((30, 2, 2, 1)).astype(np.float32)
    y = np.array([0] * 24 + [1] * 6)
    a = smote(x, y, k_neighbors=3, seed=7)
    b = smote(x, y, k_neighbors=3, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (48, 2, 2, 1) and a[0].dtype == np.float32


def test_smote_keeps_one_hot_labels(rng):
    x, y = _toy(rng, counts=(20, 8))
    _, yr = smote(x, np.eye(2)[y], k_neighbors=3, seed=0)
    assert yr.shape == (40, 2) and yr.sum(axis=0).tolist() == [20, 20]


def test_smote_needs_more_minority_samples_than_neighbours(rng):
    x, y = _toy(rng, counts=(20, 3))
    with pytest.raises(EmberValueError, match="class 1 has 3 samples"):
        smote(x, y, k_neighbors=5)


def test_resamplers_reject_mismatched_lengths():
    with pytest.raises(ShapeError, match="5 samples but y has 4"):
        oversample(np.zeros((5, 2)), np.zeros(4))
