"""Compiled LSTM and GRU loops (Numba): the whole time loop of a batch chunk in one call,
float32.

``ember.ops.recurrent.LSTMSequence`` (and ``GRUSequence`` with reset_after=True) hand each
chunk of examples (rows of the batch) to ``lstm_forward`` / ``lstm_backward`` (``gru_...``) on
ember's chunk runner: the chunks' recurrences are independent, so two cores run two halves of
the batch at once, and inside a call there is no Python at all between time steps. Per step:
one GEMM ``z_t += h_{t-1} U`` (OpenBLAS's ``cblas_sgemm``, called directly, on one BLAS
thread) and a few passes over the step's gates.

Layout (batch-major, each chunk's own arrays): ``Z`` (T, nb, G) holds ``x_t W`` of every step
in its first 4U columns (gates o, i, f, g; o, i, f halved: sigmoid(z) = (1 + tanh(z / 2)) / 2),
``H`` (T+1, nb, U) the states, ``c`` (nb, U) the cell. When recording, a step's z is replaced
IN PLACE by backward's chain-rule factors (G = 6U: [Po, Pi, Pf, Pg, K, F], see
``ember.ops.recurrent.LSTMSequence.backward``), and backward replaces those by the step's dz:
one buffer serves the projection, the factors and the gradients.

tanh is a rational function (odd, degree 13 over 6, coefficients fitted here by iterated
least squares, clamped at +-7.9053, beyond which tanh is within 2.6e-7 of +-1): max abs error
3.3e-7 against tanh, and with ``error_model="numpy"`` it vectorises (0.3 ns per element; Numba's
np.tanh calls libm per element, 10x slower). Values below tiny / eps are flushed to zero as
they are read (as the NumPy path does every few steps): subnormal numbers are 10-100x slower.

Measured (2 shared cores, load 1.4-2.8; batch 32, 100 steps, 64 -> 128 units): the LSTM
workload of benchmarks/run.py 24.8 -> 12.0 ms per training step, 8.1 -> 4.0-4.6 ms per
inference (PyTorch 12.0 / 3.4 ms), the GRU workload 21 -> 9.8 ms and 6.5 -> 4.6-5.0 ms (PyTorch
23 / 5.3 ms); the recurrent op alone (benchmarks/rnn_ops.py) 0.46x the NumPy path's time. Per
step and chunk of 8 rows the GEMM takes ~5 us, the gates' passes ~4 us.

Only available where NumPy's OpenBLAS exports ``cblas_sgemm`` with 64-bit integers (the
``scipy_openblas64`` of NumPy's wheels): ``SGEMM`` is False otherwise, and the op takes its
NumPy path.
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import njit, types

from ember.ops.kernels import JIT

# ------------------------------------------------------------------------------ sgemm


def _numpy_sgemm_address():
    """Address of cblas_sgemm (64-bit ints) in the OpenBLAS NumPy itself uses, or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    try:
        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:  # an unusual setup: no compiled loop
        return None
    for lib in libs:
        if "numpy" not in lib.filepath:  # NumPy's own (threadpoolctl sets its threads)
            continue
        dll = ctypes.CDLL(lib.filepath)
        for name in ("scipy_cblas_sgemm64_", "cblas_sgemm64_"):
            fn = getattr(dll, name, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value
    return None


_SYMBOL = "ember_cblas_sgemm_ilp64"
_ADDRESS = _numpy_sgemm_address()
SGEMM = _ADDRESS is not None
if SGEMM:
    import llvmlite.binding as llvm

    llvm.add_symbol(_SYMBOL, _ADDRESS)

_i32, _i64, _f32, _ptr = types.int32, types.int64, types.float32, types.uintp
# cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); pointers
# pass as integers (same registers in the x86-64 and AArch64 calling conventions)
_sgemm = types.ExternalFunction(
    _SYMBOL,
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, _f32, _ptr, _i64, _ptr, _i64, _f32, _ptr, _i64),
)
_ROW_MAJOR, _NO_TRANS = 101, 111


@njit(**JIT)
def gemm(a, b, c, beta):
    """c = a @ b + beta c for 2-D float32 arrays with unit column stride (row strides free:
    slices of bigger arrays), on NumPy's OpenBLAS."""
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:  # nothing to compute (and BLAS rejects the empty arrays' strides)
        return
    if k == 0:
        c[:, :] *= np.float32(beta)
        return
    # leading dimensions from the row strides, except of one-row arrays: NumPy may give a
    # length-1 axis any stride, and BLAS wants at least the row length there
    lda = a.strides[0] // 4 if m > 1 else k
    ldb = b.strides[0] // 4 if k > 1 else n
    ldc = c.strides[0] // 4 if m > 1 else n
    _sgemm(
        _ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, np.float32(1),
        a.ctypes.data, lda, b.ctypes.data, ldb, np.float32(beta), c.ctypes.data, ldc,
    )  # fmt: skip


# The per-step products (a few rows of states times a (U, 4U) or (4U, U) weight) go to OpenBLAS
# in blocks of at most this many rows: measured here (U = 128, one thread) 0.93 us per row in
# blocks of 8, 1.25 us per row in one block of 16 and 0.9-1.1 in one of 32 (for 8 rows
# OpenBLAS takes its small-matrix path, which does not repack the weight at every call).
GEMM_ROWS = 8


@njit(**JIT)
def gemm_rows(a, b, c, beta):
    """gemm(a, b, c, beta) as products of row blocks of at most GEMM_ROWS rows."""
    m = a.shape[0]
    blocks = (m + GEMM_ROWS - 1) // GEMM_ROWS
    for i in range(blocks):
        r0, r1 = m * i // blocks, m * (i + 1) // blocks
        gemm(a[r0:r1], b, c[r0:r1], beta)


# ------------------------------------------------------------------------------ tanh

# tanh(x) ~ x p(x^2) / q(x^2) on |x| <= _CLAMP (fitted by iterated weighted least squares)
_P = (
    0.9999999925025294, 0.13124316241756026, 0.0031493829434529525, 1.1644492445474698e-05,
    -2.2337342389312178e-08, 6.387002897354228e-11, -1.1656990384760042e-13,
)  # fmt: skip
_Q = (1.0, 0.4645764612351039, 0.024674916271209688, 0.00026131032121089247)
_CLAMP = 7.90531110763549805


@njit(inline="always", **JIT)
def tanh(x):
    """float32 tanh as a branch-free rational function (max abs error 3.3e-7); vectorises."""
    # clamped by selects that keep a NaN (min / max would turn it into +-_CLAMP)
    x = np.float32(_CLAMP) if x > np.float32(_CLAMP) else x
    x = np.float32(-_CLAMP) if x < np.float32(-_CLAMP) else x
    t = x * x
    p = np.float32(_P[6]) * t + np.float32(_P[5])
    p = p * t + np.float32(_P[4])
    p = p * t + np.float32(_P[3])
    p = p * t + np.float32(_P[2])
    p = p * t + np.float32(_P[1])
    p = p * t + np.float32(_P[0])
    q = np.float32(_Q[3]) * t + np.float32(_Q[2])
    q = q * t + np.float32(_Q[1])
    q = q * t + np.float32(_Q[0])
    return x * p / q


@njit(**JIT)
def tanh_(a):
    """In-place tanh of a contiguous float32 array (for tests of the approximation)."""
    f = a.reshape(-1)
    for s in range(f.size):
        f[s] = tanh(f[s])


# float32 tiny / eps: magnitudes below are flushed to zero (see the module docstring)
_TINY = np.float32(np.finfo(np.float32).tiny / np.finfo(np.float32).eps)


@njit(inline="always", **JIT)
def _drop(h, rm, out):
    """out = h * rm (nb, U): the state that meets the recurrent kernel under recurrent
    dropout."""
    for m in range(h.shape[0]):
        hm, rmm, om = h[m], rm[m], out[m]
        for j in range(h.shape[1]):
            om[j] = hm[j] * rmm[j]


@njit(inline="always", **JIT)
def _flush(v):
    return np.float32(0) if abs(v) < _TINY else v  # a NaN stays NaN


@njit(inline="always", **JIT)
def _take_output_grad(dh, gy, m, t):
    """dh += example m's output gradient at step t (when every step's output is returned: gy
    not size 0), then dh flushed of subnormals."""
    if gy.size:
        g = gy[m, t]
        for j in range(dh.size):
            dh[j] += g[j]
    for j in range(dh.size):
        dh[j] = _flush(dh[j])


# ------------------------------------------------------------------------------ LSTM


# The step's elementwise work runs as several short passes over a row (one example's U or 4U
# values, in L1 cache), each writing one or two arrays: LLVM vectorises a loop only when it can
# check at run time that its arrays do not overlap, and gives up beyond a handful of pairs
# (measured: the same work as one loop over all gate rows ran scalar, 12x slower).


@njit(**JIT)
def lstm_forward(X, W, b, R, Z, H, c, record, keep, rm, Hs):
    """One chunk's forward. X (T*nb, D) the inputs time-major, W (D, 4U), b (4U,) and
    R (U, 4U) the (halved) weights, Z (T, nb, G) scratch (G = 6U when recording, else >= 4U),
    H (T+1, nb, U) with H[0] = h_0, c (nb, U) with c_0 in and c_T out. Optional (size 0
    when unused): keep (T, nb) bool, True where a masked example keeps its state; rm (nb, U)
    the recurrent dropout mask, and then Hs (T, nb, U) receives the h that met U."""
    t_len, nb, g_cols = Z.shape
    u = R.shape[0]
    one, half = np.float32(1), np.float32(0.5)
    cs, tcs, s2 = np.empty(u, np.float32), np.empty(u, np.float32), np.empty(u, np.float32)
    # x_t W of every step in one GEMM, into the first 4U columns of Z
    gemm(X, W, Z.reshape(t_len * nb, g_cols)[:, : 4 * u], 0.0)
    for t in range(t_len):
        if rm.size:
            _drop(H[t], rm, Hs[t])
            gemm_rows(Hs[t], R, Z[t, :, : 4 * u], 1.0)  # z_t += (h_{t-1} * rm) U
        else:
            gemm_rows(H[t], R, Z[t, :, : 4 * u], 1.0)  # z_t += h_{t-1} U
        for m in range(nb):
            z, h, cm = Z[t, m], H[t + 1, m], c[m]
            if keep.size and keep[t, m]:  # masked: h and c carried over, dz = 0 in backward
                hp = H[t, m]
                for j in range(u):
                    h[j] = hp[j]
                if record:
                    for j in range(5 * u):
                        z[j] = 0
                    for j in range(5 * u, 6 * u):
                        z[j] = 1  # F = 1: dc passes through
                continue
            z4 = z[: 4 * u]
            for j in range(4 * u):
                z4[j] = tanh(z4[j] + b[j])  # o, i, f: tanh(z / 2), g: tanh(z)
            zo, zi, zf, zg = z[:u], z[u : 2 * u], z[2 * u : 3 * u], z[3 * u : 4 * u]
            for j in range(u):  # c_t = f c_{t-1} + i g
                cs[j] = _flush((zf[j] * half + half) * cm[j] + (zi[j] * half + half) * zg[j])
            for j in range(u):  # h_t = o tanh(c_t)
                tc = tanh(cs[j])
                tcs[j] = tc
                h[j] = _flush((zo[j] * half + half) * tc)
            if record:  # the chain-rule factors (4 sigma'(z) for o, i, f: see the op)
                zk, zF = z[4 * u : 5 * u], z[5 * u : 6 * u]
                for j in range(u):
                    zF[j] = zf[j] * half + half  # F = f
                for j in range(u):
                    zf[j] = (one - zf[j] * zf[j]) * cm[j]  # Pf = 4 f (1 - f) c_{t-1}
                for j in range(u):
                    zk[j] = (one - tcs[j] * tcs[j]) * (zo[j] * half + half)  # K
                for j in range(u):
                    zo[j] = (one - zo[j] * zo[j]) * tcs[j]  # Po = 4 o (1 - o) tanh(c_t)
                for j in range(u):
                    s2[j] = (one - zg[j] * zg[j]) * (zi[j] * half + half)  # Pg = (1 - g^2) i
                for j in range(u):
                    zi[j] = (one - zi[j] * zi[j]) * zg[j]  # Pi = 4 i (1 - i) g
                for j in range(u):
                    zg[j] = s2[j]
            for j in range(u):
                cm[j] = cs[j]


@njit(**JIT)
def lstm_backward(Z, RqT, dh, dc, gy, keep, rm):
    """One chunk's backward. Z (T, nb, 6U) holds forward's factors [Po, Pi, Pf, Pg, K, F]
    and on return every step's dz in its first 4U columns; RqT (4U, U) the recurrent kernel
    (transposed, scaled as the op says); dh, dc (nb, U) the gradients of h_T, c_T in and of
    h_0, c_0 out. Optional (size 0 when unused): gy (nb, T, U) the outputs' gradients, keep
    (T, nb) and rm (nb, U) as in forward."""
    t_len, nb, _ = Z.shape
    u = RqT.shape[1]
    dhn = np.empty((nb, u), np.float32)
    for t in range(t_len - 1, -1, -1):
        for m in range(nb):
            z, dhm, dcm = Z[t, m], dh[m], dc[m]
            zo, zi, zf, zg = z[:u], z[u : 2 * u], z[2 * u : 3 * u], z[3 * u : 4 * u]
            zk, zF = z[4 * u : 5 * u], z[5 * u : 6 * u]
            _take_output_grad(dhm, gy, m, t)
            for j in range(u):
                dcm[j] = _flush(dcm[j]) + dhm[j] * zk[j]  # dc += dh o (1 - tanh(c)^2)
            for j in range(u):
                zo[j] = dhm[j] * zo[j]  # dz_o
            for j in range(u):
                zi[j] = dcm[j] * zi[j]  # dz_i
            for j in range(u):
                zf[j] = dcm[j] * zf[j]  # dz_f
            for j in range(u):
                zg[j] = dcm[j] * zg[j]  # dz_g
            for j in range(u):
                dcm[j] = dcm[j] * zF[j]  # dc_{t-1} = dc f
        if not keep.size and not rm.size:
            gemm_rows(Z[t, :, : 4 * u], RqT, dh, 0.0)  # dh_{t-1} = dz U^T
            continue
        gemm_rows(Z[t, :, : 4 * u], RqT, dhn, 0.0)
        for m in range(nb):  # dh_{t-1} = (dz U^T) * rm, + dh where the state was carried
            dhm, dnm = dh[m], dhn[m]
            if rm.size:
                rmm = rm[m]
                for j in range(u):
                    dnm[j] *= rmm[j]
            if keep.size and keep[t, m]:
                for j in range(u):
                    dhm[j] += dnm[j]
            else:
                for j in range(u):
                    dhm[j] = dnm[j]


# ------------------------------------------------------------------------------ GRU
# reset_after=True (Keras's default). Per step, with rhb = h_{t-1} U_h + b1_h:
#   z, r = sigma(x W + b0 + h_{t-1} U)[z, r],  hh = tanh(x W_h + b0_h + r rhb),
#   h_t = hh + z (h_{t-1} - hh).
# Z's columns: x W + b0 in the order h, z, r (the input side of the gradient below); when
# recording, replaced by the factors [Ph, Pz, Pr, r, z] (G = 5U), and in backward by
# [da_h, dz_z, dz_r, d(rhb)]: its first 3U columns are the gradient of the input projection
# (order h, z, r), its columns U..4U that of h_{t-1} U (order z, r, h: Keras's).


@njit(**JIT)
def gru_forward(X, W, b, b1h, R, Z, H, S, record, keep, rm, Hs):
    """One chunk's forward. X (T*nb, D) the inputs time-major; W (D, 3U) and b (3U,) the
    input side in the order h, z, r (z, r halved: sigmoid(z) = (1 + tanh(z / 2)) / 2); b1h
    (U,); R (U, 3U) the recurrent kernel (order z, r, h; z, r halved); Z (T, nb, G) scratch
    (G = 5U when recording, else >= 3U); H (T+1, nb, U) with H[0] = h_0; S (nb, 3U)
    scratch. keep, rm, Hs as in lstm_forward (size 0 when unused)."""
    t_len, nb, g_cols = Z.shape
    u = R.shape[0]
    one, half = np.float32(1), np.float32(0.5)
    gemm(X, W, Z.reshape(t_len * nb, g_cols)[:, : 3 * u], 0.0)
    for t in range(t_len):
        if rm.size:
            _drop(H[t], rm, Hs[t])
            gemm_rows(Hs[t], R, S, 0.0)  # (h_{t-1} * rm) U
        else:
            gemm_rows(H[t], R, S, 0.0)  # h_{t-1} U
        for m in range(nb):
            z, h, hp = Z[t, m], H[t + 1, m], H[t, m]
            if keep.size and keep[t, m]:  # masked: h carried over, dz = 0 in backward
                for j in range(u):
                    h[j] = hp[j]
                if record:
                    for j in range(4 * u):
                        z[j] = 0
                    for j in range(4 * u, 5 * u):
                        z[j] = 1  # dh passes through
                continue
            xh, xz, xr = z[:u], z[u : 2 * u], z[2 * u : 3 * u]
            bh, bz, br = b[:u], b[u : 2 * u], b[2 * u : 3 * u]
            s = S[m]
            sz, sr, sh = s[:u], s[u : 2 * u], s[2 * u : 3 * u]
            for j in range(u):
                xz[j] = tanh(xz[j] + bz[j] + sz[j]) * half + half  # z
            for j in range(u):
                xr[j] = tanh(xr[j] + br[j] + sr[j]) * half + half  # r
            for j in range(u):
                sh[j] = sh[j] + b1h[j]  # rhb = h_{t-1} U_h + b1_h
            for j in range(u):
                xh[j] = tanh(xh[j] + bh[j] + xr[j] * sh[j])  # hh
            for j in range(u):
                h[j] = _flush(xh[j] + xz[j] * (hp[j] - xh[j]))  # h_t
            if record:  # the chain-rule factors (see backward)
                rr, zz = z[3 * u : 4 * u], z[4 * u : 5 * u]
                for j in range(u):
                    rr[j] = xr[j]
                for j in range(u):
                    zz[j] = xz[j]
                for j in range(u):
                    xr[j] = sh[j] * xr[j] * (one - xr[j])  # Pr = rhb r (1 - r)
                for j in range(u):
                    xz[j] = (hp[j] - xh[j]) * xz[j] * (one - xz[j])  # Pz = (h - hh) z (1 - z)
                for j in range(u):
                    xh[j] = (one - zz[j]) * (one - xh[j] * xh[j])  # Ph = (1 - z)(1 - hh^2)


@njit(**JIT)
def gru_backward(Z, RT, dh, gy, rm):
    """One chunk's backward. Z (T, nb, 5U) holds forward's factors [Ph, Pz, Pr, r, z], and
    on return every step's [da_h, dz_z, dz_r, d(rhb)] in its first 4U columns; RT (3U, U)
    the recurrent kernel transposed (order z, r, h); dh (nb, U) the gradient of h_T in and
    of h_0 out. gy (nb, T, U) the outputs' gradients and rm (nb, U) the recurrent dropout
    mask: size 0 when unused."""
    t_len, nb, _ = Z.shape
    u = RT.shape[1]
    dhn = np.empty((nb, u), np.float32)
    for t in range(t_len - 1, -1, -1):
        for m in range(nb):
            z, dhm = Z[t, m], dh[m]
            ph, pz, pr, rr, zz = (
                z[:u], z[u : 2 * u], z[2 * u : 3 * u], z[3 * u : 4 * u], z[4 * u : 5 * u],
            )  # fmt: skip
            _take_output_grad(dhm, gy, m, t)
            for j in range(u):
                ph[j] = dhm[j] * ph[j]  # da_h
            for j in range(u):
                pz[j] = dhm[j] * pz[j]  # dz_z
            for j in range(u):
                pr[j] = ph[j] * pr[j]  # dz_r = da_h rhb r (1 - r)
            for j in range(u):
                rr[j] = ph[j] * rr[j]  # d(rhb) = da_h r
            for j in range(u):
                dhm[j] = dhm[j] * zz[j]  # the direct path: dh z
        gemm_rows(Z[t, :, u : 4 * u], RT, dhn, 0.0)  # [dz_z, dz_r, d(rhb)] U^T
        for m in range(nb):
            dhm, dnm = dh[m], dhn[m]
            if rm.size:
                rmm = rm[m]
                for j in range(u):
                    dhm[j] += dnm[j] * rmm[j]
            else:
                for j in range(u):
                    dhm[j] += dnm[j]
