"""The learning-rate range test (Leslie Smith, "Cyclical Learning Rates", 2015; fastai's
``lr_find``): train briefly while the rate grows geometrically and watch the loss.

The loss first stays flat (rate too small to matter), then falls (useful rates), then blows up
(too large). A good rate sits where the loss falls fastest, well before its minimum; this module
suggests the rate at the steepest descent of the smoothed loss against log(rate).
"""

from __future__ import annotations

import math

import numpy as np

from ember import backend
from ember.errors import EmberValueError


class LRFinderResult:
    """What ``model.lr_find`` measured.

    Attributes:
        lrs: the learning rate of each step.
        losses: the smoothed (bias-corrected exponential average) loss after each step.
        raw_losses: the batch losses themselves.
        suggested_lr: the rate at the steepest descent of ``losses`` vs log(lr).
    """

    def __init__(self, lrs, losses, raw_losses, suggested_lr):
        self.lrs = list(lrs)
        self.losses = list(losses)
        self.raw_losses = list(raw_losses)
        self.suggested_lr = suggested_lr

    def __repr__(self) -> str:
        return f"LRFinderResult(steps={len(self.lrs)}, suggested_lr={self.suggested_lr!r})"

    def plot(self, path, title: str = "learning-rate range test") -> str:
        """Loss against the learning rate (log axis), the suggestion marked; saved to ``path``."""
        from ember.plotting import new_figure, save_figure

        fig, (ax,) = new_figure("LRFinderResult.plot", size=(6, 4))
        ax.plot(self.lrs, self.raw_losses, color="0.75", linewidth=0.8, label="batch loss")
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        if self.suggested_lr is not None:
            ax.axvline(self.suggested_lr, color="C3", linestyle="--",
                       label=f"suggested {self.suggested_lr:.2e}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        finite = [v for v in self.losses if math.isfinite(v)]
        if finite:
            low, high = min(finite), finite[0]
            span = abs(high - low) + 1e-12
            ax.set_ylim(low - 0.1 * span, max(high, low) + 0.5 * span)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        return save_figure(fig, path)


def suggest(lrs, losses, skip_start: int = 5, skip_end: int = 3) -> float | None:
    """The rate where the loss falls fastest: argmin of d(loss)/d(log lr), searched up to the
    minimum of the loss (beyond it the curve only rises)."""
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(losses)
    lrs, losses = lrs[ok], losses[ok]
    if len(losses) < 3:
        return None
    stop = int(np.argmin(losses)) + 1
    lo = min(skip_start, max(0, stop - 3))
    hi = max(lo + 3, min(stop, len(losses) - skip_end))
    seg_lr, seg_loss = lrs[lo:hi], losses[lo:hi]
    if len(seg_loss) < 3:
        return float(lrs[int(np.argmin(losses))] / 10)
    slope = np.gradient(seg_loss, np.log(seg_lr))
    return float(seg_lr[int(np.argmin(slope))])


def lr_find(model, x, y=None, *, start_lr=1e-7, end_lr=10.0, steps=100, batch_size=32,
            smoothing=0.98, stop_factor=4.0) -> LRFinderResult:  # fmt: skip
    """Model.lr_find (see its docstring)."""
    from ember import optimizers
    from ember.training import data_adapter as da

    model._assert_compiled("lr_find")
    if not (0 < start_lr < end_lr):
        raise EmberValueError(
            f"lr_find: need 0 < start_lr < end_lr, received start_lr={start_lr}, end_lr={end_lr}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise EmberValueError(f"lr_find: steps must be an int >= 2, received {steps!r}")
    if not 0.0 <= smoothing < 1.0:
        raise EmberValueError(f"lr_find: smoothing must be in [0, 1), received {smoothing!r}")
    adapter = da.adapt(x, y, None, batch_size, True, "lr_find")
    iterator = da.EpochIterator(adapter, steps)
    model._build_from_batch(adapter.first_batch())

    # everything the test changes, to put back: weights, the random state; the model's own
    # optimizer is untouched (a copy with a float rate runs the test)
    weights = model.get_weights()
    rng_state = backend.get_rng_state()
    config = dict(model.optimizer.get_config())
    config["learning_rate"] = float(start_lr)
    opt = optimizers.deserialize({"class_name": type(model.optimizer).__name__, "config": config})
    trackers = (model._loss_tracker.total, model._loss_tracker.count)

    ratio = (end_lr / start_lr) ** (1.0 / (steps - 1))
    lrs, smooth, raw = [], [], []
    avg, best = 0.0, math.inf
    try:
        for i, (xb, yb, swb) in enumerate(iterator.epoch()):
            lr = start_lr * ratio**i
            opt.learning_rate = lr
            loss = model.train_step(xb, yb, swb, optimizer=opt)
            avg = smoothing * avg + (1.0 - smoothing) * loss
            value = avg / (1.0 - smoothing ** (i + 1))
            lrs.append(lr)
            raw.append(loss)
            smooth.append(value)
            if not math.isfinite(value) or value > stop_factor * best:
                break
            best = min(best, value)
    finally:
        model.set_weights(weights)
        backend.set_rng_state(rng_state)
        for p in model.trainable_weights:
            p.grad = None
        model.reset_metrics()
        model._loss_tracker.total, model._loss_tracker.count = trackers
    return LRFinderResult(lrs, smooth, raw, suggest(lrs, smooth))
