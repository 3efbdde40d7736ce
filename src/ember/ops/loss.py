"""Loss ops: softmax cross-entropy (integer labels or dense targets), binary cross-entropy (from
logits or from probabilities), squared, absolute and Huber errors.

Each op is one fused node with its backward written out. The cross-entropies return one loss per
example (the class axis is reduced), the others one loss per element, so that ``ember.losses``
can weight and reduce them the way Keras does. Every op stays finite, value and gradient, at
logits of +-1e4: softmax works on max-shifted logits and the binary losses never exponentiate a
positive number.
"""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.autograd.tensor import Tensor
from ember.errors import EmberTypeError, EmberValueError, ShapeError

REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------------------- helpers
def _to_last(a: np.ndarray, axis: int) -> np.ndarray:
    """View of a with `axis` moved last (no copy; the ops work on strided views)."""
    return a if axis == a.ndim - 1 else np.moveaxis(a, axis, -1)


def _from_last(a: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    return a if axis == ndim - 1 else np.moveaxis(a, -1, axis)


def normalize_axis(axis, ndim: int, who: str) -> int:
    """axis as a non-negative int, or an ember error naming the caller."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise EmberTypeError(f"{who}: axis must be an int, received axis={axis!r}")
    if not -ndim <= axis < ndim:
        raise EmberValueError(
            f"{who}: axis={axis} is out of range for an input of {ndim} dimensions"
        )
    return int(axis) % ndim


def _as_input(x, who: str, what: str) -> Tensor:
    """A float Tensor (arrays and lists take the current floatx; ints are cast to it)."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        if x.dtype.kind not in "iub":
            raise EmberTypeError(f"{who}: {what} must be numeric, received dtype {x.dtype}")
        x = Tensor(x.data.astype(_floatx()))
    return x


def _floatx():
    from ember import backend

    return backend.float_dtype()


def _as_target(t, dtype, who: str, what: str = "targets"):
    """Targets as a raw array of `dtype` (no gradient), or a Tensor cast to `dtype` when the
    caller passed a Tensor (then gradients reach it)."""
    if isinstance(t, Tensor):
        if t.dtype.kind not in "fiub":
            raise EmberTypeError(f"{who}: {what} must be numeric, received dtype {t.dtype}")
        if t.dtype != dtype:
            from ember.ops.math import cast

            t = cast(t, dtype) if t.requires_grad else Tensor(t.data.astype(dtype))
        return t
    arr = np.asarray(t)
    if arr.dtype.kind not in "fiub":
        raise EmberTypeError(f"{who}: {what} must be numeric, received dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def _check_same_shape(a_shape, b_shape, who: str, a: str, b: str) -> None:
    if tuple(a_shape) != tuple(b_shape):
        raise ShapeError(
            f"{who}: {b} must have the shape of {a}: expected {tuple(a_shape)}, "
            f"received {tuple(b_shape)}"
        )


def class_indices(labels, num_classes: int, expected_shape: tuple, who: str, ignore_index=None):
    """Integer class labels as an intp array of `expected_shape`, validated.

    Accepts any int or float dtype (floats must hold whole numbers) and a trailing axis of
    length 1 (labels of shape (batch, 1)). Raises an ember error naming `who`, the expected and
    the received shape, or the first label outside [0, num_classes) (``ignore_index`` excepted).
    """
    arr = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    expected_shape = tuple(expected_shape)
    if arr.dtype.kind not in "iuf":
        raise EmberTypeError(
            f"{who}: labels must be integer class indices, received dtype {arr.dtype}"
        )
    if arr.shape != expected_shape:
        if arr.shape == expected_shape + (1,):
            arr = arr[..., 0]
        else:
            raise ShapeError(
                f"{who}: labels must have shape {expected_shape} (or {expected_shape + (1,)}) "
                f"to match predictions with {num_classes} classes, received labels of shape "
                f"{arr.shape}"
            )
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.floor(arr))
        if bad.any():
            first = arr[bad].flat[0].item()
            raise EmberValueError(
                f"{who}: labels must be whole class indices, received label {first!r}"
            )
    out = arr.astype(np.intp, copy=False)
    bad = (out < 0) | (out >= num_classes)
    if ignore_index is not None:
        bad &= out != ignore_index
    if bad.any():
        raise EmberValueError(
            f"{who}: label {out[bad].flat[0]} is out of range for {num_classes} classes "
            f"(labels must lie in [0, {num_classes - 1}])"
        )
    return out


def _reduce(loss: Tensor, reduction: str, who: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.size else loss.sum()
    raise EmberValueError(
        f"{who}: reduction must be one of {REDUCTIONS}, received reduction={reduction!r}"
    )


def _check_smoothing(label_smoothing, who: str) -> float:
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise EmberValueError(
            f"{who}: label_smoothing must lie in [0, 1], received {label_smoothing!r}"
        )
    return float(label_smoothing)


# ---------------------------------------------------------------------------------- ops
class SparseSoftmaxCrossEntropy(Function):
    """l = logsumexp(z) - (1-s) z[y] - s mean(z) over the class axis (labels y, smoothing s);
    dl/dz = softmax(z) - (1-s) onehot(y) - s/C, with no one-hot built.

    ``probs``, when the caller already holds softmax(z) (a softmax node's output), saves the
    exponentials: logsumexp(z) = max(z) - log(max softmax(z)), exact because the largest
    probability is at least 1/C.
    """

    def forward(self, logits, labels, axis=-1, label_smoothing=0.0, ignore_index=None, probs=None):
        # labels: intp array of the logits' shape without `axis`, validated by the wrapper
        self.axis, self.ndim, self.s = axis, logits.ndim, label_smoothing
        z = _to_last(logits, axis)  # (..., C)
        c = z.shape[-1]
        self.valid = None
        if ignore_index is not None:
            self.valid = labels != ignore_index
            labels = np.where(self.valid, labels, 0)
        self.rows = np.arange(labels.size)
        self.flat_labels = labels.reshape(-1)
        m = z.max(axis=-1, keepdims=True)
        if probs is None:
            # C-ordered so that (..., C) flattens to (N, C) as a view for the fancy indexing
            shifted = np.subtract(z, m, order="C")
            picked = shifted.reshape(-1, c)[self.rows, self.flat_labels].reshape(labels.shape)
            mean_z = shifted.mean(axis=-1) if label_smoothing else None
            e = np.exp(shifted, out=shifted)  # shifted is ours: reuse it
            total = e.sum(axis=-1, keepdims=True)
            lse = np.log(total[..., 0])  # logsumexp of the shifted logits
            e /= total
            self.p = e  # softmax, (..., C), C-ordered
        else:
            self.p = _to_last(probs, axis)
            zf = np.ascontiguousarray(z).reshape(-1, c)
            picked = zf[self.rows, self.flat_labels].reshape(labels.shape) - m[..., 0]
            mean_z = z.mean(axis=-1) - m[..., 0] if label_smoothing else None
            lse = -np.log(self.p.max(axis=-1))
        s = label_smoothing
        loss = lse - picked if not s else lse - (1 - s) * picked - s * mean_z
        if self.valid is not None:
            loss = np.where(self.valid, loss, 0).astype(loss.dtype, copy=False)
        return loss

    def backward(self, g):
        if self.valid is not None:
            g = np.where(self.valid, g, 0).astype(g.dtype, copy=False)
        g1 = g[..., None]
        if self.s:
            gz = np.subtract(self.p, self.s / self.p.shape[-1], order="C")
            gz *= g1
        else:
            gz = np.multiply(self.p, g1, order="C")
        # subtract (1-s) g at each example's label: touches N elements, not N*C
        flat = gz.reshape(-1, gz.shape[-1])
        flat[self.rows, self.flat_labels] -= (1 - self.s) * g.reshape(-1)
        return _from_last(gz, self.axis, self.ndim), None


class SoftmaxCrossEntropy(Function):
    """l = -sum_c t_c log softmax(z)_c with t = (1-s) targets + s/C;
    dl/dz = softmax(z) sum_c t_c - t,  dl/dtargets = -(1-s) log softmax(z).
    ``probs``: softmax(z) when the caller has it (see SparseSoftmaxCrossEntropy)."""

    def forward(self, logits, targets, axis=-1, label_smoothing=0.0, probs=None):
        self.axis, self.ndim, self.s = axis, logits.ndim, label_smoothing
        z = _to_last(logits, axis)
        t = _to_last(np.broadcast_to(targets, logits.shape), axis)
        c = z.shape[-1]
        if label_smoothing:
            t = t * (1 - label_smoothing) + label_smoothing / c
        shifted = z - z.max(axis=-1, keepdims=True)
        if probs is None:
            e = np.exp(shifted)
            total = e.sum(axis=-1, keepdims=True)
            shifted -= np.log(total)
            e /= total
            self.p = e
        else:
            self.p = _to_last(probs, axis)
            shifted += np.log(self.p.max(axis=-1, keepdims=True))
        self.logp = shifted  # log softmax, (..., C)
        self.t = t
        return -np.einsum("...c,...c->...", t, shifted)

    def backward(self, g):
        gz = gt = None
        g1 = g[..., None]
        if self.needs_input_grad[0]:
            gz = self.p * self.t.sum(axis=-1, keepdims=True)
            gz -= self.t
            gz *= g1
            gz = _from_last(gz, self.axis, self.ndim)
        if len(self.needs_input_grad) > 1 and self.needs_input_grad[1]:
            gt = self.logp * (-(1 - self.s) * g1)
            gt = _from_last(gt, self.axis, self.ndim)
        return gz, gt


class BinaryCrossEntropyWithLogits(Function):
    """l = max(x, 0) - x y + log(1 + e^-|x|);  dl/dx = sigmoid(x) - y,  dl/dy = -x"""

    def forward(self, x, y):
        self.x, self.y = x, y
        self.e = np.exp(-np.abs(x))  # never overflows
        return np.maximum(x, 0) - x * y + np.log1p(self.e)

    def backward(self, g):
        gx = gy = None
        if self.needs_input_grad[0]:
            sig = np.where(self.x >= 0, 1, self.e) / (1 + self.e)
            gx = (sig - self.y) * g
        if len(self.needs_input_grad) > 1 and self.needs_input_grad[1]:
            gy = -self.x * g
        return gx, gy


class BinaryCrossEntropy(Function):
    """l = -(y log q + (1-y) log(1-q)) with q = clip(p, eps, 1-eps) (Keras);
    dl/dp = (q - y) / (q (1-q)) inside the clip range (0 outside),  dl/dy = log(1-q) - log q"""

    def forward(self, p, y, epsilon=1e-7):
        self.y = y
        # comparisons and clip with Python floats keep p's dtype (the bounds round to it)
        self.inside = (p >= epsilon) & (p <= 1 - epsilon)
        self.q = q = np.clip(p, epsilon, 1 - epsilon)
        self.log_q, self.log_1mq = np.log(q), np.log1p(-q)
        return -(y * self.log_q + (1 - y) * self.log_1mq)

    def backward(self, g):
        gp = gy = None
        if self.needs_input_grad[0]:
            q = self.q
            gp = (q - self.y) / (q * (1 - q)) * g * self.inside
        if len(self.needs_input_grad) > 1 and self.needs_input_grad[1]:
            gy = (self.log_1mq - self.log_q) * g
        return gp, gy


class SquaredError(Function):
    """l = (p - t)^2;  dl/dp = 2 (p - t),  dl/dt = -2 (p - t)"""

    def forward(self, p, t):
        self.d = p - t
        return self.d * self.d

    def backward(self, g):
        gp = 2 * self.d * g
        gt = -gp if len(self.needs_input_grad) > 1 and self.needs_input_grad[1] else None
        return gp, gt


class AbsoluteError(Function):
    """l = |p - t|;  dl/dp = sign(p - t) (0 at 0),  dl/dt = -sign(p - t)"""

    def forward(self, p, t):
        d = p - t
        self.sign = np.sign(d)
        return np.abs(d)

    def backward(self, g):
        gp = self.sign * g
        gt = -gp if len(self.needs_input_grad) > 1 and self.needs_input_grad[1] else None
        return gp, gt


class HuberError(Function):
    """l = d^2 / 2 where |d| <= delta else delta (|d| - delta/2), d = p - t;
    dl/dp = clip(d, -delta, delta),  dl/dt = -dl/dp"""

    def forward(self, p, t, delta=1.0):
        d = p - t
        self.d, self.delta = d, delta
        a = np.abs(d)
        return np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta)).astype(
            d.dtype, copy=False
        )

    def backward(self, g):
        gp = np.clip(self.d, -self.delta, self.delta) * g
        gt = -gp if len(self.needs_input_grad) > 1 and self.needs_input_grad[1] else None
        return gp, gt


# ---------------------------------------------------------------------------------- wrappers
def sparse_softmax_cross_entropy(
    logits, labels, axis: int = -1, label_smoothing: float = 0.0, ignore_index=None
) -> Tensor:
    """Per-example softmax cross-entropy for integer class labels.

    Args:
        logits: float Tensor (..., C, ...) with the classes along `axis`.
        labels: class indices (any int dtype, or floats holding whole numbers) of the logits'
            shape without `axis` (a trailing axis of length 1 is accepted).
        axis: the class axis.
        label_smoothing: s in [0, 1]: the target is (1-s) onehot + s/C (PyTorch and Keras).
        ignore_index: a label value whose examples get loss 0 and no gradient.

    Returns the losses, shaped like the labels.
    """
    who = "sparse_softmax_cross_entropy"
    logits = _as_input(logits, who, "logits")
    if logits.ndim == 0:
        raise ShapeError(f"{who}: logits must have a class axis, received a scalar")
    ax = normalize_axis(axis, logits.ndim, who)
    c = logits.shape[ax]
    if c == 0:
        raise ShapeError(f"{who}: logits have 0 classes along axis {ax} (shape {logits.shape})")
    expected = logits.shape[:ax] + logits.shape[ax + 1 :]
    labels = class_indices(labels, c, expected, who, ignore_index)
    s = _check_smoothing(label_smoothing, who)
    return SparseSoftmaxCrossEntropy.apply(
        logits, labels, axis=ax, label_smoothing=s, ignore_index=ignore_index
    )


def softmax_cross_entropy(logits, targets, label_smoothing: float = 0.0, axis: int = -1) -> Tensor:
    """Per-example softmax cross-entropy for dense (one-hot or soft) targets of the logits'
    shape; targets smoothed as (1-s) targets + s/C. Gradients reach targets given as Tensors
    that require grad."""
    who = "softmax_cross_entropy"
    logits = _as_input(logits, who, "logits")
    if logits.ndim == 0:
        raise ShapeError(f"{who}: logits must have a class axis, received a scalar")
    ax = normalize_axis(axis, logits.ndim, who)
    targets = _as_target(targets, logits.dtype, who)
    _check_same_shape(logits.shape, np.shape(targets), who, "logits", "targets")
    s = _check_smoothing(label_smoothing, who)
    return SoftmaxCrossEntropy.apply(logits, targets, axis=ax, label_smoothing=s)


def binary_cross_entropy_with_logits(logits, targets, reduction: str = "none") -> Tensor:
    """Elementwise max(x, 0) - x y + log1p(exp(-|x|)): binary cross-entropy of sigmoid(x)
    computed from the logits x, stable for any x."""
    who = "binary_cross_entropy_with_logits"
    logits = _as_input(logits, who, "logits")
    targets = _as_target(targets, logits.dtype, who)
    _check_same_shape(logits.shape, np.shape(targets), who, "logits", "targets")
    return _reduce(BinaryCrossEntropyWithLogits.apply(logits, targets), reduction, who)


def binary_cross_entropy(probs, targets, epsilon: float = 1e-7, reduction: str = "none") -> Tensor:
    """Elementwise -(y log q + (1-y) log(1-q)), q = clip(p, epsilon, 1-epsilon) as Keras
    clips (no gradient flows where p was clipped)."""
    who = "binary_cross_entropy"
    probs = _as_input(probs, who, "probs")
    targets = _as_target(targets, probs.dtype, who)
    _check_same_shape(probs.shape, np.shape(targets), who, "probs", "targets")
    if not 0.0 <= epsilon < 0.5:
        raise EmberValueError(f"{who}: epsilon must lie in [0, 0.5), received {epsilon!r}")
    out = BinaryCrossEntropy.apply(probs, targets, epsilon=float(epsilon))
    return _reduce(out, reduction, who)


def _pair(pred, target, who: str):
    pred = _as_input(pred, who, "input")
    target = _as_target(target, pred.dtype, who, "target")
    _check_same_shape(pred.shape, np.shape(target), who, "input", "target")
    return pred, target


def mse_loss(input, target, reduction: str = "none") -> Tensor:  # noqa: A002 (PyTorch's name)
    """Elementwise squared error (input - target)^2."""
    p, t = _pair(input, target, "mse_loss")
    return _reduce(SquaredError.apply(p, t), reduction, "mse_loss")


def l1_loss(input, target, reduction: str = "none") -> Tensor:  # noqa: A002
    """Elementwise absolute error |input - target|."""
    p, t = _pair(input, target, "l1_loss")
    return _reduce(AbsoluteError.apply(p, t), reduction, "l1_loss")


def huber_loss(input, target, delta: float = 1.0, reduction: str = "none") -> Tensor:  # noqa: A002
    """Elementwise Huber loss: d^2/2 for |d| <= delta, else delta (|d| - delta/2)."""
    if not delta > 0:
        raise EmberValueError(f"huber_loss: delta must be positive, received delta={delta!r}")
    p, t = _pair(input, target, "huber_loss")
    return _reduce(HuberError.apply(p, t, delta=float(delta)), reduction, "huber_loss")


def cross_entropy(
    logits,
    labels,
    label_smoothing: float = 0.0,
    axis: int = -1,
    ignore_index=None,
    reduction: str = "mean",
) -> Tensor:
    """Softmax cross-entropy averaged over the examples (PyTorch's ``F.cross_entropy`` with
    the classes on the last axis).

    Labels are class indices when their dtype is integer or their shape is the logits' shape
    without the class axis (optionally with a trailing 1); otherwise they are dense
    probabilities of the logits' shape. With ``ignore_index`` the mean is over the examples
    that are not ignored, as in PyTorch.
    """
    who = "cross_entropy"
    logits = _as_input(logits, who, "logits")
    if logits.ndim == 0:
        raise ShapeError(f"{who}: logits must have a class axis, received a scalar")
    ax = normalize_axis(axis, logits.ndim, who)
    if reduction not in REDUCTIONS:
        raise EmberValueError(
            f"{who}: reduction must be one of {REDUCTIONS}, received reduction={reduction!r}"
        )
    raw = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    dense = raw.dtype.kind == "f" and raw.shape == logits.shape and logits.shape[ax] != 1
    if not dense:
        loss = sparse_softmax_cross_entropy(
            logits, labels, axis=ax, label_smoothing=label_smoothing, ignore_index=ignore_index
        )
        if ignore_index is not None and reduction == "mean":
            flat = np.asarray(raw).reshape(loss.shape)
            count = int(np.count_nonzero(flat != ignore_index))
            return loss.sum() / max(count, 1)
        return _reduce(loss, reduction, who)
    if ignore_index is not None:
        raise EmberValueError(f"{who}: ignore_index applies to class-index labels only")
    return _reduce(softmax_cross_entropy(logits, labels, label_smoothing, axis=ax), reduction, who)
