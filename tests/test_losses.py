"""ember.losses: Keras 3 reduction semantics (checked against a NumPy transcription of Keras's
rule), Keras's published values, the softmax/sigmoid logits fast path against the formulas,
gradcheck of every loss class, lookup and serialization, and error messages."""

import numpy as np
import pytest

import ember as em
from ember import losses
from ember.errors import EmberTypeError, EmberValueError, ShapeError

REDUCTIONS = ["sum_over_batch_size", "sum", "none", None, "mean", "mean_with_sample_weight"]


# ---------------------------------------------------------------------------- Keras's rule
def keras_same_rank(x1, x2):
    """Keras's squeeze_or_expand_to_same_rank (expand_rank_1=True), transcribed."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def keras_reduce(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    """Keras 3's reduce_weighted_values (keras/src/losses/loss.py), transcribed in NumPy."""
    values = np.asarray(values, np.float64)
    sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    if mask is not None:
        m = np.asarray(mask, np.float64)
        if reduction in ("mean", "sum_over_batch_size"):
            valid = m.sum()
            m = m * (m.size / valid if valid else 0.0)
        if sw is not None:
            m, sw = keras_same_rank(m, sw)
            sw = sw * m
        else:
            sw = m
    if sw is not None:
        values, sw = keras_same_rank(values, sw)
        values = values * sw
    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values
    loss = values.sum()
    if reduction == "mean_with_sample_weight" and sw is not None:
        return loss / sw.sum() if sw.sum() else 0.0
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        return loss / values.size
    return loss


def np_log_softmax(z, axis=-1):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def np_softmax(z, axis=-1):
    return np.exp(np_log_softmax(z, axis))


EPS = 1e-7


def np_cce_probs(t, p, axis=-1):
    """Keras's categorical cross-entropy on probabilities (renormalize, clip, log)."""
    p = np.clip(p / p.sum(axis=axis, keepdims=True), EPS, 1 - EPS)
    return -(t * np.log(p)).sum(axis=axis)


def np_bce_probs(t, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


WEIGHTS = {
    "none": None,
    "per_example": "vec",
    "column": "col",
    "scalar": 2.5,
}


def make_weight(kind, n, rng):
    if kind == "vec":
        return rng.uniform(0, 2, n)
    if kind == "col":
        return rng.uniform(0, 2, (n, 1))
    return kind


# ---------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", list(WEIGHTS))
@pytest.mark.parametrize("use_mask", [False, True])
def test_reduction_matches_keras_rule(float64, rng, reduction, weight, use_mask):
    y_true, y_pred = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    sw = make_weight(WEIGHTS[weight], 6, rng)
    mask = np.array([1, 0, 1, 1, 0, 1], bool) if use_mask else None
    per_example = ((y_true - y_pred) ** 2).mean(-1)
    expected = keras_reduce(per_example, sw, mask, reduction)
    out = losses.MeanSquaredError(reduction=reduction)(y_true, y_pred, sample_weight=sw, mask=mask)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_sparse_ignore_class_masks_like_keras(float64, rng, reduction):
    z = rng.standard_normal((7, 4))
    y = np.array([0, 3, 255, 1, 255, 2, 0])
    sw = rng.uniform(0.5, 2, 7)
    valid = y != 255
    per_example = np.where(valid, -np_log_softmax(z)[np.arange(7), np.where(valid, y, 0)], 0)
    expected = keras_reduce(per_example, sw, valid, reduction)
    loss = losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=255, reduction=reduction
    )
    np.testing.assert_allclose(loss(y, z, sample_weight=sw).data, expected, rtol=1e-12)
    # the same through the probabilities path
    loss_p = losses.SparseCategoricalCrossentropy(ignore_class=255, reduction=reduction)
    np.testing.assert_allclose(
        loss_p(y, np_softmax(z), sample_weight=sw).data, expected, rtol=1e-9
    )


def test_default_reduction_is_weighted_sum_over_batch_size(float64, rng):
    y = rng.integers(0, 3, 5)
    z = rng.standard_normal((5, 3))
    w = np.array([0.0, 1.0, 2.0, 0.5, 3.0])
    per_example = -np_log_softmax(z)[np.arange(5), y]
    out = losses.SparseCategoricalCrossentropy(from_logits=True)(y, z, sample_weight=w)
    np.testing.assert_allclose(out.item(), (per_example * w).sum() / 5, rtol=1e-12)


def test_sequence_losses_take_one_weight_per_example(float64, rng):
    # (batch, time, features): per-example losses are (batch, time); a (batch,) weight covers
    # every step of its example and the sum is divided by batch * time
    y_true, y_pred = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    w = np.array([1.0, 0.0, 2.0])
    per_step = ((y_true - y_pred) ** 2).mean(-1)
    out = losses.MeanSquaredError()(y_true, y_pred, sample_weight=w)
    np.testing.assert_allclose(out.item(), (per_step * w[:, None]).sum() / 12, rtol=1e-12)
    full = rng.uniform(size=(3, 4))
    out = losses.MeanSquaredError()(y_true, y_pred, sample_weight=full)
    np.testing.assert_allclose(out.item(), keras_reduce(per_step, full), rtol=1e-12)


def test_one_dimensional_predictions_are_one_per_example(float64, rng):
    # ember's documented choice: a 1-D y_pred is (batch,), so weights scale each example
    y_true, y_pred, w = rng.standard_normal(6), rng.standard_normal(6), rng.uniform(0, 2, 6)
    expected = ((y_true - y_pred) ** 2 * w).sum() / 6
    out = losses.MeanSquaredError()(y_true, y_pred, sample_weight=w)
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)
    out_col = losses.MeanSquaredError()(y_true, y_pred[:, None], sample_weight=w)
    np.testing.assert_allclose(out_col.item(), expected, rtol=1e-12)
    assert losses.MeanSquaredError(reduction="none")(y_true, y_pred).shape == (6,)


# ---------------------------------------------------------------------------- Keras's values
def test_keras_mean_squared_error_published_values():
    # keras losses_test.py MeanSquaredErrorTest (unweighted, sample-weighted, scalar-weighted)
    y_true = np.array([[1, 9, 2], [-5, -2, 6]], np.float32)
    y_pred = np.array([[4, 8, 12], [8, 1, 3]], np.float32)
    mse = losses.MeanSquaredError()
    np.testing.assert_allclose(mse(y_true, y_pred).item(), 49.5, rtol=1e-6)
    np.testing.assert_allclose(
        mse(y_true, y_pred, sample_weight=np.array([1.2, 3.4])).item(), 767.8 / 6, rtol=1e-6
    )
    np.testing.assert_allclose(mse(y_true, y_pred, sample_weight=2.3).item(), 113.85, rtol=1e-6)


def test_keras_docstring_examples():
    y_true_c = np.array([[0, 1, 0], [0, 0, 1]])
    y_pred_c = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    np.testing.assert_allclose(
        losses.categorical_crossentropy(y_true_c, y_pred_c).data, [0.0513, 2.303], rtol=1e-3
    )
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(np.array([1, 2]), y_pred_c).data,
        [0.0513, 2.303],
        rtol=1e-3,
    )
    y_true_b = np.array([[0, 1], [0, 0]])
    y_pred_b = np.array([[0.6, 0.4], [0.4, 0.6]])
    np.testing.assert_allclose(
        losses.binary_crossentropy(y_true_b, y_pred_b).data, [0.916, 0.714], rtol=1e-3
    )
    np.testing.assert_allclose(losses.Huber()(y_true_b, y_pred_b).item(), 0.155, rtol=1e-3)


# ---------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_crossentropy_on_probabilities_is_keras_formula(float64, rng, smoothing):
    p = rng.uniform(0.05, 1, (5, 4))  # not normalized: Keras renormalizes
    t = np.eye(4)[rng.integers(0, 4, 5)]
    ts = t * (1 - smoothing) + smoothing / 4
    out = losses.CategoricalCrossentropy(label_smoothing=smoothing, reduction="none")(t, p)
    np.testing.assert_allclose(out.data, np_cce_probs(ts, p), rtol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_crossentropy_from_logits_is_log_softmax_formula(float64, rng, smoothing):
    z = rng.standard_normal((5, 4))
    t = np.eye(4)[rng.integers(0, 4, 5)]
    ts = t * (1 - smoothing) + smoothing / 4
    loss = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    np.testing.assert_allclose(
        loss(t, z).item(), -(ts * np_log_softmax(z)).sum(-1).mean(), rtol=1e-12
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_binary_crossentropy_probabilities_and_logits(float64, rng, smoothing):
    z = rng.standard_normal((4, 3)) * 3
    t = rng.integers(0, 2, (4, 3)).astype(float)
    ts = t * (1 - smoothing) + 0.5 * smoothing
    p = 1 / (1 + np.exp(-z))
    expected = np_bce_probs(ts, p).mean(-1)
    on_probs = losses.BinaryCrossentropy(label_smoothing=smoothing, reduction="none")(t, p)
    np.testing.assert_allclose(on_probs.data, expected, rtol=1e-9)
    on_logits = losses.BinaryCrossentropy(True, smoothing, reduction="none")(t, z)
    np.testing.assert_allclose(on_logits.data, expected, rtol=1e-9)


def test_huber_and_mae_formulas(float64, rng):
    y_true, y_pred = rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5))
    d = y_pred - y_true
    for delta in (0.5, 1.5):
        h = np.where(np.abs(d) <= delta, 0.5 * d**2, delta * np.abs(d) - 0.5 * delta**2)
        out = losses.Huber(delta, reduction="none")(y_true, y_pred)
        np.testing.assert_allclose(out.data, h.mean(-1), rtol=1e-12)
    mae = losses.MeanAbsoluteError(reduction="sum")(y_true, y_pred)
    np.testing.assert_allclose(mae.item(), np.abs(d).mean(-1).sum(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(6,), (6, 1)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float32, np.float64])
def test_sparse_labels_shape_and_dtype_variants_agree(rng, shape, dtype):
    z = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    ref = -np_log_softmax(z.astype(np.float64))[np.arange(6), y].mean()
    out = losses.SparseCategoricalCrossentropy(from_logits=True)(y.astype(dtype).reshape(shape), z)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.item(), ref, rtol=1e-5)


def test_sparse_crossentropy_over_a_sequence_and_another_axis(float64, rng):
    z = rng.standard_normal((2, 3, 4))  # (batch, time, classes)
    y = rng.integers(0, 4, (2, 3))
    per = -np.take_along_axis(np_log_softmax(z), y[..., None], -1)[..., 0]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(loss(y, z).item(), per.mean(), rtol=1e-12)
    zt = z.transpose(0, 2, 1)  # classes on axis 1
    loss1 = losses.SparseCategoricalCrossentropy(from_logits=True, axis=1)
    np.testing.assert_allclose(loss1(y, zt).item(), per.mean(), rtol=1e-12)
    loss1p = losses.SparseCategoricalCrossentropy(axis=1)
    np.testing.assert_allclose(loss1p(y, np_softmax(zt, 1)).item(), per.mean(), rtol=1e-9)


# ---------------------------------------------------------------------------- logits fast path
def test_softmax_output_uses_its_logits_with_the_fused_op():
    z = em.tensor([[1e4, -1e4, 0.0], [0.0, 1.0, 2.0]], requires_grad=True)
    y = np.array([1, 2])
    p = z.softmax()
    out = losses.SparseCategoricalCrossentropy(reduction="none")(y, p)
    # logits formula: 2e4 for the first example (clipped probabilities would give 16.1)
    expected = -np_log_softmax(z.data.astype(np.float64))[np.arange(2), y]
    np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    assert type(out._ctx).__name__ == "SparseSoftmaxCrossEntropy"
    out.sum().backward()
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(z.grad, np_softmax(z.data.astype(np.float64)) - onehot, atol=1e-6)


def test_categorical_and_binary_fast_paths_match_the_probability_formulas(float64, rng):
    z = rng.standard_normal((5, 4))
    t = np.eye(4)[rng.integers(0, 4, 5)]
    a = em.tensor(z, requires_grad=True)
    fast = losses.CategoricalCrossentropy(label_smoothing=0.1)(t, a.softmax())
    assert type(fast._ctx).__name__ != "Sum"  # the reduction of the fused node's output
    ts = t * 0.9 + 0.1 / 4
    np.testing.assert_allclose(fast.item(), np_cce_probs(ts, np_softmax(z)).mean(), rtol=1e-10)
    fast.backward()
    np.testing.assert_allclose(a.grad, (np_softmax(z) - ts) / 5, rtol=1e-9, atol=1e-12)

    b = em.tensor(z, requires_grad=True)
    tb = rng.integers(0, 2, (5, 4)).astype(float)
    fast_b = losses.BinaryCrossentropy()(tb, b.sigmoid())
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(fast_b.item(), np_bce_probs(tb, p).mean(), rtol=1e-10)
    fast_b.backward()
    np.testing.assert_allclose(b.grad, (p - tb) / 20, rtol=1e-9)


def test_probabilities_without_a_graph_use_the_clipped_formula():
    z = np.array([[1e4, -1e4, 0.0]], np.float32)
    with em.no_grad():
        p = em.tensor(z).softmax()
    out = losses.SparseCategoricalCrossentropy()(np.array([1]), p)
    np.testing.assert_allclose(out.item(), -np.log(np.float32(EPS)), rtol=1e-5)
    q = em.tensor(np.array([[1e4]], np.float32)).sigmoid()
    out_b = losses.BinaryCrossentropy()(np.array([[0.0]]), q)
    np.testing.assert_allclose(out_b.item(), -np.log1p(-np.float32(1 - EPS)), rtol=1e-5)


def test_sigmoid_output_at_logits_1e4_gives_the_logits_loss():
    x = em.tensor(np.array([[1e4], [-1e4]], np.float32), requires_grad=True)
    out = losses.BinaryCrossentropy()(np.array([[0.0], [0.0]]), x.sigmoid())
    np.testing.assert_allclose(out.item(), 1e4 / 2)
    out.backward()
    np.testing.assert_allclose(x.grad, [[0.5], [0.0]])


def test_softmax_over_another_axis_is_not_taken_as_logits(float64, rng):
    z = em.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    p = z.softmax(axis=0)  # columns sum to one, rows do not
    t = np.eye(4)[[0, 2, 3]]
    out = losses.CategoricalCrossentropy(reduction="none")(t, p)
    np.testing.assert_allclose(out.data, np_cce_probs(t, p.data), rtol=1e-12)


def test_loss_after_the_softmax_graph_was_freed_falls_back_to_probabilities(float64, rng):
    z = em.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    p = z.softmax()
    y = np.array([0, 1, 2, 1])
    p.sum().backward()  # frees the softmax node
    out = losses.SparseCategoricalCrossentropy(reduction="none")(y, p)
    np.testing.assert_allclose(out.data, -np.log(p.data[np.arange(4), y]), rtol=1e-12)


def test_loss_does_not_backpropagate_through_the_softmax_node():
    # the fused path links the loss straight to the logits: backward never calls Softmax
    from ember.ops.activation import Softmax

    calls = []
    original = Softmax.backward

    def spy(self, g):
        calls.append(1)
        return original(self, g)

    z = em.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    Softmax.backward = spy
    try:
        losses.SparseCategoricalCrossentropy()(np.array([0, 1, 2, 0]), z.softmax()).backward()
    finally:
        Softmax.backward = original
    assert calls == [] and z.grad is not None


# ---------------------------------------------------------------------------- gradcheck
def _gradcheck_loss(loss, y_true, y_pred, sample_weight=None):
    p = em.tensor(y_pred, requires_grad=True)
    return em.gradcheck(lambda a: loss(y_true, a, sample_weight=sample_weight), [p])


@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_every_loss_class(float64, rng, weighted):
    n = 4
    w = rng.uniform(0.2, 2, n) if weighted else None
    reg_true = rng.standard_normal((n, 3))
    reg_pred = reg_true + rng.uniform(0.2, 0.8, (n, 3)) * rng.choice([-1, 1], (n, 3))
    reg_pred[:2] += 2.0  # some Huber errors on the linear side, none near delta
    assert _gradcheck_loss(losses.MeanSquaredError(), reg_true, reg_pred, w)
    assert _gradcheck_loss(losses.MeanAbsoluteError(), reg_true, reg_pred, w)
    assert _gradcheck_loss(losses.Huber(delta=1.0), reg_true, reg_pred, w)

    t = rng.integers(0, 2, (n, 3)).astype(float)
    probs = rng.uniform(0.05, 0.95, (n, 3))
    logits = rng.standard_normal((n, 3)) * 2
    for smoothing in (0.0, 0.2):
        assert _gradcheck_loss(losses.BinaryCrossentropy(label_smoothing=smoothing), t, probs, w)
        bce_logits = losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing)
        assert _gradcheck_loss(bce_logits, t, logits, w)

    onehot = np.eye(3)[rng.integers(0, 3, n)]
    for smoothing in (0.0, 0.2):
        assert _gradcheck_loss(
            losses.CategoricalCrossentropy(label_smoothing=smoothing), onehot, probs, w
        )
        assert _gradcheck_loss(losses.CategoricalCrossentropy(True, smoothing), onehot, logits, w)
    labels = rng.integers(0, 3, n)
    assert _gradcheck_loss(losses.SparseCategoricalCrossentropy(), labels, probs, w)
    assert _gradcheck_loss(losses.SparseCategoricalCrossentropy(True), labels, logits, w)
    labels[1] = -1
    assert _gradcheck_loss(
        losses.SparseCategoricalCrossentropy(True, ignore_class=-1), labels, logits, w
    )
    assert _gradcheck_loss(losses.SparseCategoricalCrossentropy(ignore_class=-1), labels, probs, w)


def test_gradcheck_through_the_softmax_fast_path(float64, rng):
    z = em.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    y = rng.integers(0, 3, 4)
    w = rng.uniform(0.5, 1.5, 4)
    loss = losses.SparseCategoricalCrossentropy()
    assert em.gradcheck(lambda a: loss(y, a.softmax(), sample_weight=w), [z])
    t = np.eye(3)[y]
    cce = losses.CategoricalCrossentropy(label_smoothing=0.1)
    assert em.gradcheck(lambda a: cce(t, a.softmax(), sample_weight=w), [z])
    bce = losses.BinaryCrossentropy(label_smoothing=0.1)
    assert em.gradcheck(lambda a: bce(t, a.sigmoid(), sample_weight=w), [z])


# ---------------------------------------------------------------------------- dtypes
def test_float32_loss_stays_float32_with_float64_weights(rng):
    z = em.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    out = losses.CategoricalCrossentropy(from_logits=True)(
        np.eye(3)[[0, 1, 2, 0]], z, sample_weight=np.array([1.0, 2.0, 0.5, 1.0])
    )
    assert out.dtype == np.float32
    out.backward()
    assert z.grad.dtype == np.float32


# ---------------------------------------------------------------------------- lookup
@pytest.mark.parametrize(
    "name, cls",
    [
        ("mse", losses.MeanSquaredError),
        ("mean_squared_error", losses.MeanSquaredError),
        ("MeanSquaredError", losses.MeanSquaredError),
        ("mae", losses.MeanAbsoluteError),
        ("mean_absolute_error", losses.MeanAbsoluteError),
        ("huber", losses.Huber),
        ("Huber", losses.Huber),
        ("binary_crossentropy", losses.BinaryCrossentropy),
        ("categorical_crossentropy", losses.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
        ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy),
    ],
)
def test_get_resolves_names_and_aliases(name, cls):
    assert type(losses.get(name)) is cls


def test_get_passes_instances_builds_classes_and_wraps_callables(rng):
    inst = losses.Huber(2.0)
    assert losses.get(inst) is inst
    assert losses.get(None) is None
    assert type(losses.get(losses.MeanAbsoluteError)) is losses.MeanAbsoluteError

    def double_abs(y_true, y_pred):
        return (y_pred - y_true).abs().mean(axis=-1) * 2

    wrapped = losses.get(double_abs)
    y_true, y_pred = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    w = np.array([1.0, 0.0, 3.0])
    expected = (2 * np.abs(y_pred - y_true).mean(-1) * w).sum() / 3
    np.testing.assert_allclose(
        wrapped(y_true, y_pred, sample_weight=w).item(), expected, rtol=1e-6
    )


def test_get_unknown_name_lists_known_losses():
    with pytest.raises(EmberValueError, match=r"unknown loss 'msee'.*'mse'"):
        losses.get("msee")
    with pytest.raises(EmberTypeError, match="expected a loss name"):
        losses.get(3)


def test_serialize_round_trips_every_config():
    for loss in [
        losses.MeanSquaredError(reduction="sum"),
        losses.MeanAbsoluteError(name="l1"),
        losses.Huber(delta=0.3),
        losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1, axis=-1),
        losses.CategoricalCrossentropy(label_smoothing=0.2),
        losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
        losses.LossFunctionWrapper(losses.mean_squared_error, reduction="none"),
    ]:
        config = losses.serialize(loss)
        again = losses.get(config)
        assert type(again) is type(loss)
        assert again.get_config() == loss.get_config()


def test_function_forms_equal_the_classes_without_reduction(float64, rng):
    y_true, y_pred = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(
        losses.mse(y_true, y_pred).data,
        losses.MeanSquaredError(reduction="none")(y_true, y_pred).data,
    )
    np.testing.assert_allclose(
        losses.huber(y_true, y_pred, 0.7).data,
        losses.Huber(0.7, reduction="none")(y_true, y_pred).data,
    )


# ---------------------------------------------------------------------------- errors
def test_sparse_label_out_of_range_names_loss_label_and_classes():
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(
        EmberValueError,
        match=r"sparse_categorical_crossentropy: label 4 is out of range for 3 classes",
    ):
        loss(np.array([0, 4]), np.full((2, 3), 1 / 3))


def test_shape_errors_name_the_loss_and_both_shapes():
    with pytest.raises(
        ShapeError, match=r"my_mse: y_true .* expected \(4, 2\), received y_true of shape \(4, 3\)"
    ):
        losses.MeanSquaredError(name="my_mse")(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(
        ShapeError, match=r"categorical_crossentropy: .*use sparse_categorical_crossentropy"
    ):
        losses.CategoricalCrossentropy()(np.array([0, 1]), np.full((2, 3), 1 / 3))
    with pytest.raises(
        ShapeError, match=r"sparse_categorical_crossentropy: labels must have shape \(2,\)"
    ):
        losses.SparseCategoricalCrossentropy()(np.zeros((3,), int), np.full((2, 3), 1 / 3))
    with pytest.raises(
        ShapeError, match=r"binary_crossentropy: sample_weight of shape \(3,\) does not fit"
    ):
        losses.BinaryCrossentropy()(
            np.zeros((2, 1)), np.full((2, 1), 0.5), sample_weight=[1, 2, 3]
        )


def test_bad_constructor_arguments_raise_ember_errors():
    with pytest.raises(
        EmberValueError, match=r"reduction must be one of .* received reduction='avg'"
    ):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(EmberValueError, match=r"label_smoothing must lie in \[0, 1\]"):
        losses.CategoricalCrossentropy(label_smoothing=-0.1)
    with pytest.raises(EmberTypeError, match=r"from_logits must be True or False"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(EmberValueError, match=r"delta must be a positive number"):
        losses.Huber(delta=-1)
    with pytest.raises(EmberTypeError, match=r"ignore_class must be an int or None"):
        losses.SparseCategoricalCrossentropy(ignore_class=1.5)


def test_mask_of_the_wrong_shape_is_a_shape_error_naming_the_mask():
    with pytest.raises(ShapeError, match=r"mean_squared_error: mask of shape \(4,\) does not fit"):
        losses.MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 2)), mask=np.ones(4, bool))
