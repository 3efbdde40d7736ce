"""Activation layers: ReLU, LeakyReLU, PReLU (a learned slope), ELU, Softmax."""

from __future__ import annotations

import numpy as np

from ember import activations, initializers, ops, regularizers
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, register


def _number(layer: str, arg: str, value, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EmberTypeError(f"{layer}: {arg} must be a number, received {arg}={value!r}")
    if minimum is not None and not value >= minimum:
        raise EmberValueError(f"{layer}: {arg} must be >= {minimum}, received {arg}={value!r}")
    return float(value)


class _Elementwise(Layer):
    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)


@register
class ReLU(_Elementwise):
    """Keras's ReLU: max_value where x >= max_value, x where threshold <= x, and
    negative_slope * (x - threshold) below the threshold.

    Args:
        max_value: the ceiling, or None.
        negative_slope: the slope below the threshold (>= 0).
        threshold: where the function bends.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None:
            max_value = _number(self.name, "max_value", max_value, 0.0)
        self.max_value = max_value
        self.negative_slope = _number(self.name, "negative_slope", negative_slope, 0.0)
        self.threshold = _number(self.name, "threshold", threshold)

    def call(self, x, training=None):
        return activations.relu(x, self.negative_slope, self.max_value, self.threshold)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


@register
class LeakyReLU(_Elementwise):
    """x if x > 0 else negative_slope * x.

    Args:
        negative_slope: the slope for negative inputs (>= 0).
    """

    def __init__(self, negative_slope: float = 0.01, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name for the slope
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = _number(self.name, "negative_slope", negative_slope, 0.0)

    def call(self, x, training=None):
        return ops.leaky_relu(x, negative_slope=self.negative_slope)

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register
class ELU(_Elementwise):
    """x if x > 0 else alpha (e^x - 1).

    Args:
        alpha: the value approached for large negative inputs (as -alpha).
    """

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(self.name, "alpha", alpha)

    def call(self, x, training=None):
        return ops.elu(x, alpha=self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


@register
class Softmax(_Elementwise):
    """e^x / sum(e^x) along ``axis``.

    Args:
        axis: the axis normalized over.
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise EmberTypeError(f"{self.name}: axis must be an int, received axis={axis!r}")
        self.axis = int(axis)

    def check_input(self, shape: tuple) -> None:
        if not -len(shape) <= self.axis < len(shape):
            raise ShapeError(
                f"{self.name}: axis={self.axis} is out of range for an input of shape "
                f"{tuple(shape)}"
            )

    def call(self, x, training=None):
        return ops.softmax(x, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


@register
class PReLU(_Elementwise):
    """Parametric ReLU: x if x > 0 else alpha * x, with alpha learned per unit.

    alpha has the input's per-example shape, with size 1 along ``shared_axes`` (e.g.
    ``shared_axes=[1, 2]`` on images: one slope per channel).

    Args:
        alpha_initializer: initializer of alpha (Keras's default: zeros, i.e. starts as ReLU).
        alpha_regularizer: a regularizer penalizing alpha, or None.
        shared_axes: axes (1-based: 0 is the batch axis) along which alpha is shared.
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, shared_axes=None,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is None:
            shared_axes = ()
        elif isinstance(shared_axes, (int, np.integer)):
            shared_axes = (shared_axes,)
        shared_axes = tuple(shared_axes)
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1
               for a in shared_axes):  # fmt: skip
            raise EmberValueError(
                f"{self.name}: shared_axes must be axes >= 1 (0 is the batch axis), "
                f"received shared_axes={shared_axes!r}"
            )
        self.shared_axes = tuple(int(a) for a in shared_axes)
        self.alpha = None

    def check_input(self, shape: tuple) -> None:
        if len(shape) < 2:
            raise ShapeError(
                f"{self.name}: expected input of rank >= 2 (batch, ...), received shape "
                f"{tuple(shape)}"
            )
        bad = [a for a in self.shared_axes if a >= len(shape)]
        if bad:
            raise ShapeError(
                f"{self.name}: shared_axes {self.shared_axes} do not exist in an input of "
                f"shape {tuple(shape)}"
            )
        if self.alpha is not None:
            expected = self._alpha_shape(shape)
            if expected != self.alpha.shape:
                raise ShapeError(
                    f"{self.name}: the layer was built for input shape {self._build_shape}, "
                    f"received shape {tuple(shape)}"
                )

    def _alpha_shape(self, input_shape) -> tuple:
        return tuple(1 if i in self.shared_axes else s for i, s in enumerate(input_shape) if i)

    def build(self, input_shape) -> None:
        self.alpha = self.add_weight(
            "alpha",
            self._alpha_shape(input_shape),
            self.alpha_initializer,
            regularizer=self.alpha_regularizer,
        )

    def call(self, x, training=None):
        if x.dtype != self.alpha.dtype:
            x = ops.cast(x, self.alpha.dtype)
        # composed from primitives (two graph nodes): the gradient of alpha is x where x <= 0,
        # summed by the engine over the batch and the shared axes
        return ops.where(x > 0, x, x * self.alpha)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "shared_axes": list(self.shared_axes) or None,
        }
