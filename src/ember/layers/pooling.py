"""Pooling layers on NHWC images (max, average, global) and global pooling over time steps."""

from __future__ import annotations

import numpy as np

from ember import ops
from ember.autograd import Tensor
from ember.errors import EmberTypeError, ShapeError
from ember.layers.base import Layer, register
from ember.layers.conv import check_data_format, explain_window, spatial_output
from ember.ops.conv import as_pair, check_padding
from ember.ops.pool import (
    avg_pool2d,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool2d,
)


def _check_rank(layer: Layer, shape: tuple, ndim: int, expected: str) -> None:
    if len(shape) != ndim:
        raise ShapeError(
            f"{layer.name}: expected a {ndim}-D input {expected}, received an input of shape "
            f"{tuple(shape)}"
        )


_IMAGES = "(batch, height, width, channels)"
_STEPS = "(batch, steps, features)"


class _Pooling2D(Layer):
    """Shared by MaxPooling2D and AveragePooling2D: windows of ``pool_size`` moved by
    ``strides`` (default: the pool size), "valid" or "same" padding."""

    _op = None
    _verb = ""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(self.name, data_format)
        self.pool_size = as_pair(pool_size, "pool_size", self.name)
        self.strides = (
            self.pool_size if strides is None else as_pair(strides, "strides", self.name)
        )
        self.padding = check_padding(padding, self.name)

    def check_input(self, shape: tuple) -> None:
        _check_rank(self, shape, 4, _IMAGES)
        spatial_output(self.name, shape, self.pool_size, self.strides, self.padding)

    def call(self, x, training=None):
        return type(self)._op(x, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        self.check_input(shape)
        oh, ow = spatial_output(self.name, shape, self.pool_size, self.strides, self.padding)
        return (shape[0], oh, ow, shape[3])

    def explain(self, input_shape) -> str:
        """How the output size and the padding come about for an input of this shape
        ((height, width, channels) or with the batch axis first)."""
        shape = tuple(input_shape)
        lines, (oh, ow) = explain_window(
            self.name, shape, self.pool_size, self.strides, self.padding
        )
        ph, pw = self.pool_size
        head = (
            f"{self.name}: input {shape[-3:]} -> output ({oh}, {ow}, {shape[-1]}); the "
            f"{self._verb} of each {ph}x{pw} window, strides {self.strides[0]}x"
            f"{self.strides[1]}, padding '{self.padding}'"
        )
        return "\n".join([head, *lines])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


@register
class MaxPooling2D(_Pooling2D):
    """The maximum of each window (the gradient goes to the first maximum of each window).

    Args:
        pool_size: an int or a (height, width) pair.
        strides: an int, a pair, or None (the pool size).
        padding: "valid" or "same" (padding never wins the max).
        data_format: only "channels_last".
    """

    _op = staticmethod(max_pool2d)
    _verb = "maximum"


@register
class AveragePooling2D(_Pooling2D):
    """The mean of each window; with "same" padding, of its real (non-padding) elements only.

    Args:
        pool_size: an int or a (height, width) pair.
        strides: an int, a pair, or None (the pool size).
        padding: "valid" or "same".
        data_format: only "channels_last".
    """

    _op = staticmethod(avg_pool2d)
    _verb = "mean"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
register(MaxPooling2D, name="MaxPool2D")
register(AveragePooling2D, name="AvgPool2D")


class _GlobalPooling(Layer):
    """Reduces every axis between batch and channels; ``keepdims`` keeps them with length 1."""

    _ndim = 4
    _expected = _IMAGES
    _op = None

    def __init__(self, keepdims: bool = False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(self.name, data_format)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise EmberTypeError(
                f"{self.name}: keepdims must be a bool, received keepdims={keepdims!r}"
            )
        self.keepdims = bool(keepdims)

    def check_input(self, shape: tuple) -> None:
        _check_rank(self, shape, self._ndim, self._expected)

    def call(self, x, training=None):
        return type(self)._op(x, keepdims=self.keepdims)

    def compute_mask(self, x, mask=None):
        return None  # the pooled axis (where a mask lives) is gone

    def compute_output_shape(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        self.check_input(shape)
        if self.keepdims:
            return (shape[0], *([1] * (len(shape) - 2)), shape[-1])
        return (shape[0], shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "keepdims": self.keepdims}


@register
class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over height and width of each channel: (N, H, W, C) -> (N, C).

    Args:
        keepdims: keep the reduced axes with length 1: (N, 1, 1, C).
        data_format: only "channels_last".
    """

    _op = staticmethod(global_avg_pool2d)


@register
class GlobalMaxPooling2D(_GlobalPooling):
    """The maximum over height and width of each channel: (N, H, W, C) -> (N, C).

    Args:
        keepdims: keep the reduced axes with length 1: (N, 1, 1, C).
        data_format: only "channels_last".
    """

    _op = staticmethod(global_max_pool2d)


@register
class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over the steps of each feature: (N, steps, F) -> (N, F). With a mask (e.g.
    from ``Embedding(mask_zero=True)``), the mean of the unmasked steps only, as Keras; a row
    with every step masked gives zeros.

    Args:
        keepdims: keep the steps axis with length 1: (N, 1, F).
        data_format: only "channels_last".
    """

    _ndim = 3
    _expected = _STEPS
    _op = staticmethod(global_avg_pool1d)

    def call(self, x, training=None, mask=None):
        if mask is None:
            return global_avg_pool1d(x, keepdims=self.keepdims)
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.shape != x.shape[:2]:
            raise ShapeError(
                f"{self.name}: expected a mask of shape {x.shape[:2]} (batch, steps), "
                f"received {m.shape}"
            )
        m = m.astype(x.dtype)[:, :, None]  # (N, steps, 1)
        count = np.maximum(m.sum(axis=1, keepdims=self.keepdims), 1)
        return ops.sum(x * m, axis=1, keepdims=self.keepdims) / count


@register
class GlobalMaxPooling1D(_GlobalPooling):
    """The maximum over the steps of each feature: (N, steps, F) -> (N, F).

    Args:
        keepdims: keep the steps axis with length 1: (N, 1, F).
        data_format: only "channels_last".
    """

    _ndim = 3
    _expected = _STEPS
    _op = staticmethod(global_max_pool1d)
