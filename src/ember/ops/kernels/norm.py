"""Numba kernels of the channels-last batch norm (``ember.ops.norm``) on (rows, C) arrays.

Training forward = one pass for the statistics + one pass for y = x scale + shift; backward =
one pass for sum(g) and sum(g (x - mean)) + one pass for dx = a g + b x + c. Each kernel works
on rows ``lo:hi`` (a chunk of the batch) so that ember's chunk runner runs chunks on several
threads (``nogil``); per-chunk partial sums are added by the caller in chunk order, so results
do not depend on the thread count.

Statistics are accumulated in float64 whatever the input's dtype, around a per-channel shift
(a sample of the channel: the first row), so E[(x - s)^2] - E[x - s]^2 does not cancel
catastrophically: one pass instead of the two of mean then centered squares. The elementwise
passes work in the arrays' own dtype, with the same operations in the same order as the NumPy
path (no fused multiply-add: ``fastmath`` off).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ember.ops.kernels import JIT


@njit(**JIT)
def moments(x, shift, s1, s2, lo, hi):
    """s1[c] = sum over rows lo:hi of (x - shift), s2[c] = of (x - shift)^2 (float64)."""
    c = x.shape[1]
    for ch in range(c):
        s1[ch] = 0.0
        s2[ch] = 0.0
    for r in range(lo, hi):
        row = x[r]
        for ch in range(c):
            d = np.float64(row[ch]) - shift[ch]
            s1[ch] += d
            s2[ch] += d * d


@njit(**JIT)
def grad_sums(g, x, mean, s1, s2, lo, hi):
    """s1[c] = sum over rows lo:hi of g, s2[c] = of g (x - mean) (float64)."""
    c = x.shape[1]
    for ch in range(c):
        s1[ch] = 0.0
        s2[ch] = 0.0
    for r in range(lo, hi):
        grow, xrow = g[r], x[r]
        for ch in range(c):
            gv = np.float64(grow[ch])
            s1[ch] += gv
            s2[ch] += gv * (np.float64(xrow[ch]) - mean[ch])


@njit(**JIT)
def affine(x, scale, shift, out, lo, hi):
    """out = x scale + shift per channel, rows lo:hi."""
    c = x.shape[1]
    for r in range(lo, hi):
        xrow, orow = x[r], out[r]
        for ch in range(c):
            orow[ch] = xrow[ch] * scale[ch] + shift[ch]


@njit(**JIT)
def affine2(x, b, shift, g, a, out, lo, hi):
    """out = x b + shift + g a per channel, rows lo:hi (the batch-norm input gradient)."""
    c = x.shape[1]
    for r in range(lo, hi):
        xrow, grow, orow = x[r], g[r], out[r]
        for ch in range(c):
            orow[ch] = xrow[ch] * b[ch] + shift[ch] + grow[ch] * a[ch]
