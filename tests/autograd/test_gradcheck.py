import numpy as np
import pytest

import ember as em
from ember.autograd import Function
from ember.errors import GradcheckError


class WrongSquare(Function):
    """z = a^2 with a deliberately wrong derivative (3a instead of 2a)."""

    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        return g * 3 * self.a


def test_gradcheck_passes_a_correct_op(float64):
    x = em.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert em.gradcheck(lambda t: (t * t).tanh(), [x])


def test_gradcheck_names_input_and_worst_element():
    x = em.tensor([0.0, 0.0, 5.0, 0.0], requires_grad=True)
    y = em.tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 .*element \(2,\).*numerical .* analytic"):
        em.gradcheck(lambda a, b: WrongSquare.apply(a) * b, [x, y])


def test_gradcheck_leaves_callers_tensors_alone():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    em.gradcheck(lambda t: t * t, [x])
    assert x.grad is None and x.dtype == np.float32


def test_gradcheck_perturbs_non_contiguous_inputs():
    # a transposed (Fortran-ordered) input: the numerical side must still see each perturbation
    data = np.random.default_rng(0).standard_normal((3, 4)).T
    x = em.tensor(data, requires_grad=True, dtype=np.float64)
    assert not x.data.flags.c_contiguous
    assert em.gradcheck(lambda t: (t * t).sum(axis=0), [x])
    with pytest.raises(GradcheckError):
        em.gradcheck(lambda t: WrongSquare.apply(t), [x])


def test_gradcheck_passes_constant_inputs_through():
    x = em.tensor([1.0, -2.0, 3.0], requires_grad=True)
    mask = np.array([True, False, True])
    assert em.gradcheck(lambda t, m: em.ops.where(m, t * t, t), [x, mask])


def test_gradcheck_without_any_input_requiring_grad_raises():
    with pytest.raises(GradcheckError, match="no input has requires_grad=True"):
        em.gradcheck(lambda t: t * 2, [em.tensor([1.0])])
