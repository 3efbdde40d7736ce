"""The batch_norm op against PyTorch at CNN-like shapes (channels last, 32-65 channels, batches
large enough to split into chunks), with the compiled kernels on and off, in float64 (1e-8)
and float32 (1e-4 relative): training output, batch statistics and every gradient; a
BatchNormalization -> ReLU stack in training and in inference (moving statistics)."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.ops import _accel
from ember.ops.norm import batch_norm

from .tolerance import close

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")
F = torch.nn.functional


@pytest.fixture(autouse=True, params=[True, False], ids=["kernels", "numpy"])
def accel(request):
    with _accel.enabled(request.param):
        yield request.param


def _nchw(t):
    return t.permute(0, 3, 1, 2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(16, 8, 8, 32), (5, 7, 9, 65), (300, 40)])
def test_batch_norm_training_matches_pytorch(shape, dtype):
    r = np.random.default_rng(shape[-1])
    c = shape[-1]
    x = (r.standard_normal(shape) * 2 + 3).astype(dtype)
    gamma, beta = (r.random(c) + 0.5).astype(dtype), r.standard_normal(c).astype(dtype)
    g = r.standard_normal(shape).astype(dtype)
    ex, eg, eb = (em.tensor(a, requires_grad=True, dtype=dtype) for a in (x, gamma, beta))
    y, mean, var = batch_norm(ex, eg, eb, training=True)
    y.backward(g)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    # torch wants channels at axis 1: (N, H, W, C) -> (N, C, H, W); (N, C) stays
    tin = _nchw(tx) if len(shape) == 4 else tx
    ty = F.batch_norm(tin, None, None, tg, tb, training=True, eps=1e-3)
    ty = ty.permute(0, 2, 3, 1) if len(shape) == 4 else ty
    ty.backward(torch.tensor(g))
    axes = tuple(range(len(shape) - 1))
    close(y, ty, dtype, "y")
    close(mean, tx.detach().mean(dim=axes), dtype, "mean")
    close(var, tx.detach().var(dim=axes, unbiased=False), dtype, "biased variance")
    close(ex.grad, tx.grad, dtype, "dx")
    close(eg.grad, tg.grad, dtype, "dgamma")
    close(eb.grad, tb.grad, dtype, "dbeta")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_norm_relu_stack_in_training_and_inference_matches_pytorch(dtype):
    r = np.random.default_rng(7)
    em.set_floatx(dtype)
    try:
        bn, act = layers.BatchNormalization(momentum=0.9), layers.Activation("relu")
        bn(np.zeros((1, 6, 6, 32), dtype=dtype), training=False)  # build
        bn.set_weights([r.random(32) + 0.5, r.standard_normal(32), np.zeros(32), np.ones(32)])
        tbn = torch.nn.BatchNorm2d(32, eps=1e-3, momentum=0.1).to(getattr(torch, dtype))
        with torch.no_grad():
            tbn.weight.copy_(torch.tensor(bn.gamma.data))
            tbn.bias.copy_(torch.tensor(bn.beta.data))
        for step in range(3):  # training steps move the moving mean the same way
            x = (r.standard_normal((8, 6, 6, 32)) * 2 + step).astype(dtype)
            ex = em.tensor(x, requires_grad=True)
            y = act(bn(ex, training=True))
            tx = torch.tensor(x, requires_grad=True)
            ty = torch.relu(tbn.train()(_nchw(tx))).permute(0, 2, 3, 1)
            g = r.standard_normal(x.shape).astype(dtype)
            y.backward(g)
            ty.backward(torch.tensor(g))
            close(y, ty, dtype, "training output")
            close(ex.grad, tx.grad, dtype, "training dx")
        close(bn.moving_mean, tbn.running_mean, dtype, "moving mean")
        x = r.standard_normal((4, 6, 6, 32)).astype(dtype)
        # inference with Keras's moving variance (biased batch variances; torch's are unbiased)
        tbn.running_var.copy_(torch.tensor(bn.moving_variance.data))
        ex = em.tensor(x, requires_grad=True)
        y = act(bn(ex, training=False))
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.relu(tbn.eval()(_nchw(tx))).permute(0, 2, 3, 1)
        close(y, ty, dtype, "inference output")
        y.sum().backward()
        ty.sum().backward()
        close(ex.grad, tx.grad, dtype, "inference dx")
    finally:
        em.set_floatx("float32")
