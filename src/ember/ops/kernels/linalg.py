"""Numba kernels of the fused Dense op with a ReLU (``ember.ops.linalg.Linear`` with
``relu=True``), on 2-D C-contiguous (rows, units) arrays.

The forward adds the bias and applies the ReLU to the product in place, in one pass (NumPy: a
pass for the bias, then a fresh array for the ReLU). The backward masks the incoming gradient
by the kept output and sums it over the rows (the bias gradient) in the same pass, the sums in
float64 (NumPy's ``sum_rows`` adds in float32).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ember.ops.kernels import JIT


@njit(**JIT)
def bias_relu(z, b, has_bias):
    """z = max(z + b, 0) row by row, in place (NaN propagates, as NumPy's maximum)."""
    zero = z.dtype.type(0)
    rows, units = z.shape
    for r in range(rows):
        row = z[r]
        if has_bias:
            for j in range(units):
                v = row[j] + b[j]
                row[j] = zero if v <= zero else v
        else:
            for j in range(units):
                v = row[j]
                row[j] = zero if v <= zero else v


@njit(**JIT)
def relu_grad_colsum(g, out, gz, gb, with_sums):
    """gz = g where out > 0, else 0; with_sums: gb = sum of gz over the rows (float64)."""
    zero = gz.dtype.type(0)
    rows, units = g.shape
    acc = np.zeros(units, dtype=np.float64)
    for r in range(rows):
        gr, outr, gzr = g[r], out[r], gz[r]
        for j in range(units):
            gzr[j] = gr[j] if outr[j] > zero else zero
        if with_sums:
            for j in range(units):
                acc[j] += gzr[j]
    if with_sums:
        for j in range(units):
            gb[j] = acc[j]
