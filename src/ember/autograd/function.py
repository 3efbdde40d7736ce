"""Function: one differentiable op, forward and backward side by side on raw arrays, plus the
iterative backward pass that walks the recorded graph.

The graph is made of Function nodes. A Tensor produced by an op keeps a reference to its node
(``_ctx``) and the node keeps its inputs, so the graph lives exactly as long as its output
does. Nodes never reference their outputs, so there are no cycles and no garbage-collector work.
"""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.autograd import grad_mode
from ember.errors import AnomalyError, GraphError, ShapeError


class Function:
    """Base class of every op.

    Subclasses write ``forward(self, *arrays, **options)`` returning an array (or a tuple of
    arrays), and ``backward(self, *grads_of_outputs)`` returning one gradient per positional
    input (None where no gradient flows). Whatever backward needs is kept on ``self`` in forward.
    Gradients may have the broadcast shape of the output: the engine sums them back to each
    input's shape (``unbroadcast``), so no op does it by hand.
    """

    # filled by apply() when the graph is recorded: the positional inputs as given (Tensors and
    # constants), and for each whether backward must return its gradient
    inputs: tuple
    needs_input_grad: tuple
    # an op whose output dtype is the point (cast) sets this: apply leaves its dtype alone
    exact_dtype = False

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run the op on Tensors / arrays / scalars; record it when a gradient is needed."""
        # one pass over the inputs: raw arrays for forward, which inputs want a gradient, and
        # whether a NumPy float array or scalar rides along (it must not upcast the result)
        arrays, needs, foreign = [], [], False
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                needs.append(x.requires_grad)
            else:
                arrays.append(x)
                needs.append(False)
                if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f":
                    foreign = True
        if foreign:
            _match_float_dtype(inputs, arrays)
        fn = cls()
        try:
            out = fn.forward(*arrays, **kwargs)
        except ValueError as exc:
            if isinstance(exc, ShapeError) or "broadcast" not in str(exc):
                raise
            shapes = " and ".join(str(np.shape(a)) for a in arrays)
            raise ShapeError(f"{cls.__name__.lower()}: cannot broadcast shapes {shapes}") from None
        if type(out) is np.ndarray and out.dtype == _FLOAT64 and not cls.exact_dtype:
            out = _int_math_to_floatx(out, arrays)
        state = grad_mode._state
        if state["anomaly"]:
            _check_finite(cls.__name__, "forward", out)
        if not (state["grad"] and True in needs):
            if type(out) is tuple:
                return tuple(Tensor._wrap(o) for o in out)
            return Tensor._wrap(out)
        fn.inputs = inputs
        fn.needs_input_grad = tuple(needs)
        if type(out) is tuple:
            fn._out_meta = tuple((o.shape, o.dtype) for o in out)
            return tuple(Tensor._wrap(o, fn, i) for i, o in enumerate(out))
        fn._out_meta = None  # one output: nothing to zero-fill
        return Tensor._wrap(out, fn, 0)


def _match_float_dtype(inputs, arrays) -> None:
    """Give NumPy float operands the float dtype of the op's Tensors, in place in ``arrays``.

    NumPy treats Python floats as weak (they take the array's dtype) but a float64 array or
    ``np.float64`` scalar as strong, so ``x * np.sqrt(2.0)`` would silently turn a float32
    Tensor into float64. ember treats them like Python floats instead.
    """
    floats = [x.data.dtype for x in inputs if isinstance(x, Tensor) and x.data.dtype.kind == "f"]
    if not floats:
        return
    for i, x in enumerate(inputs):
        if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f":
            arrays[i] = x.astype(floats[0], copy=False)


_FLOAT64 = np.dtype(np.float64)


def _int_math_to_floatx(out: np.ndarray, arrays: list) -> np.ndarray:
    """NumPy makes float64 from integer math (ints / 2, ints * 0.5, the mean of ints); ember
    makes the current floatx, as PyTorch makes its default dtype. A float64 input keeps it."""
    for a in arrays:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return out
    return out.astype(backend.float_dtype(), copy=False)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient of a broadcast result back to the input's shape."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    if grad.ndim == len(shape):
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if axes:
            grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        # only length-1 axes may differ: anything else is a wrong gradient from an op's backward,
        # and a silent reshape would scramble it
        if [n for n in grad.shape if n != 1] != [n for n in shape if n != 1]:
            raise ShapeError(
                f"unbroadcast: a gradient of shape {grad.shape} cannot be summed back to the "
                f"input's shape {shape}"
            )
        grad = grad.reshape(shape)
    return grad


def _check_finite(name: str, phase: str, arrays) -> None:
    for a in arrays if isinstance(arrays, (tuple, list)) else (arrays,):
        if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = "NaN" if np.isnan(a).any() else "Inf"
            raise AnomalyError(f"detect_anomaly: {phase} of {name} produced {bad}")


_FREED = (
    "backward: this graph was already freed by an earlier backward(). Call "
    "backward(retain_graph=True) the first time to backpropagate through it twice, "
    "or run the forward pass again."
)


def _count_consumers(root: Function) -> dict:
    """For every node reachable from root, the number of graph edges that lead to it from
    nodes that consume its outputs (an iterative walk: no recursion limit)."""
    counts, stack = {root: 0}, [root]
    while stack:
        fn = stack.pop()
        try:
            inputs, needs = fn.inputs, fn.needs_input_grad
        except AttributeError:  # an earlier backward cleared this node
            raise GraphError(_FREED) from None
        for t, need in zip(inputs, needs):
            if need:
                ctx = t._ctx
                if ctx is None:
                    continue
                if ctx in counts:
                    counts[ctx] += 1
                else:
                    counts[ctx] = 1
                    stack.append(ctx)
    return counts


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Backpropagate from root, accumulating into the ``.grad`` of every leaf that requires it.

    A node runs its backward once every node that consumes it has run (so its gradient is
    complete): each node counts its consumers, and becomes ready when the count reaches 0.
    """
    if not root.requires_grad:
        raise GraphError(
            "backward: this tensor does not require grad (no input of the computation had "
            "requires_grad=True, or it was computed under no_grad())."
        )
    if grad is None:
        if root.data.size != 1:
            raise GraphError(
                f"backward: a gradient argument is needed for a non-scalar output of shape "
                f"{root.shape}; call .sum() or .mean() first, or pass backward(grad)."
            )
        grad = np.ones_like(root.data)
    else:
        # a copy: the caller's array must never become (part of) a leaf's .grad
        grad = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=root.dtype)
        if grad.shape != root.shape:
            raise ShapeError(
                f"backward: grad has shape {grad.shape} but the tensor has shape {root.shape}"
            )
    root_fn = root._ctx
    if root_fn is None:  # a leaf: d root / d root
        _accumulate_leaf(root, grad, set())
        return
    counts = _count_consumers(root_fn)  # also checks that no node was freed
    # pending gradients of each node's outputs: the array itself for a one-output node,
    # a list with one slot per output otherwise (missing ones are zero-filled)
    if root_fn._out_meta is None:
        pending = {root_fn: grad}
    else:
        pending = {root_fn: [None] * len(root_fn._out_meta)}
        pending[root_fn][root._idx] = grad
    state = grad_mode._state
    anomaly = state["anomaly"]
    assigned: set = set()
    ready = [root_fn]
    was_recording, state["grad"] = state["grad"], False  # backward rules record nothing
    try:
        while ready:
            fn = ready.pop()
            gys = pending.pop(fn, None)
            if gys is None:  # no gradient reached this node: it passes none on
                gxs = (None,) * len(fn.inputs)
            elif type(gys) is list:
                gxs = fn.backward(*[
                    g if g is not None else np.zeros(shape, dtype)
                    for g, (shape, dtype) in zip(gys, fn._out_meta)
                ])  # fmt: skip
            else:
                gxs = fn.backward(gys)
            if type(gxs) is not tuple:
                gxs = (gxs,)
            if len(gxs) < len(fn.inputs):
                raise GraphError(
                    f"backward of {type(fn).__name__} returned {len(gxs)} gradient(s) for "
                    f"{len(fn.inputs)} inputs; return None for an input without one"
                )
            if anomaly:
                _check_finite(type(fn).__name__, "backward", gxs)
            for t, need, g in zip(fn.inputs, fn.needs_input_grad, gxs):
                if not need:
                    continue
                ctx = t._ctx
                if g is not None:
                    shape = t.data.shape
                    if g.shape != shape:
                        try:
                            g = unbroadcast(g, shape)
                        except ShapeError as exc:
                            raise GraphError(f"backward of {type(fn).__name__}: {exc}") from None
                    if ctx is None:
                        _accumulate_leaf(t, g, assigned)
                    elif ctx._out_meta is None:
                        old = pending.get(ctx)
                        pending[ctx] = g if old is None else old + g
                    else:
                        slots = pending.get(ctx)
                        if slots is None:
                            slots = pending[ctx] = [None] * len(ctx._out_meta)
                        old = slots[t._idx]
                        slots[t._idx] = g if old is None else old + g
                if ctx is not None:
                    counts[ctx] -= 1
                    if counts[ctx] == 0:  # every consumer has passed its gradient on
                        ready.append(ctx)
            if not retain_graph:
                fn.__dict__.clear()  # drops inputs and saved arrays: the graph is freed
    finally:
        state["grad"] = was_recording


def _accumulate_leaf(t: Tensor, g: np.ndarray, assigned: set) -> None:
    if g.dtype != t.data.dtype:
        g = g.astype(t.data.dtype)
    if t.grad is None:
        # a leaf owns its .grad: never share a read-only view or an array another leaf holds,
        # so that in-place clipping or accumulation later cannot touch anything else
        if g.base is not None or not g.flags.writeable or id(g) in assigned:
            g = g.copy()
        assigned.add(id(g))
        t.grad = g
    else:
        t.grad = t.grad + g


from ember.autograd.tensor import Tensor  # noqa: E402  (Tensor uses Function; import last)
