"""Preprocessing layers: Rescaling, Normalization (with ``adapt``) and the random image
augmentations (RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomCrop,
RandomBrightness, RandomContrast).

The random layers are active only in training (inside ``fit``, or called with
``training=True``); at inference they are the identity, except RandomCrop, whose output must keep
its size: it takes the largest centred window of the target's aspect ratio and resizes it, as
Keras documents. They transform a whole NHWC batch at once with per-image random parameters,
using the array functions of ``ember.data.augment`` (shared with ``ImageDataGenerator``); those
are written with Tensor indexing and arithmetic, so gradients flow through every layer here.

Randomness: a layer built with ``seed=`` owns a generator seeded once (the same seed gives the
same sequence of augmentations); without one it draws from ``ember.backend.rng()`` at call time.
"""

from __future__ import annotations

import numpy as np

from ember import backend, ops
from ember.autograd import Tensor
from ember.data import augment
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, check_positive_int, register


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _float_input(x: Tensor) -> Tensor:
    """Pixels as floats (uint8 images from a decoder become floatx), as Keras autocasts."""
    if x.dtype.kind != "f":
        return ops.cast(x, backend.float_dtype())
    return x


def _check_seed(layer: str, seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise EmberTypeError(f"{layer}: seed must be an int or None, received seed={seed!r}")
    return None if seed is None else int(seed)


def _factor_range(
    layer: str, arg: str, factor, symmetric: bool = True, bound=None, ordered: bool = True
) -> tuple:
    """Keras's factor convention: a number f means (-f, f) (or (f, f) when not symmetric), a
    pair means (lower, upper); optionally each bound must lie in [-bound, bound]."""
    if _is_number(factor):
        lower, upper = (
            (-abs(float(factor)), abs(float(factor)))
            if symmetric
            else (float(factor), float(factor))
        )
    elif isinstance(factor, (tuple, list)) and len(factor) == 2 and all(map(_is_number, factor)):
        lower, upper = float(factor[0]), float(factor[1])
    else:
        raise EmberValueError(
            f"{layer}: {arg} must be a float or a (lower, upper) pair, received {arg}={factor!r}"
        )
    if ordered and upper < lower:
        raise EmberValueError(f"{layer}: {arg} needs lower <= upper, received {arg}={factor!r}")
    if bound is not None and (abs(lower) > bound or abs(upper) > bound):
        raise EmberValueError(
            f"{layer}: {arg} must lie in [-{bound}, {bound}], received {arg}={factor!r}"
        )
    return lower, upper


def _check_choice(layer: str, arg: str, value, choices) -> str:
    if value not in choices:
        raise EmberValueError(f"{layer}: {arg} must be one of {choices}, received {arg}={value!r}")
    return value


def _value_range(layer: str, value_range) -> tuple:
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(map(_is_number, value_range))
        or value_range[0] >= value_range[1]
    ):
        raise EmberValueError(
            f"{layer}: value_range must be a pair (low, high) with low < high, "
            f"received value_range={value_range!r}"
        )
    return float(value_range[0]), float(value_range[1])


# ---------------------------------------------------------------------------------- Rescaling
@register
class Rescaling(Layer):
    """Multiply by ``scale`` and add ``offset`` (e.g. ``Rescaling(1/255)`` maps pixels to [0, 1],
    ``Rescaling(1/127.5, offset=-1)`` to [-1, 1]).

    Args:
        scale: a number, or one number per channel (broadcast along the last axis).
        offset: a number, or one per channel.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("scale", scale), ("offset", offset)):
            arr = np.asarray(v)
            if arr.dtype.kind not in "iuf" or arr.ndim > 1:
                raise EmberValueError(
                    f"{self.name}: {arg} must be a number or a list of numbers, "
                    f"received {arg}={v!r}"
                )
        self.scale = scale if _is_number(scale) else [float(s) for s in scale]
        self.offset = offset if _is_number(offset) else [float(s) for s in offset]

    def call(self, x, training=None):
        x = _float_input(x)
        dtype = x.dtype
        scale = np.asarray(self.scale, dtype=dtype)
        offset = np.asarray(self.offset, dtype=dtype)
        return x * scale + offset

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


# ---------------------------------------------------------------------------------- Normalization
@register
class Normalization(Layer):
    """Feature-wise standardization: (x - mean) / sqrt(variance), with the statistics given or
    learned from data by ``adapt``.

    Args:
        axis: the axis (or axes) that keep separate statistics; -1 (default) means one mean and
            variance per feature of the last axis; None means a single scalar mean and variance.
        mean, variance: fixed statistics (broadcast to the kept axes); then ``adapt`` is not
            needed and the layer has no weights.
        invert: apply the inverse map, x * sqrt(variance) + mean.

    The statistics live in two non-trainable weights, ``mean`` and ``variance`` (so they are
    saved with the model). The divisor is max(sqrt(variance), 1e-7), as in Keras.
    """

    EPSILON = 1e-7

    def __init__(self, axis=-1, mean=None, variance=None, invert: bool = False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axes = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axes = (int(axis),)
        elif isinstance(axis, (tuple, list)) and all(
            isinstance(a, (int, np.integer)) for a in axis
        ):
            axes = tuple(int(a) for a in axis)
        else:
            raise EmberTypeError(
                f"{self.name}: axis must be an int, a tuple of ints or None, "
                f"received axis={axis!r}"
            )
        if 0 in axes:
            raise EmberValueError(
                f"{self.name}: axis may not include the batch axis 0, received axis={axis!r}"
            )
        if (mean is None) != (variance is None):
            raise EmberValueError(
                f"{self.name}: give both mean and variance, or neither (and call adapt)"
            )
        self.axis = axis if axis is None or isinstance(axis, int) else tuple(axes)
        self._axes = axes
        self.invert = bool(invert)
        self.input_mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.input_variance = None if variance is None else np.asarray(variance, dtype=np.float64)
        if self.input_variance is not None and (self.input_variance < 0).any():
            raise EmberValueError(f"{self.name}: variance must be >= 0")
        self.adapted = mean is not None

    # the axes that keep statistics, as non-negative ints for an input of this rank
    def _keep_axes(self, ndim: int) -> tuple:
        keep = []
        for a in self._axes:
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ShapeError(
                    f"{self.name}: axis={self.axis} does not fit inputs of rank {ndim} (the "
                    f"batch axis 0 cannot keep statistics)"
                )
            keep.append(a % ndim)
        return tuple(sorted(keep))

    def build(self, input_shape) -> None:
        ndim = len(input_shape)
        keep = self._keep_axes(ndim)
        for a in keep:
            if input_shape[a] is None:
                raise ShapeError(
                    f"{self.name}: axis {a} must have a known size, input {input_shape}"
                )
        self._keep = keep
        self._stat_shape = tuple(int(input_shape[a]) for a in keep)
        self._broadcast = tuple(int(input_shape[d]) if d in keep else 1 for d in range(ndim))
        if self.input_mean is None:
            self.mean = self.add_weight("mean", self._stat_shape, "zeros", trainable=False)
            self.variance = self.add_weight("variance", self._stat_shape, "ones", trainable=False)

    def check_input(self, shape: tuple) -> None:
        if self.built:
            if len(shape) != len(self._broadcast) or any(
                shape[a] != self._broadcast[a] for a in self._keep
            ):
                raise ShapeError(
                    f"{self.name}: built for inputs like {self._build_shape} (statistics over "
                    f"axes {self._keep} of sizes {self._stat_shape}), received shape {shape}"
                )

    def adapt(self, data, batch_size: int = 1024) -> None:
        """Compute the mean and variance of ``data`` over every axis but the kept ones.

        ``data`` may be an array (or Tensor) with a batch axis first, or an iterable of batches
        (a DataLoader, a generator): batches are combined exactly (Chan's parallel formula),
        so the whole data set never has to be in memory at once.
        """
        if self.input_mean is not None:
            raise EmberValueError(
                f"{self.name}: adapt is for layers without fixed mean/variance arguments"
            )
        batches = _iter_batches(self.name, data, batch_size)
        count, mean, m2 = 0, None, None
        for b in batches:
            if not self.built:
                self._maybe_build((None,) + b.shape[1:])
            self.check_input(b.shape)
            reduce = tuple(d for d in range(b.ndim) if d not in self._keep)
            b = b.astype(np.float64, copy=False)
            n_b = int(np.prod([b.shape[d] for d in reduce]))
            mean_b = b.mean(axis=reduce)
            m2_b = ((b - b.mean(axis=reduce, keepdims=True)) ** 2).sum(axis=reduce)
            if mean is None:
                count, mean, m2 = n_b, mean_b, m2_b
            else:
                delta = mean_b - mean
                total = count + n_b
                mean = mean + delta * (n_b / total)
                m2 = m2 + m2_b + delta**2 * (count * n_b / total)
                count = total
        if mean is None:
            raise EmberValueError(f"{self.name}: adapt received no data")
        self.mean.assign(mean.reshape(self._stat_shape))
        self.variance.assign((m2 / count).reshape(self._stat_shape))
        self.adapted = True

    def _stats(self, dtype):
        if self.input_mean is not None:
            mean = np.broadcast_to(self.input_mean, self._stat_shape)
            var = np.broadcast_to(self.input_variance, self._stat_shape)
        else:
            mean, var = self.mean.data, self.variance.data
        mean = np.asarray(mean, dtype=dtype).reshape(self._broadcast)
        std = np.maximum(np.sqrt(np.asarray(var, dtype=dtype)), dtype.type(self.EPSILON))
        return mean, std.reshape(self._broadcast)

    def call(self, x, training=None):
        x = _float_input(x)
        mean, std = self._stats(x.dtype)
        if self.invert:
            return x * std + mean
        return (x - mean) / std

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = {**super().get_config(), "axis": self.axis, "invert": self.invert}
        if self.input_mean is not None:
            config["mean"] = self.input_mean.tolist()
            config["variance"] = self.input_variance.tolist()
        return config


def _iter_batches(layer: str, data, batch_size: int):
    """Yield float arrays from an array/Tensor (in slices) or an iterable of batches."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, list)) and not (
        isinstance(data, list) and data and isinstance(data[0], (tuple, np.ndarray, Tensor))
    ):
        arr = np.asarray(data)
        if arr.dtype.kind not in "iuf" or arr.ndim == 0:
            raise EmberValueError(
                f"{layer}: adapt expects numeric data with a batch axis, received dtype "
                f"{arr.dtype} and shape {arr.shape}"
            )
        if arr.ndim == 1:
            arr = arr[:, None]
        for i in range(0, len(arr), batch_size):
            yield arr[i : i + batch_size]
        return
    try:
        it = iter(data)
    except TypeError:
        raise EmberTypeError(
            f"{layer}: adapt expects an array or an iterable of batches, received "
            f"{type(data).__name__}"
        ) from None
    for item in it:
        if isinstance(item, (tuple, list)):  # (x, y) batches from a loader: take x
            item = item[0]
        if isinstance(item, Tensor):
            item = item.data
        arr = np.asarray(item)
        yield arr[:, None] if arr.ndim == 1 else arr


# ---------------------------------------------------------------------------------- random base
class _RandomImageLayer(Layer):
    """Shared by the random augmentation layers: seed handling, input checks, training switch."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = _check_seed(self.name, seed)
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)

    def _rng(self) -> np.random.Generator:
        return self._generator if self._generator is not None else backend.rng()

    def check_input(self, shape: tuple) -> None:
        if len(shape) not in (3, 4):
            raise ShapeError(
                f"{self.name}: expected images (N, H, W, C) or one image (H, W, C), received "
                f"shape {shape}"
            )

    def call(self, x, training=None):
        if not training:
            return self._inference(x)
        x = _float_input(x)
        if x.ndim == 3:  # one image: treat as a batch of one
            return self._augment(x.reshape((1,) + x.shape), self._rng()).reshape(
                self._out_shape(x.shape)
            )
        return self._augment(x, self._rng())

    def _inference(self, x):
        return x if x.dtype.kind == "f" else _float_input(x)

    def _out_shape(self, shape: tuple) -> tuple:
        return shape

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


class _AffineLayer(_RandomImageLayer):
    """Random geometric transforms resampled with ``augment.affine_transform``."""

    def __init__(
        self, fill_mode="reflect", interpolation="bilinear", fill_value=0.0, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        self.fill_mode = _check_choice(self.name, "fill_mode", fill_mode, augment.FILL_MODES)
        self.interpolation = _check_choice(
            self.name, "interpolation", interpolation, augment.INTERPOLATIONS
        )
        if not _is_number(fill_value):
            raise EmberValueError(
                f"{self.name}: fill_value must be a number, received fill_value={fill_value!r}"
            )
        self.fill_value = float(fill_value)

    def _augment(self, x, rng):
        n, h, w, _ = x.shape
        m = self._matrices(rng, n, h, w)
        return augment.affine_transform(x, m, self.interpolation, self.fill_mode, self.fill_value)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


# ---------------------------------------------------------------------------------- layers
@register
class RandomFlip(_RandomImageLayer):
    """Flip each image left-right and/or top-bottom with probability 1/2 (independently).

    Args:
        mode: "horizontal", "vertical" or "horizontal_and_vertical" (Keras's default).
        seed: an int for a generator of this layer's own, or None.
    """

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = _check_choice(self.name, "mode", mode, self.MODES)

    def _augment(self, x, rng):
        n = x.shape[0]
        horizontal = vertical = None
        if self.mode != "vertical":
            horizontal = rng.random(n) < 0.5
        if self.mode != "horizontal":
            vertical = rng.random(n) < 0.5
        return augment.flip(x, horizontal, vertical)

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@register
class RandomRotation(_AffineLayer):
    """Rotate each image by a random angle, a fraction of a full turn.

    Args:
        factor: f for angles in [-f, f] x 2 pi, or (lower, upper); positive turns the image
            counter-clockwise. E.g. 0.25 rotates by up to a quarter turn either way.
        fill_mode: "reflect" (default), "mirror", "wrap", "nearest" or "constant".
        interpolation: "bilinear" (default) or "nearest".
        fill_value: the value outside the image for fill_mode="constant".
        seed: an int for a generator of this layer's own, or None.
    """

    def __init__(
        self,
        factor,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        **kwargs,
    ):
        super().__init__(fill_mode, interpolation, fill_value, seed, **kwargs)
        self.factor = factor if _is_number(factor) else tuple(factor)
        self._lower, self._upper = _factor_range(self.name, "factor", factor)

    def _matrices(self, rng, n, h, w):
        angles = rng.uniform(self._lower, self._upper, n) * 2.0 * np.pi
        return augment.rotation_matrix(angles, h, w)

    def get_config(self) -> dict:
        f = self.factor if _is_number(self.factor) else list(self.factor)
        return {**super().get_config(), "factor": f}


@register
class RandomZoom(_AffineLayer):
    """Zoom each image in or out about its centre by a random amount.

    Args:
        height_factor: f for a vertical zoom drawn from [-f, f], or (lower, upper), each in
            [-1, 1]; the image is sampled over (1 + z) times its height: positive zooms out,
            negative zooms in.
        width_factor: the same for the width; None (default) keeps the aspect ratio (the
            height's draw is used for both).
        fill_mode, interpolation, fill_value, seed: as in RandomRotation.
    """

    def __init__(
        self,
        height_factor,
        width_factor=None,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        **kwargs,
    ):
        super().__init__(fill_mode, interpolation, fill_value, seed, **kwargs)
        self.height_factor = height_factor if _is_number(height_factor) else tuple(height_factor)
        self._h = _factor_range(self.name, "height_factor", height_factor, bound=1.0)
        self.width_factor = None
        self._w = None
        if width_factor is not None:
            self.width_factor = width_factor if _is_number(width_factor) else tuple(width_factor)
            self._w = _factor_range(self.name, "width_factor", width_factor, bound=1.0)

    def _matrices(self, rng, n, h, w):
        zy = 1.0 + rng.uniform(self._h[0], self._h[1], n)
        zx = zy if self._w is None else 1.0 + rng.uniform(self._w[0], self._w[1], n)
        return augment.zoom_matrix(zx, zy, h, w)

    def get_config(self) -> dict:
        hf = self.height_factor if _is_number(self.height_factor) else list(self.height_factor)
        wf = self.width_factor
        wf = wf if wf is None or _is_number(wf) else list(wf)
        return {**super().get_config(), "height_factor": hf, "width_factor": wf}


@register
class RandomTranslation(_AffineLayer):
    """Shift each image by a random fraction of its height and width.

    Args:
        height_factor: f for a vertical shift in [-f, f] x height, or (lower, upper), each in
            [-1, 1]; positive moves the content down.
        width_factor: the same for the horizontal shift; positive moves the content right.
        fill_mode, interpolation, fill_value, seed: as in RandomRotation.
    """

    def __init__(
        self,
        height_factor,
        width_factor,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        **kwargs,
    ):
        super().__init__(fill_mode, interpolation, fill_value, seed, **kwargs)
        self.height_factor = height_factor if _is_number(height_factor) else tuple(height_factor)
        self.width_factor = width_factor if _is_number(width_factor) else tuple(width_factor)
        self._h = _factor_range(self.name, "height_factor", height_factor, bound=1.0)
        self._w = _factor_range(self.name, "width_factor", width_factor, bound=1.0)

    def _matrices(self, rng, n, h, w):
        dy = rng.uniform(self._h[0], self._h[1], n) * h
        dx = rng.uniform(self._w[0], self._w[1], n) * w
        return augment.translation_matrix(dx, dy)

    def get_config(self) -> dict:
        hf = self.height_factor if _is_number(self.height_factor) else list(self.height_factor)
        wf = self.width_factor if _is_number(self.width_factor) else list(self.width_factor)
        return {**super().get_config(), "height_factor": hf, "width_factor": wf}


@register
class RandomCrop(_RandomImageLayer):
    """Crop each image to (height, width) at a random place (each image its own place).

    At inference, and in training when an image is smaller than the target, the largest centred
    window with the target's aspect ratio is cut out and resized (bilinear) to (height, width),
    so the output size never depends on the mode.

    Args:
        height, width: the output size.
        seed: an int for a generator of this layer's own, or None.
    """

    def __init__(self, height: int, width: int, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height = check_positive_int(self.name, "height", height)
        self.width = check_positive_int(self.name, "width", width)

    def _out_shape(self, shape: tuple) -> tuple:
        return (self.height, self.width, shape[-1])

    def _resize_to_target(self, x):
        h, w = x.shape[1], x.shape[2]
        if (h, w) == (self.height, self.width):
            return x
        top, left, ch, cw = augment.aspect_crop_box(h, w, self.height, self.width)
        x = x[:, top : top + ch, left : left + cw]
        return augment.resize(x, (self.height, self.width))

    def _inference(self, x):
        x = _float_input(x)
        if x.ndim == 3:
            return self._resize_to_target(x.reshape((1,) + x.shape)).reshape(
                self._out_shape(x.shape)
            )
        return self._resize_to_target(x)

    def _augment(self, x, rng):
        n, h, w, _ = x.shape
        if h < self.height or w < self.width:
            return self._resize_to_target(x)
        tops = rng.integers(0, h - self.height + 1, n)
        lefts = rng.integers(0, w - self.width + 1, n)
        return augment.crop(x, tops, lefts, self.height, self.width)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape[:-3]) + (self.height, self.width, input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "height": self.height, "width": self.width}


@register
class RandomBrightness(_RandomImageLayer):
    """Add a random offset to each image's pixels, then clip to ``value_range``.

    Args:
        factor: f for offsets drawn from [-f, f] x (high - low) of value_range, or (lower,
            upper), each in [-1, 1].
        value_range: the pixels' (low, high) range; default (0, 255).
        seed: an int for a generator of this layer's own, or None.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor if _is_number(factor) else tuple(factor)
        self._lower, self._upper = _factor_range(self.name, "factor", factor, bound=1.0)
        self.value_range = _value_range(self.name, value_range)

    def _augment(self, x, rng):
        span = self.value_range[1] - self.value_range[0]
        deltas = rng.uniform(self._lower, self._upper, x.shape[0]) * span
        return augment.adjust_brightness(x, deltas, self.value_range)

    def get_config(self) -> dict:
        f = self.factor if _is_number(self.factor) else list(self.factor)
        return {**super().get_config(), "factor": f, "value_range": list(self.value_range)}


@register
class RandomContrast(_RandomImageLayer):
    """Scale each image's deviation from its per-channel mean by a random factor, then clip.

    Args:
        factor: f for contrast factors drawn from [1 - f, 1 + f], or (lower, upper) for
            [1 - lower, 1 + upper]; lower in [0, 1].
        value_range: the pixels' (low, high) range used for clipping; default (0, 255).
        seed: an int for a generator of this layer's own, or None.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor if _is_number(factor) else tuple(factor)
        self._lower, self._upper = _factor_range(
            self.name, "factor", factor, symmetric=False, ordered=False
        )
        if not 0.0 <= self._lower <= 1.0 or self._upper < 0.0:
            raise EmberValueError(
                f"{self.name}: factor must give lower in [0, 1] and upper >= 0, "
                f"received factor={factor!r}"
            )
        self.value_range = _value_range(self.name, value_range)

    def _augment(self, x, rng):
        factors = rng.uniform(1.0 - self._lower, 1.0 + self._upper, x.shape[0])
        return augment.adjust_contrast(x, factors, self.value_range)

    def get_config(self) -> dict:
        f = self.factor if _is_number(self.factor) else list(self.factor)
        return {**super().get_config(), "factor": f, "value_range": list(self.value_range)}
