"""Nearest-neighbour upsampling of NHWC images (the decoder half of a convolutional
autoencoder): each pixel becomes an (sh, sw) block."""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.errors import ShapeError
from ember.ops.conv import as_pair


class UpSample2D(Function):
    """y[n, i, j, c] = x[n, i // sh, j // sw, c];  dx = dy summed over each (sh, sw) block"""

    def forward(self, x, size=(2, 2)):
        n, h, w, c = x.shape
        sh, sw = size
        self.shape = (n, h, sh, w, sw, c)
        # (N, H, 1, W, 1, C) broadcast to (N, H, sh, W, sw, C): one copy, in the reshape
        return np.broadcast_to(x[:, :, None, :, None, :], self.shape).reshape(n, h * sh, w * sw, c)

    def backward(self, g):
        return g.reshape(self.shape).sum(axis=(2, 4))


def upsample2d(x, size=2):
    """Repeat each pixel of NHWC ``x`` ``size`` times along height and width (nearest)."""
    size = as_pair(size, "size", "upsample2d")
    if np.ndim(getattr(x, "data", x)) != 4:
        raise ShapeError(
            f"upsample2d: expected a 4-D input (batch, height, width, channels), received an "
            f"input of shape {np.shape(getattr(x, 'data', x))}"
        )
    return UpSample2D.apply(x, size=size)
