"""Numerical check of analytic gradients by central differences, in float64."""

from __future__ import annotations

import numpy as np

from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.errors import GradcheckError


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare backward() with central differences for every input that requires grad.

    ``fn(*inputs)`` may return a tensor of any shape: a fixed random projection turns it into a
    scalar, so every output element takes part. Inputs are converted to float64 copies (the
    caller's tensors are left alone). Returns True, or raises ``GradcheckError`` naming the input,
    the worst element and its numerical and analytic values.
    """
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = (inputs,)
    xs = []
    for x in inputs:
        if isinstance(x, Tensor):
            # a C-ordered float64 copy: the perturbation below writes through reshape(-1),
            # which is only a view of a C-contiguous array
            data = np.array(x.data, dtype=np.float64, order="C") if x.dtype.kind == "f" else x.data
            xs.append(Tensor(data, requires_grad=x.requires_grad, dtype=data.dtype))
        else:
            xs.append(x)
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise GradcheckError("gradcheck: no input has requires_grad=True; nothing to check")

    out = fn(*xs)
    proj = np.random.default_rng(1234).standard_normal(out.shape)

    def scalar() -> float:
        with no_grad():
            return float(np.sum(np.asarray(fn(*xs).data, dtype=np.float64) * proj))

    (out * Tensor(proj, dtype=np.float64)).sum().backward()
    for i in checked:
        x = xs[i]
        analytic = np.zeros_like(x.data) if x.grad is None else np.asarray(x.grad, np.float64)
        numeric = np.zeros_like(x.data)
        flat = x.data.reshape(-1)  # a view: writing it perturbs the input in place
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            up = scalar()
            flat[j] = old - eps
            down = scalar()
            flat[j] = old
            numeric.reshape(-1)[j] = (up - down) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if (err > 0).any():
            k = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), x.shape))
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) gradient mismatch at element {k}: "
                f"numerical {numeric[k]:.8g} vs analytic {analytic[k]:.8g} "
                f"(atol={atol}, rtol={rtol})"
            )
    return True
