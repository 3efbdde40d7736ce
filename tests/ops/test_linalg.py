"""Matrix products: 1-D cases, errors and the fused linear op."""

import numpy as np
import pytest

import ember as em
from ember import ops
from ember.errors import ShapeError
from ember.ops.linalg import linear


def test_dot_product_of_two_vectors_is_a_scalar_with_both_gradients():
    a = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = em.tensor([4.0, 5.0, 6.0], requires_grad=True)
    y = a @ b
    assert y.shape == () and y.item() == 32.0
    y.backward()
    np.testing.assert_array_equal(a.grad, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0, 3.0])


def test_matmul_error_names_both_shapes_and_the_axes():
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(4, 5\).*last axis of the first \(3\)"):
        ops.matmul(em.tensor(np.ones((2, 3))), em.tensor(np.ones((4, 5))))
    with pytest.raises(ShapeError, match="at least 1-D"):
        ops.matmul(em.tensor(2.0), em.tensor(np.ones(2)))


def test_linear_is_x_w_plus_b_over_the_last_axis():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    tx, tw, tb = (em.tensor(v, requires_grad=True, dtype=np.float64) for v in (x, w, b))
    y = linear(tx, tw, tb)
    np.testing.assert_allclose(y.numpy(), x @ w + b)
    y.sum().backward()
    np.testing.assert_allclose(tw.grad, x.reshape(-1, 4).sum(0)[:, None] * np.ones((1, 5)))
    np.testing.assert_allclose(tb.grad, np.full(5, 6.0))
    np.testing.assert_allclose(tx.grad, np.broadcast_to(w.sum(1), (2, 3, 4)))


def test_linear_error_names_input_and_kernel_shapes():
    with pytest.raises(ShapeError, match=r"input shape \(2, 3\), kernel shape \(4, 5\)"):
        linear(em.tensor(np.ones((2, 3))), em.tensor(np.ones((4, 5))))
