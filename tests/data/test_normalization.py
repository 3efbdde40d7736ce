"""ember.data.normalization against scikit-learn's scalers and NumPy statistics."""

import numpy as np
import pytest

from ember.data import normalization as N
from ember.errors import EmberValueError, ShapeError

preprocessing = pytest.importorskip("sklearn.preprocessing", reason="scikit-learn is absent")


@pytest.mark.parametrize("feature_range", [(0, 1), (-1, 1), (2, 5)])
def test_minmax_scale_matches_scikit_learn(feature_range, rng):
    x = rng.normal(size=(30, 4)) * [1, 10, 100, 0.1]
    ours = N.minmax_scale(x, feature_range)
    ref = preprocessing.MinMaxScaler(feature_range=feature_range).fit_transform(x)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_standardize_matches_scikit_learn_and_keeps_float32(rng):
    x = (rng.normal(size=(40, 3)) * 7 + 2).astype(np.float32)
    ours = N.standardize(x)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, preprocessing.StandardScaler().fit_transform(x), atol=1e-5)


def test_constant_features_do_not_divide_by_zero():
    x = np.array([[1.0, 3.0], [2.0, 3.0]])
    np.testing.assert_allclose(N.minmax_scale(x), [[0, 0], [1, 0]])
    np.testing.assert_allclose(N.standardize(x), [[-1, 0], [1, 0]])


def test_scalers_fit_on_train_and_apply_the_same_statistics_to_test(rng):
    train, test = rng.normal(size=(50, 2)), rng.normal(size=(10, 2)) + 3
    ours = N.StandardScaler().fit(train)
    ref = preprocessing.StandardScaler().fit(train)
    np.testing.assert_allclose(ours.transform(test), ref.transform(test), atol=1e-12)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(test)), test, atol=1e-12)
    mm = N.MinMaxScaler((-1, 1)).fit(train)
    np.testing.assert_allclose(mm.inverse_transform(mm.transform(test)), test, atol=1e-12)


def test_rescale_maps_uint8_pixels_to_unit_range():
    out = N.rescale(np.array([0, 51, 255], np.uint8), 1 / 255)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0.2, 1], rtol=1e-6)


def test_per_channel_image_normalization(rng):
    images = rng.random((8, 5, 5, 3)) * [1, 50, 255]
    mean, std = N.channel_stats(images)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 1, 2)))
    out = N.normalize_images(images)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, rtol=1e-10)
    other = N.normalize_images(images[:2], mean, std)
    np.testing.assert_allclose(other, (images[:2] - mean) / std)


def test_normalization_helpers_reject_bad_input(rng):
    with pytest.raises(EmberValueError, match="low < high"):
        N.minmax_scale(rng.random((3, 2)), (1, 0))
    with pytest.raises(ShapeError, match="one value per channel"):
        N.normalize_images(rng.random((2, 3, 3, 3)), mean=[0, 0], std=[1, 1])
    with pytest.raises(EmberValueError, match="fit"):
        N.StandardScaler().transform(rng.random((2, 2)))
