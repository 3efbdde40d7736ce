"""Compiled kernels for ``ember.ops.conv``: the transforms of a Winograd F(2x2, 3x3) convolution.

A 3x3 stride-1 convolution computes each 2x2 block ("tile") of outputs from the 4x4 block of
padded input under it. Winograd's minimal filtering algorithm F(2x2, 3x3) (Lavin & Gray, 2015)
does that with 16 products per (input channel, filter) pair instead of 36:

    Y = A^T [ (G w G^T) * (B^T d B) ] A      (* elementwise, over the 4x4 transformed tile)

With the input transform V = B^T d B of every tile and channel laid out as (16, tiles, C), and
the kernel transform U = G w G^T as (16, C, O), the products summed over channels are 16 GEMMs
M[k] = V[k] @ U[k] of (tiles, C) x (C, O): 2.25x fewer multiply-adds than the patch matrix's
(tiles * 4, 9C) x (9C, O) GEMM, and no 9x patch copy. The output transform A^T M A gives the
2x2 outputs of each tile. The weight gradient is the same identity read another way (the
"trilinear form" sum_tile <g_tile, conv(d_tile, w)> is symmetric in its three arguments):
dW = G^T [ sum_tiles (A g A^T) * (B^T d B) ] G, i.e. 16 GEMMs V[k]^T @ (A g A^T)[k].

The kernels here are the transforms (memory-bound passes, vectorised over channels); the
GEMMs stay in BLAS. Matrices (Lavin's):

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Positions outside the input (the padding, and the extra row / column of an odd output size)
read as zeros; outputs outside the output are not written.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ember.ops.kernels import JIT

# G, as an array for the (cheap, NumPy) kernel transforms in ember.ops.conv
WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


@njit(inline="always", **JIT)
def _sub(dst, i, s1, a, s2, b, n):
    """dst[i] = s1[a] - s2[b] over n values: one load-load-store loop, which LLVM vectorises
    (one body computing 16 rows from 16 others needs more overlap checks than it makes, and
    ran scalar, 1.3-1.5x slower overall)."""
    for k in range(n):
        dst[i, k] = s1[a, k] - s2[b, k]


@njit(inline="always", **JIT)
def _add(dst, i, s1, a, s2, b, n):
    """dst[i] = s1[a] + s2[b] over n values."""
    for k in range(n):
        dst[i, k] = s1[a, k] + s2[b, k]


@njit(inline="always", **JIT)
def _sub_t(dst, i, t, s1, a, s2, b, n):
    """dst[i, t] = s1[a] - s2[b] over n values (dst 3-D: its rows indexed in place, as a
    dst[:, t] view has run-time strides, which the loops do not vectorise as well)."""
    for k in range(n):
        dst[i, t, k] = s1[a, k] - s2[b, k]


@njit(inline="always", **JIT)
def _add_t(dst, i, t, s1, a, s2, b, n):
    """dst[i, t] = s1[a] + s2[b] over n values."""
    for k in range(n):
        dst[i, t, k] = s1[a, k] + s2[b, k]


@njit(inline="always", **JIT)
def _copy_t(dst, i, t, s1, a, n):
    """dst[i, t] = s1[a] over n values."""
    for k in range(n):
        dst[i, t, k] = s1[a, k]


@njit(inline="always", **JIT)
def _neg_t(dst, i, t, s1, a, n):
    """dst[i, t] = -s1[a] over n values."""
    for k in range(n):
        dst[i, t, k] = -s1[a, k]


@njit(inline="always", **JIT)
def _add3_t(dst, i, src, t, a, b, c, n):
    """dst[i] = src[a, t] + src[b, t] + src[c, t] over n values."""
    for k in range(n):
        dst[i, k] = src[a, t, k] + src[b, t, k] + src[c, t, k]


@njit(inline="always", **JIT)
def _sub3_t(dst, i, src, t, a, b, c, n):
    """dst[i] = src[a, t] - src[b, t] - src[c, t] over n values."""
    for k in range(n):
        dst[i, k] = src[a, t, k] - src[b, t, k] - src[c, t, k]


@njit(**JIT)
def winograd_input(x, mask, masked, start, stop, top, left, th, tw, v):
    """v[k, t, c] = (B^T d B)[k] for the tiles t of images start:stop of x (N, H, W, C), tile
    (ty, tx) reading rows 2ty - top .. +3 and columns 2tx - left .. +3 (zeros outside x).
    v is (16, T, C) with T > (stop - start) * th * tw: C-contiguous (the kernels are compiled
    for that layout: views with run-time strides ran 2x slower), one (T, C) GEMM operand per
    transform entry.

    With ``masked``, x is read as x * (mask > 0) (a fused ReLU's gradient; mask has x's shape).
    B^T d is applied to 4 whole zero-framed input rows at once, then d B per tile."""
    _, h, w, c = x.shape
    wp = 2 * tw + 2
    zero = x.dtype.type(0)
    rows = np.zeros((4 * wp, c), dtype=x.dtype)  # 4 input rows in a zero frame
    tr = np.empty((4 * wp, c), dtype=x.dtype)  # B^T d over those rows: row a' of every column
    t = 0
    for n in range(start, stop):
        for ty in range(th):
            r0 = 2 * ty - top
            for a in range(4):
                r = r0 + a
                z = a * wp + left
                if 0 <= r < h and masked:
                    for q in range(w):
                        for k in range(c):
                            rows[z + q, k] = x[n, r, q, k] if mask[n, r, q, k] > zero else zero
                elif 0 <= r < h:
                    for q in range(w):
                        for k in range(c):
                            rows[z + q, k] = x[n, r, q, k]
                else:
                    for q in range(w):
                        for k in range(c):
                            rows[z + q, k] = zero
            for q in range(wp):
                _sub(tr, q, rows, q, rows, 2 * wp + q, c)
                _add(tr, wp + q, rows, wp + q, rows, 2 * wp + q, c)
                _sub(tr, 2 * wp + q, rows, 2 * wp + q, rows, wp + q, c)
                _sub(tr, 3 * wp + q, rows, wp + q, rows, 3 * wp + q, c)
            for tx in range(tw):
                for a in range(4):
                    z = a * wp + 2 * tx
                    _sub_t(v, 4 * a, t, tr, z, tr, z + 2, c)
                    _add_t(v, 4 * a + 1, t, tr, z + 1, tr, z + 2, c)
                    _sub_t(v, 4 * a + 2, t, tr, z + 2, tr, z + 1, c)
                    _sub_t(v, 4 * a + 3, t, tr, z + 1, tr, z + 3, c)
                t += 1


@njit(inline="always", **JIT)
def _out(y, n, r, q, s, a, b, c, sign, bias, relu):
    """y[n, r, q] = s[a] + sign * (s[b] + sign * s[c]) + bias, then max(., 0) with relu."""
    zero = y.dtype.type(0)
    o = y.shape[3]
    if sign > 0 and relu:
        for k in range(o):
            y[n, r, q, k] = max(s[a, k] + s[b, k] + s[c, k] + bias[k], zero)
    elif sign > 0:
        for k in range(o):
            y[n, r, q, k] = s[a, k] + s[b, k] + s[c, k] + bias[k]
    elif relu:
        for k in range(o):
            y[n, r, q, k] = max(s[a, k] - s[b, k] - s[c, k] + bias[k], zero)
    else:
        for k in range(o):
            y[n, r, q, k] = s[a, k] - s[b, k] - s[c, k] + bias[k]


@njit(**JIT)
def winograd_output(m, start, stop, th, tw, bias, has_bias, relu, y):
    """y[n, 2ty + i, 2tx + j] = (A^T M A)[i, j] (+ bias, then max(., 0) with relu) for the tiles
    of images start:stop; m is (16, T, O) (T >= tiles), y (N, OH, OW, O) (rows and columns past its
    edge are not written)."""
    _, oh, ow, o = y.shape
    s = np.empty((8, o), dtype=y.dtype)  # A^T M: 2 rows of 4
    b = np.zeros(o, dtype=y.dtype)
    if has_bias:
        for k in range(o):
            b[k] = bias[k]
    t = 0
    for n in range(start, stop):
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                q = 2 * tx
                for j in range(4):
                    _add3_t(s, j, m, t, j, 4 + j, 8 + j, o)
                    _sub3_t(s, 4 + j, m, t, 4 + j, 8 + j, 12 + j, o)
                for i in range(2):
                    if r + i < oh:
                        _out(y, n, r + i, q, s, 4 * i, 4 * i + 1, 4 * i + 2, 1, b, relu)
                        if q + 1 < ow:
                            _out(
                                y, n, r + i, q + 1, s, 4 * i + 1, 4 * i + 2, 4 * i + 3, -1, b, relu
                            )
                t += 1


@njit(inline="always", **JIT)
def _neg(dst, i, s1, a, n):
    """dst[i] = -s1[a] over n values."""
    for k in range(n):
        dst[i, k] = -s1[a, k]


@njit(inline="always", **JIT)
def _copy(dst, i, s1, a, n):
    """dst[i] = s1[a] over n values."""
    for k in range(n):
        dst[i, k] = s1[a, k]


@njit(**JIT)
def winograd_grad(g, mask, masked, start, stop, th, tw, e, db):
    """e[k, t] = (A g A^T)[k] for the 2x2 output-gradient tiles t of images start:stop of g
    (N, OH, OW, O) (zeros past its edge); e is (16, T, O) (T >= tiles). With ``masked``, g is
    read as g * (mask > 0). Adds the (masked) gradient's sum over pixels to db (O,) (the bias
    gradient). A g is applied to two whole rows at once, then (A g) A^T per tile."""
    _, oh, ow, o = g.shape
    wq = 2 * tw
    zero = g.dtype.type(0)
    rows = np.zeros((2 * wq, o), dtype=g.dtype)  # 2 gradient rows, zeros past the edge
    u = np.empty((4 * wq, o), dtype=g.dtype)  # A g: rows g0, g0 + g1, g0 - g1, -g1
    t = 0
    for n in range(start, stop):
        for ty in range(th):
            for i in range(2):
                r = 2 * ty + i
                if r < oh:
                    z = i * wq
                    if masked:
                        for q in range(ow):
                            for k in range(o):
                                val = g[n, r, q, k] if mask[n, r, q, k] > zero else zero
                                rows[z + q, k] = val
                    else:
                        for q in range(ow):
                            for k in range(o):
                                rows[z + q, k] = g[n, r, q, k]
                    for q in range(ow):
                        for k in range(o):
                            db[k] += rows[z + q, k]
                else:
                    for q in range(ow):
                        for k in range(o):
                            rows[i * wq + q, k] = zero
            for q in range(wq):
                _copy(u, q, rows, q, o)
                _add(u, wq + q, rows, q, rows, wq + q, o)
                _sub(u, 2 * wq + q, rows, q, rows, wq + q, o)
                _neg(u, 3 * wq + q, rows, wq + q, o)
            for tx in range(tw):
                for a in range(4):
                    z = a * wq + 2 * tx
                    _copy_t(e, 4 * a, t, u, z, o)
                    _add_t(e, 4 * a + 1, t, u, z, u, z + 1, o)
                    _sub_t(e, 4 * a + 2, t, u, z, u, z + 1, o)
                    _neg_t(e, 4 * a + 3, t, u, z + 1, o)
                t += 1


# ------------------------------------------------------------------------------ direct 3x3

DIRECT_PITCH = 64
"""Row pitch of the packed kernel of ``direct_3x3``: a compile-time constant, so that LLVM sees
the 9 kernel rows read in its inner loop as one block (fixed distances apart) and needs a
single overlap check to vectorise it (with a run-time pitch, 9 checks: past its limit)."""


@njit(**dict(JIT, fastmath={"contract"}))
def direct_3x3(xp, wp, o, relu, sh, sw, dh, dw, y, start):
    """y[start + n, r, q] = b + sum_{i, j, c} xp[n, r*sh + i*dh, q*sw + j*dw, c] w[i, j, c]
    (then max(., 0) with relu) for the zero-framed images xp: a 3x3 convolution computed
    directly, for inputs with few channels (a GEMM with K = 9C, 9 to 27, runs far below
    peak, and the patch matrix is 9x the input). The 9 input values of a channel sit in
    registers while the inner loop runs over the O outputs. wp: (9C + 1) rows of
    DIRECT_PITCH values, row c*9 + 3i + j = w[i, j, c], the last the bias."""
    m, _, _, cin = xp.shape
    _, oh, ow, _ = y.shape
    zero = y.dtype.type(0)
    p = DIRECT_PITCH
    bias = 9 * cin * p
    for n in range(m):
        for r in range(oh):
            r0, r1, r2 = r * sh, r * sh + dh, r * sh + 2 * dh
            for q in range(ow):
                q0, q1, q2 = q * sw, q * sw + dw, q * sw + 2 * dw
                yr = y[start + n, r, q]
                for c in range(cin):
                    x0, x1, x2 = xp[n, r0, q0, c], xp[n, r0, q1, c], xp[n, r0, q2, c]
                    x3, x4, x5 = xp[n, r1, q0, c], xp[n, r1, q1, c], xp[n, r1, q2, c]
                    x6, x7, x8 = xp[n, r2, q0, c], xp[n, r2, q1, c], xp[n, r2, q2, c]
                    z = 9 * c * p
                    wc = wp[z : z + 9 * p]
                    cut = relu and c == cin - 1  # the ReLU with the last channel's sums
                    if c == 0 and cut:
                        for k in range(o):
                            yr[k] = max(
                                wp[bias + k] + x0 * wc[k] + x1 * wc[p + k] + x2 * wc[2 * p + k]
                                + x3 * wc[3 * p + k] + x4 * wc[4 * p + k] + x5 * wc[5 * p + k]
                                + x6 * wc[6 * p + k] + x7 * wc[7 * p + k] + x8 * wc[8 * p + k],
                                zero,
                            )  # fmt: skip
                    elif c == 0:
                        for k in range(o):
                            yr[k] = (
                                wp[bias + k] + x0 * wc[k] + x1 * wc[p + k] + x2 * wc[2 * p + k]
                                + x3 * wc[3 * p + k] + x4 * wc[4 * p + k] + x5 * wc[5 * p + k]
                                + x6 * wc[6 * p + k] + x7 * wc[7 * p + k] + x8 * wc[8 * p + k]
                            )  # fmt: skip
                    elif cut:
                        for k in range(o):
                            yr[k] = max(
                                yr[k] + x0 * wc[k] + x1 * wc[p + k] + x2 * wc[2 * p + k]
                                + x3 * wc[3 * p + k] + x4 * wc[4 * p + k] + x5 * wc[5 * p + k]
                                + x6 * wc[6 * p + k] + x7 * wc[7 * p + k] + x8 * wc[8 * p + k],
                                zero,
                            )  # fmt: skip
                    else:
                        for k in range(o):
                            yr[k] = (
                                yr[k] + x0 * wc[k] + x1 * wc[p + k] + x2 * wc[2 * p + k]
                                + x3 * wc[3 * p + k] + x4 * wc[4 * p + k] + x5 * wc[5 * p + k]
                                + x6 * wc[6 * p + k] + x7 * wc[7 * p + k] + x8 * wc[8 * p + k]
                            )  # fmt: skip


@njit(**JIT)
def relu_grad_rows(g, y, gm, db):
    """gm = g where y > 0 else 0 (a fused ReLU's gradient), and db += the column sums of gm,
    for (rows, O) arrays, in one pass (NumPy: a comparison, a product and a sum, 6x slower)."""
    zero = g.dtype.type(0)
    rows, o = g.shape
    for i in range(rows):
        for k in range(o):
            v = g[i, k] if y[i, k] > zero else zero
            gm[i, k] = v
            db[k] += v
