"""The loops behind Model.fit / evaluate / predict (Keras 3's trainer, in one place).

fit: for each epoch, reset the metrics, ``on_epoch_begin``, then per batch
``on_train_batch_begin`` / ``model.train_step`` / ``on_train_batch_end(logs)``; then the
validation pass (its logs prefixed ``val_``), ``on_epoch_end(epoch, logs)``; stop when a
callback sets ``model.stop_training``. Logs are dicts of floats and the only thing the loop and
the callbacks share.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ember.callbacks import CallbackList
from ember.errors import EmberValueError
from ember.training import data_adapter as da
from ember.training.history import History
from ember.training.progress import ProgressLogger, resolve_verbose


def _check_int(who: str, arg: str, value, low: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        want = f"an int >= {low}" + (" or None" if allow_none else "")
        raise EmberValueError(f"{who}: {arg} must be {want}, received {arg}={value!r}")
    return int(value)


def _split_validation(x, y, sample_weight, validation_split: float):
    """Keras's rule: the LAST fraction of the arrays, taken before any shuffling."""
    arrays = da.as_inputs(x, "fit")
    if arrays is None:
        raise EmberValueError(
            f"fit: validation_split works with array inputs only, received x of type "
            f"{type(x).__name__}; pass validation_data instead"
        )
    n = len(arrays[0]) if isinstance(arrays, tuple) else len(arrays)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at <= 0 or split_at >= n:
        raise EmberValueError(
            f"fit: validation_split={validation_split} of {n} examples leaves "
            f"{split_at} for training and {n - split_at} for validation; both need at least one"
        )
    y = da._to_array(y, "fit", "y")
    sample_weight = da._to_array(sample_weight, "fit", "sample_weight")
    head, tail = slice(0, split_at), slice(split_at, None)
    train = (da.take(arrays, head), da.take(y, head), da.take(sample_weight, head))
    val = (da.take(arrays, tail), da.take(y, tail), da.take(sample_weight, tail))
    return train, val


def _validation_adapter(validation_data, batch_size: int):
    if validation_data is None:
        return None
    if isinstance(validation_data, tuple) and len(validation_data) in (2, 3):
        first = da.as_inputs(validation_data[0], "fit")
        if first is not None:
            vy = validation_data[1]
            vsw = validation_data[2] if len(validation_data) == 3 else None
            return da.adapt(first, vy, vsw, batch_size, False, "fit")
    return da.adapt(validation_data, batch_size=batch_size, shuffle=False, who="fit")


def fit(
    model,
    x,
    y=None,
    *,
    batch_size=32,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    class_weight=None,
    sample_weight=None,
    initial_epoch=0,
    steps_per_epoch=None,
    validation_steps=None,
    validation_batch_size=None,
    validation_freq=1,
    strategy=None,
):
    """Model.fit (see its docstring)."""
    if strategy is not None:
        # ember.distributed: the strategy shards the data over the MPI ranks, wraps the steps
        # (gradients and metrics combined) and the file-writing callbacks, then runs this
        # same loop with strategy=None (DataParallel.run_fit in distributed/data_parallel.py)
        return strategy.run_fit(fit, **{k: v for k, v in locals().items() if k != "strategy"})
    model._assert_compiled("fit")
    batch_size = _check_int("fit", "batch_size", 32 if batch_size is None else batch_size, 1)
    epochs = _check_int("fit", "epochs", epochs, 0)
    initial_epoch = _check_int("fit", "initial_epoch", initial_epoch, 0)
    steps_per_epoch = _check_int("fit", "steps_per_epoch", steps_per_epoch, 1, True)
    validation_steps = _check_int("fit", "validation_steps", validation_steps, 1, True)
    validation_freq = _check_int("fit", "validation_freq", validation_freq, 1)
    if shuffle not in (True, False, "batch"):
        raise EmberValueError(f"fit: shuffle must be True, False or 'batch', received {shuffle!r}")
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise EmberValueError(
            f"fit: validation_split must be a float in [0, 1), received {validation_split!r}"
        )
    if validation_split and validation_data is None:
        (x, y, sample_weight), validation_data = _split_validation(
            x, y, sample_weight, validation_split
        )

    cw = None
    if class_weight is not None:
        if sample_weight is not None:
            raise EmberValueError(
                "fit: give class_weight or sample_weight, not both (as Keras); fold the class "
                "weights into sample_weight yourself to combine them"
            )
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise EmberValueError(
                    f"fit: class_weight must be a dict or 'balanced', received {class_weight!r}"
                )
            if da.as_inputs(x, "fit") is None or y is None:
                raise EmberValueError(
                    "fit: class_weight='balanced' needs array targets y to count the classes; "
                    "with other inputs pass a dict (ember.data.compute_class_weight)"
                )
            cw = da.balanced_class_weight(da._to_array(y, "fit", "y"))
        else:
            cw = da.check_class_weight(class_weight, "fit")

    adapter = da.adapt(x, y, sample_weight, batch_size, shuffle, "fit")
    if isinstance(adapter, da.ArrayAdapter) and adapter.y is None and model.compiled_loss:
        raise EmberValueError(
            f"fit: y is required with array inputs (the model was compiled with "
            f"loss={model.loss!r})"
        )
    iterator = da.EpochIterator(adapter, steps_per_epoch)
    val_adapter = _validation_adapter(validation_data, validation_batch_size or batch_size)
    val_iterator = None if val_adapter is None else da.EpochIterator(val_adapter, validation_steps)

    model._build_from_batch(adapter.first_batch())

    cbs = CallbackList(callbacks, model=model)
    history = History()
    cbs.append(history)
    mode = resolve_verbose(verbose)
    if mode is not None:
        cbs.append(ProgressLogger(mode))
    cbs.set_params({"epochs": epochs, "steps": iterator.steps, "verbose": verbose})
    batch_logs = cbs.wants_batch_logs

    model.stop_training = False
    model._resume_epoch = None
    cbs.on_train_begin()
    if model._resume_epoch is not None:  # BackupAndRestore found a backup
        initial_epoch = max(initial_epoch, model._resume_epoch)
        model._resume_epoch = None
    loader = getattr(adapter, "loader", None)
    epoch_logs: dict = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        if steps_per_epoch is None and hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)  # DataLoader order depends on the (absolute) epoch
        cbs.on_epoch_begin(epoch)
        steps = 0
        for step, (xb, yb, swb) in enumerate(iterator.epoch()):
            if cw is not None:
                if yb is None:
                    raise EmberValueError("fit: class_weight needs batches with targets y")
                swb = da.class_weight_to_sample_weight(yb, cw)
            if batch_logs:
                cbs.on_train_batch_begin(step)
            model.train_step(xb, yb, swb)
            steps += 1
            if batch_logs:
                cbs.on_train_batch_end(step, model._logs())
            if model.stop_training:
                break
        if steps == 0:
            if epoch == initial_epoch and not iterator.exhausted:
                raise EmberValueError("fit: the training data is empty")
            warnings.warn(
                f"fit: the input ran out of data at epoch {epoch + 1}; training stops. Give "
                f"steps_per_epoch and a generator that yields at least steps_per_epoch * epochs "
                f"batches",
                stacklevel=3,
            )
            break
        epoch_logs = model._logs()
        if val_iterator is not None and (epoch + 1) % validation_freq == 0:
            val_logs = _evaluate_epoch(model, val_iterator, cbs)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        cbs.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    cbs.on_train_end(epoch_logs)
    model.history = history
    return history


def _evaluate_epoch(model, iterator, cbs) -> dict:
    model.reset_metrics()
    cbs.on_test_begin()
    n = 0
    for step, (xb, yb, swb) in enumerate(iterator.epoch()):
        cbs.on_test_batch_begin(step)
        model.test_step(xb, yb, swb)
        n += 1
        cbs.on_test_batch_end(step, model._logs())
    if n == 0:
        raise EmberValueError("evaluate: the data is empty (or the generator ran out)")
    logs = model._logs()
    cbs.on_test_end(logs)
    return logs


def evaluate(
    model, x, y=None, *, batch_size=32, verbose="auto", sample_weight=None, steps=None,
    callbacks=None,
):  # fmt: skip
    """Model.evaluate: the logs dict ({"loss": ..., metric: ...})."""
    model._assert_compiled("evaluate")
    batch_size = _check_int("evaluate", "batch_size", 32 if batch_size is None else batch_size, 1)
    steps = _check_int("evaluate", "steps", steps, 1, True)
    adapter = da.adapt(x, y, sample_weight, batch_size, False, "evaluate")
    if isinstance(adapter, da.ArrayAdapter) and adapter.y is None and model.compiled_loss:
        raise EmberValueError("evaluate: y is required with array inputs")
    iterator = da.EpochIterator(adapter, steps)
    cbs = _step_callbacks(model, callbacks, verbose, "test", iterator.steps)
    return _evaluate_epoch(model, iterator, cbs)


def _step_callbacks(model, callbacks, verbose, target: str, steps) -> CallbackList:
    """evaluate's and predict's callbacks: the user's, and a progress display for a bar, or for
    lines when ``verbose`` was given explicitly ("auto" shows no lines there)."""
    cbs = CallbackList(callbacks, model=model)
    mode = resolve_verbose(verbose)
    if mode == "bar" or (mode == "line" and verbose != "auto"):
        cbs.append(ProgressLogger(mode, target=target))
    cbs.set_params({"steps": steps, "verbose": verbose})
    return cbs


def predict(model, x, *, batch_size=32, verbose="auto", steps=None, callbacks=None):
    """Model.predict: outputs for all inputs, concatenated along the batch axis."""
    batch_size = _check_int("predict", "batch_size", 32 if batch_size is None else batch_size, 1)
    steps = _check_int("predict", "steps", steps, 1, True)
    adapter = da.adapt(x, None, None, batch_size, False, "predict")
    iterator = da.EpochIterator(adapter, steps)
    cbs = _step_callbacks(model, callbacks, verbose, "predict", iterator.steps)
    cbs.on_predict_begin()
    outs = []
    for step, (xb, _, _) in enumerate(iterator.epoch()):
        cbs.on_predict_batch_begin(step)
        out = model.predict_step(xb)
        if isinstance(out, (list, tuple)):
            outs.append([o.data for o in out])
        else:
            outs.append(out.data)
        cbs.on_predict_batch_end(step, {})
    cbs.on_predict_end()
    if not outs:
        raise EmberValueError("predict: the input is empty")
    if isinstance(outs[0], list):
        return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
    return np.concatenate(outs)
