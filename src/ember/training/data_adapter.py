"""Turn whatever fit/evaluate/predict receive into batches ``(x, y, sample_weight)``.

Accepted inputs (Keras's, plus ember's data classes):
- arrays: ``x`` (an ndarray, a Tensor, or a list/tuple of them for several inputs), ``y`` and
  ``sample_weight`` arrays; batched here, shuffled each pass from ``ember.backend.rng()``;
- an ``ember.data.Dataset`` (len + getitem of single examples), batched by a DataLoader;
- an ``ember.data.DataLoader`` (or any iterable with a len that yields batches);
- a Keras-style Sequence (len + getitem of *batches*, e.g. ImageDataGenerator's iterators);
- a Python generator / iterator of batches (read once: an epoch is until it stops, or
  ``steps_per_epoch`` batches).
A batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.
"""

from __future__ import annotations

import itertools
import types

import numpy as np

from ember import backend
from ember.autograd import Tensor
from ember.errors import EmberTypeError, EmberValueError, ShapeError


# ---------------------------------------------------------------------------------- helpers
def _ember_data_classes():
    """(Dataset, DataLoader) classes of ember.data, or (None, None) where it is absent."""
    try:
        from ember import data
    except ImportError:
        return None, None
    return getattr(data, "Dataset", None), getattr(data, "DataLoader", None)


def _is_array_like(x) -> bool:
    return isinstance(x, (np.ndarray, Tensor, np.generic, int, float))


def _to_array(a, who: str, what: str, floatx: bool = True):
    if a is None:
        return None
    if isinstance(a, Tensor):
        a = a.data
    a = np.asarray(a)
    if a.dtype == object:
        raise EmberTypeError(f"{who}: {what} must be a numeric array, received an object array")
    if floatx and a.dtype.kind == "f" and a.dtype != backend.float_dtype():
        a = a.astype(backend.float_dtype())  # once, not per batch
    return a


def as_inputs(x, who: str = "fit"):
    """An array, or a tuple of arrays for several inputs."""
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, (np.ndarray, Tensor)) for e in x):
        return tuple(_to_array(e, who, "x") for e in x)
    if isinstance(x, (list, tuple)) or _is_array_like(x):
        return _to_array(x, who, "x")
    return None


def _length(x) -> int:
    return len(x[0]) if isinstance(x, tuple) else len(x)


def take(x, sel):
    """Rows ``sel`` (a slice or an index array) of an array or a tuple of arrays."""
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(e[sel] for e in x)
    return x[sel]


def unpack(batch, who: str = "fit"):
    """``(x, y, sample_weight)`` from a batch given as x, (x,), (x, y) or (x, y, sw)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, dict):
        keys = ("x", "y", "sample_weight")
        if "x" not in batch:
            raise EmberValueError(
                f"{who}: a dict batch needs an 'x' entry, received keys {list(batch)}"
            )
        batch = tuple(batch.get(k) for k in keys)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) == 1:
        return batch[0], None, None
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return batch
    raise EmberValueError(
        f"{who}: a batch must be x, (x,), (x, y) or (x, y, sample_weight), received a tuple "
        f"of {len(batch)} items"
    )


def _batch_arrays(batch, who: str):
    x, y, sw = unpack(batch, who)
    if isinstance(x, (list, tuple)):
        x = tuple(_to_array(e, who, "x", floatx=False) for e in x)
    elif not isinstance(x, Tensor):
        x = _to_array(x, who, "x", floatx=False)
    return x, _to_array(y, who, "y"), _to_array(sw, who, "sample_weight")


# ---------------------------------------------------------------------------------- adapters
class Adapter:
    """One source of batches. ``batches()`` is one pass over the data (a fresh shuffle each
    time for shuffled arrays); ``steps`` is the number of batches per pass (None: unknown)."""

    steps: int | None = None
    reiterable = True
    num_samples: int | None = None

    def batches(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def first_batch(self):
        """The first batch, without losing it (used to build a model before training)."""
        for batch in self.batches():
            return batch
        return None


class ArrayAdapter(Adapter):
    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False, who="fit"):
        self.x = x
        self.y = _to_array(y, who, "y")
        self.sample_weight = _to_array(sample_weight, who, "sample_weight")
        n = _length(x)
        lengths = {"x": n}
        if isinstance(x, tuple):
            lengths.update({f"x[{i}]": len(e) for i, e in enumerate(x)})
        if self.y is not None:
            lengths["y"] = len(self.y)
        if self.sample_weight is not None:
            lengths["sample_weight"] = len(self.sample_weight)
        if len(set(lengths.values())) > 1:
            raise ShapeError(
                f"{who}: x, y and sample_weight must hold the same number of examples, "
                f"received {', '.join(f'{k}: {v}' for k, v in lengths.items())}"
            )
        if self.sample_weight is not None and self.sample_weight.ndim != 1:
            raise ShapeError(
                f"{who}: sample_weight must be 1-D (one weight per example), received shape "
                f"{self.sample_weight.shape}"
            )
        self.batch_size = batch_size
        self._shuffle_mode = shuffle  # False, True or "batch"
        self.num_samples = n
        self.steps = -(-n // batch_size) if n else 0

    def batches(self):
        n, bs = self.num_samples, self.batch_size
        if self._shuffle_mode == "batch":  # shuffle whole batches, keep their contents
            order = backend.rng().permutation(self.steps)
            for b in order:
                sel = slice(b * bs, min(n, (b + 1) * bs))
                yield take(self.x, sel), take(self.y, sel), take(self.sample_weight, sel)
            return
        perm = backend.rng().permutation(n) if self._shuffle_mode else None
        for start in range(0, n, bs):
            sel = slice(start, start + bs) if perm is None else perm[start : start + bs]
            yield take(self.x, sel), take(self.y, sel), take(self.sample_weight, sel)

    def first_batch(self):
        sel = slice(0, min(self.num_samples, self.batch_size))
        return take(self.x, sel), take(self.y, sel), take(self.sample_weight, sel)


class LoaderAdapter(Adapter):
    """A DataLoader, or any re-iterable object with a length that yields batches."""

    def __init__(self, loader, who="fit"):
        self.loader = loader
        self.who = who
        try:
            self.steps = len(loader)
        except TypeError:
            self.steps = None

    def batches(self):
        for batch in self.loader:
            yield _batch_arrays(batch, self.who)


class SequenceAdapter(Adapter):
    """len + getitem of batches (Keras's Sequence / PyDataset, ImageDataGenerator iterators)."""

    def __init__(self, seq, shuffle=False, who="fit"):
        self.seq = seq
        self.who = who
        self.shuffle = bool(shuffle)
        self.steps = len(seq)

    def batches(self):
        order = backend.rng().permutation(self.steps) if self.shuffle else range(self.steps)
        for i in order:
            yield _batch_arrays(self.seq[int(i)], self.who)
        if hasattr(self.seq, "on_epoch_end"):
            self.seq.on_epoch_end()

    def first_batch(self):
        return _batch_arrays(self.seq[0], self.who) if self.steps else None


class GeneratorAdapter(Adapter):
    """A generator or iterator: read once, in order."""

    reiterable = False

    def __init__(self, gen, who="fit"):
        self.it = iter(gen)
        self.who = who
        self.steps = None

    def batches(self):
        for batch in self.it:
            yield _batch_arrays(batch, self.who)

    def first_batch(self):
        try:
            batch = next(self.it)
        except StopIteration:
            return None
        self.it = itertools.chain([batch], self.it)
        return _batch_arrays(batch, self.who)


def adapt(x, y=None, sample_weight=None, batch_size=32, shuffle=False, who="fit") -> Adapter:
    """The Adapter for fit/evaluate/predict's ``x`` (see the module docstring)."""
    if isinstance(x, Adapter):
        return x
    Dataset, DataLoader = _ember_data_classes()
    if DataLoader is not None and isinstance(x, DataLoader):
        _no_extra(y, sample_weight, "a DataLoader", who)
        return LoaderAdapter(x, who)
    if Dataset is not None and isinstance(x, Dataset):
        _no_extra(y, sample_weight, "a Dataset", who)
        if DataLoader is None:  # pragma: no cover - ember.data always has both
            raise EmberTypeError(f"{who}: ember.data.DataLoader is unavailable")
        return LoaderAdapter(DataLoader(x, batch_size=batch_size, shuffle=bool(shuffle)), who)
    arrays = as_inputs(x, who)
    if arrays is not None:
        return ArrayAdapter(arrays, y, sample_weight, batch_size, shuffle, who)
    if x is None:
        raise EmberValueError(f"{who}: x is required")
    _no_extra(y, sample_weight, f"a {type(x).__name__}", who)
    if isinstance(x, (types.GeneratorType, map, filter, zip)) or hasattr(x, "__next__"):
        if hasattr(x, "__len__") and hasattr(x, "__getitem__"):
            return SequenceAdapter(x, shuffle, who)  # e.g. a Keras-style iterator object
        return GeneratorAdapter(x, who)
    if hasattr(x, "__len__") and hasattr(x, "__getitem__"):
        return SequenceAdapter(x, shuffle, who)
    if hasattr(x, "__iter__"):
        return LoaderAdapter(x, who) if hasattr(x, "__len__") else GeneratorAdapter(x, who)
    raise EmberTypeError(
        f"{who}: x must be an array, a Dataset, a DataLoader, a Sequence or a generator, "
        f"received {type(x).__name__}"
    )


def _no_extra(y, sample_weight, what: str, who: str) -> None:
    if y is not None or sample_weight is not None:
        raise EmberValueError(
            f"{who}: y and sample_weight must be None when x is {what} (its batches carry "
            f"them as (x, y) or (x, y, sample_weight))"
        )


class EpochIterator:
    """Epochs of batches from an Adapter: a whole pass each epoch, or ``steps_per_epoch``
    batches drawn from a stream that starts a new pass (new shuffle) when one runs out."""

    def __init__(self, adapter: Adapter, steps_per_epoch: int | None = None):
        self.adapter = adapter
        self.steps_per_epoch = steps_per_epoch
        self._it = None
        self.exhausted = False

    @property
    def steps(self) -> int | None:
        return self.steps_per_epoch or self.adapter.steps

    def epoch(self):
        if self.exhausted:
            return
        if self.steps_per_epoch is None:
            produced = 0
            for batch in self.adapter.batches():
                produced += 1
                yield batch
            if not produced or not self.adapter.reiterable:
                self.exhausted = not self.adapter.reiterable or not produced
            return
        produced = 0
        fresh_pass_empty = False
        while produced < self.steps_per_epoch:
            if self._it is None:
                self._it = self.adapter.batches()
                fresh_pass_empty = True
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                if fresh_pass_empty or not self.adapter.reiterable:
                    self.exhausted = True
                    return
                continue
            fresh_pass_empty = False
            produced += 1
            yield batch


# ---------------------------------------------------------------------------------- weights
def class_labels(y: np.ndarray) -> np.ndarray:
    """Integer class of each example: argmax of one-hot rows, the value of (N,) / (N, 1)."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] != 1:
        y = np.argmax(y, axis=-1)
    elif y.ndim > 1:
        y = y.reshape(len(y))
    return np.round(y).astype(np.int64)


def balanced_class_weight(y: np.ndarray) -> dict:
    """scikit-learn's "balanced" weights: n_samples / (n_classes * count(class))."""
    labels = class_labels(y)
    classes, counts = np.unique(labels, return_counts=True)
    return {int(c): len(labels) / (len(classes) * int(k)) for c, k in zip(classes, counts)}


def check_class_weight(class_weight, who: str = "fit") -> dict:
    if not hasattr(class_weight, "items"):
        raise EmberTypeError(
            f"{who}: class_weight must be None, 'balanced' or a dict {{class index: weight}}, "
            f"received {type(class_weight).__name__}"
        )
    out = {}
    for k, v in class_weight.items():
        try:
            out[int(k)] = float(v)
        except (TypeError, ValueError):
            raise EmberValueError(
                f"{who}: class_weight keys must be class indices and values numbers, "
                f"received {k!r}: {v!r}"
            ) from None
    return out


def class_weight_to_sample_weight(y: np.ndarray, class_weight: dict) -> np.ndarray:
    """Per-example weights from a class weight dict (classes missing from it weigh 1), as
    Keras's ``class_weight_to_sample_weights``."""
    labels = class_labels(y)
    lut_size = max(max(class_weight, default=0), int(labels.max(initial=0))) + 1
    lut = np.ones(lut_size, dtype=backend.float_dtype())
    for k, v in class_weight.items():
        if k >= 0:
            lut[k] = v
    return lut[np.clip(labels, 0, lut_size - 1)]
