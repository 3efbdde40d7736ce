"""Saving and loading: one zip file per model, no pickle, no code.

A model file (``model.save(path)``, any extension; ``.ember`` by convention) is a zip holding:

- ``metadata.json``: ``{"format": "ember.model", "format_version": 1, "ember_version", ...}``;
- ``config.json``: ``{"class_name", "config", "build_input_shape", "build_input_dtype"}``: the
  class names come from the ``ember.layers.register`` registry, the configs from
  ``get_config()``, so ``load_model`` rebuilds the architecture by looking classes up by name;
- ``weights.npz``: every weight, ``{weight name: array}`` in ``model.weights`` order;
- when the model is compiled, ``compile.json`` (optimizer class + config, loss, metrics) and
  ``optimizer.npz`` (the optimizer's state: step count, moments, ...).

Files are written atomically: into a temporary file in the same folder, flushed and fsynced,
then renamed over ``path`` (``os.replace``), so a crash leaves the old file or the new one,
never half of one. Reading uses ``np.load(..., allow_pickle=False)`` and ``json``; a file that is
truncated, corrupt or not ember's raises ``ember.errors.FileFormatError`` naming the file.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from ember import backend
from ember.errors import EmberError, EmberValueError, FileFormatError, ShapeError

FORMAT = "ember.model"
BACKUP_FORMAT = "ember.backup"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".weights.npz"


# ---------------------------------------------------------------------------------- layers
def registered_name(cls: type) -> str:
    """The name a class is registered under (its ``__name__`` when it is not registered)."""
    from ember.layers.base import _REGISTRY

    for name, registered in _REGISTRY.items():
        if registered is cls:
            return name
    return cls.__name__


def serialize_layer(layer) -> dict:
    """``{"class_name": <registered name>, "config": layer.get_config()}``."""
    return {"class_name": registered_name(type(layer)), "config": layer.get_config()}


def _import_builtin_classes() -> None:
    """Classes register when their module is imported: load every module of ember's own layers
    and models, so that a fresh process can rebuild any of them by name."""
    import importlib

    from ember import layers

    modules = {f"ember.layers.{m}" for m in layers._WHERE.values()}
    modules |= {f"ember.models.{m}" for m in ("model", "sequential", "autoencoder", "rbm")}
    for module in sorted(modules):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("ember"):
                raise


def deserialize_layer(config: dict):
    """A layer (or model) from ``serialize_layer``'s output, by registered class name."""
    from ember.layers.base import get_registered

    if not isinstance(config, dict) or "class_name" not in config:
        raise EmberValueError(
            f"deserialize_layer: expected {{'class_name': ..., 'config': ...}}, received "
            f"{str(config)[:80]!r}"
        )
    name = str(config["class_name"])
    from ember.layers.base import _REGISTRY

    if name not in _REGISTRY:
        _import_builtin_classes()
    cls = get_registered(name)
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise EmberValueError(
            f"deserialize_layer: the config of {config['class_name']} must be a dict"
        )
    return cls.from_config(dict(inner))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.dtype):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not a JSON value")


def _dumps(obj, what: str) -> bytes:
    try:
        return json.dumps(obj, default=_json_default, indent=1).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EmberValueError(
            f"save: the {what} holds a value that is not JSON ({exc}); a layer's get_config() "
            f"must return JSON values only"
        ) from None


def _shape_to_json(shape):
    if shape is None:
        return None
    if isinstance(shape, list):
        return [list(s) for s in shape]
    return list(shape)


def _shape_from_json(shape):
    if shape is None:
        return None
    if shape and isinstance(shape[0], list):
        return [tuple(s) for s in shape]
    return tuple(shape)


def model_config(model) -> dict:
    return {
        "class_name": registered_name(type(model)),
        "config": model.get_config(),
        "build_input_shape": _shape_to_json(getattr(model, "_build_shape", None)),
        "build_input_dtype": getattr(model, "_build_dtype", None),
    }


# ---------------------------------------------------------------------------------- weights
def weight_names(params) -> list:
    """Unique names of weights (a repeated name gets ``#1``, ``#2``...; order is kept)."""
    names, seen = [], {}
    for i, p in enumerate(params):
        base = p.name or f"weight_{i}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}#{n}")
    return names


def weights_dict(model) -> dict:
    params = model.weights
    return {n: np.ascontiguousarray(p.data) for n, p in zip(weight_names(params), params)}


def assign_weights(model, arrays: dict, source: str) -> None:
    """Copy ``arrays`` into the model's weights: by name when the file's names are the model's
    names, else by order; every shape must match. Nothing is written unless all fit."""
    params = model.weights
    saved = list(arrays)
    if not params and saved:
        raise EmberValueError(
            f"{source}: holds {len(saved)} weights but model {model.name!r} has none yet; "
            f"build it first (call it on a batch, or model.build(input_shape))"
        )
    names = weight_names(params)
    if len(saved) != len(params):
        raise EmberValueError(
            f"{source}: holds {len(saved)} weights but model {model.name!r} has {len(params)}; "
            f"file: {_preview(saved)}; model: {_preview(names)}"
        )
    if set(saved) == set(names):
        pairs = [(p, arrays[n], n) for p, n in zip(params, names)]
    else:
        pairs = [(p, arrays[s], s) for p, s in zip(params, saved)]
    for p, a, n in pairs:
        if tuple(a.shape) != tuple(p.shape):
            raise ShapeError(
                f"{source}: weight {n!r} has shape {tuple(a.shape)} but the model's weight "
                f"{p.name!r} has shape {tuple(p.shape)}"
            )
    for p, a, _ in pairs:
        p.data[...] = a


def _preview(names: list, k: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return f"[{shown}{', ...' if len(names) > k else ''}]"


# ---------------------------------------------------------------------------------- files
def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: temp file in the same folder, fsync, rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; keep the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            # deflate everything, the weights at the fastest level: a stored .npz would show its
            # own zip records in the clear, and a truncated file could then pass for that .npz
            level = 1 if name.endswith(".npz") else 6
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    return buf.getvalue()


def _read_zip(path: str, required: tuple, what: str = "ember model file") -> dict:
    """{member name: bytes} of an ember zip, or a FileFormatError saying what is wrong."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise FileFormatError(f"{path}: is a folder, not an {what}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise FileFormatError(f"{path}: is empty, not an {what}")
    if head[:2] != b"PK":
        raise FileFormatError(
            f"{path}: not an {what} (it is not a zip archive; it starts with {head!r})"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            missing = [r for r in required if r not in names]
            if missing and names and all(n.endswith(".npy") for n in names):
                raise FileFormatError(
                    f"{path}: truncated or corrupt {what} (its table of contents is missing)"
                )
            if missing:
                raise FileFormatError(
                    f"{path}: not an {what}: it lacks {', '.join(missing)} "
                    f"(it holds {_preview(names)})"
                )
            return {n: zf.read(n) for n in names}
    except FileFormatError:
        raise
    except zipfile.BadZipFile as exc:
        raise FileFormatError(f"{path}: truncated or corrupt {what} ({exc})") from None
    except (zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise FileFormatError(f"{path}: corrupt {what} ({type(exc).__name__}: {exc})") from None


def _read_json(members: dict, name: str, path: str):
    try:
        return json.loads(members[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: {name} is not valid JSON ({exc})") from None


def _read_npz(data: bytes, path: str, name: str) -> dict:
    """{key: array} from npz bytes, without pickle."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError, KeyError) as exc:
        raise FileFormatError(
            f"{path}: {name} is damaged or not a plain array file ({type(exc).__name__}: {exc})"
        ) from None


def _check_metadata(members: dict, path: str, expected: str) -> dict:
    meta = _read_json(members, "metadata.json", path)
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != expected:
        raise FileFormatError(
            f"{path}: not an {expected.replace('.', ' ')} file (its metadata says format={fmt!r})"
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: format_version {version!r} is not one this ember ({FORMAT_VERSION}) reads"
        )
    return meta


def _metadata(fmt: str) -> bytes:
    import ember

    return _dumps(
        {
            "format": fmt,
            "format_version": FORMAT_VERSION,
            "ember_version": ember.__version__,
            "floatx": backend.floatx(),
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
        "metadata",
    )


# ---------------------------------------------------------------------------------- compile
def _serialize_loss(model):
    if model.loss is None or isinstance(model.loss, str):
        return model.loss
    from ember import losses

    try:
        return losses.serialize(model.compiled_loss)
    except EmberError:
        return None


def _serialize_metric(ident, metric):
    if isinstance(ident, str):
        return ident
    get_config = getattr(metric, "get_config", None)
    if get_config is None:
        return None
    return {"class_name": type(metric).__name__, "config": get_config()}


def compile_config(model) -> dict:
    from ember import optimizers

    metrics = [
        _serialize_metric(ident, m)
        for ident, (_, m) in zip(model._metric_ids, model._compiled_metrics)
    ]
    return {
        "optimizer": optimizers.serialize(model.optimizer),
        "loss": _serialize_loss(model),
        "metrics": metrics,
    }


def _compile_from_config(model, cc: dict, path: str) -> bool:
    from ember import losses, metrics, optimizers

    try:
        optimizer = optimizers.deserialize(cc["optimizer"])
        loss = cc.get("loss")
        if isinstance(loss, dict):
            loss = losses.deserialize(loss)
        metric_list = []
        for m in cc.get("metrics") or []:
            if m is None:
                continue
            metric_list.append(metrics.get(m) if isinstance(m, dict) else m)
        model.compile(optimizer=optimizer, loss=loss, metrics=metric_list)
    except (EmberError, KeyError, TypeError) as exc:
        warnings.warn(
            f"{path}: the model was loaded without its compile settings "
            f"({type(exc).__name__}: {exc}); call model.compile(...) before training",
            stacklevel=3,
        )
        return False
    return True


# ---------------------------------------------------------------------------------- models
def save_model(model, path, overwrite: bool = True) -> None:
    """Write ``model`` to one file at ``path`` (see the module docstring)."""
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save: {path} exists (pass overwrite=True to replace it)")
    members = {
        "metadata.json": _metadata(FORMAT),
        "config.json": _dumps(model_config(model), "model config"),
        "weights.npz": _npz_bytes(weights_dict(model)),
    }
    if getattr(model, "compiled", False) and model.optimizer is not None:
        members["compile.json"] = _dumps(compile_config(model), "compile config")
        members["optimizer.npz"] = _npz_bytes(model.optimizer.get_state())
    atomic_write(path, _zip_bytes(members))


def load_model(path, compile: bool = True):  # noqa: A002 (Keras's argument name)
    """Rebuild a model saved by ``model.save(path)``: architecture from the registry by class
    name, then weights, then (``compile=True``) optimizer, loss, metrics and optimizer state.

    Raises ``FileFormatError`` for a truncated, corrupt or foreign file.
    """
    from ember.models.model import Model

    path = os.fspath(path)
    members = _read_zip(path, ("metadata.json", "config.json", "weights.npz"))
    _check_metadata(members, path, FORMAT)
    cfg = _read_json(members, "config.json", path)
    if not isinstance(cfg, dict) or "class_name" not in cfg:
        raise FileFormatError(f"{path}: config.json has no 'class_name'")
    try:
        model = deserialize_layer({"class_name": cfg["class_name"], "config": cfg.get("config")})
    except (TypeError, KeyError) as exc:
        raise FileFormatError(
            f"{path}: config.json does not rebuild a {cfg['class_name']} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    except EmberValueError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    if not isinstance(model, Model):
        raise FileFormatError(
            f"{path}: config.json describes a {type(model).__name__}, not a model"
        )
    shape = _shape_from_json(cfg.get("build_input_shape"))
    if shape is not None and not _has_all_weights(model):
        if cfg.get("build_input_dtype"):
            model._build_dtype = cfg["build_input_dtype"]
        model.build(shape)
    assign_weights(model, _read_npz(members["weights.npz"], path, "weights.npz"), path)
    if compile and "compile.json" in members:
        if _compile_from_config(model, _read_json(members, "compile.json", path), path):
            if "optimizer.npz" in members:
                state = _read_npz(members["optimizer.npz"], path, "optimizer.npz")
                try:
                    model.optimizer.set_state(state)
                except EmberError as exc:
                    raise FileFormatError(f"{path}: optimizer.npz does not fit ({exc})") from None
    return model


def _has_all_weights(model) -> bool:
    return bool(model.built) and (
        getattr(model, "_input_layer", None) is not None or bool(model.weights)
    )


def save_weights(model, path, overwrite: bool = True) -> None:
    """Write the weights alone (``{name: array}`` npz) to ``path``, which must end in
    ``.weights.npz``."""
    path = os.fspath(path)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise EmberValueError(
            f"save_weights: the path must end in {WEIGHTS_SUFFIX!r}, received {path!r} "
            f"(use model.save(path) for a whole model)"
        )
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save_weights: {path} exists (pass overwrite=True to replace it)")
    if not model.weights:
        raise EmberValueError(
            f"save_weights: model {model.name!r} has no weights yet; build it first"
        )
    atomic_write(path, _npz_bytes(weights_dict(model)))


def load_weights(model, path) -> None:
    """Load a ``.weights.npz`` file (or the weights of a model file) into ``model``."""
    path = os.fspath(path)
    members = _read_zip(path, (), what="ember weights file")
    if "weights.npz" in members:  # a whole model file
        arrays = _read_npz(members["weights.npz"], path, "weights.npz")
    elif members and all(n.endswith(".npy") for n in members):
        with open(path, "rb") as f:
            arrays = _read_npz(f.read(), path, "the weights")
    else:
        raise FileFormatError(
            f"{path}: not an ember weights file (it holds {_preview(list(members))}, not arrays)"
        )
    assign_weights(model, arrays, path)


# ---------------------------------------------------------------------------------- backups
def _generators(model) -> dict:
    """{"<position>:<class>.<attribute>": Generator} for layers that keep a seeded generator
    of their own (Dropout(seed=...)): their state is part of a resumable training state. Keyed
    by position, not name: a rebuilt model's automatic layer names may differ."""
    from ember.training.hooks import walk_layers

    out = {}
    for i, layer in enumerate([model, *walk_layers(model)]):
        for attr, value in vars(layer).items():
            if isinstance(value, np.random.Generator):
                out[f"{i}:{type(layer).__name__}.{attr}"] = value
    return out


def rename_optimizer_state(state: dict, saved_names: list, model) -> dict:
    """Optimizer state is keyed ``"<weight name>/<slot>"``; a model rebuilt by code may name its
    weights differently (automatic names count up): map the saved names onto the model's
    weights by position."""
    names = [p.name for p in model.weights]
    if len(saved_names) != len(names) or saved_names == names:
        return state
    mapping = dict(zip(saved_names, names))
    out = {}
    for key, value in state.items():
        weight, sep, slot = str(key).rpartition("/")
        out[f"{mapping.get(weight, weight)}{sep}{slot}" if sep else key] = value
    return out


def save_training_state(model, path, epoch: int) -> None:
    """BackupAndRestore's file: weights, optimizer state, random states and the epoch."""
    state = {
        "epoch": int(epoch),
        "weight_names": [p.name for p in model.weights],
        "rng": backend.get_rng_state(),
        "generators": {k: g.bit_generator.state for k, g in _generators(model).items()},
    }
    members = {
        "metadata.json": _metadata(BACKUP_FORMAT),
        "state.json": _dumps(state, "training state"),
        "weights.npz": _npz_bytes(weights_dict(model)),
    }
    if getattr(model, "optimizer", None) is not None:
        members["optimizer.npz"] = _npz_bytes(model.optimizer.get_state())
    atomic_write(os.fspath(path), _zip_bytes(members))


def restore_training_state(model, path) -> int:
    """Load a backup into ``model`` (and its optimizer and the random generators); returns the
    epoch it was taken after."""
    path = os.fspath(path)
    members = _read_zip(path, ("metadata.json", "state.json", "weights.npz"), "ember backup file")
    _check_metadata(members, path, BACKUP_FORMAT)
    state = _read_json(members, "state.json", path)
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise FileFormatError(f"{path}: state.json has no epoch")
    assign_weights(model, _read_npz(members["weights.npz"], path, "weights.npz"), path)
    if "optimizer.npz" in members:
        if getattr(model, "optimizer", None) is None:
            raise EmberValueError(f"{path}: holds optimizer state but the model is not compiled")
        opt_state = _read_npz(members["optimizer.npz"], path, "optimizer.npz")
        saved_names = state.get("weight_names")
        if isinstance(saved_names, list):
            opt_state = rename_optimizer_state(opt_state, saved_names, model)
        model.optimizer.set_state(opt_state)
    try:
        backend.set_rng_state(state["rng"])
        gens = _generators(model)
        for key, gstate in (state.get("generators") or {}).items():
            if key in gens:
                gens[key].bit_generator.state = gstate
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: the random state does not load ({exc})") from None
    return state["epoch"]


__all__ = [
    "FileFormatError", "load_model", "load_weights", "save_model", "save_weights",
    "serialize_layer", "deserialize_layer",
]  # fmt: skip
