"""Recurrent layers over a whole sequence: SimpleRNN, LSTM and GRU as fused ops.

Each op is ONE autograd node for the whole sequence, with backpropagation through time (BPTT)
written out by hand. This is the place in ember to read how BPTT works. Every op follows the
same plan:

forward
  1. The input projections of ALL time steps in one GEMM:  ``G = X W + b``, shape (T, N, kU).
     Only ``h_{t-1} U`` depends on the previous step, so only that product stays in the loop.
  2. A Python loop over time that adds ``h_{t-1} U`` into the step's slice of G and applies the
     gate nonlinearities IN PLACE (so G ends up holding the activated gates, which backward
     needs), writing the new state into preallocated buffers H (T+1, N, U) (and C for LSTM).

backward
  3. Every factor of the chain rule that does not depend on the incoming gradient (sigma',
     tanh', the other gate's value, ...) is precomputed for all steps at once, outside the
     loop, in a few large vectorized operations.
  4. The loop runs backwards in time, carrying ``dh`` (and ``dc``) from step t to step t-1:
     ``dz_t`` (the gradient of the step's gate pre-activations) is stored for every step and
     ``dh_{t-1} = dz_t U^T + (direct paths)``.
  5. After the loop, the weight gradients are sums over steps, done as single GEMMs over the
     stored ``dz``:  ``dW = X^T dZ``,  ``dU = sum_t h_{t-1}^T dz_t = H_prev^T dZ``,
     ``db = sum dZ``,  ``dX = dZ W^T``.

Conventions (Keras's, see DESIGN §3): input is batch-major (N, T, D); the kernel is (D, kU),
the recurrent kernel (U, kU); LSTM gates are ordered i, f, c, o and GRU gates z, r, h. Inside
the loop the arrays are time-major (T, N, .) so that each step's slice is contiguous.

Masks (N, T) of booleans (from ``Embedding(mask_zero=True)``): at a masked step the state is
carried over unchanged, and the output repeats the previous output (zeros before the first
unmasked step), as Keras does; with ``zero_output_for_mask`` the output there is zero instead.
With ``go_backwards`` the sequence (and its mask) is read from the last step to the first and
the output sequence comes out in that processing order, as Keras returns it.

``recurrent_mask`` (N, U) is recurrent dropout: the state entering the ``h U`` product is
multiplied by it (the same mask at every step), as in Keras's cells.
"""

from __future__ import annotations

import numpy as np

from ember.autograd.function import Function
from ember.autograd.tensor import Tensor
from ember.errors import EmberValueError, ShapeError

# ------------------------------------------------------------------------------------ helpers


def _sigmoid_(a: np.ndarray) -> None:
    """a <- 1 / (1 + e^-a) in place (four ufunc passes, no temporaries).

    exp(-a) overflows to inf for very negative a; 1/inf = 0 is the right limit (the caller
    silences the overflow warning)."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)


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
    """An initial state as an (N, U) array: zeros when None, broadcast from (U,) or (1, U)."""
    if s is None:
        return np.zeros((n, u), dtype)
    try:
        return np.broadcast_to(np.asarray(s, dtype=dtype), (n, u))
    except ValueError:
        raise ShapeError(
            f"{op}: {name} must have shape (batch, units) = ({n}, {u}), received {_shape_of(s)}"
        ) from None


def _time_major(x: np.ndarray, go_backwards: bool, dtype) -> np.ndarray:
    """(N, T, D) -> a contiguous (T, N, D) copy in processing order (reversed for go_backwards)."""
    xt = x.transpose(1, 0, 2)
    if go_backwards:
        xt = xt[::-1]
    return np.ascontiguousarray(xt, dtype=dtype)


def _batch_major_grad(dx_tm: np.ndarray, go_backwards: bool, dtype) -> np.ndarray:
    """Gradient (T, N, D) in processing order -> (N, T, D) in the input's order."""
    dx = dx_tm.transpose(1, 0, 2)
    if go_backwards:
        dx = dx[:, ::-1]
    return dx.astype(dtype, copy=False)


class _Masks:
    """The (T, N) step mask in processing order and what the loops need from it."""

    def __init__(self, op: str, mask, n: int, t: int, go_backwards: bool, zero_output: bool):
        self.m = None  # (T, N) bool, or None when no step is masked
        self.out_scale = None  # (T, N, 1) 0/1 factor of each step's output, or None
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
        # per step: does any row of the batch keep its state? (skip the copy where none does)
        self.any_masked = (~self.m).any(axis=1).tolist()
        # Keras: a masked step outputs the previous output, which is zero before the first
        # unmasked step; with zero_output_for_mask it is zero at every masked step
        keep = self.m if zero_output else np.logical_or.accumulate(self.m, axis=0)
        if not keep.all():
            self.out_scale = keep[..., None]

    def float_mask(self, dtype) -> np.ndarray:
        return self.m[..., None].astype(dtype)  # (T, N, 1)


def _outputs(H: np.ndarray, masks: _Masks, return_sequences: bool) -> np.ndarray:
    """The op's first output from the state sequence H (T+1, N, U)."""
    if not return_sequences:
        last = H[-1] if masks.out_scale is None else H[-1] * masks.out_scale[-1]
        return np.array(last)  # a copy: the output must not alias the saved buffer
    seq = H[1:] if masks.out_scale is None else H[1:] * masks.out_scale
    return np.ascontiguousarray(seq.transpose(1, 0, 2))  # (N, T, U)


def _output_grads(gy: np.ndarray, masks: _Masks, return_sequences: bool, dtype):
    """(dh at the last step, dY per step (T, N, U) time-major or None)."""
    if not return_sequences:
        g = gy if masks.out_scale is None else gy * masks.out_scale[-1]
        return g.astype(dtype, copy=False), None
    gys = gy.transpose(1, 0, 2)  # (T, N, U) view
    if masks.out_scale is not None:
        gys = gys * masks.out_scale
    return None, gys


def _raw(a):
    return a.data if isinstance(a, Tensor) else a


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
        rm = None if recurrent_mask is None else np.asarray(recurrent_mask, dt)
        xt = _time_major(x, go_backwards, dt)  # (T, N, D)

        # 1. all input projections in one GEMM: A[t] = x_t W + b        # (T, N, U)
        A = np.matmul(xt.reshape(t_len * n, d), kernel).reshape(t_len, n, u)
        if bias is not None:
            A += bias
        H = np.empty((t_len + 1, n, u), dt)  # H[t+1] = h_t; H[0] = h0
        H[0] = _state0(op, "h0", h0, n, u, dt)
        Hs = H if rm is None else np.empty((t_len, n, u), dt)  # the h that meets U
        S = np.empty((n, u), dt)  # scratch for h_{t-1} U

        # 2. the recurrence
        with np.errstate(over="ignore"):
            for t in range(t_len):
                if rm is not None:
                    np.multiply(H[t], rm, out=Hs[t])
                np.matmul(Hs[t], recurrent_kernel, out=S)  # (N, U)
                a = A[t]
                a += S  # a_t = x_t W + b + h_{t-1} U
                h = H[t + 1]
                if activation == "tanh":
                    np.tanh(a, out=h)
                elif activation == "relu":
                    np.maximum(a, 0, out=h)
                elif activation == "sigmoid":
                    _sigmoid_(a)
                    h[...] = a
                else:
                    h[...] = a
                if masks.m is not None and masks.any_masked[t]:  # masked rows keep h_{t-1}
                    np.copyto(h, H[t], where=~masks.m[t][:, None])

        self.saved = (xt, kernel, recurrent_kernel, H, Hs, rm, masks)
        self.opts = (activation, go_backwards, return_sequences, x.dtype, bias is not None)
        return _outputs(H, masks, return_sequences), H[-1].copy()

    def backward(self, gy, gh):
        xt, kernel, recurrent_kernel, H, Hs, rm, masks = self.saved
        activation, go_backwards, return_sequences, x_dtype, has_bias = self.opts
        t_len, n, d = xt.shape
        u = recurrent_kernel.shape[0]
        dt = kernel.dtype

        # 3. act'(a_t) for every step, from the activations (h_t = act(a_t)),   # (T, N, U)
        #    zeroed at masked steps (no gradient reaches a state that was not used)
        Hn = H[1:]
        if activation == "tanh":
            P = 1 - Hn * Hn
        elif activation == "relu":
            P = (Hn > 0).astype(dt)
        elif activation == "sigmoid":
            P = Hn * (1 - Hn)
        else:
            P = np.ones_like(Hn)
        carry = None
        if masks.m is not None:
            mf = masks.float_mask(dt)
            P *= mf
            carry = 1 - mf  # masked rows pass dh straight to the previous step

        dh_last, gys = _output_grads(gy, masks, return_sequences, dt)
        dh = np.array(gh, dtype=dt)  # dL/dh_t, carried backwards; gh is never written
        if dh_last is not None:
            dh += dh_last
        dA = np.empty((t_len, n, u), dt)  # dL/da_t for every step
        UT = recurrent_kernel.T
        tmp = np.empty((n, u), dt)

        # 4. backwards through time
        for t in range(t_len - 1, -1, -1):
            if gys is not None:
                dh += gys[t]  # the output y_t = h_t also receives a gradient
            da = dA[t]
            np.multiply(dh, P[t], out=da)  # da_t = dh_t * act'(a_t)
            masked = carry is not None and masks.any_masked[t]
            if masked:
                np.multiply(dh, carry[t], out=tmp)
            np.matmul(da, UT, out=dh)  # dh_{t-1} = da_t U^T
            if rm is not None:
                dh *= rm
            if masked:
                dh += tmp

        # 5. the weight gradients as single GEMMs over all steps
        dA2 = dA.reshape(t_len * n, u)
        dx, dw, du, db = _finish(
            self, dA2, dA2, xt, kernel, Hs[:t_len].reshape(t_len * n, u), go_backwards, x_dtype
        )
        return dx, dw, du, db if has_bias else None, dh if _need(self, 4) else None


def _finish(fn, dZx, dZh, xt, kernel, Hprev, go_backwards, x_dtype):
    """dX, dW, dU and the two bias sums from the per-step pre-activation gradients.

    dZx (T*N, kU) is the gradient of the input-side pre-activations x_t W + b and dZh
    (T*N, kU) that of the recurrent-side ones h_{t-1} U (the same array except in a GRU with
    reset_after; None: the caller computes dU); Hprev (T*N, U) holds the h that met U."""
    t_len, n, d = xt.shape
    need = fn.needs_input_grad
    dx = dw = du = None
    if need[0]:
        dx = _batch_major_grad((dZx @ kernel.T).reshape(t_len, n, d), go_backwards, x_dtype)
    if need[1]:
        dw = xt.reshape(t_len * n, d).T @ dZx  # sum_t x_t^T dz_t
    if need[2] and dZh is not None:
        du = Hprev.T @ dZh  # sum_t h_{t-1}^T dz_t
    need_b = len(need) > 3 and need[3]
    dbx = dZx.sum(axis=0) if need_b else None
    return dx, dw, du, dbx


def _need(fn, k: int) -> bool:
    return len(fn.needs_input_grad) > k and fn.needs_input_grad[k]


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
    )  # fmt: skip


# ------------------------------------------------------------------------------------ LSTM


def _blocks(u: int, order) -> np.ndarray:
    """Column indices that gather gate blocks of width u in the given order."""
    return np.concatenate([np.arange(b * u, (b + 1) * u) for b in order])


# Keras stores the LSTM gates as i, f, c, o. Inside the op they are reordered to o, i, f, c:
# the three sigmoid gates (o, i, f) are then one contiguous slice (one in-place sigmoid per
# step), and the three gates whose gradient is a product with dc (i, f, c) are another (one
# broadcast multiply per step in backward).
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
    ):
        op = "lstm"
        n, t_len, d, u = _check(op, x, kernel, recurrent_kernel, 4)
        _check_bias(op, bias, (4 * u,))
        dt = kernel.dtype
        masks = _Masks(op, mask, n, t_len, go_backwards, zero_output_for_mask)
        rm = None if recurrent_mask is None else np.asarray(recurrent_mask, dt)
        xt = _time_major(x, go_backwards, dt)  # (T, N, D)
        perm = _blocks(u, _LSTM_ORDER)
        W = kernel[:, perm]  # (D, 4U), gates o, i, f, c
        R = np.ascontiguousarray(recurrent_kernel[:, perm])  # (U, 4U)

        # 1. all input projections in one GEMM: G[t] = x_t W + b        # (T, N, 4U)
        G = np.matmul(xt.reshape(t_len * n, d), W).reshape(t_len, n, 4 * u)
        if bias is not None:
            G += bias[perm]
        H = np.empty((t_len + 1, n, u), dt)  # H[t+1] = h_t
        C = np.empty((t_len + 1, n, u), dt)  # C[t+1] = c_t
        TC = np.empty((t_len, n, u), dt)  # tanh(c_t), needed twice in backward
        H[0] = _state0(op, "h0", h0, n, u, dt)
        C[0] = _state0(op, "c0", c0, n, u, dt)
        Hs = H if rm is None else np.empty((t_len, n, u), dt)  # the h that meets U
        S = np.empty((n, 4 * u), dt)  # scratch for h_{t-1} U
        ig = S[:, :u]  # scratch for i * g (S is free again by then)

        # 2. the recurrence; G[t] is turned into the activated gates in place
        with np.errstate(over="ignore"):
            for t in range(t_len):
                if rm is not None:
                    np.multiply(H[t], rm, out=Hs[t])
                np.matmul(Hs[t], R, out=S)  # (N, 4U)
                z = G[t]
                z += S  # z_t = x_t W + b + h_{t-1} U
                _sigmoid_(z[:, : 3 * u])  # o, i, f
                np.tanh(z[:, 3 * u :], out=z[:, 3 * u :])  # g (the candidate, Keras's "c")
                o, i, f, g = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
                c = C[t + 1]
                np.multiply(f, C[t], out=c)
                np.multiply(i, g, out=ig)
                c += ig  # c_t = f c_{t-1} + i g
                np.tanh(c, out=TC[t])
                np.multiply(o, TC[t], out=H[t + 1])  # h_t = o tanh(c_t)
                if masks.m is not None and masks.any_masked[t]:  # masked rows keep h, c
                    keep = ~masks.m[t][:, None]
                    np.copyto(H[t + 1], H[t], where=keep)
                    np.copyto(C[t + 1], C[t], where=keep)

        self.saved = (xt, W, R, G, H, C, TC, Hs, rm, masks, perm)
        self.opts = (go_backwards, return_sequences, x.dtype, bias is not None)
        return _outputs(H, masks, return_sequences), H[-1].copy(), C[-1].copy()

    def backward(self, gy, gh, gc):
        xt, W, R, G, H, C, TC, Hs, rm, masks, perm = self.saved
        go_backwards, return_sequences, x_dtype, has_bias = self.opts
        t_len, n, d = xt.shape
        u = R.shape[0]
        dt = W.dtype
        o, i, f, g = G[..., :u], G[..., u : 2 * u], G[..., 2 * u : 3 * u], G[..., 3 * u :]

        # 3. The chain rule through one step, with dh = dL/dh_t and dc = dL/dc_t:
        #      dc  += dh * o * (1 - tanh(c_t)^2)            (h_t = o tanh(c_t))
        #      dz_o = dh * tanh(c_t) * o (1 - o)             (sigma' = sigma (1 - sigma))
        #      dz_i = dc * g * i (1 - i)
        #      dz_f = dc * c_{t-1} * f (1 - f)
        #      dz_g = dc * i * (1 - g^2)                      (tanh' = 1 - tanh^2)
        #      dc_{t-1} = dc * f,   dh_{t-1} = dz U^T
        #    Everything right of dh / dc is known from the forward pass: compute it for all
        #    steps at once here (K and P), so the loop only multiplies.
        P = np.empty_like(G)  # (T, N, 4U), gates o, i, f, c
        sig = G[..., : 3 * u]
        np.subtract(1, sig, out=P[..., : 3 * u])
        P[..., : 3 * u] *= sig  # sigma'(z) = s (1 - s) for o, i, f
        P[..., :u] *= TC
        P[..., u : 2 * u] *= g
        P[..., 2 * u : 3 * u] *= C[:-1]
        np.multiply(g, g, out=P[..., 3 * u :])
        np.subtract(1, P[..., 3 * u :], out=P[..., 3 * u :])
        P[..., 3 * u :] *= i
        K = TC * TC  # (T, N, U)
        np.subtract(1, K, out=K)
        K *= o  # dh_t -> dc_t through h_t = o tanh(c_t)
        F = f
        carry = None
        if masks.m is not None:
            # at masked steps the state was copied: dz = 0 there, and dh, dc pass through
            mf = masks.float_mask(dt)
            P *= mf
            K *= mf
            carry = 1 - mf
            F = f * mf + carry

        dh_last, gys = _output_grads(gy, masks, return_sequences, dt)
        dh = np.array(gh, dtype=dt)  # dL/dh_t (gh itself is never written)
        dc = np.array(gc, dtype=dt)  # dL/dc_t
        if dh_last is not None:
            dh += dh_last
        dZ = np.empty_like(G)  # dL/dz_t for every step                       # (T, N, 4U)
        Z4 = dZ.reshape(t_len, n, 4, u)  # gate-block views for the broadcast multiply
        P4 = P.reshape(t_len, n, 4, u)
        RT = R.T
        tmp = np.empty((n, u), dt)
        dc3 = dc[:, None, :]  # (N, 1, U) view of dc

        # 4. backwards through time
        for t in range(t_len - 1, -1, -1):
            if gys is not None:
                dh += gys[t]  # the output y_t = h_t also receives a gradient
            np.multiply(dh, K[t], out=tmp)
            dc += tmp  # dc_t = (from c_{t+1}) + dh_t o (1 - tanh^2 c_t)
            np.multiply(dh, P[t, :, :u], out=dZ[t, :, :u])  # dz_o
            np.multiply(P4[t, :, 1:], dc3, out=Z4[t, :, 1:])  # dz_i, dz_f, dz_g
            dc *= F[t]  # dc_{t-1} = dc_t f_t
            masked = carry is not None and masks.any_masked[t]
            if masked:
                np.multiply(dh, carry[t], out=tmp)
            np.matmul(dZ[t], RT, out=dh)  # dh_{t-1} = dz_t U^T
            if rm is not None:
                dh *= rm
            if masked:
                dh += tmp

        # 5. single GEMMs over all steps, then the gates back to Keras's order
        dZ2 = dZ.reshape(t_len * n, 4 * u)
        dx, dw, du, db = _finish(
            self, dZ2, dZ2, xt, W, Hs[:t_len].reshape(t_len * n, u), go_backwards, x_dtype
        )
        dw, du, db = (_unpermute(a, perm) for a in (dw, du, db))
        return (
            dx, dw, du, db if has_bias else None,
            dh if _need(self, 4) else None, dc if _need(self, 5) else None,
        )  # fmt: skip


def _unpermute(a, perm):
    """Scatter gate columns computed in the op's internal order back to Keras's order."""
    if a is None:
        return None
    out = np.empty_like(a)
    out[..., perm] = a
    return out


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
    )  # fmt: skip


# ------------------------------------------------------------------------------------ GRU

# In backward the GRU's gradients live in one (T, N, 4U) buffer laid out as
# [a_h (input side), z, r, rh (recurrent side)]: its first 3U columns are the gradient of the
# input projection x W (gates in the order h, z, r) and its last 3U columns that of the
# recurrent projection h U (gates z, r, h: Keras's order), so both GEMMs read a plain slice.
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
    ):
        op = "gru"
        n, t_len, d, u = _check(op, x, kernel, recurrent_kernel, 3)
        _check_bias(op, bias, (2, 3 * u) if reset_after else (3 * u,))
        dt = kernel.dtype
        masks = _Masks(op, mask, n, t_len, go_backwards, zero_output_for_mask)
        rm = None if recurrent_mask is None else np.asarray(recurrent_mask, dt)
        xt = _time_major(x, go_backwards, dt)  # (T, N, D)
        u2 = 2 * u

        # 1. all input projections in one GEMM: G[t] = x_t W + b0       # (T, N, 3U)
        G = np.matmul(xt.reshape(t_len * n, d), kernel).reshape(t_len, n, 3 * u)
        b1h = None
        if bias is not None and reset_after:
            G += bias[0]
            G[..., :u2] += bias[1, :u2]  # z and r add both biases: fold b1 in here
            b1h = bias[1, u2:]  # b1_h sits inside r * (...): it stays in the loop
        elif bias is not None:
            G += bias
        H = np.empty((t_len + 1, n, u), dt)  # H[t+1] = h_t
        H[0] = _state0(op, "h0", h0, n, u, dt)
        Hs = H if rm is None else np.empty((t_len, n, u), dt)  # the h that meets U
        tmp = np.empty((n, u), dt)
        if reset_after:
            RH = np.empty((t_len, n, 3 * u), dt)  # h_{t-1} U (+ b1_h on the h block)
        else:
            RH = np.empty((t_len, n, u), dt)  # r * h_{t-1}, the input of U_h
            Uzr = np.ascontiguousarray(recurrent_kernel[:, :u2])  # (U, 2U)
            Uh = np.ascontiguousarray(recurrent_kernel[:, u2:])  # (U, U)
            S2 = np.empty((n, u2), dt)

        # 2. the recurrence; G[t] becomes [z, r, hh] in place
        with np.errstate(over="ignore"):
            for t in range(t_len):
                if rm is not None:
                    np.multiply(H[t], rm, out=Hs[t])
                zr, hh = G[t, :, :u2], G[t, :, u2:]
                z, r = zr[:, :u], zr[:, u:]
                if reset_after:
                    rec = RH[t]
                    np.matmul(Hs[t], recurrent_kernel, out=rec)  # (N, 3U)
                    zr += rec[:, :u2]
                    _sigmoid_(zr)
                    rh = rec[:, u2:]
                    if b1h is not None:
                        rh += b1h
                    np.multiply(r, rh, out=tmp)  # r * (h_{t-1} U_h + b1_h)
                else:
                    np.matmul(Hs[t], Uzr, out=S2)
                    zr += S2
                    _sigmoid_(zr)
                    np.multiply(r, Hs[t], out=RH[t])  # r * h_{t-1}
                    np.matmul(RH[t], Uh, out=tmp)  # (r * h_{t-1}) U_h
                hh += tmp
                np.tanh(hh, out=hh)
                np.subtract(H[t], hh, out=tmp)
                tmp *= z
                np.add(hh, tmp, out=H[t + 1])  # h_t = hh + z (h_{t-1} - hh)
                if masks.m is not None and masks.any_masked[t]:
                    np.copyto(H[t + 1], H[t], where=~masks.m[t][:, None])

        self.saved = (xt, kernel, recurrent_kernel, G, H, Hs, RH, rm, masks)
        self.opts = (reset_after, go_backwards, return_sequences, x.dtype, bias is not None)
        return _outputs(H, masks, return_sequences), H[-1].copy()

    def backward(self, gy, gh):
        xt, kernel, recurrent_kernel, G, H, Hs, RH, rm, masks = self.saved
        reset_after, go_backwards, return_sequences, x_dtype, has_bias = self.opts
        t_len, n, d = xt.shape
        u = recurrent_kernel.shape[0]
        u2 = 2 * u
        dt = kernel.dtype
        z, r, hh = G[..., :u], G[..., u:u2], G[..., u2:]

        # 3. The chain rule through one step, with dh = dL/dh_t:
        #      dz_z = dh * (h_{t-1} - hh) * z (1 - z)        (h_t = z h_{t-1} + (1 - z) hh)
        #      da_h = dh * (1 - z) * (1 - hh^2)              (a_h: the argument of tanh)
        #    reset_after=True  (a_h = x W_h + b0_h + r * rh,  rh = h_{t-1} U_h + b1_h):
        #      dz_r = da_h * rh * r (1 - r),   d(rh) = da_h * r
        #      dh_{t-1} = dh * z + [dz_z, dz_r, d(rh)] U^T
        #    reset_after=False (a_h = x W_h + (r h_{t-1}) U_h + b_h):
        #      d(r h_{t-1}) = da_h U_h^T,   dz_r = d(r h_{t-1}) * h_{t-1} * r (1 - r)
        #      dh_{t-1} = dh * z + d(r h_{t-1}) * r + [dz_z, dz_r] U_zr^T
        #    The factors right of dh / da_h are computed for all steps at once here.
        Pz = H[:-1] - hh
        Pz *= z
        Pz *= 1 - z  # dh -> dz_z
        Ph = hh * hh
        np.subtract(1, Ph, out=Ph)
        Ph *= 1 - z  # dh -> da_h
        r1r = r * (1 - r)
        Zc = z  # dh -> dh_{t-1} directly
        if masks.m is not None:
            # at masked steps h was copied: dz = 0 there, and dh passes straight through
            mf = masks.float_mask(dt)
            Pz *= mf
            Ph *= mf
            Zc = z * mf + (1 - mf)

        dh_last, gys = _output_grads(gy, masks, return_sequences, dt)
        dh = np.array(gh, dtype=dt)  # dL/dh_t (gh itself is never written)
        if dh_last is not None:
            dh += dh_last
        direct = np.empty((n, u), dt)
        need = self.needs_input_grad

        if reset_after:
            # 4-D views: per step, [a_h, z] = dh * [Ph, Pz] and [r, rh] = da_h * [Pr, r]
            Q1 = np.stack([Ph, Pz], axis=2)  # (T, N, 2, U)
            Q2 = np.stack([r1r * RH[..., u2:], r], axis=2)  # (T, N, 2, U)
            D = np.empty((t_len, n, 4 * u), dt)  # [a_h, z, r, rh]
            D4 = D.reshape(t_len, n, 4, u)
            RT = recurrent_kernel.T
            dh3 = dh[:, None, :]  # (N, 1, U) view of dh

            # 4. backwards through time
            for t in range(t_len - 1, -1, -1):
                if gys is not None:
                    dh += gys[t]
                np.multiply(dh3, Q1[t], out=D4[t, :, :2])  # da_h, dz_z
                np.multiply(D4[t, :, :1], Q2[t], out=D4[t, :, 2:])  # dz_r, d(rh)
                np.multiply(dh, Zc[t], out=direct)
                np.matmul(D[t, :, u:], RT, out=dh)  # [dz_z, dz_r, d(rh)] U^T
                if rm is not None:
                    dh *= rm
                dh += direct

            # 5. single GEMMs over all steps; the input side back to Keras's gate order
            D2 = D.reshape(t_len * n, 4 * u)
            dZx, dZh = D2[:, : 3 * u], D2[:, u:]
            perm = _blocks(u, _GRU_X_ORDER)
            dx, dw, du, dbx = _finish(
                self, dZx, dZh, xt, kernel[:, perm], Hs[:t_len].reshape(t_len * n, u),
                go_backwards, x_dtype,
            )  # fmt: skip
            dw = _unpermute(dw, perm)
            db = None
            if has_bias and need[3]:
                db = np.stack([_unpermute(dbx, perm), dZh.sum(axis=0)])
        else:
            Pr = Hs[:t_len] * r1r  # d(r h) -> dz_r
            D = np.empty((t_len, n, 3 * u), dt)  # [z, r, h], Keras's order
            Uzr_T = np.ascontiguousarray(recurrent_kernel[:, :u2]).T
            Uh_T = np.ascontiguousarray(recurrent_kernel[:, u2:]).T
            drh = np.empty((n, u), dt)
            dzr_u = np.empty((n, u), dt)

            # 4. backwards through time
            for t in range(t_len - 1, -1, -1):
                if gys is not None:
                    dh += gys[t]
                Dt = D[t]
                np.multiply(dh, Pz[t], out=Dt[:, :u])  # dz_z
                np.multiply(dh, Ph[t], out=Dt[:, u2:])  # da_h
                np.matmul(Dt[:, u2:], Uh_T, out=drh)  # d(r h_{t-1})
                np.multiply(drh, Pr[t], out=Dt[:, u:u2])  # dz_r
                np.multiply(dh, Zc[t], out=direct)
                np.matmul(Dt[:, :u2], Uzr_T, out=dzr_u)
                np.multiply(drh, r[t], out=dh)
                dh += dzr_u  # d(h that met U)
                if rm is not None:
                    dh *= rm
                dh += direct

            # 5. single GEMMs over all steps
            D2 = D.reshape(t_len * n, 3 * u)
            dx, dw, _, db = _finish(
                self, D2, None, xt, kernel, Hs[:t_len].reshape(t_len * n, u), go_backwards, x_dtype
            )
            du = None
            if need[2]:
                du = np.empty_like(recurrent_kernel)
                du[:, :u2] = Hs[:t_len].reshape(t_len * n, u).T @ D2[:, :u2]
                du[:, u2:] = RH.reshape(t_len * n, u).T @ D2[:, u2:]
            if not has_bias:
                db = None
        return dx, dw, du, db, dh if _need(self, 4) else None


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
    )  # fmt: skip
