"""The array module, the float dtype policy and the one seeded random generator.

Only this module and ``ember.ops`` touch the array library directly. Everything else asks
``backend.xp`` for arrays, so that a CuPy backend is a swap of ``xp`` rather than a rewrite.
"""

from __future__ import annotations

import numpy as np

xp = np  # the array module; CuPy would be set here

_FLOATX = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
_floatx_name = "float32"
_floatx_dtype = np.dtype(np.float32)
_rng = None  # made on first use: numpy.random costs ~10 ms to import
_seed: int | None = None


def floatx() -> str:
    """The name of the default float dtype ("float32" unless changed)."""
    return _floatx_name


def float_dtype() -> np.dtype:
    """The default float dtype as a NumPy dtype."""
    return _floatx_dtype


def set_floatx(name: str) -> None:
    """Set the default float dtype for new tensors and weights ("float32" or "float64")."""
    global _floatx_name, _floatx_dtype
    if name not in _FLOATX:
        from ember.errors import EmberValueError

        raise EmberValueError(f"set_floatx: expected one of {sorted(_FLOATX)}, received {name!r}")
    _floatx_name = name
    _floatx_dtype = np.dtype(_FLOATX[name])


def set_seed(seed: int | None) -> None:
    """Seed ember's random generator (used by every initializer, dropout, shuffle, ...)."""
    global _rng, _seed
    _seed = seed
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The generator every random thing in ember draws from. Call it each time: set_seed
    replaces it."""
    global _rng
    if _rng is None:
        _rng = np.random.default_rng(_seed)
    return _rng


def get_rng_state() -> dict:
    """The generator's state as plain JSON-able data (for checkpoints)."""
    return rng().bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state``."""
    rng().bit_generator.state = state


_kept_freed: bool | None = None  # keep_freed_memory() runs its mallopt once


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    By default glibc serves each array above a (dynamic, at most 32 MB) threshold with a fresh
    mmap and unmaps it when freed, and trims the heap's top; a training step that makes and
    drops tens of MB of activations then takes a page fault for every 4 KB it touches, every
    step (measured here: 9,750 faults and 27 ms of system time per cnn_bn step, 5,000 and 7 ms
    per cnn step; with this setting none after the first step). The cost: the process keeps
    its peak heap (up to 1 GB of it) instead of returning it while it runs. Skipped where the
    user set glibc's own MALLOC_*/GLIBC_TUNABLES variables, where EMBER_KEEP_FREED_MEMORY=0,
    and off glibc."""
    global _kept_freed
    if _kept_freed is None:
        _kept_freed = _mallopt_keep_freed()
    return _kept_freed


def _mallopt_keep_freed() -> bool:
    import os

    env = os.environ
    if env.get("EMBER_KEEP_FREED_MEMORY", "1") == "0" or "GLIBC_TUNABLES" in env:
        return False
    if "MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env:
        return False
    try:
        import ctypes

        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError, ValueError):
        return False
