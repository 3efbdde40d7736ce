"""Losses with Keras 3's semantics: ``loss(y_true, y_pred, sample_weight=None)`` returns a scalar
Tensor, the per-example losses times the sample weights, summed and divided by the number of
per-example losses ("sum_over_batch_size").

The arithmetic lives in the fused ops of ``ember.ops.loss``. Like Keras's TensorFlow backend, a
cross-entropy given probabilities that ember's softmax (or sigmoid) just produced in a recorded
graph reads that op's input logits and uses the fused, stable op on them; other probabilities
get Keras's formula, clipped to [1e-7, 1 - 1e-7].

One deliberate difference: Keras averages the last axis even when y_pred is 1-D, so that its
"per-example" loss is a single number and sample weights scale the batch mean
(mean(loss) * mean(w)). ember treats a 1-D y_pred as one prediction per example, which is what
"per-example loss times its sample weight, summed, divided by the batch size" means; results
without sample weights are the same either way.
"""

from __future__ import annotations

import numpy as np

from ember import ops
from ember.autograd.tensor import Tensor
from ember.config import Configurable
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.ops import loss as L
from ember.ops.activation import Sigmoid, Softmax

EPSILON = 1e-7  # Keras's backend.epsilon(): probabilities are clipped to [EPSILON, 1-EPSILON]

REDUCTIONS = ("sum_over_batch_size", "sum", "none", None, "mean", "mean_with_sample_weight")


# ---------------------------------------------------------------------------------- helpers
def _as_pred(y_pred, who: str) -> Tensor:
    """y_pred as a float Tensor (arrays take the current floatx)."""
    if not isinstance(y_pred, Tensor):
        y_pred = Tensor(y_pred)
    if y_pred.dtype.kind != "f":
        if y_pred.dtype.kind not in "iub":
            raise EmberTypeError(f"{who}: y_pred must be numeric, received dtype {y_pred.dtype}")
        y_pred = Tensor(y_pred.data, dtype=_floatx())
    return y_pred


def _floatx():
    from ember import backend

    return backend.float_dtype()


def _squeeze_last(x):
    return ops.squeeze(x, -1) if isinstance(x, Tensor) else x[..., 0]


def _expand_last(x):
    return ops.expand_dims(x, -1) if isinstance(x, Tensor) else x[..., None]


def _same_rank(x1, x2):
    """Keras's squeeze_or_expand_to_same_rank (expand_rank_1=True): when the ranks differ by
    one and the longer ends in an axis of 1, squeeze it, or expand a rank-1 partner instead."""
    r1, r2 = len(np.shape(x1)), len(np.shape(x2))
    if r1 == r2 + 1 and np.shape(x1)[-1] == 1:
        if r2 == 1:
            x2 = _expand_last(x2)
        else:
            x1 = _squeeze_last(x1)
    elif r2 == r1 + 1 and np.shape(x2)[-1] == 1:
        if r1 == 1:
            x1 = _expand_last(x1)
        else:
            x2 = _squeeze_last(x2)
    return x1, x2


def _regression_pair(y_true, y_pred, who: str):
    """y_true and y_pred of one shape (float, y_pred's dtype) for the elementwise losses."""
    y_pred = _as_pred(y_pred, who)
    if y_pred.ndim == 0:
        raise ShapeError(f"{who}: y_pred must have a batch axis, received a scalar")
    y_true = L._as_target(y_true, y_pred.dtype, who, "y_true")
    y_true, y_pred = _same_rank(y_true, y_pred)
    if np.shape(y_true) != y_pred.shape:
        raise ShapeError(
            f"{who}: y_true must have the shape of y_pred: expected {y_pred.shape}, received "
            f"y_true of shape {np.shape(y_true)}"
        )
    return y_true, y_pred


def _per_example(elementwise: Tensor, axis: int, who: str) -> Tensor:
    """Mean over `axis` (Keras), except for 1-D predictions: one per example already."""
    if elementwise.ndim <= 1:
        return elementwise
    return ops.mean(elementwise, axis=L.normalize_axis(axis, elementwise.ndim, who))


def _graph_input(y_pred: Tensor, op_class, axis=None):
    """The input of the op that produced y_pred when it is a recorded `op_class` node (over
    `axis` for softmax), else None. A node freed by an earlier backward has no inputs left."""
    ctx = y_pred._ctx
    if type(ctx) is not op_class or "inputs" not in ctx.__dict__:
        return None
    if axis is not None and ctx.__dict__.get("axis", -1) % y_pred.ndim != axis:
        return None
    x = ctx.inputs[0]
    return x if isinstance(x, Tensor) and x.shape == y_pred.shape else None


def _softmax_logits(y_pred: Tensor, axis: int):
    """(logits, their softmax) when y_pred is a recorded softmax over `axis`, else (None, None):
    the fused op then reuses the probabilities instead of exponentiating again."""
    logits = _graph_input(y_pred, Softmax, axis)
    return (logits, y_pred.data) if logits is not None else (None, None)


def _check_smoothing(value, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise EmberTypeError(f"{who}: label_smoothing must be a float, received {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise EmberValueError(f"{who}: label_smoothing must lie in [0, 1], received {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------- functions
def mean_squared_error(y_true, y_pred) -> Tensor:
    """Per-example mean of (y_true - y_pred)^2 over the last axis."""
    who = "mean_squared_error"
    y_true, y_pred = _regression_pair(y_true, y_pred, who)
    return _per_example(L.SquaredError.apply(y_pred, y_true), -1, who)


def mean_absolute_error(y_true, y_pred) -> Tensor:
    """Per-example mean of |y_true - y_pred| over the last axis."""
    who = "mean_absolute_error"
    y_true, y_pred = _regression_pair(y_true, y_pred, who)
    return _per_example(L.AbsoluteError.apply(y_pred, y_true), -1, who)


def huber(y_true, y_pred, delta: float = 1.0) -> Tensor:
    """Per-example mean over the last axis of d^2/2 (|d| <= delta) or delta (|d| - delta/2),
    d = y_pred - y_true."""
    who = "huber"
    delta = _check_delta(delta, who)
    y_true, y_pred = _regression_pair(y_true, y_pred, who)
    return _per_example(L.HuberError.apply(y_pred, y_true, delta=delta), -1, who)


def binary_crossentropy(
    y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> Tensor:
    """Per-example mean over `axis` of the binary cross-entropy; targets are smoothed towards
    1/2: y (1 - s) + s/2."""
    return _binary_ce(y_true, y_pred, from_logits, label_smoothing, axis, "binary_crossentropy")


def _binary_ce(y_true, y_pred, from_logits, label_smoothing, axis, who):
    y_true, y_pred = _regression_pair(y_true, y_pred, who)
    s = _check_smoothing(label_smoothing, who)
    if s:
        y_true = y_true * (1 - s) + 0.5 * s
    logits = y_pred if from_logits else _graph_input(y_pred, Sigmoid)
    if logits is not None:
        elementwise = L.BinaryCrossEntropyWithLogits.apply(logits, y_true)
    else:
        elementwise = L.BinaryCrossEntropy.apply(y_pred, y_true, epsilon=EPSILON)
    return _per_example(elementwise, axis, who)


def categorical_crossentropy(
    y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> Tensor:
    """Per-example cross-entropy of one-hot (or soft) targets, smoothed to (1-s) y + s/C."""
    return _categorical_ce(
        y_true, y_pred, from_logits, label_smoothing, axis, "categorical_crossentropy"
    )


def _categorical_ce(y_true, y_pred, from_logits, label_smoothing, axis, who):
    y_pred = _as_pred(y_pred, who)
    if y_pred.ndim == 0:
        raise ShapeError(f"{who}: y_pred must have a class axis, received a scalar")
    ax = L.normalize_axis(axis, y_pred.ndim, who)
    y_true = L._as_target(y_true, y_pred.dtype, who, "y_true")
    if np.shape(y_true) != y_pred.shape:
        hint = ""
        if len(np.shape(y_true)) < y_pred.ndim or np.shape(y_true)[-1:] == (1,):
            hint = " (for integer class labels use sparse_categorical_crossentropy)"
        raise ShapeError(
            f"{who}: y_true must be one-hot of the shape of y_pred: expected {y_pred.shape}, "
            f"received y_true of shape {np.shape(y_true)}{hint}"
        )
    s = _check_smoothing(label_smoothing, who)
    logits, probs = (y_pred, None) if from_logits else _softmax_logits(y_pred, ax)
    if logits is not None:
        return L.SoftmaxCrossEntropy.apply(logits, y_true, axis=ax, label_smoothing=s, probs=probs)
    # Keras's formula on probabilities: renormalize, clip, log
    if s:
        y_true = y_true * (1 - s) + s / y_pred.shape[ax]
    probs = y_pred / ops.sum(y_pred, axis=ax, keepdims=True)
    log_probs = ops.log(ops.clip(probs, EPSILON, 1 - EPSILON))
    return -ops.sum(log_probs * y_true, axis=ax)


def sparse_categorical_crossentropy(
    y_true, y_pred, from_logits: bool = False, ignore_class=None, axis: int = -1
) -> Tensor:
    """Per-example cross-entropy of integer class labels (shape of y_pred without `axis`, or
    with a trailing 1); examples labelled `ignore_class` get loss 0."""
    return _sparse_ce(
        y_true, y_pred, from_logits, ignore_class, axis, "sparse_categorical_crossentropy"
    )[0]


def _sparse_ce(y_true, y_pred, from_logits, ignore_class, axis, who):
    """(per-example losses, mask of the examples that count or None)."""
    y_pred = _as_pred(y_pred, who)
    if y_pred.ndim == 0:
        raise ShapeError(f"{who}: y_pred must have a class axis, received a scalar")
    ax = L.normalize_axis(axis, y_pred.ndim, who)
    c = y_pred.shape[ax]
    expected = y_pred.shape[:ax] + y_pred.shape[ax + 1 :]
    labels = L.class_indices(y_true, c, expected, who, ignore_class)
    valid = None if ignore_class is None else labels != ignore_class
    logits, probs = (y_pred, None) if from_logits else _softmax_logits(y_pred, ax)
    if logits is not None:
        losses = L.SparseSoftmaxCrossEntropy.apply(
            logits, labels, axis=ax, ignore_index=ignore_class, probs=probs
        )
        return losses, valid
    # Keras's formula on probabilities: the label's probability, renormalized and clipped
    if valid is not None:
        labels = np.where(valid, labels, 0)
    moved = y_pred if ax == y_pred.ndim - 1 else ops.transpose(y_pred, _last_perm(y_pred.ndim, ax))
    flat = ops.reshape(moved, (-1, c))
    picked = flat[np.arange(flat.shape[0]), labels.reshape(-1)]
    total = ops.sum(flat, axis=-1)
    losses = -ops.log(ops.clip(picked / total, EPSILON, 1 - EPSILON))
    losses = ops.reshape(losses, expected)
    if valid is not None:
        losses = ops.where(valid, losses, np.zeros((), losses.dtype))
    return losses, valid


def _last_perm(ndim: int, ax: int) -> tuple:
    return tuple(i for i in range(ndim) if i != ax) + (ax,)


def _check_delta(delta, who: str) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) or delta <= 0:
        raise EmberValueError(f"{who}: delta must be a positive number, received delta={delta!r}")
    return float(delta)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# ---------------------------------------------------------------------------------- reduction
def _fit_weights(values: Tensor, weights: np.ndarray, who: str, what: str = "sample_weight"):
    """Keras's squeeze_or_expand_to_same_rank between the losses and the weights, then a
    lower-rank weight is given trailing axes (one weight per example of a sequence loss)."""
    values, weights = _same_rank(values, weights)
    if 0 < weights.ndim < values.ndim and weights.shape == values.shape[: weights.ndim]:
        weights = weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim))
    try:
        fits = np.broadcast_shapes(values.shape, weights.shape) == values.shape
    except ValueError:
        fits = False
    if not fits:
        allowed = f"a scalar or shape {values.shape[:1]}"
        if values.ndim > 1:
            allowed += f" or shape {values.shape}"
        raise ShapeError(
            f"{who}: {what} of shape {weights.shape} does not fit the per-example "
            f"losses of shape {values.shape} (expected {allowed})"
        )
    return values, weights


def reduce_weighted_values(
    values: Tensor, sample_weight=None, mask=None, reduction="sum_over_batch_size", who="loss"
) -> Tensor:
    """Keras 3's rule. The mask joins the weights (for "sum_over_batch_size" and "mean" it is
    scaled by total/valid, so masked-out losses leave the average); the losses are multiplied
    by the weights; then "sum" sums, "sum_over_batch_size"/"mean" divide the sum by the number
    of losses, "mean_with_sample_weight" by the sum of the weights, "none" keeps them."""
    dtype = values.dtype
    weights = None
    if sample_weight is not None:
        sw = sample_weight.data if isinstance(sample_weight, Tensor) else sample_weight
        weights = np.asarray(sw, dtype=dtype)
    if mask is not None:
        m = np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=dtype)
        if reduction in ("mean", "sum_over_batch_size"):
            valid = m.sum()
            m = m * (m.size / valid) if valid else np.zeros_like(m)
        if weights is None:
            weights = m
        else:
            m, weights = _same_rank(m, weights)
            if 0 < weights.ndim < m.ndim and weights.shape == m.shape[: weights.ndim]:
                weights = weights.reshape(weights.shape + (1,) * (m.ndim - weights.ndim))
            try:
                weights = weights * m
            except ValueError:
                raise ShapeError(
                    f"{who}: sample_weight of shape {weights.shape} does not fit the mask of "
                    f"shape {m.shape}"
                ) from None
    if weights is not None:
        what = (
            "sample_weight"
            if mask is None
            else "mask"
            if sample_weight is None
            else ("sample_weight times mask")
        )
        values, weights = _fit_weights(values, weights, who, what)
        values = values * weights
    if reduction in (None, "none") or values.ndim == 0:
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean_with_sample_weight" and weights is not None:
        total = float(weights.sum())
        return values.sum() / total if total else values.sum() * 0
    n = values.size
    return values.mean() if n else values.sum()


# ---------------------------------------------------------------------------------- classes
class Loss(Configurable):
    """Base class of every loss. Subclasses implement ``call(y_true, y_pred)`` returning the
    per-example losses.

    Args:
        reduction: "sum_over_batch_size" (default: the weighted losses summed and divided by
            their number), "sum", "mean" (the same as the default), "mean_with_sample_weight"
            (divided by the sum of the weights) or "none"/None (the per-example losses).
        name: the loss's name (used in errors and in logs).
    """

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None):
        if reduction not in REDUCTIONS:
            raise EmberValueError(
                f"{type(self).__name__}: reduction must be one of {list(REDUCTIONS)}, "
                f"received reduction={reduction!r}"
            )
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None) -> Tensor:
        """The reduced loss. ``mask`` (optional, the shape of the per-example losses) drops
        examples the way a Keras mask does."""
        losses, out_mask = self._losses_and_mask(y_true, y_pred)
        if not isinstance(losses, Tensor):
            losses = Tensor(losses)
        if mask is not None and out_mask is not None:
            mask = np.logical_and(np.asarray(mask, bool), out_mask)
        elif out_mask is not None:
            mask = out_mask
        return reduce_weighted_values(losses, sample_weight, mask, self.reduction, self.name)

    def call(self, y_true, y_pred) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def _losses_and_mask(self, y_true, y_pred):
        return self.call(y_true, y_pred), None

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class LossFunctionWrapper(Loss):
    """A loss made from a function ``fn(y_true, y_pred, **kwargs)`` returning per-example
    losses.

    Args:
        fn: the function.
        reduction: as for ``Loss``.
        name: defaults to the function's name.
        **kwargs: passed to fn on every call.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        if not callable(fn):
            raise EmberTypeError(f"LossFunctionWrapper: fn must be callable, received {fn!r}")
        super().__init__(reduction, name or getattr(fn, "__name__", "loss"))
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        # as Keras does: both arguments arrive as tensors of matching rank
        y_pred = _as_pred(y_pred, self.name)
        if not isinstance(y_true, Tensor):
            y_true = np.asarray(y_true)
            y_true = Tensor(y_true, dtype=y_pred.dtype if y_true.dtype.kind in "fb" else None)
        y_true, y_pred = _same_rank(y_true, y_pred)
        out = self.fn(y_true, y_pred, **self._fn_kwargs)
        return out if isinstance(out, Tensor) else Tensor(out)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "fn": getattr(self.fn, "__name__", None),
            **self._fn_kwargs,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        name = config.pop("fn")
        fn = (custom_objects or {}).get(name) or _FUNCTIONS.get(name)
        if fn is None:
            raise EmberValueError(
                f"LossFunctionWrapper: unknown loss function {name!r}; pass it in "
                f"custom_objects={{{name!r}: fn}}"
            )
        return cls(fn, **config)


class MeanSquaredError(Loss):
    """mean((y_true - y_pred)^2) over the last axis, per example.

    Args:
        reduction: see ``Loss``.
        name: defaults to "mean_squared_error".
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(reduction, name)

    def call(self, y_true, y_pred):
        y_true, y_pred = _regression_pair(y_true, y_pred, self.name)
        return _per_example(L.SquaredError.apply(y_pred, y_true), -1, self.name)


class MeanAbsoluteError(Loss):
    """mean(|y_true - y_pred|) over the last axis, per example.

    Args:
        reduction: see ``Loss``.
        name: defaults to "mean_absolute_error".
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(reduction, name)

    def call(self, y_true, y_pred):
        y_true, y_pred = _regression_pair(y_true, y_pred, self.name)
        return _per_example(L.AbsoluteError.apply(y_pred, y_true), -1, self.name)


class Huber(Loss):
    """Huber loss, quadratic for errors up to `delta` and linear beyond, averaged over the
    last axis per example.

    Args:
        delta: where the loss turns from quadratic to linear (positive).
        reduction: see ``Loss``.
        name: defaults to "huber_loss".
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(reduction, name)
        self.delta = _check_delta(delta, "Huber")

    def call(self, y_true, y_pred):
        y_true, y_pred = _regression_pair(y_true, y_pred, self.name)
        out = L.HuberError.apply(y_pred, y_true, delta=self.delta)
        return _per_example(out, -1, self.name)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


def _check_bool(value, cls: str, arg: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise EmberTypeError(f"{cls}: {arg} must be True or False, received {arg}={value!r}")
    return bool(value)


class _SmoothedCrossentropy(Loss):
    """The binary and categorical cross-entropies take the same arguments and differ only in
    their formula (``_formula``) and default name."""

    _formula = None  # (y_true, y_pred, from_logits, label_smoothing, axis, name) -> losses
    _default_name = ""

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name=None,
    ):
        super().__init__(reduction, name or self._default_name)
        who = type(self).__name__
        self.from_logits = _check_bool(from_logits, who, "from_logits")
        self.label_smoothing = _check_smoothing(label_smoothing, who)
        self.axis = axis

    def call(self, y_true, y_pred):
        return self._formula(
            y_true, y_pred, self.from_logits, self.label_smoothing, self.axis, self.name
        )

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


class BinaryCrossentropy(_SmoothedCrossentropy):
    """Binary cross-entropy averaged over `axis` per example.

    Args:
        from_logits: y_pred holds logits (any real) rather than probabilities.
        label_smoothing: s in [0, 1]: targets become y (1 - s) + s/2.
        axis: the axis averaged over.
        reduction: see ``Loss``.
        name: defaults to "binary_crossentropy".
    """

    _formula = staticmethod(_binary_ce)
    _default_name = "binary_crossentropy"


class CategoricalCrossentropy(_SmoothedCrossentropy):
    """Cross-entropy of one-hot (or soft) targets, one loss per example.

    Args:
        from_logits: y_pred holds logits rather than probabilities.
        label_smoothing: s in [0, 1]: targets become (1 - s) y + s / num_classes.
        axis: the class axis.
        reduction: see ``Loss``.
        name: defaults to "categorical_crossentropy".
    """

    _formula = staticmethod(_categorical_ce)
    _default_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of integer class labels, one loss per example.

    Args:
        from_logits: y_pred holds logits rather than probabilities.
        ignore_class: a label whose examples are left out (loss 0, and not counted in the
            average), e.g. a padding or "void" class.
        axis: the class axis of y_pred.
        reduction: see ``Loss``.
        name: defaults to "sparse_categorical_crossentropy".
    """

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        axis=-1,
        reduction="sum_over_batch_size",
        name="sparse_categorical_crossentropy",
    ):
        super().__init__(reduction, name)
        self.from_logits = _check_bool(from_logits, "SparseCategoricalCrossentropy", "from_logits")
        if ignore_class is not None and (
            isinstance(ignore_class, bool) or not isinstance(ignore_class, (int, np.integer))
        ):
            raise EmberTypeError(
                f"SparseCategoricalCrossentropy: ignore_class must be an int or None, "
                f"received ignore_class={ignore_class!r}"
            )
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.axis = axis

    def call(self, y_true, y_pred):
        return self._losses_and_mask(y_true, y_pred)[0]

    def _losses_and_mask(self, y_true, y_pred):
        return _sparse_ce(
            y_true, y_pred, self.from_logits, self.ignore_class, self.axis, self.name
        )

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "axis": self.axis,
        }


# ---------------------------------------------------------------------------------- lookup
_CLASSES = {
    c.__name__: c
    for c in (
        Loss, LossFunctionWrapper, MeanSquaredError, MeanAbsoluteError, Huber,
        BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    )
}  # fmt: skip

# snake-case names and Keras aliases -> class
_ALIASES = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}  # fmt: skip

_FUNCTIONS = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "huber": huber,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def serialize(loss: Loss) -> dict:
    """A JSON-able description of a loss: {"class_name": ..., "config": {...}}."""
    if not isinstance(loss, Loss):
        raise EmberTypeError(f"losses.serialize: expected a Loss, received {loss!r}")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> Loss:
    """Rebuild a loss from ``serialize``'s output. Custom classes or functions are looked up in
    `custom_objects` by name (a file names code, it never carries any)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise EmberValueError(
            f"losses.deserialize: expected a dict with 'class_name' and 'config', "
            f"received {config!r}"
        )
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _ALIASES.get(name)
    if cls is None:
        raise EmberValueError(
            f"losses.deserialize: unknown loss {name!r}; known: {sorted(_CLASSES)}"
        )
    kwargs = dict(config.get("config") or {})
    if cls is LossFunctionWrapper:
        return LossFunctionWrapper.from_config(kwargs, custom_objects)
    return cls.from_config(kwargs)


def get(identifier) -> Loss | None:
    """A Loss from a name ("mse", "sparse_categorical_crossentropy", "Huber", ...), a
    ``serialize`` dict, a Loss class or instance, or a function ``fn(y_true, y_pred)``
    (wrapped in ``LossFunctionWrapper`` so that sample weights and reductions apply to it)."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None or cls in (Loss, LossFunctionWrapper):
            known = sorted(set(_ALIASES) | set(_CLASSES) - {"Loss", "LossFunctionWrapper"})
            raise EmberValueError(f"losses.get: unknown loss {identifier!r}; known: {known}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise EmberTypeError(
        f"losses.get: expected a loss name, a config dict, a Loss or a callable, "
        f"received {identifier!r}"
    )


__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss", "LossFunctionWrapper",
    "MAE", "MSE", "MeanAbsoluteError", "MeanSquaredError", "SparseCategoricalCrossentropy",
    "binary_crossentropy", "categorical_crossentropy", "deserialize", "get", "huber", "mae",
    "mean_absolute_error", "mean_squared_error", "mse", "reduce_weighted_values", "serialize",
    "sparse_categorical_crossentropy",
]  # fmt: skip
