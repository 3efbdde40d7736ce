"""Reading learning curves: is a model underfitting, fitting well, or overfitting?

``diagnose(history)`` looks at the training and validation loss per epoch and names the case,
the way one reads the curves by eye:

- overfit: the validation loss reached its lowest point at some epoch and then rose clearly
  (by ``min_rise`` of its best value, default 5%) while the training loss kept falling. The
  epoch of the lowest validation loss is where validation turned: where to stop.
- underfit: the training loss itself stays high. With a ``baseline`` (the loss of a trivial
  predictor: the variance of the targets for MSE, ln(K) for K balanced classes) that means the
  best training loss is above ``high * baseline``; without one, that the training loss barely
  moved (less than ``min_drop`` of its first value) or was still falling steeply at the end
  (the last quarter of the epochs brought more than ``still_falling`` of the whole drop), so
  more capacity or more training is needed.
- good fit: neither; training and validation loss settled together.
- diverged: a loss became NaN/inf or ended far above where it started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ember.errors import EmberTypeError, EmberValueError

KINDS = ("underfit", "good fit", "overfit", "diverged", "unknown")


@dataclass(frozen=True)
class Diagnosis:
    """What the learning curves say.

    Args:
        kind: "underfit", "good fit", "overfit", "diverged", or "unknown" (no validation loss
            and nothing wrong with the training loss: overfitting cannot be told apart).
        turning_epoch: the epoch (0-based, absolute) of the lowest validation loss when the
            validation loss rose after it (overfit), else None.
        best_epoch: the epoch of the lowest validation loss (training loss without validation).
        reason: one sentence with the numbers behind the verdict.
        values: the numbers the verdict was made of.
    """

    kind: str
    turning_epoch: int | None
    best_epoch: int | None
    reason: str
    values: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


def _curves(history, monitor: str) -> tuple[list, list | None, list]:
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise EmberTypeError(
            "diagnose: history must be a History (from fit) or a dict of per-epoch lists, "
            f"received {type(history).__name__}"
        )
    if monitor not in logs or not len(logs[monitor]):
        raise EmberValueError(
            f"diagnose: the history has no {monitor!r} values to read; it holds {sorted(logs)}"
        )
    train = [float(v) for v in logs[monitor]]
    val = logs.get(f"val_{monitor}")
    val = [float(v) for v in val] if val is not None and len(val) else None
    if val is not None and len(val) != len(train):
        raise EmberValueError(
            f"diagnose: {monitor!r} has {len(train)} values but 'val_{monitor}' has {len(val)}"
        )
    epochs = list(getattr(history, "epoch", None) or range(len(train)))
    if len(epochs) != len(train):
        epochs = list(range(len(train)))
    return train, val, [int(e) for e in epochs]


def diagnose(
    history,
    monitor: str = "loss",
    baseline: float | None = None,
    high: float = 0.5,
    min_rise: float = 0.05,
    min_drop: float = 0.05,
    still_falling: float = 0.25,
) -> Diagnosis:
    """Name the case shown by the training and validation curves of ``monitor``.

    Args:
        history: a ``History`` (``model.fit``'s return value) or its ``history`` dict.
        monitor: the quantity to read (its validation twin is ``"val_" + monitor``); a loss,
            lower is better.
        baseline: the loss of a trivial predictor, if known; underfit means the best training
            loss stays above ``high * baseline``.
        high: the fraction of ``baseline`` above which the training loss counts as high.
        min_rise: how far (a fraction of the best validation loss) validation must rise after
            its lowest point to count as overfitting.
        min_drop: without a baseline, a training loss that fell by less than this fraction of
            its first value is underfitting.
        still_falling: without a baseline, a training loss whose last quarter of epochs brought
            more than this fraction of its total drop has not finished learning (underfit).
    """
    train, val, epochs = _curves(history, monitor)
    n = len(train)
    values: dict = {"epochs": n, "first_train": train[0], "final_train": train[-1]}
    finite = all(math.isfinite(v) for v in train + (val or []))
    if not finite or (n > 1 and train[-1] > 10 * max(abs(train[0]), 1e-12)):
        bad = next((epochs[i] for i, v in enumerate(train) if not math.isfinite(v)), None)
        where = f" at epoch {bad}" if bad is not None else ""
        return Diagnosis(
            "diverged", None, None,
            f"the loss became non-finite or grew tenfold{where}: lower the learning rate",
            values,
        )  # fmt: skip

    best_train = min(train)
    values["best_train"] = best_train
    if val is not None:
        b = min(range(n), key=lambda i: val[i])
        values.update(best_val=val[b], final_val=val[-1], gap=val[-1] - train[-1])
        rise = val[-1] - val[b]
        threshold = min_rise * max(abs(val[b]), 1e-12)
        values["val_rise"] = rise
        # overfitting: validation turned up clearly after its best epoch while training improved
        if b < n - 1 and rise > threshold and train[-1] <= train[b]:
            return Diagnosis(
                "overfit",
                epochs[b],
                epochs[b],
                f"validation {monitor} was lowest ({val[b]:.4g}) at epoch {epochs[b]} and rose "
                f"by {rise / max(abs(val[b]), 1e-12):.0%} to {val[-1]:.4g} while training "
                f"{monitor} fell to {train[-1]:.4g}; stop at epoch {epochs[b]} (EarlyStopping "
                "with restore_best_weights=True) or regularise",
                values,
            )
        best_epoch = epochs[b]
    else:
        best_epoch = epochs[min(range(n), key=lambda i: train[i])]

    if baseline is not None:
        values["baseline"] = float(baseline)
        if best_train > high * baseline:
            return Diagnosis(
                "underfit", None, best_epoch,
                f"the best training {monitor} {best_train:.4g} is still above {high:g} x the "
                f"trivial baseline {baseline:.4g}: use a bigger model, better features, less "
                "regularisation or more training",
                values,
            )  # fmt: skip
    else:
        total = train[0] - best_train
        drop = total / max(abs(train[0]), 1e-12)
        k = max(1, n // 4)
        recent = (train[-1 - k] - train[-1]) / total if n > 1 and total > 0 else 0.0
        values.update(relative_drop=drop, recent_share=recent)
        if n > 1 and drop < min_drop:
            return Diagnosis(
                "underfit", None, best_epoch,
                f"the training {monitor} barely moved ({drop:.1%} below its first value): the "
                "model cannot fit the data; use a bigger model, better features or a better "
                "learning rate",
                values,
            )  # fmt: skip
        if n >= 4 and recent > still_falling:
            return Diagnosis(
                "underfit", None, best_epoch,
                f"the training {monitor} was still falling steeply: the last {k} epoch(s) "
                f"brought {recent:.0%} of its drop; train longer or use a bigger model",
                values,
            )  # fmt: skip
    if val is None:
        return Diagnosis(
            "unknown", None, best_epoch,
            f"the training {monitor} settled at {train[-1]:.4g}, but without a validation "
            "loss overfitting cannot be told from a good fit (pass validation_data)",
            values,
        )  # fmt: skip
    return Diagnosis(
        "good fit", None, best_epoch,
        f"training and validation {monitor} settled together ({train[-1]:.4g} and "
        f"{val[-1]:.4g}); validation is at or near its best ({values['best_val']:.4g})",
        values,
    )  # fmt: skip
