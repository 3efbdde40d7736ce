"""The switch for ember's optional compiled kernels (Numba), and the GRU's per-step kernels.

``load(name)`` gives an op its kernel module ``ember.ops.kernels.<name>`` (the LSTM's and the
GRU's whole time loops live in ``ember.ops.kernels.recurrent``), ``kernels()`` the GRU's per-step
elementwise kernels below. Both return None, and the ops take their NumPy path, when Numba is
not installed, when the environment variable ``EMBER_ACCEL`` is ``0``, or inside
``with enabled(False):``. Numba is imported on first use, never at ``import ember``; compiled
kernels are cached on disk (``cache=True``).

The GRU kernels (used where the GRU's compiled loops are not: reset_after=False, float64): the
GRU op spends a large share of a step in many small NumPy calls on (U, N) arrays, each fast but
~20 per time step. The kernels here do the same arithmetic in one pass per step, operation for
operation and in the same order, in the arrays' own dtype, with
``fastmath`` off: the same bits as the NumPy path given the same inputs. The GEMMs and every
tanh stay in NumPy. Measured (benchmarks/rnn_ops.py, batch 32, 100 steps, 64 -> 128 units,
float32, loaded 2-core machine): GRU forward + backward 5-10% faster.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os

_STATE: dict = {"on": None}  # None: follow EMBER_ACCEL; True / False: set by enabled()
_KERNELS: dict = {}  # "k": the kernel namespace once built, or None when Numba is missing
_MODULES: dict = {}  # name -> imported ember.ops.kernels.<name>, or None (Numba missing)


@contextlib.contextmanager
def enabled(on: bool = True):
    """Turn the Numba kernels on or off inside a ``with`` block (overrides EMBER_ACCEL)."""
    before = _STATE["on"]
    _STATE["on"] = bool(on)
    try:
        yield
    finally:
        _STATE["on"] = before


def is_enabled() -> bool:
    """Whether the ops would use the kernels now (switch on and Numba importable)."""
    return kernels() is not None


def _switched_on() -> bool:
    on = _STATE["on"]
    if on is None:
        on = os.environ.get("EMBER_ACCEL", "1") != "0"
    return on


def load(name: str):
    """The compiled kernel module ``ember.ops.kernels.<name>``, or None when the switch is off
    or Numba is not importable. Each op module asks for its own kernels at call time, so the
    switch (``EMBER_ACCEL``, ``enabled``) is honoured per call, and Numba is imported only by
    the first op that wants it."""
    if not _switched_on():
        return None
    if name not in _MODULES:
        # only a missing Numba means "no kernels": an error inside a kernel module is a bug
        # and is raised
        has_numba = importlib.util.find_spec("numba") is not None
        module = f"ember.ops.kernels.{name}"
        _MODULES[name] = importlib.import_module(module) if has_numba else None
    return _MODULES[name]


def kernels():
    """The kernel namespace, or None (switched off, or Numba not importable)."""
    if not _switched_on():
        return None
    if "k" not in _KERNELS:
        try:
            _KERNELS["k"] = _build()
        except ImportError:
            _KERNELS["k"] = None
    return _KERNELS["k"]


def _build():
    """Compile-on-first-use definitions of the kernels (Numba imported here, lazily)."""
    from types import SimpleNamespace

    from numba import njit

    jit = njit(cache=True, fastmath=False, nogil=True)

    # ------------------------------------------------------------------------ GRU
    # Layout as in recurrent.GRUSequence: features by batch, C-contiguous (U, N) blocks.

    @jit
    def gru_gates(zr, rh, b1h, has_b1h):
        """reset_after=True, zr holding tanh of the z, r pre-activations (halved): in place
        z, r = (1 + zr) / 2, and rh += b1h (a (U, 1) column) when has_b1h."""
        half = zr.dtype.type(0.5)
        zf = zr.reshape(-1)
        for s in range(zf.size):
            zf[s] = zf[s] * half + half
        if has_b1h:
            for j in range(rh.shape[0]):
                b = b1h[j, 0]
                for m in range(rh.shape[1]):
                    rh[j, m] = rh[j, m] + b

    @jit
    def gru_state(z, r, rh, hh, h_prev, h, tmp, ph, pz, pr, rr, z_keep, record):
        """h = hh + z (h_prev - hh); when recording, the chain-rule factors:
        ph = (1 - z)(1 - hh^2), pz = (h_prev - hh) z (1 - z), pr = (1 - r) r rh, rr = r,
        z_keep = z. tmp is scratch."""
        one = z.dtype.type(1)
        zf, hhf, hpf = z.reshape(-1), hh.reshape(-1), h_prev.reshape(-1)
        hf, tf = h.reshape(-1), tmp.reshape(-1)
        n = zf.size
        for s in range(n):
            tf[s] = hpf[s] - hhf[s]  # h_{t-1} - hh
        if record:
            rf, rhf = r.reshape(-1), rh.reshape(-1)
            phf, pzf, prf = ph.reshape(-1), pz.reshape(-1), pr.reshape(-1)
            rrf, zk = rr.reshape(-1), z_keep.reshape(-1)
            for s in range(n):
                phf[s] = one - zf[s]
            for s in range(n):
                pzf[s] = tf[s] * zf[s] * phf[s]  # dz_z = dh * (h_{t-1} - hh) z (1 - z)
            for s in range(n):
                phf[s] = phf[s] * (one - hhf[s] * hhf[s])  # da_h = dh * (1 - z)(1 - hh^2)
            for s in range(n):
                prf[s] = (one - rf[s]) * rf[s] * rhf[s]  # dz_r = d(r .) * (.) r (1 - r)
            for s in range(n):
                rrf[s] = rf[s]
            for s in range(n):
                zk[s] = zf[s]
        for s in range(n):
            hf[s] = hhf[s] + tf[s] * zf[s]  # h_t = hh + z (h_{t-1} - hh)

    return SimpleNamespace(gru_gates=gru_gates, gru_state=gru_state)
