"""The optional Numba kernels of ``ember.ops._accel`` against the NumPy reference path of the
fused recurrent ops (the same op with the kernels switched off), and against numerical
gradients; the switch (``EMBER_ACCEL=0``, ``enabled(False)``) and the fallback without Numba.
"""

import contextlib

import numpy as np
import pytest

import ember as em
from ember.ops import _accel
from ember.ops import recurrent as R

try:
    import numba  # noqa: F401

    HAS_NUMBA = True
except ImportError:
    HAS_NUMBA = False
needs_numba = pytest.mark.skipif(
    not HAS_NUMBA, reason="numba (optional accelerator) not installed"
)

N, T, D, U = 3, 6, 4, 5


def _lstm_inputs(dtype, rng, with_states: bool):
    """x, kernel, recurrent kernel, bias (and h0, c0) as tensors that require grad."""

    def t(shape, scale=1.0):
        return em.tensor((rng.standard_normal(shape) * scale).astype(dtype), requires_grad=True)

    args = [t((N, T, D)), t((D, 4 * U), 0.5), t((U, 4 * U), 0.5), t((4 * U,), 0.5)]
    args += [t((N, U)), t((N, U))] if with_states else [None, None]
    return args


def _lstm_run(on, dtype, case: dict, seed: int = 0):
    """Outputs, final states and every input's gradient of one lstm call and backward, with
    the kernels switched on or off (on=None: as EMBER_ACCEL says)."""
    rng = np.random.default_rng(seed)
    args = _lstm_inputs(dtype, rng, case.get("states", False))
    kw = {k: v for k, v in case.items() if k != "states"}
    if kw.pop("recurrent_dropout", False):
        kw["recurrent_mask"] = (rng.random((N, U)) > 0.3).astype(dtype) / dtype(0.7)
    with _accel.enabled(on) if on is not None else contextlib.nullcontext():
        y, h, c = R.lstm(*args, **kw)
        # every output gets a gradient (different weights, so no two paths cancel)
        loss = (y * y).sum() + (h * 2.0).sum() + (c * c * 0.5).sum()
        loss.backward()
    grads = [a.grad for a in args if a is not None]
    return [y.data, h.data, c.data, *grads]


_MASK = np.array(
    [[1, 1, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=bool
)  # examples starting late, ending early, with holes

CASES = {
    "plain": {},
    "mask": {"mask": _MASK},
    "go_backwards_states": {"go_backwards": True, "states": True},
    "last_output_mask_zero_output": {
        "return_sequences": False,
        "mask": _MASK,
        "zero_output_for_mask": True,
        "go_backwards": True,
    },
    "recurrent_dropout_states": {"recurrent_dropout": True, "states": True, "mask": _MASK},
}


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_lstm_accelerated_equals_numpy_path(dtype, case):
    em.set_floatx(np.dtype(dtype).name)  # the autouse fixture restores float32
    fast = _lstm_run(True, dtype, CASES[case])
    ref = _lstm_run(False, dtype, CASES[case])
    assert len(fast) == len(ref)
    eps = np.finfo(dtype).eps
    for a, b in zip(fast, ref):
        assert a.dtype == dtype  # float32 stays float32, float64 stays float64
        np.testing.assert_allclose(a, b, rtol=8 * eps, atol=8 * eps)


@needs_numba
def test_lstm_gradcheck_through_accelerated_path(float64, rng):
    args = _lstm_inputs(np.float64, rng, with_states=True)

    def f(x, w, u, b, h0, c0):
        y, h, c = R.lstm(x, w, u, b, h0, c0, mask=_MASK, go_backwards=True)
        return y.sum(axis=1) + h + c * c

    with _accel.enabled(True):
        assert _accel.kernels() is not None
        assert em.gradcheck(f, args)


def _gru_run(on, dtype, case: dict, seed: int = 0):
    """Outputs, final state and every input's gradient of one gru call and backward."""
    rng = np.random.default_rng(seed)
    reset_after = case.get("reset_after", True)

    def t(shape, scale=1.0):
        return em.tensor((rng.standard_normal(shape) * scale).astype(dtype), requires_grad=True)

    b = t((2, 3 * U) if reset_after else (3 * U,), 0.5) if case.get("bias", True) else None
    args = [t((N, T, D)), t((D, 3 * U), 0.5), t((U, 3 * U), 0.5), b]
    args.append(t((N, U)) if case.get("states", False) else None)
    kw = {k: v for k, v in case.items() if k not in ("states", "bias")}
    if kw.pop("recurrent_dropout", False):
        kw["recurrent_mask"] = (rng.random((N, U)) > 0.3).astype(dtype) / dtype(0.7)
    with _accel.enabled(on) if on is not None else contextlib.nullcontext():
        y, h = R.gru(*args, **kw)
        ((y * y).sum() + (h * 2.0).sum()).backward()
    return [y.data, h.data, *(a.grad for a in args if a is not None)]


GRU_CASES = {
    "plain": {},
    "reset_before": {"reset_after": False},
    "mask_no_bias": {"mask": _MASK, "bias": False},
    "go_backwards_state": {"go_backwards": True, "states": True},
    "reset_before_last_output_mask": {
        "reset_after": False,
        "return_sequences": False,
        "mask": _MASK,
        "go_backwards": True,
        "states": True,
    },
    "recurrent_dropout_mask_zero_output": {
        "recurrent_dropout": True,
        "mask": _MASK,
        "zero_output_for_mask": True,
    },
}


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(GRU_CASES))
def test_gru_accelerated_equals_numpy_path(dtype, case):
    em.set_floatx(np.dtype(dtype).name)
    fast = _gru_run(True, dtype, GRU_CASES[case])
    ref = _gru_run(False, dtype, GRU_CASES[case])
    assert len(fast) == len(ref)
    eps = np.finfo(dtype).eps
    for a, b in zip(fast, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=8 * eps, atol=8 * eps)


@needs_numba
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradcheck_through_accelerated_path(float64, rng, reset_after):
    shapes = [(N, T, D), (D, 3 * U), (U, 3 * U), (2, 3 * U) if reset_after else (3 * U,), (N, U)]
    args = [em.tensor(rng.standard_normal(s) * 0.5, requires_grad=True) for s in shapes]

    def f(x, w, u, b, h0):
        y, h = R.gru(x, w, u, b, h0, reset_after=reset_after, mask=_MASK)
        return y.sum(axis=1) + h * h

    with _accel.enabled(True):
        assert _accel.kernels() is not None
        assert em.gradcheck(f, args)


class _Spy:
    """Counts calls of the kernel namespace's functions."""

    def __init__(self, inner):
        self.inner, self.calls = inner, {}

    def __getattr__(self, name):
        fn = getattr(self.inner, name)

        def wrapped(*a):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*a)

        return wrapped


def _count_kernel_calls(monkeypatch, run=None) -> dict:
    """Run an LSTM forward + backward (or run()) with a spy in place of the kernels; return
    its counts."""
    real = _accel.kernels
    spies = []

    def spying():
        k = real()
        if k is None:
            return None
        spies.append(_Spy(k))
        return spies[-1]

    monkeypatch.setattr(_accel, "kernels", spying)
    if run is None:
        _lstm_run(None, np.float32, {})
    else:
        run()
    out: dict = {}
    for s in spies:
        for k, v in s.calls.items():
            out[k] = out.get(k, 0) + v
    return out


@needs_numba
def test_kernels_run_per_step_when_on(monkeypatch):
    monkeypatch.delenv("EMBER_ACCEL", raising=False)
    calls = _count_kernel_calls(monkeypatch)
    assert calls == {"lstm_cell": T, "lstm_out": T, "lstm_back": T}
    calls = _count_kernel_calls(monkeypatch, lambda: _gru_run(None, np.float32, {}))
    assert calls == {"gru_gates": T, "gru_state": T}


def test_env_var_zero_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("EMBER_ACCEL", "0")
    assert _accel.kernels() is None
    assert not _accel.is_enabled()
    assert _count_kernel_calls(monkeypatch) == {}


@needs_numba
def test_enabled_context_switches_off_and_restores():
    with _accel.enabled(False):
        assert _accel.kernels() is None
        with _accel.enabled(True):
            assert _accel.kernels() is not None
        assert _accel.kernels() is None
    assert _accel._STATE["on"] is None  # back to following EMBER_ACCEL


def test_without_numba_the_op_falls_back_to_numpy(monkeypatch):
    def no_numba():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(_accel, "_build", no_numba)
    monkeypatch.setattr(_accel, "_KERNELS", {})
    em.set_floatx("float64")
    with _accel.enabled(True):
        assert _accel.kernels() is None
    fallback = _lstm_run(True, np.float64, {"mask": _MASK})
    ref = _lstm_run(False, np.float64, {"mask": _MASK})
    for a, b in zip(fallback, ref):
        np.testing.assert_array_equal(a, b)
