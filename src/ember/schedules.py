"""Learning-rate schedules: functions of the optimizer step, passed as ``learning_rate``.

An optimizer with a schedule asks it for the rate before every update, with the number of
updates done so far (0 for the first update), exactly as Keras 3 does. Every schedule returns a
Python float and serializes to ``{"class_name": ..., "config": ...}``.

    schedule = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    opt = ember.optimizers.SGD(learning_rate=schedule)
"""

from __future__ import annotations

import math

from ember.errors import EmberTypeError, EmberValueError

_SCHEDULES: dict[str, type] = {}


class LearningRateSchedule:
    """Base class: a callable ``schedule(step) -> float`` with a JSON-able config.

    Subclasses implement ``__call__(step)`` and ``get_config()``; they are registered by class
    name when defined, so ``deserialize`` can rebuild them from a saved file.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _SCHEDULES[cls.__name__] = cls

    def __call__(self, step) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _positive_number(owner: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise EmberValueError(f"{owner}: {arg} must be a number > 0, received {arg}={value!r}")
    return value


def _number(owner: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise EmberValueError(f"{owner}: {arg} must be a number, received {arg}={value!r}")
    return value


class ExponentialDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps over which the rate is multiplied by ``decay_rate`` once (> 0).
        decay_rate: the factor per ``decay_steps``.
        staircase: if True, ``step / decay_steps`` is floored: the rate drops in steps.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ):
        self.initial_learning_rate = _number(
            "ExponentialDecay", "initial_learning_rate", initial_learning_rate
        )
        self.decay_steps = _positive_number("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = _number("ExponentialDecay", "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate * self.decay_rate**p)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class StepDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * gamma ** floor(step / step_size)``.

    Not a Keras schedule: it is PyTorch's ``StepLR``, counted in optimizer steps (updates), not
    epochs. For a drop every E epochs of B batches, use ``step_size=E * B``. The same curve is
    ``ExponentialDecay(lr, step_size, gamma, staircase=True)``; this name reads better.

    Args:
        initial_learning_rate: the rate for steps ``0 .. step_size - 1``.
        step_size: the number of steps between two drops (> 0).
        gamma: the factor of each drop.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        step_size: int,
        gamma: float = 0.1,
        name: str = "StepDecay",
    ):
        self.initial_learning_rate = _number(
            "StepDecay", "initial_learning_rate", initial_learning_rate
        )
        self.step_size = _positive_number("StepDecay", "step_size", step_size)
        self.gamma = _number("StepDecay", "gamma", gamma)
        self.name = name

    def __call__(self, step) -> float:
        return float(self.initial_learning_rate * self.gamma ** math.floor(step / self.step_size))

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras 3 semantics).

    Without ``warmup_target``: ``s = min(step, decay_steps)``,
    ``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``.
    With ``warmup_target``: for ``step < warmup_steps`` the rate rises linearly from
    ``initial_learning_rate`` to ``warmup_target``; then it decays as above from
    ``warmup_target`` over ``decay_steps`` (the step is clamped to
    ``warmup_steps + decay_steps``).

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps of the cosine part (> 0).
        alpha: the final rate as a fraction of the rate the decay starts from.
        warmup_target: the rate reached at the end of warmup; None for no warmup.
        warmup_steps: the length of the warmup.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ):
        self.initial_learning_rate = _number(
            "CosineDecay", "initial_learning_rate", initial_learning_rate
        )
        self.decay_steps = _positive_number("CosineDecay", "decay_steps", decay_steps)
        self.alpha = _number("CosineDecay", "alpha", alpha)
        self.name = name
        if warmup_target is not None:
            _number("CosineDecay", "warmup_target", warmup_target)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise EmberValueError(
                f"CosineDecay: warmup_steps must be an int >= 0, received "
                f"warmup_steps={warmup_steps!r}"
            )
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step: float, decay_from: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step) -> float:
        step = float(step)
        if self.warmup_target is None:
            return float(self._decay(min(step, self.decay_steps), self.initial_learning_rate))
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return float(delta * (step / self.warmup_steps) + self.initial_learning_rate)
        return float(self._decay(step - self.warmup_steps, self.warmup_target))

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    Args:
        boundaries: strictly increasing step numbers.
        values: one more rate than boundaries.
    """

    def __init__(self, boundaries, values, name: str = "PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise EmberValueError(
                f"PiecewiseConstantDecay: values must have one more element than boundaries, "
                f"received {len(boundaries)} boundaries and {len(values)} values"
            )
        for b0, b1 in zip(boundaries, boundaries[1:]):
            if not b1 > b0:
                raise EmberValueError(
                    f"PiecewiseConstantDecay: boundaries must be strictly increasing, "
                    f"received {boundaries}"
                )
        for v in values:
            _number("PiecewiseConstantDecay", "values", v)
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step) -> float:
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return float(v)
        return float(self.values[-1])

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"class_name": ..., "config": ...}`` for a schedule (JSON-able)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    """Rebuild a schedule from ``serialize``'s output (only registered classes)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise EmberValueError(
            f"schedules.deserialize: expected a dict with 'class_name' and 'config', "
            f"received {config!r}"
        )
    name = config["class_name"]
    if name not in _SCHEDULES:
        raise EmberValueError(
            f"schedules.deserialize: unknown schedule {name!r}; known: {sorted(_SCHEDULES)}"
        )
    return _SCHEDULES[name].from_config(dict(config.get("config", {})))


def get(identifier) -> LearningRateSchedule:
    """A schedule from a schedule instance or a serialized dict."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise EmberTypeError(
        f"schedules.get: expected a LearningRateSchedule or a dict from serialize(), "
        f"received {identifier!r}"
    )
