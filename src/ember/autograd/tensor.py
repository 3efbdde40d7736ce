"""Tensor: an array plus what autograd needs (requires_grad, .grad and the op that made it)."""

from __future__ import annotations

import numpy as np

from ember import backend
from ember.errors import EmberTypeError


class Tensor:
    """An n-dimensional array that records the ops applied to it for backpropagation.

    Args:
        data: anything ``numpy.asarray`` takes, or another Tensor. Python floats and float
            arrays take the current floatx (``ember.set_floatx``); ints and bools keep their type.
        requires_grad: whether backward() should fill ``.grad`` for this tensor.
        dtype: an explicit dtype, overriding the floatx rule.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_idx", "name", "__weakref__")
    # ndarray (op) Tensor must defer to Tensor's reflected operator and give a Tensor
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        arr = np.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype.kind == "f" and arr.dtype != backend.float_dtype():
            arr = arr.astype(backend.float_dtype())
        elif dtype is None and arr.dtype == object:
            raise EmberTypeError(f"tensor: cannot make a numeric tensor from {type(data)}")
        if requires_grad and arr.dtype.kind not in "fc":
            raise EmberTypeError(
                f"tensor: only float tensors can require grad, received dtype {arr.dtype}"
            )
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._idx = 0
        self.name = name

    @classmethod
    def _wrap(cls, arr, ctx=None, idx: int = 0) -> Tensor:
        """Fast path for op outputs: no dtype conversion."""
        t = object.__new__(Tensor)
        t.data = arr if type(arr) is np.ndarray else np.asarray(arr)
        t.grad = None
        t.requires_grad = ctx is not None
        t._ctx = ctx
        t._idx = idx
        t.name = None
        return t

    # ----------------------------------------------------------------- array-like facts
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        # without this, Python would iterate through __getitem__ until an IndexError, but an
        # out-of-range getitem raises ShapeError
        if self.data.ndim == 0:
            raise EmberTypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut off from the graph."""
        return Tensor._wrap(self.data)

    def astype(self, dtype) -> Tensor:
        return ops.cast(self, dtype=np.dtype(dtype))

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def __bool__(self) -> bool:
        return bool(self.data)

    __hash__ = object.__hash__

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Backpropagate from this tensor; leaves accumulate into ``.grad`` (as in PyTorch)."""
        from ember.autograd.function import backward

        backward(self, grad, retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- operators
    def __add__(self, o):
        return ops.add(self, o)

    def __radd__(self, o):
        return ops.add(o, self)

    def __sub__(self, o):
        return ops.sub(self, o)

    def __rsub__(self, o):
        return ops.sub(o, self)

    def __mul__(self, o):
        return ops.mul(self, o)

    def __rmul__(self, o):
        return ops.mul(o, self)

    def __truediv__(self, o):
        return ops.div(self, o)

    def __rtruediv__(self, o):
        return ops.div(o, self)

    def __matmul__(self, o):
        return ops.matmul(self, o)

    def __rmatmul__(self, o):
        return ops.matmul(o, self)

    def __pow__(self, o):
        return ops.pow(self, o)

    def __rpow__(self, o):
        return ops.pow(o, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # comparisons give bool tensors and carry no gradient
    def __lt__(self, o):
        return Tensor._wrap(self.data < _raw(o))

    def __le__(self, o):
        return Tensor._wrap(self.data <= _raw(o))

    def __gt__(self, o):
        return Tensor._wrap(self.data > _raw(o))

    def __ge__(self, o):
        return Tensor._wrap(self.data >= _raw(o))

    def __eq__(self, o):
        return Tensor._wrap(self.data == _raw(o))

    def __ne__(self, o):
        return Tensor._wrap(self.data != _raw(o))

    # ----------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return ops.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    # shape-taking methods accept a tuple or the items as arguments: x.reshape((2, 3)) and
    # x.reshape(2, 3), like NumPy and PyTorch
    def reshape(self, *shape):
        return ops.reshape(self, _one_tuple(shape))

    def transpose(self, *axes):
        """Permute the axes; with no argument, reverse them."""
        return ops.transpose(self, _one_tuple(axes) or None)

    def permute(self, *axes):
        return ops.transpose(self, _one_tuple(axes))

    @property
    def T(self):
        return ops.transpose(self, None)

    def expand(self, *shape):
        return ops.broadcast_to(self, _one_tuple(shape))

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def flatten(self):
        return ops.reshape(self, (-1,))

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    def relu(self):
        return ops.relu(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def tanh(self):
        return ops.tanh(self)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis=axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis=axis)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _one_tuple(args: tuple) -> tuple:
    """(shape,) or (n1, n2, ...) as one tuple of ints."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        return tuple(args[0])
    return tuple(args)


class Parameter(Tensor):
    """A trainable weight: a leaf Tensor that requires grad, with a name and a trainable flag."""

    __slots__ = ("trainable", "regularizer", "constraint")

    def __init__(self, data, name: str | None = None, trainable: bool = True, dtype=None):
        super().__init__(data, requires_grad=trainable, dtype=dtype, name=name)
        self.trainable = trainable
        self.regularizer = None
        self.constraint = None

    def assign(self, value) -> None:
        """Overwrite the values in place (shape and dtype kept)."""
        value = np.asarray(value.data if isinstance(value, Tensor) else value)
        self.data[...] = value

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a Tensor (see ``Tensor``)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


from ember import ops  # noqa: E402  (ops import Tensor: this import must come last)
