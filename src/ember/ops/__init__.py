"""Differentiable operations, grouped by kind. Each op is a Function subclass in its module with a
lowercase wrapper; this package re-exports the wrappers (``ember.ops.add``, ``ember.ops.conv2d``,
...). Heavy fused ops (conv, pool, norm, recurrent, loss) live in their own modules and load on
first use, so ``import ember`` stays fast."""

from ember.ops.activation import (
    elu,
    gelu,
    hard_sigmoid,
    leaky_relu,
    log_softmax,
    relu,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    swish,
    tanh,
)
from ember.ops.linalg import matmul
from ember.ops.math import (
    abs,
    add,
    cast,
    clip,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from ember.ops.reduce import max, mean, min, sum, var
from ember.ops.shape import (
    broadcast_to,
    concatenate,
    expand_dims,
    getitem,
    pad,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
)

__all__ = [
    "abs", "add", "broadcast_to", "cast", "clip", "concatenate", "div", "elu", "exp",
    "expand_dims", "gelu", "getitem", "hard_sigmoid", "leaky_relu", "log", "log_softmax",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg", "pad", "permute", "pow",
    "relu", "reshape", "selu", "sigmoid", "silu", "softmax", "softplus", "split", "sqrt",
    "squeeze", "stack", "sub", "sum", "swish", "tanh", "transpose", "var", "where",
]  # fmt: skip
