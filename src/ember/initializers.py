"""Weight initializers, Keras-named. An initializer is called ``init(shape, dtype=None)`` and
returns a fresh ndarray; random ones draw from ``ember.backend.rng()`` at call time (or from their
own generator when given a ``seed``), so ``ember.set_seed`` makes every weight reproducible.

Fans follow Keras: a vector has fan_in = fan_out = its length, a matrix ``(in, out)``, and a
conv kernel ``(kh, kw, in, out)`` has fan_in = kh*kw*in and fan_out = kh*kw*out.
"""

from __future__ import annotations

import math

import numpy as np

from ember import backend
from ember.config import Configurable
from ember.errors import EmberTypeError, EmberValueError

# Standard deviation of a unit normal truncated to [-2, 2]: variance-scaling draws are divided
# by it so that the *truncated* distribution has the variance the formula asks for (as Keras).
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as Keras computes them."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])  # conv kernels: (..., in, out)
    return shape[-2] * receptive, shape[-1] * receptive


def _dtype(dtype) -> np.dtype:
    return np.dtype(dtype) if dtype is not None else backend.float_dtype()


def _truncated_normal(rng, shape, mean: float, stddev: float, dtype) -> np.ndarray:
    """Normal draws, those outside mean +- 2 stddev re-drawn until none is left."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2
    while bad.any():  # ~4.6% re-drawn each round: a handful of vectorized rounds
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return (mean + stddev * z).astype(dtype, copy=False)


class Initializer(Configurable):
    """Base class: ``__call__(shape, dtype=None)`` returns an ndarray; ``get_config`` gives
    the JSON-able arguments that rebuild it."""

    def __call__(self, shape, dtype=None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class RandomInitializer(Initializer):
    """An initializer that draws random numbers.

    Args:
        seed: None (draw from ``ember.backend.rng()`` at each call) or an int (a private
            generator: the same seed gives the same values in a fresh process).
    """

    def __init__(self, seed: int | None = None):
        bad = isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        if seed is not None and bad:
            raise EmberTypeError(
                f"{type(self).__name__}: seed must be an int or None, received seed={seed!r}"
            )
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def rng(self) -> np.random.Generator:
        return self._rng if self._rng is not None else backend.rng()

    def get_config(self) -> dict:
        return {"seed": self.seed}


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(tuple(shape), dtype=_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(tuple(shape), dtype=_dtype(dtype))


class Constant(Initializer):
    """A scalar filled everywhere, or an array of exactly the requested shape (pretrained
    embeddings: ``Embedding(..., embeddings_initializer=Constant(matrix))``).

    Args:
        value: a number or an array.
    """

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        value = np.asarray(self.value)
        if value.ndim == 0:
            return np.full(shape, value, dtype=_dtype(dtype))
        if value.shape != shape:
            raise EmberValueError(
                f"Constant: the value has shape {value.shape} but the weight has shape {shape}"
            )
        return np.array(value, dtype=_dtype(dtype))  # a copy: the weight owns its memory

    def get_config(self) -> dict:
        value = self.value
        return {"value": value.tolist() if isinstance(value, np.ndarray) else value}


class RandomNormal(RandomInitializer):
    """Normal draws.

    Args:
        mean: the mean.
        stddev: the standard deviation.
        seed: see ``RandomInitializer``.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        z = self.rng().standard_normal(tuple(shape))
        return (self.mean + self.stddev * z).astype(_dtype(dtype), copy=False)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(RandomInitializer):
    """Uniform draws in [minval, maxval).

    Args:
        minval: lower bound.
        maxval: upper bound.
        seed: see ``RandomInitializer``.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        out = self.rng().uniform(self.minval, self.maxval, tuple(shape))
        return out.astype(_dtype(dtype), copy=False)

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class TruncatedNormal(RandomInitializer):
    """Normal draws, values beyond two standard deviations from the mean re-drawn (Keras).

    Args:
        mean: the mean of the untruncated normal.
        stddev: the standard deviation of the untruncated normal.
        seed: see ``RandomInitializer``.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(self.rng(), tuple(shape), self.mean, self.stddev, _dtype(dtype))

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class VarianceScaling(RandomInitializer):
    """Draws with variance ``scale / n``, n the fan chosen by ``mode``.

    ``truncated_normal`` uses stddev sqrt(scale/n) / 0.8796..., so that after truncation at
    2 stddev the variance is scale/n; ``untruncated_normal`` uses sqrt(scale/n); ``uniform``
    draws in [-limit, limit] with limit = sqrt(3 scale / n).

    Args:
        scale: positive scaling factor.
        mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "truncated_normal", "untruncated_normal" or "uniform".
        seed: see ``RandomInitializer``.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ):
        super().__init__(seed)
        if not scale > 0:
            raise EmberValueError(
                f"VarianceScaling: scale must be positive, received scale={scale!r}"
            )
        if mode not in self._MODES:
            raise EmberValueError(
                f"VarianceScaling: mode must be one of {self._MODES}, received mode={mode!r}"
            )
        if distribution == "normal":  # Keras's older spelling
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise EmberValueError(
                f"VarianceScaling: distribution must be one of {self._DISTRIBUTIONS}, "
                f"received distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=None):
        shape, dtype = tuple(shape), _dtype(dtype)
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self.rng()
        if self.distribution == "truncated_normal":
            return _truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNC_STD, dtype)
        if self.distribution == "untruncated_normal":
            return (math.sqrt(variance) * rng.standard_normal(shape)).astype(dtype, copy=False)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape).astype(dtype, copy=False)

    def get_config(self) -> dict:
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            **super().get_config(),
        }


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling preset: only the seed is configurable."""

    _preset: tuple = ()

    def __init__(self, seed: int | None = None):
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


class GlorotNormal(_FixedVarianceScaling):
    """Xavier normal: truncated normal with variance 2 / (fan_in + fan_out)."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class GlorotUniform(_FixedVarianceScaling):
    """Xavier uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out))."""

    _preset = (1.0, "fan_avg", "uniform")


class HeNormal(_FixedVarianceScaling):
    """He normal: truncated normal with variance 2 / fan_in."""

    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    """He uniform: U(-l, l) with l = sqrt(6 / fan_in)."""

    _preset = (2.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    """LeCun normal: truncated normal with variance 1 / fan_in (SELU's initializer)."""

    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    """LeCun uniform: U(-l, l) with l = sqrt(3 / fan_in)."""

    _preset = (1.0, "fan_in", "uniform")


class Orthogonal(RandomInitializer):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, times ``gain``.

    The weight is seen as a matrix (prod(shape[:-1]), shape[-1]); its columns (or rows, when
    it is wide) are orthonormal. The signs of R's diagonal are folded into Q so the result is
    uniformly distributed over orthogonal matrices.

    Args:
        gain: multiplier.
        seed: see ``RandomInitializer``.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise EmberValueError(
                f"Orthogonal: the weight must have at least 2 axes, received shape {shape}"
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self.rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # make the decomposition unique (Haar-distributed Q)
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(_dtype(dtype), copy=False)

    def get_config(self) -> dict:
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D weights only; a non-square one gets ones on
    its main diagonal).

    Args:
        gain: multiplier.
    """

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 2:
            raise EmberValueError(f"Identity: the weight must be 2-D, received shape {shape}")
        return (self.gain * np.eye(*shape)).astype(_dtype(dtype), copy=False)

    def get_config(self) -> dict:
        return {"gain": self.gain}


# snake-case name (Keras's strings, plus its aliases) -> class
_NAMES = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "random_normal": RandomNormal, "normal": RandomNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_normal": GlorotNormal, "xavier_normal": GlorotNormal,
    "glorot_uniform": GlorotUniform, "xavier_uniform": GlorotUniform,
    "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
    "orthogonal": Orthogonal, "identity": Identity,
}  # fmt: skip
_CLASSES = {
    c.__name__: c
    for c in (
        Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
        GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal, LecunUniform,
        Orthogonal, Identity,
    )
}  # fmt: skip

# lowercase function-style aliases: ember.initializers.he_normal(seed=0)
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling = VarianceScaling
glorot_normal, glorot_uniform = GlorotNormal, GlorotUniform
he_normal, he_uniform, lecun_normal, lecun_uniform = HeNormal, HeUniform, LecunNormal, LecunUniform
orthogonal, identity = Orthogonal, Identity


def get(identifier):
    """An initializer from a name ("he_normal"), a ``{"class_name", "config"}`` dict, an
    Initializer (returned as is) or any callable ``fn(shape, dtype)`` (returned as is)."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier if identifier in _CLASSES else identifier.lower()
        cls = _CLASSES.get(key) or _NAMES.get(key)
        if cls is None:
            raise EmberValueError(
                f"unknown initializer {identifier!r}; expected one of {sorted(_NAMES)}"
            )
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = _CLASSES.get(name) or _NAMES.get(str(name).lower())
        if cls is None:
            raise EmberValueError(
                f"unknown initializer class_name {name!r} in {identifier!r}; expected one of "
                f"{sorted(_CLASSES)}"
            )
        return cls.from_config(dict(identifier.get("config") or {}))
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise EmberTypeError(
        f"initializer must be a name, a config dict, an Initializer or a callable "
        f"fn(shape, dtype), received {identifier!r}"
    )


def serialize(initializer) -> dict | str:
    """A JSON-able form that ``get`` turns back into an equal initializer. A plain callable
    cannot be saved to a file and gives its name (which ``get`` cannot rebuild)."""
    if isinstance(initializer, str):
        return serialize(get(initializer))
    if isinstance(initializer, Initializer):
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    return getattr(initializer, "__name__", repr(initializer))


def deserialize(config):
    """Inverse of ``serialize``."""
    return get(config)
