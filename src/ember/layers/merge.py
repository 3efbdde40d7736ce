"""Merging layers, called on a list of tensors: Add (residual connections) and Concatenate."""

from __future__ import annotations

import numpy as np

from ember import ops
from ember.errors import EmberTypeError, ShapeError
from ember.layers.base import Layer, as_tensor, register


class _Merge(Layer):
    def _inputs(self, x) -> list:
        if not isinstance(x, (list, tuple)) or len(x) < 2:
            raise EmberTypeError(
                f"{self.name}: expected a list of at least 2 tensors, received "
                f"{type(x).__name__}"
                + (f" of length {len(x)}" if isinstance(x, (list, tuple)) else "")
            )
        return [as_tensor(t) for t in x]

    def _check_same_rank(self, shapes) -> None:
        if len({len(s) for s in shapes}) != 1:
            raise ShapeError(
                f"{self.name}: inputs must have the same rank, received shapes {list(shapes)}"
            )


@register
class Add(_Merge):
    """Elementwise sum of a list of tensors of the same (or broadcastable) shape."""

    def call(self, x, training=None):
        xs = self._inputs(x)
        shapes = [t.shape for t in xs]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ShapeError(
                f"{self.name}: inputs must have the same shape, received shapes {shapes}"
            ) from None
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out

    def compute_output_shape(self, input_shape) -> tuple:
        shapes = [tuple(s) for s in input_shape]
        self._check_same_rank(shapes)
        return tuple(
            None if any(s[i] is None for s in shapes) else max(s[i] for s in shapes)
            for i in range(len(shapes[0]))
        )


@register
class Concatenate(_Merge):
    """Joins a list of tensors along ``axis``; the other axes must agree.

    Args:
        axis: the axis to join along (-1: the features).
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise EmberTypeError(f"{self.name}: axis must be an int, received axis={axis!r}")
        self.axis = int(axis)

    def _check(self, shapes) -> int:
        self._check_same_rank(shapes)
        ndim = len(shapes[0])
        if not -ndim <= self.axis < ndim:
            raise ShapeError(
                f"{self.name}: axis={self.axis} is out of range for inputs of shapes "
                f"{list(shapes)}"
            )
        axis = self.axis % ndim
        rest = {tuple(s[:axis]) + tuple(s[axis + 1 :]) for s in shapes}
        if len(rest) != 1:
            raise ShapeError(
                f"{self.name}: inputs must agree on every axis but {self.axis}, received "
                f"shapes {list(shapes)}"
            )
        return axis

    def call(self, x, training=None):
        xs = self._inputs(x)
        axis = self._check([t.shape for t in xs])
        return ops.concatenate(xs, axis=axis)

    def compute_output_shape(self, input_shape) -> tuple:
        shapes = [tuple(s) for s in input_shape]
        axis = self._check(shapes)
        sizes = [s[axis] for s in shapes]
        out = list(shapes[0])
        out[axis] = None if any(n is None for n in sizes) else sum(sizes)
        return tuple(out)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
