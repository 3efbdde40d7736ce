"""Restricted Boltzmann machine: Bernoulli hidden units over Bernoulli (or Gaussian) visible units,
trained by contrastive divergence (CD-k) or persistent contrastive divergence (PCD).

An RBM is an energy model, not a network trained by backpropagation: its gradient is a difference
of two expectations (data minus model), estimated by Gibbs sampling, so ``fit`` is written as
vectorised NumPy updates rather than through autograd. It is still a ``Layer``: its weights are
Parameters, ``get_weights``/``set_weights`` work, and calling it (``rbm(x)``) gives the hidden
probabilities as a differentiable Tensor, so a trained RBM can sit in a Sequential model and be
fine-tuned there (the deep-belief-network recipe).

Energy (Bernoulli visible units ``v`` in {0, 1}, hidden ``h`` in {0, 1})::

    E(v, h) = -v.b - h.c - v W h
    p(h_j = 1 | v) = sigmoid(c_j + v W[:, j]),   p(v_i = 1 | h) = sigmoid(b_i + W[i] h)
    F(v) = -v.b - sum_j softplus(c_j + v W[:, j])          (free energy, p(v) ~ exp(-F(v)))

Gaussian visible units (unit variance; standardize the data first)::

    E(v, h) = |v - b|^2 / 2 - h.c - v W h,   p(v | h) = N(b + W h, I)
    F(v) = |v - b|^2 / 2 - sum_j softplus(c_j + v W[:, j])
"""

from __future__ import annotations

import math

import numpy as np

from ember import backend
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, check_positive_int, register

__all__ = ["RBM"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: never overflows and keeps the dtype (float32 stays float32)
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _softplus(x: np.ndarray) -> np.ndarray:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), in one buffer (stable, and ~5x logaddexp's speed)
    out = np.abs(x)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(x, 0)
    return out


def _number(owner: str, arg: str, value, low: float, high: float | None = None) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating))
    if not ok or math.isnan(value) or value < low or (high is not None and value >= high):
        want = f">= {low}" if high is None else f"in [{low}, {high})"
        raise EmberValueError(f"{owner}: {arg} must be a number {want}, received {arg}={value!r}")
    return float(value)


@register
class RBM(Layer):
    """Restricted Boltzmann machine trained by CD-k or persistent CD (PCD).

    The update for a mini-batch ``v0`` (N rows) with chain end ``vk`` (M rows; M = N for CD-k,
    M = the number of persistent chains for PCD)::

        grad_W  = v0' p(h|v0) / N - vk' p(h|vk) / M - weight_decay * W
        grad_b  = mean(v0) - mean(vk),   grad_c = mean(p(h|v0)) - mean(p(h|vk))
        vel     = momentum * vel + learning_rate * grad;   param += vel

    Args:
        n_hidden: number of hidden units.
        k: Gibbs steps per update (CD-k, or PCD-k).
        learning_rate: step size of the updates.
        persistent: keep the negative chains between updates (PCD, Tieleman 2008).
        momentum: momentum of the updates, in [0, 1).
        weight_decay: L2 penalty on ``W`` (not on the biases), as in Hinton's practical guide.
        batch_size: default mini-batch size of ``fit`` (also the number of persistent chains).
        visible: "bernoulli" (inputs in [0, 1]) or "gaussian" (real inputs, unit variance).
        seed: an int gives the RBM its own generator (initial weights, sampling, shuffling);
            None draws from ``ember.backend.rng()``.
        name, trainable, dtype: as for every Layer.
    """

    def __init__(
        self,
        n_hidden: int,
        k: int = 1,
        learning_rate: float = 0.01,
        persistent: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 32,
        visible: str = "bernoulli",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "RBM"
        self.n_hidden = check_positive_int(owner, "n_hidden", n_hidden)
        self.k = check_positive_int(owner, "k", k)
        self.learning_rate = _number(owner, "learning_rate", learning_rate, 0.0)
        self.persistent = bool(persistent)
        self.momentum = _number(owner, "momentum", momentum, 0.0, 1.0)
        self.weight_decay = _number(owner, "weight_decay", weight_decay, 0.0)
        self.batch_size = check_positive_int(owner, "batch_size", batch_size)
        if visible not in ("bernoulli", "gaussian"):
            raise EmberValueError(
                f"{owner}: visible must be 'bernoulli' or 'gaussian', received visible={visible!r}"
            )
        self.visible = visible
        bad_seed = isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        if seed is not None and bad_seed:
            raise EmberTypeError(f"{owner}: seed must be an int or None, received seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self._gen = None if seed is None else np.random.default_rng(seed)
        self._velocity: list[np.ndarray] | None = None
        self._chain: np.ndarray | None = None  # hidden states of the persistent chains
        self.stop_training = False
        self.history = None

    # ------------------------------------------------------------------ weights
    def _rng(self) -> np.random.Generator:
        return self._gen if self._gen is not None else backend.rng()

    def build(self, input_shape) -> None:
        if len(input_shape) != 2:
            raise ShapeError(
                f"{self.name}: expected inputs of shape (batch, n_visible), received {input_shape}"
            )
        n_visible = int(input_shape[-1])
        gen = self._rng()

        def small_normal(shape, dtype=None):
            # Hinton's practical guide: N(0, 0.01^2) breaks the symmetry without saturating
            return (0.01 * gen.standard_normal(shape)).astype(dtype)

        self.kernel = self.add_weight("kernel", (n_visible, self.n_hidden), small_normal)
        self.hidden_bias = self.add_weight("hidden_bias", (self.n_hidden,), "zeros")
        self.visible_bias = self.add_weight("visible_bias", (n_visible,), "zeros")
        self.built = True  # build() may be called directly, before set_weights
        self._build_shape = tuple(input_shape)

    @property
    def n_visible(self) -> int | None:
        return int(self.kernel.shape[0]) if self.built else None

    def check_input(self, shape: tuple) -> None:
        if len(shape) != 2 or (self.built and shape[1] != self.kernel.shape[0]):
            want = self.kernel.shape[0] if self.built else "n_visible"
            raise ShapeError(
                f"{self.name}: expected inputs of shape (batch, {want}), received {shape}"
            )

    def _as_input(self, x, what: str = "x") -> np.ndarray:
        """x as a 2-D float array, checked (and the RBM built on first sight)."""
        arr = np.asarray(getattr(x, "data", x))
        if arr.dtype.kind not in "biuf":
            raise EmberTypeError(
                f"{self.name}: {what} must be a numeric array, received dtype {arr.dtype}"
            )
        if arr.ndim != 2:
            raise ShapeError(
                f"{self.name}: {what} must have shape (batch, n_visible), received shape "
                f"{arr.shape}"
            )
        self.check_input(arr.shape)
        if not self.built:
            self._maybe_build(arr.shape)
        arr = arr.astype(self.kernel.dtype, copy=False)
        if self.visible == "bernoulli" and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise EmberValueError(
                f"{self.name}: Bernoulli visible units take values in [0, 1], received {what} "
                f"in [{arr.min():.4g}, {arr.max():.4g}] (scale the data, or use "
                f"visible='gaussian')"
            )
        return arr

    # ------------------------------------------------------------------ conditionals
    def _hidden_prob(self, v: np.ndarray) -> np.ndarray:
        return _sigmoid(v @ self.kernel.data + self.hidden_bias.data)  # (N, H)

    def _visible_mean(self, h: np.ndarray) -> np.ndarray:
        a = h @ self.kernel.data.T + self.visible_bias.data  # (N, D)
        return _sigmoid(a) if self.visible == "bernoulli" else a

    def _sample_visible(self, mean: np.ndarray, gen) -> np.ndarray:
        if self.visible == "bernoulli":
            return (gen.random(mean.shape, dtype=mean.dtype) < mean).astype(mean.dtype)
        return mean + gen.standard_normal(mean.shape, dtype=mean.dtype)

    @staticmethod
    def _sample_hidden(p: np.ndarray, gen) -> np.ndarray:
        return (gen.random(p.shape, dtype=p.dtype) < p).astype(p.dtype)

    # ------------------------------------------------------------------ public inference
    def call(self, x, training=None):
        """Hidden probabilities as a differentiable Tensor (for use inside a model)."""
        from ember.ops import sigmoid
        from ember.ops.linalg import linear

        return sigmoid(linear(x, self.kernel, self.hidden_bias))

    def transform(self, x) -> np.ndarray:
        """Hidden probabilities ``p(h = 1 | v)`` for each row of ``x``: shape (N, n_hidden)."""
        return self._hidden_prob(self._as_input(x))

    def reconstruct(self, x) -> np.ndarray:
        """One deterministic up-down pass: ``E[v | h = p(h | x)]``, shape of ``x``."""
        return self._visible_mean(self._hidden_prob(self._as_input(x)))

    def gibbs(self, v, steps: int = 1, mean: bool = False) -> np.ndarray:
        """Run ``steps`` block-Gibbs steps v -> h -> v from ``v`` and return the visible state.

        Args:
            v: starting visible states, shape (N, n_visible).
            steps: number of full Gibbs steps.
            mean: return the last step's visible means ``E[v | h]`` instead of a sample
                (smoother pictures; the chain itself always samples).
        """
        steps = check_positive_int(self.name + ".gibbs", "steps", steps)
        v = self._as_input(v, "v")
        gen = self._rng()
        for _ in range(steps):
            h = self._sample_hidden(self._hidden_prob(v), gen)
            vm = self._visible_mean(h)
            v = self._sample_visible(vm, gen)
        return vm if mean else v

    def free_energy(self, v) -> np.ndarray:
        """``F(v)`` per row (see the module docstring): shape (N,)."""
        v = self._as_input(v, "v")
        return self._free_energy(v)

    def _free_energy(self, v: np.ndarray) -> np.ndarray:
        x = v @ self.kernel.data + self.hidden_bias.data
        if self.visible == "bernoulli":
            vis = -(v @ self.visible_bias.data)
        else:
            vis = 0.5 * np.square(v - self.visible_bias.data).sum(axis=1)
        return vis - _softplus(x).sum(axis=1)

    def score_samples(self, x, exact: bool | None = None, seed: int = 0) -> np.ndarray:
        """Pseudo-log-likelihood of each row of binary ``x``: ``sum_i log p(v_i | v_-i)``.

        ``log p(v_i | v_-i) = log sigmoid(F(v with v_i flipped) - F(v))``. ``exact=True`` sums
        over every visible unit; ``exact=False`` flips one random unit per row and multiplies
        by n_visible (an unbiased estimate, scikit-learn's; the flips come from ``seed``, so
        successive epochs are scored on the same flips); None picks exact when
        N * n_visible * n_hidden <= 2e6.
        """
        if self.visible != "bernoulli":
            raise EmberValueError(
                f"{self.name}: the pseudo-log-likelihood is defined here for Bernoulli visible "
                f"units only, this RBM has visible={self.visible!r}"
            )
        v = self._as_input(x)
        n, d = v.shape
        h = self.n_hidden
        if exact is None:
            exact = n * d * h <= 2e6  # the exact sum costs n_visible forward passes
        W, b = self.kernel.data, self.visible_bias.data
        x0 = v @ W + self.hidden_bias.data  # (N, H)
        sp0 = _softplus(x0).sum(axis=1)  # (N,)
        if not exact:
            # a private generator: the estimate never moves the training stream
            idx = np.random.default_rng(seed).integers(0, d, size=n)
            rows = np.arange(n)
            sign = 1 - 2 * v[rows, idx]  # +1 turns a unit on, -1 off
            x1 = x0 + sign[:, None] * W[idx]
            delta = -sign * b[idx] - (_softplus(x1).sum(axis=1) - sp0)  # F(v') - F(v)
            return -d * _softplus(-delta)
        total = np.zeros(n, dtype=v.dtype)
        chunk = max(1, int(4_000_000 // max(1, n * h)))
        for start in range(0, d, chunk):
            sl = slice(start, start + chunk)
            sign = 1 - 2 * v[:, sl]  # (N, C)
            x1 = x0[:, None, :] + sign[:, :, None] * W[None, sl, :]  # (N, C, H)
            delta = -sign * b[sl] - (_softplus(x1).sum(axis=2) - sp0[:, None])
            total -= _softplus(-delta).sum(axis=1)
        return total

    def pseudo_log_likelihood(self, x, exact: bool | None = None) -> float:
        """Mean pseudo-log-likelihood of the rows of binary ``x`` (see ``score_samples``);
        higher is better, and it should rise during training."""
        return float(np.mean(self.score_samples(x, exact=exact)))

    def reconstruction_error(self, x) -> float:
        """Mean squared error between ``x`` and ``reconstruct(x)``, per element."""
        v = self._as_input(x)
        return float(np.mean(np.square(v - self._visible_mean(self._hidden_prob(v)))))

    # ------------------------------------------------------------------ training
    def train_on_batch(self, v) -> float:
        """One CD-k (or PCD-k) update from the mini-batch ``v``; returns the batch's mean
        squared difference between ``v`` and ``E[v | h0]`` (h0 sampled for CD, the
        probabilities for PCD), a cheap running score for the progress bar.

        Random draws, in this order, from the RBM's generator (uniforms compared with the
        probability give the Bernoulli samples, ``u < p``): ``h0`` (N, H) for CD (for PCD
        only on the first update, to start the chains); then per Gibbs step ``v`` (M, D)
        (standard normals added to the mean for Gaussian units) and ``h`` (M, H).
        """
        return self._update(self._as_input(v, "v"))

    def _update(self, v0: np.ndarray) -> float:
        gen = self._rng()
        W, c, b = self.kernel.data, self.hidden_bias.data, self.visible_bias.data
        ph0 = self._hidden_prob(v0)  # (N, H)
        from_data = not (self.persistent and self._chain is not None)
        h = self._sample_hidden(ph0, gen) if from_data else self._chain
        recon = None
        for _ in range(self.k):
            vm = self._visible_mean(h)
            if recon is None:
                # CD: the first step's mean is the reconstruction, at no extra cost
                recon = vm if from_data else self._visible_mean(ph0)
            vk = self._sample_visible(vm, gen)  # (M, D)
            phk = self._hidden_prob(vk)  # (M, H)
            h = self._sample_hidden(phk, gen)
        if self.persistent:
            self._chain = h
        n, m = v0.shape[0], vk.shape[0]
        grads = [
            v0.T @ ph0 / n - vk.T @ phk / m,
            ph0.sum(axis=0) / n - phk.sum(axis=0) / m,
            v0.sum(axis=0) / n - vk.sum(axis=0) / m,
        ]
        if self.weight_decay:
            grads[0] -= self.weight_decay * W
        if self._velocity is None:
            self._velocity = [np.zeros_like(p) for p in (W, c, b)]
        lr, mom = self.learning_rate, self.momentum
        for p, vel, g in zip((W, c, b), self._velocity, grads):
            if mom:
                vel *= mom
                vel += lr * g
            else:
                np.multiply(g, lr, out=vel, casting="same_kind")
            p += vel  # in place: the Parameters keep their arrays
        return float(np.mean(np.square(v0 - recon)))

    def reset_chains(self) -> None:
        """Forget the persistent chains and the momentum (the next update starts fresh)."""
        self._chain = None
        self._velocity = None

    def fit(
        self,
        x,
        epochs: int = 10,
        batch_size: int | None = None,
        verbose="auto",
        shuffle: bool = True,
        callbacks=None,
        monitor_size: int | None = 2000,
    ):
        """Train on the rows of ``x`` for ``epochs`` passes of mini-batches.

        After each epoch the logs (and the returned History) get ``reconstruction_error`` (see
        ``reconstruction_error``) and, for Bernoulli units, ``pseudo_log_likelihood``, both on
        the first ``monitor_size`` rows (None: all rows).

        Args:
            x: training data, shape (N, n_visible); Bernoulli units take values in [0, 1].
            epochs: passes over the data.
            batch_size: mini-batch size (default: the RBM's ``batch_size``).
            verbose: "auto", 0, 1 or 2, as in ``Model.fit``.
            shuffle: reshuffle the rows before each epoch.
            callbacks: ember callbacks (they see ``self`` as the model).
            monitor_size: rows used for the per-epoch scores.

        Returns:
            a ``History`` whose ``history`` maps each score to its per-epoch values.
        """
        from ember.callbacks import CallbackList
        from ember.training.history import History
        from ember.training.progress import ProgressLogger, resolve_verbose

        epochs = check_positive_int(self.name + ".fit", "epochs", epochs)
        batch_size = check_positive_int(
            self.name + ".fit", "batch_size", batch_size or self.batch_size
        )
        data = self._as_input(x)
        n = data.shape[0]
        if n == 0:
            raise EmberValueError(f"{self.name}.fit: x has no rows")
        steps = -(-n // batch_size)
        monitor = data if monitor_size is None else data[:monitor_size]
        history = History()
        cbs = [*(callbacks or []), history]
        mode = resolve_verbose(verbose)
        if mode is not None:
            cbs.append(ProgressLogger(mode))
        cb = CallbackList(cbs, model=self, epochs=epochs, steps=steps, verbose=verbose)
        self.stop_training = False
        cb.on_train_begin()
        for epoch in range(epochs):
            cb.on_epoch_begin(epoch)
            order = self._rng().permutation(n) if shuffle else None
            for step in range(steps):
                sl = slice(step * batch_size, (step + 1) * batch_size)
                batch = data[order[sl]] if order is not None else data[sl]
                cb.on_train_batch_begin(step)
                err = self._update(batch)  # rows already checked by _as_input
                cb.on_train_batch_end(step, {"batch_reconstruction_error": err})
            logs = {"reconstruction_error": self.reconstruction_error(monitor)}
            if self.visible == "bernoulli":
                logs["pseudo_log_likelihood"] = self.pseudo_log_likelihood(monitor)
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end()
        self.history = history
        return history

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            n_hidden=self.n_hidden,
            k=self.k,
            learning_rate=self.learning_rate,
            persistent=self.persistent,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            visible=self.visible,
            seed=self.seed,
        )
        return config
