"""Loss ops and loss classes against PyTorch (CPU): values and the gradients of predictions and
targets, in float64 (1e-8 relative) and float32 (1e-4), over randomized shapes, label
smoothing, ignored labels, sample weights and logits of +-1e4."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember import losses
from ember.ops import loss as L

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-8, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-6)}
DTYPES = [np.float64, np.float32]
SEEDS = [0, 1, 2]


def pair(arr, dtype, grad=True):
    """The same values as an ember tensor and a torch tensor, both of `dtype`."""
    arr = np.asarray(arr, dtype)
    return (
        em.tensor(arr, requires_grad=grad, dtype=dtype),
        torch.tensor(arr, requires_grad=grad),
    )


def run_both(ember_out, torch_out, seed):
    """Backpropagate one random cotangent through both outputs."""
    cot = np.random.default_rng(100 + seed).uniform(0.5, 1.5, ember_out.shape)
    ember_out.backward(cot.astype(ember_out.dtype))
    torch_out.backward(torch.tensor(cot, dtype=torch_out.dtype))


def close(ember_arr, torch_t, dtype):
    np.testing.assert_allclose(ember_arr, torch_t.detach().numpy(), **TOL[dtype])


def draw_shape(rng):
    n = int(rng.integers(1, 9))
    c = int(rng.integers(2, 7))
    return n, c


# ---------------------------------------------------------------------------- cross-entropy ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_sparse_cross_entropy_matches_torch_cross_entropy(dtype, seed, smoothing):
    rng = np.random.default_rng(seed)
    n, c = draw_shape(rng)
    z = rng.standard_normal((n, c)) * 3
    y = rng.integers(0, c, n)
    ez, tz = pair(z, dtype)
    out = L.sparse_softmax_cross_entropy(ez, y, label_smoothing=smoothing)
    ref = F.cross_entropy(tz, torch.tensor(y), reduction="none", label_smoothing=smoothing)
    close(out.data, ref, dtype)
    run_both(out, ref, seed)
    close(ez.grad, tz.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_sparse_cross_entropy_over_spatial_axes_matches_torch(dtype, seed):
    # ember: classes last (N, H, W, C); torch: classes on axis 1 (N, C, H, W)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 5, (2, 3, 4))
    ez, tz = pair(z, dtype)
    out = L.sparse_softmax_cross_entropy(ez, y, label_smoothing=0.1)
    ref = F.cross_entropy(
        tz.permute(0, 3, 1, 2), torch.tensor(y), reduction="none", label_smoothing=0.1
    )
    close(out.data, ref, dtype)
    run_both(out, ref, seed)
    close(ez.grad, tz.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_dense_cross_entropy_matches_torch_probability_targets(dtype, seed, smoothing):
    rng = np.random.default_rng(seed)
    n, c = draw_shape(rng)
    z = rng.standard_normal((n, c)) * 2
    t = rng.dirichlet(np.ones(c), size=n)
    ez, tz = pair(z, dtype)
    et, tt = pair(t, dtype)
    out = L.softmax_cross_entropy(ez, et, label_smoothing=smoothing)
    ref = F.cross_entropy(tz, tt, reduction="none", label_smoothing=smoothing)
    close(out.data, ref, dtype)
    run_both(out, ref, seed)
    close(ez.grad, tz.grad, dtype)
    close(et.grad, tt.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_mean_with_ignore_index_matches_nll_loss(dtype, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((9, 4))
    y = rng.integers(0, 4, 9)
    y[rng.choice(9, 3, replace=False)] = -100
    ez, tz = pair(z, dtype)
    out = L.cross_entropy(ez, y, ignore_index=-100)
    ref = F.nll_loss(F.log_softmax(tz, dim=-1), torch.tensor(y), ignore_index=-100)
    close(out.data, ref, dtype)
    out.backward()
    ref.backward()
    close(ez.grad, tz.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_at_logits_1e4_matches_torch(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, 0.0, 1e4]])
    y = np.array([1, 0, 2])
    for smoothing in (0.0, 0.1):
        ez, tz = pair(z, dtype)
        out = L.cross_entropy(ez, y, label_smoothing=smoothing)
        ref = F.cross_entropy(tz, torch.tensor(y), label_smoothing=smoothing)
        close(out.data, ref, dtype)
        out.backward()
        ref.backward()
        assert np.isfinite(ez.grad).all()
        close(ez.grad, tz.grad, dtype)


# ---------------------------------------------------------------------------- binary ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_cross_entropy_with_logits_matches_torch(dtype, seed):
    rng = np.random.default_rng(seed)
    shape = draw_shape(rng)
    x = rng.standard_normal(shape) * 4
    x.flat[0] = 1e4 if seed % 2 else -1e4  # one extreme logit in every case
    y = rng.random(shape)
    ex, tx = pair(x, dtype)
    ey, ty = pair(y, dtype)
    out = L.binary_cross_entropy_with_logits(ex, ey)
    ref = F.binary_cross_entropy_with_logits(tx, ty, reduction="none")
    close(out.data, ref, dtype)
    run_both(out, ref, seed)
    close(ex.grad, tx.grad, dtype)
    close(ey.grad, ty.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_cross_entropy_matches_torch_inside_the_clip_range(dtype, seed):
    rng = np.random.default_rng(seed)
    shape = draw_shape(rng)
    p = rng.uniform(0.01, 0.99, shape)
    y = rng.random(shape)
    ep, tp = pair(p, dtype)
    ey, ty = pair(y, dtype)
    out = L.binary_cross_entropy(ep, ey)
    ref = F.binary_cross_entropy(tp, ty, reduction="none")
    close(out.data, ref, dtype)
    run_both(out, ref, seed)
    close(ep.grad, tp.grad, dtype)
    close(ey.grad, ty.grad, dtype)


# ---------------------------------------------------------------------------- regression ops
REGRESSION = [
    ("mse", lambda p, t: L.mse_loss(p, t), lambda p, t: F.mse_loss(p, t, reduction="none")),
    ("l1", lambda p, t: L.l1_loss(p, t), lambda p, t: F.l1_loss(p, t, reduction="none")),
    (
        "huber1",
        lambda p, t: L.huber_loss(p, t),
        lambda p, t: F.huber_loss(p, t, reduction="none"),
    ),
    (
        "huber0.3",
        lambda p, t: L.huber_loss(p, t, delta=0.3),
        lambda p, t: F.huber_loss(p, t, reduction="none", delta=0.3),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name, ember_fn, torch_fn", REGRESSION, ids=[r[0] for r in REGRESSION])
def test_regression_losses_match_torch(dtype, seed, name, ember_fn, torch_fn):
    rng = np.random.default_rng(seed)
    shape = draw_shape(rng) + (int(rng.integers(1, 4)),)
    p = rng.standard_normal(shape) * 2
    t = rng.standard_normal(shape)
    ep, tp = pair(p, dtype)
    et, tt = pair(t, dtype)
    out = ember_fn(ep, et)
    ref = torch_fn(tp, tt)
    close(out.data, ref, dtype)
    run_both(out, ref, seed)
    close(ep.grad, tp.grad, dtype)
    close(et.grad, tt.grad, dtype)


# ---------------------------------------------------------------------------- loss classes
def weighted_mean(per_example, w):
    """Keras's sum_over_batch_size: sum(loss * w) / batch, computed in torch."""
    return (per_example * w).sum() / per_example.shape[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_loss_classes_match_torch_with_sample_weights(dtype, seed):
    rng = np.random.default_rng(seed)
    n, c = draw_shape(rng)
    w = rng.uniform(0, 2, n)
    tw = torch.tensor(w.astype(dtype))
    z = rng.standard_normal((n, c)) * 2
    y = rng.integers(0, c, n)
    onehot = np.eye(c)[y]
    bin_t = rng.integers(0, 2, (n, c)).astype(float)
    reg_t = rng.standard_normal((n, c))

    cases = [
        (
            losses.SparseCategoricalCrossentropy(from_logits=True),
            y,
            lambda a: F.cross_entropy(a, torch.tensor(y), reduction="none"),
        ),
        (
            losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
            onehot,
            lambda a: F.cross_entropy(
                a, torch.tensor(onehot, dtype=a.dtype), reduction="none", label_smoothing=0.1
            ),
        ),
        (
            losses.BinaryCrossentropy(from_logits=True),
            bin_t,
            lambda a: F.binary_cross_entropy_with_logits(
                a, torch.tensor(bin_t, dtype=a.dtype), reduction="none"
            ).mean(-1),
        ),
        (
            losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
            bin_t,
            lambda a: F.binary_cross_entropy_with_logits(
                a, torch.tensor(bin_t * 0.8 + 0.1, dtype=a.dtype), reduction="none"
            ).mean(-1),
        ),
        (
            losses.MeanSquaredError(),
            reg_t,
            lambda a: F.mse_loss(a, torch.tensor(reg_t, dtype=a.dtype), reduction="none").mean(-1),
        ),
        (
            losses.MeanAbsoluteError(),
            reg_t,
            lambda a: F.l1_loss(a, torch.tensor(reg_t, dtype=a.dtype), reduction="none").mean(-1),
        ),
        (
            losses.Huber(delta=0.7),
            reg_t,
            lambda a: F.huber_loss(
                a, torch.tensor(reg_t, dtype=a.dtype), reduction="none", delta=0.7
            ).mean(-1),
        ),
    ]
    for loss, y_true, torch_per_example in cases:
        for weights in (None, w):
            ez, tz = pair(z, dtype)
            out = loss(y_true, ez, sample_weight=weights)
            per = torch_per_example(tz)
            ref = per.mean() if weights is None else weighted_mean(per, tw)
            close(out.data, ref, dtype)
            out.backward()
            ref.backward()
            close(ez.grad, tz.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_probability_losses_on_a_softmax_output_match_torch(dtype, seed):
    # the fast path (softmax node -> fused op on its logits) against torch's log-softmax CE,
    # and the sigmoid fast path against binary_cross_entropy_with_logits
    rng = np.random.default_rng(seed)
    n, c = draw_shape(rng)
    z = rng.standard_normal((n, c)) * 3
    z.flat[0] = 1e4
    y = rng.integers(0, c, n)
    ez, tz = pair(z, dtype)
    out = losses.SparseCategoricalCrossentropy()(y, ez.softmax())
    ref = F.cross_entropy(tz, torch.tensor(y))
    close(out.data, ref, dtype)
    out.backward()
    ref.backward()
    close(ez.grad, tz.grad, dtype)

    t = rng.integers(0, 2, (n, c)).astype(float)
    ez, tz = pair(z, dtype)
    out = losses.BinaryCrossentropy()(t, ez.sigmoid())
    ref = F.binary_cross_entropy_with_logits(tz, torch.tensor(t, dtype=tz.dtype))
    close(out.data, ref, dtype)
    out.backward()
    ref.backward()
    close(ez.grad, tz.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_path_matches_torch_binary_cross_entropy(dtype):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.02, 0.98, (6, 3))
    t = rng.integers(0, 2, (6, 3)).astype(float)
    ep, tp = pair(p, dtype)
    out = losses.BinaryCrossentropy()(t, ep)  # a leaf: no sigmoid node, Keras's formula
    ref = F.binary_cross_entropy(tp, torch.tensor(t, dtype=tp.dtype))
    close(out.data, ref, dtype)
    out.backward()
    ref.backward()
    close(ep.grad, tp.grad, dtype)
