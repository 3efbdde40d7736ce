"""Optimizers with Keras 3's update rules, written as in-place NumPy updates.

Two ways to use one:

    opt = Adam(params=model.trainable_weights)     # the low-level loop (DESIGN §4)
    loss.backward(); opt.step(); opt.zero_grad()

    opt.apply_gradients([(grad, param), ...])      # what the fit loop calls

Each update, in Keras 3's order: drop pairs whose gradient is None; clip the gradients
(``clipnorm`` per weight, or ``global_clipnorm`` over all of them, or ``clipvalue``); apply
decoupled weight decay ``w <- w - w * weight_decay * lr`` when ``weight_decay`` is set (AdamW sets
it by default); run the optimizer's rule (see each class, or ``opt.explain()``); apply each
weight's ``constraint``; count one iteration. With a schedule, the rate of an update is
``schedule(iterations)``, ``iterations`` being the number of updates done before it.

State (momentum, velocity, ...) is made lazily on a weight's first update, with the weight's
shape and dtype (float32 weights keep float32 state), and is keyed by the weight's name
(``Parameter.name``, e.g. ``"dense/kernel"``; ``"param_<i>"`` for an unnamed weight at position
``i``), so ``get_state()`` is a plain ``{name: array}`` dict that ``set_state`` restores into a new
optimizer for a model rebuilt from a file.

Per-weight learning-rate multipliers (fine-tuning): ``lr_multipliers={"dense_1/": 0.1}`` scales the
rate of every weight whose name starts with ``"dense_1/"`` (the longest matching prefix wins;
weights matching none use 1.0); ``opt.set_lr_multiplier(prefix, factor)`` adds one later. The
multiplier scales the rate everywhere it appears in that weight's update, weight decay included.

Weight regularization (L1/L2 penalties) is not here: layers add their penalties to the loss.

The NumPy rules below are the reference. With Numba installed (the ``accel`` extra) the built-in
rules update float32 weights in one compiled pass each (``ember.ops.kernels.optim``: the same
operations in the same order, so the same bits); ``EMBER_ACCEL=0`` or
``with ember.ops._accel.enabled(False):`` turns that off. Measured on the mlp benchmark (670k
float32 weights, Adam, 2-core machine): 1.4-1.5 ms per update as NumPy passes, 0.45 ms compiled.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ember import schedules as _schedules
from ember.errors import EmberTypeError, EmberValueError, ShapeError

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "clip_by_norm", "clip_by_value",
    "clip_by_global_norm", "global_norm", "get", "serialize", "deserialize",
]  # fmt: skip


# --------------------------------------------------------------------------- clipping
def _raw(g):
    return None if g is None else np.asarray(getattr(g, "data", g))


def _check_max(fn: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise EmberValueError(f"{fn}: {arg} must be a number > 0, received {arg}={value!r}")
    return float(value)


def _norm_of(g: np.ndarray) -> float:
    flat = g.reshape(-1)
    return math.sqrt(float(np.dot(flat, flat)))


def _clip_one_by_norm(g: np.ndarray, max_norm: float) -> np.ndarray:
    # Keras: g * max_norm / max(||g||, max_norm); a zero gradient stays zero, and a gradient
    # already inside the ball is returned as is (the Keras factor is exactly 1 there)
    norm = _norm_of(g)
    if norm <= max_norm:
        return g
    return g * (max_norm / norm)


def clip_by_norm(grads, max_norm: float):
    """Rescale each gradient on its own so that its L2 norm is at most ``max_norm``.

    ``g <- g * max_norm / max(||g||, max_norm)``. Takes one array (or Tensor) or a list of them
    (None entries pass through); returns new arrays, never writes into the inputs.
    """
    max_norm = _check_max("clip_by_norm", "max_norm", max_norm)
    if isinstance(grads, (list, tuple)):
        return [None if g is None else _clip_one_by_norm(_raw(g), max_norm) for g in grads]
    return _clip_one_by_norm(_raw(grads), max_norm)


def clip_by_value(grads, clip_value: float):
    """Clip every gradient element to ``[-clip_value, clip_value]``.

    Takes one array (or Tensor) or a list of them (None entries pass through).
    """
    v = _check_max("clip_by_value", "clip_value", clip_value)
    if isinstance(grads, (list, tuple)):
        return [None if g is None else np.clip(_raw(g), -v, v) for g in grads]
    return np.clip(_raw(grads), -v, v)


def global_norm(grads) -> float:
    """``sqrt(sum_i ||g_i||^2)`` over a list of gradients (None entries skipped)."""
    return math.sqrt(sum(_norm_of(_raw(g)) ** 2 for g in grads if g is not None))


def clip_by_global_norm(grads, max_norm: float) -> list:
    """Rescale all gradients by one factor so that their global norm is at most ``max_norm``.

    ``g_i <- g_i * max_norm / max(global_norm, max_norm)``; a NaN or Inf norm makes every
    gradient NaN (as in Keras), so that the failure shows instead of being clipped away.
    """
    max_norm = _check_max("clip_by_global_norm", "max_norm", max_norm)
    grads = [_raw(g) for g in grads]
    norm = global_norm(grads)
    if not math.isfinite(norm):
        scale = math.nan
    elif norm <= max_norm:
        return grads
    else:
        scale = max_norm / norm
    return [None if g is None else g * scale for g in grads]


# --------------------------------------------------------------------------- base class
def _float_arg(owner: str, arg: str, value, low=None, high=None, high_open=False) -> float:
    """``value`` as a float, checked to lie in ``[low, high]`` (``[low, high)`` if high_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise EmberValueError(f"{owner}: {arg} must be a number, received {arg}={value!r}")
    if (low is not None and value < low) or (
        high is not None and (value >= high if high_open else value > high)
    ):
        if high is None:
            want = f">= {low}"
        else:
            want = f"in [{low}, {high}{')' if high_open else ']'}"
        raise EmberValueError(f"{owner}: {arg} must be {want}, received {arg}={value!r}")
    return float(value)


class Optimizer:
    """Base class of ember's optimizers (see the module docstring for the update order).

    Args:
        learning_rate: a float >= 0, or a schedule from ``ember.schedules`` (or any callable
            ``f(step) -> float``), evaluated at ``iterations`` before each update.
        params: the weights ``step()`` and ``zero_grad()`` work on (optional; ``apply_gradients``
            takes its weights with the gradients).
        weight_decay: decoupled weight decay ``w <- w - w * weight_decay * lr`` before each
            update (None: off).
        clipnorm: clip each weight's gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
            At most one of the three clipping options may be set.
        lr_multipliers: ``{name_prefix: factor}`` per-weight learning-rate factors.
        name: the optimizer's name.
    """

    default_name = "optimizer"
    _hyper: tuple = ()  # names of the subclass's hyperparameters (for get_config / explain)

    def __init__(
        self,
        learning_rate=0.001,
        *,
        params=None,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        lr_multipliers: dict | None = None,
        name: str | None = None,
    ):
        owner = type(self).__name__
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        set_clips = [f"{k}={v!r}" for k, v in clips.items() if v is not None]
        if len(set_clips) > 1:
            raise EmberValueError(
                f"{owner}: only one of clipnorm, clipvalue and global_clipnorm can be set, "
                f"received {', '.join(set_clips)}"
            )
        self.clipnorm = None if clipnorm is None else _check_max(owner, "clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else _check_max(owner, "clipvalue", clipvalue)
        self.global_clipnorm = (
            None if global_clipnorm is None
            else _check_max(owner, "global_clipnorm", global_clipnorm)
        )  # fmt: skip
        self.weight_decay = (
            None if weight_decay is None
            else _float_arg(owner, "weight_decay", weight_decay, low=0.0)
        )  # fmt: skip
        self.name = name or self.default_name
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.iterations = 0
        self.params = None if params is None else self._check_params(params)
        self._lr_multipliers: dict[str, float] = {}
        for prefix, factor in (lr_multipliers or {}).items():
            self.set_lr_multiplier(prefix, factor)
        self._exclude_wd: list[str] = []
        self._exclude_wd_re = None
        self._slots: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: dict[tuple, np.ndarray] = {}
        self._flat: dict[str, tuple] = {}  # weight name -> _flat_state's views and their keys

    # ------------------------------------------------------------------ configuration
    def _check_params(self, params) -> list:
        params = list(params)
        for i, p in enumerate(params):
            if not hasattr(p, "data") or not isinstance(getattr(p, "data", None), np.ndarray):
                raise EmberTypeError(
                    f"{type(self).__name__}: params must be Parameters (or Tensors), "
                    f"received {type(p).__name__} at position {i}"
                )
        return params

    @property
    def learning_rate(self) -> float:
        """The rate the next update uses (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        if callable(lr):
            return float(lr(self.iterations))
        return lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(value, _schedules.LearningRateSchedule) or callable(value):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            # as in Keras: a schedule owns the rate; replace it with another schedule instead
            raise EmberTypeError(
                f"{type(self).__name__}: this optimizer's learning_rate is a "
                f"{type(self._learning_rate).__name__} schedule, so it cannot be set to a "
                f"number ({value!r}); create the optimizer with a float learning_rate"
            )
        self._learning_rate = _float_arg(
            type(self).__name__, "learning_rate", _as_number(value), low=0.0
        )

    @property
    def schedule(self):
        """The learning-rate schedule, or None when the rate is a number."""
        return self._learning_rate if callable(self._learning_rate) else None

    def set_lr_multiplier(self, prefix: str, factor: float) -> None:
        """Scale the learning rate of weights whose name starts with ``prefix`` by ``factor``."""
        if not isinstance(prefix, str):
            raise EmberTypeError(
                f"{type(self).__name__}: lr_multipliers keys are weight-name prefixes (str), "
                f"received {prefix!r}"
            )
        self._lr_multipliers[prefix] = _float_arg(
            type(self).__name__, f"lr_multipliers[{prefix!r}]", factor, low=0.0
        )

    def _lr_multiplier(self, key: str) -> float:
        best, factor = -1, 1.0
        for prefix, f in self._lr_multipliers.items():
            if len(prefix) > best and key.startswith(prefix):
                best, factor = len(prefix), f
        return factor

    def exclude_from_weight_decay(self, var_names=None) -> None:
        """Exempt weights from weight decay: any name in which one of ``var_names`` occurs
        (a regular-expression search, as Keras does), e.g. ``["bias", "gamma", "beta"]``."""
        self._exclude_wd = [str(n) for n in (var_names or [])]
        self._exclude_wd_re = re.compile("|".join(self._exclude_wd)) if self._exclude_wd else None

    def _uses_weight_decay(self, key: str) -> bool:
        return self._exclude_wd_re is None or self._exclude_wd_re.search(key) is None

    # ------------------------------------------------------------------ the update
    def zero_grad(self) -> None:
        """Clear the ``.grad`` of every weight in ``params``."""
        for p in self._need_params("zero_grad"):
            p.grad = None

    def _need_params(self, method: str) -> list:
        if self.params is None:
            raise EmberValueError(
                f"{type(self).__name__}.{method}: this optimizer was made without params; "
                f"pass params=model.trainable_weights, or call apply_gradients(pairs)"
            )
        return self.params

    def step(self) -> None:
        """Update every weight in ``params`` from its ``.grad`` (weights whose ``.grad`` is None
        are skipped; when all are None nothing happens and ``iterations`` stays)."""
        params = self._need_params("step")
        keys = self._keys(params)
        triples = [(p.grad, p, k) for p, k in zip(params, keys) if p.grad is not None]
        if triples:
            self._apply(triples)

    def apply_gradients(self, grads_and_vars) -> int:
        """Apply ``[(grad, weight), ...]`` (None gradients skipped); returns ``iterations``."""
        pairs = list(grads_and_vars)
        keys = self._keys([p for _, p in pairs])
        triples = [(g, p, k) for (g, p), k in zip(pairs, keys) if g is not None]
        if not triples:
            raise EmberValueError(
                f"{type(self).__name__}.apply_gradients: no gradient was given for any of the "
                f"{len(pairs)} weights (all were None)"
            )
        self._apply(triples)
        return self.iterations

    def _keys(self, params) -> list:
        keys, seen = [], {}
        for i, p in enumerate(params):
            key = getattr(p, "name", None)
            if not key:
                if self.params is not None:
                    i = next((j for j, q in enumerate(self.params) if q is p), i)
                key = f"param_{i}"
            if key in seen and seen[key] is not p:
                raise EmberValueError(
                    f"{type(self).__name__}: two different weights are both named {key!r}; "
                    f"optimizer state is keyed by weight name, so names must be unique"
                )
            seen[key] = p
            keys.append(key)
        return keys

    def _apply(self, triples) -> None:
        owner = type(self).__name__
        grads, params, keys = [], [], []
        for g, p, k in triples:
            g = _raw(g)
            if g.shape != p.data.shape:
                raise ShapeError(
                    f"{owner}: the gradient for weight {k!r} has shape {g.shape}, but the "
                    f"weight has shape {p.data.shape}"
                )
            if g.dtype != p.data.dtype:
                g = g.astype(p.data.dtype)
            grads.append(g)
            params.append(p)
            keys.append(k)
        if self.clipnorm is not None:
            grads = [_clip_one_by_norm(g, self.clipnorm) for g in grads]
        elif self.global_clipnorm is not None:
            grads = clip_by_global_norm(grads, self.global_clipnorm)
        elif self.clipvalue is not None:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        lr = float(self.learning_rate)
        kernels = self._kernels()
        for g, p, k in zip(grads, params, keys):
            w = p.data
            plr = lr * self._lr_multiplier(k) if self._lr_multipliers else lr
            decay = (
                self.weight_decay * plr
                if self.weight_decay is not None and self._uses_weight_decay(k)
                else None
            )
            flat = self._flat_state(k, w) if kernels is not None else None
            if flat is not None:  # the compiled rule, on flat views
                order, flat_w, flat_slots = flat
                if not g.flags[_CONTIGUOUS[order]]:
                    g = np.asarray(g, order=order)  # e.g. a C-ordered gradient, a F weight
                flat_g = g.reshape(-1, order=order)
                _fused_in_chunks(self._fused, kernels, flat_w, flat_g, plr, flat_slots, decay)
            else:
                slots = self._slots_for(k, w)
                order = _layout(w)
                if order is not None and not g.flags[_CONTIGUOUS[order]]:
                    # the weight, its state and the scratch buffer share one memory order: one
                    # copy of the gradient costs less than a dozen passes mixing two orders
                    g = np.asarray(g, order=order)
                scratch = self._scratch_for(w)
                if decay is not None:
                    np.multiply(w, decay, out=scratch)
                    w -= scratch
                if w.size >= 2 * _CHUNK and type(self)._update in _ELEMENTWISE:
                    _update_in_chunks(self._update, w, g, plr, slots, scratch)
                else:
                    self._update(w, g, plr, slots, scratch)
            constraint = getattr(p, "constraint", None)
            if constraint is not None:
                np.copyto(w, _raw(constraint(w)), casting="same_kind")
        self.iterations += 1

    def _flat_state(self, key: str, w: np.ndarray):
        """``(order, flat weight, {slot: flat state})`` for the compiled rule: views of the
        weight and its state flattened in the weight's memory order, or None when they cannot
        be (then the NumPy rule runs; see ``_fusable``). Kept from step to step while the
        weight array, its state dict and the slot names stay the same objects, so a step does
        not re-check every array of every weight (set_state makes new state dicts)."""
        names = self._slot_names()
        slots = self._slots.get(key)
        cached = self._flat.get(key)
        if cached is not None and cached[0] is w and cached[1] is slots and cached[2] == names:
            return cached[3]
        slots = self._slots_for(key, w)
        order = _layout(w)
        flat = None
        if _fusable(w, slots, order):
            flat_slots = {s: a.reshape(-1, order=order) for s, a in slots.items() if s in names}
            flat = (order, w.reshape(-1, order=order), flat_slots)
        self._flat[key] = (w, slots, names, flat)
        return flat

    def _kernels(self):
        """The compiled update kernels (``ember.ops.kernels.optim``) when this optimizer's rule
        is a built-in one and the accelerator is on, else None (the NumPy rule runs)."""
        if type(self)._update not in _ELEMENTWISE or type(self)._fused not in _FUSED:
            return None  # a subclass with its own rule: the kernels do not know it
        from ember.ops import _accel

        return _accel.load("optim")

    def _fused(self, kernels, w, g, lr, slots, decay) -> None:  # pragma: no cover - abstract
        """``_update`` (after the weight decay ``w <- w - w * decay`` unless decay is None) as
        one compiled pass over 1-D float32 views; same arithmetic, same order, same bits."""
        raise NotImplementedError

    def _scratch_for(self, w: np.ndarray) -> np.ndarray:
        # one work buffer per (shape, dtype), shared by every weight of that kind: the updates
        # run one weight at a time, and this keeps each step free of temporary arrays
        order = "F" if _layout(w) == "F" else "C"
        key = (w.shape, w.dtype.str, order)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = np.empty(w.shape, dtype=w.dtype, order=order)
        return buf

    def _slot_names(self) -> tuple:
        return ()

    def _slot_init(self, slot: str) -> float:
        return 0.0

    def _slots_for(self, key: str, w: np.ndarray) -> dict:
        # state is laid out in memory as its weight is (C or Fortran order), so that an update
        # walks every array in one order (mixed orders made NumPy's passes 3x slower, and the
        # compiled update needs one order)
        order = "F" if _layout(w) == "F" else "C"
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = {
                s: np.full(w.shape, self._slot_init(s), dtype=w.dtype, order=order)
                for s in self._slot_names()
            }
            return slots
        for s in self._slot_names():
            arr = slots.get(s)
            if arr is None:
                slots[s] = np.full(w.shape, self._slot_init(s), dtype=w.dtype, order=order)
            elif arr.shape != w.shape:
                raise ShapeError(
                    f"{type(self).__name__}: state {s!r} of weight {key!r} has shape {arr.shape} "
                    f"but the weight has shape {w.shape} (state restored for another model?)"
                )
            elif arr.dtype != w.dtype or not arr.flags[_CONTIGUOUS[order]]:
                slots[s] = np.asarray(arr, dtype=w.dtype, order=order)  # e.g. restored state
        return slots

    def _update(self, w, g, lr, slots, s) -> None:  # pragma: no cover - abstract
        """Update ``w`` in place from gradient ``g`` at rate ``lr``; ``s`` is a work buffer."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """``{"iterations": ..., "learning_rate": ..., "<weight name>/<slot>": array, ...}``:
        copies of everything a resumed run needs (``learning_rate`` only when it is a number)."""
        state = {"iterations": np.asarray(self.iterations, dtype=np.int64)}
        if not callable(self._learning_rate):
            state["learning_rate"] = np.asarray(self._learning_rate, dtype=np.float64)
        for key, slots in self._slots.items():
            for s, arr in slots.items():
                state[f"{key}/{s}"] = arr.copy()
        return state

    def set_state(self, state: dict) -> None:
        """Restore ``get_state()``'s output (the state so far is replaced)."""
        owner = type(self).__name__
        if not isinstance(state, dict) or "iterations" not in state:
            raise EmberValueError(
                f"{owner}.set_state: expected the dict from get_state() (with 'iterations'), "
                f"received {type(state).__name__}"
            )
        slots: dict[str, dict[str, np.ndarray]] = {}
        names = set(self._slot_names())
        for full, arr in state.items():
            if full in ("iterations", "learning_rate"):
                continue
            key, _, slot = str(full).rpartition("/")
            if not key or slot not in names:
                raise EmberValueError(
                    f"{owner}.set_state: unexpected entry {full!r}; this optimizer keeps "
                    f"'<weight name>/<slot>' entries with slots {sorted(names)}"
                )
            slots.setdefault(key, {})[slot] = np.array(arr, copy=True)
        self.iterations = int(np.asarray(state["iterations"]))
        if "learning_rate" in state and not callable(self._learning_rate):
            self.learning_rate = float(np.asarray(state["learning_rate"]))
        self._slots = slots
        self._flat = {}

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            lr = _schedules.serialize(lr)
        elif callable(lr):
            raise EmberTypeError(
                f"{type(self).__name__}.get_config: the learning_rate is a plain callable "
                f"({lr!r}), which cannot be saved; use a LearningRateSchedule subclass"
            )
        config = {"name": self.name, "learning_rate": lr}
        config.update({h: getattr(self, h) for h in self._hyper})
        config.update(
            weight_decay=self.weight_decay,
            clipnorm=self.clipnorm,
            clipvalue=self.clipvalue,
            global_clipnorm=self.global_clipnorm,
            lr_multipliers=dict(self._lr_multipliers) or None,
            exclude_from_weight_decay=list(self._exclude_wd) or None,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"])
        exclude = config.pop("exclude_from_weight_decay", None)
        opt = cls(**config)
        if exclude:
            opt.exclude_from_weight_decay(exclude)
        return opt

    # ------------------------------------------------------------------ explain
    def _rule(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self) -> str:
        """This optimizer's update, as equations with its settings (g: gradient, w: weight)."""
        lr = self._learning_rate
        lr_text = (
            f"lr = {type(lr).__name__}(iterations)" if callable(lr) else f"lr = {lr:g}"
        )  # fmt: skip
        hyper = ", ".join(f"{h}={getattr(self, h)!r}" for h in self._hyper)
        lines = [f"{type(self).__name__} (Keras 3 update rule): {lr_text}, {hyper}".rstrip(", ")]
        if self.clipnorm is not None:
            lines.append(f"  g <- g * {self.clipnorm:g} / max(||g||, {self.clipnorm:g})")
        if self.global_clipnorm is not None:
            c = f"{self.global_clipnorm:g}"
            lines.append(f"  g_i <- g_i * {c} / max(sqrt(sum_j ||g_j||^2), {c})")
        if self.clipvalue is not None:
            lines.append(f"  g <- clip(g, -{self.clipvalue:g}, {self.clipvalue:g})")
        if self.weight_decay is not None:
            lines.append(f"  w <- w - w * {self.weight_decay:g} * lr   (decoupled weight decay)")
        lines += [f"  {line}" for line in self._rule()]
        if self._lr_multipliers:
            lines.append(f"  lr is multiplied per weight-name prefix: {self._lr_multipliers}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        hyper = "".join(f", {h}={getattr(self, h)!r}" for h in self._hyper)
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r}{hyper})"


_CHUNK = 1 << 16  # elements: the weight, gradient, state and scratch slices of a chunk fit L2


def _update_in_chunks(update, w, g, lr, slots, scratch) -> None:
    """Run an elementwise update on slices of the flattened arrays, a chunk at a time: the
    dozen passes of an Adam step then stay in cache, and chunks run on every core (the result
    is the same bits as one whole-array update: every element sees the same operations)."""
    from ember.ops.workers import _workers  # ember's chunk runner

    if not (w.flags.c_contiguous and all(a.flags.c_contiguous for a in slots.values())):
        update(w, g, lr, slots, scratch)  # no flat views to write through
        return
    flat_w, flat_s, flat_g = w.reshape(-1), scratch.reshape(-1), g.reshape(-1)
    flat_slots = {name: arr.reshape(-1) for name, arr in slots.items()}
    n = flat_w.size

    def work(i):
        lo, hi = i * _CHUNK, min(n, (i + 1) * _CHUNK)
        update(flat_w[lo:hi], flat_g[lo:hi], lr, {k: a[lo:hi] for k, a in flat_slots.items()},
               flat_s[lo:hi])  # fmt: skip

    _workers.run(work, -(-n // _CHUNK))


def _layout(a: np.ndarray) -> str | None:
    """The memory order, "C" or "F", in which ``a.reshape(-1, order=...)`` is a view (None when
    it is neither)."""
    if a.flags.c_contiguous:
        return "C"
    return "F" if a.flags.f_contiguous else None


_CONTIGUOUS = {"C": "C_CONTIGUOUS", "F": "F_CONTIGUOUS"}


def _fusable(w: np.ndarray, slots: dict, order: str | None) -> bool:
    """Whether the compiled update can run on flat views of the weight and its state in memory
    order ``order`` (``_layout(w)``): each contiguous in it and writeable, float32 (float64,
    e.g. gradcheck, keeps the NumPy rule; the gradient has the weight's dtype by then). A
    weight may be Fortran-ordered (an Orthogonal initializer's transpose): its state is made in
    the same order (``_slots_for``)."""
    if order is None or w.dtype != np.float32 or not w.flags.writeable:
        return False
    flag = _CONTIGUOUS[order]
    return all(a.flags[flag] and a.flags.writeable for a in slots.values())


# elements per chunk of a fused update on the workers. The update is memory-bound: measured
# on 2 cores, splitting the mlp's 401k-element kernel in 2 chunks was slower (0.55 ms against
# 0.45 ms for the whole Adam step), so only weights of 2M+ elements are split
_FUSED_CHUNK = 1 << 20
_NO_SLOT = np.empty(0, dtype=np.float32)  # stands for a state the rule does not use


def _fused_in_chunks(fused, kernels, w, g, lr, slots, decay) -> None:
    """Run a fused update on flat views (1-D, one memory order), in chunks on the workers for a
    large weight (each chunk runs the same per-element arithmetic, so the bits do not depend on
    the split)."""
    n = w.size
    if n < 2 * _FUSED_CHUNK:
        fused(kernels, w, g, lr, slots, decay)
        return
    from ember.ops.workers import _workers  # ember's chunk runner

    count = -(-n // _FUSED_CHUNK)
    per = -(-n // count)

    def work(i):
        lo, hi = i * per, min(n, (i + 1) * per)
        part = {k: a[lo:hi] for k, a in slots.items()}
        fused(kernels, w[lo:hi], g[lo:hi], lr, part, decay)

    _workers.run(work, count)


def _as_number(value):
    # a 0-d array or NumPy scalar (e.g. from a callback) is accepted as a rate
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
        return float(value)
    return value


# --------------------------------------------------------------------------- optimizers
class SGD(Optimizer):
    """Gradient descent, with momentum and Nesterov momentum in Keras's form.

    ``momentum == 0``: ``w <- w - lr * g``. Otherwise ``m <- momentum * m - lr * g`` then
    ``w <- w + m`` (or, with ``nesterov``, ``w <- w + momentum * m - lr * g``). For a constant rate
    this is PyTorch's SGD (dampening 0) with ``m = -lr * buf``.

    Args:
        learning_rate: float or schedule (default 0.01).
        momentum: in [0, 1].
        nesterov: use Nesterov momentum.
        **kwargs: the ``Optimizer`` arguments (params, clipping, weight_decay, ...).
    """

    default_name = "SGD"
    _hyper = ("momentum", "nesterov")

    def __init__(
        self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _float_arg("SGD", "momentum", momentum, low=0.0, high=1.0)
        self.nesterov = bool(nesterov)

    def _slot_names(self) -> tuple:
        return ("momentum",) if self.momentum != 0 else ()

    def _update(self, w, g, lr, slots, s) -> None:
        np.multiply(g, lr, out=s)  # s = lr * g
        if self.momentum == 0:
            w -= s
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= s
        if self.nesterov:
            w -= s
            np.multiply(m, self.momentum, out=s)
            w += s
        else:
            w += m

    def _fused(self, kernels, w, g, lr, slots, decay) -> None:
        f = w.dtype.type
        mu = self.momentum
        m = slots["momentum"] if mu != 0 else _NO_SLOT
        kernels.sgd(
            w, g, m, f(lr), f(mu), self.nesterov, mu != 0, f(decay or 0), decay is not None
        )

    def _rule(self) -> list:
        if self.momentum == 0:
            return ["w <- w - lr * g"]
        rule = ["m <- momentum * m - lr * g"]
        if self.nesterov:
            return rule + ["w <- w + momentum * m - lr * g   (Nesterov)"]
        return rule + ["w <- w + m"]


class Adagrad(Optimizer):
    """Adagrad: ``a <- a + g^2``; ``w <- w - lr * g / sqrt(a + epsilon)`` (epsilon inside the
    root, as Keras; PyTorch adds it outside), ``a`` starting at ``initial_accumulator_value``.

    Args:
        learning_rate: float or schedule (default 0.001).
        initial_accumulator_value: the accumulator's start value (>= 0).
        epsilon: small constant for stability.
        **kwargs: the ``Optimizer`` arguments.
    """

    default_name = "adagrad"
    _hyper = ("initial_accumulator_value", "epsilon")

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _float_arg(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value, low=0.0
        )
        self.epsilon = _float_arg("Adagrad", "epsilon", epsilon, low=0.0)

    def _slot_names(self) -> tuple:
        return ("accumulator",)

    def _slot_init(self, slot: str) -> float:
        return self.initial_accumulator_value

    def _update(self, w, g, lr, slots, s) -> None:
        a = slots["accumulator"]
        np.square(g, out=s)
        a += s
        np.add(a, self.epsilon, out=s)
        np.sqrt(s, out=s)
        np.divide(g, s, out=s)
        s *= lr
        w -= s

    def _rule(self) -> list:
        return ["a <- a + g^2", "w <- w - lr * g / sqrt(a + epsilon)"]

    def _fused(self, kernels, w, g, lr, slots, decay) -> None:
        f = w.dtype.type
        kernels.adagrad(
            w, g, slots["accumulator"], f(lr), f(self.epsilon), f(decay or 0), decay is not None
        )


class RMSprop(Optimizer):
    """RMSprop in Keras's form (epsilon inside the square root).

    ``v <- rho * v + (1 - rho) * g^2``; centered: ``a <- rho * a + (1 - rho) * g`` and
    ``d = v - a^2 + epsilon``, else ``d = v + epsilon``; ``step = lr * g / sqrt(d)``; with
    momentum ``m <- momentum * m + step; w <- w - m``, else ``w <- w - step``.

    Args:
        learning_rate: float or schedule (default 0.001).
        rho: discount of the squared-gradient average, in [0, 1).
        momentum: in [0, 1].
        epsilon: small constant for stability.
        centered: normalize by the estimated variance instead of the second moment.
        **kwargs: the ``Optimizer`` arguments.
    """

    default_name = "rmsprop"
    _hyper = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self,
        learning_rate=0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.rho = _float_arg("RMSprop", "rho", rho, low=0.0, high=1.0, high_open=True)
        self.momentum = _float_arg("RMSprop", "momentum", momentum, low=0.0, high=1.0)
        self.epsilon = _float_arg("RMSprop", "epsilon", epsilon, low=0.0)
        self.centered = bool(centered)

    def _slot_names(self) -> tuple:
        names = ("velocity",)
        if self.momentum > 0:
            names += ("momentum",)
        if self.centered:
            names += ("average_gradient",)
        return names

    def _update(self, w, g, lr, slots, s) -> None:
        rho = self.rho
        v = slots["velocity"]
        v *= rho
        np.square(g, out=s)
        s *= 1.0 - rho
        v += s
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            np.multiply(g, 1.0 - rho, out=s)
            a += s
            np.square(a, out=s)
            np.subtract(v, s, out=s)
            s += self.epsilon
        else:
            np.add(v, self.epsilon, out=s)
        np.sqrt(s, out=s)
        np.divide(g, s, out=s)
        s *= lr
        if self.momentum > 0:
            m = slots["momentum"]
            m *= self.momentum
            m += s
            w -= m
        else:
            w -= s

    def _fused(self, kernels, w, g, lr, slots, decay) -> None:
        f = w.dtype.type
        use_m = self.momentum > 0
        kernels.rmsprop(
            w, g, slots["velocity"],
            slots["momentum"] if use_m else _NO_SLOT,
            slots["average_gradient"] if self.centered else _NO_SLOT,
            f(lr), f(self.rho), f(1.0 - self.rho), f(self.epsilon), f(self.momentum), use_m,
            self.centered, f(decay or 0), decay is not None,
        )  # fmt: skip

    def _rule(self) -> list:
        rule = ["v <- rho * v + (1 - rho) * g^2"]
        if self.centered:
            rule += ["a <- rho * a + (1 - rho) * g", "step = lr * g / sqrt(v - a^2 + epsilon)"]
        else:
            rule += ["step = lr * g / sqrt(v + epsilon)"]
        if self.momentum > 0:
            return rule + ["m <- momentum * m + step", "w <- w - m"]
        return rule + ["w <- w - step"]


class Adam(Optimizer):
    """Adam as Keras 3 computes it (epsilon added to ``sqrt(v)``, bias correction folded into
    the rate).

    With ``t = iterations + 1``: ``m <- m + (1 - beta_1) * (g - m)``,
    ``v <- v + (1 - beta_2) * (g^2 - v)``, (amsgrad: ``v_hat <- max(v_hat, v)``, used for ``v``),
    ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``,
    ``w <- w - alpha * m / (sqrt(v) + epsilon)``. This is PyTorch's Adam with its epsilon scaled
    by ``sqrt(1 - beta_2^t)``: the two agree exactly only when epsilon is 0.

    Args:
        learning_rate: float or schedule (default 0.001).
        beta_1: decay of the first-moment average, in [0, 1).
        beta_2: decay of the second-moment average, in [0, 1).
        epsilon: small constant for stability ("epsilon hat" of the Adam paper).
        amsgrad: keep the running maximum of ``v`` (AMSGrad).
        **kwargs: the ``Optimizer`` arguments.
    """

    default_name = "adam"
    _hyper = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = _float_arg(owner, "beta_1", beta_1, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _float_arg(owner, "beta_2", beta_2, low=0.0, high=1.0, high_open=True)
        self.epsilon = _float_arg(owner, "epsilon", epsilon, low=0.0)
        self.amsgrad = bool(amsgrad)

    def _slot_names(self) -> tuple:
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad else (
            "momentum", "velocity"
        )  # fmt: skip

    def _update(self, w, g, lr, slots, s) -> None:
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v = slots["momentum"], slots["velocity"]
        np.subtract(g, m, out=s)
        s *= 1.0 - self.beta_1
        m += s
        np.square(g, out=s)
        s -= v
        s *= 1.0 - self.beta_2
        v += s
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        np.sqrt(v, out=s)
        s += self.epsilon
        np.divide(m, s, out=s)
        s *= alpha
        w -= s

    def _fused(self, kernels, w, g, lr, slots, decay) -> None:
        f = w.dtype.type
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        kernels.adam(
            w, g, slots["momentum"], slots["velocity"],
            slots["velocity_hat"] if self.amsgrad else _NO_SLOT,
            f(alpha), f(1.0 - self.beta_1), f(1.0 - self.beta_2), f(self.epsilon), self.amsgrad,
            f(decay or 0), decay is not None,
        )  # fmt: skip

    def _rule(self) -> list:
        rule = [
            "t = iterations + 1",
            "m <- m + (1 - beta_1) * (g - m)",
            "v <- v + (1 - beta_2) * (g^2 - v)",
        ]
        if self.amsgrad:
            rule += ["v_hat <- max(v_hat, v); v := v_hat   (AMSGrad)"]
        return rule + [
            "alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)",
            "w <- w - alpha * m / (sqrt(v) + epsilon)",
        ]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as Keras 3: before each Adam
    update, ``w <- w - w * weight_decay * lr``. Use ``exclude_from_weight_decay(["bias"])`` to
    exempt weights by name.

    Args:
        learning_rate: float or schedule (default 0.001).
        weight_decay: the decay factor (default 0.004, Keras's).
        beta_1, beta_2, epsilon, amsgrad: as ``Adam``.
        **kwargs: the ``Optimizer`` arguments.
    """

    default_name = "adamw"

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs,
    ):
        if weight_decay is None:
            raise EmberValueError("AdamW: weight_decay must be a number, received None")
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs
        )


# --------------------------------------------------------------------------- lookup
_BY_NAME = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
_CLASSES = {c.__name__: c for c in _BY_NAME.values()}


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able)."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict) -> Optimizer:
    """Rebuild an optimizer from ``serialize``'s output."""
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = _CLASSES.get(name) or _BY_NAME.get(str(name).lower())
    if cls is None:
        raise EmberValueError(
            f"optimizers.deserialize: unknown optimizer class {name!r}; known: {sorted(_CLASSES)}"
        )
    return cls.from_config(config.get("config", {}))


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop", "adagrad"; any case, with
    default settings), an instance (returned as is), a class, or a ``serialize`` dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise EmberValueError(
                f"optimizers.get: unknown optimizer {identifier!r}; expected one of "
                f"{sorted(_BY_NAME)}, an Optimizer instance or a config dict"
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise EmberTypeError(
        f"optimizers.get: expected a name, an Optimizer or a config dict, received {identifier!r}"
    )


# the built-in rules work element by element (no norms, no reductions), so they may run on
# slices: see _update_in_chunks. A subclass with its own _update runs on whole arrays.
_ELEMENTWISE = frozenset(cls._update for cls in (SGD, Adagrad, RMSprop, Adam))
_FUSED = frozenset(cls._fused for cls in (SGD, Adagrad, RMSprop, Adam))
