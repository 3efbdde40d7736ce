"""Sequential: a plain stack of layers, each feeding the next (Keras's Sequential)."""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.autograd import Tensor, no_grad
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, call_accepts, register, training_mode
from ember.models.model import Model, _concrete


def _is_input_layer(layer) -> bool:
    from ember.layers.core import InputLayer

    return isinstance(layer, InputLayer)


@register
class Sequential(Model):
    """A linear stack of layers.

    With ``layers.Input(shape)`` first, every layer is built as it is added (shapes and
    parameter counts are known at once); without it, the model builds on its first batch.
    Masks flow along: a layer's ``compute_mask`` output (e.g. ``Embedding(mask_zero=True)``)
    reaches the next layers whose ``call`` takes ``mask``.

    Args:
        layers: the layers, in order (an ``Input`` may come first).
        name: the model's name.
        trainable: whether ``fit`` updates its weights.
    """

    def __init__(self, layers=None, name: str | None = None, trainable: bool = True, dtype=None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        self._input_layer = None
        self._stack: list = []
        self._trace = None  # output of the eager build (a batch of 1) when the input is known
        self._shapes: dict = {}
        self._mask_ok: dict = {}
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------ the stack
    @property
    def layers(self) -> list:
        """The layers in order (the Input, which holds no weights, is left out as in Keras)."""
        return list(self._stack)

    @property
    def input_shape(self):
        if self._input_layer is not None:
            return self._input_layer.shape
        return self._build_shape

    def add(self, layer: Layer) -> None:
        """Append a layer (an ``Input`` only as the first)."""
        if not isinstance(layer, Layer):
            raise EmberTypeError(
                f"{self.name}.add: expected a Layer, received {type(layer).__name__}"
            )
        if _is_input_layer(layer):
            if self._stack or self._input_layer is not None:
                raise EmberValueError(
                    f"{self.name}.add: an Input can only be the first layer of a Sequential "
                    f"(the model already has {len(self._stack)} layer(s))"
                )
            self._input_layer = layer
            dtype = layer.dtype or backend.float_dtype()
            self._trace = np.zeros(_concrete(layer.shape), dtype=dtype)
            self._build_dtype = str(np.dtype(dtype))
            self.built = True
            self._build_shape = (None, *layer.shape[1:])
            return
        if any(existing is layer for existing in self._stack):
            raise EmberValueError(f"{self.name}.add: layer {layer.name!r} is already in the model")
        if layer is self:
            raise EmberValueError(f"{self.name}.add: a model cannot contain itself")
        self._stack = [*self._stack, layer]
        if self._trace is not None:
            try:
                self._trace_layer(layer)
            except Exception:
                self._stack = self._stack[:-1]
                raise
        else:
            self.built = False  # a lazily built stack builds again (the new layer) on next call

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._stack:
            raise EmberValueError(f"{self.name}.pop: the model has no layers to remove")
        layer = self._stack[-1]
        self._stack = self._stack[:-1]
        self._shapes.pop(id(layer), None)
        self._mask_ok.pop(id(layer), None)
        if self._input_layer is not None:
            self._retrace()
        return layer

    def _retrace(self) -> None:
        inp = self._input_layer
        self._trace = np.zeros(_concrete(inp.shape), dtype=inp.dtype or backend.float_dtype())
        self._shapes = {}
        for layer in self._stack:
            self._trace_layer(layer)

    def _trace_layer(self, layer: Layer) -> None:
        """Build ``layer`` now by running it on the running trace (a batch of zeros)."""
        with no_grad(), training_mode(False):
            out = layer(self._trace)
        if isinstance(out, (list, tuple)):
            raise EmberValueError(
                f"{self.name}: layer {layer.name!r} returns {len(out)} outputs; every layer of "
                f"a Sequential must return one (use return_state=False, or subclass Model)"
            )
        self._trace = out.data if isinstance(out, Tensor) else np.asarray(out)
        self._shapes[id(layer)] = (None, *self._trace.shape[1:])

    def build(self, input_shape=None) -> None:
        if self._input_layer is not None:
            if input_shape is not None:
                self._input_layer.check_input(_concrete(input_shape))
            return
        if input_shape is None:
            raise EmberValueError(
                f"{self.name}.build: give input_shape (the model has no Input layer)"
            )
        super().build(input_shape)

    build._traces = True

    # ------------------------------------------------------------------ calling
    def check_input(self, shape: tuple) -> None:
        if self._input_layer is not None and isinstance(shape, tuple):
            self._input_layer.check_input(shape)

    def _accepts_mask(self, layer: Layer) -> bool:
        ok = self._mask_ok.get(id(layer))
        if ok is None:
            ok = self._mask_ok[id(layer)] = call_accepts(layer, "mask")
        return ok

    def call(self, x, training=None, mask=None):
        if not self._stack:
            raise EmberValueError(f"{self.name}: the model has no layers; add some first")
        for layer in self._stack:
            if mask is not None and self._accepts_mask(layer):
                y = layer(x, mask=mask)
            else:
                y = layer(x)  # training follows the mode this model's call pushed
            mask = layer.compute_mask(x, mask)
            x = y
        return x

    def compute_mask(self, x, mask=None):
        for layer in self._stack:
            mask = layer.compute_mask(x, mask)
            if mask is None:
                break
        return mask

    def _output_shapes(self) -> dict:
        if self._input_layer is not None and len(self._shapes) == len(self._stack):
            return dict(self._shapes)
        return super()._output_shapes()

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        from ember.models.saving import serialize_layer

        stack = ([self._input_layer] if self._input_layer is not None else []) + self._stack
        config = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            config["dtype"] = str(self.dtype)
        config["layers"] = [serialize_layer(layer) for layer in stack]
        return config

    @classmethod
    def from_config(cls, config: dict):
        from ember.models.saving import deserialize_layer

        config = dict(config)
        layer_configs = config.pop("layers", [])
        if not isinstance(layer_configs, list):
            raise ShapeError("Sequential.from_config: 'layers' must be a list of layer configs")
        layers = [deserialize_layer(c) for c in layer_configs]
        return cls(layers=layers, **config)
