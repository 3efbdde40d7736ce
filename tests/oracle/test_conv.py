"""conv2d and the Conv2D layer against PyTorch: forward, input gradient and kernel/bias gradients
over randomized configurations (kernel 1/3/5, strides 1/2, dilation 1/2, odd and even sizes,
both paddings, every algorithm), in float64 (1e-8) and float32 (1e-4 relative).

PyTorch is NCHW with (out, in, kh, kw) kernels: inputs are transposed on the way in and results
on the way out. SAME padding is applied with ``F.pad`` first, because TensorFlow's rule may pad
one more after than before, which ``conv2d(padding=...)`` cannot express."""

import itertools

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.ops import _accel
from ember.ops.conv import Conv2D, conv_geometry

from .tolerance import close

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")
F = torch.nn.functional


def torch_conv(x, w, b, strides, padding, dilation):
    """The same convolution in PyTorch, returning (y, [grad x, grad w, grad b] closure)."""
    kh, kw = w.shape[:2]
    _, (top, bottom, left, right) = conv_geometry(
        x.shape[1:3], (kh, kw), strides, padding, dilation
    )
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    tw = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    tb = torch.tensor(b.copy(), requires_grad=True)
    ty = F.conv2d(F.pad(tx, (left, right, top, bottom)), tw, tb, stride=strides, dilation=dilation)
    return tx, tw, tb, ty


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


# every kernel/stride/dilation/padding combination (a 1x1 kernel has no dilation)
CONFIGS = [
    (k, s, d, padding)
    for k, s, d, padding in itertools.product([1, 3, 5], [1, 2], [1, 2], ["valid", "same"])
    if not (k == 1 and d == 2)
]


def random_config(i):
    """Configuration i with random sizes: heights and widths both odd and even across i."""
    k, s, d, padding = CONFIGS[i]
    r = np.random.default_rng(i)
    span = (k - 1) * d + 1
    h = span + int(r.integers(0, 3)) * 2 + i % 2  # parity alternates with i
    w = span + int(r.integers(0, 3)) * 2 + (i // 2) % 2
    c, o = int(r.integers(1, 5)), int(r.integers(1, 5))
    return r, k, (s, s), (d, d), padding, (int(r.integers(1, 4)), h, w, c), o


# which forward / input-gradient algorithms apply to a kernel size and strides
ALGORITHMS = {
    "chunks": lambda k, s: True, "im2col": lambda k, s: True, "rows": lambda k, s: s == (1, 1),
    "1x1": lambda k, s: k == 1,
}  # fmt: skip
DX_ALGORITHMS = {
    "flip": lambda k, s: s == (1, 1), "scatter": lambda k, s: True,
    "rows": lambda k, s: s == (1, 1), "1x1": lambda k, s: k == 1,
}  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_conv2d_matches_pytorch(i, dtype):
    r, k, strides, dilation, padding, x_shape, o = random_config(i)
    x = r.standard_normal(x_shape).astype(dtype)
    w = r.standard_normal((k, k, x_shape[3], o)).astype(dtype)
    b = r.standard_normal(o).astype(dtype)
    tx, tw, tb, ty = torch_conv(x, w, b, strides, padding, dilation)
    g = r.standard_normal(tuple(ty.permute(0, 2, 3, 1).shape)).astype(dtype)
    ty.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    for algo, dx_algo in itertools.product(ALGORITHMS, DX_ALGORITHMS):
        if not (ALGORITHMS[algo](k, strides) and DX_ALGORITHMS[dx_algo](k, strides)):
            continue
        ex, ew, eb = (em.tensor(a, requires_grad=True, dtype=dtype) for a in (x, w, b))
        y = Conv2D.apply(
            ex, ew, eb, strides=strides, padding=padding, dilation=dilation, algorithm=algo,
            dx_algorithm=dx_algo,
        )  # fmt: skip
        close(y.data, nhwc(ty), dtype)
        y.backward(g)
        close(ex.grad, nhwc(tx.grad), dtype)
        close(ew.grad, tw.grad.numpy().transpose(2, 3, 1, 0), dtype)
        close(eb.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "shape, filters", [((2, 14, 14, 32), 16), ((2, 9, 8, 24), 8), ((1, 12, 12, 3), 32)]
)
def test_conv2d_matches_pytorch_at_benchmark_like_widths(shape, filters, dtype):
    # wide channel counts take the automatic choice of algorithm ("rows" above 64 values/row)
    r = np.random.default_rng(sum(shape))
    x = r.standard_normal(shape).astype(dtype)
    w = (r.standard_normal((3, 3, shape[3], filters)) / 10).astype(dtype)
    b = r.standard_normal(filters).astype(dtype)
    tx, tw, tb, ty = torch_conv(x, w, b, (1, 1), "same", (1, 1))
    g = r.standard_normal((*shape[:3], filters)).astype(dtype)
    ty.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    ex, ew, eb = (em.tensor(a, requires_grad=True, dtype=dtype) for a in (x, w, b))
    y = em.functional.conv2d(ex, ew, eb, padding="same")
    close(y.data, nhwc(ty), dtype)
    y.backward(g)
    close(ex.grad, nhwc(tx.grad), dtype)
    close(ew.grad, tw.grad.numpy().transpose(2, 3, 1, 0), dtype)
    close(eb.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize(
    "kernel, strides, padding, dilation, activation",
    list(itertools.product([3, (2, 5)], [1, 2], ["valid", "same"], [1], [None, "relu"]))
    + [(3, 1, "same", 2, "tanh"), ((3, 2), 1, "valid", (2, 1), None)],
)
def test_conv2d_layer_matches_pytorch(kernel, strides, padding, dilation, activation, float64):
    r = np.random.default_rng(7)
    layer = layers.Conv2D(
        3, kernel, strides=strides, padding=padding, dilation_rate=dilation,
        activation=activation, bias_initializer="random_normal",
    )  # fmt: skip
    x = r.standard_normal((2, 9, 8, 2))
    ex = em.tensor(x, requires_grad=True)
    y = layer(ex)
    kernel_np, bias_np = layer.get_weights()
    s, d = layer.strides, layer.dilation_rate
    tx, tw, tb, ty = torch_conv(x, kernel_np, bias_np, s, padding, d)
    ty = {None: lambda t: t, "relu": F.relu, "tanh": torch.tanh}[activation](ty)
    close(y.data, nhwc(ty), "float64")
    g = r.standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    close(ex.grad, nhwc(tx.grad), "float64")
    close(layer.kernel.grad, tw.grad.numpy().transpose(2, 3, 1, 0), "float64")
    close(layer.bias.grad, tb.grad.numpy(), "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("shape, filters", [((2, 7, 9, 3), 4), ((3, 10, 8, 16), 24)])
def test_conv2d_winograd_matches_pytorch(shape, filters, padding, dtype):
    # the compiled Winograd F(2x2, 3x3) path (Numba), odd and even sizes, both dx paths
    pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")
    r = np.random.default_rng(sum(shape) + filters)
    x = r.standard_normal(shape).astype(dtype)
    w = (r.standard_normal((3, 3, shape[3], filters)) / 3).astype(dtype)
    b = r.standard_normal(filters).astype(dtype)
    tx, tw, tb, ty = torch_conv(x, w, b, (1, 1), padding, (1, 1))
    g = r.standard_normal(tuple(ty.permute(0, 2, 3, 1).shape)).astype(dtype)
    ty.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    for dx_algo in ("winograd", "flip"):
        ex, ew, eb = (em.tensor(a, requires_grad=True, dtype=dtype) for a in (x, w, b))
        with _accel.enabled(True):  # whatever EMBER_ACCEL says
            y = Conv2D.apply(
                ex, ew, eb, padding=padding, algorithm="winograd", dx_algorithm=dx_algo
            )
            close(y.data, nhwc(ty), dtype)
            y.backward(g)
        close(ex.grad, nhwc(tx.grad), dtype)
        close(ew.grad, tw.grad.numpy().transpose(2, 3, 1, 0), dtype)
        close(eb.grad, tb.grad.numpy(), dtype)
