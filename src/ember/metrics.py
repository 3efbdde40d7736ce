"""Streaming metrics: ``update_state(y_true, y_pred, sample_weight=None)`` batch after batch,
``result()`` for the value over everything seen, ``reset_state()`` to start again (Keras 3's
definitions; the differences are listed on each class).

Inputs may be ember Tensors or anything NumPy takes. A metric's ``name`` is its key in the training
logs (``"accuracy"``, ``"val_accuracy"``). Counts accumulate in float64 whatever the model's
floatx, so that long streams do not lose precision; ``result()`` returns a Python float (or an
array for the per-class and matrix metrics).

Two conventions that differ from Keras on purpose:
- One-dimensional inputs are one value per sample. (Keras averages a 1-D batch over its last
  axis into a single number, so its batches of different sizes count equally.)
- Integer class labels are accepted where Keras wants one-hot labels (Precision, Recall, F1Score:
  ``y_true`` of shape ``(N,)`` or ``(N, 1)`` with ``y_pred`` of shape ``(N, C)`` is one-hot
  encoded first).
"""

from __future__ import annotations

import numpy as np

from ember.errors import EmberTypeError, EmberValueError, ShapeError

EPSILON = 1e-7  # Keras's backend.epsilon(), used where Keras uses it (F-scores, AUC endpoints)
NEG_INF = -1e10  # Keras's stand-in for -inf when filtering top-k predictions

_REGISTRY: dict[str, type] = {}


def _arr(x) -> np.ndarray:
    return np.asarray(getattr(x, "data", x))


def _same_rank(a: np.ndarray, b: np.ndarray):
    """Keras's squeeze_or_expand_to_same_rank: make ranks equal when they differ by a unit axis."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return (a, b[..., None]) if b.ndim == 1 else (a[..., 0], b)
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return (a[..., None], b) if a.ndim == 1 else (a, b[..., 0])
    return a, b


def _per_sample_mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=tuple(range(1, values.ndim))) if values.ndim > 1 else values


def _weights_like(owner: str, sample_weight, shape: tuple) -> np.ndarray:
    """Per-sample (or per-element) weights broadcast to ``shape``."""
    sw = _arr(sample_weight).astype(np.float64)
    if 0 < sw.ndim < len(shape):
        sw = sw.reshape(sw.shape + (1,) * (len(shape) - sw.ndim))
    elif sw.ndim == len(shape) + 1 and sw.shape[-1] == 1:
        sw = sw[..., 0]
    try:
        return np.broadcast_to(sw, shape)
    except ValueError:
        raise ShapeError(
            f"{owner}: sample_weight of shape {np.shape(sample_weight)} does not fit the "
            f"predictions of shape {shape}"
        ) from None


def _is_integral(y: np.ndarray) -> bool:
    return y.dtype.kind in "iub" or bool(np.all(np.mod(y, 1) == 0))


def _one_hot_if_sparse(owner: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """One-hot integer labels (N,) or (N, 1) when the predictions have C > 1 columns."""
    if y_pred.ndim < 2 or y_pred.shape[-1] < 2:
        return y_true
    sparse = y_true.ndim == y_pred.ndim - 1 or (
        y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    )
    if not sparse:
        return y_true
    labels = y_true[..., 0] if y_true.ndim == y_pred.ndim else y_true
    n = y_pred.shape[-1]
    if not _is_integral(labels) or labels.size and (labels.min() < 0 or labels.max() >= n):
        raise EmberValueError(
            f"{owner}: y_true looks like class labels (shape {y_true.shape}) for {n} classes, "
            f"but holds values outside the integers 0..{n - 1}"
        )
    return np.eye(n, dtype=np.float64)[labels.astype(np.int64)]


class Metric:
    """Base class: a streaming statistic over batches.

    Subclasses set ``default_name``, build their accumulators in ``_new_state()`` (a dict of
    float64 arrays that ``merge_state`` can add up across workers) and implement
    ``update_state`` and ``result``.

    Args:
        name: the log key (default: the class's snake-case name).
    """

    default_name = "metric"
    direction = "up"  # whether larger is better ("up") or smaller ("down"), for mode="auto"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise EmberTypeError(f"{type(self).__name__}: name must be a str, received {name!r}")
        self.name = name or self.default_name
        self._state: dict[str, np.ndarray] = self._new_state()

    def _new_state(self) -> dict:
        return {}

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:  # pragma: no cover
        raise NotImplementedError

    def result(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forget every batch seen so far."""
        self._state = self._new_state()

    def merge_state(self, others) -> None:
        """Add the counts of other metrics of the same kind (e.g. from other workers)."""
        for other in others:
            if type(other) is not type(self):
                raise EmberTypeError(
                    f"{type(self).__name__}.merge_state: cannot merge a {type(other).__name__}"
                )
            for key, value in other._state.items():
                if key in self._state:
                    self._state[key] = self._state[key] + value
                else:
                    self._state[key] = value.copy()

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Update with one batch and return the result so far."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


# --------------------------------------------------------------------------- mean metrics
class Mean(Metric):
    """The (weighted) mean of values: ``sum(v * w) / sum(w)``.

    ``update_state(values, sample_weight=None)``: values of shape ``(N, ...)`` are first averaged
    to one value per sample.

    Args:
        name: the log key (default "mean").
    """

    default_name = "mean"

    def _new_state(self) -> dict:
        return {"total": np.zeros(()), "count": np.zeros(())}

    def update_state(self, values, sample_weight=None) -> None:  # type: ignore[override]
        values = _arr(values).astype(np.float64)
        if sample_weight is None:
            values = _per_sample_mean(values)
            self._state["total"] = self._state["total"] + values.sum()
            self._state["count"] = self._state["count"] + (values.size if values.ndim else 1)
            return
        sw = _arr(sample_weight).astype(np.float64)
        values, sw = _same_rank(values, sw)
        if values.ndim > sw.ndim:
            values = values.mean(axis=tuple(range(sw.ndim, values.ndim)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ShapeError(
                f"{self.name}: sample_weight of shape {sw.shape} does not fit values of shape "
                f"{values.shape}"
            ) from None
        values = _per_sample_mean(values * sw)
        sw = _per_sample_mean(sw)
        self._state["total"] = self._state["total"] + values.sum()
        self._state["count"] = self._state["count"] + sw.sum()

    def result(self) -> float:
        count = float(self._state["count"])
        return float(self._state["total"]) / count if count else 0.0


class MeanMetricWrapper(Mean):
    """The mean over samples of ``fn(y_true, y_pred, **kwargs)`` (one value per sample).

    Args:
        fn: a function of ``(y_true, y_pred)`` returning per-sample values.
        name: the log key (default: the function's name).
        **kwargs: passed on to ``fn``.
    """

    def __init__(self, fn, name: str | None = None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:  # type: ignore[override]
        values = self._fn(_arr(y_true), _arr(y_pred), **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        return {"name": self.name}


def accuracy(y_true, y_pred) -> np.ndarray:
    """Per-sample fraction of elements where ``y_pred == y_true``."""
    y_true, y_pred = _same_rank(_arr(y_true), _arr(y_pred))
    return _per_sample_mean((y_true == y_pred).astype(np.float64))


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Per-sample fraction of elements where ``(y_pred > threshold) == y_true``."""
    y_true, y_pred = _same_rank(_arr(y_true), _arr(y_pred))
    return _per_sample_mean(((y_pred > threshold) == (y_true > 0.5)).astype(np.float64))


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Per-sample ``argmax(y_true) == argmax(y_pred)`` (one-hot labels)."""
    y_true, y_pred = _arr(y_true), _arr(y_pred)
    if y_true.shape != y_pred.shape:
        raise ShapeError(
            f"categorical_accuracy: y_true (one-hot) and y_pred must have the same shape, "
            f"received {y_true.shape} and {y_pred.shape}; for integer labels use "
            f"SparseCategoricalAccuracy"
        )
    return _per_sample_mean((y_true.argmax(-1) == y_pred.argmax(-1)).astype(np.float64))


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Per-sample ``y_true == argmax(y_pred)`` (integer labels)."""
    y_true, y_pred = _arr(y_true), _arr(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ShapeError(
            f"sparse_categorical_accuracy: y_true (labels) must have shape {y_pred.shape[:-1]} "
            f"(or with a trailing 1) for y_pred of shape {y_pred.shape}, received {y_true.shape}"
        )
    return _per_sample_mean((y_true == y_pred.argmax(-1)).astype(np.float64))


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Per-sample ``mean((y_true - y_pred)^2)`` over the last axis."""
    y_true, y_pred = _same_rank(_arr(y_true), _arr(y_pred))
    diff = y_true.astype(np.float64) - y_pred.astype(np.float64)
    return _per_sample_mean(diff * diff)


class Accuracy(MeanMetricWrapper):
    """How often ``y_pred`` equals ``y_true`` exactly (labels against labels)."""

    default_name = "accuracy"

    def __init__(self, name: str | None = None):
        super().__init__(accuracy, name=name or self.default_name)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the 0/1 label (a label counts as 1 when it is
    above 0.5, so smoothed labels such as 0.9 still count; Keras compares them exactly).

    Args:
        threshold: the decision threshold (0.5 for probabilities; 0.0 for logits, which Keras
            does not allow but ``get("accuracy", loss=BinaryCrossentropy(from_logits=True))``
            uses).
        name: the log key (default "binary_accuracy").
    """

    default_name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise EmberValueError(
                f"BinaryAccuracy: threshold must be a number, received threshold={threshold!r}"
            )
        self.threshold = float(threshold)
        super().__init__(binary_accuracy, name=name or self.default_name, threshold=threshold)

    def get_config(self) -> dict:
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the prediction is the arg-max of the one-hot label."""

    default_name = "categorical_accuracy"

    def __init__(self, name: str | None = None):
        super().__init__(categorical_accuracy, name=name or self.default_name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the prediction equals the integer label."""

    default_name = "sparse_categorical_accuracy"

    def __init__(self, name: str | None = None):
        super().__init__(sparse_categorical_accuracy, name=name or self.default_name)


class MeanSquaredError(MeanMetricWrapper):
    """The mean over samples of ``mean((y_true - y_pred)^2)`` over the last axis."""

    default_name = "mean_squared_error"
    direction = "down"

    def __init__(self, name: str | None = None):
        super().__init__(mean_squared_error, name=name or self.default_name)


# --------------------------------------------------------------------------- confusion counts
def _confusion_counts(y_true, y_pred, weights, thresholds):
    """Weighted (tp, fp, tn, fn) of ``y_pred > t`` against ``y_true != 0`` for each sorted t."""
    pos = (y_true != 0).reshape(-1)
    pred = y_pred.reshape(-1).astype(np.float64)
    w = weights.reshape(-1)
    # k = how many thresholds lie strictly below each prediction: pred > t_j  <=>  j < k
    k = np.searchsorted(thresholds, pred, side="left")
    n = len(thresholds)

    def above(mask):
        per_k = np.bincount(k, weights=np.where(mask, w, 0.0), minlength=n + 1)
        return np.cumsum(per_k[::-1])[::-1][1:]  # sum over k > j

    tp, fp = above(pos), above(~pos)
    total_pos, total_neg = float(w[pos].sum()), float(w[~pos].sum())
    return tp, fp, total_neg - fp, total_pos - tp


def _divide_no_nan(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _parse_thresholds(owner: str, thresholds, default: float) -> tuple[np.ndarray, bool]:
    if thresholds is None:
        return np.array([default]), True
    single = isinstance(thresholds, (int, float)) and not isinstance(thresholds, bool)
    values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise EmberValueError(
            f"{owner}: thresholds must be a number or a list of numbers, "
            f"received thresholds={thresholds!r}"
        )
    return values, single


class _ConfusionMetric(Metric):
    """Shared input handling of Precision and Recall (Keras's update_confusion_matrix_variables
    for thresholds, ``top_k`` and ``class_id``)."""

    def __init__(self, thresholds=None, top_k: int | None = None, class_id: int | None = None,
                 name: str | None = None):  # fmt: skip
        owner = type(self).__name__
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise EmberValueError(f"{owner}: top_k must be an int >= 1, received top_k={top_k!r}")
        if class_id is not None and (not isinstance(class_id, int) or class_id < 0):
            raise EmberValueError(
                f"{owner}: class_id must be an int >= 0, received class_id={class_id!r}"
            )
        self.init_thresholds = thresholds
        values, self._single = _parse_thresholds(
            owner, thresholds, 0.5 if top_k is None else NEG_INF
        )
        self._order = np.argsort(values, kind="stable")
        self.thresholds = values
        self.top_k = top_k
        self.class_id = class_id
        super().__init__(name=name)

    def _new_state(self) -> dict:
        n = len(self.thresholds)
        return {"tp": np.zeros(n), "fp": np.zeros(n), "tn": np.zeros(n), "fn": np.zeros(n)}

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = type(self).__name__
        y_true, y_pred = _arr(y_true), _arr(y_pred).astype(np.float64)
        y_true = _one_hot_if_sparse(owner, y_true, y_pred)
        y_pred, y_true = _same_rank(y_pred, y_true)
        if y_true.shape != y_pred.shape:
            raise ShapeError(
                f"{owner}: y_true of shape {y_true.shape} does not match y_pred of shape "
                f"{y_pred.shape}"
            )
        if self.top_k is not None:
            # position of each entry in its row sorted from largest (ties: first index first)
            rank = np.argsort(np.argsort(-y_pred, axis=-1, kind="stable"), axis=-1)
            y_pred = np.where(rank < self.top_k, y_pred, NEG_INF)
        if self.class_id is not None:
            if y_pred.ndim < 2 or self.class_id >= y_pred.shape[-1]:
                raise EmberValueError(
                    f"{owner}: class_id={self.class_id} needs predictions of shape (N, C) with "
                    f"C > {self.class_id}, received {y_pred.shape}"
                )
            y_true = y_true[..., self.class_id]
            y_pred = y_pred[..., self.class_id]
        weights = (
            np.ones(y_pred.shape) if sample_weight is None
            else _weights_like(owner, sample_weight, y_pred.shape)
        )  # fmt: skip
        sorted_t = self.thresholds[self._order]
        counts = _confusion_counts(y_true, y_pred, weights, sorted_t)
        back = np.empty_like(self._order)
        back[self._order] = np.arange(len(self._order))
        for key, c in zip(("tp", "fp", "tn", "fn"), counts):
            self._state[key] = self._state[key] + c[back]

    def _out(self, values: np.ndarray):
        return float(values[0]) if self._single else values

    def get_config(self) -> dict:
        return {"name": self.name, "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}  # fmt: skip


class Precision(_ConfusionMetric):
    """``tp / (tp + fp)`` of the predictions ``y_pred > threshold`` over every element.

    As Keras: every element of ``y_pred`` is a binary prediction (multi-label data is flattened);
    with ``top_k`` only the k largest predictions of each row can be positive; with ``class_id``
    only that column counts. 0 when nothing was predicted positive.

    Args:
        thresholds: a number (default 0.5) or a list (``result()`` then gives one value each).
        top_k: count only the top-k predictions of each row.
        class_id: the column to evaluate.
        name: the log key (default "precision").
    """

    default_name = "precision"

    def result(self):
        s = self._state
        return self._out(_divide_no_nan(s["tp"], s["tp"] + s["fp"]))


class Recall(_ConfusionMetric):
    """``tp / (tp + fn)`` of the predictions ``y_pred > threshold`` (see ``Precision``).

    Args:
        thresholds: a number (default 0.5) or a list.
        top_k: count only the top-k predictions of each row.
        class_id: the column to evaluate.
        name: the log key (default "recall").
    """

    default_name = "recall"

    def result(self):
        s = self._state
        return self._out(_divide_no_nan(s["tp"], s["tp"] + s["fn"]))


class FBetaScore(Metric):
    """F-beta score per class, with Keras 3's averaging (``average``: None, "micro", "macro",
    "weighted").

    ``y_pred`` of shape ``(N, C)`` becomes 0/1 by ``y_pred > threshold``, or, with
    ``threshold=None``, by marking each row's maximum. Per class:
    ``p = tp / (tp + fp + eps)``, ``r = tp / (tp + fn + eps)``,
    ``f = (1 + beta^2) * p * r / (beta^2 * p + r + eps)`` (eps = 1e-7). "micro" pools the counts
    of all classes first; "macro" averages the per-class scores; "weighted" weights them by
    (sample-weighted) support; None returns the per-class array.

    Beyond Keras: 1-D inputs are one binary column, and then ``threshold=None`` means 0.5 (Keras's
    row maximum would mark every sample positive); integer labels ``(N,)`` are one-hot encoded
    when ``y_pred`` has several columns.

    Args:
        average: None, "micro", "macro" or "weighted".
        beta: the weight of recall (> 0).
        threshold: the decision threshold, or None for the row's maximum.
        name: the log key (default "fbeta_score").
    """

    default_name = "fbeta_score"

    def __init__(self, average: str | None = None, beta: float = 1.0,
                 threshold: float | None = None, name: str | None = None):  # fmt: skip
        owner = type(self).__name__
        if average not in (None, "micro", "macro", "weighted"):
            raise EmberValueError(
                f"{owner}: average must be None, 'micro', 'macro' or 'weighted', "
                f"received average={average!r}"
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise EmberValueError(f"{owner}: beta must be a number > 0, received beta={beta!r}")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float))
        ):
            raise EmberValueError(
                f"{owner}: threshold must be a number or None, received threshold={threshold!r}"
            )
        self.average = average
        self.beta = float(beta)
        self.threshold = threshold
        self._num_classes: int | None = None
        super().__init__(name=name)

    def reset_state(self) -> None:
        super().reset_state()
        self._num_classes = None

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = type(self).__name__
        y_true, y_pred = _arr(y_true), _arr(y_pred).astype(np.float64)
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        if y_true.ndim == 1 and y_pred.shape[-1] == 1:
            y_true = y_true[:, None]
        y_true = _one_hot_if_sparse(owner, y_true, y_pred)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ShapeError(
                f"{owner}: expects y_true and y_pred of one shape (N, C) (or labels (N,)), "
                f"received {y_true.shape} and {y_pred.shape}"
            )
        c = y_pred.shape[1]
        if self._num_classes is not None and c != self._num_classes:
            raise ShapeError(
                f"{owner}: this metric has seen {self._num_classes} classes, received a batch "
                f"with {c}"
            )
        self._num_classes = c
        threshold = self.threshold if self.threshold is not None or c > 1 else 0.5
        if threshold is None:
            top = y_pred.max(axis=-1, keepdims=True)
            pred = (y_pred >= top) & (np.abs(y_pred) > 1e-9)
        else:
            pred = y_pred > threshold
        pred = pred.astype(np.float64)
        true = (y_true != 0).astype(np.float64)
        if sample_weight is not None:
            w = _weights_like(owner, sample_weight, (len(y_pred),))[:, None]
        else:
            w = np.ones((len(y_pred), 1))
        axis = None if self.average == "micro" else 0
        sums = {
            "tp": (pred * true * w).sum(axis=axis),
            "fp": (pred * (1 - true) * w).sum(axis=axis),
            "fn": ((1 - pred) * true * w).sum(axis=axis),
            "support": (true * w).sum(axis=axis),
        }
        for key, value in sums.items():
            self._state[key] = self._state[key] + value if key in self._state else value

    def result(self):
        if not self._state:
            return 0.0 if self.average is not None else np.zeros(0)
        s = self._state
        precision = s["tp"] / (s["tp"] + s["fp"] + EPSILON)
        recall = s["tp"] / (s["tp"] + s["fn"] + EPSILON)
        b2 = self.beta**2
        f = (1 + b2) * (precision * recall) / (b2 * precision + recall + EPSILON)
        if self.average == "weighted":
            return float(np.sum(f * s["support"] / (np.sum(s["support"]) + EPSILON)))
        if self.average is not None:
            return float(np.mean(f))
        return np.asarray(f, dtype=np.float64)

    def get_config(self) -> dict:
        return {"name": self.name, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}  # fmt: skip


class F1Score(FBetaScore):
    """F1 score (``FBetaScore`` with beta = 1); see ``FBetaScore`` for the inputs and averages.

    Args:
        average: None (per class), "micro", "macro" or "weighted".
        threshold: the decision threshold, or None for the row's maximum.
        name: the log key (default "f1_score").
    """

    default_name = "f1_score"

    def __init__(self, average: str | None = None, threshold: float | None = None,
                 name: str | None = None):  # fmt: skip
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["beta"]
        return config


class AUC(Metric):
    """Area under the ROC or precision-recall curve, approximated over fixed thresholds.

    A thresholded approximation, as Keras's: predictions are counted against
    ``num_thresholds`` thresholds (``-1e-7``, ``1/(n-1)``, ..., ``(n-2)/(n-1)``, ``1 + 1e-7``;
    a prediction is positive at t when ``y_pred > t``), and the area is summed between
    neighbouring thresholds: ROC with the trapezoid rule, PR with Davis & Goadrich's
    interpolation (``summation_method="minoring"`` / ``"majoring"`` give lower / upper Riemann
    sums instead). The exact AUC (scikit-learn's ``roc_auc_score``) can differ by up to about
    ``1/num_thresholds`` when predictions crowd into a few buckets. Inputs are flattened (each
    element is one binary prediction) and clipped to [0, 1].

    Args:
        num_thresholds: the number of thresholds (> 1; default 200).
        curve: "ROC" or "PR".
        summation_method: "interpolation", "minoring" or "majoring".
        thresholds: explicit thresholds in (0, 1) instead of the even grid.
        from_logits: apply a sigmoid to ``y_pred`` first.
        name: the log key (default "auc").
    """

    default_name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", thresholds=None,
                 from_logits: bool = False, name: str | None = None):  # fmt: skip
        curve_up = str(curve).upper()
        if curve_up not in ("ROC", "PR"):
            raise EmberValueError(f"AUC: curve must be 'ROC' or 'PR', received curve={curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise EmberValueError(
                f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', "
                f"received summation_method={summation_method!r}"
            )
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
        else:
            if (
                isinstance(num_thresholds, bool)
                or not isinstance(num_thresholds, int)
                or (num_thresholds <= 1)
            ):
                raise EmberValueError(
                    f"AUC: num_thresholds must be an int > 1, received "
                    f"num_thresholds={num_thresholds!r}"
                )
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.curve = curve_up
        self.summation_method = summation_method
        self.from_logits = bool(from_logits)
        self._init_thresholds = None if thresholds is None else list(inner)
        self.thresholds = np.array([0.0 - EPSILON, *inner, 1.0 + EPSILON])
        self.num_thresholds = len(self.thresholds)
        super().__init__(name=name)

    def _new_state(self) -> dict:
        n = self.num_thresholds
        return {"tp": np.zeros(n), "fp": np.zeros(n), "tn": np.zeros(n), "fn": np.zeros(n)}

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _arr(y_true), _arr(y_pred).astype(np.float64)
        y_pred, y_true = _same_rank(y_pred, y_true)
        if y_true.shape != y_pred.shape:
            raise ShapeError(
                f"AUC: y_true of shape {y_true.shape} does not match y_pred of shape "
                f"{y_pred.shape}"
            )
        if self.from_logits:
            y_pred = 0.5 * (1.0 + np.tanh(0.5 * y_pred))  # sigmoid, without overflow
        y_pred = np.clip(y_pred, 0.0, 1.0)
        weights = (
            np.ones(y_pred.shape) if sample_weight is None
            else _weights_like("AUC", sample_weight, y_pred.shape)
        )  # fmt: skip
        counts = _confusion_counts(y_true, y_pred, weights, self.thresholds)
        for key, c in zip(("tp", "fp", "tn", "fn"), counts):
            self._state[key] = self._state[key] + c

    def _interpolate_pr_auc(self) -> float:
        tp, fp, fn = self._state["tp"], self._state["fp"], self._state["fn"]
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        ratio = np.where(ratio > 0, ratio, 1.0)  # log(0) only where the where() discards it
        increments = _divide_no_nan(
            slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0)
        )
        return float(np.sum(increments))

    def result(self) -> float:
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        s = self._state
        recall = _divide_no_nan(s["tp"], s["tp"] + s["fn"])
        if self.curve == "ROC":
            x, y = _divide_no_nan(s["fp"], s["fp"] + s["tn"]), recall
        else:
            x, y = recall, _divide_no_nan(s["tp"], s["tp"] + s["fp"])
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self) -> dict:
        config = {
            "name": self.name,
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "from_logits": self.from_logits,
        }
        if self._init_thresholds is not None:
            config["thresholds"] = self._init_thresholds
        return config  # fmt: skip


class ConfusionMatrix(Metric):
    """The (weighted) confusion matrix: row = true class, column = predicted class (the layout
    of scikit-learn's ``confusion_matrix``).

    Labels may be integers ``(N,)`` / ``(N, 1)`` or one-hot rows; predictions may be class
    probabilities or scores ``(N, C)`` (arg-max), integer labels, or, for two classes,
    probabilities of class 1 ``(N,)`` / ``(N, 1)`` (``> threshold``). ``result()`` is an
    ``int64`` array while no sample weights were given, else ``float64``.

    Args:
        num_classes: the number of classes C (the matrix is C x C).
        threshold: the decision threshold for binary probabilities.
        name: the log key (default "confusion_matrix").
    """

    default_name = "confusion_matrix"

    def __init__(self, num_classes: int, threshold: float = 0.5, name: str | None = None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise EmberValueError(
                f"ConfusionMatrix: num_classes must be an int >= 2, "
                f"received num_classes={num_classes!r}"
            )
        self.num_classes = num_classes
        self.threshold = float(threshold)
        self._weighted = False
        super().__init__(name=name)

    def _new_state(self) -> dict:
        return {"matrix": np.zeros((self.num_classes, self.num_classes))}

    def reset_state(self) -> None:
        super().reset_state()
        self._weighted = False

    def _labels(self, y: np.ndarray, what: str) -> np.ndarray:
        c = self.num_classes
        if y.ndim >= 2 and y.shape[-1] == c:
            y = y.argmax(axis=-1)
        elif y.ndim >= 2 and y.shape[-1] == 1:
            y = y[..., 0]
        if y.dtype.kind == "f" and not _is_integral(y):
            if what == "y_pred" and c == 2:
                y = y > self.threshold
            else:
                raise EmberValueError(
                    f"ConfusionMatrix: {what} must hold class labels 0..{c - 1}, one-hot rows "
                    f"or (for y_pred) scores of shape (N, {c}); received non-integer values "
                    f"of shape {y.shape}"
                )
        y = y.reshape(-1).astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= c):
            raise EmberValueError(
                f"ConfusionMatrix: {what} holds labels outside 0..{c - 1} "
                f"(min {y.min()}, max {y.max()})"
            )
        return y

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        t = self._labels(_arr(y_true), "y_true")
        p = self._labels(_arr(y_pred), "y_pred")
        if t.shape != p.shape:
            raise ShapeError(f"ConfusionMatrix: {t.size} true labels but {p.size} predictions")
        w = None
        if sample_weight is not None:
            w = _weights_like("ConfusionMatrix", sample_weight, t.shape)
            self._weighted = True
        c = self.num_classes
        counts = np.bincount(t * c + p, weights=w, minlength=c * c).reshape(c, c)
        self._state["matrix"] = self._state["matrix"] + counts

    def result(self) -> np.ndarray:
        m = self._state["matrix"]
        return m.copy() if self._weighted else np.rint(m).astype(np.int64)

    def merge_state(self, others) -> None:
        super().merge_state(others)
        self._weighted = self._weighted or any(o._weighted for o in others)

    def get_config(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes, "threshold": self.threshold}


# --------------------------------------------------------------------------- accuracy by shape
class _AutoAccuracy(Metric):
    """``"accuracy"`` whose variant is chosen from the first batch's shapes, as Keras's compile
    does when the loss does not decide: one prediction column -> BinaryAccuracy; integer labels
    (one axis fewer, or a trailing 1) -> SparseCategoricalAccuracy; else CategoricalAccuracy."""

    default_name = "accuracy"

    def __init__(self, name: str | None = None):
        self._inner: Metric | None = None
        super().__init__(name=name)

    def reset_state(self) -> None:
        if self._inner is not None:
            self._inner.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        if self._inner is None:
            t, p = _arr(y_true), _arr(y_pred)
            if p.ndim <= 1 or p.shape[-1] == 1:
                self._inner = BinaryAccuracy(name=self.name)
            elif t.ndim == p.ndim - 1 or t.shape[-1] == 1:
                self._inner = SparseCategoricalAccuracy(name=self.name)
            else:
                self._inner = CategoricalAccuracy(name=self.name)
        self._inner.update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self) -> float:
        return 0.0 if self._inner is None else self._inner.result()

    def merge_state(self, others) -> None:
        for other in others:
            if other._inner is None:
                continue
            if self._inner is None:
                self._inner = type(other._inner)(name=self.name)
            self._inner.merge_state([other._inner])


# --------------------------------------------------------------------------- lookup
def _loss_kind(loss) -> tuple[str | None, bool]:
    """("sparse" | "categorical" | "binary" | None, from_logits) for a loss name or object."""
    if loss is None:
        return None, False
    if isinstance(loss, str):
        text = loss
    else:
        text = type(loss).__name__ if not hasattr(loss, "__name__") else loss.__name__
        text = f"{text} {getattr(loss, 'name', '') or ''}"
    text = text.lower().replace("_", "")
    from_logits = bool(getattr(loss, "from_logits", False))
    if "sparsecategorical" in text:
        return "sparse", from_logits
    if "binary" in text:
        return "binary", from_logits
    if "categorical" in text:
        return "categorical", from_logits
    return None, from_logits


_SIMPLE = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "auc": AUC,
    "precision": Precision,
    "recall": Recall,
    "f1": F1Score,
    "f1_score": F1Score,
}


def get(identifier, loss=None) -> Metric:
    """A metric from a name, an instance, a class, a config dict or a function.

    Strings (any case) as Keras resolves them in ``compile``: ``"accuracy"`` / ``"acc"`` become
    SparseCategoricalAccuracy, CategoricalAccuracy or BinaryAccuracy according to ``loss`` (a
    loss name or object: sparse categorical / categorical / binary cross-entropy), or, when the
    loss does not say, according to the shapes of the first batch; the metric keeps the string as
    its log name. Also "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "precision", "recall", "f1" (macro-averaged F1, or binary F1 with a binary loss), "auc",
    "mse". With a ``from_logits=True`` binary loss, thresholds move to 0 (logits) and AUC
    applies a sigmoid.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        cls = _REGISTRY.get(identifier.get("class_name"))
        if cls is None:
            raise EmberValueError(
                f"metrics.get: unknown metric class {identifier.get('class_name')!r}"
            )
        return cls.from_config(dict(identifier.get("config", {})))
    if isinstance(identifier, str):
        key = identifier.lower()
        kind, logits = _loss_kind(loss)
        threshold = 0.0 if logits and kind == "binary" else 0.5
        if key in ("accuracy", "acc"):
            if kind == "sparse":
                return SparseCategoricalAccuracy(name=identifier)
            if kind == "categorical":
                return CategoricalAccuracy(name=identifier)
            if kind == "binary":
                return BinaryAccuracy(name=identifier, threshold=threshold)
            return _AutoAccuracy(name=identifier)
        cls = _SIMPLE.get(key)
        if cls is None:
            raise EmberValueError(
                f"metrics.get: unknown metric {identifier!r}; expected one of "
                f"{sorted({'accuracy', 'acc', *_SIMPLE})}, a Metric or a function"
            )
        if cls is BinaryAccuracy:
            return BinaryAccuracy(name=identifier, threshold=threshold)
        if cls in (Precision, Recall):
            return cls(thresholds=threshold, name=identifier)
        if cls is F1Score:
            if kind == "binary":
                return F1Score(average="micro", threshold=threshold, name=identifier)
            return F1Score(average="macro", name=identifier)
        if cls is AUC:
            return AUC(from_logits=logits and kind == "binary", name=identifier)
        return cls(name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise EmberTypeError(
        f"metrics.get: expected a metric name, a Metric or a function, received {identifier!r}"
    )


def serialize(metric: Metric) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able)."""
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "Precision", "Recall", "FBetaScore", "F1Score", "AUC",
    "ConfusionMatrix", "MeanSquaredError", "accuracy", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "mean_squared_error", "get", "serialize",
]  # fmt: skip
