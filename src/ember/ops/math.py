"""Elementwise arithmetic: the binary operators, their unary friends and where/maximum/minimum.

Backward rules return gradients of the broadcast output's shape; the engine sums them back to
each input's shape. A backward never writes into the gradient it receives.
"""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.errors import EmberValueError


class Add(Function):
    """z = a + b;  dz/da = 1, dz/db = 1"""

    def forward(self, a, b):
        return np.add(a, b)

    def backward(self, g):
        return g, g


class Sub(Function):
    """z = a - b;  dz/da = 1, dz/db = -1"""

    def forward(self, a, b):
        return np.subtract(a, b)

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """z = a * b;  dz/da = b, dz/db = a"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.multiply(a, b)

    def backward(self, g):
        ga = g * self.b if self.needs_input_grad[0] else None
        gb = g * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b^2 = -z/b"""

    def forward(self, a, b):
        self.b = b
        self.out = np.divide(a, b)
        return self.out

    def backward(self, g):
        ga = g / self.b if self.needs_input_grad[0] else None
        gb = -g * self.out / self.b if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """z = -a"""

    def forward(self, a):
        return np.negative(a)

    def backward(self, g):
        return -g


class Pow(Function):
    """z = a ** b;  dz/da = b a^(b-1) (0 where b = 0), dz/db = z log(a) (0 where a = 0, b >= 0)

    The two special cases are PyTorch's: x**0 is flat even at x = 0, and 0**b does not move
    with b for b >= 0. A negative base has no real log, so its exponent gradient is NaN.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = np.power(a, b)
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_input_grad[0]:
            if isinstance(b, np.ndarray):
                with np.errstate(divide="ignore", invalid="ignore"):
                    ga = g * np.where(b == 0, 0, b * np.power(a, b - 1))
            else:  # a Python number: the common x**2, x**0.5
                ga = g * b * np.power(a, b - 1) if b != 0 else np.zeros_like(g)
        if self.needs_input_grad[1]:
            a = np.asarray(a, dtype=self.out.dtype)  # a Python number base must not upcast
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = g * np.where((a == 0) & (b >= 0), 0, self.out * np.log(a))
        return ga, gb


class Exp(Function):
    """z = e^a;  dz/da = z"""

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    """z = ln a;  dz/da = 1/a"""

    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    """z = sqrt(a);  dz/da = 1 / (2 z)"""

    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    """z = |a|;  dz/da = sign(a) (0 at 0)"""

    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return g * np.sign(self.a)


class Clip(Function):
    """z = min(max(a, lo), hi);  dz/da = 1 where lo <= a <= hi, else 0"""

    def forward(self, a, lo=None, hi=None):
        # bounds in a's dtype: a float64 bound would make np.clip return float64
        lo = None if lo is None else np.asarray(lo).astype(a.dtype, copy=False)
        hi = None if hi is None else np.asarray(hi).astype(a.dtype, copy=False)
        if lo is None:
            self.mask = a <= hi
        elif hi is None:
            self.mask = a >= lo
        else:
            self.mask = (a >= lo) & (a <= hi)
        return np.clip(a, lo, hi)

    def backward(self, g):
        return g * self.mask


class Maximum(Function):
    """z = max(a, b) elementwise; ties share the gradient equally (as PyTorch does)"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        # share of a: 1 where a > b, 1/2 at ties, 0 below, in g's dtype (0.5 * bools is float64)
        wa = np.add(self.a > self.b, self.a >= self.b, dtype=g.dtype)
        ga = g * wa * 0.5
        return ga, g - ga


class Minimum(Function):
    """z = min(a, b) elementwise; ties share the gradient equally (as PyTorch does)"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.minimum(a, b)

    def backward(self, g):
        wa = np.add(self.a < self.b, self.a <= self.b, dtype=g.dtype)
        ga = g * wa * 0.5
        return ga, g - ga


class Where(Function):
    """z = a where cond else b;  the gradient goes to the side that was chosen."""

    def forward(self, cond, a, b):
        self.cond = np.asarray(cond, dtype=bool)
        return np.where(self.cond, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        ga = np.where(self.cond, g, zero) if self.needs_input_grad[1] else None
        gb = np.where(self.cond, zero, g) if self.needs_input_grad[2] else None
        return None, ga, gb


class Cast(Function):
    """z = a converted to another dtype; the gradient is converted back."""

    exact_dtype = True

    def forward(self, a, dtype=None):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def neg(a):
    return Neg.apply(a)


def pow(a, b):  # noqa: A001 - mirrors the operator's name
    return Pow.apply(a, b)


def exp(a):
    return Exp.apply(a)


def log(a):
    return Log.apply(a)


def sqrt(a):
    return Sqrt.apply(a)


def abs(a):  # noqa: A001
    return Abs.apply(a)


def clip(a, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise EmberValueError("clip: give at least one of min and max, received neither")
    return Clip.apply(a, lo=_raw(min), hi=_raw(max))


def maximum(a, b):
    return Maximum.apply(a, b)


def minimum(a, b):
    return Minimum.apply(a, b)


def where(cond, a, b):
    return Where.apply(cond, a, b)


def cast(a, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind not in "fc":  # integers and bools carry no gradient
        with no_grad():
            return Cast.apply(a, dtype=dtype)
    return Cast.apply(a, dtype=dtype)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x
