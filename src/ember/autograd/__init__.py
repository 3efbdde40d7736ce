"""Autograd: Tensor, Parameter, Function, the backward pass, grad modes and gradcheck."""

from ember.autograd.function import Function, backward, unbroadcast
from ember.autograd.grad_mode import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from ember.autograd.gradcheck import gradcheck
from ember.autograd.tensor import Parameter, Tensor, tensor

__all__ = [
    "Function", "Parameter", "Tensor", "backward", "detect_anomaly", "enable_grad", "gradcheck",
    "is_grad_enabled", "no_grad", "tensor", "unbroadcast",
]  # fmt: skip
