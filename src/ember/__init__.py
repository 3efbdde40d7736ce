"""ember: a deep-learning framework written from first principles in Python on NumPy.

The public surface. Submodules (``ember.layers``, ``ember.optimizers``, ...) and the heavier
names load on first use, so ``import ember`` only pays for NumPy and the autograd core.
"""

from __future__ import annotations

import importlib

from ember.autograd import (
    Function,
    Parameter,
    Tensor,
    detect_anomaly,
    enable_grad,
    gradcheck,
    is_grad_enabled,
    no_grad,
    tensor,
)
from ember.backend import floatx, set_floatx, set_seed

__version__ = "0.1.0"

_SUBMODULES = {
    "activations", "applications", "backend", "callbacks", "cli", "data", "datasets",
    "distributed", "errors", "functional", "guide", "initializers", "layers", "losses",
    "metrics", "models", "ops", "optimizers", "regularizers", "schedules", "training", "tuning",
}  # fmt: skip

# name -> module that defines it (loaded when first asked for)
_LAZY = {
    "Model": "ember.models.model",
    "Sequential": "ember.models.sequential",
    "load_model": "ember.models.saving",
    "History": "ember.training.history",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"ember.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ember' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_LAZY))


__all__ = [
    "Function", "Parameter", "Tensor", "detect_anomaly", "enable_grad", "floatx", "gradcheck",
    "is_grad_enabled", "no_grad", "set_floatx", "set_seed", "tensor", *_LAZY,
]  # fmt: skip
