"""SimpleRNN, LSTM and GRU (ops and layers) against torch.nn.RNN / LSTM / GRU: the output
sequence, the final states and every gradient (input, kernel, recurrent kernel, bias, initial
states), in float64 (1e-8) and float32 (1e-4 relative).

Weight mapping (Keras -> PyTorch): weight_ih = kernel^T, weight_hh = recurrent_kernel^T.
LSTM gates are i, f, c(g), o in both. GRU gates are z, r, h in Keras and r, z, n in PyTorch
(reordered here); PyTorch's GRU is Keras's reset_after=True, with bias[0] -> bias_ih and
bias[1] -> bias_hh. For SimpleRNN and LSTM, Keras's single bias goes to bias_ih and bias_hh is
zero (both receive the same gradient).
"""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.ops import recurrent as R

from .tolerance import close

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")

TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    em.set_floatx(request.param)
    yield request.param
    em.set_floatx("float32")


def _gru_to_torch(a: np.ndarray, u: int) -> np.ndarray:
    """Keras gate blocks z, r, h (last axis) -> PyTorch's r, z, n."""
    return np.concatenate([a[..., u : 2 * u], a[..., :u], a[..., 2 * u :]], axis=-1)


def _torch_module(kind: str, d: int, u: int, w, rk, b, dtype, activation="tanh"):
    if kind == "simple_rnn":
        m = torch.nn.RNN(d, u, nonlinearity=activation, batch_first=True)
    else:
        m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](d, u, batch_first=True)
    m = m.to(TORCH_DTYPE[dtype])
    if kind == "gru":
        w, rk = _gru_to_torch(w, u), _gru_to_torch(rk, u)
        b_ih, b_hh = _gru_to_torch(b[0], u), _gru_to_torch(b[1], u)
    else:
        b_ih, b_hh = b, np.zeros_like(b)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(w.T))
        m.weight_hh_l0.copy_(torch.tensor(rk.T))
        m.bias_ih_l0.copy_(torch.tensor(b_ih))
        m.bias_hh_l0.copy_(torch.tensor(b_hh))
    return m


def _case(kind: str, seed: int, dtype: str):
    r = np.random.default_rng(seed)
    n, t, d, u = (
        int(r.integers(1, 5)),
        int(r.integers(1, 9)),
        int(r.integers(1, 6)),
        int(r.integers(1, 6)),
    )
    g = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x = r.standard_normal((n, t, d)).astype(dtype)
    w = (r.standard_normal((d, g * u)) * 0.6).astype(dtype)
    rk = (r.standard_normal((u, g * u)) * 0.6).astype(dtype)
    b = (r.standard_normal((2, 3 * u) if kind == "gru" else (g * u,)) * 0.5).astype(dtype)
    states = [r.standard_normal((n, u)).astype(dtype) for _ in range(2 if kind == "lstm" else 1)]
    return x, w, rk, b, states


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["simple_rnn", "simple_rnn_relu", "lstm", "gru"])
def test_fused_op_matches_torch_outputs_states_and_gradients(kind, seed, dtype):
    activation = "relu" if kind.endswith("relu") else "tanh"
    kind = kind.replace("_relu", "")
    x, w, rk, b, states = _case(kind, seed, dtype)
    n, _, d = x.shape
    u = rk.shape[0]
    arrays = [x, w, rk, b, *states]
    ours = [em.tensor(a.copy(), requires_grad=True) for a in arrays]
    if kind == "simple_rnn":
        out = R.simple_rnn(*ours, activation=activation)
    else:
        out = getattr(R, kind)(*ours)

    m = _torch_module(kind, d, u, w, rk, b, dtype, activation)
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s[None], requires_grad=True) for s in states]  # (1, N, U)
    if kind == "lstm":
        ty, (th, tc) = m(tx, (ts[0], ts[1]))
        theirs = [ty, th[0], tc[0]]
    else:
        ty, th = m(tx, ts[0])
        theirs = [ty, th[0]]
    for k, (a, t_) in enumerate(zip(out, theirs)):
        close(a, t_, dtype, f"output {k}")

    rng = np.random.default_rng(100 + seed)
    weights = [rng.standard_normal(o.shape).astype(dtype) for o in out]
    sum(((o * wt).sum() for o, wt in zip(out, weights)), start=em.tensor(0.0)).backward()
    sum((t_ * torch.tensor(wt)).sum() for t_, wt in zip(theirs, weights)).backward()

    close(ours[0].grad, tx.grad, dtype, "dx")
    if kind == "gru":
        dw = m.weight_ih_l0.grad.numpy().T
        drk = m.weight_hh_l0.grad.numpy().T
        db = np.stack([m.bias_ih_l0.grad.numpy(), m.bias_hh_l0.grad.numpy()])
        # r, z, n -> z, r, h swaps the first two blocks back: the mapping is its own inverse
        close(ours[1].grad, _gru_to_torch(dw, u), dtype, "dkernel")
        close(ours[2].grad, _gru_to_torch(drk, u), dtype, "drecurrent_kernel")
        close(ours[3].grad, _gru_to_torch(db, u), dtype, "dbias")
    else:
        close(ours[1].grad, m.weight_ih_l0.grad.T, dtype, "dkernel")
        close(ours[2].grad, m.weight_hh_l0.grad.T, dtype, "drecurrent_kernel")
        close(ours[3].grad, m.bias_ih_l0.grad, dtype, "dbias")
    for k, s in enumerate(ts):
        close(ours[4 + k].grad, s.grad[0], dtype, f"dstate {k}")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_go_backwards_matches_torch_on_the_flipped_sequence(kind, dtype):
    x, w, rk, b, states = _case(kind, 7, dtype)
    u = rk.shape[0]
    out = getattr(R, kind)(em.tensor(x), w, rk, b, go_backwards=True)
    m = _torch_module(kind, x.shape[2], u, w, rk, b, dtype)
    ty = m(torch.tensor(x[:, ::-1].copy()))[0]
    close(out[0], ty, dtype)  # Keras returns the outputs in processing order


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_right_padded_mask_final_state_matches_torch_packed_sequence(kind, dtype):
    x, w, rk, b, states = _case(kind, 11, dtype)
    n, t, d = 4, 6, x.shape[2]
    x = np.random.default_rng(12).standard_normal((n, t, d)).astype(dtype)
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(t)[None] < lengths[:, None]
    u = rk.shape[0]
    xe = em.tensor(x, requires_grad=True)
    out = getattr(R, kind)(xe, w, rk, b, mask=mask, return_sequences=False)
    m = _torch_module(kind, d, u, w, rk, b, dtype)
    tx = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        tx, torch.tensor(lengths), batch_first=True, enforce_sorted=False
    )
    _, state = m(packed)
    th = state[0][0] if kind == "lstm" else state[0]
    close(out[0], th, dtype, "last output = state at each sequence's last step")
    close(out[1], th, dtype, "final h")
    out[0].sum().backward()
    th.sum().backward()
    close(xe.grad, tx.grad, dtype, "dx (zero at padded steps)")


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_bidirectional_layer_matches_torch_bidirectional(cls, dtype):
    r = np.random.default_rng(21)
    n, t, d, u = 3, 5, 4, 3
    x = r.standard_normal((n, t, d)).astype(dtype)
    layer = layers.Bidirectional(getattr(layers, cls)(u, return_sequences=True))
    xe = em.tensor(x, requires_grad=True)
    layer(xe)
    ws = [(r.standard_normal(w.shape) * 0.5).astype(dtype) for w in layer.get_weights()]
    layer.set_weights(ws)
    y = layer(xe)
    kind = cls.lower()
    m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        d, u, batch_first=True, bidirectional=True
    ).to(TORCH_DTYPE[dtype])
    with torch.no_grad():
        for suffix, (w, rk, b) in (("l0", ws[:3]), ("l0_reverse", ws[3:])):
            if kind == "gru":
                w, rk = _gru_to_torch(w, u), _gru_to_torch(rk, u)
                b_ih, b_hh = _gru_to_torch(b[0], u), _gru_to_torch(b[1], u)
            else:
                b_ih, b_hh = b, np.zeros_like(b)
            getattr(m, f"weight_ih_{suffix}").copy_(torch.tensor(w.T))
            getattr(m, f"weight_hh_{suffix}").copy_(torch.tensor(rk.T))
            getattr(m, f"bias_ih_{suffix}").copy_(torch.tensor(b_ih))
            getattr(m, f"bias_hh_{suffix}").copy_(torch.tensor(b_hh))
    tx = torch.tensor(x, requires_grad=True)
    ty = m(tx)[0]
    close(y, ty, dtype, "concatenated outputs")
    proj = r.standard_normal(y.shape).astype(dtype)
    (y * proj).sum().backward()
    (ty * torch.tensor(proj)).sum().backward()
    close(xe.grad, tx.grad, dtype, "dx")
    close(layer.weights[4].grad, m.weight_hh_l0_reverse.grad.numpy().T
          if kind == "lstm" else _gru_to_torch(m.weight_hh_l0_reverse.grad.numpy().T, u),
          dtype, "backward layer's recurrent kernel")  # fmt: skip
