"""Reductions: ties, degenerate variance, axis errors, dtypes."""

import numpy as np
import pytest

import ember as em
from ember import ops
from ember.errors import ShapeError


def test_max_ties_share_the_gradient_equally():
    x = em.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    assert x.grad.dtype == np.float32


def test_min_over_everything_with_keepdims():
    x = em.tensor([[4.0, 1.0], [1.0, 5.0]], requires_grad=True)
    y = x.min(keepdims=True)
    assert y.shape == (1, 1) and y.item() == 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5], [0.5, 0]])


def test_var_with_ddof_and_its_gradient():
    a = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    x = em.tensor(a, requires_grad=True, dtype=np.float64)
    y = x.var(axis=1, ddof=1)
    np.testing.assert_allclose(y.numpy(), [7 / 3, 3.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * (a - a.mean(1, keepdims=True)) / 2)


def test_var_with_no_degrees_of_freedom_is_nan_as_in_numpy():
    y = em.tensor([3.0]).var(ddof=1)
    assert np.isnan(y.item())


@pytest.mark.parametrize("axis", [2, -3, (0, 5)])
def test_axis_out_of_range_names_axis_and_shape(axis):
    with pytest.raises(ShapeError, match=r"axis .* out of range .* shape \(2, 3\)"):
        ops.sum(em.tensor(np.ones((2, 3))), axis=axis)


def test_mean_gradient_is_one_over_the_count_of_reduced_elements():
    x = em.tensor(np.ones((2, 3, 4)), requires_grad=True)
    x.mean(axis=(0, 2)).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 3, 4), 1 / 8))


def test_sum_of_a_scalar_tensor():
    x = em.tensor(2.0, requires_grad=True)
    x.sum().backward()
    assert x.grad == 1.0
