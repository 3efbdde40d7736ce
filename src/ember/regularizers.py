"""Weight regularizers, Keras-named. A regularizer is called on a weight and returns a scalar
Tensor built from ember ops, so the penalty is differentiable; ``Layer.losses`` collects the
penalties of a layer's trainable weights and the training loop adds them to the loss."""

from __future__ import annotations

from ember import ops
from ember.autograd import Tensor
from ember.config import Configurable
from ember.errors import EmberTypeError, EmberValueError


def _factor(cls: str, arg: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EmberTypeError(f"{cls}: {arg} must be a number, received {arg}={value!r}") from None
    if not value >= 0:  # also rejects NaN
        raise EmberValueError(f"{cls}: {arg} must be >= 0, received {arg}={value!r}")
    return value


class Regularizer(Configurable):
    """Base class: ``__call__(weight)`` returns a scalar Tensor penalty."""

    def __call__(self, x) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class L1L2(Regularizer):
    """penalty = l1 * sum(|w|) + l2 * sum(w^2).

    Args:
        l1: the L1 factor (>= 0).
        l2: the L2 factor (>= 0).
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _factor(type(self).__name__, "l1", l1)
        self.l2 = _factor(type(self).__name__, "l2", l2)

    def __call__(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        penalty = None
        if self.l1:
            penalty = ops.sum(ops.abs(x)) * self.l1
        if self.l2:
            term = ops.sum(x * x) * self.l2
            penalty = term if penalty is None else penalty + term
        if penalty is None:  # both factors zero: a constant, still a Tensor of the right dtype
            penalty = ops.sum(x) * 0.0
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """penalty = l1 * sum(|w|).

    Args:
        l1: the factor (Keras's default 0.01).
    """

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    """penalty = l2 * sum(w^2) (no 1/2, as in Keras).

    Args:
        l2: the factor (Keras's default 0.01).
    """

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """A regularizer from None (none), a name ("l2"), a ``{"class_name", "config"}`` dict, a
    Regularizer or any callable ``fn(weight) -> scalar Tensor`` (both returned as is)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier) or _NAMES.get(identifier.lower())
        if cls is None:
            raise EmberValueError(
                f"unknown regularizer {identifier!r}; expected one of {sorted(_NAMES)}"
            )
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = _CLASSES.get(name) or _NAMES.get(str(name).lower())
        if cls is None:
            raise EmberValueError(
                f"unknown regularizer class_name {name!r}; expected one of {sorted(_CLASSES)}"
            )
        return cls.from_config(dict(identifier.get("config") or {}))
    if callable(identifier):
        return identifier
    raise EmberTypeError(
        f"regularizer must be None, a name, a config dict or a callable, received {identifier!r}"
    )


def serialize(regularizer):
    """None, or a ``{"class_name", "config"}`` dict that ``get`` turns back."""
    if regularizer is None:
        return None
    if isinstance(regularizer, str):
        regularizer = get(regularizer)
    if isinstance(regularizer, Regularizer):
        return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
    return getattr(regularizer, "__name__", repr(regularizer))


def deserialize(config):
    return get(config)
