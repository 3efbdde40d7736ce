"""UpSampling2D: nearest-neighbour upsampling of NHWC images (Keras's layer), the usual way back
up in a convolutional decoder (upsample, then convolve: no checkerboard artefacts)."""

from __future__ import annotations

from ember.errors import EmberValueError, ShapeError
from ember.layers.base import Layer, register
from ember.layers.conv import check_data_format
from ember.ops.conv import as_pair
from ember.ops.upsample import upsample2d


@register
class UpSampling2D(Layer):
    """Repeat each pixel ``size`` times along height and width.

    Args:
        size: an int or a pair (rows, cols) of upsampling factors.
        data_format: only "channels_last" (NHWC) or None.
        interpolation: only "nearest".
    """

    def __init__(self, size=2, data_format=None, interpolation: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        check_data_format(self.name, data_format)
        self.size = as_pair(size, "size", self.name)
        if interpolation != "nearest":
            raise EmberValueError(
                f"{self.name}: interpolation must be 'nearest', received "
                f"interpolation={interpolation!r}"
            )
        self.interpolation = interpolation

    def check_input(self, shape: tuple) -> None:
        if len(shape) != 4:
            raise ShapeError(
                f"{self.name}: expected a 4-D input (batch, height, width, channels), received "
                f"an input of shape {tuple(shape)}"
            )

    def call(self, x, training=None):
        return upsample2d(x, self.size)

    def compute_output_shape(self, input_shape) -> tuple:
        n, h, w, c = input_shape
        sh, sw = self.size
        return (n, None if h is None else h * sh, None if w is None else w * sw, c)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(size=list(self.size), interpolation=self.interpolation)
        return config
