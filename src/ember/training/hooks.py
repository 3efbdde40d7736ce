"""Looking inside a model without changing it: its weight-owning layers, its ReLU layers, and
the outputs of chosen layers during one call (for summary, GradientMonitor, DeadNeuronMonitor).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np


def walk_layers(model) -> list:
    """Every layer under ``model`` (depth first, each once), the model excluded."""
    out, seen = [], {id(model)}
    stack = list(reversed(model.sublayers))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        stack.extend(reversed(layer.sublayers))
    return out


def leaf_layers(model) -> list:
    """The layers that own weights themselves (a Dense, a Conv2D; not a container)."""
    return [layer for layer in walk_layers(model) if layer._params]


def _is_relu(layer) -> bool:
    from ember import activations

    if type(layer).__name__ == "ReLU":
        return not _config(layer).get("negative_slope")  # leaky units never die
    act = getattr(layer, "activation", None)
    if act is None or isinstance(act, type):
        return False
    try:
        return activations.serialize(act) == "relu"
    except Exception:  # a custom activation object that cannot be named
        return False


def _config(layer) -> dict:
    try:
        return layer.get_config()
    except Exception:  # get_config of a half-built custom layer
        return {}


def relu_layers(model) -> list:
    """Layers whose output is a ReLU: ReLU layers, Activation("relu"), Dense/Conv2D(...,
    activation="relu")."""
    return [layer for layer in walk_layers(model) if _is_relu(layer)]


@contextlib.contextmanager
def record_outputs(layers):
    """Within the block, every call of one of ``layers`` stores its output array in the
    yielded dict under ``id(layer)`` (the last call wins). The layers are restored after."""
    outputs: dict = {}
    patched = []

    def recorder(original, key):
        @functools.wraps(original)
        def call(*args, **kwargs):
            y = original(*args, **kwargs)
            first = y[0] if isinstance(y, (list, tuple)) else y
            outputs[key] = np.asarray(getattr(first, "data", first))
            return y

        return call

    for layer in layers:
        if "call" in layer.__dict__:  # already patched (the same layer listed twice)
            continue
        object.__setattr__(layer, "call", recorder(layer.call, id(layer)))
        patched.append(layer)
    try:
        yield outputs
    finally:
        for layer in patched:
            layer.__dict__.pop("call", None)
