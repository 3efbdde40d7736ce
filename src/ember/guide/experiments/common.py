"""Building blocks shared by the guide's experiments: small data sets, tiny training loops and
per-layer statistics. Everything here uses ember's public API only, so a reader can copy it.
"""

from __future__ import annotations

import functools

import numpy as np

import ember as em
from ember import layers


@functools.lru_cache(maxsize=1)
def _digits():
    return em.datasets.digits()


def digits(n_train: int | None = None, n_test: int | None = None):
    """scikit-learn's 8x8 digits as ``(x_train, y_train), (x_test, y_test)``: float32 images
    (N, 8, 8, 1) in [0, 1] and int64 labels; optionally the first ``n_train``/``n_test`` rows."""
    (x, y), (xt, yt) = _digits()
    return (x[:n_train].copy(), y[:n_train].copy()), (xt[:n_test].copy(), yt[:n_test].copy())


def circles(n: int, noise: float = 0.08, seed: int = 0):
    """Two concentric rings (radius 0.5: class 0, radius 1: class 1): x float32 (n, 2), y int64."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    r = np.where(y == 1, 1.0, 0.5) + rng.normal(0, noise, n)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1).astype(np.float32)
    return x, y.astype(np.int64)


def mlp(
    widths, activation="relu", out_units: int | None = None, kernel_initializer="glorot_uniform"
):
    """A Sequential of Dense layers of the given widths (and a linear output layer)."""
    stack = [layers.Dense(w, activation=activation, kernel_initializer=kernel_initializer)
             for w in widths]  # fmt: skip
    if out_units is not None:
        stack.append(layers.Dense(out_units))
    return em.Sequential(stack)


def classifier_loss():
    return em.losses.SparseCategoricalCrossentropy(from_logits=True)


def accuracy(model, x, y) -> float:
    """Fraction of rows whose largest logit is the label (inference mode)."""
    with em.no_grad():
        logits = np.asarray(model(x).data)
    if logits.shape[-1] == 1:
        return float(np.mean((logits[:, 0] > 0).astype(np.int64) == y))
    return float(np.mean(np.argmax(logits, -1) == y))


def train_steps(model, x, y, loss_fn, optimizer, steps: int, batch_size: int, seed: int = 0):
    """A plain training loop: ``steps`` updates on random mini-batches; returns the loss per step.

    This is what ``model.fit`` does underneath: forward in training mode, loss, backward,
    ``optimizer.step()``, ``optimizer.zero_grad()``.
    """
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        loss = loss_fn(y[idx], model(x[idx], training=True))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.item()))
    return losses


def probe_forward(stack, x):
    """Run ``x`` through the layers in ``stack`` one by one, adding a zero "probe" tensor that
    requires grad after each layer, so that after ``backward()`` every probe's ``.grad`` is the
    gradient of the loss with respect to that layer's output. Returns (output, outputs, probes).
    """
    h = x if isinstance(x, em.Tensor) else em.tensor(x)
    outputs, probes = [], []
    for layer in stack:
        h = layer(h)
        probe = em.tensor(np.zeros(h.shape, h.dtype), requires_grad=True)
        h = h + probe
        outputs.append(np.asarray(h.data))
        probes.append(probe)
    return h, outputs, probes


def kernel_grad_norms(dense_layers) -> list:
    """The L2 norm of each Dense layer's kernel gradient (after a backward pass)."""
    norms = []
    for layer in dense_layers:
        g = layer.kernel.grad
        norms.append(0.0 if g is None else float(np.linalg.norm(g)))
    return norms


def grid_predict(model, lo: float = -1.5, hi: float = 1.5, n: int = 120):
    """Class-1 scores of ``model`` on an n x n grid over [lo, hi]^2 (for decision regions)."""
    xs = np.linspace(lo, hi, n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    with em.no_grad():
        out = np.asarray(model(pts).data)
    score = out[:, 1] - out[:, 0] if out.shape[-1] == 2 else out[:, 0]
    return gx, gy, score.reshape(n, n)


def test_image(size: int = 32) -> np.ndarray:
    """A synthetic grey image (size, size) in [0, 1]: a bright square, a disc and a diagonal bar
    on a dark background: vertical, horizontal and slanted edges for filters to find."""
    img = np.zeros((size, size), np.float32)
    s = size / 32
    img[int(4 * s) : int(14 * s), int(4 * s) : int(14 * s)] = 1.0
    yy, xx = np.mgrid[0:size, 0:size]
    img[(yy - 22 * s) ** 2 + (xx - 22 * s) ** 2 <= (6 * s) ** 2] = 0.7
    bar = np.abs((yy - xx) - int(-14 * s)) <= 1.5 * s
    img[bar & (yy < int(16 * s))] = 0.45
    return img
