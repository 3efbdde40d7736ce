"""Activation functions by name, Keras-style: ``ember.activations.get("relu")`` or the functions
themselves. Each is a thin wrapper over an ``ember.ops`` op (where its derivative is written)."""

from __future__ import annotations

from ember import ops
from ember.autograd import Tensor
from ember.errors import EmberTypeError, EmberValueError


def as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def relu(x, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0):
    """max(x, 0); with options, Keras's ReLU: x >= max_value -> max_value, x < threshold ->
    negative_slope * (x - threshold)."""
    x = as_tensor(x)
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    below = x < threshold
    out = ops.where(below, (x - threshold) * negative_slope, x)
    if max_value is not None:
        out = ops.minimum(out, max_value)
    return out


def leaky_relu(x, negative_slope: float = 0.2):
    """x if x > 0 else negative_slope * x (Keras's function default slope is 0.2)."""
    return ops.leaky_relu(as_tensor(x), negative_slope=negative_slope)


def elu(x, alpha: float = 1.0):
    """x if x > 0 else alpha (e^x - 1)."""
    return ops.elu(as_tensor(x), alpha=alpha)


def selu(x):
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return ops.selu(as_tensor(x))


def sigmoid(x):
    """1 / (1 + e^-x)."""
    return ops.sigmoid(as_tensor(x))


def hard_sigmoid(x):
    """clip(x / 6 + 1/2, 0, 1) (Keras 3's definition)."""
    return ops.hard_sigmoid(as_tensor(x))


def tanh(x):
    """tanh(x)."""
    return ops.tanh(as_tensor(x))


def softmax(x, axis: int = -1):
    """e^x / sum(e^x) along axis."""
    return ops.softmax(as_tensor(x), axis=axis)


def log_softmax(x, axis: int = -1):
    """x - logsumexp(x) along axis."""
    return ops.log_softmax(as_tensor(x), axis=axis)


def swish(x, beta: float = 1.0):
    """x * sigmoid(beta x)."""
    return ops.swish(as_tensor(x), beta=beta)


def silu(x):
    """x * sigmoid(x) (swish with beta = 1)."""
    return ops.swish(as_tensor(x), beta=1.0)


def gelu(x, approximate: bool = False):
    """x Phi(x), exact (erf) by default as in Keras 3, or its tanh approximation."""
    return ops.gelu(as_tensor(x), approximate=approximate)


def softplus(x):
    """log(1 + e^x)."""
    return ops.softplus(as_tensor(x))


def linear(x):
    """The identity."""
    return as_tensor(x)


_NAMES = {
    "relu": relu, "leaky_relu": leaky_relu, "elu": elu, "selu": selu, "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid, "tanh": tanh, "softmax": softmax, "log_softmax": log_softmax,
    "swish": swish, "silu": silu, "gelu": gelu, "softplus": softplus, "linear": linear,
}  # fmt: skip


def get(identifier):
    """An activation from a name, a callable (returned as is) or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _NAMES.get(identifier.lower())
        if fn is None:
            raise EmberValueError(
                f"unknown activation {identifier!r}; expected one of {sorted(_NAMES)}"
            )
        return fn
    if isinstance(identifier, dict):  # Keras's serialized form of a builtin function
        return get(identifier.get("config", identifier.get("class_name")))
    if callable(identifier):
        return identifier
    raise EmberTypeError(f"activation must be a name, a callable or None, received {identifier!r}")


def serialize(activation) -> str:
    """The name of a built-in activation (``get`` turns it back); custom callables give their
    ``__name__``, which only loads where the same function is registered by that name."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        get(activation)  # validate
        return activation.lower()
    for name, fn in _NAMES.items():
        if fn is activation:
            return name
    return getattr(activation, "__name__", repr(activation))


def deserialize(name):
    return get(name)
