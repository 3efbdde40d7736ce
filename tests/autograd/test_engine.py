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


# --------------------------------------------------------------------------- order and routing
@pytest.mark.parametrize("left_first", [True, False])
def test_node_runs_after_all_its_consumers_whatever_the_input_order(left_first):
    # b feeds both a and the sum: b's backward must wait for a's contribution (d/dx = 2 + 6)
    x = em.tensor(1.0, requires_grad=True, dtype=np.float64)
    b = x * 2
    a = b * 3
    (b + a if left_first else a + b).backward()
    assert x.grad == pytest.approx(8.0)


def test_ten_thousand_op_chain_of_mixed_ops_with_a_skip_input():
    x = em.tensor(0.5, requires_grad=True, dtype=np.float64)
    y = x
    for i in range(10_000):
        y = (y * 0.9999).tanh() if i % 2 else y + x * 1e-4
    y.backward()
    # the same chain by hand: forward mode along the chain, dy/dx accumulated step by step
    val, dval = 0.5, 1.0
    for i in range(10_000):
        if i % 2:
            val = np.tanh(val * 0.9999)
            dval = dval * 0.9999 * (1 - val * val)
        else:
            val, dval = val + 0.5e-4, dval + 1e-4
    assert x.grad == pytest.approx(dval, rel=1e-9)


def test_wide_fan_out_of_one_tensor_into_many_ops():
    x = em.tensor(np.arange(3.0), requires_grad=True, dtype=np.float64)
    total = em.ops.stack([x * float(k) for k in range(1, 501)]).sum()
    total.backward()
    np.testing.assert_allclose(x.grad, np.full(3, 500 * 501 / 2))


def test_multi_output_op_with_both_outputs_used():
    x = em.tensor(np.arange(4.0), requires_grad=True)
    a, b = em.ops.split(x, 2)
    (a * 3 + b * 5).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3, 5, 5])


class _FirstOnly(em.Function):
    """z = a (b only rides along): backward gives b no gradient."""

    def forward(self, a, b):
        return a.copy()

    def backward(self, g):
        return g, None


def test_input_that_gets_no_gradient_is_skipped_and_its_subgraph_still_freed():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    w = em.tensor([3.0, 4.0], requires_grad=True)
    side = w * 2
    ref = weakref.ref(side._ctx)
    _FirstOnly.apply(x * 1, side).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    assert w.grad is None
    assert not hasattr(ref(), "inputs")  # the side branch was visited and cleared


class _TooFew(em.Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g


class _WrongShape(em.Function):
    def forward(self, a):
        return a.T.copy()

    def backward(self, g):
        return g  # forgot to transpose back


def test_backward_returning_too_few_gradients_names_the_op():
    a = em.tensor([1.0], requires_grad=True)
    b = em.tensor([2.0], requires_grad=True)
    with pytest.raises(GraphError, match=r"_TooFew returned 1 gradient\(s\) for 2 inputs"):
        _TooFew.apply(a, b).sum().backward()


def test_backward_returning_a_wrongly_shaped_gradient_names_the_op_and_shapes():
    a = em.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(GraphError, match=r"_WrongShape.*\(3, 2\).*\(2, 3\)"):
        _WrongShape.apply(a).sum().backward()


# --------------------------------------------------------------------------- comparisons, NumPy
@pytest.mark.parametrize(
    "compare",
    [
        lambda x, y: x < y, lambda x, y: x <= y, lambda x, y: x > y,
        lambda x, y: x >= y, lambda x, y: x == y, lambda x, y: x != y,
    ],
)  # fmt: skip
@pytest.mark.parametrize("other", ["tensor", "scalar", "ndarray-left"])
def test_comparisons_give_bool_tensors_that_carry_no_gradient(compare, other):
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([2.0, 2.0, 1.0])
    x = em.tensor(a, requires_grad=True)
    if other == "tensor":
        out, expected = compare(x, em.tensor(b, requires_grad=True)), compare(a, b)
    elif other == "scalar":
        out, expected = compare(x, 2.0), compare(a, 2.0)
    else:  # NumPy defers to the Tensor's reflected comparison
        out, expected = compare(b, x), compare(b, a)
    assert isinstance(out, em.Tensor)
    assert out.dtype == np.bool_ and not out.requires_grad and out._ctx is None
    np.testing.assert_array_equal(out.numpy(), expected)


def test_ndarray_matmul_and_comparison_on_the_left_give_tensors():
    x = em.tensor(np.eye(2), requires_grad=True)
    y = np.array([[1.0, 2.0]]) @ x
    assert isinstance(y, em.Tensor) and y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [2.0, 2.0]])


def test_numpy_ufunc_on_a_tensor_refuses_instead_of_dropping_the_graph():
    x = em.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError):
        np.exp(x)


def test_numpy_float64_operands_do_not_upcast_float32():
    x = em.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for y in (
        x * np.float64(2.0),
        np.float64(2.0) * x,
        x / np.sqrt(np.float64(2.0)),
        np.ones(3) + x,
        x - np.ones(3, dtype=np.float64),
        em.ops.where(np.array([True, False, True]), x, np.zeros(3)),
    ):
        assert y.dtype == np.float32
    # but a float64 Tensor keeps float64
    z = em.tensor(np.ones(2), dtype=np.float64) * np.float32(2.0)
    assert z.dtype == np.float64


def test_leaf_gradient_is_not_the_callers_upstream_array():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    g = np.array([1.0, 1.0], dtype=np.float32)
    (x + 0).backward(g)
    g[:] = 100
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_backward_with_gradient_of_wrong_shape_raises():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ShapeError, match=r"grad has shape \(3,\) but the tensor has shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_a_leaf_gives_ones():
    x = em.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad == 1.0


def test_iterating_a_tensor_yields_rows_that_keep_the_graph():
    x = em.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    (rows[0] * 1 + rows[2] * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [[1, 1], [0, 0], [2, 2]])
    with pytest.raises(TypeError):
        iter(em.tensor(1.0))


def test_enable_grad_inside_no_grad_records_again():
    x = em.tensor([1.0], requires_grad=True)
    with em.no_grad():
        assert not em.is_grad_enabled()
        with em.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad
    assert em.is_grad_enabled()


def test_grad_mode_is_restored_after_backward_raises():
    a = em.tensor([1.0], requires_grad=True)
    b = em.tensor([2.0], requires_grad=True)
    with pytest.raises(GraphError):
        _TooFew.apply(a, b).sum().backward()
    assert em.is_grad_enabled()


# --------------------------------------------------------------------------- errors
def test_reusing_an_intermediate_after_its_graph_was_freed_raises_on_backward():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.sum().backward()
    y = (h * 3).sum()  # the forward pass still works
    with pytest.raises(GraphError, match="already freed"):
        y.backward()


def test_non_scalar_backward_error_says_what_to_do():
    x = em.tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(GraphError, match=r"call \.sum\(\) or \.mean\(\) first"):
        (x * 2).backward()


@pytest.mark.parametrize(
    "make, pattern",
    [
        (
            lambda: em.tensor(np.ones((2, 3))).reshape((4, 2)),
            r"shape \(2, 3\).*into shape \(4, 2\)",
        ),
        (
            lambda: em.ops.concatenate([em.tensor(np.ones((2, 3))), em.tensor(np.ones((3, 2)))]),
            r"\(2, 3\), \(3, 2\)",
        ),
        (
            lambda: em.ops.stack([em.tensor(np.ones(2)), em.tensor(np.ones(3))]),
            r"\(2,\), \(3,\)",
        ),
        (lambda: em.tensor(np.ones((2, 3)))[2], r"index 2 .*shape \(2, 3\)"),
        (lambda: em.tensor(np.ones((2, 3)))[:, [0, 3]], r"shape \(2, 3\)"),
        (lambda: em.tensor(np.ones(5)).broadcast_to((2, 4)), r"shape \(5,\) to \(2, 4\)"),
        (
            lambda: em.tensor(np.ones((2, 3))) * em.tensor(np.ones((3, 2))),
            r"\(2, 3\) and \(3, 2\)",
        ),
        (
            lambda: em.tensor(np.ones((2, 2, 3))) @ em.tensor(np.ones((3, 3, 4))),
            r"batch axes of \(2, 2, 3\) and \(3, 3, 4\)",
        ),
        (lambda: em.ops.split(em.tensor(np.ones(5)), 2), r"shape \(5,\)"),
        (lambda: em.tensor(np.ones((2, 3))).transpose(0, 0), r"shape \(2, 3\)"),
        (lambda: em.ops.pad(em.tensor(np.ones((2, 3))), [(1, 1)] * 3), r"shape \(2, 3\)"),
        (lambda: em.tensor(np.ones((2, 3))).sum(axis=2), r"axis 2 .*shape \(2, 3\)"),
    ],
)
def test_shape_errors_are_shape_errors_that_name_the_shapes(make, pattern):
    with pytest.raises(ShapeError, match=pattern):
        make()


def test_integer_math_gives_floatx_not_float64():
    i = em.tensor([1, 2, 3])
    assert i.dtype.kind == "i"
    for y in (i * 0.5, i / 2, i.mean(), 1.5 - i):
        assert y.dtype == np.float32
    np.testing.assert_allclose((i / 2).numpy(), [0.5, 1.0, 1.5])
    assert (i + 1).dtype == i.dtype  # integer results stay integer
    assert em.ops.cast(i, np.float64).dtype == np.float64  # an explicit cast is obeyed
    em.set_floatx("float64")
    assert (i / 2).dtype == np.float64
