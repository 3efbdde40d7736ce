"""Numba kernels of the 2-D pooling ops (``ember.ops.pool``) on NHWC images.

Max pooling keeps, per output element, the offset of its window's winner (row-major offset
``a * PW + b``, uint8): the forward is one pass over the input, and the backward one pass that
writes the input gradient (or, with overlapping windows, one zero fill and one scatter per image
while the image is in cache), instead of recomputing "which element won" from the input.

Padding is never materialised: a window is clipped to the image (padding never wins a max, and
average pooling divides by the real elements). The first maximum in row-major window order
wins (a later tie does not replace it), and NaN propagates: a NaN wins over any number.

Each kernel runs on images ``lo:hi`` of the batch (the op calls it once over the batch, on its
own thread: see ``ember.ops.pool._by_image_ranges``); the loops over channels are the inner
ones (NHWC: contiguous), and LLVM vectorises them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ember.ops.kernels import JIT


@njit(**JIT)
def max_pool_forward(x, ph, pw, sh, sw, top, left, out, arg, lo, hi):
    """out[n, i, j, c] = max of x over the window at (i sh - top, j sw - left), clipped to the
    image; arg = that maximum's row-major offset in the (PH, PW) window."""
    _, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for n in range(lo, hi):
        for i in range(oh):
            r0 = i * sh - top
            a0, a1 = max(0, -r0), min(ph, h - r0)
            for j in range(ow):
                c0 = j * sw - left
                b0, b1 = max(0, -c0), min(pw, w - c0)
                o, g = out[n, i, j], arg[n, i, j]
                first = x[n, r0 + a0, c0 + b0]
                k0 = np.uint8(a0 * pw + b0)
                for ch in range(c):
                    o[ch] = first[ch]
                    g[ch] = k0
                for a in range(a0, a1):
                    for b in range(b0, b1):
                        if a == a0 and b == b0:
                            continue
                        row = x[n, r0 + a, c0 + b]
                        k = np.uint8(a * pw + b)
                        for ch in range(c):
                            v, m = row[ch], o[ch]
                            # strictly greater: the first maximum stays; a NaN wins once
                            win = v > m or (v != v and m == m)
                            o[ch] = v if win else m
                            g[ch] = k if win else g[ch]


@njit(**JIT)
def max_pool_forward_2x2(x, out, arg, lo, hi):
    """max_pool_forward for 2x2 windows with stride 2 and no padding (the common case): the
    four candidates of a channel compared in registers (measured 30% faster than the general
    kernel's running maximum in memory)."""
    c = x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for n in range(lo, hi):
        for i in range(oh):
            for j in range(ow):
                r0, r1 = x[n, 2 * i, 2 * j], x[n, 2 * i, 2 * j + 1]
                r2, r3 = x[n, 2 * i + 1, 2 * j], x[n, 2 * i + 1, 2 * j + 1]
                o, g = out[n, i, j], arg[n, i, j]
                for ch in range(c):
                    m, k = r0[ch], np.uint8(0)
                    v = r1[ch]
                    if v > m or (v != v and m == m):  # as in max_pool_forward
                        m, k = v, np.uint8(1)
                    v = r2[ch]
                    if v > m or (v != v and m == m):
                        m, k = v, np.uint8(2)
                    v = r3[ch]
                    if v > m or (v != v and m == m):
                        m, k = v, np.uint8(3)
                    o[ch] = m
                    g[ch] = k


@njit(**JIT)
def max_pool_backward_tiles(g, arg, ph, pw, gx, lo, hi):
    """Windows that tile the image (stride = pool, no padding): every input element of a window
    gets g where it is the winner, 0 elsewhere (one write of each element, no zero fill). Rows
    and columns past the last whole window are zeroed."""
    oh, ow, c = g.shape[1], g.shape[2], g.shape[3]
    h, w = gx.shape[1], gx.shape[2]
    zero = gx.dtype.type(0)
    for n in range(lo, hi):
        for i in range(oh):
            for a in range(ph):
                for j in range(ow):
                    gg, k = g[n, i, j], arg[n, i, j]
                    for b in range(pw):
                        dst = gx[n, i * ph + a, j * pw + b]
                        off = np.uint8(a * pw + b)
                        for ch in range(c):
                            dst[ch] = gg[ch] if k[ch] == off else zero
                for col in range(ow * pw, w):
                    gx[n, i * ph + a, col, :] = zero
        for row in range(oh * ph, h):
            gx[n, row, :, :] = zero


@njit(**JIT)
def max_pool_backward_scatter(g, arg, pw, sh, sw, top, left, gx, lo, hi):
    """Any geometry: per image, zero the gradient and add each g to its window's winner
    (overlapping windows add up)."""
    oh, ow, c = g.shape[1], g.shape[2], g.shape[3]
    for n in range(lo, hi):
        gx[n, :, :, :] = gx.dtype.type(0)
        for i in range(oh):
            for j in range(ow):
                gg, k = g[n, i, j], arg[n, i, j]
                for ch in range(c):
                    kk = np.int64(k[ch])
                    a, b = kk // pw, kk % pw
                    gx[n, i * sh - top + a, j * sw - left + b, ch] += gg[ch]


@njit(**JIT)
def avg_pool_forward(x, ph, pw, sh, sw, top, left, out, lo, hi):
    """out = mean of each window's real elements (the window clipped to the image)."""
    _, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for n in range(lo, hi):
        for i in range(oh):
            r0 = i * sh - top
            a0, a1 = max(0, -r0), min(ph, h - r0)
            for j in range(ow):
                c0 = j * sw - left
                b0, b1 = max(0, -c0), min(pw, w - c0)
                o = out[n, i, j]
                o[:] = x.dtype.type(0)
                for a in range(a0, a1):
                    for b in range(b0, b1):
                        row = x[n, r0 + a, c0 + b]
                        for ch in range(c):
                            o[ch] += row[ch]
                inv = x.dtype.type(1.0 / ((a1 - a0) * (b1 - b0)))
                for ch in range(c):
                    o[ch] *= inv


@njit(**JIT)
def avg_pool_backward(g, ph, pw, sh, sw, top, left, gx, lo, hi):
    """Per image: zero the gradient, then add g / (real elements) to each window's elements."""
    h, w, c = gx.shape[1], gx.shape[2], gx.shape[3]
    oh, ow = g.shape[1], g.shape[2]
    for n in range(lo, hi):
        gx[n, :, :, :] = gx.dtype.type(0)
        for i in range(oh):
            r0 = i * sh - top
            a0, a1 = max(0, -r0), min(ph, h - r0)
            for j in range(ow):
                c0 = j * sw - left
                b0, b1 = max(0, -c0), min(pw, w - c0)
                inv = gx.dtype.type(1.0 / ((a1 - a0) * (b1 - b0)))
                gg = g[n, i, j]
                for a in range(a0, a1):
                    for b in range(b0, b1):
                        dst = gx[n, r0 + a, c0 + b]
                        for ch in range(c):
                            dst[ch] += gg[ch] * inv


@njit(**JIT)
def global_avg_pool(x, out, lo, hi):
    """out[n, c] = mean over positions p of x[n, p, c] (x as (N, P, C)), summed in float64."""
    p, c = x.shape[1], x.shape[2]
    acc = np.zeros(c)
    inv = 1.0 / p
    for n in range(lo, hi):
        acc[:] = 0.0
        for q in range(p):
            row = x[n, q]
            for ch in range(c):
                acc[ch] += np.float64(row[ch])
        for ch in range(c):
            out[n, ch] = acc[ch] * inv
