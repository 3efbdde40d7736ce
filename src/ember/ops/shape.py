"""Ops that move values without changing them: reshape, transpose, broadcast, indexing, joins."""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.errors import ShapeError


class Reshape(Function):
    """z = a viewed with a new shape;  the gradient is reshaped back"""

    def forward(self, a, shape=None):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot reshape an array of shape {a.shape} ({a.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    def backward(self, g):
        return g.reshape(self.shape)


class Transpose(Function):
    """z = a with its axes permuted (reversed when axes is None);  the gradient is permuted back"""

    def forward(self, a, axes=None):
        try:
            out = np.transpose(a, axes)
        except ValueError:
            raise ShapeError(
                f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of an input "
                f"of shape {a.shape}"
            ) from None
        # argsort of the axes made non-negative: (0, -1, 1) on 3 axes is (0, 2, 1)
        self.inverse = None if axes is None else tuple(np.argsort([i % a.ndim for i in axes]))
        return out

    def backward(self, g):
        return np.transpose(g, self.inverse)


class BroadcastTo(Function):
    """z = a repeated along broadcast axes;  the engine sums the gradient back"""

    def forward(self, a, shape=None):
        try:
            return np.broadcast_to(a, shape)
        except ValueError:
            raise ShapeError(
                f"broadcast_to: cannot broadcast shape {a.shape} to {tuple(shape)}"
            ) from None

    def backward(self, g):
        return g


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items
    )


class GetItem(Function):
    """z = a[index] (basic or integer-array indexing);  the gradient is scattered back, adding
    where an element was picked more than once"""

    def forward(self, a, index=None):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as exc:
            raise ShapeError(
                f"getitem: index {index!r} does not fit shape {a.shape}: {exc}"
            ) from None

    def backward(self, g):
        gx = np.zeros(self.shape, dtype=g.dtype)
        if _is_basic(self.index):
            gx[self.index] = g
        else:
            np.add.at(gx, self.index, g)
        return gx


class Concatenate(Function):
    """z = [a1, a2, ...] joined along an axis;  the gradient is split at the same places"""

    def forward(self, *arrays, axis=0):
        self.axis = axis
        try:
            out = np.concatenate(arrays, axis=axis)
        except (ValueError, IndexError):
            shapes = ", ".join(str(np.shape(a)) for a in arrays)
            raise ShapeError(
                f"concatenate: shapes {shapes} do not fit together along axis {axis}"
            ) from None
        self.cuts = np.cumsum([np.shape(a)[axis] for a in arrays])[:-1]
        return out

    def backward(self, g):
        return tuple(np.split(g, self.cuts, axis=self.axis))


class Stack(Function):
    """z = [a1, a2, ...] stacked on a new axis;  each input gets its slice of the gradient"""

    def forward(self, *arrays, axis=0):
        self.axis = axis
        try:
            return np.stack(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(np.shape(a)) for a in arrays)
            raise ShapeError(f"stack: all inputs need the same shape, received {shapes}") from None

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))


class Split(Function):
    """(z1, z2, ...) = a cut along an axis;  the gradients are joined back"""

    def forward(self, a, indices_or_sections=2, axis=0):
        self.axis = axis
        try:
            return tuple(np.split(a, indices_or_sections, axis=axis))
        except (ValueError, IndexError):
            raise ShapeError(
                f"split: cannot split an input of shape {a.shape} along axis {axis} with "
                f"indices_or_sections={indices_or_sections!r} (a number of sections must "
                f"divide the axis; a list gives the cut points)"
            ) from None

    def backward(self, *gs):
        return np.concatenate(gs, axis=self.axis)


class Pad(Function):
    """z = a surrounded by a constant;  the gradient is the inner slice"""

    def forward(self, a, pad_width=0, value=0.0):
        try:
            pw = np.broadcast_to(np.asarray(pad_width, dtype=int), (a.ndim, 2))
        except ValueError:
            raise ShapeError(
                f"pad: pad_width {pad_width!r} does not fit an input of shape {a.shape}: give "
                f"one int, one (before, after) pair, or one pair per axis"
            ) from None
        self.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(pw, a.shape))
        return np.pad(a, pw, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.slices]


def reshape(a, shape):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return Reshape.apply(a, shape=tuple(shape))


def transpose(a, axes=None):
    return Transpose.apply(a, axes=None if axes is None else tuple(axes))


permute = transpose


def broadcast_to(a, shape):
    return BroadcastTo.apply(a, shape=tuple(shape))


def expand_dims(a, axis):
    shape = list(np.shape(a.data if hasattr(a, "data") else a))
    shape.insert(axis if axis >= 0 else len(shape) + axis + 1, 1)
    return reshape(a, shape)


def squeeze(a, axis):
    shape = list(np.shape(a.data if hasattr(a, "data") else a))
    del shape[axis]
    return reshape(a, shape)


def getitem(a, index):
    from ember.autograd.tensor import Tensor

    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, list):
        index = np.asarray(index)
    return GetItem.apply(a, index=index)


def concatenate(tensors, axis=0):
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    return Stack.apply(*tensors, axis=axis)


def split(a, indices_or_sections, axis=0):
    return Split.apply(a, indices_or_sections=indices_or_sections, axis=axis)


def pad(a, pad_width, value=0.0):
    return Pad.apply(a, pad_width=pad_width, value=value)
