"""Elementwise arithmetic: the corner cases the op table avoids on purpose."""

import warnings

import numpy as np
import pytest

import ember as em
from ember import ops
from ember.errors import EmberValueError


def test_x_to_the_zero_is_flat_even_at_zero():
    x = em.tensor([0.0, 2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero on the way
        (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_tensor_exponent_of_zero_base_and_negative_base():
    # d/db a^b = a^b ln a: 0 at a = 0 for b >= 0 (PyTorch's rule), NaN for a < 0 (no real log)
    a = em.tensor([0.0, 0.0, -2.0, 3.0], requires_grad=True, dtype=np.float64)
    b = em.tensor([2.0, 0.0, 2.0, 2.0], requires_grad=True, dtype=np.float64)
    (a**b).sum().backward()
    np.testing.assert_allclose(b.grad[[0, 1, 3]], [0.0, 0.0, 9 * np.log(3.0)])
    assert np.isnan(b.grad[2])
    np.testing.assert_allclose(a.grad, [0.0, 0.0, -4.0, 6.0])  # b a^(b-1), 0 where b = 0


def test_python_number_base_keeps_float32():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = 2**x
    assert y.dtype == np.float32
    g = y._ctx.backward(np.ones(2, np.float32))[1]
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [2 * np.log(2), 4 * np.log(2)], rtol=1e-6)


def test_maximum_and_minimum_share_a_tie_in_half():
    a = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = em.tensor([1.0, 5.0, 0.0], requires_grad=True)
    ops.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    a.grad = b.grad = None
    ops.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
    assert a.grad.dtype == np.float32


def test_clip_passes_the_gradient_at_its_bounds_and_keeps_float32():
    x = em.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    y = ops.clip(x, np.float64(-1.0), em.tensor(1.0))
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])


def test_clip_without_bounds_is_an_error():
    with pytest.raises(EmberValueError, match="clip: give at least one of min and max"):
        ops.clip(em.tensor([1.0]))


def test_cast_to_an_integer_type_records_no_graph():
    x = em.tensor([1.7, -2.2], requires_grad=True)
    y = ops.cast(x, "int32")
    assert y.dtype == np.int32 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1, -2])


def test_cast_gradient_comes_back_in_the_input_dtype():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = ops.cast(x, np.float64) * 3.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_where_with_a_bool_tensor_condition():
    a = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = em.tensor([10.0, 20.0, 30.0], requires_grad=True)
    y = ops.where(a > 1.5, a, b)
    np.testing.assert_array_equal(y.numpy(), [10.0, 2.0, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [0, 1, 1])
    np.testing.assert_array_equal(b.grad, [1, 0, 0])
