"""ember.ops.loss: every op against a NumPy transcription of its formula, gradcheck in float64,
stability at logits of +-1e4, dtypes and error messages."""

import numpy as np
import pytest

import ember as em
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.ops import loss as L


def np_log_softmax(z, axis=-1):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def leaf(a, grad=True):
    return em.tensor(np.asarray(a), requires_grad=grad)


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_sparse_softmax_cross_entropy_matches_log_softmax_formula(float64, rng, smoothing):
    z = rng.standard_normal((7, 5)) * 3
    y = rng.integers(0, 5, 7)
    logp = np_log_softmax(z)
    target = np.eye(5)[y] * (1 - smoothing) + smoothing / 5
    expected = -(target * logp).sum(-1)
    out = L.sparse_softmax_cross_entropy(z, y, label_smoothing=smoothing)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_sparse_softmax_cross_entropy_over_a_middle_axis(float64, rng):
    z = rng.standard_normal((3, 4, 6))
    y = rng.integers(0, 4, (3, 6))
    expected = -np.take_along_axis(np_log_softmax(z, axis=1), y[:, None, :], axis=1)[:, 0]
    out = L.sparse_softmax_cross_entropy(z, y, axis=1)
    assert out.shape == (3, 6)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_sparse_softmax_cross_entropy_ignore_index_zeroes_loss_and_gradient(float64, rng):
    z = leaf(rng.standard_normal((5, 3)))
    y = np.array([0, -1, 2, -1, 1])
    out = L.sparse_softmax_cross_entropy(z, y, ignore_index=-1)
    assert out.data[1] == 0 and out.data[3] == 0
    out.sum().backward()
    assert np.all(z.grad[[1, 3]] == 0)
    kept = [0, 2, 4]
    p = np.exp(np_log_softmax(z.data[kept]))
    np.testing.assert_allclose(z.grad[kept], p - np.eye(3)[y[kept]], rtol=1e-12)


def test_sparse_gradient_is_softmax_minus_onehot(float64, rng):
    z = leaf(rng.standard_normal((4, 6)))
    y = np.array([5, 0, 3, 3])
    L.sparse_softmax_cross_entropy(z, y).sum().backward()
    expected = np.exp(np_log_softmax(z.data)) - np.eye(6)[y]
    np.testing.assert_allclose(z.grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_softmax_cross_entropy_matches_formula_with_soft_targets(float64, rng, smoothing):
    z = rng.standard_normal((6, 4))
    t = rng.dirichlet(np.ones(4), size=6)
    ts = t * (1 - smoothing) + smoothing / 4
    expected = -(ts * np_log_softmax(z)).sum(-1)
    out = L.softmax_cross_entropy(z, t, label_smoothing=smoothing)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_binary_cross_entropy_with_logits_matches_naive_formula(float64, rng):
    x = rng.standard_normal((5, 3)) * 4
    y = rng.random((5, 3))
    s = 1 / (1 + np.exp(-x))
    expected = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(x, y).data, expected, rtol=1e-10)


def test_binary_cross_entropy_clips_probabilities_like_keras(float64):
    p = np.array([0.0, 1e-9, 0.3, 1.0])
    y = np.array([1.0, 1.0, 0.0, 0.0])
    q = np.clip(p, 1e-7, 1 - 1e-7)
    expected = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    np.testing.assert_allclose(L.binary_cross_entropy(p, y).data, expected, rtol=1e-9)


def test_binary_cross_entropy_passes_no_gradient_where_clipped(float64):
    p = leaf([0.0, 0.5, 1.0])
    L.binary_cross_entropy(p, np.array([1.0, 1.0, 0.0])).sum().backward()
    assert p.grad[0] == 0 and p.grad[2] == 0
    np.testing.assert_allclose(p.grad[1], -1 / 0.5, rtol=1e-12)  # d/dp -log p at p = 1/2


def test_regression_errors_match_their_formulas(float64, rng):
    p, t = rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5))
    d = p - t
    np.testing.assert_allclose(L.mse_loss(p, t).data, d**2, rtol=1e-14)
    np.testing.assert_allclose(L.l1_loss(p, t).data, np.abs(d), rtol=1e-14)
    for delta in (0.5, 1.0, 2.0):
        expected = np.where(np.abs(d) <= delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
        np.testing.assert_allclose(L.huber_loss(p, t, delta).data, expected, rtol=1e-14)


def test_reduction_argument_of_elementwise_losses(float64, rng):
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    assert L.mse_loss(p, t).shape == (3, 4)
    np.testing.assert_allclose(L.mse_loss(p, t, reduction="mean").item(), ((p - t) ** 2).mean())
    np.testing.assert_allclose(L.l1_loss(p, t, reduction="sum").item(), np.abs(p - t).sum())
    with pytest.raises(EmberValueError, match="reduction must be one of"):
        L.mse_loss(p, t, reduction="avg")


# ---------------------------------------------------------------------------- cross_entropy
def test_cross_entropy_is_the_batch_mean_for_index_and_dense_labels(float64, rng):
    z = rng.standard_normal((8, 3))
    y = rng.integers(0, 3, 8)
    expected = -np_log_softmax(z)[np.arange(8), y].mean()
    np.testing.assert_allclose(L.cross_entropy(z, y).item(), expected, rtol=1e-12)
    np.testing.assert_allclose(L.cross_entropy(z, np.eye(3)[y]).item(), expected, rtol=1e-12)
    np.testing.assert_allclose(L.cross_entropy(z, y[:, None]).item(), expected, rtol=1e-12)
    np.testing.assert_allclose(L.cross_entropy(z, y.astype(float)).item(), expected, rtol=1e-12)


def test_cross_entropy_ignore_index_averages_over_kept_examples(float64, rng):
    z = rng.standard_normal((6, 4))
    y = np.array([1, 3, -100, 0, -100, 2])
    kept = y != -100
    expected = -np_log_softmax(z[kept])[np.arange(4), y[kept]].mean()
    out = L.cross_entropy(z, y, ignore_index=-100)
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)


# ---------------------------------------------------------------------------- gradcheck
def test_gradcheck_sparse_softmax_cross_entropy(float64, rng):
    z = leaf(rng.standard_normal((4, 5)))
    y = rng.integers(0, 5, 4)
    assert em.gradcheck(lambda a: L.sparse_softmax_cross_entropy(a, y), [z])


def test_gradcheck_sparse_softmax_cross_entropy_axis_smoothing_ignore(float64, rng):
    z = leaf(rng.standard_normal((2, 4, 3)))
    y = np.array([[0, 3, 1], [2, 2, 7]])
    assert em.gradcheck(
        lambda a: L.sparse_softmax_cross_entropy(
            a, y, axis=1, label_smoothing=0.2, ignore_index=7
        ),
        [z],
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gradcheck_softmax_cross_entropy_logits_and_targets(float64, rng, smoothing):
    z = leaf(rng.standard_normal((3, 5)))
    t = leaf(rng.dirichlet(np.ones(5), size=3))
    assert em.gradcheck(lambda a, b: L.softmax_cross_entropy(a, b, smoothing), [z, t])
    z3 = leaf(rng.standard_normal((4, 2, 3)))
    t3 = rng.dirichlet(np.ones(4), size=(2, 3)).transpose(2, 0, 1)
    assert em.gradcheck(lambda a: L.softmax_cross_entropy(a, t3, smoothing, axis=0), [z3])


def test_gradcheck_binary_cross_entropy_with_logits(float64, rng):
    x = leaf(rng.standard_normal((3, 4)) * 3)
    y = leaf(rng.random((3, 4)))
    assert em.gradcheck(L.binary_cross_entropy_with_logits, [x, y])


def test_gradcheck_binary_cross_entropy(float64, rng):
    p = leaf(rng.uniform(0.05, 0.95, (3, 4)))
    y = leaf(rng.random((3, 4)))
    assert em.gradcheck(L.binary_cross_entropy, [p, y])


@pytest.mark.parametrize("fn", [L.mse_loss, L.l1_loss, L.huber_loss])
def test_gradcheck_regression_errors(float64, rng, fn):
    p = leaf(rng.standard_normal((4, 3)) * 2)
    # keep |d| away from 0 (l1's kink) and from delta = 1 (Huber's seam)
    d = rng.uniform(0.2, 0.8, (4, 3)) * rng.choice([-1, 1], (4, 3))
    d[::2] *= 3
    t = leaf(p.data - d)
    assert em.gradcheck(fn, [p, t])


def test_gradcheck_cross_entropy_mean(float64, rng):
    z = leaf(rng.standard_normal((5, 3)))
    y = np.array([0, 2, -1, 1, 2])
    assert em.gradcheck(lambda a: L.cross_entropy(a, y, 0.1, ignore_index=-1), [z])


# ---------------------------------------------------------------------------- stability
EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, 0.0, 1e4]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_cross_entropy_is_exact_and_finite_at_logits_1e4(dtype):
    z = em.tensor(EXTREME.astype(dtype), requires_grad=True, dtype=dtype)
    out = L.sparse_softmax_cross_entropy(z, np.array([1, 0, 2]))
    np.testing.assert_allclose(out.data, [2e4, 2e4, 0.0])
    out.sum().backward()
    # softmax is one-hot at the 1e4 entry: gradient = onehot(argmax) - onehot(label)
    np.testing.assert_allclose(z.grad, [[1, -1, 0], [-1, 1, 0], [0, 0, 0]], atol=1e-30)


def test_dense_cross_entropy_is_finite_at_logits_1e4():
    z = leaf(EXTREME.astype(np.float32))
    out = L.softmax_cross_entropy(z, np.eye(3, dtype=np.float32)[[1, 0, 2]], label_smoothing=0.1)
    out.sum().backward()
    assert np.isfinite(out.data).all() and np.isfinite(z.grad).all()
    # row 0: log softmax = (0, -2e4, -1e4), smoothed target (0.1/3, 0.9 + 0.1/3, 0.1/3)
    np.testing.assert_allclose(out.data[0], (0.9 + 0.1 / 3) * 2e4 + (0.1 / 3) * 1e4, rtol=1e-6)


def test_binary_cross_entropy_with_logits_is_exact_at_logits_1e4():
    x = leaf(np.array([1e4, -1e4, 1e4, -1e4], np.float32))
    y = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    out = L.binary_cross_entropy_with_logits(x, y)
    np.testing.assert_allclose(out.data, [0, 0, 1e4, 1e4])
    out.sum().backward()
    np.testing.assert_allclose(x.grad, [0, 0, 1, -1])


def test_binary_cross_entropy_on_saturated_probabilities_is_finite():
    p = leaf(np.array([0.0, 1.0, 1.0, 0.0], np.float32))
    out = L.binary_cross_entropy(p, np.array([1.0, 0.0, 1.0, 0.0], np.float32))
    out.sum().backward()
    assert np.isfinite(out.data).all() and np.isfinite(p.grad).all()
    # Keras clips to [1e-7, 1 - 1e-7] in float32, where 1 - 1e-7 rounds to 1 - 2^-23
    low, high = np.float32(1e-7), np.float32(1 - 1e-7)
    np.testing.assert_allclose(out.data[:2], [-np.log(low), -np.log1p(-high)], rtol=1e-5)


# ---------------------------------------------------------------------------- dtypes and views
@pytest.mark.parametrize(
    "call",
    [
        lambda z: L.sparse_softmax_cross_entropy(z, np.array([0, 1, 2])),
        lambda z: L.softmax_cross_entropy(z, np.eye(3)),  # float64 targets: cast, no upcast
        lambda z: L.binary_cross_entropy_with_logits(z, np.ones((3, 3))),
        lambda z: L.binary_cross_entropy(z.sigmoid(), np.ones((3, 3)) * 0.5),
        lambda z: L.mse_loss(z, np.zeros((3, 3))),
        lambda z: L.l1_loss(z, np.ones((3, 3))),
        lambda z: L.huber_loss(z, np.ones((3, 3)), 0.5),
        lambda z: L.cross_entropy(z, [2, 1, 0], label_smoothing=0.1),
    ],
)
def test_float32_in_float32_out_value_and_gradient(rng, call):
    z = leaf(rng.standard_normal((3, 3)).astype(np.float32))
    out = call(z)
    assert out.dtype == np.float32
    out.sum().backward()
    assert z.grad.dtype == np.float32


def test_backward_accepts_a_read_only_broadcast_gradient(rng):
    z = leaf(rng.standard_normal((4, 3)).astype(np.float32))
    out = L.sparse_softmax_cross_entropy(z, np.array([0, 1, 2, 0]))
    g = np.broadcast_to(np.float32(2.0), (4,))
    assert not g.flags.writeable
    out.backward(g)
    p = np.exp(np_log_softmax(z.data.astype(np.float64)))
    np.testing.assert_allclose(z.grad, 2 * (p - np.eye(3)[[0, 1, 2, 0]]), rtol=1e-5, atol=1e-7)


def test_backward_twice_with_retained_graph_gives_the_same_gradient(rng):
    z = leaf(rng.standard_normal((3, 4)).astype(np.float32))
    out = L.sparse_softmax_cross_entropy(z, np.array([3, 1, 0]), label_smoothing=0.1).sum()
    out.backward(retain_graph=True)
    first = z.grad.copy()
    out.backward()
    np.testing.assert_allclose(z.grad, 2 * first, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.float32])
def test_sparse_labels_of_any_int_or_whole_float_dtype_agree(rng, dtype):
    z = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.array([3, 0, 2, 1, 3])
    ref = L.sparse_softmax_cross_entropy(z, y).data
    np.testing.assert_array_equal(L.sparse_softmax_cross_entropy(z, y.astype(dtype)).data, ref)
    np.testing.assert_array_equal(
        L.sparse_softmax_cross_entropy(z, y.astype(dtype)[:, None]).data, ref
    )


# ---------------------------------------------------------------------------- errors
def test_label_out_of_range_names_the_label_and_the_number_of_classes():
    with pytest.raises(EmberValueError, match=r"label 5 is out of range for 4 classes"):
        L.sparse_softmax_cross_entropy(np.zeros((3, 4)), np.array([0, 5, 1]))
    with pytest.raises(EmberValueError, match=r"label -1 is out of range for 4 classes"):
        L.cross_entropy(np.zeros((2, 4)), np.array([-1, 1]))


def test_fractional_float_labels_are_rejected():
    with pytest.raises(EmberValueError, match=r"whole class indices, received label 1.5"):
        L.sparse_softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.5]))


def test_label_shape_mismatch_names_expected_and_received_shapes():
    with pytest.raises(
        ShapeError, match=r"labels must have shape \(3,\).*received labels of shape \(4,\)"
    ):
        L.sparse_softmax_cross_entropy(np.zeros((3, 5)), np.zeros(4, int))


def test_dense_target_shape_mismatch_names_both_shapes():
    with pytest.raises(
        ShapeError, match=r"softmax_cross_entropy: targets .* expected \(2, 3\), received \(2, 4\)"
    ):
        L.softmax_cross_entropy(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(
        ShapeError, match=r"mse_loss: target .* expected \(2, 3\), received \(3, 2\)"
    ):
        L.mse_loss(np.zeros((2, 3)), np.zeros((3, 2)))


def test_bad_arguments_raise_ember_errors():
    with pytest.raises(
        EmberValueError, match=r"label_smoothing must lie in \[0, 1\], received 1.5"
    ):
        L.softmax_cross_entropy(np.zeros((2, 3)), np.zeros((2, 3)), label_smoothing=1.5)
    with pytest.raises(EmberValueError, match=r"delta must be positive, received delta=0"):
        L.huber_loss(np.zeros(2), np.zeros(2), delta=0)
    with pytest.raises(EmberValueError, match=r"axis=2 is out of range"):
        L.sparse_softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2, int), axis=2)
    with pytest.raises(EmberTypeError, match=r"labels must be integer class indices"):
        L.sparse_softmax_cross_entropy(np.zeros((2, 3)), np.array([True, False]))


# ---------------------------------------------------------------------------- reused softmax
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_given_softmax_probabilities_change_neither_loss_nor_gradient(
    float64, rng, smoothing, scale
):
    z = rng.standard_normal((3, 5, 4)) * scale
    p = np.exp(np_log_softmax(z, axis=1))
    y = rng.integers(0, 5, (3, 4))
    t = rng.dirichlet(np.ones(5), size=(3, 4)).transpose(0, 2, 1)
    cases = [
        (L.SparseSoftmaxCrossEntropy, y, {"ignore_index": None}),
        (L.SoftmaxCrossEntropy, t, {}),
    ]
    for op, target, extra in cases:
        results = []
        for probs in (None, p):
            a = leaf(z)
            out = op.apply(a, target, axis=1, label_smoothing=smoothing, probs=probs, **extra)
            out.backward(np.linspace(0.5, 2, out.size).reshape(out.shape))
            results.append((out.data, a.grad))
        np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12, atol=1e-15)
