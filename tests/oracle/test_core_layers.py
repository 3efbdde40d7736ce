"""Core layers, activations, BatchNormalization, Embedding and Dropout against PyTorch: forward,
input gradient and every weight gradient, over randomized configurations, in float64 (1e-8)
and float32 (1e-4 relative)."""

import numpy as np
import pytest

import ember as em
from ember import activations, layers

from .tolerance import close

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")
F = torch.nn.functional

DTYPES = ["float64", "float32"]


@pytest.fixture(params=DTYPES)
def dtype(request):
    em.set_floatx(request.param)
    yield request.param
    em.set_floatx("float32")


def pair(a: np.ndarray, dtype: str):
    """The same values as an ember leaf and a torch leaf, both requiring grad."""
    a = np.asarray(a, dtype=dtype)
    return em.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)


# ---------------------------------------------------------------------------------- Dense
TORCH_ACT = {
    None: lambda t: t,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": lambda t: F.softmax(t, dim=-1),
}


@pytest.mark.parametrize("seed", range(4))
def test_dense_forward_and_gradients(seed, dtype):
    r = np.random.default_rng(seed)
    units, fan_in = int(r.integers(1, 9)), int(r.integers(1, 9))
    lead = tuple(int(s) for s in r.integers(1, 5, size=int(r.integers(1, 3))))
    act = list(TORCH_ACT)[seed % len(TORCH_ACT)]
    use_bias = bool(seed % 2 == 0)
    x_np = r.standard_normal((*lead, fan_in))
    layer = layers.Dense(units, activation=act, use_bias=use_bias)
    x, tx = pair(x_np, dtype)
    y = layer(x)
    tw = torch.tensor(layer.kernel.data.T.copy(), requires_grad=True)  # torch: (out, in)
    tb = torch.tensor(layer.bias.data.copy(), requires_grad=True) if use_bias else None
    ty = TORCH_ACT[act](F.linear(tx, tw, tb))
    close(y, ty, dtype)
    g = r.standard_normal(ty.shape)
    y.backward(g.astype(dtype))
    ty.backward(torch.tensor(g.astype(dtype)))
    close(x.grad, tx.grad, dtype)
    close(layer.kernel.grad, tw.grad.T, dtype)
    if use_bias:
        close(layer.bias.grad, tb.grad, dtype)


# ---------------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "elu": F.elu,
    "selu": F.selu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": F.hardsigmoid,
    "tanh": torch.tanh,
    "softmax": lambda t: F.softmax(t, dim=-1),
    "log_softmax": lambda t: F.log_softmax(t, dim=-1),
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "linear": lambda t: t * 1,
}


def _inputs(seed: int, shape=(5, 7)) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    # away from the kinks (0 and +-3), where the two libraries may pick different subgradients
    x[np.abs(x) < 1e-3] += 0.01
    x[np.abs(np.abs(x) - 3) < 1e-3] += 0.01
    return x


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_functions(name, dtype):
    x, tx = pair(_inputs(1), dtype)
    y = activations.get(name)(x)
    ty = ACTIVATIONS[name](tx)
    close(y, ty, dtype)
    g = np.random.default_rng(2).standard_normal(ty.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)


@pytest.mark.parametrize("beta", [0.5, 1.7])
def test_swish_with_beta_and_gelu_tanh(beta, dtype):
    x, tx = pair(_inputs(3), dtype)
    y, ty = activations.swish(x, beta=beta), tx * torch.sigmoid(beta * tx)
    close(y, ty, dtype)
    y.sum().backward()
    ty.sum().backward()
    close(x.grad, tx.grad, dtype)
    x, tx = pair(_inputs(4), dtype)
    y, ty = activations.gelu(x, approximate=True), F.gelu(tx, approximate="tanh")
    close(y, ty, dtype)
    y.sum().backward()
    ty.sum().backward()
    close(x.grad, tx.grad, dtype)


def _keras_relu_torch(t, max_value, negative_slope, threshold):
    """Keras's ReLU written in torch ops."""
    out = torch.where(t >= threshold, t, negative_slope * (t - threshold))
    return torch.clamp(out, max=max_value) if max_value is not None else out


LAYERS = [
    (lambda: layers.ReLU(), F.relu),
    (lambda: layers.ReLU(6.0, 0.1, 0.5), lambda t: _keras_relu_torch(t, 6.0, 0.1, 0.5)),
    (lambda: layers.LeakyReLU(), lambda t: F.leaky_relu(t, 0.01)),
    (lambda: layers.LeakyReLU(0.3), lambda t: F.leaky_relu(t, 0.3)),
    (lambda: layers.ELU(0.7), lambda t: F.elu(t, 0.7)),
    (lambda: layers.Softmax(), lambda t: F.softmax(t, dim=-1)),
    (lambda: layers.Softmax(axis=0), lambda t: F.softmax(t, dim=0)),
]


@pytest.mark.parametrize("case", range(len(LAYERS)))
def test_activation_layers(case, dtype):
    make, reference = LAYERS[case]
    x, tx = pair(_inputs(5 + case), dtype)
    y, ty = make()(x), reference(tx)
    close(y, ty, dtype)
    g = np.random.default_rng(case).standard_normal(ty.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)


@pytest.mark.parametrize("shared", [None, [1, 2]])
def test_prelu_against_torch(shared, dtype):
    r = np.random.default_rng(7)
    x_np = r.standard_normal((3, 4, 4, 2))
    layer = layers.PReLU(shared_axes=shared)
    x, tx = pair(x_np, dtype)
    layer(x)
    layer.set_weights([r.random(layer.alpha.shape)])
    y = layer(x)
    if shared:  # one slope per channel: torch's prelu on NCHW with a (C,) weight
        talpha = torch.tensor(layer.alpha.data.reshape(-1).copy(), requires_grad=True)
        ty = F.prelu(tx.permute(0, 3, 1, 2), talpha).permute(0, 2, 3, 1)
    else:  # a slope per unit: the definition, in torch
        talpha = torch.tensor(layer.alpha.data.copy(), requires_grad=True)
        ty = torch.where(tx > 0, tx, talpha * tx)
    close(y, ty, dtype)
    g = r.standard_normal(ty.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)
    close(layer.alpha.grad, talpha.grad.reshape(layer.alpha.shape), dtype)


# ---------------------------------------------------------------------------------- BatchNorm
def _to_nchw(t, axis):
    """Move the channel axis to position 1, where torch's batch_norm expects it."""
    return torch.movedim(t, axis, 1)


@pytest.mark.parametrize(
    "shape, axis", [((16, 5), -1), ((4, 6, 6, 3), -1), ((5, 3, 7), 1), ((2, 3, 5, 4), -1)]
)
def test_batch_norm_training_output_and_gradients(shape, axis, dtype):
    r = np.random.default_rng(sum(shape))
    c = shape[axis]
    bn = layers.BatchNormalization(axis=axis, epsilon=1e-3)
    x_np = r.standard_normal(shape) * 2 + 1
    x, tx = pair(x_np, dtype)
    bn(x, training=False)  # build
    bn.set_weights([r.random(c) + 0.5, r.standard_normal(c), np.zeros(c), np.ones(c)])
    tg = torch.tensor(bn.gamma.data.copy(), requires_grad=True)
    tb = torch.tensor(bn.beta.data.copy(), requires_grad=True)
    y = bn(x, training=True)
    ty = F.batch_norm(_to_nchw(tx, axis), None, None, tg, tb, training=True, eps=1e-3)
    ty = torch.movedim(ty, 1, axis)
    close(y, ty, dtype)
    g = r.standard_normal(shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)
    close(bn.gamma.grad, tg.grad, dtype)
    close(bn.beta.grad, tb.grad, dtype)


def test_batch_norm_moving_statistics_after_several_steps_and_inference(dtype):
    r = np.random.default_rng(11)
    momentum, c = 0.9, 3
    bn = layers.BatchNormalization(momentum=momentum)
    # torch's momentum weighs the new batch: Keras's momentum m is torch's 1 - m
    run_mean = torch.zeros(c, dtype=getattr(torch, dtype))
    run_var = torch.ones(c, dtype=getattr(torch, dtype))
    keras_var = torch.ones(c, dtype=getattr(torch, dtype))
    for _ in range(5):
        xb = torch.tensor(r.standard_normal((8, 4, 4, c)) * 3 + 2).to(getattr(torch, dtype))
        bn(xb.numpy(), training=True)
        F.batch_norm(xb.permute(0, 3, 1, 2), run_mean, run_var, training=True, momentum=0.1)
        # Keras 3 moves towards the *biased* batch variance (ops.moments); torch's running_var
        # uses the unbiased one, so the variance recurrence is written here with torch's var
        batch_var = xb.var(dim=(0, 1, 2), unbiased=False)
        keras_var = keras_var * momentum + batch_var * (1 - momentum)
    close(bn.moving_mean, run_mean, dtype)
    close(bn.moving_variance, keras_var, dtype)
    assert not np.allclose(bn.moving_variance.data, run_var.numpy(), rtol=1e-3)

    xt = torch.tensor(r.standard_normal((4, 4, 4, c))).to(getattr(torch, dtype))
    y = bn(xt.numpy())  # inference: moving statistics
    ty = F.batch_norm(
        xt.permute(0, 3, 1, 2),
        torch.tensor(bn.moving_mean.data),
        torch.tensor(bn.moving_variance.data),
        torch.tensor(bn.gamma.data),
        torch.tensor(bn.beta.data),
        training=False,
        eps=1e-3,
    ).permute(0, 2, 3, 1)
    close(y, ty, dtype)


def test_batch_norm_inference_gradients(dtype):
    r = np.random.default_rng(12)
    bn = layers.BatchNormalization()
    x, tx = pair(r.standard_normal((6, 4)), dtype)
    bn(x)
    bn.set_weights(
        [r.random(4) + 0.5, r.standard_normal(4), r.standard_normal(4), r.random(4) + 1]
    )
    tg = torch.tensor(bn.gamma.data.copy(), requires_grad=True)
    tb = torch.tensor(bn.beta.data.copy(), requires_grad=True)
    rm, rv = torch.tensor(bn.moving_mean.data), torch.tensor(bn.moving_variance.data)
    y = bn(x, training=False)
    ty = F.batch_norm(tx, rm, rv, tg, tb, training=False, eps=1e-3)
    close(y, ty, dtype)
    y.sum().backward()
    ty.sum().backward()
    close(x.grad, tx.grad, dtype)
    close(bn.gamma.grad, tg.grad, dtype)
    close(bn.beta.grad, tb.grad, dtype)


# ---------------------------------------------------------------------------------- Embedding
@pytest.mark.parametrize("seed", range(3))
def test_embedding_forward_and_gradient(seed, dtype):
    r = np.random.default_rng(seed)
    vocab, dim = int(r.integers(2, 30)), int(r.integers(1, 6))
    ids = r.integers(0, vocab, size=(int(r.integers(1, 5)), int(r.integers(1, 9))))
    emb = layers.Embedding(vocab, dim)
    y = emb(ids)
    tw = torch.tensor(emb.embeddings.data.copy(), requires_grad=True)
    ty = F.embedding(torch.tensor(ids), tw)
    close(y, ty, dtype)
    g = r.standard_normal(ty.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    close(emb.embeddings.grad, tw.grad, dtype)


# ---------------------------------------------------------------------------------- Dropout
def test_dropout_statistics_match_torch():
    rate, n = 0.3, 100_000
    x = np.full(n, 2.0, dtype=np.float32)
    ours = layers.Dropout(rate)(x, training=True).data
    torch.manual_seed(0)
    theirs = F.dropout(torch.tensor(x), p=rate, training=True).numpy()
    # both inverted: survivors carry x / (1 - rate), the rest are exactly zero
    np.testing.assert_allclose(np.unique(ours), np.unique(theirs), rtol=1e-6)
    # the dropped fractions agree within 5 standard errors of their difference
    se = np.sqrt(2 * rate * (1 - rate) / n)
    assert abs((ours == 0).mean() - (theirs == 0).mean()) < 5 * se
    assert abs((ours == 0).mean() - rate) < 5 * se
    # both are the identity at inference
    np.testing.assert_array_equal(layers.Dropout(rate)(x).data, x)
    np.testing.assert_array_equal(F.dropout(torch.tensor(x), rate, training=False).numpy(), x)
