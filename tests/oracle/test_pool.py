"""Pooling ops and layers against PyTorch: forward and input gradient over randomized
configurations (pool 1/2/3, strides 1/2/3, odd and even sizes, both paddings, ties after a
ReLU), in float64 (1e-8) and float32 (1e-4 relative), with the compiled kernels on and off.

SAME padding is applied with ``F.pad`` first (-inf for max, so padding never wins; for average,
PyTorch's windows are then divided by the count of real elements, as TensorFlow does)."""

import itertools

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.ops import _accel
from ember.ops.conv import conv_geometry
from ember.ops.pool import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d

from .tolerance import close

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")
F = torch.nn.functional


@pytest.fixture(autouse=True, params=[True, False], ids=["kernels", "numpy"])
def accel(request):
    """Every test runs with the compiled pooling kernels (where Numba is installed) and on the
    NumPy path."""
    with _accel.enabled(request.param):
        yield request.param


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def torch_pool(tx, kind, pool, strides, padding):
    (h, w) = tx.shape[2:]
    _, (top, bottom, left, right) = conv_geometry((h, w), pool, strides, padding, 1)
    pads = (left, right, top, bottom)
    if kind == "max":
        return F.max_pool2d(F.pad(tx, pads, value=-float("inf")), pool, strides)
    total = F.avg_pool2d(F.pad(tx, pads), pool, strides, divisor_override=1)
    ones = F.pad(torch.ones(1, 1, h, w, dtype=tx.dtype), pads)
    return total / F.avg_pool2d(ones, pool, strides, divisor_override=1)


CONFIGS = [
    (kind, p, s, padding)
    for kind, p, s, padding in itertools.product(
        ["max", "avg"], [1, 2, 3], [1, 2, 3], ["valid", "same"]
    )
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_pooling_matches_pytorch(i, dtype):
    kind, p, s, padding = CONFIGS[i]
    r = np.random.default_rng(i)
    shape = (
        int(r.integers(1, 4)),
        p + i % 2 + int(r.integers(0, 4)),
        p + int(r.integers(0, 5)),
        3,
    )
    x = r.standard_normal(shape)
    if i % 3 == 0:
        x = np.maximum(x, 0)  # after a ReLU: windows of tied zeros
    x = x.astype(dtype)
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    ty = torch_pool(tx, kind, (p, p), (s, s), padding)
    ex = em.tensor(x, requires_grad=True, dtype=dtype)
    y = (max_pool2d if kind == "max" else avg_pool2d)(ex, p, s, padding)
    close(y.data, nhwc(ty), dtype)
    g = r.standard_normal(y.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    close(ex.grad, nhwc(tx.grad), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("relu", [False, True])
def test_global_pooling_matches_pytorch(relu, dtype):
    r = np.random.default_rng(int(relu))
    x = r.standard_normal((3, 5, 4, 6))
    x = (np.maximum(x, 0) if relu else x).astype(dtype)
    g = r.standard_normal((3, 6)).astype(dtype)
    for ours, theirs in (
        (global_avg_pool2d, lambda t: F.adaptive_avg_pool2d(t, 1)),
        (global_max_pool2d, lambda t: F.adaptive_max_pool2d(t, 1)),
    ):
        tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        ty = theirs(tx)[:, :, 0, 0]
        ex = em.tensor(x, requires_grad=True, dtype=dtype)
        y = ours(ex)
        close(y.data, ty.detach().numpy(), dtype)
        y.backward(g)
        ty.backward(torch.tensor(g))
        close(ex.grad, nhwc(tx.grad), dtype)


def test_pooling_layers_match_pytorch_in_a_small_cnn_stack(float64):
    # conv -> relu -> max pool -> average pool (SAME) -> global average, gradients end to end
    r = np.random.default_rng(3)
    x = r.standard_normal((2, 9, 10, 2))
    conv = layers.Conv2D(4, 3, padding="same", activation="relu")
    stack = [layers.MaxPool2D(), layers.AveragePooling2D(2, strides=1, padding="same")]
    ex = em.tensor(x, requires_grad=True)
    y = conv(ex)
    for layer in stack:
        y = layer(y)
    y = layers.GlobalAveragePooling2D()(y)
    k, b = conv.get_weights()
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    tk = torch.tensor(k.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    t = F.relu(F.conv2d(tx, tk, torch.tensor(b), padding=1))
    t = torch_pool(t, "max", (2, 2), (2, 2), "valid")
    t = torch_pool(t, "avg", (2, 2), (1, 1), "same").mean(dim=(2, 3))
    close(y.data, t.detach().numpy(), "float64")
    y.sum().backward()
    t.sum().backward()
    close(ex.grad, nhwc(tx.grad), "float64")
    close(conv.kernel.grad, tk.grad.numpy().transpose(2, 3, 1, 0), "float64")
