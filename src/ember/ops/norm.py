"""Normalization and dropout ops.

Batch norm in training mode is one fused op whose backward is the closed form of
Ioffe & Szegedy (2015): with xhat = (x - mu) / sqrt(var + eps) over the m elements of a channel,

    dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))

one pass over the batch instead of a graph of a dozen primitives.

Channels last, with Numba (``ember.ops._accel``; off with ``EMBER_ACCEL=0``), the passes are
compiled kernels (``ember/ops/kernels/norm.py``): training forward = one pass for the batch
statistics (float64 sums) + one for y; backward = one pass for sum(g), sum(g xhat) + one for
dx; inference = one pass. Measured at 64x32x32x32 float32: forward 3.8 -> 1.5 ms, backward
4.7 -> 2.0 ms, inference 1.6 -> 0.65 ms.
"""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.autograd.function import Function
from ember.autograd.tensor import Tensor
from ember.errors import EmberValueError, ShapeError
from ember.ops import _accel
from ember.ops.workers import _scratch, _workers, sum_rows

# batch norm's activation-sized outputs are made fresh every step: without glibc keeping freed
# memory each would page-fault (it came through importing ops.conv until the chunk runner moved)
backend.keep_freed_memory()

_CHUNK_BYTES = 256 << 10  # rows of channels per chunk: a few such buffers stay in L2
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what the kernels compile for


def _kernels(x2):
    """The compiled batch-norm kernels for a (rows, C) C-contiguous float array, else None.

    The kernels run on the calling thread, one call per pass over the whole batch: each pass is
    bound by memory traffic, and sharing it out over ember's workers measured no faster here
    on 2 cores (0.44 vs 0.46 ms for the statistics of 8 MB), and several times slower when the
    cores are busy (a preempted helper holds its chunk)."""
    if x2.dtype not in _KERNEL_DTYPES or not x2.flags.c_contiguous or x2.size == 0:
        return None
    return _accel.load("norm")


def _kernel_moments(k, x2) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of a (rows, C) array in one compiled pass: float64
    sums around the first row (a sample of each channel, so no catastrophic cancellation)."""
    m, c = x2.shape
    shift = x2[0].astype(np.float64)
    s1, s2 = np.empty(c), np.empty(c)
    k.moments(x2, shift, s1, s2, 0, m)
    d = s1 / m  # mean - shift
    var = np.maximum(s2 / m - d * d, 0.0)
    return (shift + d).astype(x2.dtype), var.astype(x2.dtype)


def _kernel_affine(k, out2, x2, scale, shift, g2=None, gscale=None) -> None:
    """out = x * scale + shift (+ g * gscale) per channel, one compiled pass."""
    dtype = x2.dtype
    scale, shift = scale.astype(dtype, copy=False), shift.astype(dtype, copy=False)
    if g2 is None:
        k.affine(x2, scale, shift, out2, 0, x2.shape[0])
    else:
        k.affine2(x2, scale, shift, g2, gscale.astype(dtype, copy=False), out2, 0, x2.shape[0])


def _row_chunks(rows: int, c: int, itemsize: int) -> tuple[int, int]:
    """(rows per chunk, number of chunks) for passes over a (rows, C) array."""
    per = max(1, min(rows, _CHUNK_BYTES // max(1, c * itemsize)))
    return per, -(-rows // per)


def _centered_dot(a2, x2, mean, per: int, count: int) -> np.ndarray:
    """sum over rows of a * (x - mean) per channel (a may be x itself), the centered values
    made a chunk at a time in cache; chunk partial sums added in chunk order (deterministic)."""
    c = x2.shape[1]
    parts = np.empty((count, c), dtype=x2.dtype)

    def work(i):
        lo, hi = i * per, min(x2.shape[0], i * per + per)
        t = _scratch("bn_centered", (hi - lo, c), x2.dtype)
        np.subtract(x2[lo:hi], mean, out=t)
        parts[i] = np.einsum("ij,ij->j", a2[lo:hi] if a2 is not x2 else t, t)

    _workers.run(work, count)
    return sum_rows(parts) if count > 1 else parts[0]


def _affine_rows(out2, x2, scale, shift, per: int, count: int, g2=None, gscale=None) -> None:
    """out = x * scale + shift (+ g * gscale), per channel, a chunk at a time (one pass)."""

    def work(i):
        lo, hi = i * per, min(x2.shape[0], i * per + per)
        o = out2[lo:hi]
        np.multiply(x2[lo:hi], scale, out=o)
        o += shift
        if g2 is not None:
            t = _scratch("bn_affine", o.shape, o.dtype)
            np.multiply(g2[lo:hi], gscale, out=t)
            o += t

    _workers.run(work, count)


def _channel_axis(ndim: int, axis: int) -> int:
    if ndim < 1:
        raise ShapeError("batch_norm: the input must have at least one axis, received a scalar")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"batch_norm: axis {axis} is out of range for an input of rank {ndim}")
    return axis % ndim


def _channel_sum(ndim: int, axis: int):
    """f(a, b) = sum of a * b over every axis but ``axis``, without the a * b temporary."""
    letters = "abcdefghijklmnopqrstuvwxyz"[:ndim]
    spec = f"{letters},{letters}->{letters[axis]}"
    return lambda a, b: np.einsum(spec, a, b)


def _param_shape(ndim: int, axis: int) -> tuple:
    """Shape that broadcasts a per-channel vector against the input: (1, .., C, .., 1)."""
    return tuple(-1 if i == axis else 1 for i in range(ndim))


class BatchNorm(Function):
    """y = gamma (x - mu_B) / sqrt(var_B + eps) + beta, with mu_B and var_B (biased) taken over
    every axis but ``axis``. Outputs (y, mu_B, var_B). gamma/beta may be None (scale=False,
    center=False). dx = gamma inv (g - mean(g) - xhat mean(g xhat)), dgamma = sum(g xhat),
    dbeta = sum(g); gradients that reach mu_B and var_B are passed on as well."""

    def forward(self, x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
        axis = _channel_axis(x.ndim, axis)
        c = x.shape[axis]
        for name, p in (("gamma", gamma), ("beta", beta)):
            if p is not None and p.shape != (c,):
                raise ShapeError(
                    f"batch_norm: {name} must have shape ({c},) (the size of axis {axis}), "
                    f"received {p.shape}"
                )
        self.axes = tuple(i for i in range(x.ndim) if i != axis)
        self.pshape = _param_shape(x.ndim, axis)
        self.m = x.size // c if c else 0
        if self.m == 0:
            raise ShapeError(
                f"batch_norm: cannot take batch statistics of an empty input {x.shape}"
            )
        self.gamma = gamma
        if axis == x.ndim - 1:
            return self._forward_last(x, gamma, beta, epsilon)
        self.fast = False
        self.channel_sum = _channel_sum(x.ndim, axis)
        mean = x.mean(axis=self.axes, keepdims=True)
        xc = x - mean
        var = (self.channel_sum(xc, xc) / self.m).reshape(self.pshape)  # biased, no temporary
        inv = 1.0 / np.sqrt(var + np.asarray(epsilon, dtype=x.dtype))
        xc *= inv  # xc is ours: normalize in place, it becomes xhat
        self.xhat, self.inv = xc, inv
        y = xc * gamma.reshape(self.pshape) if gamma is not None else xc.copy()
        if beta is not None:
            y += beta.reshape(self.pshape)
        return y, mean.reshape(c), var.reshape(c)

    def _forward_last(self, x, gamma, beta, epsilon):
        """Channels last: x as (rows, C). Keeps x (alive in the graph anyway) and the per-channel
        statistics instead of a normalized copy; every pass runs a cache-sized chunk of rows at
        a time on every core."""
        c = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, c)
        m, dtype = x2.shape[0], x2.dtype
        per, count = _row_chunks(m, c, dtype.itemsize)
        k = _kernels(x2)
        if k is not None:
            mean, var = _kernel_moments(k, x2)
        else:
            mean = sum_rows(x2) / dtype.type(m)
            var = _centered_dot(x2, x2, mean, per, count) / dtype.type(m)  # biased, two-pass
        inv = 1.0 / np.sqrt(var + np.asarray(epsilon, dtype=dtype))
        scale = inv if gamma is None else inv * gamma
        shift = -mean * scale
        if beta is not None:
            shift += beta
        y = np.empty_like(x2)
        if k is not None:
            _kernel_affine(k, y, x2, scale, shift)
        else:
            _affine_rows(y, x2, scale, shift, per, count)
        self.fast, self.x2, self.mean, self.inv, self.k = True, x2, mean, inv, k
        self.chunks = per, count
        return y.reshape(x.shape), mean, var

    def _backward_last(self, g, g_mean, g_var):
        """dx = a g + b x + c per channel, with a = gamma inv, b = -a inv mean(g xhat),
        c = -a mean(g) - b mean: the closed form with xhat = (x - mean) inv folded in."""
        x2, mean, inv = self.x2, self.mean, self.inv
        m, c = x2.shape
        dtype = x2.dtype
        per, count = self.chunks
        need_x, need_gamma, need_beta = self.needs_input_grad
        g2 = np.ascontiguousarray(g).reshape(-1, c)
        k = self.k if g2.dtype == dtype else None
        if k is not None:  # one pass for both sums
            s1, s2 = np.empty(c), np.empty(c)
            k.grad_sums(g2, x2, mean.astype(np.float64), s1, s2, 0, m)
            gbeta = s1.astype(dtype)
            ggamma = s2.astype(dtype) * inv  # sum(g xhat)
        else:
            gbeta = sum_rows(g2)
            ggamma = _centered_dot(g2, x2, mean, per, count) * inv  # sum(g xhat)
        gx = None
        if need_x:
            a = inv if self.gamma is None else inv * self.gamma
            b = -a * inv * ggamma / dtype.type(m)
            shift = -a * gbeta / dtype.type(m) - b * mean
            # paths through the returned statistics (zero when only y is used):
            # d mean / dx = 1/m; d var / dx = 2 (x - mean) / m
            if g_mean.any():
                shift = shift + g_mean / dtype.type(m)
            if g_var.any():
                two = g_var * dtype.type(2.0 / m)
                b = b + two
                shift = shift - two * mean
            gx = np.empty_like(g2)
            if k is not None:
                _kernel_affine(k, gx, x2, b, shift, g2, a)
            else:
                _affine_rows(gx, x2, b, shift, per, count, g2, a)
            gx = gx.reshape(g.shape)
        return gx, ggamma if need_gamma else None, gbeta if need_beta else None

    def backward(self, g, g_mean, g_var):
        if self.fast:
            return self._backward_last(g, g_mean, g_var)
        xhat, inv, axes = self.xhat, self.inv, self.axes
        need_x, need_gamma, need_beta = self.needs_input_grad
        gbeta = g.sum(axis=axes) if (need_beta or need_x) else None
        ggamma = self.channel_sum(g, xhat) if (need_gamma or need_x) else None
        gx = None
        if need_x:
            scale = inv if self.gamma is None else inv * self.gamma.reshape(self.pshape)
            mean_g = (gbeta / self.m).reshape(self.pshape)
            mean_gx = (ggamma / self.m).reshape(self.pshape)
            # (g - mean(g) - xhat mean(g xhat)) * scale, built in one buffer
            gx = xhat * -mean_gx
            gx += g
            gx -= mean_g
            gx *= scale
            # paths through the returned statistics (zero when only y is used)
            if g_mean.any():
                gx += g_mean.reshape(self.pshape) / self.m
            if g_var.any():
                # d var / dx = 2 (x - mu) / m = 2 xhat / (inv m)
                gx += xhat * (2.0 / self.m) * (g_var.reshape(self.pshape) / inv)
        return gx, ggamma if need_gamma else None, gbeta if need_beta else None


class BatchNormInference(Function):
    """y = gamma (x - mean) / sqrt(var + eps) + beta with given (moving) statistics;
    dx = g gamma inv, dgamma = sum(g xhat), dbeta = sum(g), dmean = -sum(g gamma inv),
    dvar = -1/2 sum(g gamma xhat inv^2)."""

    def forward(self, x, mean, var, gamma=None, beta=None, axis=-1, epsilon=1e-3):
        axis = _channel_axis(x.ndim, axis)
        c = x.shape[axis]
        for name, p in (("moving mean", mean), ("moving variance", var), ("gamma", gamma),
                        ("beta", beta)):  # fmt: skip
            if p is not None and p.shape != (c,):
                raise ShapeError(
                    f"batch_norm: {name} must have shape ({c},) (the size of axis {axis}), "
                    f"received {p.shape}"
                )
        self.axes = tuple(i for i in range(x.ndim) if i != axis)
        self.pshape = ps = _param_shape(x.ndim, axis)
        inv = (1.0 / np.sqrt(var + np.asarray(epsilon, dtype=var.dtype))).astype(
            x.dtype, copy=False
        )
        scale = inv if gamma is None else inv * gamma
        shift = -mean.astype(x.dtype, copy=False) * scale
        if beta is not None:
            shift = shift + beta
        # y = x * scale + shift: one multiply-add over the batch
        self.x, self.mean, self.inv, self.gamma, self.scale = x, mean, inv, gamma, scale
        if axis == x.ndim - 1 and x.flags.c_contiguous:  # a chunk of rows at a time, in cache
            x2 = x.reshape(-1, c)
            y = np.empty_like(x2)
            k = _kernels(x2)
            if k is not None:  # one compiled pass
                _kernel_affine(k, y, x2, scale, shift)
                return y.reshape(x.shape)
            per, count = _row_chunks(x2.shape[0], c, x2.dtype.itemsize)
            _affine_rows(y, x2, scale.astype(x.dtype, copy=False), shift, per, count)
            return y.reshape(x.shape)
        y = x * scale.reshape(ps)
        y += shift.reshape(ps)
        return y

    def backward(self, g):
        ps, axes = self.pshape, self.axes
        need = self.needs_input_grad
        gx = g * self.scale.reshape(ps) if need[0] else None
        gmean = gvar = ggamma = gbeta = None
        if need[1] or need[2] or (len(need) > 3 and need[3]):
            gsum = g.sum(axis=axes)
            xhat_g = ((self.x - self.mean.reshape(ps)) * g).sum(axis=axes) * self.inv
            gam = 1.0 if self.gamma is None else self.gamma
            if need[1]:
                gmean = -gsum * gam * self.inv
            if need[2]:
                gvar = -0.5 * gam * xhat_g * self.inv * self.inv
            if len(need) > 3 and need[3]:
                ggamma = xhat_g
        if len(need) > 4 and need[4]:
            gbeta = g.sum(axis=axes)
        return gx, gmean, gvar, ggamma, gbeta


def batch_norm(
    x,
    gamma=None,
    beta=None,
    moving_mean=None,
    moving_variance=None,
    training: bool = True,
    axis: int = -1,
    epsilon: float = 1e-3,
):
    """Batch normalization over every axis but ``axis`` (channels-last by default).

    training=True normalizes with the batch statistics and returns ``(y, batch_mean,
    batch_variance)`` (biased variance, as Keras uses for its moving average); training=False
    normalizes with ``moving_mean``/``moving_variance`` and returns ``y`` alone.
    """
    if training:
        return BatchNorm.apply(x, gamma, beta, axis=axis, epsilon=epsilon)
    if moving_mean is None or moving_variance is None:
        raise EmberValueError("batch_norm: training=False needs moving_mean and moving_variance")
    return BatchNormInference.apply(
        x, moving_mean, moving_variance, gamma, beta, axis=axis, epsilon=epsilon
    )


class Dropout(Function):
    """y = x * mask / (1 - rate), mask ~ Bernoulli(1 - rate) (inverted dropout);
    dy/dx = mask / (1 - rate)"""

    def forward(self, x, rate=0.5, rng=None, noise_shape=None):
        shape = x.shape if noise_shape is None else noise_shape
        keep = 1.0 - rate
        if keep <= 0:  # rate == 1: everything dropped (avoids 0 * inf)
            self.mask = np.zeros(shape, dtype=x.dtype)
        else:
            # one uniform draw per kept unit; the scale is folded into the mask once
            u = rng.random(shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
            self.mask = (u < keep).astype(x.dtype) * np.asarray(1.0 / keep, dtype=x.dtype)
        return x * self.mask

    def backward(self, g):
        return g * self.mask


def _check_noise_shape(x_shape: tuple, noise_shape) -> tuple:
    noise_shape = tuple(x_shape[i] if s is None else int(s) for i, s in enumerate(noise_shape))
    ok = len(noise_shape) == len(x_shape) and all(
        n in (1, s) for n, s in zip(noise_shape, x_shape)
    )
    if not ok:
        raise ShapeError(
            f"dropout: noise_shape {noise_shape} must have the input's rank and each axis equal "
            f"to the input's or 1; input shape {x_shape}"
        )
    return noise_shape


def dropout(x, rate: float, training: bool = True, rng=None, noise_shape=None):
    """Inverted dropout: in training, zero each element with probability ``rate`` and scale the
    survivors by 1/(1-rate); at inference, the identity. ``rng`` defaults to
    ``ember.backend.rng()``; ``noise_shape`` (None entries: the input's size) shares one draw
    along the axes where it is 1."""
    if not 0.0 <= rate <= 1.0:
        raise EmberValueError(f"dropout: rate must be in [0, 1], received rate={rate!r}")
    if not training or rate == 0.0:
        return x if isinstance(x, Tensor) else Tensor(x)
    shape = tuple(x.shape)
    if noise_shape is not None:
        noise_shape = _check_noise_shape(shape, noise_shape)
    return Dropout.apply(
        x, rate=float(rate), rng=rng if rng is not None else backend.rng(), noise_shape=noise_shape
    )
