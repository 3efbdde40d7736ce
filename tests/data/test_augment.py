"""ember.data.augment: the batch transforms checked against independent references: SciPy's
map_coordinates for affine resampling under every fill mode, NumPy flips and slices, and a
hand-written bilinear resize."""

import numpy as np
import pytest

from ember.data import augment
from ember.errors import EmberValueError, ShapeError

ndimage = pytest.importorskip("scipy.ndimage", reason="SciPy (test-only oracle) is not installed")

# our fill modes -> SciPy's names for the same extension of the image
SCIPY_MODE = {
    "reflect": "reflect",
    "mirror": "mirror",
    "wrap": "grid-wrap",
    "nearest": "nearest",
    "constant": "grid-constant",
}


def _random_matrices(rng, n, h, w):
    angles = rng.uniform(-np.pi, np.pi, n)
    zx, zy = rng.uniform(0.6, 1.6, n), rng.uniform(0.6, 1.6, n)
    dx, dy = rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)
    return augment.compose(
        augment.rotation_matrix(angles, h, w),
        augment.translation_matrix(dx, dy),
        augment.zoom_matrix(zx, zy, h, w),
    )


@pytest.mark.parametrize("fill_mode", sorted(SCIPY_MODE))
def test_affine_transform_matches_scipy_map_coordinates(fill_mode, rng):
    n, h, w, c = 3, 7, 9, 2
    x = rng.normal(size=(n, h, w, c)).astype(np.float64)
    m = _random_matrices(rng, n, h, w)
    out = augment.affine_transform(x, m, "bilinear", fill_mode, fill_value=0.7)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        src_x = m[i, 0, 0] * xs + m[i, 0, 1] * ys + m[i, 0, 2]
        src_y = m[i, 1, 0] * xs + m[i, 1, 1] * ys + m[i, 1, 2]
        for ch in range(c):
            ref = ndimage.map_coordinates(
                x[i, :, :, ch], [src_y, src_x], order=1, mode=SCIPY_MODE[fill_mode], cval=0.7
            )
            np.testing.assert_allclose(out[i, :, :, ch], ref, atol=1e-10)


def test_affine_transform_nearest_matches_scipy_order_zero(rng):
    n, h, w = 2, 6, 5
    x = rng.normal(size=(n, h, w, 1))
    m = _random_matrices(rng, n, h, w)
    out = augment.affine_transform(x, m, "nearest", "nearest")
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        src_x = m[i, 0, 0] * xs + m[i, 0, 1] * ys + m[i, 0, 2]
        src_y = m[i, 1, 0] * xs + m[i, 1, 1] * ys + m[i, 1, 2]
        ref = ndimage.map_coordinates(x[i, :, :, 0], [src_y, src_x], order=0, mode="nearest")
        np.testing.assert_allclose(out[i, :, :, 0], ref)


def test_affine_transform_keeps_float32_and_the_identity_is_exact(rng):
    x = rng.random((2, 4, 5, 3)).astype(np.float32)
    out = augment.affine_transform(x, np.tile(np.eye(3), (2, 1, 1)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)


def test_rotation_matrix_turns_counter_clockwise_like_rot90(rng):
    x = rng.random((1, 6, 6, 1))
    out = augment.affine_transform(x, augment.rotation_matrix([np.pi / 2], 6, 6))
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(1, 2)), atol=1e-12)


def test_flip_mirrors_only_the_chosen_images(rng):
    x = rng.random((3, 4, 5, 2))
    out = augment.flip(x, horizontal=[True, False, True], vertical=[False, False, True])
    np.testing.assert_array_equal(out[0], x[0][:, ::-1])
    np.testing.assert_array_equal(out[1], x[1])
    np.testing.assert_array_equal(out[2], x[2][::-1, ::-1])


def test_crop_takes_each_image_window_at_its_corner(rng):
    x = rng.random((2, 6, 7, 1))
    out = augment.crop(x, [0, 2], [3, 1], 4, 4)
    np.testing.assert_array_equal(out[0], x[0, 0:4, 3:7])
    np.testing.assert_array_equal(out[1], x[1, 2:6, 1:5])
    with pytest.raises(ShapeError, match="does not fit"):
        augment.crop(x, [3, 0], [0, 0], 4, 4)


def _resize_reference(img, oh, ow):
    """Bilinear resize with half-pixel centres, one output pixel at a time."""
    h, w = img.shape[:2]
    out = np.zeros((oh, ow) + img.shape[2:])
    for i in range(oh):
        for j in range(ow):
            sy = min(max((i + 0.5) * h / oh - 0.5, 0.0), h - 1)
            sx = min(max((j + 0.5) * w / ow - 0.5, 0.0), w - 1)
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = sy - y0, sx - x0
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("size", [(3, 4), (9, 11), (5, 2)])
def test_resize_bilinear_uses_half_pixel_centres(size, rng):
    x = rng.random((2, 5, 6, 3))
    out = augment.resize(x, size)
    for i in range(2):
        np.testing.assert_allclose(out[i], _resize_reference(x[i], *size), atol=1e-12)


def test_brightness_contrast_and_scaling_follow_their_formulas(rng):
    x = rng.random((2, 3, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(
        augment.adjust_brightness(x, [0.5, -0.25]), x + np.array([0.5, -0.25])[:, None, None, None]
    )
    np.testing.assert_allclose(augment.adjust_brightness(x, 2.0, (0, 1)), np.ones_like(x))
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        augment.adjust_contrast(x, [2.0, 0.5]),
        (x - mean) * np.array([2.0, 0.5])[:, None, None, None] + mean,
        rtol=1e-5,
    )
    np.testing.assert_allclose(augment.scale_brightness(x, [2.0, 3.0], (0, 1.5)).max(), 1.5)


def test_affine_transform_rejects_bad_arguments(rng):
    x = rng.random((2, 3, 3, 1))
    with pytest.raises(ShapeError, match="matrices"):
        augment.affine_transform(x, np.eye(3)[None])
    with pytest.raises(EmberValueError, match="fill_mode"):
        augment.affine_transform(x, np.tile(np.eye(3), (2, 1, 1)), fill_mode="smear")
    with pytest.raises(ShapeError, match=r"\(N, H, W, C\)"):
        augment.affine_transform(x[0], np.eye(3)[None])
