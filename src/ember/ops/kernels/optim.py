"""Fused optimizer updates: one pass over a weight and its state per step.

The NumPy rules in ``ember.optimizers`` (the reference) run an update as 8-12 whole-array NumPy
calls through a scratch buffer, each a fresh pass over memory; an mlp's Adam step (670k float32
weights) spent 1.4 ms that way. Each kernel here does the same arithmetic element by element
in one loop, in place:

- operation for operation and in the same order as the NumPy rule, in float32 (the callers pass
  every constant already rounded to the weights' dtype, as NumPy rounds a Python float in
  ``float32_array * 0.9``); ``fastmath`` is off (no fused multiply-adds, no reassociation), so
  the results are the same bits as the NumPy path;
- on 1-D C-contiguous views (the caller flattens), so that LLVM vectorises the loop (checked
  with ``inspect_asm``: packed ``vsqrtps`` / ``vdivps``);
- ``decay`` is the decoupled weight-decay factor (``w <- w - w * decay`` first), used only
  when ``has_decay``: ``w * 0`` is not 0 for an infinite weight.

Clipping is not here: the optimizer clips the gradients (a norm needs every element first)
and passes the clipped arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ember.ops.kernels import JIT


@njit(**JIT)
def sgd(w, g, m, lr, momentum, nesterov, use_momentum, decay, has_decay):
    """s = lr g; plain: w -= s; momentum: m = m mu - s, then w += m, or (Nesterov)
    w = (w - s) + m mu."""
    for i in range(w.size):
        wi = w[i]
        if has_decay:
            wi = wi - wi * decay
        s = g[i] * lr
        if use_momentum:
            mi = m[i] * momentum - s
            m[i] = mi
            if nesterov:
                wi = (wi - s) + mi * momentum
            else:
                wi = wi + mi
        else:
            wi = wi - s
        w[i] = wi


@njit(**JIT)
def adagrad(w, g, a, lr, epsilon, decay, has_decay):
    """a += g^2; w -= (g / sqrt(a + epsilon)) lr."""
    for i in range(w.size):
        wi = w[i]
        if has_decay:
            wi = wi - wi * decay
        gi = g[i]
        ai = a[i] + gi * gi
        a[i] = ai
        w[i] = wi - (gi / np.sqrt(ai + epsilon)) * lr


@njit(**JIT)
def rmsprop(w, g, v, m, avg, lr, rho, one_minus_rho, epsilon, momentum, use_momentum, centered,
            decay, has_decay):  # fmt: skip
    """v = v rho + g^2 (1 - rho); centered: avg = avg rho + g (1 - rho), d = (v - avg^2) + eps,
    else d = v + eps; s = (g / sqrt(d)) lr; momentum: m = m mu + s, w -= m; else w -= s."""
    for i in range(w.size):
        wi = w[i]
        if has_decay:
            wi = wi - wi * decay
        gi = g[i]
        vi = v[i] * rho + (gi * gi) * one_minus_rho
        v[i] = vi
        if centered:
            ai = avg[i] * rho + gi * one_minus_rho
            avg[i] = ai
            d = (vi - ai * ai) + epsilon
        else:
            d = vi + epsilon
        s = (gi / np.sqrt(d)) * lr
        if use_momentum:
            mi = m[i] * momentum + s
            m[i] = mi
            w[i] = wi - mi
        else:
            w[i] = wi - s


@njit(**JIT)
def adam(w, g, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, amsgrad, decay,
         has_decay):  # fmt: skip
    """m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); amsgrad: v_hat = max(v_hat, v), used as v;
    w -= (m / (sqrt(v) + eps)) alpha."""
    for i in range(w.size):
        wi = w[i]
        if has_decay:
            wi = wi - wi * decay
        gi = g[i]
        mi = m[i]
        mi = mi + (gi - mi) * one_minus_beta_1
        m[i] = mi
        vi = v[i]
        vi = vi + (gi * gi - vi) * one_minus_beta_2
        v[i] = vi
        if amsgrad:
            # np.maximum: NaN wins (a NaN in either is kept)
            h = v_hat[i]
            if vi > h or vi != vi:
                h = vi
            v_hat[i] = h
            vi = h
        w[i] = wi - (mi / (np.sqrt(vi) + epsilon)) * alpha
