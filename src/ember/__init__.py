"""ember: a deep-learning framework written from first principles in Python on NumPy.

The public surface. Submodules (``ember.layers``, ``ember.optimizers``, ...) and the heavier
names load on first use, so ``import ember`` only pays for NumPy and the autograd core.
"""

from __future__ import annotations

from ember._lazy import lazy_exports
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

# name -> module under ember that defines it (loaded when first asked for)
_LAZY = {
    "Model": "models.model",
    "Sequential": "models.sequential",
    "load_model": "models.saving",
    "History": "training.history",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, submodules=_SUBMODULES)


__all__ = [
    "Function", "Parameter", "Tensor", "detect_anomaly", "enable_grad", "floatx", "gradcheck",
    "is_grad_enabled", "no_grad", "set_floatx", "set_seed", "tensor", *_LAZY,
]  # fmt: skip
