"""Feature scaling for arrays: rescale, min-max to [0, 1] or [-1, 1], standardization, and
per-channel image normalization.

Statistics should come from the training data only and then be applied unchanged to the
validation and test data; the ``MinMaxScaler`` / ``StandardScaler`` classes keep them for that
(``fit`` on train, ``transform`` everything). Constant features are left at the low end of the
range (min-max) or at 0 (standardization) instead of dividing by zero, as scikit-learn does.
Results are floats of x's dtype when it is a float dtype, else floatx.
"""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.errors import EmberValueError, ShapeError


def _float(x) -> np.ndarray:
    x = np.asarray(x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else x)
    return x if x.dtype.kind == "f" else x.astype(backend.float_dtype())


def _range(feature_range) -> tuple:
    try:
        lo, hi = (float(v) for v in feature_range)
    except (TypeError, ValueError):
        raise EmberValueError(
            f"feature_range must be a (low, high) pair, received {feature_range!r}"
        ) from None
    if not lo < hi:
        raise EmberValueError(f"feature_range needs low < high, received {feature_range!r}")
    return lo, hi


def rescale(x, scale: float, offset: float = 0.0) -> np.ndarray:
    """x * scale + offset (e.g. ``rescale(pixels, 1/255)``)."""
    x = _float(x)
    return x * x.dtype.type(scale) + x.dtype.type(offset)


def minmax_scale(x, feature_range=(0.0, 1.0), axis=0) -> np.ndarray:
    """Map each feature linearly so that its minimum goes to ``low`` and its maximum to
    ``high`` (statistics over ``axis``; None: over the whole array)."""
    return MinMaxScaler(feature_range, axis).fit_transform(x)


def standardize(x, axis=0, epsilon: float = 0.0) -> np.ndarray:
    """(x - mean) / std per feature (statistics over ``axis``; None: the whole array)."""
    return StandardScaler(axis, epsilon).fit_transform(x)


def channel_stats(images) -> tuple:
    """Per-channel mean and std of NHWC images, each of shape (C,)."""
    images = _float(images)
    if images.ndim != 4:
        raise ShapeError(f"channel_stats: expected images (N, H, W, C), received {images.shape}")
    x64 = images.astype(np.float64)
    return (
        x64.mean(axis=(0, 1, 2)).astype(images.dtype),
        x64.std(axis=(0, 1, 2)).astype(images.dtype),
    )


def normalize_images(images, mean=None, std=None, epsilon: float = 1e-7) -> np.ndarray:
    """Per-channel normalization of NHWC images: (x - mean[c]) / std[c]. Without ``mean`` and
    ``std`` they are computed from ``images`` (pass the training set's to other splits)."""
    images = _float(images)
    if images.ndim not in (3, 4):
        raise ShapeError(
            f"normalize_images: expected images (N, H, W, C) or (H, W, C), received {images.shape}"
        )
    if mean is None or std is None:
        if images.ndim != 4:
            raise EmberValueError("normalize_images: give mean and std for a single image")
        m, s = channel_stats(images)
        mean = m if mean is None else mean
        std = s if std is None else std
    dt = images.dtype
    mean = np.asarray(mean, dtype=dt)
    std = np.maximum(np.asarray(std, dtype=dt), dt.type(epsilon))
    if mean.shape not in ((), (images.shape[-1],)) or std.shape not in ((), (images.shape[-1],)):
        raise ShapeError(
            f"normalize_images: mean/std must have one value per channel ({images.shape[-1]},), "
            f"received {mean.shape} and {std.shape}"
        )
    return (images - mean) / std


class MinMaxScaler:
    """Learn per-feature min and max with ``fit``, map to ``feature_range`` with ``transform``.

    Args:
        feature_range: (0, 1) or (-1, 1) or any (low, high).
        axis: the axis (or axes) statistics are taken over (default 0: per feature).
    """

    def __init__(self, feature_range=(0.0, 1.0), axis=0):
        self.feature_range = _range(feature_range)
        self.axis = axis
        self.data_min = self.data_max = None

    def fit(self, x) -> MinMaxScaler:
        x = _float(x)
        self.data_min = x.min(axis=self.axis, keepdims=True)
        self.data_max = x.max(axis=self.axis, keepdims=True)
        return self

    def transform(self, x) -> np.ndarray:
        if self.data_min is None:
            raise EmberValueError("MinMaxScaler: call fit(x) first")
        x = _float(x)
        lo, hi = self.feature_range
        span = self.data_max - self.data_min
        span = np.where(span == 0, 1, span).astype(x.dtype)
        scale = x.dtype.type(hi - lo) / span
        return (x - self.data_min.astype(x.dtype)) * scale + x.dtype.type(lo)

    def inverse_transform(self, x) -> np.ndarray:
        x = _float(x)
        lo, hi = self.feature_range
        span = self.data_max - self.data_min
        span = np.where(span == 0, 1, span).astype(x.dtype)
        return (x - x.dtype.type(lo)) * span / x.dtype.type(hi - lo) + self.data_min.astype(
            x.dtype
        )

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)


class StandardScaler:
    """Learn per-feature mean and std with ``fit``; ``transform`` gives (x - mean) / std.

    Args:
        axis: the axis (or axes) statistics are taken over (default 0: per feature).
        epsilon: added to the std (0: constant features get std 1 instead, as scikit-learn).
    """

    def __init__(self, axis=0, epsilon: float = 0.0):
        self.axis = axis
        self.epsilon = float(epsilon)
        self.mean = self.std = None

    def fit(self, x) -> StandardScaler:
        x = _float(x)
        x64 = x.astype(np.float64)
        self.mean = x64.mean(axis=self.axis, keepdims=True)
        std = x64.std(axis=self.axis, keepdims=True) + self.epsilon
        self.std = np.where(std == 0, 1.0, std)
        return self

    def transform(self, x) -> np.ndarray:
        if self.mean is None:
            raise EmberValueError("StandardScaler: call fit(x) first")
        x = _float(x)
        return (x - self.mean.astype(x.dtype)) / self.std.astype(x.dtype)

    def inverse_transform(self, x) -> np.ndarray:
        x = _float(x)
        return x * self.std.astype(x.dtype) + self.mean.astype(x.dtype)

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)
