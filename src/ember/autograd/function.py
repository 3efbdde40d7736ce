"""Function: one differentiable op, forward and backward side by side on raw arrays, plus the
iterative backward pass that walks the recorded graph.

The graph is made of Function nodes. A Tensor produced by an op keeps a reference to its node
(``_ctx``) and the node keeps its input Tensors, so the graph lives exactly as long as its output
does. Nodes never reference their outputs, so there are no cycles and no garbage-collector work.
"""

from __future__ import annotations

import numpy as np

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

    # filled by apply() when the graph is recorded
    inputs: tuple
    needs_input_grad: tuple

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run the op on Tensors / arrays / scalars; record it when a gradient is needed."""
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        fn = cls()
        try:
            out = fn.forward(*arrays, **kwargs)
        except ValueError as exc:
            if isinstance(exc, ShapeError) or "broadcast" not in str(exc):
                raise
            shapes = " and ".join(str(np.shape(a)) for a in arrays)
            raise ShapeError(f"{cls.__name__.lower()}: cannot broadcast shapes {shapes}") from None
        if grad_mode._state["anomaly"]:
            _check_finite(cls.__name__, "forward", out)
        needs = grad_mode._state["grad"] and any(
            isinstance(x, Tensor) and x.requires_grad for x in inputs
        )
        if not needs:
            if isinstance(out, tuple):
                return tuple(Tensor._wrap(o) for o in out)
            return Tensor._wrap(out)
        fn.inputs = tuple(x if isinstance(x, Tensor) else None for x in inputs)
        fn.needs_input_grad = tuple(x is not None and x.requires_grad for x in fn.inputs)
        if isinstance(out, tuple):
            fn._out_meta = tuple((o.shape, o.dtype) for o in out)
            return tuple(Tensor._wrap(o, fn, i) for i, o in enumerate(out))
        fn._out_meta = ((out.shape, out.dtype),)
        return Tensor._wrap(out, fn, 0)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient of a broadcast result back to the input's shape."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


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


def _topological_order(root: Function) -> list:
    """Nodes reachable from root, each after every node that consumes it (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if not hasattr(fn, "inputs"):
            raise GraphError(_FREED)
        stack.append((fn, True))
        for t in fn.inputs:
            if t is not None and t._ctx is not None and id(t._ctx) not in visited:
                stack.append((t._ctx, False))
    order.reverse()  # consumers first
    return order


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Backpropagate from root, accumulating into the ``.grad`` of every leaf that requires it."""
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
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=root.dtype)
        if grad.shape != root.shape:
            raise ShapeError(
                f"backward: grad has shape {grad.shape} but the tensor has shape {root.shape}"
            )
    if root._ctx is None:  # a leaf: d root / d root
        _accumulate_leaf(root, grad, set())
        return
    if not hasattr(root._ctx, "inputs"):
        raise GraphError(_FREED)
    anomaly = grad_mode._state["anomaly"]
    pending = {id(root._ctx): [None] * len(root._ctx._out_meta)}
    pending[id(root._ctx)][root._idx] = grad
    assigned: set = set()
    with grad_mode.no_grad():
        for fn in _topological_order(root._ctx):
            gys = pending.pop(id(fn), None)
            if gys is None:  # no gradient reached this node
                continue
            gys = [
                g if g is not None else np.zeros(shape, dtype)
                for g, (shape, dtype) in zip(gys, fn._out_meta)
            ]
            gxs = fn.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if anomaly:
                _check_finite(type(fn).__name__, "backward", gxs)
            for t, need, g in zip(fn.inputs, fn.needs_input_grad, gxs):
                if not need or g is None:
                    continue
                g = unbroadcast(g, t.data.shape)
                if t._ctx is None:
                    _accumulate_leaf(t, g, assigned)
                else:
                    slots = pending.get(id(t._ctx))
                    if slots is None:
                        slots = pending[id(t._ctx)] = [None] * len(t._ctx._out_meta)
                    old = slots[t._idx]
                    slots[t._idx] = g if old is None else old + g
            if not retain_graph:
                fn.__dict__.clear()  # drops inputs and saved arrays: the graph is freed


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
