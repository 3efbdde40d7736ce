"""Compiled kernels for ``ember.ops.conv``: the transforms of a Winograd F(2x2, 3x3) convolution.

A 3x3 stride-1 convolution computes each 2x2 block ("tile") of outputs from the 4x4 block of
padded input under it. Winograd's minimal filtering algorithm F(2x2, 3x3) (Lavin & Gray, 2015)
does that with 16 products per (input channel, filter) pair instead of 36:

    Y = A^T [ (G w G^T) * (B^T d B) ] A      (* elementwise, over the 4x4 transformed tile)

With the input transform V = B^T d B of every tile and channel laid out as (tiles, 16, C), and
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


@njit(**JIT)
def winograd_input(x, start, stop, top, left, th, tw, v):
    """v[t, k, c] = (B^T d B)[k] for the tiles t of images start:stop of x (N, H, W, C), tile
    (ty, tx) reading rows 2ty - top .. +3 and columns 2tx - left .. +3 (zeros outside x).
    v is (16, (stop - start) * th * tw, C)."""
    _, h, w, c = x.shape
    zero = x.dtype.type(0)
    d = np.empty((16, c), dtype=x.dtype)
    t = 0
    for n in range(start, stop):
        for ty in range(th):
            r0 = 2 * ty - top
            for tx in range(tw):
                c0 = 2 * tx - left
                for a in range(4):
                    r = r0 + a
                    for b in range(4):
                        q = c0 + b
                        p = 4 * a + b
                        if 0 <= r < h and 0 <= q < w:
                            for k in range(c):
                                d[p, k] = x[n, r, q, k]
                        else:
                            for k in range(c):
                                d[p, k] = zero
                for k in range(c):
                    # rows: B^T d
                    t00 = d[0, k] - d[8, k]
                    t01 = d[1, k] - d[9, k]
                    t02 = d[2, k] - d[10, k]
                    t03 = d[3, k] - d[11, k]
                    t10 = d[4, k] + d[8, k]
                    t11 = d[5, k] + d[9, k]
                    t12 = d[6, k] + d[10, k]
                    t13 = d[7, k] + d[11, k]
                    t20 = d[8, k] - d[4, k]
                    t21 = d[9, k] - d[5, k]
                    t22 = d[10, k] - d[6, k]
                    t23 = d[11, k] - d[7, k]
                    t30 = d[4, k] - d[12, k]
                    t31 = d[5, k] - d[13, k]
                    t32 = d[6, k] - d[14, k]
                    t33 = d[7, k] - d[15, k]
                    # columns: (B^T d) B
                    v[t, 0, k] = t00 - t02
                    v[t, 1, k] = t01 + t02
                    v[t, 2, k] = t02 - t01
                    v[t, 3, k] = t01 - t03
                    v[t, 4, k] = t10 - t12
                    v[t, 5, k] = t11 + t12
                    v[t, 6, k] = t12 - t11
                    v[t, 7, k] = t11 - t13
                    v[t, 8, k] = t20 - t22
                    v[t, 9, k] = t21 + t22
                    v[t, 10, k] = t22 - t21
                    v[t, 11, k] = t21 - t23
                    v[t, 12, k] = t30 - t32
                    v[t, 13, k] = t31 + t32
                    v[t, 14, k] = t32 - t31
                    v[t, 15, k] = t31 - t33
                t += 1


@njit(**JIT)
def winograd_output(m, start, stop, th, tw, bias, has_bias, relu, y):
    """y[n, 2ty + i, 2tx + j] = (A^T M A)[i, j] (+ bias, then max(., 0) with relu) for the tiles
    of images start:stop; m is (tiles, 16, O), y (N, OH, OW, O) (rows and columns past its
    edge are not written)."""
    _, oh, ow, o = y.shape
    zero = y.dtype.type(0)
    s = np.empty((4, o), dtype=y.dtype)
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
                for k in range(o):
                    # rows: A^T M
                    s00 = m[t, 0, k] + m[t, 4, k] + m[t, 8, k]
                    s01 = m[t, 1, k] + m[t, 5, k] + m[t, 9, k]
                    s02 = m[t, 2, k] + m[t, 6, k] + m[t, 10, k]
                    s03 = m[t, 3, k] + m[t, 7, k] + m[t, 11, k]
                    s10 = m[t, 4, k] - m[t, 8, k] - m[t, 12, k]
                    s11 = m[t, 5, k] - m[t, 9, k] - m[t, 13, k]
                    s12 = m[t, 6, k] - m[t, 10, k] - m[t, 14, k]
                    s13 = m[t, 7, k] - m[t, 11, k] - m[t, 15, k]
                    # columns: (A^T M) A
                    s[0, k] = s00 + s01 + s02 + b[k]
                    s[1, k] = s01 - s02 - s03 + b[k]
                    s[2, k] = s10 + s11 + s12 + b[k]
                    s[3, k] = s11 - s12 - s13 + b[k]
                if relu:
                    for i in range(4):
                        for k in range(o):
                            s[i, k] = max(s[i, k], zero)
                for i in range(2):
                    if r + i < oh:
                        for j in range(2):
                            if q + j < ow:
                                p = 2 * i + j
                                for k in range(o):
                                    y[n, r + i, q + j, k] = s[p, k]
                t += 1


@njit(**JIT)
def winograd_grad(g, start, stop, th, tw, e):
    """e[t, k] = (A g A^T)[k] for the 2x2 output-gradient tiles t of images start:stop of g
    (N, OH, OW, O) (zeros past its edge); e is (tiles, 16, O)."""
    _, oh, ow, o = g.shape
    zero = g.dtype.type(0)
    d = np.empty((4, o), dtype=g.dtype)
    t = 0
    for n in range(start, stop):
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                q = 2 * tx
                for i in range(2):
                    for j in range(2):
                        p = 2 * i + j
                        if r + i < oh and q + j < ow:
                            for k in range(o):
                                d[p, k] = g[n, r + i, q + j, k]
                        else:
                            for k in range(o):
                                d[p, k] = zero
                for k in range(o):
                    g00, g01, g10, g11 = d[0, k], d[1, k], d[2, k], d[3, k]
                    # rows: A g (A = (A^T)^T is 4x2: rows [1, 0], [1, 1], [1, -1], [0, -1])
                    u0, u1 = g00, g01
                    u2, u3 = g00 + g10, g01 + g11
                    u4, u5 = g00 - g10, g01 - g11
                    u6, u7 = -g10, -g11
                    # columns: (A g) A^T
                    e[t, 0, k] = u0
                    e[t, 1, k] = u0 + u1
                    e[t, 2, k] = u0 - u1
                    e[t, 3, k] = -u1
                    e[t, 4, k] = u2
                    e[t, 5, k] = u2 + u3
                    e[t, 6, k] = u2 - u3
                    e[t, 7, k] = -u3
                    e[t, 8, k] = u4
                    e[t, 9, k] = u4 + u5
                    e[t, 10, k] = u4 - u5
                    e[t, 11, k] = -u5
                    e[t, 12, k] = u6
                    e[t, 13, k] = u6 + u7
                    e[t, 14, k] = u6 - u7
                    e[t, 15, k] = -u7
                t += 1
