"""The backward pass itself: order, fan-out, freeing, modes and errors."""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import ember as em
from ember.errors import GraphError, ShapeError


def test_scalar_backward_needs_no_argument_and_matches_hand_derivative():
    x = em.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x @ x.T).relu().sum()
    y.backward()
    # d/dx sum(x x^T) = (1 1^T) x + (1 1^T)^T x = 2 * column sums broadcast
    expected = 2 * np.ones((2, 2)) @ x.data
    np.testing.assert_allclose(x.grad, expected)


def test_ten_thousand_op_chain_does_not_hit_recursion_limit():
    x = em.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**10_000, rtol=1e-3)


def test_fan_out_accumulates_every_path():
    x = em.tensor(3.0, requires_grad=True, dtype=np.float64)
    y = x * x + x * 2 + x  # dy/dx = 2x + 3
    y.backward()
    assert x.grad == pytest.approx(9.0)


def test_same_array_gradient_given_to_two_leaves_is_not_shared():
    a = em.tensor([1.0, 2.0], requires_grad=True)
    b = em.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 5  # in-place change to one leaf's grad must not reach the other
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_gradients_accumulate_across_backward_calls_until_cleared():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_broadcast_gradients_are_summed_back_to_input_shape():
    a = em.tensor(np.ones((4, 3)), requires_grad=True)
    b = em.tensor(np.ones((3,)), requires_grad=True)
    c = em.tensor(np.ones((4, 1)), requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3,) and np.all(b.grad == 4)
    assert c.grad.shape == (4, 1) and np.all(c.grad == 3)


def test_no_grad_records_nothing():
    x = em.tensor([1.0], requires_grad=True)
    with em.no_grad():
        y = x * 2
    assert not y.requires_grad and y._ctx is None
    with pytest.raises(GraphError, match="does not require grad"):
        y.sum().backward()


def test_second_backward_through_freed_graph_raises_with_advice():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_backward_on_non_scalar_without_gradient_raises():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GraphError, match=r"non-scalar output of shape \(2,\)"):
        (x * 2).backward()


def test_graph_is_freed_after_backward():
    x = em.tensor(np.ones(3), requires_grad=True)
    h = x * 2
    ref = weakref.ref(h._ctx)
    loss = (h * h).sum()
    loss.backward()
    del h, loss
    gc.collect()
    assert ref() is None


def test_memory_stays_flat_over_many_iterations():
    rng = np.random.default_rng(0)
    w = em.tensor(rng.standard_normal((64, 64)), requires_grad=True)
    x = rng.standard_normal((32, 64)).astype(np.float32)

    def step():
        loss = ((em.tensor(x) @ w).tanh() @ w).relu().mean()
        loss.backward()
        w.grad = None

    for _ in range(50):
        step()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(2000):
        step()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 1_000_000, f"memory grew by {grown} bytes over 2,000 iterations"


def test_ndarray_on_the_left_gives_a_tensor():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    for y in (np.ones(2) + x, np.ones(2) * x, np.ones(2) - x, np.ones(2) / x):
        assert isinstance(y, em.Tensor) and y.requires_grad


def test_python_floats_take_floatx():
    assert em.tensor([1.0, 2.0]).dtype == np.float32
    assert em.tensor(np.ones(2, dtype=np.float64)).dtype == np.float32
    em.set_floatx("float64")
    assert em.tensor([1.0]).dtype == np.float64
    assert em.tensor([1, 2]).dtype.kind == "i"


def test_scalar_ops_keep_float32():
    x = em.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (2.0 * x + 1.0) / 3.0 - x**2.0
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_incompatible_shapes_name_both():
    a = em.tensor(np.ones((2, 3)))
    b = em.tensor(np.ones((4,)))
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(4,\)"):
        a + b
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(4, 5\)"):
        a @ em.tensor(np.ones((4, 5)))


def test_detect_anomaly_names_the_op():
    x = em.tensor([-1.0, 1.0], requires_grad=True)
    with em.detect_anomaly(), pytest.raises(FloatingPointError, match="Log"):
        with np.errstate(invalid="ignore"):
            x.log().sum().backward()


def test_detect_anomaly_catches_backward_inf():
    x = em.tensor([0.0, 1.0], requires_grad=True)
    with em.detect_anomaly(), pytest.raises(FloatingPointError, match="backward of Sqrt"):
        with np.errstate(divide="ignore"):
            x.sqrt().sum().backward()


def test_multi_output_op_gets_zero_gradient_for_unused_output():
    x = em.tensor(np.arange(6.0), requires_grad=True)
    a, b = em.ops.split(x, 2)
    (a * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 2, 2, 0, 0, 0])
