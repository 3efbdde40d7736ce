"""Activation functions as ops. Each keeps the cheapest thing its derivative needs.

ReLU's backward on large contiguous float arrays runs a compiled one-pass kernel where Numba is
installed (``ember/ops/kernels/activation.py``; off with ``EMBER_ACCEL=0``): it writes g or 0
from the kept output without NumPy's mask and product (8 MB float32: 1.25 -> 0.87 ms)."""

from __future__ import annotations

import math

import numpy as np

from ember.autograd.function import Function
from ember.ops import _accel

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    # exp of -|x| never overflows; both branches are exact in their half
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


_KERNEL_MIN = 1 << 14  # elements: below this NumPy's one call costs no more than a kernel call
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what the kernels compile for


def _flat_kernels(*arrays):
    """The compiled activation kernels when every array is a large C-contiguous float array of
    one dtype (then ``.reshape(-1)`` is a view), else None (NumPy path). A kernel runs on the
    calling thread, one call over the whole array: a pass bound by memory traffic measured no
    faster shared out over ember's workers on 2 cores, and several times slower when the cores
    are busy."""
    a = arrays[0]
    if a.size < _KERNEL_MIN or a.dtype not in _KERNEL_DTYPES:
        return None
    if any(b.dtype != a.dtype or not b.flags.c_contiguous for b in arrays):
        return None
    return _accel.load("activation")


class ReLU(Function):
    """z = max(0, a);  dz/da = 1 where a > 0"""

    def forward(self, a):
        # the output is kept, not a mask: it stays alive as the next op's input anyway, so
        # backward's mask (out > 0, the same as a > 0) costs no memory and no forward pass.
        # NumPy's maximum is one pass already (a compiled one measured no faster, and slower
        # inside the cnn_bn step: 6.4 vs 4.5 ms per step)
        self.out = np.maximum(a, 0)
        return self.out

    def backward(self, g):
        out = self.out
        k = _flat_kernels(out, g) if g.shape == out.shape else None
        if k is None:
            return g * (out > 0)
        gx = np.empty_like(g)
        gf, of, xf = g.reshape(-1), out.reshape(-1), gx.reshape(-1)
        k.relu_backward(gf, of, xf, 0, g.size)
        return gx


class LeakyReLU(Function):
    """z = a if a > 0 else s*a;  dz/da = 1 or s"""

    def forward(self, a, negative_slope=0.01):
        self.mask = a > 0
        self.s = negative_slope = float(negative_slope)  # a NumPy float64 would upcast
        return np.where(self.mask, a, a * negative_slope)

    def backward(self, g):
        return np.where(self.mask, g, g * self.s)


class ELU(Function):
    """z = a if a > 0 else alpha (e^a - 1);  dz/da = 1 or z + alpha"""

    def forward(self, a, alpha=1.0):
        self.mask = a > 0
        self.alpha = alpha = float(alpha)
        self.out = np.where(self.mask, a, alpha * np.expm1(np.minimum(a, 0)))
        return self.out

    def backward(self, g):
        return np.where(self.mask, g, g * (self.out + self.alpha))


class SELU(Function):
    """z = scale * elu(a, alpha) with the self-normalizing constants"""

    def forward(self, a):
        self.mask = a > 0
        self.neg = SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(a, 0))
        return np.where(self.mask, SELU_SCALE * a, self.neg - SELU_SCALE * SELU_ALPHA).astype(
            a.dtype, copy=False
        )

    def backward(self, g):
        return np.where(self.mask, g * SELU_SCALE, g * self.neg).astype(g.dtype, copy=False)


class Sigmoid(Function):
    """z = 1 / (1 + e^-a);  dz/da = z (1 - z)"""

    def forward(self, a):
        self.out = _sigmoid(a)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class HardSigmoid(Function):
    """z = clip(a/6 + 1/2, 0, 1);  dz/da = 1/6 inside (-3, 3)"""

    def forward(self, a):
        self.mask = (a > -3) & (a < 3)
        return np.clip(a / 6 + 0.5, 0, 1)

    def backward(self, g):
        return g * self.mask / 6


class Tanh(Function):
    """z = tanh(a);  dz/da = 1 - z^2"""

    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Softmax(Function):
    """z = e^a / sum(e^a) along axis;  dz/da . g = z (g - sum(g z))"""

    def forward(self, a, axis=-1):
        self.axis = axis
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        z = self.out
        return z * (g - (g * z).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """z = a - logsumexp(a) along axis (max shifted: stable);  dz/da . g = g - e^z sum(g)"""

    def forward(self, a, axis=-1):
        self.axis = axis
        shifted = a - a.max(axis=axis, keepdims=True)
        self.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        return g - np.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


class Swish(Function):
    """z = a sigmoid(beta a);  dz/da = s + beta a s (1 - s)"""

    def forward(self, a, beta=1.0):
        self.a, self.beta = a, beta = a, float(beta)
        self.s = _sigmoid(beta * a)
        return a * self.s

    def backward(self, g):
        s = self.s
        return g * (s + self.beta * self.a * s * (1 - s))


def _erf(x):
    try:
        from scipy.special import erf
    except ImportError:  # exact but slower: one Python call per element
        erf = np.vectorize(math.erf, otypes=[x.dtype])
    return erf(x)


class GELU(Function):
    """z = a Phi(a) (exact, erf) or its tanh approximation;  dz/da = Phi(a) + a phi(a)"""

    def forward(self, a, approximate=False):
        self.a, self.approximate = a, approximate
        if approximate:
            c = math.sqrt(2 / math.pi)
            self.t = np.tanh(c * (a + 0.044715 * a**3))
            return 0.5 * a * (1 + self.t)
        self.cdf = 0.5 * (1 + _erf(a / math.sqrt(2)))
        return a * self.cdf

    def backward(self, g):
        a = self.a
        if self.approximate:
            c = math.sqrt(2 / math.pi)
            dt = (1 - self.t**2) * c * (1 + 3 * 0.044715 * a**2)
            return g * (0.5 * (1 + self.t) + 0.5 * a * dt)
        pdf = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return g * (self.cdf + a * pdf)


class Softplus(Function):
    """z = log(1 + e^a) (stable);  dz/da = sigmoid(a)"""

    def forward(self, a):
        self.a = a
        return np.log1p(np.exp(-np.abs(a))) + np.maximum(a, 0)

    def backward(self, g):
        return g * _sigmoid(self.a)


def relu(a):
    return ReLU.apply(a)


def leaky_relu(a, negative_slope=0.01):
    return LeakyReLU.apply(a, negative_slope=negative_slope)


def elu(a, alpha=1.0):
    return ELU.apply(a, alpha=alpha)


def selu(a):
    return SELU.apply(a)


def sigmoid(a):
    return Sigmoid.apply(a)


def hard_sigmoid(a):
    return HardSigmoid.apply(a)


def tanh(a):
    return Tanh.apply(a)


def softmax(a, axis=-1):
    return Softmax.apply(a, axis=axis)


def log_softmax(a, axis=-1):
    return LogSoftmax.apply(a, axis=axis)


def swish(a, beta=1.0):
    return Swish.apply(a, beta=beta)


silu = swish


def gelu(a, approximate=False):
    return GELU.apply(a, approximate=approximate)


def softplus(a):
    return Softplus.apply(a)
