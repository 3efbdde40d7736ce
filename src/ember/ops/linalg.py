"""Matrix products."""

from __future__ import annotations

import time

import numpy as np

from ember.autograd.function import Function
from ember.errors import ShapeError
from ember.ops import _accel, workers
from ember.ops.workers import CONV_RECENT, OPENBLAS_SPINNING, sum_rows


class MatMul(Function):
    """z = a @ b (batched over leading axes);  dz/da = g b^T, dz/db = a^T g.

    1-D operands are promoted to matrices the way NumPy does, and the gradient is taken back
    to 1-D at the end.
    """

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(
                f"matmul: operands must be at least 1-D, received {a.shape} and {b.shape}"
            )
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != k_b:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last axis of the "
                f"first ({a.shape[-1]}) must equal the "
                f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the second ({k_b})"
            )
        self.a, self.b = a, b
        try:
            return np.matmul(a, b)
        except ValueError:
            raise ShapeError(
                f"matmul: the batch axes of {a.shape} and {b.shape} do not broadcast"
            ) from None

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 1 and b.ndim == 1:  # a dot product: g is a scalar
            return g * b, g * a
        # a 1-D operand took part as a row (a) or a column (b): give g that axis back
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = g[..., None, :]
        if b.ndim == 1:
            g = g[..., None]
        ga = gb = None
        # batch axes that were broadcast are summed back by the engine
        if self.needs_input_grad[0]:
            ga = np.matmul(g, np.swapaxes(b2, -1, -2))  # (..., m, k)
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if self.needs_input_grad[1]:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g)  # (..., k, n)
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


def matmul(a, b):
    return MatMul.apply(a, b)


def matmul_rows(a, b):
    """a @ b for Dense's 2-D products, on OpenBLAS's own threads: for these sizes (a few
    hundred rows) its threading shares the packed operands and ran 1.7x faster than one
    thread, while splitting the product over ember's workers (ops.workers.matmul_rows) gained
    nothing (each half-width GEMM was as slow as the whole). Measured on 2 cores: mlp step
    3.7-4.5 ms this way, 4.9-5.3 ms on the workers.

    OpenBLAS threads a product of m*n*k >= 262,144 (4 x its SMP threshold of 65,536), and its
    helper threads then spin for up to ~0.1 s waiting for more work; ``OPENBLAS_SPINNING``
    records until when, so that ember's own chunk runner stays on one thread meanwhile.
    Next to convolutions (a conv op ran in the last second), the product runs on one BLAS
    thread instead, through ember's chunk runner: there the convolutions' own threads matter
    more (cnn: 14 ms of convolution per step against 1 ms of Dense products).
    """
    if time.monotonic() < CONV_RECENT[0]:
        return workers.matmul_rows(a, b)
    if a.shape[0] * b.shape[1] * a.shape[1] >= 262_144:
        OPENBLAS_SPINNING[0] = time.monotonic() + 0.15
    return np.matmul(a, b)


_FUSED_MIN = 1 << 12  # output elements: below this the NumPy calls cost no more than a kernel


def _relu_kernels(*arrays):
    """The compiled bias + ReLU kernels when every array (None: absent) is a C-contiguous
    float32 array and the first is of a size worth a kernel call, else None (the NumPy path;
    float64, e.g. gradcheck, takes it)."""
    if arrays[0].size < _FUSED_MIN:
        return None
    for a in arrays:
        if a is not None and (a.dtype != np.float32 or not a.flags.c_contiguous):
            return None
    return _accel.load("linalg")


class Linear(Function):
    """z = x W + b over the last axis of x (Dense's op, one node instead of two);
    dz/dx = g W^T, dz/dW = x^T g (over all leading axes), dz/db = sum of g over them.
    With ``relu=True`` the op is Dense(activation="relu"): z = max(x W + b, 0) and g is first
    masked by z > 0 (the output is kept, as the ReLU op keeps it: no mask array)."""

    def forward(self, x, w, b=None, relu: bool = False):
        if x.shape[-1] != w.shape[0]:
            raise ShapeError(
                f"linear: the input's last axis ({x.shape[-1]}) must equal the kernel's first "
                f"axis ({w.shape[0]}); input shape {x.shape}, kernel shape {w.shape}"
            )
        self.x, self.w, self.relu = x, w, relu
        if x.ndim < 2 or w.ndim != 2:
            out = np.matmul(x, w)
        else:  # the GEMMs run on ember's workers, one BLAS thread each (see ops.conv)
            out = matmul_rows(x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[1])
        if not relu:
            if b is not None:
                out += b
            return out
        k = _relu_kernels(out, b) if out.ndim >= 2 else None
        if k is not None:
            # bias and ReLU in one pass, in place (NumPy: out += b, then a new array)
            z = out.reshape(-1, out.shape[-1])
            k.bias_relu(z, z[0] if b is None else b, b is not None)
        else:
            if b is not None:
                out += b
            np.maximum(out, 0, out=out)
        self.out = out
        return out

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])
        gx = gw = gb = None
        want_gb = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        if self.relu:
            out2 = self.out.reshape(-1, self.out.shape[-1])
            k = _relu_kernels(g2, out2) if g2.shape == out2.shape else None
            if k is not None:
                # the mask and the bias gradient's column sums in one pass
                gz = np.empty_like(g2)
                gb = np.empty(g2.shape[1], dtype=g2.dtype) if want_gb else None
                k.relu_grad_colsum(g2, out2, gz, gz[0] if gb is None else gb, want_gb)
                want_gb = False
            else:
                gz = g2 * (out2 > 0)
            g2 = gz
            g = gz.reshape(self.out.shape)
        if self.needs_input_grad[0]:
            if self.x.ndim < 2 or self.w.ndim != 2:
                gx = np.matmul(g, self.w.T)
            else:
                gx = matmul_rows(g2, self.w.T).reshape(*g.shape[:-1], self.w.shape[0])
        if self.needs_input_grad[1]:
            gw = matmul_rows(self.x.reshape(-1, self.x.shape[-1]).T, g2)
        if want_gb:
            gb = sum_rows(g2)
        return gx, gw, gb


def linear(x, w, b=None, *, relu: bool = False):
    """x W + b over the last axis of x; ``relu=True``: max(x W + b, 0) in one op."""
    if b is None:
        return Linear.apply(x, w, relu=relu) if relu else Linear.apply(x, w)
    return Linear.apply(x, w, b, relu=relu) if relu else Linear.apply(x, w, b)
