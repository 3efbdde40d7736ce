"""Layer: the one contract every layer keeps (Keras's): ``__init__`` validates and stores the
configuration, ``build(input_shape)`` creates the weights from the first input's shape, and
``call(x, training=None)`` computes. Weights and sublayers live in insertion-ordered registries,
so ``get_weights()`` has the same order on every run.
"""

from __future__ import annotations

import contextlib
import inspect
import re

import numpy as np

from ember import backend
from ember.autograd import Parameter, Tensor, no_grad
from ember.errors import EmberTypeError, EmberValueError, ShapeError

# ---------------------------------------------------------------------------------- mode
# The training flag of the call in progress. fit/train_on_batch set it to True; a layer called
# with an explicit training= pushes that value for everything it calls, so nested layers agree.
_mode = {"training": False}


@contextlib.contextmanager
def training_mode(training: bool):
    """Context in which layers called with ``training=None`` run in training mode (or not)."""
    old = _mode["training"]
    _mode["training"] = bool(training)
    try:
        yield
    finally:
        _mode["training"] = old


def in_training_mode() -> bool:
    return _mode["training"]


# ---------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type] = {}
_NAME_COUNTS: dict[str, int] = {}


def register(cls=None, *, name: str | None = None):
    """Class decorator that makes a layer (or model) loadable by name from a saved file.

    Only registered classes can be rebuilt by ``load_model``: a file names classes, it never
    carries code.
    """

    def wrap(c):
        _REGISTRY[name or c.__name__] = c
        return c

    return wrap(cls) if cls is not None else wrap


def get_registered(name: str) -> type:
    if name not in _REGISTRY:
        raise EmberValueError(
            f"unknown layer class {name!r}: register custom layers with "
            f"@ember.layers.register before loading a model that uses them"
        )
    return _REGISTRY[name]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower()


def unique_name(base: str) -> str:
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def as_tensor(x) -> Tensor:
    """Inputs may be Tensors, arrays or nested lists; floats take the current floatx."""
    return x if isinstance(x, Tensor) else Tensor(x)


# ---------------------------------------------------------------------------------- Layer
class Layer:
    """Base class of every layer and model.

    Args:
        name: a unique name (default: the snake-cased class name, numbered).
        trainable: whether the layer's weights are updated by training.
        dtype: the float dtype of its weights (default: ``ember.floatx()``).
    """

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None, **kwargs):
        kwargs.pop("input_shape", None)  # accepted for Keras compatibility; builds are lazy
        if kwargs:
            raise EmberTypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}"
            )
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_layers", {})
        self.name = name or unique_name(_snake(type(self).__name__))
        self._trainable = bool(trainable)
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.built = False
        self._explicit_training = None  # set by train()/eval()
        self._build_shape = None

    # ------------------------------------------------------------------ registries
    def __setattr__(self, key, value):
        layers = self.__dict__.setdefault("_layers", {})
        for k in [k for k in layers if k == key or k.startswith(key + ".")]:
            del layers[k]  # re-assigning an attribute replaces what it held
        if isinstance(value, Layer):
            layers[key] = value
        elif (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value)
        ):
            for i, v in enumerate(value):
                layers[f"{key}.{i}"] = v
        object.__setattr__(self, key, value)

    def add_weight(
        self,
        name: str,
        shape,
        initializer="zeros",
        trainable: bool = True,
        regularizer=None,
        constraint=None,
        dtype=None,
    ) -> Parameter:
        """Create, register and return a weight (a Parameter) named ``<layer>/<name>``."""
        from ember import initializers

        init = initializers.get(initializer)
        dtype = np.dtype(dtype or self.dtype or backend.float_dtype())
        value = np.asarray(init(tuple(int(s) for s in shape), dtype=dtype), dtype=dtype)
        p = Parameter(value, name=f"{self.name}/{name}", trainable=trainable, dtype=dtype)
        p.requires_grad = trainable and self._trainable
        if regularizer is not None:
            from ember import regularizers

            p.regularizer = regularizers.get(regularizer)
        p.constraint = constraint
        self._params[name] = p
        return p

    @property
    def sublayers(self) -> list:
        """Direct sublayers in the order they were attached (each once)."""
        seen, out = set(), []
        for layer in self._layers.values():
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        return out

    def _all_weights(self) -> list:
        out, seen = [], set()
        for p in self._params.values():
            out.append(p)
            seen.add(id(p))
        for layer in self.sublayers:
            for p in layer.weights:
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    @property
    def weights(self) -> list:
        """Every weight, own ones first in creation order, then each sublayer's."""
        return self._all_weights()

    @property
    def trainable_weights(self) -> list:
        if not self._trainable:
            return []
        out = [p for p in self._params.values() if p.trainable]
        seen = {id(p) for p in out}
        for layer in self.sublayers:
            for p in layer.trainable_weights:
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    @property
    def non_trainable_weights(self) -> list:
        train = {id(p) for p in self.trainable_weights}
        return [p for p in self.weights if id(p) not in train]

    @property
    def losses(self) -> list:
        """Regularization penalties of the trainable weights, as scalar Tensors."""
        return [p.regularizer(p) for p in self.trainable_weights if p.regularizer is not None]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self.sublayers:
            layer.trainable = value
        # frozen weights record no graph, so no gradient work is spent on them
        for p in self._params.values():
            p.requires_grad = p.trainable and self._trainable

    # ------------------------------------------------------------------ mode
    def train(self, mode: bool | None = True) -> Layer:
        """Set training mode explicitly for this layer and its sublayers (None: follow fit)."""
        self._explicit_training = mode
        for layer in self.sublayers:
            layer.train(mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    # ------------------------------------------------------------------ calling
    def build(self, input_shape) -> None:
        """Create the weights. The default has none."""

    def call(self, x, training=None):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def check_input(self, shape: tuple) -> None:
        """Raise a ShapeError if an input of this shape cannot be handled. Default: accept."""

    def _maybe_build(self, shape: tuple) -> None:
        if not self.built:
            self.build(shape)
            self.built = True
            self._build_shape = shape

    def __call__(self, x, training=None, **kwargs):
        if not isinstance(x, (Tensor, list, tuple)):
            x = as_tensor(x)
        shape = x.shape if isinstance(x, Tensor) else tuple(t.shape for t in x)
        if isinstance(x, Tensor):
            self.check_input(shape)
        self._maybe_build(shape)
        if training is None:
            training = self._explicit_training
        if training is None:
            training = _mode["training"]
        old = _mode["training"]
        _mode["training"] = bool(training)
        try:
            if "mask" in kwargs and kwargs["mask"] is None:
                kwargs.pop("mask")
            return self.call(x, training=bool(training), **kwargs)
        finally:
            _mode["training"] = old

    def compute_mask(self, x, mask=None):
        """The mask this layer passes on (default: the incoming one, unchanged)."""
        return mask

    def compute_output_shape(self, input_shape) -> tuple:
        """Output shape for an input shape (batch axis may be None): traced with a zero batch."""
        shape = tuple(1 if s is None else s for s in input_shape)
        with no_grad():
            out = self(np.zeros(shape, dtype=backend.float_dtype()), training=False)
        if isinstance(out, (list, tuple)):
            return [(input_shape[0],) + o.shape[1:] for o in out]
        return (input_shape[0],) + out.shape[1:]

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list:
        return [p.data.copy() for p in self.weights]

    def set_weights(self, weights) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise EmberValueError(
                f"{self.name}.set_weights: expected a list of {len(params)} arrays "
                f"({[p.shape for p in params]}), received {len(weights)}"
            )
        for p, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ShapeError(
                    f"{self.name}.set_weights: weight {p.name!r} expects shape {p.shape}, "
                    f"received {w.shape}"
                )
        for p, w in zip(params, weights):
            p.data[...] = w

    def count_params(self) -> int:
        if not self.built:
            raise EmberValueError(
                f"{self.name}.count_params: the layer is not built yet; call it on an input "
                f"(or build(input_shape)) first"
            )
        return int(sum(p.size for p in self.weights))

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """JSON-able arguments that rebuild this layer with ``from_config``."""
        config = {"name": self.name, "trainable": self._trainable}
        if self.dtype is not None:
            config["dtype"] = str(self.dtype)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def call_accepts(layer: Layer, arg: str) -> bool:
    """Whether ``layer.call`` takes a keyword argument (used to pass masks along)."""
    try:
        return arg in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def check_positive_int(layer: str, arg: str, value) -> int:
    """Validate a positive int configuration argument with ember's message format."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise EmberValueError(f"{layer}: {arg} must be a positive int, received {arg}={value!r}")
    return int(value)
