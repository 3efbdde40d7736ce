"""Class imbalance: class weights, random over- and under-sampling, and SMOTE.

Labels may be integer class ids of shape (N,) or one-hot rows (N, K) (read with argmax).
Resamplers return ``(x, y)`` with the original samples first, in their original order, followed
by the added ones (oversample, smote), or the kept samples in their original order (undersample).
"""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.errors import EmberValueError, ShapeError


def _labels(fn: str, y) -> np.ndarray:
    y = np.asarray(y.data if hasattr(y, "data") and not isinstance(y, np.ndarray) else y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ShapeError(
            f"{fn}: y must be class ids (N,) or one-hot rows (N, K), received shape {y.shape}"
        )
    if len(y) == 0:
        raise EmberValueError(f"{fn}: y is empty")
    return y


def _xy(fn: str, x, y):
    x = np.asarray(x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else x)
    labels = _labels(fn, y)
    if len(x) != len(labels):
        raise ShapeError(f"{fn}: x has {len(x)} samples but y has {len(labels)}")
    return (
        x,
        np.asarray(y.data if hasattr(y, "data") and not isinstance(y, np.ndarray) else y),
        labels,
    )


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed) if seed is not None else backend.rng()


def compute_class_weight(y, class_weight="balanced", classes=None) -> dict:
    """Per-class weights, as a dict ``{class: weight}`` ready for ``fit(class_weight=...)``.

    ``"balanced"`` gives n_samples / (n_classes * count(class)), scikit-learn's formula, so
    every class carries the same total weight. A dict gives those weights, 1.0 for classes it
    does not name. ``classes`` lists the classes to weigh (default: those present in y); a
    listed class absent from y is an error for "balanced" (its weight would be infinite).
    """
    labels = _labels("compute_class_weight", y)
    present, counts = np.unique(labels, return_counts=True)
    classes = present if classes is None else np.asarray(classes)
    if isinstance(class_weight, dict):
        return {_py(c): float(class_weight.get(_py(c), 1.0)) for c in classes}
    if class_weight != "balanced":
        raise EmberValueError(
            f"compute_class_weight: class_weight must be 'balanced' or a dict, received "
            f"{class_weight!r}"
        )
    count_of = dict(zip(present.tolist(), counts.tolist()))
    missing = [_py(c) for c in classes if _py(c) not in count_of]
    if missing:
        raise EmberValueError(
            f"compute_class_weight: classes {missing} do not occur in y, so 'balanced' weights "
            f"are undefined for them"
        )
    extra = set(count_of) - {_py(c) for c in classes}
    if extra:
        raise EmberValueError(
            f"compute_class_weight: y holds classes {sorted(extra)} that are not in classes"
        )
    n, k = len(labels), len(classes)
    return {_py(c): n / (k * count_of[_py(c)]) for c in classes}


def _py(c):
    return c.item() if hasattr(c, "item") else c


def _class_indices(labels: np.ndarray) -> tuple:
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return classes, inverse, counts


def oversample(x, y, seed=None):
    """Randomly repeat samples of every smaller class until each class has as many samples as
    the largest. Returns ``(x, y)``: the originals, then the repeats."""
    x, y, labels = _xy("oversample", x, y)
    rng = _rng(seed)
    classes, inverse, counts = _class_indices(labels)
    target = counts.max()
    extra = []
    for k in range(len(classes)):
        need = target - counts[k]
        if need:
            members = np.flatnonzero(inverse == k)
            extra.append(rng.choice(members, need, replace=True))
    idx = np.concatenate([np.arange(len(labels))] + extra) if extra else np.arange(len(labels))
    return x[idx], y[idx]


def undersample(x, y, seed=None):
    """Randomly keep, in every larger class, only as many samples as the smallest class has.
    Returns ``(x, y)`` with the kept samples in their original order."""
    x, y, labels = _xy("undersample", x, y)
    rng = _rng(seed)
    classes, inverse, counts = _class_indices(labels)
    target = counts.min()
    keep = [
        rng.choice(np.flatnonzero(inverse == k), target, replace=False)
        for k in range(len(classes))
    ]
    idx = np.sort(np.concatenate(keep))
    return x[idx], y[idx]


def nearest_neighbors(points: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Indices (N, k) of each point's k nearest other points (Euclidean), nearest first.

    Distances come from |a|^2 + |b|^2 - 2 a.b one block of rows at a time, so memory stays
    O(chunk * N) however many points there are.
    """
    points = np.asarray(points, dtype=np.float64)
    sq = (points**2).sum(axis=1)
    out = np.empty((len(points), k), dtype=np.int64)
    for start in range(0, len(points), chunk):
        rows = points[start : start + chunk]
        d = sq[start : start + chunk, None] + sq[None, :] - 2.0 * rows @ points.T  # (B, N)
        d[np.arange(len(rows)), np.arange(start, start + len(rows))] = np.inf  # not itself
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.argsort(d, 1)
        order = np.take_along_axis(d, part, axis=1).argsort(axis=1, kind="stable")
        out[start : start + len(rows)] = np.take_along_axis(part, order, axis=1)[:, :k]
    return out


def smote(x, y, k_neighbors: int = 5, seed=None):
    """SMOTE (Chawla et al., 2002): synthesize minority samples until every class is as large
    as the largest.

    Each synthetic point is ``a + u * (b - a)`` with ``a`` a random sample of the class, ``b``
    one of ``a``'s ``k_neighbors`` nearest neighbours within the same class, and ``u`` uniform
    in [0, 1): a point on the segment between them. Inputs of any shape are flattened for the
    distances and the synthetic samples keep that shape and x's float dtype (integer inputs
    become floatx). Returns ``(x, y)``: originals first, then the synthetic samples class by
    class; ``y`` keeps its encoding (ids or one-hot rows).
    """
    x, y, labels = _xy("smote", x, y)
    if (
        isinstance(k_neighbors, bool)
        or not isinstance(k_neighbors, (int, np.integer))
        or (k_neighbors < 1)
    ):
        raise EmberValueError(
            f"smote: k_neighbors must be a positive int, received {k_neighbors!r}"
        )
    rng = _rng(seed)
    dtype = x.dtype if x.dtype.kind == "f" else backend.float_dtype()
    flat = x.reshape(len(x), -1).astype(np.float64)
    classes, inverse, counts = _class_indices(labels)
    target = counts.max()
    new_x, new_y = [], []
    for k in range(len(classes)):
        need = int(target - counts[k])
        if need == 0:
            continue
        members = np.flatnonzero(inverse == k)
        if len(members) <= k_neighbors:
            raise EmberValueError(
                f"smote: class {_py(classes[k])!r} has {len(members)} samples, fewer than "
                f"k_neighbors + 1 = {k_neighbors + 1}; lower k_neighbors"
            )
        pts = flat[members]
        nn = nearest_neighbors(pts, int(k_neighbors))  # (n_k, k) indices into pts
        base = rng.integers(0, len(members), need)
        partner = nn[base, rng.integers(0, k_neighbors, need)]
        gap = rng.random((need, 1))
        synth = pts[base] + gap * (pts[partner] - pts[base])
        new_x.append(synth.astype(dtype).reshape((need,) + x.shape[1:]))
        new_y.append(np.repeat(y[members[:1]], need, axis=0))
    if not new_x:
        return x.astype(dtype, copy=False), y
    return (np.concatenate([x.astype(dtype, copy=False)] + new_x), np.concatenate([y] + new_y))
