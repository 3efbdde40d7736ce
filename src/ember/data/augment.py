"""Image augmentation on whole NHWC batches, one set of parameters per image.

These functions are deterministic: the randomness lives in the callers (``ImageDataGenerator``
and the ``Random*`` layers), which draw the per-image parameters from a seeded generator and pass
them here. Every function takes a batch ``(N, H, W, C)`` and transforms it in one vectorised pass:
no loop over images or pixels.

They work on NumPy arrays and on ember Tensors alike (they only use indexing, arithmetic,
``reshape``, ``mean`` and ``clip``, which both provide), so the preprocessing layers pass
gradients through them without an op of their own: the affine resampling is a gather of four
neighbours and a weighted sum, whose gradient the ``getitem`` op scatters back.

Geometry follows Keras 3's image layers. Coordinates are ``(x, y)`` = (column, row) with ``y``
pointing down; a transform is a matrix that maps an OUTPUT pixel to the INPUT point it samples.
A positive rotation turns the picture counter-clockwise (``np.rot90``'s direction); a positive
translation moves the content right / down; a zoom factor above 1 samples a larger area, i.e.
zooms out.
"""

from __future__ import annotations

import numpy as np

from ember.errors import EmberValueError, ShapeError

FILL_MODES = ("reflect", "wrap", "constant", "nearest", "mirror")
INTERPOLATIONS = ("bilinear", "nearest")


# ------------------------------------------------------------------------------- helpers
def _is_tensor(x) -> bool:
    from ember.autograd import Tensor

    return isinstance(x, Tensor)


def _check_batch(fn: str, images) -> tuple:
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ShapeError(
            f"{fn}: expected a batch of images (N, H, W, C), received an array of shape {shape}"
        )
    return shape


def _float_dtype(images) -> np.dtype:
    dtype = np.dtype(images.dtype)
    if dtype.kind != "f":
        from ember import backend

        return backend.float_dtype()
    return dtype


def _as_float(images):
    """Images as floats: integer pixels (uint8 from a decoder) become the current floatx."""
    if _is_tensor(images):
        return images if images.dtype.kind == "f" else images.astype(_float_dtype(images))
    images = np.asarray(images)
    return images if images.dtype.kind == "f" else images.astype(_float_dtype(images))


def _per_image(values, n: int, dtype, name: str) -> np.ndarray:
    """A scalar or one value per image, as an (n, 1, 1, 1) array in the images' dtype."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0:
        v = np.full(n, float(v))
    if v.shape != (n,):
        raise ShapeError(f"{name}: expected one value per image ({n},), received shape {v.shape}")
    return v.astype(dtype).reshape(n, 1, 1, 1)


def _gather_rows(flat, index):
    """flat[index] along axis 0 for an (M, C) array or Tensor and an integer index array."""
    if _is_tensor(flat):
        return flat[index]
    return np.take(flat, index, axis=0)


# ------------------------------------------------------------------------------- matrices
# Transforms are (N, 3, 3) homogeneous matrices acting on column vectors (x, y, 1) of OUTPUT
# coordinates and giving the INPUT point to sample. Building them about the image centre keeps
# each one readable: input = c + A (output - c).
def _about_center(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Wrap (N, 2, 2) linear maps so that they act about the image centre."""
    n = a.shape[0]
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    m = np.zeros((n, 3, 3))
    m[:, :2, :2] = a
    m[:, :2, 2] = c - a @ c  # (N, 2)
    m[:, 2, 2] = 1.0
    return m


def rotation_matrix(angles, height: int, width: int) -> np.ndarray:
    """Rotations by ``angles`` radians (positive: counter-clockwise on screen) about the centre.

    input = c + R (output - c), R = [[cos, -sin], [sin, cos]] in (x, y) with y down.
    """
    t = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    cos, sin = np.cos(t), np.sin(t)
    a = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (N, 2, 2)
    return _about_center(a, height, width)


def zoom_matrix(zx, zy, height: int, width: int) -> np.ndarray:
    """Zooms about the centre: input = c + diag(zx, zy) (output - c); z > 1 zooms out."""
    zx = np.atleast_1d(np.asarray(zx, dtype=np.float64))
    zy = np.atleast_1d(np.asarray(zy, dtype=np.float64))
    zx, zy = np.broadcast_arrays(zx, zy)
    a = np.zeros(zx.shape + (2, 2))
    a[:, 0, 0], a[:, 1, 1] = zx, zy
    return _about_center(a, height, width)


def shear_matrix(angles, height: int, width: int) -> np.ndarray:
    """Shears by ``angles`` radians about the centre: x_in = x - sin(s) y, y_in = cos(s) y."""
    s = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    a = np.zeros(s.shape + (2, 2))
    a[:, 0, 0] = 1.0
    a[:, 0, 1] = -np.sin(s)
    a[:, 1, 1] = np.cos(s)
    return _about_center(a, height, width)


def translation_matrix(dx, dy) -> np.ndarray:
    """Shifts by (dx, dy) pixels: positive dx moves the content right, positive dy down."""
    dx = np.atleast_1d(np.asarray(dx, dtype=np.float64))
    dy = np.atleast_1d(np.asarray(dy, dtype=np.float64))
    dx, dy = np.broadcast_arrays(dx, dy)
    m = np.zeros(dx.shape + (3, 3))
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = 1.0
    m[:, 0, 2], m[:, 1, 2] = -dx, -dy
    return m


def compose(*matrices) -> np.ndarray:
    """The product of output->input maps: with ``compose(A, B)`` the output pixel p samples the
    input at A(B(p)). Maps built about the centre compose about the centre."""
    out = matrices[0]
    for m in matrices[1:]:
        out = out @ m
    return out


# ------------------------------------------------------------------------------- sampling
def _fix_index(i: np.ndarray, n: int, mode: str):
    """Integer sample positions mapped into [0, n) by the fill mode; (index, valid) pairs."""
    if mode == "constant":
        valid = (i >= 0) & (i < n)
        return np.clip(i, 0, n - 1), valid
    if mode == "nearest":
        return np.clip(i, 0, n - 1), None
    if mode == "wrap":
        return np.mod(i, n), None
    if mode == "reflect":  # d c b a | a b c d | d c b a  (the edge pixel repeats)
        j = np.mod(i, 2 * n)
        return np.where(j >= n, 2 * n - 1 - j, j), None
    # mirror: d c b | a b c d | c b a  (the edge pixel does not repeat)
    if n == 1:
        return np.zeros_like(i), None
    j = np.mod(i, 2 * (n - 1))
    return np.where(j >= n, 2 * (n - 1) - j, j), None


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5))


def affine_transform(
    images,
    matrices,
    interpolation: str = "bilinear",
    fill_mode: str = "reflect",
    fill_value: float = 0.0,
):
    """Resample each image at the points its matrix maps the output grid to.

    Args:
        images: (N, H, W, C) array or Tensor.
        matrices: (N, 3, 3) or (N, 2, 3) maps from output (x, y, 1) to input (x, y).
        interpolation: "bilinear" or "nearest".
        fill_mode: how points outside the image are read: "reflect" (d c b a | a b c d),
            "mirror" (d c b | a b c d), "wrap", "nearest" (edge pixel) or "constant".
        fill_value: the value read outside the image with fill_mode="constant".

    Each output pixel is a weighted sum of (up to) four input pixels; for "constant", the weight
    of neighbours outside the image goes to ``fill_value`` (as in Keras 3 / JAX
    ``map_coordinates``).
    """
    n, h, w, c = _check_batch("affine_transform", images)
    if interpolation not in INTERPOLATIONS:
        raise EmberValueError(
            f"affine_transform: interpolation must be one of {INTERPOLATIONS}, "
            f"received {interpolation!r}"
        )
    if fill_mode not in FILL_MODES:
        raise EmberValueError(
            f"affine_transform: fill_mode must be one of {FILL_MODES}, received {fill_mode!r}"
        )
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim != 3 or m.shape[0] != n or m.shape[1:] not in ((3, 3), (2, 3)):
        raise ShapeError(
            f"affine_transform: expected matrices of shape ({n}, 3, 3) or ({n}, 2, 3), "
            f"received {m.shape}"
        )
    images = _as_float(images)
    dtype = _float_dtype(images)
    # source coordinates of every output pixel, in float64 so that exact transforms (a
    # quarter turn, an integer shift) land exactly on pixel centres
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src_x = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 2, None, None]
    src_y = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]

    if interpolation == "nearest":
        taps_x = [(_round_half_away(src_x).astype(np.int64), None)]
        taps_y = [(_round_half_away(src_y).astype(np.int64), None)]
    else:
        x0, y0 = np.floor(src_x), np.floor(src_y)
        fx, fy = src_x - x0, src_y - y0
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        taps_x = [(x0, 1.0 - fx), (x0 + 1, fx)]
        taps_y = [(y0, 1.0 - fy), (y0 + 1, fy)]

    flat = images.reshape((n * h * w, c))
    base = (np.arange(n) * (h * w)).reshape(n, 1, 1)
    out = None
    outside = np.zeros((n, h, w)) if fill_mode == "constant" else None
    for iy, wy in taps_y:
        iy, vy = _fix_index(iy, h, fill_mode)
        for ix, wx in taps_x:
            ix, vx = _fix_index(ix, w, fill_mode)
            weight = np.ones((n, h, w))
            if wy is not None:
                weight = weight * wy * wx
            if outside is not None:
                valid = vx & vy
                outside += np.where(valid, 0.0, weight)
                weight = np.where(valid, weight, 0.0)
            term = _gather_rows(flat, base + iy * w + ix) * weight.astype(dtype)[..., None]
            out = term if out is None else out + term
    if outside is not None and fill_value != 0:
        out = out + (outside * fill_value).astype(dtype)[..., None]
    return out


# ------------------------------------------------------------------------------- flips, crops
def flip(images, horizontal=None, vertical=None):
    """Mirror chosen images left-right (``horizontal[i]``) and/or top-bottom (``vertical[i]``).

    A gather with per-image index vectors, so flipped and unflipped images share one pass.
    """
    n, h, w, _ = _check_batch("flip", images)
    horizontal = np.zeros(n, bool) if horizontal is None else np.asarray(horizontal, bool)
    vertical = np.zeros(n, bool) if vertical is None else np.asarray(vertical, bool)
    if horizontal.shape != (n,) or vertical.shape != (n,):
        raise ShapeError(f"flip: expected one flag per image ({n},)")
    cols = np.where(horizontal[:, None], np.arange(w)[::-1], np.arange(w))  # (N, W)
    rows = np.where(vertical[:, None], np.arange(h)[::-1], np.arange(h))  # (N, H)
    return images[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def crop(images, tops, lefts, height: int, width: int):
    """Cut a (height, width) window out of each image at its own (top, left) corner."""
    n, h, w, _ = _check_batch("crop", images)
    tops = np.broadcast_to(np.asarray(tops, dtype=np.int64), (n,))
    lefts = np.broadcast_to(np.asarray(lefts, dtype=np.int64), (n,))
    if (
        (tops < 0).any()
        or (lefts < 0).any()
        or (tops + height > h).any()
        or (lefts + width > w).any()
    ):
        raise ShapeError(
            f"crop: a ({height}, {width}) window at the given corners does not fit images of "
            f"size ({h}, {w})"
        )
    rows = tops[:, None] + np.arange(height)  # (N, height)
    cols = lefts[:, None] + np.arange(width)  # (N, width)
    return images[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _resize_taps(n_in: int, n_out: int, scale: float, offset: float):
    """Bilinear source taps with half-pixel centres (TensorFlow's ``resize`` rule)."""
    src = (np.arange(n_out) + 0.5) * scale - 0.5 + offset
    lo = np.floor(src)
    frac = src - lo
    lo = lo.astype(np.int64)
    return np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1), frac


def resize(images, size, interpolation: str = "bilinear"):
    """Resize a batch to ``size`` = (height, width) (TensorFlow's half-pixel-centre rule).

    Bilinear is separable: rows first, then columns, two gathers and two weighted sums. No
    antialiasing, as in ``tf.image.resize(antialias=False)``.
    """
    n, h, w, _ = _check_batch("resize", images)
    oh, ow = int(size[0]), int(size[1])
    if oh <= 0 or ow <= 0:
        raise EmberValueError(f"resize: size must be positive, received {tuple(size)}")
    images = _as_float(images)
    if (oh, ow) == (h, w):
        return images
    dtype = _float_dtype(images)
    if interpolation == "nearest":
        rows = np.minimum(np.floor((np.arange(oh) + 0.5) * (h / oh)).astype(np.int64), h - 1)
        cols = np.minimum(np.floor((np.arange(ow) + 0.5) * (w / ow)).astype(np.int64), w - 1)
        return images[:, rows][:, :, cols]
    if interpolation != "bilinear":
        raise EmberValueError(
            f"resize: interpolation must be 'bilinear' or 'nearest', received {interpolation!r}"
        )
    r0, r1, fr = _resize_taps(h, oh, h / oh, 0.0)
    c0, c1, fc = _resize_taps(w, ow, w / ow, 0.0)
    fr = fr.astype(dtype)[None, :, None, None]
    fc = fc.astype(dtype)[None, None, :, None]
    rows = images[:, r0] * (1 - fr) + images[:, r1] * fr
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc


def aspect_crop_box(height: int, width: int, target_h: int, target_w: int) -> tuple:
    """The largest centred window of the target's aspect ratio: (top, left, h, w)."""
    crop_h = max(min(height, int(width * target_h / target_w)), 1)
    crop_w = max(min(width, int(height * target_w / target_h)), 1)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


# ------------------------------------------------------------------------------- intensity
def _clip(images, value_range):
    if value_range is None:
        return images
    lo, hi = float(value_range[0]), float(value_range[1])
    return images.clip(lo, hi)


def adjust_brightness(images, deltas, value_range=None):
    """Add ``deltas[i]`` to every pixel of image i, then clip to ``value_range`` (if given)."""
    n = _check_batch("adjust_brightness", images)[0]
    images = _as_float(images)
    return _clip(
        images + _per_image(deltas, n, _float_dtype(images), "adjust_brightness"), value_range
    )


def scale_brightness(images, factors, value_range=None):
    """Multiply image i by ``factors[i]`` (ImageDataGenerator's brightness_range), then clip."""
    n = _check_batch("scale_brightness", images)[0]
    images = _as_float(images)
    return _clip(
        images * _per_image(factors, n, _float_dtype(images), "scale_brightness"), value_range
    )


def adjust_contrast(images, factors, value_range=None):
    """Scale each image's deviation from its per-channel mean: (x - mean) * f + mean."""
    n = _check_batch("adjust_contrast", images)[0]
    images = _as_float(images)
    f = _per_image(factors, n, _float_dtype(images), "adjust_contrast")
    mean = images.mean(axis=(1, 2), keepdims=True)  # (N, 1, 1, C)
    return _clip((images - mean) * f + mean, value_range)


def channel_shift(images, intensities, value_range=None):
    """Add ``intensities[i]`` to every channel of image i, clipped to the image's own range
    (Keras's ``channel_shift_range``)."""
    n = _check_batch("channel_shift", images)[0]
    images = np.asarray(_as_float(images))
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    hi = images.max(axis=(1, 2, 3), keepdims=True)
    shifted = images + _per_image(intensities, n, images.dtype, "channel_shift")
    return np.clip(shifted, lo, hi)
