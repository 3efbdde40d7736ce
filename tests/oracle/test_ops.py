"""Forward and backward of every core op against PyTorch (CPU), in float64 (to 1e-8 relative)
and float32 (to 1e-4), including what happens at ties and kinks, where ember follows
PyTorch's conventions: ``maximum``/``minimum`` split a tie's gradient in half, ``max``/``min``
reductions share it equally among the tied elements (``torch.amax``), relu/abs give 0 at 0,
clip passes the gradient at its bounds, ``x ** 0`` is flat at 0.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import ember as em
from ember import ops
from ember.ops.linalg import linear

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-8, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-6)}


def N(*shape):
    """Standard normal values (drawn per case from a fixed seed)."""
    return ("normal", shape)


def P(*shape):
    """Positive values in [0.5, 2]."""
    return ("positive", shape)


def A(*shape):
    """Values away from 0 (|x| >= 0.2): kinks of relu, abs, ... are not hit."""
    return ("away", shape)


def D(*shape):
    """Distinct values (no ties)."""
    return ("distinct", shape)


def V(values):
    """Exactly these values (ties and kinks on purpose)."""
    return ("values", np.asarray(values, dtype=np.float64))


def make(spec, rng):
    kind, arg = spec
    if kind == "values":
        return arg
    if kind == "normal":
        return rng.standard_normal(arg)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, arg)
    if kind == "away":
        return rng.choice([-1.0, 1.0], arg) * rng.uniform(0.2, 2.0, arg)
    size = int(np.prod(arg, dtype=int))
    return ((rng.permutation(size) - size / 2) * 0.3).reshape(arg)


COND = np.array([[True, False, True], [False, False, True]])
IDX = np.array([0, 2, 2, -1, 0])
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, True, True]])

# name, ember function, torch function, input specs
CASES = [
    # arithmetic, with broadcasting
    ("add", ops.add, torch.add, [N(2, 3), N(3)]),
    ("add bcast both", ops.add, torch.add, [N(2, 1, 3), N(4, 1)]),
    ("sub", ops.sub, torch.sub, [N(2, 1), N(1, 3)]),
    ("mul", ops.mul, torch.mul, [N(3, 4), N(4)]),
    ("div", ops.div, torch.div, [N(2, 3), A(2, 1)]),
    ("pow tensor", ops.pow, torch.pow, [P(2, 3), N(3)]),
    ("pow scalar 3", lambda x: x**3, lambda x: x**3, [N(2, 3)]),
    ("pow scalar -1.5", lambda x: x**-1.5, lambda x: x**-1.5, [P(4)]),
    ("rpow", lambda x: 2.5**x, lambda x: 2.5**x, [N(5)]),
    ("neg", ops.neg, torch.neg, [N(2, 3)]),
    ("matmul 2d", ops.matmul, torch.matmul, [N(3, 4), N(4, 2)]),
    ("matmul batched bcast", ops.matmul, torch.matmul, [N(2, 1, 3, 4), N(5, 4, 2)]),
    ("matmul 1d @ 2d", ops.matmul, torch.matmul, [N(4), N(4, 3)]),
    ("matmul 3d @ 1d", ops.matmul, torch.matmul, [N(2, 3, 4), N(4)]),
    ("matmul 1d @ 1d", ops.matmul, torch.matmul, [N(4), N(4)]),
    ("linear", linear, lambda x, w, b: x @ w + b, [N(2, 3, 4), N(4, 5), N(5)]),
    # reductions
    ("sum all", ops.sum, torch.sum, [N(3, 4)]),
    ("sum axes keepdims", lambda x: ops.sum(x, axis=(0, 2), keepdims=True),
     lambda x: torch.sum(x, dim=(0, 2), keepdim=True), [N(2, 3, 4)]),
    ("mean axis", lambda x: ops.mean(x, axis=-1), lambda x: x.mean(dim=-1), [N(3, 4)]),
    ("mean all", ops.mean, torch.mean, [N(3, 4)]),
    ("max axis", lambda x: ops.max(x, axis=1), lambda x: torch.amax(x, dim=1), [D(3, 4)]),
    ("min axis keepdims", lambda x: ops.min(x, axis=0, keepdims=True),
     lambda x: torch.amin(x, dim=0, keepdim=True), [D(3, 4)]),
    ("var axis", lambda x: ops.var(x, axis=1), lambda x: torch.var(x, dim=1, correction=0),
     [N(3, 5)]),
    ("var ddof=1 all", lambda x: ops.var(x, ddof=1), lambda x: torch.var(x, correction=1),
     [N(3, 5)]),
    # shapes
    ("reshape", lambda x: ops.reshape(x, (4, -1)), lambda x: x.reshape(4, -1), [N(2, 3, 2)]),
    ("transpose", lambda x: ops.transpose(x, (2, 0, 1)), lambda x: x.permute(2, 0, 1),
     [N(2, 3, 4)]),
    ("transpose reversed", ops.transpose, lambda x: x.permute(2, 1, 0), [N(2, 3, 4)]),
    ("permute negative axes", lambda x: ops.permute(x, (0, -1, 1)), lambda x: x.permute(0, 2, 1),
     [N(2, 3, 4)]),
    ("broadcast_to", lambda x: ops.broadcast_to(x, (2, 3, 4)),
     lambda x: torch.broadcast_to(x, (2, 3, 4)), [N(3, 1)]),
    ("expand_dims", lambda x: ops.expand_dims(x, 1), lambda x: x.unsqueeze(1), [N(2, 3)]),
    ("squeeze", lambda x: ops.squeeze(x, 1), lambda x: x.squeeze(1), [N(2, 1, 3)]),
    ("getitem basic", lambda x: x[1:, ::2, 1], lambda x: x[1:, ::2, 1], [N(3, 4, 2)]),
    ("getitem newaxis ellipsis", lambda x: x[None, ..., 0], lambda x: x[None, ..., 0],
     [N(2, 3)]),
    ("getitem int array repeats", lambda x: x[IDX], lambda x: x[torch.from_numpy(IDX)],
     [N(3, 2)]),
    ("getitem int array axis 1", lambda x: x[:, IDX], lambda x: x[:, torch.from_numpy(IDX)],
     [N(2, 3)]),
    ("getitem pairs", lambda x: x[[0, 2, 2], [1, 0, 0]], lambda x: x[[0, 2, 2], [1, 0, 0]],
     [N(3, 2)]),
    ("getitem bool mask", lambda x: x[MASK], lambda x: x[torch.from_numpy(MASK)], [N(3, 4)]),
    ("getitem row mask", lambda x: x[MASK[:, 0]], lambda x: x[torch.from_numpy(MASK[:, 0])],
     [N(3, 4)]),
    ("concatenate", lambda *xs: ops.concatenate(xs, axis=1), lambda *xs: torch.cat(xs, dim=1),
     [N(2, 1), N(2, 3), N(2, 2)]),
    ("stack", lambda *xs: ops.stack(xs, axis=-1), lambda *xs: torch.stack(xs, dim=-1),
     [N(2, 3), N(2, 3), N(2, 3)]),
    ("split sections", lambda x: ops.split(x, 3, axis=1)[1] * ops.split(x, 3, axis=1)[2],
     lambda x: torch.tensor_split(x, 3, dim=1)[1] * torch.tensor_split(x, 3, dim=1)[2],
     [N(2, 6)]),
    ("split indices", lambda x: ops.concatenate(
        [p * (i + 1) for i, p in enumerate(ops.split(x, [1, 4], axis=0))]),
     lambda x: torch.cat([p * (i + 1) for i, p in enumerate(torch.tensor_split(x, [1, 4]))]),
     [N(6, 2)]),
    ("pad", lambda x: ops.pad(x, ((1, 0), (2, 1)), value=0.5),
     lambda x: F.pad(x, (2, 1, 1, 0), value=0.5), [N(2, 3)]),
    # selection
    ("where", lambda a, b: ops.where(COND, a, b),
     lambda a, b: torch.where(torch.from_numpy(COND), a, b), [N(2, 3), N(3)]),
    ("maximum", ops.maximum, torch.maximum, [D(2, 3), D(3)]),
    ("minimum", ops.minimum, torch.minimum, [D(2, 3), D(2, 1)]),
    ("clip", lambda x: ops.clip(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), [N(3, 4)]),
    ("clip min only", lambda x: ops.clip(x, min=0.1), lambda x: torch.clamp(x, min=0.1),
     [N(3, 4)]),
    # elementwise
    ("exp", ops.exp, torch.exp, [N(2, 3)]),
    ("log", ops.log, torch.log, [P(2, 3)]),
    ("sqrt", ops.sqrt, torch.sqrt, [P(2, 3)]),
    ("abs", ops.abs, torch.abs, [A(2, 3)]),
    ("cast", lambda x: ops.cast(x, np.float64) * 2, lambda x: x.to(torch.float64) * 2, [N(3)]),
    # activations
    ("relu", ops.relu, F.relu, [A(3, 4)]),
    ("leaky_relu", lambda x: ops.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2),
     [A(3, 4)]),
    ("elu", lambda x: ops.elu(x, 0.7), lambda x: F.elu(x, 0.7), [A(3, 4)]),
    ("selu", ops.selu, F.selu, [A(3, 4)]),
    ("sigmoid", ops.sigmoid, torch.sigmoid, [V([-40.0, -3.0, -0.1, 0.0, 0.5, 4.0, 40.0])]),
    ("hard_sigmoid", ops.hard_sigmoid, F.hardsigmoid, [V([-4.0, -2.9, -0.5, 0.0, 1.5, 2.9, 5])]),
    ("tanh", ops.tanh, torch.tanh, [N(3, 4)]),
    ("softmax", lambda x: ops.softmax(x, axis=0), lambda x: torch.softmax(x, dim=0), [N(3, 4)]),
    ("softmax large", ops.softmax, lambda x: torch.softmax(x, dim=-1),
     [V([[1000.0, 999.0, -1000.0], [0.0, 1e-3, 2.0]])]),
    ("log_softmax", ops.log_softmax, lambda x: torch.log_softmax(x, dim=-1),
     [V([[1000.0, 999.0, -1000.0], [0.0, 1e-3, 2.0]])]),
    ("swish beta", lambda x: ops.swish(x, 1.7), lambda x: x * torch.sigmoid(1.7 * x), [N(3, 4)]),
    ("silu", ops.silu, F.silu, [N(3, 4)]),
    ("gelu exact", ops.gelu, F.gelu, [N(3, 4)]),
    ("gelu tanh", lambda x: ops.gelu(x, approximate=True),
     lambda x: F.gelu(x, approximate="tanh"), [N(3, 4)]),
    ("softplus", ops.softplus, F.softplus, [V([-30.0, -2.0, 0.0, 0.3, 5.0, 19.0])]),
    # ties and kinks: PyTorch's conventions
    ("maximum ties", ops.maximum, torch.maximum,
     [V([1.0, 2.0, 3.0, -1.0]), V([1.0, 0.0, 3.0, 2.0])]),
    ("minimum ties bcast", ops.minimum, torch.minimum, [V([[1.0, 2.0], [2.0, 5.0]]), V([2.0])]),
    ("max ties axis", lambda x: ops.max(x, axis=1), lambda x: torch.amax(x, dim=1),
     [V([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, -1.0, 0.5]])]),
    ("max ties all", ops.max, lambda x: torch.max(x), [V([[1.0, 3.0], [3.0, 0.0]])]),
    ("min ties all", ops.min, torch.amin, [V([[0.0, 3.0], [0.0, 0.0]])]),
    ("relu at 0", ops.relu, F.relu, [V([-1.0, 0.0, 2.0])]),
    ("leaky_relu at 0", ops.leaky_relu, F.leaky_relu, [V([-1.0, 0.0, 2.0])]),
    ("elu at 0", ops.elu, F.elu, [V([-1.0, 0.0, 2.0])]),
    ("abs at 0", ops.abs, torch.abs, [V([-1.0, 0.0, 2.0])]),
    ("hard_sigmoid at +-3", ops.hard_sigmoid, F.hardsigmoid, [V([-3.0, 3.0, 0.0])]),
    ("clip at bounds", lambda x: ops.clip(x, -1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0),
     [V([-1.0, 1.0, 0.0, 2.0])]),
    ("x**0 and x**2 at 0", lambda x: x**0 + x**2, lambda x: x**0 + x**2, [V([0.0, 1.5, -2.0])]),
    ("pow zero base", ops.pow, torch.pow, [V([0.0, 0.0, 2.0]), V([2.0, 0.0, 1.5])]),
    ("sqrt at 0", ops.sqrt, torch.sqrt, [V([0.0, 4.0])]),
]  # fmt: skip


# PyTorch's hardsigmoid backward multiplies by 1.0f / 6.0f, a float32 constant, even in
# float64: its float64 gradients are only float32-accurate (ember's are exact; gradcheck pins them)
LOOSER = {"hard_sigmoid": 1e-7, "hard_sigmoid at +-3": 1e-7}


def _run_ember(fn, arrays, upstream_seed, dtype):
    xs = [em.tensor(a.astype(dtype), requires_grad=True, dtype=dtype) for a in arrays]
    out = fn(*xs)
    g = np.random.default_rng(upstream_seed).standard_normal(out.shape).astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.backward(g)
    return out.numpy(), [x.grad for x in xs], g


def _run_torch(fn, arrays, g, dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    xs = [torch.tensor(a, dtype=tdtype, requires_grad=True) for a in arrays]
    out = fn(*xs)
    out.backward(torch.from_numpy(g).to(out.dtype))
    return out.detach().numpy(), [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,fn,tfn,specs", CASES, ids=[c[0] for c in CASES])
def test_forward_and_backward_match_pytorch(name, fn, tfn, specs, dtype):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [make(s, rng) for s in specs]
    out, grads, g = _run_ember(fn, arrays, 7, dtype)
    t_out, t_grads = _run_torch(tfn, arrays, g, dtype)
    assert out.dtype == t_out.dtype
    assert out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, **TOL[dtype], err_msg=f"{name}: forward")
    tol = dict(TOL[dtype])
    tol["rtol"] = max(tol["rtol"], LOOSER.get(name, 0.0))
    for i, (ga, gt) in enumerate(zip(grads, t_grads)):
        assert ga is not None and ga.dtype == dtype and ga.shape == gt.shape
        np.testing.assert_allclose(ga, gt, **tol, err_msg=f"{name}: gradient of input {i}")


def test_every_op_exported_by_ember_ops_is_compared():
    # a case's name starts with the op it compares
    assert set(ops.__all__) - {name.split()[0] for name, *_ in CASES} == set()
