"""Pooling on NHWC images: max and average over sliding windows, and global pooling.

A window is read through a view, never copied: when the windows tile the image exactly (stride
equal to the pool size, no padding) the image is reshaped to (N, OH, PH, OW, PW, C); otherwise a
strided view (N, OH, OW, PH, PW, C) of the padded image is used. Either way the op walks the
PH*PW offsets inside a window, and each offset is one (N, OH, OW, C) view: a max or a sum of
PH*PW whole arrays, with no Python loop over pixels.

With Numba (``ember.ops._accel``; off with ``EMBER_ACCEL=0``), max and average pooling and
the global average run compiled kernels (``ember/ops/kernels/pool.py``) instead: one pass over
the input with windows clipped to the image (no padded copy); the max-pool forward keeps each
winner's offset in its window (uint8), and the backward writes the input gradient in one pass
from it (no search for the winner, no masks). Measured at 64x32x32x32 float32: forward 0.85 ->
0.45 ms, backward 3.0 -> 0.6 ms.

Conventions (those of PyTorch and Keras): the max-pool gradient goes to ONE element per window,
the first maximum in row-major window order (what PyTorch picks when a window holds ties, e.g.
the zeros after a ReLU); SAME padding follows TensorFlow's rule (extra padding after), padded
positions never win a max, and SAME average pooling divides by the number of real (non-padding)
elements in each window.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ember.autograd.function import Function
from ember.errors import ShapeError
from ember.ops import _accel
from ember.ops.conv import as_pair, check_padding, conv_geometry, pad_nhwc
from ember.ops.workers import _workers


def _geometry(x, pool, strides, padding, where):
    if x.ndim != 4:
        raise ShapeError(
            f"{where}: expected a 4-D input (batch, height, width, channels), received an input "
            f"of shape {x.shape}"
        )
    return conv_geometry(x.shape[1:3], pool, strides, padding, 1, where=where)


def _window_view(x, pool, strides, pads, out_hw, writeable=False):
    """(N, OH, PH, OW, PW, C) view of every window of the (already padded) image, no copy.
    ``writeable`` only for a buffer the caller owns (overlapping windows share elements)."""
    (ph, pw), (sh, sw), (oh, ow) = pool, strides, out_hw
    n, h, w, c = x.shape
    if (sh, sw) == (ph, pw) and not any(pads):
        # windows tile the image: a reshape (cropping a VALID remainder is still a view)
        return x[:, : oh * ph, : ow * pw].reshape(n, oh, ph, ow, pw, c)
    s0, s1, s2, s3 = x.strides
    return as_strided(
        x, (n, oh, ph, ow, pw, c), (s0, s1 * sh, s1, s2 * sw, s2, s3), writeable=writeable
    )


_CHUNK_BYTES = 512 << 10  # images per chunk of a pooling pass: their input fits in L2
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what the kernels compile for


def _by_images(work, x) -> None:
    """work(lo, hi) over slices of the batch, a cache-sized chunk of images at a time, on every
    core (ember's chunk runner, ops/workers.py). Each chunk writes only its own images."""
    n = x.shape[0]
    per = max(1, min(n, _CHUNK_BYTES // max(1, x[:1].nbytes)))
    _workers.run(lambda i: work(i * per, min(n, i * per + per)), -(-n // per))


def _kernels(x, pool):
    """The compiled pooling kernels when they apply to ``x`` (a float array, a window of at
    most 256 offsets so that a winner's offset fits in uint8), else None (NumPy path).

    A kernel runs over the whole batch in one call on the calling thread: the kernels are bound
    by memory traffic, and sharing images out over ember's workers measured no faster here on 2
    cores, and several times slower when the cores were busy (a preempted helper holds its
    chunk)."""
    if x.dtype not in _KERNEL_DTYPES or pool[0] * pool[1] > 256 or x.size == 0:
        return None
    return _accel.load("pool")


def _tiles(pool, strides, pads) -> bool:
    """Whether windows neither overlap nor need padding (gradients can be assigned, not added)."""
    return tuple(strides) == tuple(pool) and not any(pads)


def _offsets(pool):
    return [(a, b) for a in range(pool[0]) for b in range(pool[1])]


class MaxPool2D(Function):
    """y = max of each window;  dy/dx = 1 at the window's first maximum (row-major), 0 elsewhere"""

    def forward(self, x, pool=(2, 2), strides=(2, 2), padding="valid"):
        (oh, ow), pads = _geometry(x, pool, strides, padding, "max_pool2d")
        self.pads, self.pool, self.strides, self.x_shape = pads, pool, strides, x.shape
        self.arg = None
        k = _kernels(x, pool)
        if k is not None:
            # one pass: each output's maximum and its offset in the window (uint8), so that the
            # backward is one scatter pass instead of a search for the winner
            x = np.ascontiguousarray(x)
            out = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
            arg = np.empty(out.shape, dtype=np.uint8)
            (ph, pw), (sh, sw), (top, _, left, _) = pool, strides, pads

            n = x.shape[0]  # the whole batch in one call: see _kernels
            if tuple(pool) == tuple(strides) == (2, 2) and not any(pads):
                k.max_pool_forward_2x2(x, out, arg, 0, n)
            else:
                k.max_pool_forward(x, ph, pw, sh, sw, top, left, out, arg, 0, n)
            self.arg, self.k = arg, k
            return out
        xp = pad_nhwc(x, pads, value=-np.inf)  # padding never wins a max
        win = _window_view(xp, pool, strides, pads, (oh, ow))
        out = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
        offsets = _offsets(pool)

        def work(lo, hi):
            w, o = win[lo:hi], out[lo:hi]
            np.copyto(o, w[:, :, 0, :, 0])
            for a, b in offsets[1:]:
                np.maximum(o, w[:, :, a, :, b], out=o)

        _by_images(work, x)
        self.win, self.out, self.padded_shape = win, out, xp.shape
        return out

    def backward(self, g):
        if self.arg is not None:
            return self._backward_kernel(g)
        win, out = self.win, self.out
        oh, ow = out.shape[1:3]
        assign = _tiles(self.pool, self.strides, self.pads)
        covered = self.padded_shape[1:3] == (oh * self.pool[0], ow * self.pool[1])
        # tiling windows that cover the image write every element below: no zero fill needed
        gxp = (np.empty if assign and covered else np.zeros)(self.padded_shape, dtype=g.dtype)
        # the same window view over the gradient buffer (ours, so it may be written)
        gwin = _window_view(gxp, self.pool, self.strides, self.pads, (oh, ow), True)
        offsets = _offsets(self.pool)

        def work(lo, hi):
            # a few images at a time, so that the masks stay in cache
            w, o, gg, gw = win[lo:hi], out[lo:hi], g[lo:hi], gwin[lo:hi]
            free = None  # windows whose maximum is not found yet (bool: 4x less traffic)
            hit = np.empty(o.shape, dtype=bool)
            for k, (a, b) in enumerate(offsets):
                np.equal(w[:, :, a, :, b], o, out=hit)
                if free is not None:
                    hit &= free  # a later tie in the same window gets nothing
                if k < len(offsets) - 1:
                    if free is None:
                        free = ~hit
                    else:
                        free ^= hit  # hit is inside free now: this clears hit's windows
                if assign:
                    np.multiply(gg, hit, out=gw[:, :, a, :, b])
                else:  # overlapping windows: one offset never overlaps itself, so += is safe
                    gw[:, :, a, :, b] += gg * hit

        _by_images(work, self.out)  # windows overlap within an image, never across images
        return _crop(gxp, self.pads, self.x_shape)

    def _backward_kernel(self, g):
        k, arg = self.k, self.arg
        g = np.ascontiguousarray(g)
        gx = np.empty(self.x_shape, dtype=g.dtype)
        (ph, pw), (sh, sw), (top, _, left, _) = self.pool, self.strides, self.pads
        if _tiles(self.pool, self.strides, self.pads):
            # every element written once: no zero fill
            k.max_pool_backward_tiles(g, arg, ph, pw, gx, 0, gx.shape[0])
        else:
            # windows overlap within an image, never across images
            k.max_pool_backward_scatter(g, arg, pw, sh, sw, top, left, gx, 0, gx.shape[0])
        return gx


class AvgPool2D(Function):
    """y = mean of each window's real elements;  dy/dx = 1/count spread over the window"""

    def forward(self, x, pool=(2, 2), strides=(2, 2), padding="valid"):
        (oh, ow), pads = _geometry(x, pool, strides, padding, "avg_pool2d")
        self.k = k = _kernels(x, pool)
        if k is not None:  # one pass, windows clipped to the image (no padded copy)
            x = np.ascontiguousarray(x)
            out = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
            (ph, pw), (sh, sw), (top, _, left, _) = pool, strides, pads

            k.avg_pool_forward(x, ph, pw, sh, sw, top, left, out, 0, x.shape[0])
            self.pads, self.pool, self.strides, self.x_shape = pads, pool, strides, x.shape
            return out
        xp = pad_nhwc(x, pads)
        win = _window_view(xp, pool, strides, pads, (oh, ow))
        out = win[:, :, 0, :, 0].copy()
        for a, b in _offsets(pool)[1:]:
            out += win[:, :, a, :, b]
        self.scale = _inverse_counts(x.shape[1:3], pool, strides, pads, (oh, ow), out.dtype)
        out *= self.scale
        self.pads, self.pool, self.strides = pads, pool, strides
        self.x_shape, self.padded_shape = x.shape, xp.shape
        return out

    def backward(self, g):
        if self.k is not None:
            return self._backward_kernel(g)
        gs = g * self.scale
        gxp = np.zeros(self.padded_shape, dtype=gs.dtype)
        gwin = _window_view(gxp, self.pool, self.strides, self.pads, g.shape[1:3], True)
        assign = _tiles(self.pool, self.strides, self.pads)
        for a, b in _offsets(self.pool):
            if assign:
                gwin[:, :, a, :, b] = gs
            else:
                gwin[:, :, a, :, b] += gs
        return _crop(gxp, self.pads, self.x_shape)

    def _backward_kernel(self, g):
        k = self.k
        g = np.ascontiguousarray(g)
        gx = np.empty(self.x_shape, dtype=g.dtype)
        (ph, pw), (sh, sw), (top, _, left, _) = self.pool, self.strides, self.pads

        # per image: zero fill and add, while the image is in cache
        k.avg_pool_backward(g, ph, pw, sh, sw, top, left, gx, 0, gx.shape[0])
        return gx


def _inverse_counts(hw, pool, strides, pads, out_hw, dtype):
    """1 / (number of real elements in each window): a scalar without padding, else (OH, OW, 1)."""
    if not any(pads):
        return dtype.type(1.0 / (pool[0] * pool[1]))
    counts = []
    for size, p, s, before, n_out in zip(hw, pool, strides, pads[::2], out_hw):
        start = np.arange(n_out) * s - before  # first input index of each window
        counts.append(np.minimum(start + p, size) - np.maximum(start, 0))
    return (1.0 / np.outer(counts[0], counts[1])).astype(dtype)[:, :, None]


def _crop(gxp, pads, x_shape):
    top, _, left, _ = pads
    if gxp.shape == x_shape:
        return gxp
    return gxp[:, top : top + x_shape[1], left : left + x_shape[2]]


class GlobalAvgPool(Function):
    """y = mean over every axis between batch and channels;  dy/dx = 1/n broadcast back"""

    def forward(self, x, keepdims=False):
        self.axes = tuple(range(1, x.ndim - 1))
        self.x_shape = x.shape
        self.n = int(np.prod(x.shape[1:-1]))
        k = _accel.load("pool") if x.dtype in _KERNEL_DTYPES and x.size and x.ndim >= 3 else None
        if k is None:
            return np.mean(x, axis=self.axes, keepdims=keepdims)
        # one pass over each image's (positions, channels) rows: NumPy's mean over the middle
        # axes of an NHWC array walks it with a short inner loop
        x3 = np.ascontiguousarray(x).reshape(x.shape[0], self.n, x.shape[-1])
        out = np.empty((x.shape[0], x.shape[-1]), dtype=x.dtype)

        k.global_avg_pool(x3, out, 0, x.shape[0])
        if keepdims:
            out = out.reshape((x.shape[0],) + (1,) * len(self.axes) + (x.shape[-1],))
        return out

    def backward(self, g):
        g = g.reshape((g.shape[0],) + (1,) * len(self.axes) + (g.shape[-1],))
        return np.broadcast_to(g * (1.0 / self.n), self.x_shape)


class GlobalMaxPool(Function):
    """y = max over every axis between batch and channels;  dy/dx = 1 at the first maximum"""

    def forward(self, x, keepdims=False):
        self.x_shape = x.shape
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        self.idx = flat.argmax(axis=1)[:, None, :]  # argmax picks the first of ties
        out = np.take_along_axis(flat, self.idx, axis=1)[:, 0, :]
        if keepdims:
            out = out.reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],))
        return out

    def backward(self, g):
        n, c = self.x_shape[0], self.x_shape[-1]
        gx = np.zeros((n, int(np.prod(self.x_shape[1:-1])), c), dtype=g.dtype)
        np.put_along_axis(gx, self.idx, g.reshape(n, 1, c), axis=1)
        return gx.reshape(self.x_shape)


# ------------------------------------------------------------------------------ wrappers


def _pool_args(pool_size, strides, padding, where):
    pool = as_pair(pool_size, "pool_size", where)
    strides = pool if strides is None else as_pair(strides, "strides", where)
    return pool, strides, check_padding(padding, where)


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Max over each (pool_size) window of NHWC ``x``, moving by ``strides`` (default: the pool
    size); ``padding`` "valid" or "same"."""
    pool, strides, padding = _pool_args(pool_size, strides, padding, "max_pool2d")
    return MaxPool2D.apply(x, pool=pool, strides=strides, padding=padding)


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Mean over each (pool_size) window of NHWC ``x``; with "same" padding each window is
    divided by its number of real elements (as TensorFlow/Keras do)."""
    pool, strides, padding = _pool_args(pool_size, strides, padding, "avg_pool2d")
    return AvgPool2D.apply(x, pool=pool, strides=strides, padding=padding)


def _check_rank(x, ndim, where, expected):
    if np.ndim(x.data if hasattr(x, "data") else x) != ndim:
        raise ShapeError(
            f"{where}: expected a {ndim}-D input {expected}, received an input of shape "
            f"{np.shape(x.data if hasattr(x, 'data') else x)}"
        )


def global_avg_pool2d(x, keepdims=False):
    """Mean over height and width of NHWC ``x``: (N, C), or (N, 1, 1, C) with keepdims."""
    _check_rank(x, 4, "global_avg_pool2d", "(batch, height, width, channels)")
    return GlobalAvgPool.apply(x, keepdims=keepdims)


def global_max_pool2d(x, keepdims=False):
    """Max over height and width of NHWC ``x``; the gradient goes to the first maximum."""
    _check_rank(x, 4, "global_max_pool2d", "(batch, height, width, channels)")
    return GlobalMaxPool.apply(x, keepdims=keepdims)


def global_avg_pool1d(x, keepdims=False):
    """Mean over the steps of ``x`` (batch, steps, features)."""
    _check_rank(x, 3, "global_avg_pool1d", "(batch, steps, features)")
    return GlobalAvgPool.apply(x, keepdims=keepdims)


def global_max_pool1d(x, keepdims=False):
    """Max over the steps of ``x`` (batch, steps, features); the gradient goes to the first
    maximum."""
    _check_rank(x, 3, "global_max_pool1d", "(batch, steps, features)")
    return GlobalMaxPool.apply(x, keepdims=keepdims)
