"""Shape ops: indexing forms, joins of many tensors, split semantics, padding."""

import numpy as np
import pytest

import ember as em
from ember import ops
from ember.errors import ShapeError


def test_boolean_mask_gradient_goes_back_to_the_picked_elements():
    a = np.array([[1.0, -2.0], [-3.0, 4.0]])
    x = em.tensor(a, requires_grad=True)
    y = x[x > 0]
    np.testing.assert_array_equal(y.numpy(), [1.0, 4.0])
    (y * em.tensor([10.0, 20.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[10.0, 0.0], [0.0, 20.0]])


def test_repeated_integer_indices_add_up():
    idx = np.array([2, 0, 2, 2, -1])
    x = em.tensor(np.zeros(4), requires_grad=True)
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad, np.bincount(idx % 4, minlength=4))


def test_index_may_be_a_tensor_or_a_list():
    x = em.tensor(np.arange(5.0), requires_grad=True)
    np.testing.assert_array_equal(x[em.tensor([4, 4, 1])].numpy(), [4.0, 4.0, 1.0])
    np.testing.assert_array_equal(x[[0, 3]].numpy(), [0.0, 3.0])
    np.testing.assert_array_equal(x[[True, False, True, False, False]].numpy(), [0.0, 2.0])


def test_split_with_a_list_takes_cut_points_like_numpy():
    x = em.tensor(np.arange(6.0), requires_grad=True)
    parts = ops.split(x, [1, 4])
    assert [p.shape for p in parts] == [(1,), (3,), (2,)]
    (parts[1] * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 2, 2, 2, 0, 0])


def test_split_into_sections_must_divide_the_axis():
    x = em.tensor(np.ones((2, 6)))
    assert [p.shape for p in ops.split(x, 3, axis=1)] == [(2, 2)] * 3
    with pytest.raises(ShapeError, match=r"shape \(2, 6\) along axis 1"):
        ops.split(x, 4, axis=1)


@pytest.mark.parametrize("join", ["concatenate", "stack"])
def test_joining_a_thousand_tensors(join):
    xs = [em.tensor(np.full(2, float(i)), requires_grad=True) for i in range(1000)]
    y = getattr(ops, join)(xs, axis=0)
    assert y.shape == ((2000,) if join == "concatenate" else (1000, 2))
    (y * y).sum().backward()  # d/dx_i sum(x^2) = 2 x_i
    for i in (0, 499, 999):
        np.testing.assert_array_equal(xs[i].grad, [2.0 * i, 2.0 * i])


def test_transpose_with_negative_axes_routes_the_gradient_back():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = em.tensor(a, requires_grad=True)
    y = ops.transpose(x, (0, -1, 1))
    assert y.shape == (2, 4, 3)
    (y * em.tensor(np.transpose(a, (0, 2, 1)))).sum().backward()  # d/dx sum(y * a^T) = a
    np.testing.assert_array_equal(x.grad, a)


def test_pad_gradient_is_the_inner_block():
    x = em.tensor(np.ones((2, 2)), requires_grad=True)
    y = ops.pad(x, ((1, 0), (0, 2)), value=7.0)
    assert y.shape == (3, 4) and y.numpy()[0, 0] == 7.0
    (y * em.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
    np.testing.assert_array_equal(x.grad, [[4.0, 5.0], [8.0, 9.0]])


def test_squeeze_and_expand_dims_are_inverse():
    x = em.tensor(np.ones((2, 3)), requires_grad=True)
    y = ops.squeeze(ops.expand_dims(x, -1), -1)
    assert y.shape == (2, 3)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
