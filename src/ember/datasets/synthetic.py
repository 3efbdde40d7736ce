"""Synthetic tasks for the guide's experiments. Each is generated from its ``seed`` (so every
run sees the same data) and returns ``(x_train, y_train), (x_test, y_test)``.
"""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.datasets.real import stratified_split
from ember.errors import EmberValueError


def _check_n(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise EmberValueError(f"{name} must be an int >= {minimum}, received {value!r}")
    return int(value)


def _split(x, y, test_size, seed, stratify=True):
    if stratify:
        train, test = stratified_split(y, test_size, seed)
    else:
        perm = np.random.default_rng(seed).permutation(len(x))
        n_test = int(round(test_size * len(x)))
        train, test = perm[n_test:], perm[:n_test]
    return (x[train], y[train]), (x[test], y[test])


def spirals(
    n_samples: int = 1000,
    n_classes: int = 2,
    noise: float = 0.2,
    turns: float = 1.0,
    test_size: float = 0.2,
    seed: int = 0,
):
    """Interleaved spiral arms, one per class: not linearly separable, a classic test of
    hidden layers.

    Arm k is r (cos(t + 2 pi k / K), sin(t + 2 pi k / K)) with r in [0.05, 1] and
    t = ``turns`` * 2 pi * r, plus Gaussian noise of std ``noise`` * 0.1 on each coordinate.

    Returns x float (N, 2), y int64 (N,); the split is stratified.
    """
    n_samples = _check_n("spirals: n_samples", n_samples, 2)
    n_classes = _check_n("spirals: n_classes", n_classes, 2)
    rng = np.random.default_rng(seed)
    per = np.full(n_classes, n_samples // n_classes)
    per[: n_samples % n_classes] += 1
    xs, ys = [], []
    for k, m in enumerate(per):
        r = np.linspace(0.05, 1.0, m)
        t = turns * 2 * np.pi * r + 2 * np.pi * k / n_classes
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1) + rng.normal(0, 0.1 * noise, (m, 2))
        xs.append(pts)
        ys.append(np.full(m, k, dtype=np.int64))
    x = np.concatenate(xs).astype(backend.float_dtype())
    return _split(x, np.concatenate(ys), test_size, seed)


def xor(n_samples: int = 1000, noise: float = 0.0, test_size: float = 0.2, seed: int = 0):
    """The XOR problem on the plane: points uniform in [-1, 1]^2, label 1 where exactly one
    coordinate is positive (the two diagonal quadrants). ``noise`` is the std of Gaussian jitter
    added to the points after labelling (so a few cross the axes).

    Returns x float (N, 2), y int64 (N,).
    """
    n_samples = _check_n("xor: n_samples", n_samples, 2)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n_samples, 2))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int64)
    if noise:
        x = x + rng.normal(0.0, noise, x.shape)
    return _split(x.astype(backend.float_dtype()), y, test_size, seed)


def adding_problem(
    n_samples: int = 1000, seq_len: int = 100, test_size: float = 0.2, seed: int = 0
):
    """The adding problem (Hochreiter & Schmidhuber, 1997; Le et al., 2015), a test of memory
    over long sequences.

    Each sequence has two channels: values uniform in [0, 1], and a marker that is 1 at exactly
    two steps (one in each half of the sequence) and 0 elsewhere. The target is the sum of the
    two marked values. Predicting the mean (1.0) gives a mean squared error of about 1/6, the
    baseline a model must beat.

    Returns x float (N, seq_len, 2), y float (N, 1).
    """
    n_samples = _check_n("adding_problem: n_samples", n_samples, 2)
    seq_len = _check_n("adding_problem: seq_len", seq_len, 2)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n_samples, seq_len))
    half = seq_len // 2
    first = rng.integers(0, half, n_samples)
    second = rng.integers(half, seq_len, n_samples)
    marks = np.zeros((n_samples, seq_len))
    rows = np.arange(n_samples)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1).astype(backend.float_dtype())
    y = (values[rows, first] + values[rows, second])[:, None].astype(backend.float_dtype())
    return _split(x, y, test_size, seed, stratify=False)


def copy_task(
    n_samples: int = 1000,
    seq_len: int = 10,
    delay: int = 20,
    n_symbols: int = 8,
    test_size: float = 0.2,
    seed: int = 0,
):
    """The copy-memory task (Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016).

    The input is ``seq_len`` random symbols from 1..n_symbols, then ``delay - 1`` blanks (0),
    then the delimiter ``n_symbols + 1``, then ``seq_len`` more blanks. The target is blank
    (0) for the first ``seq_len + delay`` steps, then the symbols again: the model must hold
    them in memory across the delay. Length T = 2 * seq_len + delay; n_symbols + 2 token ids.
    Guessing blanks and then uniformly random symbols gives a cross-entropy of
    seq_len * ln(n_symbols) / T per step, the baseline.

    Returns x int64 (N, T), y int64 (N, T).
    """
    n_samples = _check_n("copy_task: n_samples", n_samples, 2)
    seq_len = _check_n("copy_task: seq_len", seq_len)
    delay = _check_n("copy_task: delay", delay)
    n_symbols = _check_n("copy_task: n_symbols", n_symbols)
    rng = np.random.default_rng(seed)
    total = 2 * seq_len + delay
    symbols = rng.integers(1, n_symbols + 1, (n_samples, seq_len))
    x = np.zeros((n_samples, total), dtype=np.int64)
    y = np.zeros((n_samples, total), dtype=np.int64)
    x[:, :seq_len] = symbols
    x[:, seq_len + delay - 1] = n_symbols + 1
    y[:, seq_len + delay :] = symbols
    return _split(x, y, test_size, seed, stratify=False)


def imbalanced(
    n_samples: int = 1000,
    weights=(0.9, 0.1),
    n_features: int = 2,
    class_sep: float = 1.5,
    test_size: float = 0.2,
    seed: int = 0,
):
    """Gaussian blobs with unequal class sizes, for class weights and resampling.

    Class k has ``round(weights[k] * n_samples)`` points (the last class takes the remainder)
    drawn from a unit Gaussian around a centre at distance ``class_sep`` from the origin in
    its own random direction. The split is stratified, so the test set keeps the imbalance.

    Returns x float (N, n_features), y int64 (N,).
    """
    n_samples = _check_n("imbalanced: n_samples", n_samples, 2)
    n_features = _check_n("imbalanced: n_features", n_features)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) < 2 or (w <= 0).any():
        raise EmberValueError(
            f"imbalanced: weights must hold two or more positive fractions, received {weights!r}"
        )
    w = w / w.sum()
    counts = np.round(w * n_samples).astype(int)
    counts[-1] = n_samples - counts[:-1].sum()
    if (counts < 2).any():
        raise EmberValueError(
            f"imbalanced: every class needs at least 2 samples; counts would be {counts.tolist()}"
        )
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(w), n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    xs = [rng.normal(size=(m, n_features)) + class_sep * d for m, d in zip(counts, directions)]
    x = np.concatenate(xs).astype(backend.float_dtype())
    y = np.repeat(np.arange(len(w), dtype=np.int64), counts)
    return _split(x, y, test_size, seed)
