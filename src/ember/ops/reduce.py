"""Reductions over axes: sum, mean, max, min, var. Each takes ``axis`` and ``keepdims``.

Every backward first gives the incoming gradient back its reduced axes as length-1 axes
(``kept``, the shape with keepdims=True), so that it broadcasts against the input.
"""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.errors import ShapeError


def _axes(axis, shape: tuple) -> tuple:
    """The reduced axes as sorted non-negative ints, and the shape with them kept as 1."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim)), (1,) * ndim
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    try:
        axes = tuple(sorted(int(a) + ndim if a < 0 else int(a) for a in axes))
        if any(a < 0 or a >= ndim for a in axes):
            raise IndexError
    except (IndexError, TypeError):
        raise ShapeError(
            f"reduction: axis {axis!r} is out of range for an input of shape {shape}"
        ) from None
    return axes, tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for i in axes:
        n *= shape[i]
    return n


class Sum(Function):
    """z = sum(a, axis);  dz/da = 1 broadcast over the reduced axes"""

    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        axes, self.kept = _axes(axis, a.shape)
        return np.asarray(np.sum(a, axis=None if axis is None else axes, keepdims=keepdims))

    def backward(self, g):
        return np.broadcast_to(g.reshape(self.kept), self.shape)


class Mean(Function):
    """z = mean(a, axis);  dz/da = 1/n broadcast over the reduced axes"""

    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        axes, self.kept = _axes(axis, a.shape)
        self.n = _count(a.shape, axes)
        return np.asarray(np.mean(a, axis=None if axis is None else axes, keepdims=keepdims))

    def backward(self, g):
        return np.broadcast_to(g.reshape(self.kept) / self.n, self.shape)


class Max(Function):
    """z = max(a, axis);  the gradient is shared equally by the elements equal to the max
    (PyTorch's ``amax`` rule)"""

    _reduce = staticmethod(np.max)

    def forward(self, a, axis=None, keepdims=False):
        self.a = a
        axes, kept = _axes(axis, a.shape)
        self.axes = None if axis is None else axes
        self.out_kept = self._reduce(a, axis=self.axes, keepdims=True)
        if keepdims:
            return self.out_kept
        return self.out_kept.reshape(tuple(n for i, n in enumerate(a.shape) if i not in axes))

    def backward(self, g):
        mask = self.a == self.out_kept
        # count of ties in the input's dtype: an integer count would upcast float32 to float64
        count = mask.sum(axis=self.axes, keepdims=True, dtype=g.dtype)
        return mask * (g.reshape(self.out_kept.shape) / count)


class Min(Max):
    """z = min(a, axis);  the gradient is shared equally by the elements equal to the min"""

    _reduce = staticmethod(np.min)


class Var(Function):
    """z = sum((a - mean(a))^2) / (n - ddof);  dz/da = 2 (a - mean) / (n - ddof)
    (n - ddof <= 0 gives NaN, as in NumPy and PyTorch)"""

    def forward(self, a, axis=None, keepdims=False, ddof=0):
        axes, self.kept = _axes(axis, a.shape)
        dof = _count(a.shape, axes) - ddof
        self.scale = 1.0 / dof if dof > 0 else float("inf")  # a Python float: no upcast
        self.centered = a - a.mean(axis=axes, keepdims=True)
        out = np.sum(self.centered * self.centered, axis=axes, keepdims=keepdims)
        with np.errstate(invalid="ignore"):
            return np.asarray(out * self.scale)

    def backward(self, g):
        return g.reshape(self.kept) * (2.0 * self.scale) * self.centered


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return Sum.apply(a, axis=axis, keepdims=keepdims)


def mean(a, axis=None, keepdims=False):
    return Mean.apply(a, axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return Max.apply(a, axis=axis, keepdims=keepdims)


def min(a, axis=None, keepdims=False):  # noqa: A001
    return Min.apply(a, axis=axis, keepdims=keepdims)


def var(a, axis=None, keepdims=False, ddof=0):
    return Var.apply(a, axis=axis, keepdims=keepdims, ddof=ddof)
