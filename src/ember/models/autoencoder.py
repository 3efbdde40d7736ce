"""Autoencoder: an encoder that maps inputs to a latent vector and a decoder that maps it back,
trained to reproduce its input (Model subclass: compile / fit / save work as for any model).

    encoder = em.Sequential([layers.Input((64,)), layers.Dense(32, "relu"), layers.Dense(8)])
    decoder = em.Sequential([layers.Dense(32, "relu"), layers.Dense(64, "sigmoid")])
    ae = em.models.Autoencoder(encoder, decoder, noise=0.2, noise_type="masking")
    ae.compile("adam", "mse"); ae.fit(x, epochs=20)      # y defaults to x
    z = ae.encode(x)                                     # or ae.encoder.predict(x)

A denoising autoencoder (Vincent et al., 2008) corrupts its input during training only and is
scored against the clean input, so it must learn the structure of the data rather than the
identity; at inference (predict, evaluate, encode) the input is left alone.
"""

from __future__ import annotations

import math

import numpy as np

from ember import backend
from ember.autograd import Tensor
from ember.errors import EmberTypeError, EmberValueError
from ember.layers.base import Layer, as_tensor, register
from ember.models.model import Model

__all__ = ["Autoencoder"]

_NOISE_TYPES = ("gaussian", "masking")


@register
class Autoencoder(Model):
    """``call(x) = decoder(encoder(x))``; ``encoder`` alone maps inputs to latent vectors.

    Args:
        encoder: a Layer or Model mapping inputs to the latent representation.
        decoder: a Layer or Model mapping latent vectors back to the input's shape.
        noise: corruption level applied to the input in training only (0: a plain
            autoencoder): the standard deviation of added Gaussian noise, or the probability
            that an input element is set to zero ("masking").
        noise_type: "gaussian" or "masking".
        seed: an int gives the corruption its own generator; None draws from
            ``ember.backend.rng()``.
        name, trainable, dtype: as for every Model.

    ``fit(x)`` without ``y`` trains against the clean input ``x``.
    """

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        noise: float = 0.0,
        noise_type: str = "gaussian",
        seed: int | None = None,
        name: str | None = None,
        trainable: bool = True,
        dtype=None,
    ):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        for arg, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, Layer):
                raise EmberTypeError(
                    f"Autoencoder: {arg} must be an ember Layer or Model, received "
                    f"{type(value).__name__}"
                )
        if encoder is decoder:
            raise EmberValueError("Autoencoder: encoder and decoder must be different layers")
        bad = isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating))
        if bad or math.isnan(noise) or noise < 0:
            raise EmberValueError(
                f"Autoencoder: noise must be a number >= 0, received noise={noise!r}"
            )
        if noise_type not in _NOISE_TYPES:
            raise EmberValueError(
                f"Autoencoder: noise_type must be one of {_NOISE_TYPES}, received "
                f"noise_type={noise_type!r}"
            )
        if noise_type == "masking" and noise >= 1:
            raise EmberValueError(
                f"Autoencoder: a masking noise is a probability in [0, 1), received "
                f"noise={noise!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.noise = float(noise)
        self.noise_type = noise_type
        self.seed = seed
        self._gen = None if seed is None else np.random.default_rng(seed)

    # ------------------------------------------------------------------ forward
    def corrupt(self, x) -> Tensor:
        """``x`` with this autoencoder's training noise applied (a fresh draw each call)."""
        x = as_tensor(x)
        if not self.noise:
            return x
        gen = self._gen if self._gen is not None else backend.rng()
        dtype = x.dtype if x.dtype.kind == "f" else backend.float_dtype()
        if self.noise_type == "gaussian":
            # a constant (no gradient flows to the noise), in the input's dtype
            return x + (self.noise * gen.standard_normal(x.shape)).astype(dtype)
        keep = (gen.random(x.shape) >= self.noise).astype(dtype)
        return x * keep

    def call(self, x, training=None):
        if training and self.noise:
            x = self.corrupt(x)
        return self.decoder(self.encoder(x))

    def encode(self, x, batch_size: int | None = 256) -> np.ndarray:
        """Latent vectors of ``x`` (inference mode, no graph), as an array."""
        return self._run(self.encoder, x, batch_size)

    def decode(self, z, batch_size: int | None = 256) -> np.ndarray:
        """Decoder outputs for latent vectors ``z`` (inference mode, no graph), as an array."""
        return self._run(self.decoder, z, batch_size)

    @staticmethod
    def _run(layer: Layer, x, batch_size) -> np.ndarray:
        if isinstance(layer, Model):
            return layer.predict(x, batch_size=batch_size, verbose=0)
        from ember.autograd import no_grad
        from ember.layers.base import training_mode

        with no_grad(), training_mode(False):
            return layer(x).numpy()

    # ------------------------------------------------------------------ training
    @staticmethod
    def _is_array(x) -> bool:
        return isinstance(x, (np.ndarray, Tensor))

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """``Model.fit``; with array inputs and no ``y`` the target is ``x`` itself, and a
        ``validation_data`` array ``v`` means ``(v, v)``."""
        if y is None and self._is_array(x):
            y = x
        if self._is_array(validation_data):
            validation_data = (validation_data, validation_data)
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """``Model.evaluate``; with array inputs and no ``y`` the target is ``x``."""
        if y is None and self._is_array(x):
            y = x
        return super().evaluate(x, y, *args, **kwargs)

    def train_step(self, x, y=None, sample_weight=None, optimizer=None) -> float:
        return super().train_step(x, x if y is None else y, sample_weight, optimizer)

    def test_step(self, x, y=None, sample_weight=None) -> float:
        return super().test_step(x, x if y is None else y, sample_weight)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        from ember.models.saving import serialize_layer

        config = {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": serialize_layer(self.encoder),
            "decoder": serialize_layer(self.decoder),
            "noise": self.noise,
            "noise_type": self.noise_type,
            "seed": self.seed,
        }
        if self.dtype is not None:
            config["dtype"] = str(self.dtype)
        return config

    @classmethod
    def from_config(cls, config: dict):
        from ember.models.saving import deserialize_layer

        config = dict(config)
        config["encoder"] = deserialize_layer(config["encoder"])
        config["decoder"] = deserialize_layer(config["decoder"])
        return cls(**config)
