"""Search spaces: what a tuner may choose, as plain data.

A space maps parameter names to ``Choice``, ``Int``, ``Float`` or ``Fixed`` (a list is short for
``Choice``, any other plain value for ``Fixed``). A parameter with ``when={"optimizer": "sgd"}``
is *conditional*: it exists only in trials where that earlier parameter took that value (or one
of a list of values); elsewhere it is absent from ``params``, so ``build_model`` reads it with
``params.get(name, default)``. This is Optuna's define-by-run space written down ahead of time,
which is what lets ``GridSearch`` count and enumerate it exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ember.errors import EmberTypeError, EmberValueError

# what Optuna can store in a database for a categorical parameter
_PLAIN = (type(None), bool, int, float, str)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Param:
    """Base class of the parameter kinds: ``when`` makes it conditional (see the module doc)."""

    kind = "param"

    def __init__(self, when: Mapping[str, Any] | None = None):
        if when is not None:
            if not isinstance(when, Mapping) or not when:
                raise EmberTypeError(
                    f"{type(self).__name__}: when must be a non-empty dict "
                    f"{{parameter: value or [values]}}, received when={when!r}"
                )
            when = {
                str(k): tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in when.items()
            }
        self.when: dict[str, tuple] | None = when

    def active(self, params: Mapping[str, Any]) -> bool:
        """Whether this parameter exists given the values chosen so far."""
        if not self.when:
            return True
        return all(name in params and params[name] in ok for name, ok in self.when.items())

    def suggest(self, trial, name: str):  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def grid(self, name: str) -> list:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def _when_repr(self) -> str:
        if not self.when:
            return ""
        shown = {k: v[0] if len(v) == 1 else list(v) for k, v in self.when.items()}
        return f", when={shown!r}"


class Choice(Param):
    """One of a list of values (numbers, strings, booleans or None).

    Args:
        values: the candidates, in order (a grid tries each one).
        when: condition on earlier parameters (see the module doc).
    """

    kind = "choice"

    def __init__(self, values: Sequence, when: Mapping[str, Any] | None = None):
        super().__init__(when)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise EmberValueError(
                f"Choice: values must be a non-empty list, received values={values!r}"
            )
        for v in values:
            if not isinstance(v, _PLAIN):
                raise EmberTypeError(
                    f"Choice: every value must be a number, a string, a bool or None (what a "
                    f"study database stores), received {v!r} of type {type(v).__name__}; "
                    f"encode it as a string (for example '32x64') and decode it in build_model"
                )
        if len(set(map(repr, values))) != len(values):
            raise EmberValueError(f"Choice: values must be distinct, received {list(values)!r}")
        self.values = list(values)

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, self.values)

    def grid(self, name: str) -> list:
        return list(self.values)

    def __repr__(self) -> str:
        return f"Choice({self.values!r}{self._when_repr()})"


class Int(Param):
    """An integer in ``[low, high]`` (both ends included), every ``step``-th one, or spread on a
    log scale (``log=True``, step 1).

    Args:
        low: the smallest value.
        high: the largest value.
        step: the spacing of the candidates.
        log: sample the logarithm uniformly (for sizes such as 8 .. 512).
        when: condition on earlier parameters (see the module doc).
    """

    kind = "int"

    def __init__(
        self,
        low: int,
        high: int,
        step: int = 1,
        log: bool = False,
        when: Mapping[str, Any] | None = None,
    ):
        super().__init__(when)
        for arg, v in (("low", low), ("high", high), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise EmberTypeError(f"Int: {arg} must be an int, received {arg}={v!r}")
        if high < low:
            raise EmberValueError(f"Int: high must be >= low, received low={low}, high={high}")
        if step < 1:
            raise EmberValueError(f"Int: step must be >= 1, received step={step}")
        if log and (low < 1 or step != 1):
            raise EmberValueError(
                f"Int: log=True needs low >= 1 and step=1, received low={low}, step={step}"
            )
        if (high - low) % step:
            raise EmberValueError(
                f"Int: high - low must be a multiple of step, received low={low}, high={high}, "
                f"step={step}"
            )
        self.low, self.high, self.step, self.log = low, high, step, bool(log)

    def suggest(self, trial, name: str):
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def grid(self, name: str) -> list:
        return list(range(self.low, self.high + 1, self.step))

    def __repr__(self) -> str:
        extra = (f", step={self.step}" if self.step != 1 else "") + (", log=True" * self.log)
        return f"Int({self.low}, {self.high}{extra}{self._when_repr()})"


class Float(Param):
    """A real number in ``[low, high]``: continuous, on a log scale (``log=True``, for learning
    rates and weight decays), or on a grid of ``step`` (what ``GridSearch`` needs).

    Args:
        low: the smallest value.
        high: the largest value.
        log: sample the logarithm uniformly (needs low > 0; not with step).
        step: spacing of a discrete grid from low; None for a continuous range.
        when: condition on earlier parameters (see the module doc).
    """

    kind = "float"

    def __init__(
        self,
        low: float,
        high: float,
        log: bool = False,
        step: float | None = None,
        when: Mapping[str, Any] | None = None,
    ):
        super().__init__(when)
        for arg, v in (("low", low), ("high", high)):
            if not _is_number(v) or not math.isfinite(v):
                raise EmberTypeError(f"Float: {arg} must be a finite number, received {arg}={v!r}")
        if high < low:
            raise EmberValueError(f"Float: high must be >= low, received low={low}, high={high}")
        if log and low <= 0:
            raise EmberValueError(f"Float: log=True needs low > 0, received low={low}")
        if step is not None:
            if not _is_number(step) or step <= 0:
                raise EmberValueError(f"Float: step must be a positive number, received {step!r}")
            if log:
                raise EmberValueError("Float: give log=True or step, not both (as Optuna)")
        self.low, self.high, self.log, self.step = float(low), float(high), bool(log), step

    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def grid(self, name: str) -> list:
        if self.step is None:
            raise EmberValueError(
                f"GridSearch: parameter {name!r} is a continuous {self!r}; a grid needs a finite "
                f"set of values: give Float(..., step=...) or Choice([...]), or use RandomSearch "
                f"or BayesianOptimization"
            )
        # decimal steps, so that 0.1 * 3 is 0.3 and not 0.30000000000000004
        low, step = Decimal(str(self.low)), Decimal(str(self.step))
        n = int((Decimal(str(self.high)) - low) // step) + 1
        return [float(low + k * step) for k in range(n)]

    def __repr__(self) -> str:
        extra = (", log=True" * self.log) + (f", step={self.step}" if self.step else "")
        return f"Float({self.low}, {self.high}{extra}{self._when_repr()})"


class Fixed(Param):
    """A constant that every trial receives (handy in config files); it is not searched.

    Args:
        value: the value (a number, string, bool or None).
        when: condition on earlier parameters (see the module doc).
    """

    kind = "fixed"

    def __init__(self, value, when: Mapping[str, Any] | None = None):
        super().__init__(when)
        if not isinstance(value, _PLAIN):
            raise EmberTypeError(
                f"Fixed: value must be a number, a string, a bool or None, received {value!r}"
            )
        self.value = value

    def suggest(self, trial, name: str):
        return self.value

    def grid(self, name: str) -> list:
        return [self.value]

    def __repr__(self) -> str:
        return f"Fixed({self.value!r}{self._when_repr()})"


def _as_param(name: str, value) -> Param:
    if isinstance(value, Param):
        return value
    if isinstance(value, list):
        return Choice(value)
    if isinstance(value, _PLAIN):
        return Fixed(value)
    raise EmberTypeError(
        f"SearchSpace: parameter {name!r} must be a Choice, Int, Float or Fixed (or a list, "
        f"short for Choice), received {value!r} of type {type(value).__name__}"
    )


class SearchSpace:
    """An ordered set of named parameters; conditions may only refer to earlier names.

    Args:
        params: ``{name: Choice | Int | Float | Fixed | list | constant}``, in order.
    """

    def __init__(self, params: Mapping[str, Any]):
        if isinstance(params, SearchSpace):
            params = params.params
        if not isinstance(params, Mapping) or not params:
            raise EmberTypeError(
                f"SearchSpace: expected a non-empty dict {{name: Choice | Int | Float}}, "
                f"received {params!r}"
            )
        self.params: dict[str, Param] = {}
        for name, value in params.items():
            if not isinstance(name, str) or not name:
                raise EmberTypeError(f"SearchSpace: names must be strings, received {name!r}")
            param = _as_param(name, value)
            for parent in param.when or {}:
                if parent not in self.params:
                    where = "later in the space" if parent in params else "not in the space"
                    raise EmberValueError(
                        f"SearchSpace: parameter {name!r} has when={{{parent!r}: ...}}, but "
                        f"{parent!r} is {where}; a condition may only use parameters listed "
                        f"before it ({list(self.params)})"
                    )
            self.params[name] = param

    @property
    def conditional(self) -> bool:
        """Whether some parameter exists only in some trials."""
        return any(p.when for p in self.params.values())

    def suggest(self, trial) -> dict:
        """Ask an Optuna trial for every active parameter, in order."""
        chosen: dict = {}
        for name, param in self.params.items():
            if param.active(chosen):
                chosen[name] = param.suggest(trial, name)
        return chosen

    def suggest_grid(self, trial) -> dict:
        """Like ``suggest``, but every parameter is a categorical of its grid values (what the
        grid samplers enumerate)."""
        chosen: dict = {}
        for name, param in self.params.items():
            if param.active(chosen):
                chosen[name] = trial.suggest_categorical(name, param.grid(name))
        return chosen

    def grid_values(self) -> dict[str, list]:
        """``{name: its grid values}``; raises for a continuous Float."""
        return {name: p.grid(name) for name, p in self.params.items()}

    def grid(self) -> Iterator[dict]:
        """Every combination, conditions respected (a parameter inactive in a branch does not
        multiply that branch)."""
        values = self.grid_values()

        def expand(i: int, chosen: dict) -> Iterator[dict]:
            if i == len(self.params):
                yield dict(chosen)
                return
            name, param = list(self.params.items())[i]
            if not param.active(chosen):
                yield from expand(i + 1, chosen)
                return
            for v in values[name]:
                chosen[name] = v
                yield from expand(i + 1, chosen)
                del chosen[name]

        if not self.conditional:  # the plain product, without the recursion
            names = list(values)
            for combo in itertools.product(*values.values()):
                yield dict(zip(names, combo))
            return
        yield from expand(0, {})

    def grid_size(self) -> int:
        """How many combinations ``grid()`` yields."""
        if not self.conditional:
            return math.prod(len(v) for v in self.grid_values().values())
        return sum(1 for _ in self.grid())

    def to_dict(self) -> dict:
        """A JSON description (stored with a study, so a resumed search can check it)."""
        return {name: repr(p) for name, p in self.params.items()}

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.params.items())
        return f"SearchSpace({{{inner}}})"
