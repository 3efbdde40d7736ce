"""Reductions over axes: sum, mean, max, min, var. Each takes ``axis`` and ``keepdims``."""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function


def _normalize_axis(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % ndim if ndim else 0 for a in axes))


def _expand_like(g, in_shape, axes, keepdims):
    """Give a reduced gradient back its reduced axes (length 1) so it broadcasts."""
    if not keepdims and axes:
        g = np.expand_dims(g, axes)
    return g


class Sum(Function):
    """z = sum(a, axis);  dz/da = 1 broadcast over the reduced axes"""

    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims = keepdims
        return np.asarray(np.sum(a, axis=self.axes, keepdims=keepdims))

    def backward(self, g):
        g = _expand_like(g, self.shape, self.axes, self.keepdims)
        return np.broadcast_to(g, self.shape)


class Mean(Function):
    """z = mean(a, axis);  dz/da = 1/n broadcast over the reduced axes"""

    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims = keepdims
        self.n = int(np.prod([a.shape[i] for i in self.axes])) if self.axes else 1
        return np.asarray(np.mean(a, axis=self.axes, keepdims=keepdims))

    def backward(self, g):
        g = _expand_like(g, self.shape, self.axes, self.keepdims)
        return np.broadcast_to(g / self.n, self.shape)


class Max(Function):
    """z = max(a, axis);  the gradient is shared equally by the elements equal to the max"""

    _reduce = staticmethod(np.max)

    def forward(self, a, axis=None, keepdims=False):
        self.a = a
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims = keepdims
        out = self._reduce(a, axis=self.axes, keepdims=True)
        self.out_kept = out
        return np.asarray(out if keepdims else np.squeeze(out, axis=self.axes))

    def backward(self, g):
        g = _expand_like(g, self.a.shape, self.axes, self.keepdims)
        mask = self.a == self.out_kept
        count = mask.sum(axis=self.axes, keepdims=True)
        return g * mask / count


class Min(Max):
    """z = min(a, axis);  the gradient is shared equally by the elements equal to the min"""

    _reduce = staticmethod(np.min)


class Var(Function):
    """z = mean((a - mean(a))^2) * n / (n - ddof);  dz/da = 2 (a - mean) / (n - ddof)"""

    def forward(self, a, axis=None, keepdims=False, ddof=0):
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims = keepdims
        self.shape = a.shape
        n = int(np.prod([a.shape[i] for i in self.axes])) if self.axes else 1
        self.denom = max(n - ddof, 1)
        self.centered = a - a.mean(axis=self.axes, keepdims=True)
        out = np.sum(self.centered * self.centered, axis=self.axes, keepdims=keepdims)
        return np.asarray(out / self.denom)

    def backward(self, g):
        g = _expand_like(g, self.shape, self.axes, self.keepdims)
        return g * (2.0 / self.denom) * self.centered


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
