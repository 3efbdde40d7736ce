"""Conv2D: a 2-D convolution layer on NHWC images over the fused ``conv2d`` op."""

from __future__ import annotations

import math

from ember import activations, initializers, ops, regularizers
from ember.errors import EmberValueError, ShapeError
from ember.layers.base import Layer, check_positive_int, register
from ember.ops.conv import as_pair, check_padding, conv2d, conv_geometry


def check_data_format(layer: str, data_format) -> None:
    """ember's images are channels-last; accept Keras's argument only with that value."""
    if data_format not in (None, "channels_last"):
        raise EmberValueError(
            f"{layer}: only data_format='channels_last' (NHWC) is supported, "
            f"received data_format={data_format!r}"
        )


def spatial_output(layer: str, shape, window, strides, padding, dilation=(1, 1)) -> tuple:
    """(height, width) after a sliding window; None stays None (an unknown size)."""
    h, w = shape[1], shape[2]
    if h is None or w is None:
        known = conv_geometry(
            (h or window[0], w or window[1]), window, strides, padding, dilation, where=layer
        )[0]
        return (None if h is None else known[0], None if w is None else known[1])
    return conv_geometry((h, w), window, strides, padding, dilation, where=layer)[0]


def explain_window(layer, input_shape, window, strides, padding, dilation=(1, 1)) -> tuple:
    """Lines that derive the output size and the exact padding along each axis."""
    shape = tuple(input_shape)
    hw = shape[1:3] if len(shape) == 4 else shape[:2]
    (oh, ow), (top, bottom, left, right) = conv_geometry(
        hw, window, strides, padding, dilation, where=layer
    )
    lines = []
    for axis, size, k, s, d, out, before, after, names in (
        ("height", hw[0], window[0], strides[0], dilation[0], oh, top, bottom, ("top", "bottom")),
        ("width", hw[1], window[1], strides[1], dilation[1], ow, left, right, ("left", "right")),
    ):
        span = (k - 1) * d + 1
        # a dilated kernel covers more input than it has taps
        spans = "" if d == 1 else f"the kernel spans ({k} - 1) * {d} + 1 = {span}; "
        if padding == "valid":
            lines.append(
                f"  {axis}: {spans}out = floor(({size} - {span}) / {s}) + 1 = {out}; no padding"
            )
        else:
            lines.append(
                f"  {axis}: {spans}out = ceil({size} / {s}) = {out}; total padding = "
                f"max(({out} - 1) * {s} + {span} - {size}, 0) = {before + after} -> "
                f"{names[0]} {before}, {names[1]} {after}"
            )
    if padding == "same":
        lines.append(
            "  (SAME follows TensorFlow: the smaller half of the padding goes before, the extra "
            "one after)"
        )
    return lines, (oh, ow)


@register
class Conv2D(Layer):
    """A 2-D convolution over NHWC images: ``activation(conv2d(x, kernel) + bias)``.

    Weights: ``[kernel (kh, kw, in_channels, filters), bias (filters,)]`` (Keras's order).

    Args:
        filters: the number of output channels (a positive int).
        kernel_size: an int or a (height, width) pair.
        strides: an int or a pair (> 1 cannot be combined with dilation_rate > 1, as in Keras).
        padding: "valid" (no padding) or "same" (output size ceil(input / stride); TensorFlow's
            rule puts the odd extra padding after).
        dilation_rate: an int or a pair: the spacing between the kernel's taps.
        activation: a name, a callable or None (linear).
        use_bias: whether to add a bias per filter.
        kernel_initializer, bias_initializer: initializers of the two weights.
        kernel_regularizer, bias_regularizer: regularizers of the two weights, or None.
        data_format: only "channels_last" (accepted for Keras compatibility).
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "valid",
        dilation_rate=1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_data_format(self.name, data_format)
        self.filters = check_positive_int(self.name, "filters", filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size", self.name)
        self.strides = as_pair(strides, "strides", self.name)
        self.padding = check_padding(padding, self.name)
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate", self.name)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise EmberValueError(
                f"{self.name}: strides > 1 cannot be combined with dilation_rate > 1 (as in "
                f"Keras), received strides={strides!r} and dilation_rate={dilation_rate!r}"
            )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    def check_input(self, shape: tuple) -> None:
        if len(shape) != 4:
            raise ShapeError(
                f"{self.name}: expected a 4-D input (batch, height, width, channels), "
                f"received an input of shape {tuple(shape)}"
            )
        if self.kernel is not None and shape[-1] != self.kernel.shape[2]:
            raise ShapeError(
                f"{self.name}: expected an input with {self.kernel.shape[2]} channels (the layer "
                f"was built for input shape {self._build_shape}), received an input of shape "
                f"{tuple(shape)}"
            )
        spatial_output(
            self.name, shape, self.kernel_size, self.strides, self.padding, self.dilation_rate
        )

    def build(self, input_shape) -> None:
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ShapeError(f"{self.name}: the channel axis of the input must be known to build")
        self.kernel = self.add_weight(
            "kernel",
            (*self.kernel_size, in_channels, self.filters),
            self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.filters,), self.bias_initializer, regularizer=self.bias_regularizer
            )

    def call(self, x, training=None):
        if x.dtype != self.kernel.dtype:  # ints or float64 data into a float32 model
            x = ops.cast(x, self.kernel.dtype)
        if self.activation is activations.relu:  # fused into the op (one pass less)
            return conv2d(
                x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                _relu=True,
            )  # fmt: skip
        y = conv2d(x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate)
        return y if self.activation is activations.linear else self.activation(y)

    def compute_output_shape(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        self.check_input(shape)
        oh, ow = spatial_output(
            self.name, shape, self.kernel_size, self.strides, self.padding, self.dilation_rate
        )
        return (shape[0], oh, ow, self.filters)

    def explain(self, input_shape) -> str:
        """How the output size and the padding come about for an input of this shape
        ((height, width, channels) or with the batch axis first)."""
        shape = tuple(input_shape)
        channels = shape[-1]
        lines, (oh, ow) = explain_window(
            self.name, shape, self.kernel_size, self.strides, self.padding, self.dilation_rate
        )
        kh, kw = self.kernel_size
        head = (
            f"{self.name}: input {shape[-3:]} -> output ({oh}, {ow}, {self.filters}); kernel "
            f"{kh}x{kw}, strides {self.strides[0]}x{self.strides[1]}, dilation "
            f"{self.dilation_rate[0]}x{self.dilation_rate[1]}, padding '{self.padding}'"
        )
        n_kernel = math.prod(self.kernel_size) * channels * self.filters
        params = f"  parameters: {kh} * {kw} * {channels} * {self.filters} = {n_kernel} weights"
        if self.use_bias:
            params += f" + {self.filters} biases = {n_kernel + self.filters}"
        return "\n".join([head, *lines, params])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


Convolution2D = Conv2D
register(Conv2D, name="Convolution2D")
