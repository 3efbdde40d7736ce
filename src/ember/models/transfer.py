"""Transfer learning: freeze a pre-trained base, put a new head on it, fine-tune with a lower
rate for the base, and load weights by layer name (from an ember file or Keras-layout arrays).

    base = em.load_model("digits_0_4.ember")
    freeze(base)                                          # every layer: trainable=False
    model = replace_head(base, [layers.Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_new, y_new, epochs=5)                     # only the head learns
    unfreeze(model, from_layer="dense_1")                 # then fine-tune the top of the base
    opt = em.optimizers.Adam(1e-4, lr_multipliers=lr_multipliers(model, 0.1, up_to="dense_1"))

A frozen layer's weights have ``requires_grad=False``: no op records a graph for them, so the
backward pass computes no weight gradient for them, and none at all below the lowest trainable
layer. A frozen BatchNormalization normalizes with its moving statistics even in training and
never updates them (Keras's rule), so a frozen base is bit-for-bit unchanged by fine-tuning.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ember.errors import EmberTypeError, EmberValueError, FileFormatError, ShapeError
from ember.layers.base import Layer

__all__ = ["freeze", "unfreeze", "replace_head", "lr_multipliers", "load_weights_by_name"]


def _layers(model) -> list:
    layers = getattr(model, "layers", None)
    if layers is None:
        raise EmberTypeError(f"expected a Model (with .layers), received {type(model).__name__}")
    return list(layers)


def _index(model, layer, arg: str) -> int:
    """Position in ``model.layers`` of a layer given as an index, a name or the Layer."""
    layers = _layers(model)
    if isinstance(layer, bool):
        raise EmberTypeError(f"{arg} must be a layer, its name or its index, received {layer!r}")
    if isinstance(layer, (int, np.integer)):
        i = int(layer) + (len(layers) if layer < 0 else 0)
        if not 0 <= i < len(layers):
            raise EmberValueError(
                f"{arg}={layer} is out of range: {model.name} has {len(layers)} layers"
            )
        return i
    for i, candidate in enumerate(layers):
        if candidate is layer or (isinstance(layer, str) and candidate.name == layer):
            return i
    shown = layer.name if isinstance(layer, Layer) else layer
    raise EmberValueError(
        f"{arg}={shown!r} is not a layer of {model.name}; its layers are "
        f"{[lay.name for lay in layers]}"
    )


def freeze(model, up_to=None) -> list:
    """Make the layers of ``model`` untrainable, from the first up to and including ``up_to``
    (a layer, its name or its index; None: every layer). Returns the frozen layers."""
    layers = _layers(model)
    stop = len(layers) - 1 if up_to is None else _index(model, up_to, "up_to")
    frozen = layers[: stop + 1]
    for layer in frozen:
        layer.trainable = False
    return frozen


def unfreeze(model, from_layer=None) -> list:
    """Make the layers of ``model`` trainable again, from ``from_layer`` (a layer, its name or
    its index; None: the first) to the last. Returns the unfrozen layers."""
    layers = _layers(model)
    start = 0 if from_layer is None else _index(model, from_layer, "from_layer")
    if not model.trainable:
        model.trainable = True  # a frozen model would hide its layers' weights from fit
        for layer in layers[:start]:
            layer.trainable = False
    thawed = layers[start:]
    for layer in thawed:
        layer.trainable = True
    return thawed


def replace_head(model, new_layers, remove: int = 1, name: str | None = None):
    """A new Sequential made of ``model``'s layers without its last ``remove`` ones, followed by
    ``new_layers``. The layers are shared, not copied: the base keeps its weights and its
    trainable flags. A model that is not a Sequential can only be extended (``remove=0``): it
    becomes the first layer of the new model.
    """
    from ember.layers.core import InputLayer
    from ember.models.sequential import Sequential

    if isinstance(new_layers, Layer):
        new_layers = [new_layers]
    new_layers = list(new_layers)
    for layer in new_layers:
        if not isinstance(layer, Layer):
            raise EmberTypeError(
                f"replace_head: new_layers must be ember Layers, received {type(layer).__name__}"
            )
    if isinstance(remove, bool) or not isinstance(remove, (int, np.integer)) or remove < 0:
        raise EmberValueError(f"replace_head: remove must be an int >= 0, received {remove!r}")
    if not isinstance(model, Sequential):
        if remove:
            raise EmberTypeError(
                f"replace_head: only a Sequential's layers can be removed; {model.name} is a "
                f"{type(model).__name__}: pass remove=0 to put the new layers on top of it"
            )
        return Sequential([model, *new_layers], name=name)
    layers = _layers(model)
    if remove > len(layers):
        raise EmberValueError(
            f"replace_head: remove={remove} but {model.name} has only {len(layers)} layers"
        )
    base = layers[: len(layers) - remove]
    stack = []
    inp = getattr(model, "_input_layer", None)
    if inp is not None:
        stack.append(InputLayer(shape=inp.shape[1:], dtype=inp.dtype))
    return Sequential([*stack, *base, *new_layers], name=name)


def lr_multipliers(model, factor: float, up_to=None, layers=None) -> dict:
    """``{weight name: factor}`` for the weights of the layers up to and including ``up_to``
    (None: every layer), or of the given ``layers``: pass it as an optimizer's
    ``lr_multipliers`` to train those layers at ``factor`` times the rate (e.g. 0.1 for a
    pre-trained base under a new head)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 0:
        raise EmberValueError(f"lr_multipliers: factor must be a number >= 0, received {factor!r}")
    if layers is None:
        all_layers = _layers(model)
        stop = len(all_layers) - 1 if up_to is None else _index(model, up_to, "up_to")
        layers = all_layers[: stop + 1]
    elif up_to is not None:
        raise EmberValueError("lr_multipliers: give up_to or layers, not both")
    out = {}
    for layer in layers:
        for p in layer.weights:
            if p.name:
                out[p.name] = float(factor)
    return out


# ---------------------------------------------------------------------------------- loading
def _read_arrays(path: str) -> dict:
    """{key: array} from an ember model file (its weights), an ember ``.weights.npz`` or any
    plain ``.npz`` (never unpickled)."""
    from ember.models import saving

    if not os.path.exists(path):
        raise FileNotFoundError(f"load_weights_by_name: no such file: {path}")
    members = saving._read_zip(path, (), what="ember model file or .npz")
    if "weights.npz" in members:  # a whole ember model file
        return saving._read_npz(members["weights.npz"], path, "weights.npz")
    if members and all(n.endswith(".npy") for n in members):
        with open(path, "rb") as f:
            return saving._read_npz(f.read(), path, "the arrays")
    raise FileFormatError(
        f"{path}: neither an ember model file nor an .npz of arrays (it holds "
        f"{sorted(members)[:6]})"
    )


_INDEX = re.compile(r"^(?:param_|weight_)?(\d+)$")


def _group_by_layer(arrays: dict) -> dict:
    """{layer name: [(weight name or index, array), ...]} from keys such as ``dense/kernel``
    (ember), ``dense/dense/kernel:0`` or ``dense/kernel:0`` (Keras h5 paths) or ``dense/0``
    (the index in the layer's get_weights order)."""
    groups: dict[str, list] = {}
    for key, array in arrays.items():
        clean = re.sub(r":\d+$", "", key.split("#")[0])
        parts = [p for p in clean.split("/") if p]
        if len(parts) < 2:
            raise FileFormatError(
                f"load_weights_by_name: array key {key!r} does not name a layer and a weight "
                f"('<layer>/<weight>' or '<layer>/<index>')"
            )
        layer, weight = parts[0], parts[-1]
        m = _INDEX.match(weight)
        groups.setdefault(layer, []).append((int(m.group(1)) if m else weight, array))
    return groups


def _match(layer: Layer, entries: list) -> list:
    """[(param, array)] for one layer: by weight name, else by index, else by order."""
    own = list(layer._params.items())  # (short name, Parameter), in get_weights order
    names = {n for n, _ in own}
    if all(isinstance(k, str) and k in names for k, _ in entries):
        by_name = dict(entries)
        return [(p, by_name[n]) for n, p in own if n in by_name]
    if all(isinstance(k, int) for k, _ in entries):
        entries = sorted(entries, key=lambda e: e[0])
        if [k for k, _ in entries] != list(range(len(entries))) or len(entries) > len(own):
            raise FileFormatError(
                f"load_weights_by_name: layer {layer.name!r}: indices "
                f"{[k for k, _ in entries]} do not fit its {len(own)} weights"
            )
        return [(p, a) for (_, p), (_, a) in zip(own, entries)]
    if len(entries) != len(own):
        raise FileFormatError(
            f"load_weights_by_name: layer {layer.name!r} has weights "
            f"{[n for n, _ in own]} but the file holds {[k for k, _ in entries]}"
        )
    return [(p, a) for (_, p), (_, a) in zip(own, entries)]


def load_weights_by_name(model, path, skip_mismatch: bool = False) -> dict:
    """Copy weights into the layers of ``model`` whose names appear in the file at ``path``.

    ``path`` may be an ember model file, an ember ``.weights.npz`` or an ``.npz`` of arrays in
    Keras layout, keyed ``<layer>/<weight>`` (``dense/kernel``; Keras h5-style paths such as
    ``dense/dense/kernel:0`` work too) or ``<layer>/<index>`` in ``get_weights`` order (ember's
    shapes and orders are Keras 3's). Layers of the model absent from the file are left alone,
    layers of the file absent from the model are ignored: this is how a pre-trained base is
    loaded into a model with a different head.

    Args:
        model: a built model (call it on a batch or build it first).
        path: the file.
        skip_mismatch: skip layers whose shapes differ instead of raising ShapeError.

    Returns:
        ``{"loaded": [layer names], "skipped": [layer names with other shapes],
        "not_in_file": [model layers], "not_in_model": [file layers]}``.
    """
    from ember.training.hooks import walk_layers

    path = os.fspath(path)
    if not getattr(model, "built", False) or not model.weights:
        raise EmberValueError(
            f"load_weights_by_name: {getattr(model, 'name', model)!r} has no weights yet; "
            f"build it first (call it on a batch, or model.build(input_shape))"
        )
    groups = _group_by_layer(_read_arrays(path))
    report = {"loaded": [], "skipped": [], "not_in_file": [], "not_in_model": []}
    plan = []
    owners = [lay for lay in walk_layers(model) if lay._params]
    for layer in owners:
        if layer.name not in groups:
            report["not_in_file"].append(layer.name)
            continue
        pairs = _match(layer, groups[layer.name])
        bad = [(p, a) for p, a in pairs if tuple(a.shape) != tuple(p.shape)]
        if bad:
            p, a = bad[0]
            if not skip_mismatch:
                raise ShapeError(
                    f"load_weights_by_name: layer {layer.name!r}: weight {p.name!r} has shape "
                    f"{tuple(p.shape)} but {path} holds shape {tuple(a.shape)} (pass "
                    f"skip_mismatch=True to leave this layer as it is)"
                )
            report["skipped"].append(layer.name)
            continue
        plan.append((layer, pairs))
    for layer, pairs in plan:  # nothing is written unless every loaded layer fits
        for p, a in pairs:
            p.data[...] = a
        report["loaded"].append(layer.name)
    names = {lay.name for lay in owners}
    report["not_in_model"] = [n for n in groups if n not in names]
    return report
