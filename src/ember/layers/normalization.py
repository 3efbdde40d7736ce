"""BatchNormalization (Keras semantics) over the fused ``batch_norm`` op."""

from __future__ import annotations

import numpy as np

from ember import initializers, regularizers
from ember.autograd import no_grad
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, register
from ember.ops import cast
from ember.ops.norm import batch_norm


@register
class BatchNormalization(Layer):
    """Normalizes each channel: batch statistics in training, moving statistics at inference.

    In training the moving statistics follow Keras: ``moving = moving * momentum + batch *
    (1 - momentum)``, with the biased batch variance. A layer with ``trainable=False`` always
    normalizes with its moving statistics and never updates them (Keras's fine-tuning rule).
    Weights: ``[gamma, beta, moving_mean, moving_variance]`` (the last two non-trainable;
    gamma/beta absent when scale/center is False).

    Args:
        axis: the channel axis (-1: channels-last).
        momentum: the moving average's momentum, in [0, 1].
        epsilon: added to the variance before the square root (> 0).
        center: whether to learn an offset beta.
        scale: whether to learn a scale gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers of the four weights.
        beta_regularizer, gamma_regularizer: regularizers of beta and gamma.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise EmberTypeError(f"{self.name}: axis must be an int, received axis={axis!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise EmberValueError(
                f"{self.name}: momentum must be in [0, 1], received momentum={momentum!r}"
            )
        if not float(epsilon) > 0.0:
            raise EmberValueError(
                f"{self.name}: epsilon must be positive, received epsilon={epsilon!r}"
            )
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def check_input(self, shape: tuple) -> None:
        ndim = len(shape)
        if not -ndim <= self.axis < ndim:
            raise ShapeError(
                f"{self.name}: axis={self.axis} is out of range for an input of shape "
                f"{tuple(shape)}"
            )
        if self.moving_mean is not None:
            c = self.moving_mean.shape[0]
            if shape[self.axis] != c:
                raise ShapeError(
                    f"{self.name}: expected {c} channels on axis {self.axis} (the layer was "
                    f"built for input shape {self._build_shape}), received shape {tuple(shape)}"
                )

    def build(self, input_shape) -> None:
        c = input_shape[self.axis]
        if c is None:
            raise ShapeError(f"{self.name}: the channel axis {self.axis} must be known to build")
        shape = (c,)
        if self.scale:
            self.gamma = self.add_weight(
                "gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer
            )
        if self.center:
            self.beta = self.add_weight(
                "beta", shape, self.beta_initializer, regularizer=self.beta_regularizer
            )
        self.moving_mean = self.add_weight(
            "moving_mean", shape, self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance", shape, self.moving_variance_initializer, trainable=False
        )

    def call(self, x, training=None):
        dtype = self.moving_mean.dtype
        if x.dtype != dtype:
            x = cast(x, dtype)
        if training and self.trainable:
            y, mean, var = batch_norm(
                x, self.gamma, self.beta, training=True, axis=self.axis, epsilon=self.epsilon
            )
            with no_grad():  # in place: the moving statistics are state, not part of the graph
                m = np.asarray(self.momentum, dtype=dtype)
                for moving, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
                    moving.data *= m
                    moving.data += batch.data * (1 - m)
            return y
        return batch_norm(
            x,
            self.gamma,
            self.beta,
            self.moving_mean,
            self.moving_variance,
            training=False,
            axis=self.axis,
            epsilon=self.epsilon,
        )

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
        }
