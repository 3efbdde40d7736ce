"""Datasets: what a DataLoader draws samples from.

A ``Dataset`` is anything with ``len`` and ``__getitem__`` returning one sample (an array, or a
tuple ``(x, y)`` / ``(x, y, sample_weight)``). ``ArrayDataset`` wraps in-memory arrays and also
offers ``get_batch`` so a loader gathers a whole batch with one fancy index instead of stacking
samples one by one. ``BatchSequence`` is the Keras-style batch provider (``len`` = batches per
epoch, ``__getitem__(i)`` = batch ``i``, ``on_epoch_end``) that image iterators build on.
"""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.errors import EmberTypeError, EmberValueError, ShapeError


def to_batch_array(a) -> np.ndarray:
    """An array for a batch: floats take the current floatx (float32), other dtypes are kept."""
    if hasattr(a, "data") and not isinstance(a, np.ndarray):  # an ember Tensor
        a = a.data
    a = np.asarray(a)
    if a.dtype.kind == "f" and a.dtype != backend.float_dtype():
        a = a.astype(backend.float_dtype())
    return a


def collate(samples: list):
    """Stack samples into a batch: a list of arrays gives one array; a list of tuples gives a
    tuple of arrays, field by field. Samples that are None (skipped, e.g. an unreadable image)
    are left out."""
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    first = samples[0]
    if isinstance(first, (tuple, list)):
        width = len(first)
        if any(not isinstance(s, (tuple, list)) or len(s) != width for s in samples):
            raise EmberValueError(
                "collate: every sample must have the same structure (e.g. all (x, y) pairs)"
            )
        return tuple(_stack([s[k] for s in samples], k) for k in range(width))
    return _stack(samples, 0)


def _stack(items: list, field: int) -> np.ndarray:
    try:
        return to_batch_array(np.stack([to_batch_array(i) for i in items]))
    except ValueError:
        shapes = sorted({np.shape(i) for i in items}, key=str)
        raise ShapeError(
            f"collate: samples of different shapes cannot form a batch (field {field}: "
            f"{shapes[:4]}); pad them first (e.g. ember.data.text.pad_sequences) or give the "
            f"loader a transform that resizes"
        ) from None


class Dataset:
    """Base class: a sized collection of samples. Subclasses define ``__len__`` and
    ``__getitem__(i)``; returning None from ``__getitem__`` skips that sample."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def get_batch(self, indices):
        """The samples at ``indices`` stacked into one batch (override for a faster path)."""
        return collate([self[int(i)] for i in indices])


class ArrayDataset(Dataset):
    """Samples taken along the first axis of in-memory arrays.

    Args:
        x: the inputs, an array (or anything ``numpy.asarray`` takes) with the samples first.
        y: the targets (same first dimension), or None.
        sample_weight: per-sample weights, or None.

    ``ds[i]`` is ``x[i]``, ``(x[i], y[i])`` or ``(x[i], y[i], w[i])``.
    """

    def __init__(self, x, y=None, sample_weight=None):
        self.x = _as_array("x", x)
        self.y = None if y is None else _as_array("y", y)
        self.sample_weight = (
            None if sample_weight is None else _as_array("sample_weight", sample_weight)
        )
        if self.sample_weight is not None and self.y is None:
            raise EmberValueError("ArrayDataset: sample_weight needs y")
        n = len(self.x)
        for name, a in (("y", self.y), ("sample_weight", self.sample_weight)):
            if a is not None and len(a) != n:
                raise ShapeError(
                    f"ArrayDataset: x has {n} samples but {name} has {len(a)} "
                    f"(x shape {self.x.shape}, {name} shape {a.shape})"
                )

    def __len__(self) -> int:
        return len(self.x)

    def _pick(self, index):
        if self.y is None:
            return self.x[index]
        if self.sample_weight is None:
            return self.x[index], self.y[index]
        return self.x[index], self.y[index], self.sample_weight[index]

    def __getitem__(self, index):
        return self._pick(index)

    def get_batch(self, indices):
        out = self._pick(np.asarray(indices, dtype=np.int64))
        if isinstance(out, tuple):
            return tuple(to_batch_array(a) for a in out)
        return to_batch_array(out)


def _as_array(name: str, a) -> np.ndarray:
    if hasattr(a, "data") and not isinstance(a, np.ndarray):
        a = a.data
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise ShapeError(f"ArrayDataset: {name} needs a first (sample) axis, received a scalar")
    return arr


class BatchSequence:
    """Keras-style batch provider (Keras's ``PyDataset`` / ``Sequence``).

    Subclasses define ``__len__`` (batches per epoch) and ``__getitem__(i)`` (batch ``i``), and
    may define ``on_epoch_end`` (e.g. to reshuffle). Iterating yields ONE epoch, then calls
    ``on_epoch_end``; ``next(seq)`` instead cycles forever over epochs, as Keras's legacy
    iterators do (``for x, y in datagen.flow(...)`` with a ``break``).
    """

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Called after each full pass (reshuffles where the subclass shuffles)."""

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()

    def __next__(self):
        if not hasattr(self, "_cursor"):
            self._cursor = 0
        if self._cursor >= len(self):
            self._cursor = 0
            self.on_epoch_end()
        if len(self) == 0:
            raise StopIteration
        batch = self[self._cursor]
        self._cursor += 1
        return batch


def check_index(name: str, index, length: int) -> int:
    """A batch index as a non-negative int below ``length`` (negative counts from the end)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise EmberTypeError(f"{name}: batch index must be an int, received {index!r}")
    index = int(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"{name}: batch index {index} out of range for {length} batches")
    return index
