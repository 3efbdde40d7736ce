"""Callbacks: code that runs at fixed points of ``fit`` (Keras's contract).

The fit loop talks to callbacks only through ``logs``, a dict of floats: ``loss``, each metric,
their ``val_`` twins, and whatever a callback adds (``learning_rate``, ``grad_norm/<layer>``).
Epoch indices are 0-based and absolute (a resumed run continues the count); file names use
``epoch + 1``, as Keras does.

A monitored quantity improves when ``current < best - min_delta`` (``>`` and ``+`` in max mode);
``mode="auto"`` reads the direction from the name: accuracy-like names (acc, auc, precision,
recall, f1, ...) are maximized, everything else (loss, mse, ...) is minimized.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import sys
import warnings

import numpy as np

from ember.errors import EmberTypeError, EmberValueError

# metric names (without "val_") that get better as they grow
_MAX_HINTS = ("acc", "auc", "precision", "recall", "f1", "iou", "r2", "top_k", "fbeta")


def monitor_direction(monitor: str, mode: str = "auto", model=None) -> str:
    """ "min" or "max" for a monitored log key (``mode`` wins unless it is "auto")."""
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise EmberValueError(f"mode must be 'auto', 'min' or 'max', received mode={mode!r}")
    name = monitor[4:] if monitor.startswith("val_") else monitor
    for key, metric in getattr(model, "_compiled_metrics", None) or []:
        direction = getattr(metric, "direction", None) or getattr(metric, "_direction", None)
        if key == name and direction in ("up", "down", "max", "min"):
            return "max" if direction in ("up", "max") else "min"
    if name.endswith("loss"):
        return "min"
    return "max" if any(h in name.lower() for h in _MAX_HINTS) else "min"


class Callback:
    """Base class: override the hooks you need. ``self.model`` is set by ``fit``.

    Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
    ``on_batch_begin/end(batch, logs)`` (aliases of ``on_train_batch_*``),
    ``on_test_begin/end(logs)``, ``on_test_batch_begin/end(batch, logs)``,
    ``on_predict_begin/end(logs)``, ``on_predict_batch_begin/end(batch, logs)``.
    """

    # callbacks that add keys to the epoch logs run before the others (so that CSVLogger,
    # TensorBoard and History see those keys whatever the order they were passed in)
    adds_logs = False

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


def _overrides(cb: Callback, *names: str) -> bool:
    return any(getattr(type(cb), n) is not getattr(Callback, n) for n in names)


class CallbackList:
    """Calls every callback's hook in turn (log producers first, then in the order given).

    Args:
        callbacks: a list of Callback instances (or None).
        model: the model the callbacks act on.
        params: ``epochs``, ``steps``, ``verbose`` (passed to ``set_params``).
    """

    def __init__(self, callbacks=None, model=None, **params):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise EmberTypeError(
                    f"callbacks must be ember.callbacks.Callback instances, received "
                    f"{type(cb).__name__}"
                )
        # stable: producers keep their relative order, the rest keep theirs
        self.callbacks = [c for c in callbacks if c.adds_logs] + [
            c for c in callbacks if not c.adds_logs
        ]
        self.model = None
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    @property
    def wants_batch_logs(self) -> bool:
        """Whether any callback looks at training batches (else the loop skips batch logs)."""
        hooks = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
        return any(_overrides(c, *hooks) for c in self.callbacks)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)

    def set_model(self, model) -> None:
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict) -> None:
        for cb in self.callbacks:
            cb.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    on_batch_begin = on_train_batch_begin
    on_batch_end = on_train_batch_end

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)


def _print(msg: str) -> None:
    print(msg, file=sys.stdout, flush=True)


def _get_lr(model, who: str) -> float:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        raise EmberValueError(f"{who}: the model has no optimizer; compile it first")
    lr = opt.learning_rate
    if callable(lr) and not isinstance(lr, (int, float, np.number)):
        raise EmberValueError(
            f"{who}: the optimizer's learning_rate is a schedule ({type(lr).__name__}); "
            f"{who} needs a float learning rate"
        )
    return float(lr)


# ---------------------------------------------------------------------------------- monitors
class _MonitorMixin:
    """``monitor`` / ``mode`` / ``min_delta`` handling shared by the monitoring callbacks."""

    def _init_monitor(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode not in ("auto", "min", "max"):
            raise EmberValueError(
                f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', received "
                f"mode={mode!r}"
            )
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self._direction = None

    def _resolve_direction(self) -> str:
        if self._direction is None:
            self._direction = monitor_direction(self.monitor, self.mode, self.model)
        return self._direction

    def _is_improvement(self, current: float, reference) -> bool:
        if reference is None:
            return True
        if self._resolve_direction() == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def _initial_best(self) -> float:
        return math.inf if self._resolve_direction() == "min" else -math.inf

    def _monitor_value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} is conditioned on {self.monitor!r}, which is not in "
                f"the logs; available: {', '.join(sorted(logs or {}))}",
                stacklevel=3,
            )
            return None
        return float(value)


class EarlyStopping(_MonitorMixin, Callback):
    """Stop training when a monitored quantity has stopped improving (Keras 3 semantics).

    Args:
        monitor: the log key to watch.
        min_delta: a change smaller than this is not an improvement.
        patience: epochs without improvement before stopping.
        mode: "auto", "min" or "max".
        baseline: training stops unless the quantity beats this value within ``patience``.
        restore_best_weights: at the end of training (stopped early or not), load the weights
            of the best epoch.
        start_from_epoch: epochs to skip before watching (warm-up).
        verbose: 1 prints when it stops and restores.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
        verbose: int = 0,
    ):
        super().__init__()
        self._init_monitor(monitor, mode, min_delta)
        self.patience = int(patience)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.verbose = verbose
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._initial_best()
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if self.best is None:  # used without on_train_begin (scripted tests do this)
            self.on_train_begin()
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # the first watched epoch is the best so far, whatever its value
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # the count restarts only when the baseline is beaten too
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                _print(f"Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")  # fmt: skip
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_MonitorMixin, Callback):
    """Multiply the learning rate by ``factor`` when a quantity has stopped improving.

    Args:
        monitor: the log key to watch.
        factor: new_lr = lr * factor (must be < 1).
        patience: epochs without improvement before reducing.
        mode: "auto", "min" or "max".
        min_delta: a change smaller than this is not an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the learning rate never goes below this.
        verbose: 1 prints each reduction.
    """

    adds_logs = True  # learning_rate

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        verbose: int = 0,
    ):
        super().__init__()
        if not 0.0 <= float(factor) < 1.0:
            raise EmberValueError(
                f"ReduceLROnPlateau: factor must be in [0, 1), received factor={factor!r}"
            )
        self._init_monitor(monitor, mode, min_delta)
        self.factor = float(factor)
        self.patience = int(patience)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        lr = _get_lr(self.model, "ReduceLROnPlateau")
        logs["learning_rate"] = lr
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.best is None:
            self.best = self._initial_best()
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and lr > np.float32(self.min_lr):
                new_lr = max(lr * self.factor, self.min_lr)
                self.model.optimizer.learning_rate = new_lr
                if self.verbose:
                    _print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                           f"{new_lr:.6g}.")  # fmt: skip
                self.cooldown_counter = self.cooldown
                self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``); the epoch is 0-based.

    Args:
        schedule: a function of (epoch, current learning rate) or of epoch alone.
        verbose: 1 prints the new rate each epoch.
    """

    adds_logs = True  # learning_rate

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise EmberTypeError(
                f"LearningRateScheduler: schedule must be callable, received {schedule!r}"
            )
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = self._takes_two(schedule)

    @staticmethod
    def _takes_two(fn) -> bool:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return True
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)

    def on_epoch_begin(self, epoch, logs=None):
        lr = _get_lr(self.model, "LearningRateScheduler")
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        try:
            new = float(new)
        except (TypeError, ValueError):
            raise EmberTypeError(
                f"LearningRateScheduler: the schedule must return a float, returned {new!r}"
            ) from None
        if not math.isfinite(new):
            raise EmberValueError(f"LearningRateScheduler: the schedule returned {new}")
        self.model.optimizer.learning_rate = new
        if self.verbose:
            _print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new:.6g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _get_lr(self.model, "LearningRateScheduler")


class TerminateOnNaN(Callback):
    """Stop training as soon as the running loss becomes NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            _print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


# ---------------------------------------------------------------------------------- files
class ModelCheckpoint(_MonitorMixin, Callback):
    """Save the model (or its weights) at the end of every epoch, or only when it improves.

    Args:
        filepath: the file to write; may hold ``{epoch}`` (1-based, as Keras) and any log key,
            e.g. ``"ckpt-{epoch:02d}-{val_loss:.4f}.ember"``. Weights-only paths end in
            ``.weights.npz``.
        monitor: the log key that decides "best".
        save_best_only: write only when ``monitor`` improves.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: "auto", "min" or "max".
        initial_value_threshold: a starting "best" value (save_best_only).
        verbose: 1 prints each save.
    """

    def __init__(
        self,
        filepath,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        initial_value_threshold: float | None = None,
        verbose: int = 0,
    ):
        super().__init__()
        self._init_monitor(monitor, mode, 0.0)
        self.filepath = os.fspath(filepath)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.verbose = verbose
        self.best = None if initial_value_threshold is None else float(initial_value_threshold)
        if self.save_weights_only and not self.filepath.endswith(".weights.npz"):
            raise EmberValueError(
                f"ModelCheckpoint: with save_weights_only=True the filepath must end in "
                f"'.weights.npz', received filepath={self.filepath!r}"
            )

    def _path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise EmberValueError(
                f"ModelCheckpoint: cannot fill the filepath template {self.filepath!r} "
                f"({type(exc).__name__}: {exc}); available keys: epoch, "
                f"{', '.join(sorted(logs))}"
            ) from None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        path = self._path(epoch, logs)
        if self.save_best_only:
            current = self._monitor_value(logs)
            if current is None:
                return
            if not self._is_improvement(current, self.best):
                if self.verbose:
                    _print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                           f"{self.best:.5f}")  # fmt: skip
                return
            if self.verbose:
                before = "-" if self.best is None else f"{self.best:.5f}"
                _print(f"Epoch {epoch + 1}: {self.monitor} improved from {before} to "
                       f"{current:.5f}, saving model to {path}")  # fmt: skip
            self.best = current
        elif self.verbose:
            _print(f"Epoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the log keys in sorted order.

    Args:
        filename: the CSV file.
        separator: the column separator.
        append: add to an existing file instead of overwriting it (no second header).
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        header = True
        if self.append and os.path.exists(self.filename) and os.path.getsize(self.filename):
            header = False
        folder = os.path.dirname(self.filename)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._header = header
        self.keys = None
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._file is None:
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(
                self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep,
                extrasaction="ignore",
            )  # fmt: skip
            if self._header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: _csv_value(logs.get(k, "NA")) for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None


def _csv_value(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


class TensorBoard(Callback):
    """Write TensorBoard event files (tensorboardX): every scalar log per epoch, and weight
    histograms every ``histogram_freq`` epochs.

    Training logs go to ``<log_dir>/train`` as ``epoch_<key>``, ``val_`` logs to
    ``<log_dir>/validation`` as ``epoch_<key>``; keys with a ``/`` (``grad_norm/dense``) keep
    their name so TensorBoard groups them.

    Args:
        log_dir: the folder of the event files.
        histogram_freq: 0 (none) or every how many epochs to write weight histograms.
    """

    def __init__(self, log_dir="logs", histogram_freq: int = 0):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if int(histogram_freq) < 0:
            raise EmberValueError(
                f"TensorBoard: histogram_freq must be >= 0, received {histogram_freq!r}"
            )
        self.histogram_freq = int(histogram_freq)
        self._writers: dict = {}

    def _writer(self, which: str):
        if which not in self._writers:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError(
                    "TensorBoard needs the tensorboardX package: pip install 'ember[tensorboard]'"
                ) from None
            self._writers[which] = SummaryWriter(logdir=os.path.join(self.log_dir, which))
        return self._writers[which]

    @staticmethod
    def _tag(key: str) -> str:
        return key if "/" in key else f"epoch_{key}"

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if key.startswith("val_"):
                self._writer("validation").add_scalar(self._tag(key[4:]), value, epoch)
            else:
                self._writer("train").add_scalar(self._tag(key), value, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0 and self.model is not None:
            w = self._writer("train")
            for p in self.model.weights:
                w.add_histogram(p.name, np.asarray(p.data), epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}


class BackupAndRestore(Callback):
    """Back up the training state after every epoch; a rerun of the same ``fit`` after a crash
    resumes from the last completed epoch.

    The backup holds the weights, the optimizer state, the random generator states (ember's
    and any layer's own) and the epoch, written atomically, so a run killed at any instant
    leaves a usable backup, and the resumed run ends with the weights an uninterrupted run
    would have. The backup is deleted when training ends normally.

    Args:
        backup_dir: the folder of the backup (created if needed).
        delete_checkpoint: delete the backup at the end of a completed fit.
    """

    FILENAME = "backup.ember-backup"

    def __init__(self, backup_dir, delete_checkpoint: bool = True):
        super().__init__()
        if not backup_dir:
            raise EmberValueError("BackupAndRestore: backup_dir must be a folder path")
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)
        self.resumed_from = None

    @property
    def path(self) -> str:
        return os.path.join(self.backup_dir, self.FILENAME)

    def on_train_begin(self, logs=None):
        from ember.models import saving

        self.resumed_from = None
        if os.path.exists(self.path):
            epoch = saving.restore_training_state(self.model, self.path)
            self.resumed_from = epoch
            # the fit loop reads this after on_train_begin: resume after the saved epoch
            self.model._resume_epoch = epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        from ember.models import saving

        os.makedirs(self.backup_dir, exist_ok=True)
        saving.save_training_state(self.model, self.path, epoch)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)


# ---------------------------------------------------------------------------------- diagnostics
class GradientMonitor(Callback):
    """Log each layer's gradient L2 norm, averaged over the epoch's batches, as
    ``grad_norm/<layer name>`` (so History, CSVLogger and TensorBoard record it).

    Vanishing gradients show as norms that shrink toward the input layers; exploding ones as
    norms that grow by orders of magnitude.

    Args:
        every: measure every ``every``-th batch (1: all of them).
    """

    adds_logs = True

    def __init__(self, every: int = 1):
        super().__init__()
        if int(every) < 1:
            raise EmberValueError(f"GradientMonitor: every must be >= 1, received {every!r}")
        self.every = int(every)
        self.history: dict[str, list] = {}
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._sums = {}
        self._count = 0

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every:
            return
        from ember.training.hooks import leaf_layers

        for layer in leaf_layers(self.model):
            grads = [p.grad for p in layer.trainable_weights if p.grad is not None]
            if not grads:
                continue
            sq = sum(float(np.vdot(g, g)) for g in grads)
            key = f"grad_norm/{layer.name}"
            self._sums[key] = self._sums.get(key, 0.0) + math.sqrt(sq)
        self._count += 1

    def on_epoch_end(self, epoch, logs=None):
        if not self._count:
            return
        for key, total in self._sums.items():
            value = total / self._count
            self.history.setdefault(key, []).append(value)
            if logs is not None:
                logs[key] = value


class DeadNeuronMonitor(Callback):
    """Log, for each ReLU layer, the fraction of its units that never fire (output <= 0 for
    every example and position) on a fixed validation batch: ``dead_relu/<layer name>``.

    Args:
        validation_batch: an array of inputs, or an ``(x, y)`` tuple (y is ignored).
    """

    adds_logs = True

    def __init__(self, validation_batch):
        super().__init__()
        if isinstance(validation_batch, (tuple, list)) and len(validation_batch) in (2, 3):
            validation_batch = validation_batch[0]
        self.validation_batch = validation_batch
        self.history: dict[str, list] = {}

    def dead_fractions(self) -> dict:
        """{layer name: fraction of dead units} on the validation batch, now."""
        from ember.training.hooks import record_outputs, relu_layers

        layers = relu_layers(self.model)
        with record_outputs(layers) as outputs:
            self.model.predict_on_batch(self.validation_batch)
        out = {}
        for layer in layers:
            y = outputs.get(id(layer))
            if y is None or y.ndim < 2:
                continue
            units = y.reshape(-1, y.shape[-1])  # (examples * positions, units)
            out[layer.name] = float(np.mean(~np.any(units > 0, axis=0)))
        return out

    def on_epoch_end(self, epoch, logs=None):
        for name, value in self.dead_fractions().items():
            key = f"dead_relu/{name}"
            self.history.setdefault(key, []).append(value)
            if logs is not None:
                logs[key] = value


def __getattr__(name: str):
    # History lives with the fit loop (ember.training.history); importing it lazily keeps the
    # two modules free of an import cycle.
    if name == "History":
        from ember.training.history import History

        return History
    if name == "ProgressLogger":
        from ember.training.progress import ProgressLogger

        return ProgressLogger
    raise AttributeError(f"module 'ember.callbacks' has no attribute {name!r}")


_LAZY = ("History", "ProgressLogger")  # served by __getattr__

__all__ = [
    "BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "DeadNeuronMonitor",
    "EarlyStopping", "GradientMonitor", "LearningRateScheduler", "ModelCheckpoint",
    "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN", *_LAZY,
]  # fmt: skip
