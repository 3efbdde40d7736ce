"""Optional Numba kernels for the per-step elementwise work of the fused recurrent ops.

The recurrent ops (``ember.ops.recurrent``) spend a large share of a step in many small NumPy
calls on (U, N) arrays: each call is fast, but there are ~20 of them per time step, and their
fixed cost (dispatch, a fresh pass over memory) adds up over 100 steps. The kernels here do the
same arithmetic in one pass per step. They are a drop-in for that elementwise part only:

- the GEMMs, and every tanh, stay in NumPy (NumPy's tanh is vectorised, Numba's calls libm
  once per element: measured here 13 ns vs 0.3 ns per float32 element);
- the math is the NumPy reference's, operation for operation and in the same order, in the
  arrays' own dtype (constants are made with ``dtype.type``, so float32 stays float32), and
  ``fastmath`` is off (no fused multiply-adds, no reassociation): the results are the same bits
  as the NumPy path given the same inputs.

Everything is optional. ``kernels()`` returns None, and the ops take their NumPy path, when
Numba is not installed, when the environment variable ``EMBER_ACCEL`` is ``0``, or inside
``with enabled(False):``. Numba is imported on the first call of ``kernels()``, never at
``import ember``; compiled kernels are cached on disk (``cache=True``).

Measured here (benchmarks/rnn_ops.py, batch 32, 100 steps, 64 -> 128 units, float32, loaded
2-core machine): LSTM forward + backward about 5% faster with the kernels, GRU 5-10%; the
first call in a process costs about 0.4 s more (importing Numba, loading the cache; about
1.1 s with a cold cache). The rest of a step is GEMMs, tanh and Python-level loop overhead,
which the kernels do not touch. A small win: Numba stays an optional extra (``accel``).
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

    # ------------------------------------------------------------------------ LSTM
    # Layout as in recurrent.LSTMSequence: features by batch, C-contiguous, gates o, i, f, g
    # in row blocks of U rows. Each loop below is one simple pass over flat memory touching
    # two to four arrays: LLVM vectorises those (measured: one loop reading and writing ten
    # gate rows at once ran scalar, 3x slower), so the passes mirror the NumPy calls they
    # replace, without a dispatch and a temporary each.

    @jit
    def lstm_cell(z, c_prev, c, p, f_keep, record):
        """z holds tanh of the step's pre-activations (o, i, f halved). In place:
        o, i, f = (1 + z) / 2; c = f c_prev + i g. When recording, p = 1 - z^2 times the
        gate's other factor (o's factor tanh(c) comes in lstm_out), and f_keep = f."""
        one = z.dtype.type(1)
        half = z.dtype.type(0.5)
        n = c.size
        zf, cp, cf = z.reshape(-1), c_prev.reshape(-1), c.reshape(-1)
        if record:
            pf = p.reshape(-1)
            for s in range(4 * n):
                pf[s] = one - zf[s] * zf[s]
        for s in range(3 * n):
            zf[s] = zf[s] * half + half
        zi, zff, zg = zf[n : 2 * n], zf[2 * n : 3 * n], zf[3 * n :]
        for s in range(n):
            cf[s] = zff[s] * cp[s] + zi[s] * zg[s]  # c_t = f c_{t-1} + i g
        if record:
            pi, pff, pg, fk = pf[n : 2 * n], pf[2 * n : 3 * n], pf[3 * n :], f_keep.reshape(-1)
            for s in range(n):
                pi[s] = pi[s] * zg[s]  # dz_i = dc * g i (1 - i)
            for s in range(n):
                pff[s] = pff[s] * cp[s]  # dz_f = dc * c_{t-1} f (1 - f)
            for s in range(n):
                pg[s] = pg[s] * zi[s]  # dz_g = dc * i (1 - g^2)
            for s in range(n):
                fk[s] = zff[s]

    @jit
    def lstm_out(o, tc, h, p_o, k, record):
        """h = o tanh(c); when recording, p_o *= tanh(c) and k = (1 - tanh(c)^2) o."""
        one = h.dtype.type(1)
        of, tf, hf = o.reshape(-1), tc.reshape(-1), h.reshape(-1)
        for s in range(hf.size):
            hf[s] = of[s] * tf[s]
        if record:
            pf, kf = p_o.reshape(-1), k.reshape(-1)
            for s in range(hf.size):
                pf[s] = pf[s] * tf[s]
            for s in range(hf.size):
                kf[s] = (one - tf[s] * tf[s]) * of[s]

    @jit
    def lstm_back(dh, k, p, f, dc, dz):
        """One backward step: dc += dh k; dz = [dh p_o, p_i dc, p_f dc, p_g dc]; dc *= f."""
        n = dh.size
        dhf, kf, pf, ff = dh.reshape(-1), k.reshape(-1), p.reshape(-1), f.reshape(-1)
        dcf, dzf = dc.reshape(-1), dz.reshape(-1)
        for s in range(n):
            dcf[s] = dcf[s] + dhf[s] * kf[s]
        for s in range(n):
            dzf[s] = dhf[s] * pf[s]
        for b in range(n, 4 * n, n):  # the i, f, g blocks
            for s in range(n):
                dzf[b + s] = pf[b + s] * dcf[s]
        for s in range(n):
            dcf[s] = dcf[s] * ff[s]

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

    return SimpleNamespace(
        lstm_cell=lstm_cell, lstm_out=lstm_out, lstm_back=lstm_back,
        gru_gates=gru_gates, gru_state=gru_state,
    )  # fmt: skip
