"""Model: a Layer that trains. ``compile`` picks the optimizer, loss and metrics; ``fit``,
``evaluate`` and ``predict`` run the loops of ``ember.training.loop``; ``save`` writes one file.

Subclass it and define ``call(self, x, training=None)`` (Keras's subclassing API), or use
``Sequential``. One training step, the whole of what ``fit`` repeats::

    for p in trainable weights: p.grad = None
    with layers.training_mode(True): y_pred = model(x)
    loss = compiled_loss(y, y_pred, sample_weight) + sum(model.losses)
    loss.backward(); optimizer.apply_gradients([(p.grad, p), ...])
"""

from __future__ import annotations

import inspect
import json

import numpy as np

from ember import backend
from ember.autograd import Tensor, no_grad
from ember.errors import EmberValueError
from ember.layers.base import Layer, training_mode


class _MeanTracker:
    """Weighted running mean (the loss of an epoch: each batch weighs its size, as Keras)."""

    __slots__ = ("total", "count")

    def __init__(self):
        self.total = 0.0
        self.count = 0.0

    def update(self, value: float, weight: float) -> None:
        self.total += value * weight
        self.count += weight

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def reset(self) -> None:
        self.total = self.count = 0.0


def _batch_len(x) -> int:
    if isinstance(x, (list, tuple)):
        return _batch_len(x[0])
    return int(x.shape[0]) if getattr(x, "ndim", 0) else 1


def _first_rows(x, n: int = 1):
    if isinstance(x, (list, tuple)):
        return type(x)(_first_rows(e, n) for e in x)
    return x[:n]


def _fmt_shape(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_fmt_shape(s) for s in shape)
    inner = ", ".join("None" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


class Model(Layer):
    """A layer with a training API: compile / fit / evaluate / predict / summary / save.

    Subclass it and write ``call(self, x, training=None)``; sublayers assigned as attributes
    are tracked (their weights are the model's). Register a subclass with
    ``@ember.layers.register`` to load it from a file; its ``__init__`` arguments (when they
    are JSON values) are its config.

    Args:
        name: the model's name.
        trainable: whether ``fit`` updates its weights.
        dtype: the float dtype of its weights.
    """

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # the constructor arguments, for get_config of subclassed models (Keras 3 does this)
        object.__setattr__(obj, "_init_args", (args, dict(kwargs)))
        return obj

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None, **kwargs):
        super().__init__(name=name, trainable=trainable, dtype=dtype, **kwargs)
        self.optimizer = None
        self.loss = None  # the identifier given to compile
        self.compiled_loss = None  # the Loss object
        self._compiled_metrics: list = []  # [(log key, metric)]
        self._metric_ids: list = []
        self._loss_tracker = _MeanTracker()
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._build_dtype = None
        self._resume_epoch = None

    # ------------------------------------------------------------------ building
    def __call__(self, x, training=None, **kwargs):
        first = not self.built
        if first:
            self._build_dtype = str(_input_dtype(x))
        try:
            return super().__call__(x, training=training, **kwargs)
        except Exception:
            if first:  # a failed first call leaves the model unbuilt, not half-built
                self.built = False
                self._build_shape = None
            raise

    def _maybe_build(self, shape) -> None:
        if self.built:
            return
        # Sublayers build themselves in the first call; a subclass that overrides build()
        # (to make weights of its own) gets it called, as in Keras.
        self.built = True  # first: a build() that calls super().build() must not recurse
        self._build_shape = _batchless(shape)
        if not getattr(type(self).build, "_traces", False):
            self.build(shape)

    def build(self, input_shape) -> None:
        """Create every weight by running the model once on zeros of ``input_shape`` (the
        batch axis may be None)."""
        if input_shape is None:
            raise EmberValueError(f"{self.name}.build: input_shape is required")
        if isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], tuple):
            x = [np.zeros(_concrete(s), dtype=backend.float_dtype()) for s in input_shape]
        else:
            dtype = self._build_dtype or backend.floatx()
            x = np.zeros(_concrete(tuple(input_shape)), dtype=dtype)
        with no_grad(), training_mode(False):
            self(x)
        self._build_shape = _batchless(
            [tuple(s) for s in input_shape] if isinstance(x, list) else tuple(input_shape)
        )

    build._traces = True  # runs the model: not to be called from inside the first call

    def _build_from_batch(self, batch) -> None:
        """Build (if needed) from one example of a training batch, before callbacks start."""
        if self.built or batch is None:
            return
        x = batch[0]
        with no_grad(), training_mode(False):
            self(_first_rows(x, 1))

    @property
    def layers(self) -> list:
        """The direct sublayers, in the order they were assigned."""
        return self.sublayers

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A sublayer by name or by index in ``layers``."""
        if index is not None:
            try:
                return self.layers[index]
            except IndexError:
                raise EmberValueError(
                    f"{self.name}.get_layer: index {index} is out of range; the model has "
                    f"{len(self.layers)} layers"
                ) from None
        from ember.training.hooks import walk_layers

        for layer in walk_layers(self):
            if layer.name == name:
                return layer
        raise EmberValueError(
            f"{self.name}.get_layer: no layer named {name!r}; layers: "
            f"{[layer.name for layer in self.layers]}"
        )

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Choose how to train.

        Args:
            optimizer: a name ("adam", "sgd", ...) or an ``ember.optimizers`` instance.
            loss: a name ("sparse_categorical_crossentropy", "mse", ...), an
                ``ember.losses`` instance or a function ``fn(y_true, y_pred)``.
            metrics: a list of names ("accuracy", "precision", ...) or ``ember.metrics``
                instances; each is logged under the name given (``val_`` + it for validation).
        """
        from ember import losses, optimizers

        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self.compiled_loss = losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str,)) or not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        compiled, keys = [], set()
        if metrics:
            from ember import metrics as metrics_mod
        for ident in metrics:
            metric = metrics_mod.get(ident, loss=loss)
            key = ident if isinstance(ident, str) else getattr(metric, "name", None)
            key = key or type(metric).__name__.lower()
            base, n = key, 1
            while key in keys or key == "loss":
                key = f"{base}_{n}"
                n += 1
            keys.add(key)
            compiled.append((key, metric))
        self._compiled_metrics = compiled
        self._metric_ids = list(metrics)
        self.compiled = True
        self.stop_training = False

    def _assert_compiled(self, who: str) -> None:
        if not self.compiled:
            raise EmberValueError(
                f"{self.name}.{who}: the model is not compiled; call "
                f"model.compile(optimizer=..., loss=...) first"
            )

    @property
    def metrics(self) -> list:
        """The compiled metric objects (the loss is tracked separately)."""
        return [m for _, m in self._compiled_metrics]

    @property
    def metrics_names(self) -> list:
        return ["loss", *(k for k, _ in self._compiled_metrics)]

    def reset_metrics(self) -> None:
        self._loss_tracker.reset()
        for _, m in self._compiled_metrics:
            m.reset_state()

    def _logs(self) -> dict:
        """{"loss": running mean, metric name: result} as Python floats."""
        logs = {"loss": float(self._loss_tracker.result())}
        for key, m in self._compiled_metrics:
            value = m.result()
            value = np.asarray(getattr(value, "data", value))
            if value.ndim == 0:  # a ConfusionMatrix is no scalar: it stays out of the logs
                logs[key] = float(value)
        return logs

    # ------------------------------------------------------------------ steps
    def compute_loss(self, y, y_pred, sample_weight=None) -> Tensor:
        """The compiled loss plus every regularization penalty (``model.losses``)."""
        total = None
        if self.compiled_loss is not None:
            if y is None:
                raise EmberValueError(
                    f"{self.name}: the batch has no targets y, but the model was compiled "
                    f"with loss={self.loss!r}; give y (or (x, y) batches)"
                )
            total = self.compiled_loss(y, y_pred, sample_weight=sample_weight)
        for penalty in self.losses:
            total = penalty if total is None else total + penalty
        if total is None:
            raise EmberValueError(
                f"{self.name}: nothing to minimize: compile(loss=...) or add a regularizer"
            )
        if not isinstance(total, Tensor) or total.ndim != 0:
            raise EmberValueError(
                f"{self.name}: the loss must be a scalar Tensor, received "
                f"{type(total).__name__} of shape {getattr(total, 'shape', '?')}"
            )
        return total

    def _update_metrics(self, loss: float, n: int, y, y_pred) -> None:
        self._loss_tracker.update(loss, n)
        if y is not None and self._compiled_metrics:
            pred = y_pred.data if isinstance(y_pred, Tensor) else y_pred
            for _, m in self._compiled_metrics:
                m.update_state(y, pred)

    def train_step(self, x, y=None, sample_weight=None, optimizer=None) -> float:
        """One update on one batch; returns the batch's loss. ``fit`` calls this."""
        optimizer = optimizer or self.optimizer
        for p in self.trainable_weights:
            p.grad = None
        with training_mode(True):
            y_pred = self(x)
        loss = self.compute_loss(y, y_pred, sample_weight)
        loss.backward()
        params = self.trainable_weights
        pairs = [(p.grad, p) for p in params if p.grad is not None]
        if pairs:
            optimizer.apply_gradients(pairs)
        value = float(loss.data)
        with no_grad():
            self._update_metrics(value, _batch_len(y_pred), y, y_pred)
        return value

    def test_step(self, x, y=None, sample_weight=None) -> float:
        """Loss and metrics of one batch in inference mode (no graph recorded)."""
        with no_grad(), training_mode(False):
            y_pred = self(x)
            loss = float(self.compute_loss(y, y_pred, sample_weight).data)
            self._update_metrics(loss, _batch_len(y_pred), y, y_pred)
        return loss

    def predict_step(self, x):
        with no_grad(), training_mode(False):
            return self(x)

    # ------------------------------------------------------------------ loops
    def fit(
        self,
        x=None,
        y=None,
        batch_size: int | None = 32,
        epochs: int = 1,
        verbose="auto",
        callbacks=None,
        validation_split: float = 0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        strategy=None,
    ):
        """Train for ``epochs`` epochs; returns the ``History``.

        Args:
            x: inputs: an array (or list of arrays), an ``ember.data.Dataset``, a
                ``DataLoader``, a Keras-style Sequence or a generator of ``(x, y)`` batches.
            y: targets (arrays only; other inputs carry them in their batches).
            batch_size: examples per batch (arrays and Datasets).
            epochs: the index of the last epoch + 1 (with ``initial_epoch``, as Keras).
            verbose: "auto" (a bar on a terminal, a line per epoch otherwise), 0, 1 or 2.
            callbacks: ``ember.callbacks`` instances.
            validation_split: the LAST fraction of the arrays (before shuffling) is held out.
            validation_data: ``(x, y)``, ``(x, y, sample_weight)`` or any accepted input.
            shuffle: reshuffle the arrays each epoch (True, False or "batch").
            class_weight: ``{class: weight}`` or "balanced" (n / (n_classes * count)).
            sample_weight: one weight per training example.
            initial_epoch: the epoch to start at (to resume).
            steps_per_epoch: batches per epoch (default: one pass over the data).
            validation_steps: validation batches per evaluation (default: all).
            validation_batch_size: batch size of the validation arrays (default batch_size).
            validation_freq: validate every this many epochs.
            strategy: ``ember.distributed.DataParallel()`` to train on every MPI rank
                (``batch_size`` is then the global batch, split across the ranks).
        """
        from ember.training import loop

        return loop.fit(
            self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
            sample_weight=sample_weight, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq,
            strategy=strategy,
        )  # fmt: skip

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size: int | None = 32,
        verbose="auto",
        sample_weight=None,
        steps: int | None = None,
        callbacks=None,
        return_dict: bool = False,
    ):
        """Loss and metrics over the data: ``[loss, *metrics]`` (a float when there are no
        metrics, as Keras), or a dict with ``return_dict=True``."""
        from ember.training import loop

        logs = loop.evaluate(
            self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
            steps=steps, callbacks=callbacks,
        )  # fmt: skip
        return logs if return_dict else self._flatten_logs(logs)

    def _flatten_logs(self, logs: dict):
        values = [logs["loss"], *(logs[k] for k, _ in self._compiled_metrics if k in logs)]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size: int | None = 32, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for every input, as one array (a list for several outputs);
        in inference mode and without recording a graph."""
        from ember.training import loop

        return loop.predict(
            self, x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
        )

    def train_on_batch(
        self, x, y=None, sample_weight=None, class_weight=None, return_dict=False,
        reset_metrics: bool = True,
    ):  # fmt: skip
        """One update on one batch; returns the batch's ``[loss, *metrics]`` (the metrics
        keep accumulating across calls with ``reset_metrics=False``)."""
        from ember.training import data_adapter as da

        self._assert_compiled("train_on_batch")
        x = da.as_inputs(x, "train_on_batch")
        y = da._to_array(y, "train_on_batch", "y")
        sample_weight = da._to_array(sample_weight, "train_on_batch", "sample_weight")
        if class_weight is not None:
            if sample_weight is not None:
                raise EmberValueError(
                    "train_on_batch: give class_weight or sample_weight, not both"
                )
            cw = da.check_class_weight(class_weight, "train_on_batch")
            sample_weight = da.class_weight_to_sample_weight(y, cw)
        if reset_metrics:
            self.reset_metrics()
        self.train_step(x, y, sample_weight)
        logs = self._logs()
        return logs if return_dict else self._flatten_logs(logs)

    def test_on_batch(
        self, x, y=None, sample_weight=None, return_dict=False, reset_metrics: bool = True
    ):
        """Loss and metrics of one batch, without updating anything."""
        from ember.training import data_adapter as da

        self._assert_compiled("test_on_batch")
        x = da.as_inputs(x, "test_on_batch")
        y = da._to_array(y, "test_on_batch", "y")
        sample_weight = da._to_array(sample_weight, "test_on_batch", "sample_weight")
        if reset_metrics:
            self.reset_metrics()
        self.test_step(x, y, sample_weight)
        logs = self._logs()
        return logs if return_dict else self._flatten_logs(logs)

    def predict_on_batch(self, x):
        """The outputs for one batch, as an array (no graph recorded)."""
        from ember.training import data_adapter as da

        arrays = da.as_inputs(x, "predict_on_batch")
        out = self.predict_step(arrays if arrays is not None else x)
        if isinstance(out, (list, tuple)):
            return [o.data for o in out]
        return out.data

    def lr_find(
        self,
        x,
        y=None,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        steps: int = 100,
        batch_size: int = 32,
        smoothing: float = 0.98,
        stop_factor: float = 4.0,
    ):
        """The learning-rate range test (Smith 2015; fastai's lr_find): train ``steps``
        batches while the rate grows geometrically from ``start_lr`` to ``end_lr``, record the
        smoothed loss, stop once it exceeds ``stop_factor`` x its best. The weights, the
        optimizer and the random state are restored afterwards.

        Returns an ``LRFinderResult`` with ``lrs``, ``losses``, ``suggested_lr`` and
        ``plot(path)``.
        """
        from ember.training.lr_finder import lr_find

        return lr_find(
            self, x, y, start_lr=start_lr, end_lr=end_lr, steps=steps, batch_size=batch_size,
            smoothing=smoothing, stop_factor=stop_factor,
        )  # fmt: skip

    # ------------------------------------------------------------------ summary
    def summary(self, line_length: int | None = None, print_fn=None) -> None:
        """Print a table of the layers: name (type), output shape, parameter count; then the
        totals, trainable and non-trainable. ``print_fn`` receives each line (default print);
        ``line_length`` fixes the table's width (default: fitted to the content).
        """
        print_fn = print_fn or print
        for line in self._summary_lines(line_length):
            print_fn(line)

    def _output_shapes(self) -> dict:
        """{id(layer): output shape} for the direct sublayers, traced on a batch of 1."""
        if not self.built or self._build_shape is None:
            return {}
        from ember.training.hooks import record_outputs

        shape = self._build_shape
        if isinstance(shape, list):
            x = [np.zeros(_concrete(s), dtype=backend.float_dtype()) for s in shape]
        else:
            x = np.zeros(_concrete(shape), dtype=self._build_dtype or backend.floatx())
        layers = self.layers
        with record_outputs(layers) as outputs, no_grad(), training_mode(False):
            self(x)
        return {k: (None, *v.shape[1:]) for k, v in outputs.items()}

    def _summary_lines(self, line_length: int | None = None) -> list:
        shapes = self._output_shapes()
        layers = self.layers
        rows = []
        for layer in layers:
            shape = shapes.get(id(layer))
            if shape is None and layer.built and hasattr(layer, "shape"):
                shape = layer.shape
            count = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            rows.append((f"{layer.name} ({type(layer).__name__})", _fmt_shape(shape), count))
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in [header, *rows]) + 3 for i in range(3)]
        if line_length is not None:  # scale the columns to the width asked for
            extra = int(line_length) - sum(widths)
            widths[0] += extra // 2
            widths[1] += extra - extra // 2
            widths = [max(w, 8) for w in widths]
        width = sum(widths)

        def row(a, b, c):
            a = a if len(a) < widths[0] else a[: widths[0] - 2] + "~"
            return f"{a:<{widths[0]}}{b:<{widths[1]}}{c:>{widths[2]}}"

        lines = [f'Model: "{self.name}"', "=" * width, row(*header), "=" * width]
        for i, r in enumerate(rows):
            lines.append(row(*r))
            lines.append("=" * width if i == len(rows) - 1 else "-" * width)
        if not rows:
            lines += ["(no layers)", "=" * width]
        train = self.trainable_weights
        train_ids = {id(p) for p in train}
        non_train = [p for p in self.weights if id(p) not in train_ids]
        n_train = sum(p.size for p in train)
        n_non = sum(p.size for p in non_train)
        b_train = sum(p.data.nbytes for p in train)
        b_non = sum(p.data.nbytes for p in non_train)
        lines.append(f"Total params: {n_train + n_non:,} ({_human_bytes(b_train + b_non)})")
        lines.append(f"Trainable params: {n_train:,} ({_human_bytes(b_train)})")
        lines.append(f"Non-trainable params: {n_non:,} ({_human_bytes(b_non)})")
        if not self.built:
            lines.append("(the model is not built yet: call it on a batch, fit it, or "
                         "build(input_shape), to see every shape and count)")  # fmt: skip
        return lines

    # ------------------------------------------------------------------ saving
    def save(self, path, overwrite: bool = True) -> None:
        """Write the whole model (architecture, weights, optimizer state, compile settings) to
        ONE file at exactly ``path`` (a zip; no pickle), atomically."""
        from ember.models import saving

        saving.save_model(self, path, overwrite=overwrite)

    def save_weights(self, path, overwrite: bool = True) -> None:
        """Write the weights alone to ``path`` (must end in ``.weights.npz``)."""
        from ember.models import saving

        saving.save_weights(self, path, overwrite=overwrite)

    def load_weights(self, path) -> None:
        """Load weights written by ``save_weights`` (or from a model file), matched by weight
        name when the names agree, else by order; shapes must match."""
        from ember.models import saving

        saving.load_weights(self, path)

    def get_config(self) -> dict:
        """The constructor arguments (subclassed models: those passed to ``__init__``, which
        must be JSON values; override get_config/from_config otherwise)."""
        if type(self) is Model:
            return super().get_config()
        args, kwargs = self._init_args
        try:
            bound = inspect.signature(type(self).__init__).bind(self, *args, **kwargs)
        except TypeError:
            bound = None
        config = {}
        if bound is not None:
            params = inspect.signature(type(self).__init__).parameters
            for key, value in list(bound.arguments.items())[1:]:
                kind = params[key].kind
                if kind == inspect.Parameter.VAR_KEYWORD:
                    config.update(value)
                elif kind == inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        raise EmberValueError(
                            f"{type(self).__name__}.get_config: *{key} arguments cannot be "
                            f"saved; override get_config() and from_config()"
                        )
                else:
                    config[key] = value
        try:
            json.dumps(config, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise EmberValueError(
                f"{type(self).__name__}.get_config: its constructor arguments are not JSON "
                f"values ({exc}); override get_config() and from_config() to save this model"
            ) from None
        return config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not a JSON value")


def _input_dtype(x):
    if isinstance(x, (list, tuple)):
        return _input_dtype(x[0]) if x else np.dtype(backend.floatx())
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    dtype = np.dtype(dtype)
    return backend.float_dtype() if dtype.kind == "f" else dtype


def _batchless(shape):
    """The shape with its batch axis as None (a list of shapes for several inputs)."""
    if isinstance(shape, list) or (
        isinstance(shape, tuple) and shape and isinstance(shape[0], tuple)
    ):
        return [(None, *tuple(s)[1:]) for s in shape]
    shape = tuple(shape)
    return (None, *shape[1:]) if shape else shape


def _concrete(shape) -> tuple:
    return tuple(1 if s is None else int(s) for s in shape)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
