"""ReLU at activation sizes (above the compiled kernels' threshold) against PyTorch, with the
kernels on and off, in float64 and float32: output and input gradient, ties at zero."""

import numpy as np
import pytest

import ember as em
from ember.ops import _accel
from ember.ops.activation import relu

from .tolerance import close

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")


@pytest.mark.parametrize("on", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relu_on_a_large_activation_matches_pytorch(dtype, on):
    r = np.random.default_rng(0)
    x = r.standard_normal((16, 12, 12, 32))
    x[x < -1.5] = 0.0  # exact zeros: torch's gradient there is 0
    x = x.astype(dtype)
    g = r.standard_normal(x.shape).astype(dtype)
    with _accel.enabled(on):
        ex = em.tensor(x, requires_grad=True, dtype=dtype)
        y = relu(ex)
        y.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(g))
    close(y, ty, dtype, "relu")
    close(ex.grad, tx.grad, dtype, "relu gradient")
