"""The fused recurrent ops against reference cells composed from ember primitives, and against
numerical gradients.

The reference cells below are written step by step from the published equations with ember's
differentiable primitives (matmul, sigmoid, tanh, where, ...) in a Python time loop, so autograd
derives their gradients independently of the hand-written BPTT in ``ember.ops.recurrent``.
"""

import numpy as np
import pytest

import ember as em
from ember import ops
from ember.errors import EmberValueError, ShapeError
from ember.ops import recurrent as R

# ---------------------------------------------------------------------------------- references


def _steps(t_len, go_backwards):
    return range(t_len - 1, -1, -1) if go_backwards else range(t_len)


def _run_reference(cell, x, states, mask, go_backwards, zero_output_for_mask):
    """Keras's RNN loop: masked steps keep the states and repeat the previous output (zero
    before any output, or always zero with zero_output_for_mask)."""
    n, t_len = x.shape[0], x.shape[1]
    outputs = []
    prev_out = em.tensor(np.zeros((n, states[0].shape[1])))
    for t in _steps(t_len, go_backwards):
        out, new_states = cell(x[:, t, :], states)
        if mask is not None:
            m = em.tensor(mask[:, t : t + 1])
            states = [ops.where(m, s_new, s) for s_new, s in zip(new_states, states)]
            out = ops.where(m, out, prev_out * 0 if zero_output_for_mask else prev_out)
        else:
            states = new_states
        outputs.append(out)
        prev_out = out
    return ops.stack(outputs, axis=1), states


def ref_simple_rnn(x, W, U, b, h0, activation="tanh", go_backwards=False, mask=None,
                   zero_output_for_mask=False, recurrent_mask=None):  # fmt: skip
    act = {"tanh": ops.tanh, "relu": ops.relu, "sigmoid": ops.sigmoid, "linear": lambda a: a}
    rm = None if recurrent_mask is None else em.tensor(recurrent_mask)

    def cell(xt, states):
        (h,) = states
        hs = h if rm is None else h * rm
        a = xt @ W + hs @ U
        if b is not None:
            a = a + b
        h = act[activation](a)
        return h, [h]

    return _run_reference(cell, x, [h0], mask, go_backwards, zero_output_for_mask)


def ref_lstm(x, W, U, b, h0, c0, go_backwards=False, mask=None, zero_output_for_mask=False,
             recurrent_mask=None):  # fmt: skip
    u = U.shape[0]
    rm = None if recurrent_mask is None else em.tensor(recurrent_mask)

    def cell(xt, states):
        h, c = states
        hs = h if rm is None else h * rm
        z = xt @ W + hs @ U
        if b is not None:
            z = z + b
        i = ops.sigmoid(z[:, :u])
        f = ops.sigmoid(z[:, u : 2 * u])
        g = ops.tanh(z[:, 2 * u : 3 * u])
        o = ops.sigmoid(z[:, 3 * u :])
        c = f * c + i * g
        h = o * ops.tanh(c)
        return h, [h, c]

    return _run_reference(cell, x, [h0, c0], mask, go_backwards, zero_output_for_mask)


def ref_gru(x, W, U, b, h0, reset_after=True, go_backwards=False, mask=None,
            zero_output_for_mask=False, recurrent_mask=None):  # fmt: skip
    u = U.shape[0]
    rm = None if recurrent_mask is None else em.tensor(recurrent_mask)

    def cell(xt, states):
        (h,) = states
        hs = h if rm is None else h * rm
        xw = xt @ W
        if reset_after:
            if b is not None:
                xw = xw + b[0]
            rec = hs @ U
            if b is not None:
                rec = rec + b[1]
            z = ops.sigmoid(xw[:, :u] + rec[:, :u])
            r = ops.sigmoid(xw[:, u : 2 * u] + rec[:, u : 2 * u])
            hh = ops.tanh(xw[:, 2 * u :] + r * rec[:, 2 * u :])
        else:
            if b is not None:
                xw = xw + b
            rec = hs @ U[:, : 2 * u]
            z = ops.sigmoid(xw[:, :u] + rec[:, :u])
            r = ops.sigmoid(xw[:, u : 2 * u] + rec[:, u:])
            hh = ops.tanh(xw[:, 2 * u :] + (r * hs) @ U[:, 2 * u :])
        h = z * h + (1 - z) * hh
        return h, [h]

    return _run_reference(cell, x, [h0], mask, go_backwards, zero_output_for_mask)


# ---------------------------------------------------------------------------------- fixtures
N, T, D, U = 3, 5, 4, 3


def _inputs(kind, rng, bias=True, reset_after=True):
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x = rng.standard_normal((N, T, D))
    w = rng.standard_normal((D, gates * U)) * 0.5
    u = rng.standard_normal((U, gates * U)) * 0.5
    if not bias:
        b = None
    elif kind == "gru" and reset_after:
        b = rng.standard_normal((2, 3 * U)) * 0.5
    else:
        b = rng.standard_normal(gates * U) * 0.5
    states = [rng.standard_normal((N, U)) for _ in range(2 if kind == "lstm" else 1)]
    return x, w, u, b, states


def _mask(rng):
    m = rng.random((N, T)) > 0.35
    m[0, :2] = False  # leading masked steps (pre-padding), before any output
    m[1, -1] = False  # a masked last step
    m[2] = True
    return m


CONFIGS = [
    {},
    {"go_backwards": True},
    {"mask": "mask"},
    {"mask": "mask", "go_backwards": True},
    {"mask": "mask", "zero_output_for_mask": True},
    {"recurrent_mask": "rm"},
    {"return_sequences": False, "mask": "mask"},
]


def _resolve(config, rng):
    kw = dict(config)
    if kw.get("mask") == "mask":
        kw["mask"] = _mask(rng)
    if kw.get("recurrent_mask") == "rm":
        kw["recurrent_mask"] = (rng.random((N, U)) > 0.3) / 0.7
    return kw


def _compare(fused, reference, arrays, kw, return_sequences=True):
    """Forward outputs, final states and the gradient of every input agree (float64)."""
    ts_f = [None if a is None else em.tensor(a, requires_grad=True) for a in arrays]
    ts_r = [None if a is None else em.tensor(a, requires_grad=True) for a in arrays]
    out_f = fused(*ts_f, return_sequences=return_sequences, **kw)
    seq_r, states_r = reference(*ts_r, **kw)
    y_r = seq_r if return_sequences else seq_r[:, -1]
    np.testing.assert_allclose(out_f[0].data, y_r.data, rtol=1e-10, atol=1e-12)
    for s_f, s_r in zip(out_f[1:], states_r):
        np.testing.assert_allclose(s_f.data, s_r.data, rtol=1e-10, atol=1e-12)
    # one loss over every output, with random weights, so all gradient paths are exercised
    proj = np.random.default_rng(7)
    w0 = proj.standard_normal(out_f[0].shape)
    loss_f = (out_f[0] * w0).sum()
    loss_r = (y_r * w0).sum()
    for s_f, s_r in zip(out_f[1:], states_r):
        ws = proj.standard_normal(s_f.shape)
        loss_f = loss_f + (s_f * ws).sum()
        loss_r = loss_r + (s_r * ws).sum()
    loss_f.backward()
    loss_r.backward()
    for i, (a, b) in enumerate(zip(ts_f, ts_r)):
        if a is None:
            continue
        assert a.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-9, atol=1e-11, err_msg=f"input {i}")


# ---------------------------------------------------------------------------------- vs references
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c) or "plain")
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_simple_rnn_matches_composed_reference_cell(float64, config, activation):
    rng = np.random.default_rng(1)
    x, w, u, b, (h0,) = _inputs("simple_rnn", rng)
    kw = _resolve(config, rng)
    rs = kw.pop("return_sequences", True)

    def fused(*a, **k):
        return R.simple_rnn(*a, activation=activation, **k)

    def reference(*a, **k):
        return ref_simple_rnn(*a, activation=activation, **k)

    _compare(fused, reference, [x, w, u, b, h0], kw, return_sequences=rs)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c) or "plain")
def test_lstm_matches_composed_reference_cell(float64, config):
    rng = np.random.default_rng(2)
    x, w, u, b, (h0, c0) = _inputs("lstm", rng)
    kw = _resolve(config, rng)
    rs = kw.pop("return_sequences", True)
    _compare(R.lstm, ref_lstm, [x, w, u, b, h0, c0], kw, return_sequences=rs)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c) or "plain")
def test_gru_matches_composed_reference_cell(float64, config, reset_after):
    rng = np.random.default_rng(3)
    x, w, u, b, (h0,) = _inputs("gru", rng, reset_after=reset_after)
    kw = _resolve(config, rng)
    rs = kw.pop("return_sequences", True)

    def fused(*a, **k):
        return R.gru(*a, reset_after=reset_after, **k)

    def reference(*a, **k):
        return ref_gru(*a, reset_after=reset_after, **k)

    _compare(fused, reference, [x, w, u, b, h0], kw, return_sequences=rs)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru", "gru_reset_before"])
def test_ops_without_bias_match_reference(float64, kind):
    rng = np.random.default_rng(4)
    name = "gru" if kind.startswith("gru") else kind
    reset_after = kind != "gru_reset_before"
    x, w, u, _, states = _inputs(name, rng, bias=False)
    if name == "lstm":
        _compare(R.lstm, ref_lstm, [x, w, u, None, *states], {})
    elif name == "gru":
        _compare(
            lambda *a, **k: R.gru(*a, reset_after=reset_after, **k),
            lambda *a, **k: ref_gru(*a, reset_after=reset_after, **k),
            [x, w, u, None, *states], {},
        )  # fmt: skip
    else:
        _compare(R.simple_rnn, ref_simple_rnn, [x, w, u, None, *states], {})


def test_ops_default_initial_state_is_zero(float64):
    rng = np.random.default_rng(5)
    x, w, u, b, (h0, c0) = _inputs("lstm", rng)
    y0, h_a, c_a = R.lstm(x, w, u, b)
    y1, h_b, c_b = R.lstm(x, w, u, b, np.zeros((N, U)), np.zeros((N, U)))
    np.testing.assert_array_equal(y0.data, y1.data)
    np.testing.assert_array_equal(c_a.data, c_b.data)


# ---------------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize(
    "config",
    [{}, {"go_backwards": True, "mask": "mask"}, {"mask": "mask", "return_sequences": False},
     {"recurrent_mask": "rm", "zero_output_for_mask": True, "mask": "mask"}],
    ids=["plain", "backwards-mask", "mask-last", "recdrop-zero-output"],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru", "gru_reset_before"])
def test_recurrent_ops_pass_gradcheck(float64, kind, config):
    rng = np.random.default_rng(6)
    name = "gru" if kind.startswith("gru") else kind
    reset_after = kind != "gru_reset_before"
    x, w, u, b, states = _inputs(name, rng, reset_after=reset_after)
    kw = _resolve(config, rng)
    if name == "gru":
        kw["reset_after"] = reset_after
    fn = getattr(R, name)
    args = [em.tensor(a, requires_grad=True) for a in (x, w, u, b, *states)]
    # every output in turn (sequence or last output, then each final state)
    n_out = 3 if name == "lstm" else 2
    for k in range(n_out):
        assert em.gradcheck(lambda *a, k=k: fn(*a, **kw)[k], args, atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------------------------- semantics
def test_masked_steps_keep_state_and_repeat_output(float64):
    rng = np.random.default_rng(8)
    x, w, u, b, (h0, c0) = _inputs("lstm", rng)
    mask = np.ones((N, T), bool)
    mask[0, 2] = False
    y, h, c = R.lstm(x, w, u, b, mask=mask)
    np.testing.assert_array_equal(y.data[0, 2], y.data[0, 1])
    # dropping the masked step from the sequence gives the same final state
    keep = [0, 1, 3, 4]
    _, h_cut, c_cut = R.lstm(x[:1, keep], w, u, b)
    np.testing.assert_allclose(h.data[0], h_cut.data[0], rtol=1e-12)
    np.testing.assert_allclose(c.data[0], c_cut.data[0], rtol=1e-12)


def test_leading_masked_steps_output_zero_until_first_step(float64):
    rng = np.random.default_rng(9)
    x, w, u, b, (h0,) = _inputs("gru", rng)
    mask = np.ones((N, T), bool)
    mask[:, :2] = False
    y, h = R.gru(x, w, u, b, h0, mask=mask)
    np.testing.assert_array_equal(y.data[:, :2], 0.0)  # Keras: zero before any output
    _, h_cut = R.gru(x[:, 2:], w, u, b, h0)  # the state started from h0 all the same
    np.testing.assert_allclose(h.data, h_cut.data, rtol=1e-12)


def test_go_backwards_equals_reversed_input(float64):
    rng = np.random.default_rng(10)
    x, w, u, b, (h0,) = _inputs("simple_rnn", rng)
    y_b, h_b = R.simple_rnn(x, w, u, b, h0, go_backwards=True)
    y_r, h_r = R.simple_rnn(x[:, ::-1], w, u, b, h0)
    np.testing.assert_allclose(y_b.data, y_r.data, rtol=1e-12)  # processing order
    np.testing.assert_allclose(h_b.data, h_r.data, rtol=1e-12)


def test_float32_in_float32_out_without_upcast():
    rng = np.random.default_rng(11)
    x, w, u, b, (h0, c0) = _inputs("lstm", rng)
    ts = [em.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, u, b, h0, c0)]
    outs = R.lstm(*ts)
    assert all(o.dtype == np.float32 for o in outs)
    outs[0].sum().backward()
    assert all(t.grad.dtype == np.float32 for t in ts)


def test_inference_records_no_graph():
    rng = np.random.default_rng(12)
    x, w, u, b, _ = _inputs("gru", rng)
    wt = em.tensor(w.astype(np.float32), requires_grad=True)
    with em.no_grad():
        y, h = R.gru(x.astype(np.float32), wt, u.astype(np.float32), b.astype(np.float32))
    assert not y.requires_grad and y._ctx is None


def test_long_sequence_backward_does_not_recurse():
    rng = np.random.default_rng(13)
    x = em.tensor(rng.standard_normal((2, 3000, 2)).astype(np.float32), requires_grad=True)
    w = em.tensor(rng.standard_normal((2, 8)).astype(np.float32) * 0.1, requires_grad=True)
    u = em.tensor(rng.standard_normal((2, 8)).astype(np.float32) * 0.1, requires_grad=True)
    R.lstm(x, w, u, return_sequences=False)[0].sum().backward()
    assert np.isfinite(x.grad).all() and x.grad.shape == x.shape


# ---------------------------------------------------------------------------------- errors
def test_errors_name_op_expected_and_received():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ShapeError, match=r"lstm: x must be 3-D .*received shape \(2, 3\)"):
        R.lstm(np.zeros((2, 3), np.float32), np.zeros((3, 8)), np.zeros((2, 8)))
    with pytest.raises(ShapeError, match=r"lstm: kernel must have shape .*\(4, 8\).*\(3, 8\)"):
        R.lstm(x, np.zeros((3, 8), np.float32), np.zeros((2, 8), np.float32))
    with pytest.raises(ShapeError, match=r"gru: recurrent_kernel .*received \(2, 8\)"):
        R.gru(x, np.zeros((4, 6), np.float32), np.zeros((2, 8), np.float32))
    with pytest.raises(ShapeError, match=r"gru: bias must have shape \(2, 6\), received \(6,\)"):
        R.gru(x, np.zeros((4, 6), np.float32), np.zeros((2, 6), np.float32), np.zeros(6))
    with pytest.raises(ShapeError, match=r"simple_rnn: mask must have shape .*\(2, 3\)"):
        R.simple_rnn(x, np.zeros((4, 2)), np.zeros((2, 2)), mask=np.ones((2, 4), bool))
    with pytest.raises(ShapeError, match=r"simple_rnn: h0 must have shape .*\(2, 2\)"):
        R.simple_rnn(x, np.zeros((4, 2)), np.zeros((2, 2)), h0=np.zeros((3, 2)))
    with pytest.raises(EmberValueError, match=r"activation must be one of .*'elu'"):
        R.simple_rnn(x, np.zeros((4, 2)), np.zeros((2, 2)), activation="elu")
    with pytest.raises(ShapeError, match="at least one time step"):
        R.gru(np.zeros((2, 0, 4)), np.zeros((4, 6)), np.zeros((2, 6)))


def test_outputs_never_alias_saved_buffers_even_for_a_batch_of_one(float64):
    rng = np.random.default_rng(14)
    x, w, u, b, (h0, c0) = _inputs("lstm", rng)
    args = [em.tensor(a, requires_grad=True) for a in (x[:1], w, u, b, h0[:1], c0[:1])]
    y, h, c = R.lstm(*args)
    R.lstm(*args)[0].sum().backward()
    g_ref = [a.grad.copy() for a in args]
    for a in args:
        a.grad = None
    y.data[...] = 123.0  # a user writing into the outputs must not corrupt the graph
    h.data[...] = 123.0
    y.sum().backward()
    for a, g in zip(args, g_ref):
        np.testing.assert_allclose(a.grad, g, rtol=1e-12)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_vanishing_gradients_flush_to_zero_instead_of_subnormal_numbers(kind):
    # subnormal floats make the CPU 10-100x slower; values below tiny/eps are set to zero
    rng = np.random.default_rng(15)
    g = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x = em.tensor(rng.standard_normal((4, 200, 3)).astype(np.float32), requires_grad=True)
    w = em.tensor((rng.standard_normal((3, g * 8)) * 0.05).astype(np.float32), requires_grad=True)
    u = em.tensor((rng.standard_normal((8, g * 8)) * 0.05).astype(np.float32), requires_grad=True)
    getattr(R, kind)(x, w, u, return_sequences=False)[0].sum().backward()
    a = np.abs(x.grad)
    assert a[:, 0].max() == 0.0  # vanished completely at the start of the sequence
    assert not ((a > 0) & (a < np.finfo(np.float32).tiny)).any()
    assert a[:, -1].max() > 1e-3  # and intact where it is large
