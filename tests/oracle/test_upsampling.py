"""UpSampling2D against PyTorch's nearest interpolation (values and gradients)."""

import numpy as np
import pytest

import ember as em
from ember.ops.upsample import upsample2d

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")


@pytest.mark.parametrize("size", [(2, 2), (3, 2)])
def test_upsample2d_matches_torch_nearest_interpolation(size, float64, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    g = rng.normal(size=(2, 3 * size[0], 4 * size[1], 5))
    xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_(True)
    ref = torch.nn.functional.interpolate(xt, scale_factor=size, mode="nearest")
    ref = ref.permute(0, 2, 3, 1)
    (ref * torch.tensor(g)).sum().backward()
    xe = em.tensor(x, requires_grad=True)
    out = upsample2d(xe, size)
    (out * g).sum().backward()
    np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
    np.testing.assert_allclose(xe.grad, xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-12)
