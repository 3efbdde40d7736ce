"""Embedding lookup: rows of a table gathered by integer ids, gradients scatter-added back."""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.errors import EmberTypeError, EmberValueError, ShapeError

try:  # a sparse one-hot product scatter-adds ~4x faster than np.add.at (measured in the PR)
    from scipy import sparse as _sparse
except ImportError:  # pragma: no cover - scipy is optional
    _sparse = None


def _as_ids(ids, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids
    if ids.dtype.kind == "f":  # ids that went through a float array (a loader, a CSV)
        as_int = ids.astype(np.int64)
        if not np.array_equal(as_int, ids):
            bad = ids.reshape(-1)[np.flatnonzero(as_int.reshape(-1) != ids.reshape(-1))[0]]
            raise EmberValueError(f"{name}: ids must be integers, received the value {bad!r}")
        return as_int
    raise EmberTypeError(f"{name}: ids must be an integer array, received dtype {ids.dtype}")


class Embedding(Function):
    """z[..., :] = table[ids[...], :];  d table[k] = sum of g over the positions where ids == k"""

    def forward(self, ids, table, name="embedding"):
        if table.ndim != 2:
            raise ShapeError(f"{name}: the table must be 2-D, received shape {table.shape}")
        ids = _as_ids(ids, name)
        vocab = table.shape[0]
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= vocab:
                raise EmberValueError(
                    f"{name}: ids must be in [0, input_dim) with input_dim={vocab}, "
                    f"received the id {lo if lo < 0 else hi}"
                )
        self.ids, self.table_shape = ids, table.shape
        return np.take(table, ids, axis=0)  # (*ids.shape, D)

    def backward(self, g):
        vocab, dim = self.table_shape
        flat_ids = self.ids.reshape(-1)
        g2 = g.reshape(-1, dim)  # (N, D)
        if _sparse is not None and flat_ids.size:
            # one-hot (V, N) @ g (N, D): rows that share an id are summed by the sparse kernel
            onehot = _sparse.csr_matrix(
                (np.ones(flat_ids.size, dtype=g.dtype), (flat_ids, np.arange(flat_ids.size))),
                shape=(vocab, flat_ids.size),
            )
            return None, np.asarray(onehot @ g2)
        out = np.zeros(self.table_shape, dtype=g.dtype)
        np.add.at(out, flat_ids, g2)
        return None, out


def embedding(ids, table, name: str = "embedding"):
    """Rows of ``table`` (V, D) looked up by integer ``ids`` of any shape -> (*ids.shape, D).
    Ids outside [0, V) raise an error naming ``name``."""
    return Embedding.apply(ids, table, name=name)
