"""Core layers: Input, Dense, Flatten, Reshape, Activation, Dropout, Lambda."""

from __future__ import annotations

import math

import numpy as np

from ember import activations, backend, initializers, ops, regularizers
from ember.autograd import Tensor
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, check_positive_int, register
from ember.ops.linalg import linear
from ember.ops.norm import dropout


def _shape_tuple(layer: str, arg: str, shape, allow_none: bool = True) -> tuple:
    """Validate a shape argument (an int or a sequence of positive ints / None)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise EmberTypeError(
            f"{layer}: {arg} must be a tuple of ints, received {arg}={shape!r}"
        ) from None
    for s in shape:
        ok = (s is None and allow_none) or (
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
        )
        if not ok:
            raise EmberValueError(
                f"{layer}: {arg} must hold positive ints{' or None' if allow_none else ''}, "
                f"received {arg}={shape!r}"
            )
    return tuple(None if s is None else int(s) for s in shape)


def _as_float_input(x: Tensor, dtype) -> Tensor:
    """Inputs take the layer's weight dtype (ints from a data loader, float64 arrays into a
    float32 model), as Keras autocasts: no silent upcast of the whole model."""
    if x.dtype != dtype:
        return ops.cast(x, dtype)
    return x


# ---------------------------------------------------------------------------------- Input
@register
class InputLayer(Layer):
    """The entry of a model: the identity, which knows its input shape (batch axis None) and
    checks that incoming batches match it.

    Args:
        shape: the shape of one example (no batch axis); None marks a free axis.
        batch_size: a fixed batch size, or None.
        dtype: the input dtype (default: floatx).
        name: the layer's name.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        batch_shape = kwargs.pop("batch_shape", None)
        kwargs.pop("trainable", None)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise EmberValueError(f"{self.name}: an Input needs a shape, e.g. Input((28, 28, 1))")
        shape = _shape_tuple(self.name, "shape", shape)
        if batch_size is not None:
            batch_size = check_positive_int(self.name, "batch_size", batch_size)
        self.batch_size = batch_size
        self.shape = (batch_size, *shape)
        self.built = True
        self._build_shape = self.shape

    def check_input(self, shape: tuple) -> None:
        expected = self.shape
        ok = len(shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, shape)
        )
        if not ok:
            raise ShapeError(
                f"{self.name}: expected input of shape {_fmt(expected)}, received {tuple(shape)}"
            )

    def call(self, x, training=None):
        return x

    def compute_output_shape(self, input_shape=None) -> tuple:
        return self.shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        config.update(shape=list(self.shape[1:]), batch_size=self.batch_size)
        return config


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None) -> InputLayer:  # noqa: N802
    """The input of a model (Keras's ``keras.Input``): an InputLayer for ``shape`` (per example).

    Args:
        shape: the shape of one example, without the batch axis.
        batch_size: a fixed batch size, or None.
        dtype: the input dtype.
        name: the layer's name.
        batch_shape: the full shape including the batch axis (instead of shape/batch_size).
    """
    return InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape
    )


def _fmt(shape: tuple) -> str:
    return (
        "("
        + ", ".join("None" if s is None else str(s) for s in shape)
        + (",)" if len(shape) == 1 else ")")
    )


# ---------------------------------------------------------------------------------- Dense
@register
class Dense(Layer):
    """A fully connected layer: ``activation(x @ kernel + bias)`` over the last axis of x.

    Args:
        units: the output size (a positive int).
        activation: a name, a callable or None (linear).
        use_bias: whether to add a bias.
        kernel_initializer: initializer of the kernel, shape (in, units).
        bias_initializer: initializer of the bias, shape (units,).
        kernel_regularizer: a regularizer penalizing the kernel, or None.
        bias_regularizer: a regularizer penalizing the bias, or None.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int(self.name, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    def check_input(self, shape: tuple) -> None:
        if len(shape) < 2:
            raise ShapeError(
                f"{self.name}: expected input of rank >= 2 (batch, ..., features), "
                f"received shape {tuple(shape)}"
            )
        if self.kernel is not None and shape[-1] != self.kernel.shape[0]:
            raise ShapeError(
                f"{self.name}: expected input with last axis {self.kernel.shape[0]} (the layer "
                f"was built for input shape {self._build_shape}), received shape {tuple(shape)}"
            )

    def build(self, input_shape) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(f"{self.name}: the last axis of the input must be known to build")
        self.kernel = self.add_weight(
            "kernel", (in_dim, self.units), self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )  # fmt: skip
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.units,), self.bias_initializer, regularizer=self.bias_regularizer
            )

    def call(self, x, training=None):
        x = _as_float_input(x, self.kernel.dtype)
        if self.activation is activations.relu:  # one fused op (bias and ReLU in one pass)
            return linear(x, self.kernel, self.bias if self.use_bias else None, relu=True)
        y = linear(x, self.kernel, self.bias) if self.use_bias else linear(x, self.kernel)
        return y if self.activation is activations.linear else self.activation(y)

    def compute_output_shape(self, input_shape) -> tuple:
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


# ---------------------------------------------------------------------------------- shapes
@register
class Flatten(Layer):
    """Flattens every axis but the batch axis: (N, d1, d2, ...) -> (N, d1*d2*...)."""

    def check_input(self, shape: tuple) -> None:
        if len(shape) < 1:
            raise ShapeError(f"{self.name}: expected a batch of examples, received a scalar")

    def call(self, x, training=None):
        return ops.reshape(x, (x.shape[0], -1))  # (N,) -> (N, 1), as Keras

    def compute_output_shape(self, input_shape) -> tuple:
        rest = tuple(input_shape)[1:]
        n = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], n)


@register
class Reshape(Layer):
    """Reshapes every example to ``target_shape`` (the batch axis is kept).

    Args:
        target_shape: the per-example shape; one entry may be -1 (inferred).
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        try:
            target_shape = tuple(int(s) for s in target_shape)
        except (TypeError, ValueError):
            raise EmberTypeError(
                f"{self.name}: target_shape must be a tuple of ints, "
                f"received target_shape={target_shape!r}"
            ) from None
        if any(s == 0 or s < -1 for s in target_shape) or target_shape.count(-1) > 1:
            raise EmberValueError(
                f"{self.name}: target_shape must hold positive ints and at most one -1, "
                f"received target_shape={target_shape!r}"
            )
        self.target_shape = target_shape

    def _resolve(self, example_shape: tuple) -> tuple:
        size = math.prod(example_shape)
        known = math.prod(s for s in self.target_shape if s != -1)
        target = self.target_shape
        if -1 in target:
            if known == 0 or size % known:
                target = None
            else:
                target = tuple(size // known if s == -1 else s for s in target)
        if target is None or math.prod(target) != size:
            raise ShapeError(
                f"{self.name}: cannot reshape examples of shape {tuple(example_shape)} "
                f"({size} values) into target_shape {self.target_shape}"
            )
        return target

    def check_input(self, shape: tuple) -> None:
        if len(shape) < 1:
            raise ShapeError(f"{self.name}: expected a batch of examples, received a scalar")
        self._resolve(shape[1:])

    def call(self, x, training=None):
        return ops.reshape(x, (x.shape[0], *self._resolve(x.shape[1:])))

    def compute_output_shape(self, input_shape) -> tuple:
        rest = tuple(input_shape)[1:]
        if any(s is None for s in rest):
            return (input_shape[0], *(None if s == -1 else s for s in self.target_shape))
        return (input_shape[0], *self._resolve(rest))

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


# ---------------------------------------------------------------------------------- elementwise
@register
class Activation(Layer):
    """Applies an activation function.

    Args:
        activation: a name ("relu", ...) or a callable.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=None):
        return self.activation(x)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register
class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability ``rate`` and the
    survivors are scaled by 1/(1-rate); at inference, the identity.

    Args:
        rate: the fraction of units to drop, in [0, 1).
        noise_shape: the shape of the drop mask (None entries: the input's); a 1 shares one
            draw along that axis (e.g. (None, 1, 1, None) drops whole channels).
        seed: None (draw from ``ember.backend.rng()``) or an int (a generator of this layer's
            own, seeded once).
    """

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise EmberTypeError(f"{self.name}: rate must be a float, received rate={rate!r}")
        if not 0.0 <= float(rate) < 1.0:
            raise EmberValueError(f"{self.name}: rate must be in [0, 1), received rate={rate!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        ):
            raise EmberTypeError(f"{self.name}: seed must be an int or None, received {seed!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        noise_shape = self.noise_shape
        if noise_shape is not None and len(noise_shape) != x.ndim:
            raise ShapeError(
                f"{self.name}: noise_shape {noise_shape} must have the input's rank "
                f"{x.ndim}; input shape {x.shape}"
            )
        rng = self._rng if self._rng is not None else backend.rng()
        return dropout(x, self.rate, True, rng=rng, noise_shape=noise_shape)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
            "seed": self.seed,
        }


@register
class Lambda(Layer):
    """Wraps a function of tensors as a layer (no weights of its own).

    A saved model cannot carry the function's code (ember never loads code from files): its
    config names the function, and ``from_config`` needs the function itself passed back as
    ``config["function"]``.

    Args:
        function: a callable ``fn(x)`` over Tensors.
        output_shape: optional per-example output shape, or a callable input_shape ->
            output_shape, for ``compute_output_shape`` without running the function.
    """

    def __init__(self, function, output_shape=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise EmberTypeError(
                f"{self.name}: function must be callable, received function={function!r}"
            )
        self.function = function
        self.output_shape = output_shape

    def call(self, x, training=None):
        return self.function(x)

    def compute_output_shape(self, input_shape) -> tuple:
        if callable(self.output_shape):
            return tuple(self.output_shape(tuple(input_shape)))
        if self.output_shape is not None:
            return (input_shape[0], *tuple(self.output_shape))
        return super().compute_output_shape(input_shape)

    def get_config(self) -> dict:
        config = {**super().get_config(), "function": getattr(self.function, "__name__", "?")}
        if self.output_shape is not None and not callable(self.output_shape):
            config["output_shape"] = list(self.output_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        if not callable(config.get("function")):
            raise EmberValueError(
                f"Lambda.from_config: the function {config.get('function')!r} is not saved with "
                f"the model (ember never loads code from files); pass the callable itself as "
                f"config['function']"
            )
        return cls(**config)


__all__ = [
    "Activation", "Dense", "Dropout", "Flatten", "Input", "InputLayer", "Lambda", "Reshape",
]  # fmt: skip
