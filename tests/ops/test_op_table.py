"""The op table: every core op (and the Tensor-method forms of them) in one list, each row run
through ``ember.gradcheck`` in float64 over shapes drawn by hypothesis.

A row draws its own shapes and options, then makes values with a seeded NumPy generator in a
domain where the op is differentiable (log > 0, relu away from 0, no ties for max, ...). The
same rows also check that float32 inputs give float32 outputs and float32 gradients all the way
back (no float64 creeping in from NumPy scalar math).
"""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import ember as em
import ember.autograd.function as engine
from ember import ops

MAX_SIZE = 24  # elements per input: gradcheck evaluates the op twice per element


@dataclass
class Const:
    """An argument passed as it is (not a tensor that requires grad)."""

    value: object


@dataclass
class Row:
    name: str
    build: object  # (data, rng) -> (fn, args)
    covers: tuple = ()  # the ember.ops names this row exercises
    float32: bool = True  # whether float32 in gives float32 out (False for casts)
    eps: float = 1e-6  # gradcheck's step


# --------------------------------------------------------------------------- value domains
def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng, shape, low=0.2):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(low, 2.0, shape)


def distinct(rng, shape):
    """Values at least 0.3 apart (no ties for max/min), in random order."""
    size = int(np.prod(shape, dtype=int))
    return ((rng.permutation(size) - size / 2) * 0.3 + rng.uniform(0, 0.1)).reshape(shape)


def interleaved(rng, shape_a, shape_b):
    """Two arrays whose values never come within 0.15 of each other (no ties for maximum)."""
    a = (rng.integers(-6, 6, shape_a) + 0.5) * 0.3
    b = rng.integers(-6, 6, shape_b) * 0.3
    return a, b


# --------------------------------------------------------------------------- shape strategies
def small(shape) -> bool:
    return int(np.prod(shape, dtype=int)) <= MAX_SIZE


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    ).filter(small)


def broadcast_pair():
    """Two shapes that broadcast together (a result of at most MAX_SIZE elements)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3).filter(
        lambda s: small(s.result_shape)
    )


def draw_axis(data, ndim, allow_tuple=True):
    """None, one axis (maybe negative) or a tuple of distinct axes."""
    choices = [st.none()]
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            choices.append(
                st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
                    tuple
                )
            )
    return data.draw(st.one_of(*choices))


# --------------------------------------------------------------------------- row builders
def unary(op, domain=normal, **kw):
    def build(data, rng):
        shape = data.draw(shapes())
        return (lambda x: op(x, **kw)), [domain(rng, shape)]

    return build


def binary(op, domain=normal, domain_b=None):
    def build(data, rng):
        sa, sb = data.draw(broadcast_pair()).input_shapes
        return op, [domain(rng, sa), (domain_b or domain)(rng, sb)]

    return build


def build_div(data, rng):
    sa, sb = data.draw(broadcast_pair()).input_shapes
    return ops.div, [normal(rng, sa), away_from_zero(rng, sb, low=0.5)]


def build_pow_tensor(data, rng):
    sa, sb = data.draw(broadcast_pair()).input_shapes
    return ops.pow, [positive(rng, sa), rng.uniform(-2.0, 3.0, sb)]


def build_pow_scalar(data, rng):
    shape = data.draw(shapes())
    p = data.draw(st.sampled_from([0, 1, 2, 3, -1, 0.5, -1.5, 2.5]))
    base = positive(rng, shape) if p != int(p) or p < 0 else normal(rng, shape)
    return (lambda x: ops.pow(x, p)), [base]


def build_rpow(data, rng):
    shape = data.draw(shapes())
    base = data.draw(st.sampled_from([2, 0.5, 3.0]))
    return (lambda x: ops.pow(base, x)), [normal(rng, shape)]


def build_pow_zero_base(data, rng):
    """0 ** b for b >= 0 does not move with b (PyTorch's rule); b = 0 makes x**0 flat at 0."""
    shape = data.draw(shapes(min_dims=1))
    base = normal(rng, shape)
    base.reshape(-1)[0] = 0.0
    return (lambda x: ops.pow(x, 2) + ops.pow(x, 0)), [base]


def build_matmul(data, rng):
    shapes_ = data.draw(
        hnp.mutually_broadcastable_shapes(
            signature=np.matmul.signature, max_dims=2, max_side=3
        ).filter(lambda s: all(small(x) for x in s.input_shapes))
    )
    sa, sb = shapes_.input_shapes
    return ops.matmul, [normal(rng, sa), normal(rng, sb)]


def build_linear(data, rng):
    lead = data.draw(shapes(min_dims=1, max_dims=2, max_side=3))
    k, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    with_bias = data.draw(st.booleans())
    x, w, b = normal(rng, lead + (k,)), normal(rng, (k, n)), normal(rng, (n,))
    from ember.ops.linalg import linear

    if with_bias:
        return linear, [x, w, b]
    return linear, [x, w]


def reduction(op, domain=normal, allow_tuple=True, **kw):
    def build(data, rng):
        shape = data.draw(shapes())
        axis = draw_axis(data, len(shape), allow_tuple)
        keepdims = data.draw(st.booleans())
        return (lambda x: op(x, axis=axis, keepdims=keepdims, **kw)), [domain(rng, shape)]

    return build


def build_var(data, rng):
    shape = data.draw(shapes())
    axis = draw_axis(data, len(shape))
    keepdims = data.draw(st.booleans())
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    n = int(np.prod([shape[i] for i in axes], dtype=int))
    ddof = data.draw(st.integers(0, 1)) if n > 1 else 0
    return (lambda x: ops.var(x, axis=axis, keepdims=keepdims, ddof=ddof)), [normal(rng, shape)]


def build_reshape(data, rng):
    shape = data.draw(shapes())
    size = int(np.prod(shape, dtype=int))
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    d = data.draw(st.sampled_from(divisors))
    targets = [(size,), (d, -1), (-1, d), (1, size, 1)] + ([()] if size == 1 else [])
    target = data.draw(st.sampled_from(targets))
    return (lambda x: ops.reshape(x, target)), [normal(rng, shape)]


def build_transpose(data, rng):
    shape = data.draw(shapes())
    perm = data.draw(st.permutations(range(len(shape))))
    negative = data.draw(st.booleans())
    axes = tuple(a - len(shape) if negative and a % 2 else a for a in perm)
    op = data.draw(st.sampled_from([ops.transpose, ops.permute]))
    return (lambda x: op(x, axes)), [normal(rng, shape)]


def build_broadcast_to(data, rng):
    target = data.draw(shapes(min_dims=1))
    keep = data.draw(st.integers(0, len(target)))
    src = tuple(
        1 if data.draw(st.booleans()) else n for n in target[len(target) - keep :]
    )  # fmt: skip
    return (lambda x: ops.broadcast_to(x, target)), [normal(rng, src)]


def build_expand_dims(data, rng):
    shape = data.draw(shapes(max_dims=2))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return (lambda x: ops.expand_dims(x, axis)), [normal(rng, shape)]


def build_squeeze(data, rng):
    shape = list(data.draw(shapes(max_dims=2)))
    axis = data.draw(st.integers(0, len(shape)))
    shape.insert(axis, 1)
    return (lambda x: ops.squeeze(x, axis)), [normal(rng, tuple(shape))]


@st.composite
def basic_index(draw, shape):
    items = []
    for n in shape[: draw(st.integers(0, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "full", "newaxis"]))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n, n))
            stop = draw(st.none() | st.integers(-n, n))
            items.append(slice(start, stop, draw(st.sampled_from([1, 2, -1]))))
        elif kind == "full":
            items.append(slice(None))
        else:
            items.extend([None, slice(None)])
    if draw(st.booleans()):
        items.append(Ellipsis)
    return tuple(items)


def build_getitem_basic(data, rng):
    shape = data.draw(shapes(min_dims=1))
    index = data.draw(basic_index(shape))
    return (lambda x: ops.getitem(x, index)), [normal(rng, shape)]


def build_getitem_int_array(data, rng):
    """Integer-array indexing with repeated indices: the gradient adds up where repeated."""
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(0, len(shape) - 1))
    idx_shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
    idx = rng.integers(-shape[axis], shape[axis], idx_shape)
    idx.reshape(-1)[-1] = idx.reshape(-1)[0]  # at least one repeat when there are two
    index = (slice(None),) * axis + (idx,)
    return (lambda x: ops.getitem(x, index)), [normal(rng, shape)]


def build_getitem_mask(data, rng):
    shape = data.draw(shapes(min_dims=1))
    ndim = data.draw(st.integers(1, len(shape)))
    mask = rng.random(shape[:ndim]) > 0.4
    return (lambda x: ops.getitem(x, mask)), [normal(rng, shape)]


def build_getitem_pairs(data, rng):
    """Two index arrays (advanced indexing that picks elements), with repeats."""
    shape = data.draw(shapes(min_dims=2))
    k = data.draw(st.integers(1, 6))
    rows, cols = rng.integers(0, shape[0], k), rng.integers(0, shape[1], k)
    rows[-1], cols[-1] = rows[0], cols[0]
    return (lambda x: x[rows, cols]), [normal(rng, shape)]


def build_concatenate(data, rng):
    base = list(data.draw(shapes(min_dims=1, max_dims=2, max_side=3)))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    count = data.draw(st.integers(1, 4))
    arrays = []
    for _ in range(count):
        base[axis] = data.draw(st.integers(1, 3))
        arrays.append(normal(rng, tuple(base)))
    return (lambda *xs: ops.concatenate(xs, axis=axis)), arrays


def build_stack(data, rng):
    shape = data.draw(shapes(max_dims=2, max_side=3))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    count = data.draw(st.integers(1, 4))
    return (lambda *xs: ops.stack(xs, axis=axis)), [normal(rng, shape) for _ in range(count)]


def build_split(data, rng):
    shape = list(data.draw(shapes(min_dims=1, max_dims=2, max_side=3)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    if data.draw(st.booleans()):
        sections = data.draw(st.integers(1, 3))
        shape[axis] = sections * data.draw(st.integers(1, 2))
    else:  # a list of cut points, as NumPy and Keras take it
        shape[axis] = data.draw(st.integers(1, 5))
        sections = sorted(data.draw(st.lists(st.integers(0, shape[axis]), max_size=3)))

    def fn(x):
        parts = ops.split(x, sections, axis=axis)
        # a different weight per part, so a gradient routed to the wrong part shows
        return ops.concatenate([p * (i + 1) for i, p in enumerate(parts)], axis=axis)

    return fn, [normal(rng, tuple(shape))]


def build_pad(data, rng):
    shape = data.draw(shapes(min_dims=1, max_dims=2, max_side=3))
    width = data.draw(
        st.one_of(
            st.integers(0, 2),
            st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=len(shape),
                     max_size=len(shape)),
        )
    )  # fmt: skip
    value = data.draw(st.sampled_from([0.0, 1.5]))
    return (lambda x: ops.pad(x, width, value=value)), [normal(rng, shape)]


def build_where(data, rng):
    shapes_ = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3).filter(
            lambda s: small(s.result_shape)
        )
    )
    sc, sa, sb = shapes_.input_shapes
    cond = rng.random(sc) > 0.5
    return ops.where, [Const(cond), normal(rng, sa), normal(rng, sb)]


def build_maxmin(op):
    def build(data, rng):
        sa, sb = data.draw(broadcast_pair()).input_shapes
        a, b = interleaved(rng, sa, sb)
        if data.draw(st.booleans()):
            a, b = b, a
        return op, [a, b]

    return build


def build_clip(data, rng):
    shape = data.draw(shapes())
    lo, hi = data.draw(st.sampled_from([(-0.55, 0.55), (None, 0.25), (-0.25, None), (0.35, 0.35)]))
    # a grid that never lands on the bounds (0.1 + k * 0.2 is never 0.25, 0.35 or 0.55)
    x = 0.1 + 0.2 * rng.integers(-6, 6, shape)
    return (lambda t: ops.clip(t, lo, hi)), [x]


def build_softmax(op):
    def build(data, rng):
        shape = data.draw(shapes(min_dims=1))
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        return (lambda x: op(x, axis=axis)), [normal(rng, shape) * 2]

    return build


def build_swish(data, rng):
    shape = data.draw(shapes())
    beta = data.draw(st.sampled_from([1.0, 0.5, 2.0]))
    return (lambda x: ops.swish(x, beta)), [normal(rng, shape) * 2]


def build_cast(data, rng):
    shape = data.draw(shapes())
    return (lambda x: ops.cast(x * 2.0, np.float64) * ops.cast(x, "float64")), [normal(rng, shape)]


def build_cast_roundtrip(data, rng):
    """Through float32 and back: the gradient of a cast is the identity, cast back."""
    shape = data.draw(shapes())
    return (lambda x: ops.cast(ops.cast(x, np.float32), np.float64) * 3.0), [normal(rng, shape)]


# --------------------------------------------------------------------------- Tensor methods
def method(fn, domain=normal, min_dims=0, max_dims=3):
    def build(data, rng):
        shape = data.draw(shapes(min_dims=min_dims, max_dims=max_dims))
        return fn, [domain(rng, shape)]

    return build


def build_method_reduce(data, rng):
    shape = data.draw(shapes())
    axis = draw_axis(data, len(shape), allow_tuple=False)
    keepdims = data.draw(st.booleans())
    name = data.draw(st.sampled_from(["sum", "mean", "max", "min", "var"]))
    return (lambda x: getattr(x, name)(axis=axis, keepdims=keepdims)), [distinct(rng, shape)]


def build_method_reshape(data, rng):
    shape = data.draw(shapes(min_dims=1))
    size = int(np.prod(shape, dtype=int))
    form = data.draw(st.sampled_from(["tuple", "args", "int", "flatten"]))
    fns = {
        "tuple": lambda x: x.reshape((size, 1)),
        "args": lambda x: x.reshape(1, size),
        "int": lambda x: x.reshape(-1),
        "flatten": lambda x: x.flatten(),
    }
    return fns[form], [normal(rng, shape)]


def build_method_transpose(data, rng):
    shape = data.draw(shapes(min_dims=1))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    form = data.draw(st.sampled_from(["none", "args", "tuple", "T", "permute"]))
    fns = {
        "none": lambda x: x.transpose(),
        "args": lambda x: x.transpose(*perm),
        "tuple": lambda x: x.transpose(perm),
        "T": lambda x: x.T,
        "permute": lambda x: x.permute(*perm),
    }
    return fns[form], [normal(rng, shape)]


SCALAR_FORMS = {
    "t+s": (lambda x: x + 1.5, lambda a: a + 1.5),
    "s+t": (lambda x: 1.5 + x, lambda a: 1.5 + a),
    "t-s": (lambda x: x - 1.5, lambda a: a - 1.5),
    "s-t": (lambda x: 1.5 - x, lambda a: 1.5 - a),
    "t*s": (lambda x: x * -2, lambda a: a * -2),
    "s*t": (lambda x: -2 * x, lambda a: -2 * a),
    "t/s": (lambda x: x / 4.0, lambda a: a / 4.0),
    "s/t": (lambda x: 3.0 / x, lambda a: 3.0 / a),
    "t**s": (lambda x: x**3, lambda a: a**3),
    "s**t": (lambda x: 2.0**x, lambda a: 2.0**a),
    "-t": (lambda x: -x, lambda a: -a),
    "abs(t)": (lambda x: abs(x), lambda a: np.abs(a)),
    "nd+t": (lambda x: np.full(x.shape, 0.5) + x, lambda a: 0.5 + a),
    "nd*t": (lambda x: np.full(x.shape, 0.5) * x, lambda a: 0.5 * a),
    "nd-t": (lambda x: np.full(x.shape, 0.5) - x, lambda a: 0.5 - a),
    "nd/t": (lambda x: np.full(x.shape, 0.5) / x, lambda a: 0.5 / a),
    "nd@t": (lambda x: np.ones((2, x.shape[0])) @ x, lambda a: np.ones((2, a.shape[0])) @ a),
    "np.float64*t": (lambda x: np.float64(1.5) * x * np.float64(2), lambda a: 3 * a),
}


def build_operator(data, rng):
    form = data.draw(st.sampled_from(sorted(SCALAR_FORMS)))
    shape = data.draw(shapes(min_dims=1, max_dims=2) if form == "nd@t" else shapes())
    fn, _ = SCALAR_FORMS[form]
    return fn, [away_from_zero(rng, shape, low=0.5)]


def build_method_misc(data, rng):
    shape = data.draw(shapes(min_dims=1))
    form = data.draw(
        st.sampled_from(["exp", "log", "sqrt", "abs", "clip", "relu", "sigmoid", "tanh",
                         "softmax", "log_softmax", "expand", "broadcast_to", "getitem", "astype"])
    )  # fmt: skip
    fns = {
        "exp": lambda x: x.exp(),
        "log": lambda x: x.abs().log(),
        "sqrt": lambda x: x.abs().sqrt(),
        "abs": lambda x: x.abs(),
        "clip": lambda x: x.clip(-1.05, 1.05),
        "relu": lambda x: x.relu(),
        "sigmoid": lambda x: x.sigmoid(),
        "tanh": lambda x: x.tanh(),
        "softmax": lambda x: x.softmax(axis=0),
        "log_softmax": lambda x: x.log_softmax(),
        "expand": lambda x: x.expand((2,) + x.shape),
        "broadcast_to": lambda x: x.broadcast_to((2,) + x.shape),
        "getitem": lambda x: x[0] * x[-1],
        "astype": lambda x: x.astype(x.dtype) * 2,
    }
    return fns[form], [away_from_zero(rng, shape, low=0.3) + 0.05]


# --------------------------------------------------------------------------- the table
TABLE = [
    # arithmetic (binary ones with broadcast shapes)
    Row("add", binary(ops.add), ("add",)),
    Row("sub", binary(ops.sub), ("sub",)),
    Row("mul", binary(ops.mul), ("mul",)),
    Row("div", build_div, ("div",)),
    Row("pow(tensor, tensor)", build_pow_tensor, ("pow",)),
    Row("pow(tensor, scalar)", build_pow_scalar, ("pow",)),
    Row("pow(scalar, tensor)", build_rpow, ("pow",)),
    Row("pow at a zero base", build_pow_zero_base, ("pow",)),
    Row("neg", unary(ops.neg), ("neg",)),
    Row("matmul", build_matmul, ("matmul",)),
    Row("linear", build_linear, ()),
    # reductions
    Row("sum", reduction(ops.sum), ("sum",)),
    Row("mean", reduction(ops.mean), ("mean",)),
    Row("max", reduction(ops.max, distinct), ("max",)),
    Row("min", reduction(ops.min, distinct), ("min",)),
    Row("var", build_var, ("var",)),
    # shapes
    Row("reshape", build_reshape, ("reshape",)),
    Row("transpose/permute", build_transpose, ("transpose", "permute")),
    Row("broadcast_to", build_broadcast_to, ("broadcast_to",)),
    Row("expand_dims", build_expand_dims, ("expand_dims",)),
    Row("squeeze", build_squeeze, ("squeeze",)),
    Row("getitem basic", build_getitem_basic, ("getitem",)),
    Row("getitem int array", build_getitem_int_array, ("getitem",)),
    Row("getitem bool mask", build_getitem_mask, ("getitem",)),
    Row("getitem index pairs", build_getitem_pairs, ("getitem",)),
    Row("concatenate", build_concatenate, ("concatenate",)),
    Row("stack", build_stack, ("stack",)),
    Row("split", build_split, ("split",)),
    Row("pad", build_pad, ("pad",)),
    # selection
    Row("where", build_where, ("where",)),
    Row("maximum", build_maxmin(ops.maximum), ("maximum",)),
    Row("minimum", build_maxmin(ops.minimum), ("minimum",)),
    Row("clip", build_clip, ("clip",)),
    # elementwise
    Row("exp", unary(ops.exp), ("exp",)),
    Row("log", unary(ops.log, positive), ("log",)),
    Row("sqrt", unary(ops.sqrt, positive), ("sqrt",)),
    Row("abs", unary(ops.abs, away_from_zero), ("abs",)),
    Row("cast", build_cast, ("cast",), float32=False),
    # float32 rounding inside the op: a step well above float32's resolution
    Row("cast round trip", build_cast_roundtrip, ("cast",), float32=False, eps=1e-2),
    # activations
    Row("relu", unary(ops.relu, away_from_zero), ("relu",)),
    Row(
        "leaky_relu", unary(ops.leaky_relu, away_from_zero, negative_slope=0.2), ("leaky_relu",)
    ),  # fmt: skip
    Row("elu", unary(ops.elu, away_from_zero, alpha=0.7), ("elu",)),
    Row("selu", unary(ops.selu, away_from_zero), ("selu",)),
    Row("sigmoid", unary(ops.sigmoid, lambda r, s: 4 * normal(r, s)), ("sigmoid",)),
    Row(
        "hard_sigmoid",
        unary(ops.hard_sigmoid, lambda r, s: away_from_zero(r, s) * 2.5 + 0.1),
        ("hard_sigmoid",),
    ),  # fmt: skip
    Row("tanh", unary(ops.tanh), ("tanh",)),
    Row("softmax", build_softmax(ops.softmax), ("softmax",)),
    Row("log_softmax", build_softmax(ops.log_softmax), ("log_softmax",)),
    Row("swish(beta)", build_swish, ("swish",)),
    Row("silu", unary(ops.silu, lambda r, s: 3 * normal(r, s)), ("silu",)),
    Row("gelu exact", unary(ops.gelu, lambda r, s: 3 * normal(r, s)), ("gelu",)),
    Row(
        "gelu tanh", unary(ops.gelu, lambda r, s: 3 * normal(r, s), approximate=True), ("gelu",)
    ),  # fmt: skip
    Row("softplus", unary(ops.softplus, lambda r, s: 4 * normal(r, s)), ("softplus",)),
    # Tensor-method and operator forms
    Row("Tensor reductions", build_method_reduce),
    Row("Tensor.reshape/flatten", build_method_reshape),
    Row("Tensor.transpose/T/permute", build_method_transpose),
    Row("operators with scalars and ndarrays", build_operator),
    Row("Tensor elementwise methods", build_method_misc),
]

IDS = [row.name for row in TABLE]


def _make_args(args, dtype):
    return [
        a.value
        if isinstance(a, Const)
        else em.tensor(np.asarray(a, dtype=dtype), requires_grad=True, dtype=dtype)
        for a in args
    ]


def test_every_op_exported_by_ember_ops_has_a_row():
    covered = {name for row in TABLE for name in row.covers}
    assert set(ops.__all__) - covered == set()


@pytest.mark.parametrize("row", TABLE, ids=IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_gradcheck_float64(row, data, seed):
    fn, args = row.build(data, np.random.default_rng(seed))
    assert em.gradcheck(fn, _make_args(args, np.float64), eps=row.eps)


F32_TABLE = [row for row in TABLE if row.float32]


@pytest.mark.parametrize("row", F32_TABLE, ids=[row.name for row in F32_TABLE])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_float32_in_float32_out_and_float32_gradients(row, data, seed):
    fn, args = row.build(data, np.random.default_rng(seed))
    inputs = _make_args(args, np.float32)
    seen = []
    real = engine._accumulate_leaf

    def spy(t, g, assigned):  # the gradient as it reaches a leaf, before any cast
        seen.append(g.dtype)
        real(t, g, assigned)

    out = fn(*inputs)
    assert out.dtype == np.float32
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "_accumulate_leaf", spy)
        out.backward(np.ones(out.shape, np.float32))
    assert seen and set(seen) == {np.dtype(np.float32)}


# --------------------------------------------------------------------------- forms, forward values
@pytest.mark.parametrize("form", sorted(SCALAR_FORMS))
def test_operator_forms_give_tensors_with_numpy_values(form):
    fn, ref = SCALAR_FORMS[form]
    a = np.random.default_rng(0).uniform(0.5, 2.0, (3, 2))
    out = fn(em.tensor(a, requires_grad=True))
    assert isinstance(out, em.Tensor) and out.requires_grad
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref(a), rtol=1e-5, atol=1e-6)


def test_method_forms_match_numpy():
    a = np.random.default_rng(1).standard_normal((2, 3, 4))
    x = em.tensor(a, dtype=np.float64)
    np.testing.assert_array_equal(x.transpose().numpy(), a.transpose())  # reverses the axes
    assert x.transpose().shape == (4, 3, 2)
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    np.testing.assert_array_equal(x.transpose(1, 0, 2).numpy(), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(x.permute((2, 0, 1)).numpy(), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.reshape((4, 6)).numpy(), a.reshape(4, 6))
    np.testing.assert_array_equal(x.reshape(6, -1).numpy(), a.reshape(6, -1))
    np.testing.assert_array_equal(x.flatten().numpy(), a.ravel())
    np.testing.assert_allclose(x.sum(axis=(0, 2)).numpy(), a.sum(axis=(0, 2)))
    np.testing.assert_allclose(x.mean(axis=-1, keepdims=True).numpy(), a.mean(-1, keepdims=True))
    np.testing.assert_array_equal(x.max(axis=1).numpy(), a.max(axis=1))
    np.testing.assert_array_equal(x.min().numpy(), a.min())
    np.testing.assert_allclose(x.var(axis=0, ddof=1).numpy(), a.var(axis=0, ddof=1))
    np.testing.assert_array_equal(x.expand(5, 2, 3, 4).numpy(), np.broadcast_to(a, (5, 2, 3, 4)))
    np.testing.assert_array_equal(x[1, ::-1, [0, 0, 3]].numpy(), a[1, ::-1, [0, 0, 3]])
    np.testing.assert_array_equal(x.clip(-0.5, 0.5).numpy(), np.clip(a, -0.5, 0.5))
