"""Recurrent layers over a whole sequence: SimpleRNN, LSTM and GRU as fused ops.

Each op is ONE autograd node for the whole sequence, with backpropagation through time (BPTT)
written out by hand. This is the place in ember to read how BPTT works. Every op follows the
same plan:

forward
  1. The input projections of ALL time steps in one GEMM:  ``XW = X W + b`` (T steps at once).
     Only ``h_{t-1} U`` depends on the previous step, so only that product stays in the loop.
  2. A Python loop over time: ``z = h_{t-1} U + XW[t]`` into one preallocated gate buffer, the
     gate nonlinearities applied to it IN PLACE, the new state written into preallocated
     buffers H (T+1 states) (and C for LSTM).
  3. When a gradient will be needed, the same loop also stores, per step, every factor of the
     chain rule that does not depend on the incoming gradient (sigma', tanh', the other gate's
     value, ...): computed there, the step's arrays are still in cache.

backward
  4. The loop runs backwards in time, carrying ``dh`` (and ``dc``) from step t to step t-1:
     ``dz_t`` (the gradient of the step's gate pre-activations) is stored for every step and
     ``dh_{t-1} = dz_t U^T + (direct paths)``.
  5. After the loop, the weight gradients are sums over steps, done as single GEMMs over the
     stored ``dz``:  ``dW = X^T dZ``,  ``dU = sum_t h_{t-1}^T dz_t = H_prev^T dZ``,
     ``db = sum dZ``,  ``dX = dZ W^T``.

Conventions (Keras's, see DESIGN §3): input is batch-major (N, T, D); the kernel is (D, kU),
the recurrent kernel (U, kU); LSTM gates are ordered i, f, c, o and GRU gates z, r, h.

Layout inside the ops: the equations are written as usual (``h_t = ...``, rows are examples),
but the per-step arrays are stored TRANSPOSED, features by batch: a state is (U, N) and a step's
gates (kU, N), the states stacked time-major: H is (T+1, U, N). Each gate is then a
contiguous block of rows, so every elementwise op of the loops reads and writes
contiguous memory (NumPy is several times slower writing into strided column blocks), and the
per-step products are ``U^T h^T`` and ``U dz^T``, the GEMM shapes BLAS runs fastest here.

Masks (N, T) of booleans (from ``Embedding(mask_zero=True)``): at a masked step the state is
carried over unchanged, and the output repeats the previous output (zeros before the first
unmasked step), as Keras does; with ``zero_output_for_mask`` the output there is zero instead.
With ``go_backwards`` the sequence (and its mask) is read from the last step to the first and
the output sequence comes out in that processing order, as Keras returns it.

``recurrent_mask`` (N, U) is recurrent dropout: the state entering the ``h U`` product is
multiplied by it (the same mask at every step), as in Keras's cells.

Speed notes: sigmoid(z) = (1 + tanh(z / 2)) / 2, so with the sigmoid gates' columns of W, U
and b halved (exact in floating point) one in-place tanh activates all gates of a step. The
per-step GEMMs run on ``LOOP_BLAS_THREADS`` BLAS threads (see there). With Numba installed
(off with ``EMBER_ACCEL=0``), the float32 LSTM and GRU (reset_after=True) run their whole time
loops compiled (``ember/ops/kernels/recurrent.py``): the batch split into chunks that run on
ember's chunk runner, one per core (the examples' recurrences are independent), in a
batch-major layout. The other GRUs' loops (reset_after=False, float64) run their elementwise
work as compiled per-step kernels (``ember/ops/_accel.py``). The NumPy code here is the
reference both reproduce (the per-step kernels bit for bit, the compiled loops to float32
rounding: they use a rational tanh).
"""

from __future__ import annotations

import contextlib

import numpy as np

from ember import backend
from ember.autograd import grad_mode
from ember.autograd.function import Function
from ember.autograd.tensor import Tensor
from ember.errors import EmberValueError, ShapeError
from ember.ops import _accel

# without glibc keeping freed memory every step page-faults on its fresh (T, kU, N) buffers:
# measured 4,000 faults and 8 ms of system time per LSTM training step here (21 ms -> 27 ms)
backend.keep_freed_memory()

# ------------------------------------------------------------------------------------ helpers

# BLAS threads for the small per-step GEMMs of the time loops (None: leave BLAS as it is).
# On a quiet machine two threads are slightly faster at these shapes, but between two GEMMs
# OpenBLAS's worker keeps spinning on the second core, and on a loaded (shared) machine that
# starves the loop's own elementwise work: one thread is the robust choice. Needs
# threadpoolctl; without it the setting is ignored.
LOOP_BLAS_THREADS: int | None = 1

_BLAS: dict = {}


def _loop_blas():
    """Context in which the per-step GEMMs run with ``LOOP_BLAS_THREADS`` BLAS threads."""
    if LOOP_BLAS_THREADS is None:
        return contextlib.nullcontext()
    if "ctl" not in _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS["ctl"] = ThreadpoolController()
        except Exception:  # not installed, or an unusual BLAS: run as is
            _BLAS["ctl"] = None
    ctl = _BLAS["ctl"]
    if ctl is None:
        return contextlib.nullcontext()
    return ctl.limit(limits=LOOP_BLAS_THREADS, user_api="blas")


# Every few steps the loops set magnitudes below tiny / eps (about 1e-31 in float32, 1e-292 in
# float64) to zero. A vanishing gradient (or a decaying state) otherwise sinks into subnormal
# numbers, on which the CPU computes 10-100x slower (a 300-step LSTM's backward went from 25 ms
# to 560 ms); values that small cannot change any sum they take part in.
_FLUSH_EVERY = 4


def _flush_tiny_(a: np.ndarray, scratch: np.ndarray) -> None:
    """Zero the entries of a whose magnitude is below tiny / eps of its dtype, in place."""
    info = np.finfo(a.dtype)
    np.abs(a, out=scratch)
    np.copyto(a, 0, where=scratch < info.tiny / info.eps)


def _sigmoid_from_tanh_(t: np.ndarray) -> None:
    """t = tanh(z / 2)  ->  sigmoid(z) = (1 + t) / 2, in place."""
    t *= 0.5
    t += 0.5


def _half_columns(n_cols: int, sigmoid_cols: slice, dtype) -> np.ndarray:
    """Column scale: 0.5 on the sigmoid gates' columns (they are fed to tanh(z / 2)), else 1."""
    s = np.ones(n_cols, dtype)
    s[sigmoid_cols] = 0.5
    return s


def _records(*inputs) -> bool:
    """Whether the op's result will be differentiated (then forward keeps what backward needs)."""
    return grad_mode._state["grad"] and any(
        isinstance(a, Tensor) and a.requires_grad for a in inputs
    )


def _shape_of(a) -> tuple:
    return tuple(np.shape(a))


def _check(op: str, x, kernel, recurrent_kernel, gates: int) -> tuple[int, int, int, int]:
    """Validate the shared arguments; return (N, T, D, U)."""
    if np.ndim(x) != 3:
        raise ShapeError(
            f"{op}: x must be 3-D (batch, timesteps, features), received shape {_shape_of(x)}"
        )
    n, t, d = x.shape
    if t == 0:
        raise ShapeError(f"{op}: the sequence must have at least one time step, received {t}")
    if (
        np.ndim(recurrent_kernel) != 2
        or recurrent_kernel.shape[1] != gates * recurrent_kernel.shape[0]
    ):
        raise ShapeError(
            f"{op}: recurrent_kernel must have shape (units, {gates}*units), received "
            f"{_shape_of(recurrent_kernel)}"
        )
    u = recurrent_kernel.shape[0]
    if np.ndim(kernel) != 2 or kernel.shape != (d, gates * u):
        raise ShapeError(
            f"{op}: kernel must have shape (features, {gates}*units) = ({d}, {gates * u}) for an "
            f"input with {d} features and {u} units, received {_shape_of(kernel)}"
        )
    return n, t, d, u


def _check_bias(op: str, bias, expected: tuple) -> None:
    if bias is not None and bias.shape != expected:
        raise ShapeError(f"{op}: bias must have shape {expected}, received {_shape_of(bias)}")


def _state0(op: str, name: str, s, n: int, u: int, dtype) -> np.ndarray:
    """An initial state as a (U, N) array (transposed): zeros when None; (N, U), (1, U) or (U,)
    given."""
    if s is None:
        return np.zeros((u, n), dtype)
    try:
        return np.broadcast_to(np.asarray(s, dtype=dtype), (n, u)).T
    except ValueError:
        raise ShapeError(
            f"{op}: {name} must have shape (batch, units) = ({n}, {u}), received {_shape_of(s)}"
        ) from None


def _time_major(x: np.ndarray, go_backwards: bool, dtype) -> np.ndarray:
    """(N, T, D) -> a (T, N, D) copy in processing order (reversed for go_backwards)."""
    xt = x.transpose(1, 0, 2)
    if go_backwards:
        xt = xt[::-1]
    return np.array(xt, dtype=dtype, order="C")


def _input_projection(xt: np.ndarray, w: np.ndarray, b) -> np.ndarray:
    """(x_t W + b)^T of every step in ONE GEMM: (T, N, D) -> XW (kU, T, N); the loop adds
    its step's slice XW[:, t] (kU, N) to U^T h^T."""
    t_len, n, d = xt.shape
    XW = w.T @ xt.reshape(t_len * n, d).T  # (kU, T*N)
    if b is not None:
        XW += b[:, None]
    return XW.reshape(w.shape[1], t_len, n)


class _Masks:
    """The (T, N) step mask in processing order and what the loops need from it."""

    def __init__(self, op: str, mask, n: int, t: int, go_backwards: bool, zero_output: bool):
        self.m = None  # (T, N) bool, or None when no step is masked
        self.out_scale = None  # (T, 1, N) 0/1 factor of each step's output, or None
        if mask is None:
            return
        mask = np.asarray(mask)
        if mask.shape != (n, t):
            raise ShapeError(
                f"{op}: mask must have shape (batch, timesteps) = ({n}, {t}), received "
                f"{mask.shape}"
            )
        m = mask.astype(bool).T  # (T, N)
        if go_backwards:
            m = m[::-1]
        if m.all():
            return
        self.m = np.ascontiguousarray(m)
        self.keep = ~self.m[:, None, :]  # (T, 1, N): where the old state is kept
        # per step: does any example keep its state? (skip the copy where none does)
        self.any_masked = (~self.m).any(axis=1).tolist()
        # Keras: a masked step outputs the previous output, which is zero before the first
        # unmasked step; with zero_output_for_mask it is zero at every masked step
        shown = self.m if zero_output else np.logical_or.accumulate(self.m, axis=0)
        if not shown.all():
            self.out_scale = shown[:, None, :]

    def float_mask(self, dtype) -> np.ndarray:
        return self.m[:, None, :].astype(dtype)  # (T, 1, N)

    def keep_state(self, H: np.ndarray, t: int) -> None:
        """Masked examples of step t keep the previous state: H[t+1] <- H[t] there."""
        if self.m is not None and self.any_masked[t]:
            np.copyto(H[t + 1], H[t], where=self.keep[t])


def _outputs(H: np.ndarray, masks: _Masks, return_sequences: bool) -> np.ndarray:
    """The op's first output from the (transposed) states H (T+1, U, N); always a copy."""
    if not return_sequences:
        last = H[-1] if masks.out_scale is None else H[-1] * masks.out_scale[-1]
        return last.T.copy()  # (N, U)
    seq = H[1:] if masks.out_scale is None else H[1:] * masks.out_scale
    return seq.transpose(2, 0, 1).copy()  # (N, T, U)


def _output_grads(gy: np.ndarray, gh: np.ndarray, masks: _Masks, return_sequences, dtype):
    """(dh (U, N) to start the backward loop with, per-step dY (T, U, N) or None)."""
    dh = np.array(gh.T, dtype=dtype, order="C")  # fresh: gh itself is never written
    if not return_sequences:
        dh += gy.T if masks.out_scale is None else gy.T * masks.out_scale[-1]
        return dh, None
    gys = gy.transpose(1, 2, 0)  # (T, U, N) view
    if masks.out_scale is not None:
        gys = gys * masks.out_scale
    return dh, gys


def _raw(a):
    return a.data if isinstance(a, Tensor) else a


def _finish(fn, Dk, xt, kernel, Hprev, go_backwards, x_dtype, x_rows=None, h_rows=None):
    """dX, dW, dU and the input-side bias sum from the per-step gradients Dk (K, T, N).

    Dk stacks the steps' (K, N) gradients behind the gate axis, so that as a (K, T*N) matrix
    it is contiguous and every sum over steps is one plain GEMM. Rows ``x_rows`` are the
    gradient of the input-side pre-activations x_t W + b, rows ``h_rows`` that of the
    recurrent-side ones h_{t-1} U (False: the caller computes dU); both default to all rows.
    ``kernel`` has its columns in Dk's row order; ``Hprev`` (T, U, N) holds the h that met U
    at every step. Also returns Dk as a matrix."""
    t_len, n, d = xt.shape
    need = fn.needs_input_grad
    D2 = Dk.reshape(Dk.shape[0], t_len * n)  # (K, T*N), a view
    dZx = D2 if x_rows is None else D2[x_rows]
    dx = dw = du = db = None
    if need[0]:
        dx = (dZx.T @ kernel.T).reshape(t_len, n, d).transpose(1, 0, 2)  # (N, T, D)
        if go_backwards:
            dx = dx[:, ::-1]
        dx = dx.astype(x_dtype, copy=False)
    if need[1]:
        dw = xt.reshape(t_len * n, d).T @ dZx.T  # sum_t x_t^T dz_t
    if need[2] and h_rows is not False:
        dZh = D2 if h_rows is None else D2[h_rows]
        Hk = Hprev.transpose(1, 0, 2).reshape(Hprev.shape[1], t_len * n)  # (U, T*N) copy
        du = Hk @ dZh.T  # sum_t h_{t-1}^T dz_t
    if len(need) > 3 and need[3]:
        db = dZx.sum(axis=1)
    return dx, dw, du, db, D2


def _need(fn, k: int) -> bool:
    return len(fn.needs_input_grad) > k and fn.needs_input_grad[k]


def _unpermute(a, perm):
    """Scatter gate columns computed in the op's internal order back to Keras's order."""
    if a is None:
        return None
    out = np.empty_like(a)
    out[..., perm] = a
    return out


# The compiled loops split the batch into chunks of at least _MIN_CHUNK examples, two per
# thread of ember's chunk runner (each chunk's recurrence is independent of the others'): when
# a busy machine preempts one thread, the other takes the chunks left (measured on 2 loaded
# cores, batch 32: LSTM training step 21.1 ms in 4 chunks, 21.8 ms in 2; the same when quiet,
# as the per-step products run in blocks of 8 rows either way).
_MIN_CHUNK = 8
_CHUNKS_PER_THREAD = 2


# the compiled loops' unused optional arrays (size 0)
_NO_KEEP = np.zeros((0, 0), bool)
_NO_RM = np.zeros((0, 0), np.float32)
_NO_HS = np.zeros((0, 0, 0), np.float32)
_NO_GY = np.zeros((0, 0, 0), np.float32)


def _compiled_loops(dt):
    """The compiled LSTM / GRU loops (ember/ops/kernels/recurrent.py) for this dtype, or None."""
    if dt != np.float32:  # float64 (gradcheck) takes the NumPy path
        return None
    k = _accel.load("recurrent")
    return k if k is not None and k.SGEMM else None


def _chunks(n: int) -> list:
    """Row bounds [0, ..., n] of the batch chunks (see _MIN_CHUNK)."""
    from ember.ops.workers import _workers

    count = max(1, min(_CHUNKS_PER_THREAD * _workers.threads(), n // _MIN_CHUNK))
    return [n * i // count for i in range(count + 1)]


def _run_chunks(work, count: int) -> None:
    from ember.ops.workers import _workers

    _workers.run(work, count)


def _compiled_masks(masks, recurrent_mask, n, u, dt):
    """What the compiled loops take of the masks: keep (T, N), the steps whose state is carried
    over; shown (T, N), Keras's output scale at masked steps (see _Masks); rm (N, U), the
    recurrent dropout mask. Each None when absent."""
    keep = None if masks.m is None else ~masks.m
    shown = None if masks.out_scale is None else masks.out_scale[:, 0]
    rm = None
    if recurrent_mask is not None:
        rm = np.broadcast_to(np.asarray(recurrent_mask, dt), (n, u))
    return keep, shown, rm


def _chunk_inputs(x, n0, n1, go_backwards, dt, keep, rm, u):
    """One batch chunk's inputs to a compiled loop: X (T*nb, D) time-major, the chunk's keep
    and recurrent-dropout masks (or the size-0 stand-ins), and Hs, the buffer of the dropped
    states that the backward needs (only with recurrent dropout)."""
    t_len, d = x.shape[1], x.shape[2]
    xc = x[n0:n1, ::-1] if go_backwards else x[n0:n1]
    X = np.array(xc.transpose(1, 0, 2), dtype=dt, order="C").reshape(-1, d)
    kc = _NO_KEEP if keep is None else np.ascontiguousarray(keep[:, n0:n1])
    rmc, Hs = _NO_RM, _NO_HS
    if rm is not None:
        rmc = np.ascontiguousarray(rm[n0:n1])
        Hs = np.empty((t_len, n1 - n0, u), dt)
    return X, kc, rmc, Hs


def _chunk_outputs(H, shown, n0, n1, return_sequences):
    """A chunk's layer output from its states H (T+1, nb, U), batch-major."""
    out = H[1:] if return_sequences else H[-1]
    if shown is not None:  # Keras's outputs at masked steps (see _Masks)
        out = out * (shown[:, n0:n1, None] if return_sequences else shown[-1, n0:n1, None])
    return out.transpose(1, 0, 2) if return_sequences else out


def _chunk_output_grads(gy, gh, shown, n0, n1, dt, return_sequences):
    """A chunk's gradients entering the compiled backward: dh (nb, U), the last state's (plus
    the output's when only the last step is returned), and gyc, every step's output gradient
    (size 0 when only the last step is returned)."""
    dh = np.array(gh[n0:n1], dtype=dt, order="C")
    if not return_sequences:
        dh += gy[n0:n1] if shown is None else gy[n0:n1] * shown[-1, n0:n1, None]
        return dh, _NO_GY
    return dh, gy[n0:n1] if shown is None else gy[n0:n1] * shown[:, n0:n1].T[:, :, None]


def _sum_chunks(parts, j):
    """Sum over the chunks of their j-th partial gradient, in chunk order (same bits on any
    thread count), or None when it was not needed."""
    if parts[0][j] is None:
        return None
    g = parts[0][j]
    for p in parts[1:]:
        g += p[j]
    return g


def _blocks(u: int, order) -> np.ndarray:
    """Column indices that gather gate blocks of width u in the given order."""
    return np.concatenate([np.arange(b * u, (b + 1) * u) for b in order])


# ------------------------------------------------------------------------------------ SimpleRNN

_RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


class SimpleRNNSequence(Function):
    """h_t = act(x_t W + h_{t-1} U + b) over a whole sequence;  BPTT:
    da_t = (dy_t + dh_t) act'(a_t),  dh_{t-1} = da_t U^T,  dW = X^T dA,  dU = H_prev^T dA"""

    def forward(
        self,
        x,
        kernel,
        recurrent_kernel,
        bias=None,
        h0=None,
        *,
        activation="tanh",
        go_backwards=False,
        mask=None,
        return_sequences=True,
        zero_output_for_mask=False,
        recurrent_mask=None,
        record=True,
    ):
        op = "simple_rnn"
        n, t_len, d, u = _check(op, x, kernel, recurrent_kernel, 1)
        _check_bias(op, bias, (u,))
        if activation not in _RNN_ACTIVATIONS:
            raise EmberValueError(
                f"{op}: activation must be one of {list(_RNN_ACTIVATIONS)} in the fused op, "
                f"received {activation!r}"
            )
        dt = kernel.dtype
        masks = _Masks(op, mask, n, t_len, go_backwards, zero_output_for_mask)
        rm = None if recurrent_mask is None else np.asarray(recurrent_mask, dt).T
        xt = _time_major(x, go_backwards, dt)  # (T, N, D)

        # 1. all input projections in one GEMM: XW[:, t] = (x_t W + b)^T  # (U, T, N)
        sig = activation == "sigmoid"
        W, Rk, b = kernel, recurrent_kernel, bias
        if sig:  # sigmoid(a) = (1 + tanh(a / 2)) / 2
            W, Rk = W * 0.5, Rk * 0.5
            b = None if b is None else b * 0.5
        XW = _input_projection(xt, W, b)
        RT = np.ascontiguousarray(Rk.T)  # (U, U): the step's product is U^T h^T
        H = np.empty((t_len + 1, u, n), dt)  # H[t+1] = h_t^T; H[0] = h0^T
        H[0] = _state0(op, "h0", h0, n, u, dt)
        Hs = H if rm is None else np.empty((t_len, u, n), dt)  # the h that meets U
        a = np.empty((u, n), dt)  # the step's pre-activation
        # act'(a_t) per step (only when a gradient will be needed)
        P = np.empty((t_len, u, n), dt) if record and activation != "linear" else None

        # 2. the recurrence
        with _loop_blas():
            for t in range(t_len):
                if rm is not None:
                    np.multiply(H[t], rm, out=Hs[t])
                np.matmul(RT, Hs[t], out=a)  # (U, N)
                a += XW[:, t]  # a_t = x_t W + b + h_{t-1} U
                h = H[t + 1]
                if activation == "relu":
                    np.maximum(a, 0, out=h)
                    if P is not None:
                        np.greater(a, 0, out=P[t], casting="unsafe")  # relu' = [a > 0]
                elif activation == "linear":
                    h[...] = a
                else:
                    np.tanh(a, out=h)
                    if sig:
                        _sigmoid_from_tanh_(h)
                    if P is not None:  # 3. tanh' = 1 - h^2,  sigmoid' = h (1 - h)
                        p = P[t]
                        if sig:
                            np.subtract(1, h, out=p)
                            p *= h
                        else:
                            np.multiply(h, h, out=p)
                            np.subtract(1, p, out=p)
                masks.keep_state(H, t)  # masked examples keep h_{t-1}
                if t % _FLUSH_EVERY == 0:
                    _flush_tiny_(h, a)

        if record:
            self.saved = (xt, kernel, recurrent_kernel, H, Hs, P, rm, masks)
            self.opts = (go_backwards, return_sequences, x.dtype)
        return _outputs(H, masks, return_sequences), H[-1].T.copy()

    def backward(self, gy, gh):
        xt, kernel, recurrent_kernel, H, Hs, P, rm, masks = self.saved
        go_backwards, return_sequences, x_dtype = self.opts
        t_len, n, d = xt.shape
        u = recurrent_kernel.shape[0]
        dt = kernel.dtype
        carry = None
        if masks.m is not None:
            # at masked steps the state was copied: da = 0 there, and dh passes straight back
            mf = masks.float_mask(dt)
            P = np.broadcast_to(mf, (t_len, u, n)) if P is None else P * mf
            carry = 1 - mf

        dh, gys = _output_grads(gy, gh, masks, return_sequences, dt)  # dh: dL/dh_t (U, N)
        dAk = np.empty((u, t_len, n), dt)  # dL/da_t of every step (see _finish)
        dA = dAk.transpose(1, 0, 2)  # dA[t]: the step's (U, N) slice
        tmp = np.empty((u, n), dt)

        # 4. backwards through time
        with _loop_blas():
            for t in range(t_len - 1, -1, -1):
                if gys is not None:
                    dh += gys[t]  # the output y_t = h_t also receives a gradient
                da = dA[t]
                if P is None:  # linear: act' = 1
                    da[...] = dh
                else:
                    np.multiply(dh, P[t], out=da)  # da_t = dh_t * act'(a_t)
                masked = carry is not None and masks.any_masked[t]
                if masked:
                    np.multiply(dh, carry[t], out=tmp)
                np.matmul(recurrent_kernel, da, out=dh)  # dh_{t-1} = da_t U^T
                if rm is not None:
                    dh *= rm
                if masked:
                    dh += tmp
                if t % _FLUSH_EVERY == 0:
                    _flush_tiny_(dh, tmp)

        # 5. the weight gradients as single GEMMs over all steps
        dx, dw, du, db, _ = _finish(self, dAk, xt, kernel, Hs[:t_len], go_backwards, x_dtype)
        return dx, dw, du, db, dh.T if _need(self, 4) else None


def simple_rnn(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    activation: str = "tanh",
    go_backwards: bool = False,
    mask=None,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    recurrent_mask=None,
):
    """h_t = act(x_t W + h_{t-1} U + b) for every step of x (N, T, D); returns (outputs, h_T):
    outputs (N, T, U) (or the last output (N, U) with return_sequences=False)."""
    return SimpleRNNSequence.apply(
        x, kernel, recurrent_kernel, bias, h0,
        activation=activation, go_backwards=go_backwards, mask=_raw(mask),
        return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask,
        recurrent_mask=_raw(recurrent_mask),
        record=_records(x, kernel, recurrent_kernel, bias, h0),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ LSTM

# Keras stores the LSTM gates as i, f, c, o. Inside the op they are reordered to o, i, f, c:
# the three sigmoid gates (o, i, f) are then one contiguous block, and the three gates whose
# gradient is a product with dc (i, f, c) another (one broadcast multiply per step in backward).
_LSTM_ORDER = (3, 0, 1, 2)


class LSTMSequence(Function):
    """LSTM over a whole sequence (Keras gates i, f, c, o; sigma = sigmoid):
    i,f,o = sigma(x W + h_{t-1} U + b)[i,f,o],  g = tanh(...)[c],
    c_t = f c_{t-1} + i g,  h_t = o tanh(c_t);  BPTT in backward()"""

    def forward(
        self,
        x,
        kernel,
        recurrent_kernel,
        bias=None,
        h0=None,
        c0=None,
        *,
        go_backwards=False,
        mask=None,
        return_sequences=True,
        zero_output_for_mask=False,
        recurrent_mask=None,
        record=True,
    ):
        op = "lstm"
        n, t_len, d, u = _check(op, x, kernel, recurrent_kernel, 4)
        _check_bias(op, bias, (4 * u,))
        dt = kernel.dtype
        u3 = 3 * u
        masks = _Masks(op, mask, n, t_len, go_backwards, zero_output_for_mask)
        perm = _blocks(u, _LSTM_ORDER)
        k = _compiled_loops(dt)
        if k is not None:
            return self._forward_compiled(
                k, x, kernel, recurrent_kernel, bias, h0, c0, perm, masks, recurrent_mask,
                go_backwards, return_sequences, record,
            )  # fmt: skip
        rm = None if recurrent_mask is None else np.asarray(recurrent_mask, dt).T
        xt = _time_major(x, go_backwards, dt)  # (T, N, D)
        W = kernel[:, perm]  # (D, 4U), gates o, i, f, c
        R = recurrent_kernel[:, perm]  # (U, 4U)
        half = _half_columns(4 * u, slice(0, u3), dt)  # o, i, f get tanh(z / 2)

        # 1. all input projections in one GEMM: XW[:, t] = (x_t W + b)^T  # (4U, T, N)
        XW = _input_projection(xt, W * half, None if bias is None else bias[perm] * half)
        RhT = np.ascontiguousarray((R * half).T)  # (4U, U): the step's product is U^T h^T
        H = np.empty((t_len + 1, u, n), dt)  # H[t+1] = h_t^T
        C = np.empty((t_len + 1, u, n), dt)  # C[t+1] = c_t^T
        H[0] = _state0(op, "h0", h0, n, u, dt)
        C[0] = _state0(op, "c0", c0, n, u, dt)
        Hs = H if rm is None else np.empty((t_len, u, n), dt)  # the h that meets U
        z = np.empty((4 * u, n), dt)  # the step's gates: o, i, f, g
        o, i, f, g = z[:u], z[u : 2 * u], z[2 * u : u3], z[u3:]
        ig = np.empty((u, n), dt)  # i * g
        tc = np.empty((u, n), dt)  # tanh(c_t)
        if record:  # the chain-rule factors of step 3 (see backward), and f
            P = np.empty((t_len, 4 * u, n), dt)
            K = np.empty((t_len, u, n), dt)
            F = np.empty((t_len, u, n), dt)

        # 2. the recurrence
        with _loop_blas():
            for t in range(t_len):
                if rm is not None:
                    np.multiply(H[t], rm, out=Hs[t])
                np.matmul(RhT, Hs[t], out=z)  # (4U, N)
                z += XW[:, t]  # z_t = x_t W + b + h_{t-1} U (o, i, f halved)
                np.tanh(z, out=z)
                c = C[t + 1]
                if record:  # 3. 1 - tanh^2: tanh' for g, 4 sigma'(z) for o, i, f (below)
                    p = P[t]
                    np.multiply(z, z, out=p)
                    np.subtract(1, p, out=p)
                _sigmoid_from_tanh_(z[:u3])  # o, i, f = sigma(z)
                np.multiply(f, C[t], out=c)
                np.multiply(i, g, out=ig)
                c += ig  # c_t = f c_{t-1} + i g
                np.tanh(c, out=tc)
                np.multiply(o, tc, out=H[t + 1])  # h_t = o tanh(c_t)
                if record:  # 3. the rest of backward's factors, while in cache
                    p[:u] *= tc  # dz_o = dh * tanh(c_t) o (1 - o)
                    p[u : 2 * u] *= g  # dz_i = dc * g i (1 - i)
                    p[2 * u : u3] *= C[t]  # dz_f = dc * c_{t-1} f (1 - f)
                    p[u3:] *= i  # dz_g = dc * i (1 - g^2)
                    k = K[t]
                    np.multiply(tc, tc, out=k)
                    np.subtract(1, k, out=k)
                    k *= o  # dc += dh * o (1 - tanh(c_t)^2)
                    F[t] = f  # dc_{t-1} = dc f
                if masks.m is not None:  # masked examples keep h and c
                    masks.keep_state(H, t)
                    masks.keep_state(C, t)
                if t % _FLUSH_EVERY == 0:
                    _flush_tiny_(H[t + 1], tc)
                    _flush_tiny_(c, tc)

        if record:
            self.saved = (xt, W, R, P, K, F, Hs, rm, masks, perm)
            self.opts = (go_backwards, return_sequences, x.dtype)
        return _outputs(H, masks, return_sequences), H[-1].T.copy(), C[-1].T.copy()

    def _forward_compiled(
        self, k, x, kernel, recurrent_kernel, bias, h0, c0, perm, masks, recurrent_mask,
        go_backwards, return_sequences, record,
    ):  # fmt: skip
        """forward on the compiled loops (kernels/recurrent.py), one call per chunk of the
        batch, the chunks on ember's chunk runner; the same math as the NumPy loop below, in
        a batch-major layout."""
        n, t_len, d = x.shape
        u = recurrent_kernel.shape[0]
        dt = kernel.dtype
        half = _half_columns(4 * u, slice(0, 3 * u), dt)  # o, i, f get tanh(z / 2)
        W = np.ascontiguousarray(kernel[:, perm] * half)  # (D, 4U), gates o, i, f, c
        R = np.ascontiguousarray(recurrent_kernel[:, perm])  # (U, 4U)
        Rh = R * half
        b = np.zeros(4 * u, dt) if bias is None else np.ascontiguousarray(bias[perm] * half)
        h0 = _state0("lstm", "h0", h0, n, u, dt).T  # (N, U) views
        c0 = _state0("lstm", "c0", c0, n, u, dt).T
        keep, shown, rm = _compiled_masks(masks, recurrent_mask, n, u, dt)
        y = np.empty((n, t_len, u) if return_sequences else (n, u), dt)
        h_out, c_out = np.empty((n, u), dt), np.empty((n, u), dt)
        bounds = _chunks(n)
        saved = [None] * (len(bounds) - 1)

        def work(i):
            n0, n1 = bounds[i], bounds[i + 1]
            X, kc, rmc, Hs = _chunk_inputs(x, n0, n1, go_backwards, dt, keep, rm, u)
            Z = np.empty((t_len, n1 - n0, 6 * u if record else 4 * u), dt)
            H = np.empty((t_len + 1, n1 - n0, u), dt)
            H[0] = h0[n0:n1]
            c = np.array(c0[n0:n1], dtype=dt, order="C")
            k.lstm_forward(X, W, b, Rh, Z, H, c, record, kc, rmc, Hs)
            y[n0:n1] = _chunk_outputs(H, shown, n0, n1, return_sequences)
            h_out[n0:n1], c_out[n0:n1] = H[-1], c
            if record:
                saved[i] = (X, Z, H if rm is None else Hs, kc, rmc)

        _run_chunks(work, len(bounds) - 1)
        if record:
            self.saved = ("compiled", k, bounds, saved, W, R, perm, shown)
            self.opts = (go_backwards, return_sequences, x.dtype)
        return y, h_out, c_out

    def _backward_compiled(self, gy, gh, gc):
        _, k, bounds, saved, W, R, perm, shown = self.saved
        go_backwards, return_sequences, x_dtype = self.opts
        need = self.needs_input_grad
        dt = W.dtype
        u = R.shape[0]
        quarter = _half_columns(4 * u, slice(0, 3 * u), dt) ** 2  # see backward below
        RqT = np.ascontiguousarray((R * quarter).T)  # (4U, U)
        Wq = W * _half_columns(4 * u, slice(0, 3 * u), dt)  # = kernel * quarter (W is halved)
        n, t_len = gh.shape[0], saved[0][1].shape[0]
        d = W.shape[0]
        gy = np.asarray(gy, dtype=dt)
        dx = np.empty((n, t_len, d), x_dtype) if need[0] else None
        dh0, dc0 = np.empty((n, u), dt), np.empty((n, u), dt)
        parts = [None] * len(saved)

        def work(i):
            n0, n1 = bounds[i], bounds[i + 1]
            X, Z, Hs, kc, rmc = saved[i]
            dh, gyc = _chunk_output_grads(gy, gh, shown, n0, n1, dt, return_sequences)
            dc = np.array(gc[n0:n1], dtype=dt, order="C")
            k.lstm_backward(Z, RqT, dh, dc, gyc, kc, rmc)
            dZ = Z.reshape(t_len * (n1 - n0), 6 * u)[:, : 4 * u]  # every step's dz (4x on o, i, f)
            if need[0]:
                dxc = (dZ @ Wq.T).reshape(t_len, n1 - n0, d).transpose(1, 0, 2)
                dx[n0:n1] = dxc[:, ::-1] if go_backwards else dxc
            parts[i] = (
                X.T @ dZ if need[1] else None,  # sum_t x_t^T dz_t
                Hs[:t_len].reshape(-1, u).T @ dZ if need[2] else None,  # sum_t h_{t-1}^T dz_t
                dZ.sum(axis=0) if _need(self, 3) else None,
            )
            dh0[n0:n1], dc0[n0:n1] = dh, dc

        _run_chunks(work, len(saved))
        grads = []
        for j in range(3):
            g = _sum_chunks(parts, j)
            grads.append(None if g is None else _unpermute(g * quarter, perm))
        return (
            dx, *grads, dh0 if _need(self, 4) else None, dc0 if _need(self, 5) else None,
        )  # fmt: skip

    def backward(self, gy, gh, gc):
        if isinstance(self.saved[0], str):  # ("compiled", ...)
            return self._backward_compiled(gy, gh, gc)
        xt, W, R, P, K, F, Hs, rm, masks, perm = self.saved
        go_backwards, return_sequences, x_dtype = self.opts
        t_len, n, d = xt.shape
        u = R.shape[0]
        dt = W.dtype

        # The chain rule through one step, with dh = dL/dh_t and dc = dL/dc_t:
        #      dc  += dh * o * (1 - tanh(c_t)^2)             (h_t = o tanh(c_t))    K
        #      dz_o = dh * tanh(c_t) * o (1 - o)              (sigma' = s (1 - s))   P[o]
        #      dz_i = dc * g * i (1 - i)                                              P[i]
        #      dz_f = dc * c_{t-1} * f (1 - f)                                        P[f]
        #      dz_g = dc * i * (1 - g^2)                      (tanh' = 1 - tanh^2)   P[c]
        #      dc_{t-1} = dc * f,   dh_{t-1} = dz U^T
        # Every factor right of dh / dc was stored by forward, so the loop only multiplies.
        # For o, i, f forward stored 1 - tanh(z/2)^2 = 4 s (1 - s) (one op for all four
        # gates): the dz kept below are 4x too large in those rows, and the 1/4 is applied
        # once to the weight-sized arrays that meet them (U and W below, dW, dU, db after).
        quarter = _half_columns(4 * u, slice(0, 3 * u), dt) ** 2
        Rq = R * quarter
        carry = None
        if masks.m is not None:
            # at masked steps the state was copied: dz = 0 there, and dh, dc pass through
            mf = masks.float_mask(dt)
            P = P * mf
            K = K * mf
            carry = 1 - mf
            F = F * mf + carry

        dh, gys = _output_grads(gy, gh, masks, return_sequences, dt)  # dL/dh_t (U, N)
        dc = np.array(gc.T, dtype=dt, order="C")  # dL/dc_t (gc itself is never written)
        dZk = np.empty((4 * u, t_len, n), dt)  # dL/dz_t of every step (see _finish)
        dz = np.empty((4 * u, n), dt)  # the step's, gates o, i, f, c
        dz3 = dz[u:].reshape(3, u, n)  # its i, f, c blocks
        P3 = P[:, u:].reshape(t_len, 3, u, n)
        tmp = np.empty((u, n), dt)

        # 4. backwards through time
        with _loop_blas():
            for t in range(t_len - 1, -1, -1):
                if gys is not None:
                    dh += gys[t]  # the output y_t = h_t also receives a gradient
                np.multiply(dh, K[t], out=tmp)
                dc += tmp  # dc_t = (from c_{t+1}) + dh_t o (1 - tanh^2 c_t)
                np.multiply(dh, P[t, :u], out=dz[:u])  # dz_o
                np.multiply(P3[t], dc, out=dz3)  # dz_i, dz_f, dz_g
                dc *= F[t]  # dc_{t-1} = dc_t f_t
                masked = carry is not None and masks.any_masked[t]
                if masked:
                    np.multiply(dh, carry[t], out=tmp)
                np.matmul(Rq, dz, out=dh)  # dh_{t-1} = dz_t U^T
                if rm is not None:
                    dh *= rm
                if masked:
                    dh += tmp
                dZk[:, t] = dz
                if t % _FLUSH_EVERY == 0:
                    _flush_tiny_(dh, tmp)
                    _flush_tiny_(dc, tmp)

        # 5. single GEMMs over all steps, then the gates back to Keras's order
        dx, dw, du, db, _ = _finish(self, dZk, xt, W * quarter, Hs[:t_len], go_backwards, x_dtype)
        dw, du, db = (None if a is None else a * quarter for a in (dw, du, db))
        dw, du, db = (_unpermute(a, perm) for a in (dw, du, db))
        return (
            dx, dw, du, db,
            dh.T if _need(self, 4) else None, dc.T if _need(self, 5) else None,
        )  # fmt: skip


def lstm(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    c0=None,
    go_backwards: bool = False,
    mask=None,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    recurrent_mask=None,
):
    """LSTM over x (N, T, D) with Keras's weights (gates i, f, c, o): c_t = f c_{t-1} + i g,
    h_t = o tanh(c_t); returns (outputs (N, T, U) or the last output (N, U), h_T, c_T)."""
    return LSTMSequence.apply(
        x, kernel, recurrent_kernel, bias, h0, c0,
        go_backwards=go_backwards, mask=_raw(mask), return_sequences=return_sequences,
        zero_output_for_mask=zero_output_for_mask, recurrent_mask=_raw(recurrent_mask),
        record=_records(x, kernel, recurrent_kernel, bias, h0, c0),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ GRU

# In backward the GRU's per-step gradients live in one (4U, N) block laid out as
# [a_h (input side), z, r, rh (recurrent side)]: its first 3U rows are the gradient of the
# input projection x W (gates in the order h, z, r) and its last 3U rows that of the
# recurrent projection h U (gates z, r, h: Keras's order), so both GEMMs read a plain slice.
# reset_after=False uses the first 3U rows only (its U_h meets r * h, not h).
_GRU_X_ORDER = (2, 0, 1)


class GRUSequence(Function):
    """GRU over a whole sequence (Keras gates z, r, h; sigma = sigmoid). reset_after=True:
    z, r = sigma(x W + b0 + h_{t-1} U + b1)[z, r],
    hh = tanh(x W_h + b0_h + r (h_{t-1} U_h + b1_h)),  h_t = z h_{t-1} + (1 - z) hh;
    reset_after=False: hh = tanh(x W_h + (r h_{t-1}) U_h + b_h).  BPTT in backward()"""

    def forward(
        self,
        x,
        kernel,
        recurrent_kernel,
        bias=None,
        h0=None,
        *,
        reset_after=True,
        go_backwards=False,
        mask=None,
        return_sequences=True,
        zero_output_for_mask=False,
        recurrent_mask=None,
        record=True,
    ):
        op = "gru"
        n, t_len, d, u = _check(op, x, kernel, recurrent_kernel, 3)
        _check_bias(op, bias, (2, 3 * u) if reset_after else (3 * u,))
        dt = kernel.dtype
        u2 = 2 * u
        masks = _Masks(op, mask, n, t_len, go_backwards, zero_output_for_mask)
        k = _compiled_loops(dt) if reset_after else None
        if k is not None:
            return self._forward_compiled(
                k, x, kernel, recurrent_kernel, bias, h0, masks, recurrent_mask, go_backwards,
                return_sequences, record,
            )  # fmt: skip
        rm = None if recurrent_mask is None else np.asarray(recurrent_mask, dt).T
        xt = _time_major(x, go_backwards, dt)  # (T, N, D)
        half = _half_columns(3 * u, slice(0, u2), dt)  # z, r get tanh(z / 2)

        # 1. all input projections in one GEMM: XW[:, t] = (x_t W + b0)^T  # (3U, T, N)
        b0, b1h = None, None
        if bias is not None and reset_after:
            b0 = bias[0] * half
            b0[:u2] += bias[1, :u2] * 0.5  # z and r add both biases: fold b1 in here
            b1h = bias[1, u2:, None]  # b1_h sits inside r * (...): it stays in the loop
        elif bias is not None:
            b0 = bias * half
        XW = _input_projection(xt, kernel * half, b0)
        RhT = np.ascontiguousarray((recurrent_kernel * half).T)  # (3U, U)
        H = np.empty((t_len + 1, u, n), dt)  # H[t+1] = h_t^T
        H[0] = _state0(op, "h0", h0, n, u, dt)
        Hs = H if rm is None else np.empty((t_len, u, n), dt)  # the h that meets U
        tmp = np.empty((u, n), dt)
        gates = np.empty((3 * u, n), dt)  # the step's z, r, hh
        zr, hh = gates[:u2], gates[u2:]
        z, r = zr[:u], zr[u:]
        if reset_after:
            rec = np.empty((3 * u, n), dt)  # (h_{t-1} U)^T (+ b1_h on the h block)
        else:
            RH = np.empty((t_len, u, n), dt)  # r * h_{t-1}, the input of U_h (kept for dU)
            UzrT, UhT = RhT[:u2], RhT[u2:]  # contiguous row blocks: (2U, U), (U, U)
            S2 = np.empty((u2, n), dt)
        acc = _accel.kernels()  # optional compiled elementwise steps, or None
        if record:  # the chain-rule factors of step 3 (see backward), and z
            Zs = np.empty((t_len, u, n), dt)
            Q1 = np.empty((t_len, 2, u, n), dt)  # [Ph, Pz]: dh -> [da_h, dz_z]
            Q2 = np.empty((t_len, 2, u, n), dt)  # [Pr, r]: da_h (or d(r h)) -> [dz_r, ...]

        # 2. the recurrence
        with _loop_blas():
            for t in range(t_len):
                if rm is not None:
                    np.multiply(H[t], rm, out=Hs[t])
                if reset_after:
                    np.matmul(RhT, Hs[t], out=rec)  # (3U, N)
                    np.add(rec[:u2], XW[:u2, t], out=zr)
                    np.tanh(zr, out=zr)
                    rh = rec[u2:]
                    if acc is not None:  # the same arithmetic, compiled (_accel)
                        acc.gru_gates(zr, rh, tmp if b1h is None else b1h, b1h is not None)
                    else:
                        _sigmoid_from_tanh_(zr)  # z, r = sigma(.)
                        if b1h is not None:
                            rh += b1h
                    np.multiply(r, rh, out=tmp)  # r * (h_{t-1} U_h + b1_h)
                else:
                    np.matmul(UzrT, Hs[t], out=S2)
                    np.add(S2, XW[:u2, t], out=zr)
                    np.tanh(zr, out=zr)
                    _sigmoid_from_tanh_(zr)
                    rh = RH[t]
                    np.multiply(r, Hs[t], out=rh)  # r * h_{t-1}
                    np.matmul(UhT, rh, out=tmp)  # (r * h_{t-1}) U_h
                np.add(XW[u2:, t], tmp, out=hh)
                np.tanh(hh, out=hh)
                if acc is not None:  # the same arithmetic, compiled (_accel)
                    acc.gru_state(z, r, rh if reset_after else Hs[t], hh, H[t], H[t + 1], tmp,
                                  *(Q1[t] if record else (tmp, tmp)),
                                  *(Q2[t] if record else (tmp, tmp)),
                                  Zs[t] if record else tmp, record)  # fmt: skip
                else:
                    np.subtract(H[t], hh, out=tmp)  # h_{t-1} - hh
                    if record:  # 3. the factors of backward's chain rule, while in cache
                        ph, pz = Q1[t]
                        pr, rr = Q2[t]
                        np.subtract(1, z, out=ph)  # 1 - z
                        np.multiply(tmp, z, out=pz)
                        pz *= ph  # dz_z = dh * (h_{t-1} - hh) z (1 - z)
                        np.multiply(hh, hh, out=rr)
                        np.subtract(1, rr, out=rr)
                        ph *= rr  # da_h = dh * (1 - z)(1 - hh^2)
                        np.subtract(1, r, out=pr)
                        pr *= r
                        pr *= rh if reset_after else Hs[t]  # dz_r = d(r .) * (.) r (1 - r)
                        rr[...] = r
                        Zs[t] = z
                    tmp *= z
                    np.add(hh, tmp, out=H[t + 1])  # h_t = hh + z (h_{t-1} - hh)
                masks.keep_state(H, t)
                if t % _FLUSH_EVERY == 0:
                    _flush_tiny_(H[t + 1], tmp)

        if record:
            self.saved = (xt, kernel, recurrent_kernel, Zs, Q1, Q2, Hs, rm, masks)
            if not reset_after:
                self.saved += (RH,)
            self.opts = (reset_after, go_backwards, return_sequences, x.dtype)
        return _outputs(H, masks, return_sequences), H[-1].T.copy()

    def _forward_compiled(
        self, k, x, kernel, recurrent_kernel, bias, h0, masks, recurrent_mask, go_backwards,
        return_sequences, record,
    ):  # fmt: skip
        """reset_after=True on the compiled loops (kernels/recurrent.py), one call per chunk
        of the batch on ember's chunk runner, as LSTMSequence._forward_compiled."""
        n, t_len, d = x.shape
        u = recurrent_kernel.shape[0]
        dt = kernel.dtype
        half = _half_columns(3 * u, slice(0, 2 * u), dt)  # z, r get tanh(z / 2)
        perm = _blocks(u, _GRU_X_ORDER)  # the input side in the order h, z, r
        b0, b1h = np.zeros(3 * u, dt), np.zeros(u, dt)
        if bias is not None:
            b0 = bias[0] * half
            b0[: 2 * u] += bias[1, : 2 * u] * 0.5  # z and r add both biases
            b1h = np.ascontiguousarray(bias[1, 2 * u :])  # inside r * (...): stays apart
        b0 = np.ascontiguousarray(b0[perm])
        W = np.ascontiguousarray((kernel * half)[:, perm])  # (D, 3U)
        Rh = np.ascontiguousarray(recurrent_kernel * half)  # (U, 3U)
        h0 = _state0("gru", "h0", h0, n, u, dt).T  # (N, U) view
        keep, shown, rm = _compiled_masks(masks, recurrent_mask, n, u, dt)
        y = np.empty((n, t_len, u) if return_sequences else (n, u), dt)
        h_out = np.empty((n, u), dt)
        bounds = _chunks(n)
        saved = [None] * (len(bounds) - 1)

        def work(i):
            n0, n1 = bounds[i], bounds[i + 1]
            X, kc, rmc, Hs = _chunk_inputs(x, n0, n1, go_backwards, dt, keep, rm, u)
            Z = np.empty((t_len, n1 - n0, 5 * u if record else 3 * u), dt)
            H = np.empty((t_len + 1, n1 - n0, u), dt)
            H[0] = h0[n0:n1]
            S = np.empty((n1 - n0, 3 * u), dt)
            k.gru_forward(X, W, b0, b1h, Rh, Z, H, S, record, kc, rmc, Hs)
            y[n0:n1] = _chunk_outputs(H, shown, n0, n1, return_sequences)
            h_out[n0:n1] = H[-1]
            if record:
                saved[i] = (X, Z, H if rm is None else Hs, rmc)

        _run_chunks(work, len(bounds) - 1)
        if record:
            self.saved = ("compiled", k, bounds, saved, kernel, recurrent_kernel, perm, shown)
            self.opts = (go_backwards, return_sequences, x.dtype)
        return y, h_out

    def _backward_compiled(self, gy, gh):
        _, k, bounds, saved, kernel, recurrent_kernel, perm, shown = self.saved
        go_backwards, return_sequences, x_dtype = self.opts
        need = self.needs_input_grad
        dt = kernel.dtype
        u = recurrent_kernel.shape[0]
        RT = np.ascontiguousarray(recurrent_kernel.T)  # (3U, U)
        Wx = kernel[:, perm]  # (D, 3U), order h, z, r
        n, t_len = gh.shape[0], saved[0][1].shape[0]
        d = kernel.shape[0]
        gy = np.asarray(gy, dtype=dt)
        dx = np.empty((n, t_len, d), x_dtype) if need[0] else None
        dh0 = np.empty((n, u), dt)
        parts = [None] * len(saved)

        def work(i):
            n0, n1 = bounds[i], bounds[i + 1]
            X, Z, Hs, rmc = saved[i]
            dh, gyc = _chunk_output_grads(gy, gh, shown, n0, n1, dt, return_sequences)
            k.gru_backward(Z, RT, dh, gyc, rmc)
            dZ = Z.reshape(t_len * (n1 - n0), 5 * u)
            dZx, dZh = dZ[:, : 3 * u], dZ[:, u : 4 * u]  # input side (h, z, r), h side (z, r, h)
            if need[0]:
                dxc = (dZx @ Wx.T).reshape(t_len, n1 - n0, d).transpose(1, 0, 2)
                dx[n0:n1] = dxc[:, ::-1] if go_backwards else dxc
            parts[i] = (
                X.T @ dZx if need[1] else None,  # sum_t x_t^T dz_t
                Hs[:t_len].reshape(-1, u).T @ dZh if need[2] else None,  # sum_t h_{t-1}^T dz_t
                dZx.sum(axis=0) if _need(self, 3) else None,
                dZh.sum(axis=0) if _need(self, 3) else None,
            )
            dh0[n0:n1] = dh

        _run_chunks(work, len(saved))
        dw, du, db0, db1 = (_sum_chunks(parts, j) for j in range(4))
        dw, db0 = _unpermute(dw, perm), _unpermute(db0, perm)
        db = None if db0 is None else np.stack([db0, db1])
        return dx, dw, du, db, dh0 if _need(self, 4) else None

    def backward(self, gy, gh):
        if isinstance(self.saved[0], str):  # ("compiled", ...)
            return self._backward_compiled(gy, gh)
        xt, kernel, recurrent_kernel, Zc, Q1, Q2, Hs, rm, masks = self.saved[:9]
        reset_after, go_backwards, return_sequences, x_dtype = self.opts
        t_len, n, d = xt.shape
        u = recurrent_kernel.shape[0]
        u2 = 2 * u
        dt = kernel.dtype

        # The chain rule through one step, with dh = dL/dh_t:
        #      dz_z = dh * (h_{t-1} - hh) * z (1 - z)        (h_t = z h_{t-1} + (1 - z) hh)
        #      da_h = dh * (1 - z) * (1 - hh^2)              (a_h: the argument of tanh)
        #    reset_after=True  (a_h = x W_h + b0_h + r * rh,  rh = h_{t-1} U_h + b1_h):
        #      dz_r = da_h * rh * r (1 - r),   d(rh) = da_h * r
        #      dh_{t-1} = dh * z + [dz_z, dz_r, d(rh)] U^T
        #    reset_after=False (a_h = x W_h + (r h_{t-1}) U_h + b_h):
        #      d(r h_{t-1}) = da_h U_h^T,   dz_r = d(r h_{t-1}) * h_{t-1} * r (1 - r)
        #      dh_{t-1} = dh * z + d(r h_{t-1}) * r + [dz_z, dz_r] U_zr^T
        # Every factor right of dh / da_h was stored by forward (Q1, Q2).
        # Zc = z: dh -> dh_{t-1} directly
        if masks.m is not None:
            # at masked steps h was copied: dz = 0 there, and dh passes straight through
            mf = masks.float_mask(dt)
            Q1 = Q1 * mf[:, None]
            Zc = Zc * mf + (1 - mf)

        dh, gys = _output_grads(gy, gh, masks, return_sequences, dt)  # dL/dh_t (U, N)
        direct = np.empty((u, n), dt)
        k = 4 if reset_after else 3
        Dk = np.empty((k * u, t_len, n), dt)  # every step's [a_h, z, r, (rh)] (see _finish)
        D = Dk.transpose(1, 0, 2)  # D[t]: the step's (kU, N) slice
        D4 = Dk.reshape(k, u, t_len, n).transpose(2, 0, 1, 3)  # its gate blocks
        need = self.needs_input_grad

        # 4. backwards through time
        with _loop_blas():
            if reset_after:
                for t in range(t_len - 1, -1, -1):
                    if gys is not None:
                        dh += gys[t]
                    np.multiply(Q1[t], dh, out=D4[t, :2])  # da_h, dz_z
                    np.multiply(Q2[t], D4[t, 0], out=D4[t, 2:])  # dz_r, d(rh)
                    np.multiply(dh, Zc[t], out=direct)
                    np.matmul(recurrent_kernel, D[t, u:], out=dh)  # [dz_z, dz_r, d(rh)] U^T
                    if rm is not None:
                        dh *= rm
                    dh += direct
                    if t % _FLUSH_EVERY == 0:
                        _flush_tiny_(dh, direct)
            else:
                Uzr = np.ascontiguousarray(recurrent_kernel[:, :u2])  # (U, 2U)
                Uh = np.ascontiguousarray(recurrent_kernel[:, u2:])  # (U, U)
                drh = np.empty((u, n), dt)
                dzr_u = np.empty((u, n), dt)
                for t in range(t_len - 1, -1, -1):
                    if gys is not None:
                        dh += gys[t]
                    np.multiply(Q1[t], dh, out=D4[t, :2])  # da_h, dz_z
                    np.matmul(Uh, D[t, :u], out=drh)  # d(r h_{t-1})
                    np.multiply(drh, Q2[t, 0], out=D[t, u2:])  # dz_r
                    np.multiply(dh, Zc[t], out=direct)
                    np.matmul(Uzr, D[t, u:], out=dzr_u)
                    np.multiply(drh, Q2[t, 1], out=dh)
                    dh += dzr_u  # d(the h that met U)
                    if rm is not None:
                        dh *= rm
                    dh += direct
                    if t % _FLUSH_EVERY == 0:
                        _flush_tiny_(dh, direct)

        # 5. single GEMMs over all steps; the input side back to Keras's gate order
        perm = _blocks(u, _GRU_X_ORDER)
        h_rows = slice(u, None) if reset_after else False
        dx, dw, du, dbx, D2 = _finish(
            self, Dk, xt, kernel[:, perm], Hs[:t_len], go_backwards, x_dtype,
            x_rows=slice(0, 3 * u), h_rows=h_rows,
        )  # fmt: skip
        dw, db = _unpermute(dw, perm), _unpermute(dbx, perm)
        if reset_after and db is not None:
            db = np.stack([db, D2[u:].sum(axis=1)])
        if not reset_after and need[2]:
            RH = self.saved[9]
            Hk = Hs[:t_len].transpose(1, 0, 2).reshape(u, t_len * n)  # (U, T*N) copies
            RHk = RH.transpose(1, 0, 2).reshape(u, t_len * n)
            du = np.empty_like(recurrent_kernel)
            du[:, :u2] = Hk @ D2[u:].T  # z, r: sum_t h_{t-1}^T dz_t
            du[:, u2:] = RHk @ D2[:u].T  # h: sum_t (r h_{t-1})^T da_h
        return dx, dw, du, db, dh.T if _need(self, 4) else None


def gru(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    reset_after: bool = True,
    go_backwards: bool = False,
    mask=None,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    recurrent_mask=None,
):
    """GRU over x (N, T, D) with Keras's weights (gates z, r, h): h_t = z h_{t-1} + (1 - z) hh;
    returns (outputs (N, T, U) or the last output (N, U), h_T)."""
    return GRUSequence.apply(
        x, kernel, recurrent_kernel, bias, h0,
        reset_after=reset_after, go_backwards=go_backwards, mask=_raw(mask),
        return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask,
        recurrent_mask=_raw(recurrent_mask),
        record=_records(x, kernel, recurrent_kernel, bias, h0),
    )  # fmt: skip
