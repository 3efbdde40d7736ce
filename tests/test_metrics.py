"""Streaming metrics against scikit-learn (over several batches, with sample weights), against
hand-computed values from Keras's documentation, and against a brute-force NumPy transcription
of Keras's thresholded AUC."""

import numpy as np
import pytest

import ember as em
from ember import metrics as M

skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn (test oracle) is not installed")

N = 503  # not a multiple of the batch size: the last batch is short


def stream(metric, y_true, y_pred, sample_weight=None, batch=64, tensors=False):
    for i in range(0, len(y_true), batch):
        sl = slice(i, i + batch)
        yt, yp = y_true[sl], y_pred[sl]
        if tensors:
            yp = em.tensor(yp)
        sw = None if sample_weight is None else sample_weight[sl]
        metric.update_state(yt, yp, sample_weight=sw)
    return metric.result()


@pytest.fixture
def multiclass():
    r = np.random.default_rng(0)
    y = r.integers(0, 4, N)
    scores = r.normal(size=(N, 4))
    scores[np.arange(N), y] += 1.0
    probs = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    w = r.uniform(0.1, 3.0, N)
    return y, probs.astype(np.float32), w


@pytest.fixture
def binary():
    r = np.random.default_rng(1)
    y = r.integers(0, 2, N)
    p = np.clip(0.35 * y + r.normal(0.33, 0.22, N), 0.0, 1.0)
    w = r.uniform(0.1, 3.0, N)
    return y, p.astype(np.float32), w


# --------------------------------------------------------------------------- accuracy family
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_categorical_accuracy_matches_sklearn(multiclass, weighted):
    y, p, w = multiclass
    w = w if weighted else None
    expected = skm.accuracy_score(y, p.argmax(1), sample_weight=w)
    assert stream(M.SparseCategoricalAccuracy(), y, p, w, tensors=True) == pytest.approx(expected)
    col = stream(M.SparseCategoricalAccuracy(), y[:, None], p, w)
    assert col == pytest.approx(expected)


def test_categorical_accuracy_matches_sklearn(multiclass):
    y, p, w = multiclass
    onehot = np.eye(4)[y]
    expected = skm.accuracy_score(y, p.argmax(1), sample_weight=w)
    assert stream(M.CategoricalAccuracy(), onehot, p, w) == pytest.approx(expected)


@pytest.mark.parametrize("column", [False, True])
def test_binary_accuracy_matches_sklearn(binary, column):
    y, p, w = binary
    if column:
        y, p = y[:, None], p[:, None]
    expected = skm.accuracy_score(y.ravel(), p.ravel() > 0.5, sample_weight=w)
    assert stream(M.BinaryAccuracy(), y, p, w) == pytest.approx(expected)
    expected = skm.accuracy_score(y.ravel(), p.ravel() > 0.7, sample_weight=w)
    assert stream(M.BinaryAccuracy(threshold=0.7), y, p, w) == pytest.approx(expected)


def test_accuracy_compares_labels(multiclass):
    y, p, w = multiclass
    pred = p.argmax(1)
    expected = skm.accuracy_score(y, pred, sample_weight=w)
    assert stream(M.Accuracy(), y, pred, w) == pytest.approx(expected)


def test_accuracy_examples_from_keras_docs():
    m = M.BinaryAccuracy()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(0.5)
    m = M.CategoricalAccuracy()
    m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3])
    assert m.result() == pytest.approx(0.3)
    m = M.SparseCategoricalAccuracy()
    m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
    assert m.result() == pytest.approx(0.5)
    m = M.Accuracy()
    m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]], sample_weight=[1, 1, 0, 0])
    assert m.result() == pytest.approx(0.5)


def test_batches_of_different_sizes_count_by_samples():
    m = M.BinaryAccuracy()
    m.update_state([1, 1, 1], [0.9, 0.9, 0.9])  # 3 right
    m.update_state([1], [0.1])  # 1 wrong
    assert m.result() == pytest.approx(0.75)


def test_mean_squared_error_matches_sklearn():
    r = np.random.default_rng(2)
    yt, yp, w = r.normal(size=(N, 3)), r.normal(size=(N, 3)), r.uniform(0.5, 2, N)
    expected = skm.mean_squared_error(yt, yp, sample_weight=w)
    assert stream(M.MeanSquaredError(), yt, yp, w) == pytest.approx(expected)
    one = skm.mean_squared_error(yt[:, 0], yp[:, 0])
    assert stream(M.MeanSquaredError(), yt[:, 0], yp[:, :1]) == pytest.approx(one)


def test_mean_is_the_weighted_average():
    r = np.random.default_rng(3)
    v, w = r.normal(size=N), r.uniform(0, 2, N)
    m = M.Mean()
    for i in range(0, N, 50):
        m.update_state(v[i : i + 50], sample_weight=w[i : i + 50])
    assert m.result() == pytest.approx(np.average(v, weights=w))
    m = M.Mean()
    m.update_state(2.0)
    m.update_state(np.array([4.0, 6.0]))
    assert m.result() == pytest.approx(4.0)
    assert M.Mean().result() == 0.0


# --------------------------------------------------------------------------- precision / recall
@pytest.mark.parametrize("cls,fn", [(M.Precision, "precision_score"), (M.Recall, "recall_score")])
def test_precision_recall_match_sklearn_binary(binary, cls, fn):
    y, p, w = binary
    ref = getattr(skm, fn)
    assert stream(cls(), y, p, w) == pytest.approx(ref(y, p > 0.5, sample_weight=w))
    multi = stream(cls(thresholds=[0.7, 0.2, 0.5]), y[:, None], p[:, None], w)
    assert isinstance(multi, np.ndarray) and multi.shape == (3,)
    for t, value in zip([0.7, 0.2, 0.5], multi):
        assert value == pytest.approx(ref(y, p > t, sample_weight=w))


def test_precision_class_id_scores_one_column(multiclass):
    y, p, w = multiclass
    onehot = np.eye(4)[y]
    expected = skm.precision_score(y == 2, p[:, 2] > 0.3, sample_weight=w)
    assert stream(M.Precision(thresholds=0.3, class_id=2), onehot, p, w) == pytest.approx(expected)


def test_precision_top_1_with_integer_labels_is_micro_precision(multiclass):
    y, p, w = multiclass
    expected = skm.precision_score(y, p.argmax(1), average="micro", sample_weight=w)
    assert stream(M.Precision(top_k=1), y, p, w) == pytest.approx(expected)
    assert stream(M.Recall(top_k=1), y, p, w) == pytest.approx(expected)


def test_precision_examples_from_keras_docs():
    m = M.Precision()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert m.result() == pytest.approx(1.0)
    m = M.Precision(top_k=2)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == pytest.approx(0.0)
    m = M.Precision(top_k=4)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == pytest.approx(0.5)
    assert M.Recall().result() == 0.0  # nothing seen: 0, not NaN


# --------------------------------------------------------------------------- F1
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("labels", ["sparse", "onehot"])
def test_f1_multiclass_matches_sklearn(multiclass, average, labels):
    y, p, w = multiclass
    yt = y if labels == "sparse" else np.eye(4)[y]
    got = stream(M.F1Score(average=average), yt, p, w)
    expected = skm.f1_score(y, p.argmax(1), average=average, sample_weight=w)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_f1_binary_matches_sklearn(binary):
    y, p, w = binary
    expected = skm.f1_score(y, p > 0.5, sample_weight=w)
    got = stream(M.F1Score(average="micro"), y, p, w)
    assert got == pytest.approx(expected, rel=1e-5)
    per_class = stream(M.F1Score(threshold=0.4), y[:, None], p[:, None], w)
    np.testing.assert_allclose(per_class, [skm.f1_score(y, p > 0.4, sample_weight=w)], rtol=1e-5)


def test_f1_multilabel_example_from_keras_docs():
    m = M.F1Score(threshold=0.5)
    m.update_state(
        np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
        np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]),
    )
    np.testing.assert_allclose(m.result(), [0.5, 0.8, 2 / 3], rtol=1e-5)


def test_f1_rejects_a_changing_number_of_classes_and_bad_average():
    m = M.F1Score(average="macro")
    m.update_state(np.eye(3)[[0, 1]], np.eye(3)[[0, 2]])
    with pytest.raises(ValueError, match="3 classes"):
        m.update_state(np.eye(4)[[0]], np.eye(4)[[0]])
    with pytest.raises(ValueError, match="average"):
        M.F1Score(average="samples")


# --------------------------------------------------------------------------- AUC
def keras_auc_reference(y, p, w, num_thresholds=200, curve="ROC"):
    """Keras's AUC written out by brute force: every threshold compared with every prediction."""
    eps = 1e-7
    t = np.array([-eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
                 + [1 + eps])  # fmt: skip
    above = p[None, :] > t[:, None]  # (T, N)
    pos = y[None, :] == 1
    tp = (above & pos) @ w
    fp = (above & ~pos) @ w
    fn = (~above & pos) @ w
    tn = (~above & ~pos) @ w
    if curve == "ROC":
        x, h = fp / (fp + tn), tp / (tp + fn)
        return np.sum((x[:-1] - x[1:]) * (h[:-1] + h[1:]) / 2)
    dtp = tp[:-1] - tp[1:]
    pp = tp + fp
    dp = pp[:-1] - pp[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dp > 0, dtp / np.where(dp > 0, dp, 1), 0.0)
        intercept = tp[1:] - slope * pp[1:]
        ratio = np.where((pp[:-1] > 0) & (pp[1:] > 0), pp[:-1] / np.where(pp[1:] > 0, pp[1:], 1),
                         1.0)  # fmt: skip
        inc = slope * (dtp + intercept * np.log(ratio)) / (tp[1:] + fn[1:])
    return np.sum(np.where(tp[1:] + fn[1:] > 0, inc, 0.0))


@pytest.mark.parametrize("curve", ["ROC", "PR"])
def test_auc_equals_the_keras_thresholded_formula(binary, curve):
    y, p, w = binary
    got = stream(M.AUC(curve=curve), y, p, w)
    assert got == pytest.approx(keras_auc_reference(y, p.astype(np.float64), w, curve=curve))


def test_auc_roc_approximates_sklearn(binary):
    y, p, w = binary
    # 200 evenly spaced thresholds: the trapezoids miss the ordering inside each 1/199-wide
    # bucket, which costs at most a few 1e-3 for scores spread over [0, 1]
    got = stream(M.AUC(), y, p, w)
    assert got == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=3e-3)


def test_auc_pr_approximates_average_precision(binary):
    y, p, w = binary
    # average precision is a step sum, Keras's PR-AUC interpolates between thresholds: they
    # agree to the bucket resolution
    got = stream(M.AUC(curve="PR"), y, p, w)
    expected = skm.average_precision_score(y, p, sample_weight=w)
    assert got == pytest.approx(expected, abs=5e-3)


def test_auc_from_logits_equals_auc_of_probabilities(binary):
    y, p, w = binary
    logits = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    a = stream(M.AUC(from_logits=True), y, logits, w)
    b = stream(M.AUC(), y, np.clip(p, 1e-6, 1 - 1e-6), w)
    assert a == pytest.approx(b, abs=1e-9)


def test_auc_examples_from_keras_docs():
    m = M.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(1.0)


def test_auc_minoring_and_majoring_bracket_the_interpolation(binary):
    y, p, w = binary
    lo = stream(M.AUC(summation_method="minoring"), y, p, w)
    mid = stream(M.AUC(), y, p, w)
    hi = stream(M.AUC(summation_method="majoring"), y, p, w)
    assert lo < mid < hi


# --------------------------------------------------------------------------- confusion matrix
def test_confusion_matrix_matches_sklearn_streaming(multiclass):
    y, p, w = multiclass
    got = stream(M.ConfusionMatrix(4), y, p)
    expected = skm.confusion_matrix(y, p.argmax(1), labels=range(4))
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.int64
    weighted = stream(M.ConfusionMatrix(4), np.eye(4)[y], p, w)
    np.testing.assert_allclose(
        weighted, skm.confusion_matrix(y, p.argmax(1), labels=range(4), sample_weight=w)
    )


def test_confusion_matrix_of_binary_probabilities(binary):
    y, p, _ = binary
    got = stream(M.ConfusionMatrix(2), y, p[:, None])
    np.testing.assert_array_equal(got, skm.confusion_matrix(y, p > 0.5))


def test_confusion_matrix_rejects_labels_out_of_range():
    m = M.ConfusionMatrix(3)
    with pytest.raises(ValueError, match="outside 0..2"):
        m.update_state([0, 3], [0, 1])
    with pytest.raises(ValueError, match="num_classes"):
        M.ConfusionMatrix(1)


# --------------------------------------------------------------------------- state handling
def test_reset_state_forgets_everything(multiclass):
    y, p, w = multiclass
    metrics = [
        M.SparseCategoricalAccuracy(), M.AUC(), M.F1Score(average="macro"),
        M.ConfusionMatrix(4), M.Precision(),
    ]  # fmt: skip
    for m in metrics:
        yt = y if not isinstance(m, (M.AUC, M.Precision)) else (y == 1)
        pp = p if not isinstance(m, (M.AUC, M.Precision)) else p[:, 1]
        stream(m, yt[:100], pp[:100])
        first = m.result()
        m.reset_state()
        stream(m, yt[100:], pp[100:])
        m.reset_state()
        stream(m, yt[:100], pp[:100])
        np.testing.assert_allclose(m.result(), first)


def test_merge_state_equals_one_stream(multiclass):
    y, p, w = multiclass
    whole = M.F1Score(average="weighted")
    stream(whole, y, p, w)
    parts = [M.F1Score(average="weighted") for _ in range(3)]
    for i, part in enumerate(parts):
        stream(part, y[i::3], p[i::3], w[i::3])
    parts[0].merge_state(parts[1:])
    assert parts[0].result() == pytest.approx(whole.result())


def test_call_updates_and_returns_the_result():
    m = M.BinaryAccuracy()
    assert m([1, 0], [0.9, 0.8]) == pytest.approx(0.5)
    assert m([1], [0.9]) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- names and get()
class SparseCategoricalCrossentropy:  # stand-ins: get() reads the loss's class name
    from_logits = False


class BinaryCrossentropy:
    def __init__(self, from_logits=False):
        self.from_logits = from_logits


@pytest.mark.parametrize(
    "loss,cls",
    [
        ("sparse_categorical_crossentropy", M.SparseCategoricalAccuracy),
        ("categorical_crossentropy", M.CategoricalAccuracy),
        ("binary_crossentropy", M.BinaryAccuracy),
        (SparseCategoricalCrossentropy(), M.SparseCategoricalAccuracy),
        (BinaryCrossentropy(), M.BinaryAccuracy),
    ],
)
def test_accuracy_string_resolves_from_the_loss(loss, cls):
    m = M.get("accuracy", loss=loss)
    assert type(m) is cls and m.name == "accuracy"
    assert M.get("acc", loss=loss).name == "acc"


def test_accuracy_with_logit_loss_thresholds_at_zero(binary):
    y, p, _ = binary
    logits = p - 0.5
    m = M.get("accuracy", loss=BinaryCrossentropy(from_logits=True))
    assert stream(m, y, logits) == pytest.approx(skm.accuracy_score(y, logits > 0))


@pytest.mark.parametrize("kind", ["sparse", "onehot", "binary"])
def test_accuracy_without_a_loss_resolves_from_shapes(multiclass, binary, kind):
    y, p, w = multiclass
    if kind == "binary":
        y, p, w = binary
        yt, yp, expected = y, p[:, None], skm.accuracy_score(y, p > 0.5, sample_weight=w)
    else:
        yt = y if kind == "sparse" else np.eye(4)[y]
        yp, expected = p, skm.accuracy_score(y, p.argmax(1), sample_weight=w)
    m = M.get("accuracy")
    assert m.name == "accuracy"
    assert stream(m, yt, yp, w) == pytest.approx(expected)


def test_get_resolves_the_other_strings_with_their_log_names():
    assert type(M.get("precision")) is M.Precision and M.get("precision").name == "precision"
    assert type(M.get("recall")) is M.Recall
    assert type(M.get("AUC")) is M.AUC and M.get("auc").name == "auc"
    assert type(M.get("mse")) is M.MeanSquaredError and M.get("mse").name == "mse"
    f1 = M.get("f1", loss="sparse_categorical_crossentropy")
    assert type(f1) is M.F1Score and f1.average == "macro" and f1.name == "f1"
    assert M.get("f1", loss="binary_crossentropy").average == "micro"


def test_default_names_are_the_keras_log_keys():
    names = {
        M.Accuracy: "accuracy", M.BinaryAccuracy: "binary_accuracy",
        M.CategoricalAccuracy: "categorical_accuracy",
        M.SparseCategoricalAccuracy: "sparse_categorical_accuracy", M.Precision: "precision",
        M.Recall: "recall", M.F1Score: "f1_score", M.AUC: "auc",
        M.MeanSquaredError: "mean_squared_error", M.Mean: "mean",
    }  # fmt: skip
    for cls, name in names.items():
        assert cls().name == name
    assert M.ConfusionMatrix(3).name == "confusion_matrix"


def test_get_passes_instances_rebuilds_configs_and_wraps_functions():
    m = M.AUC(curve="PR", num_thresholds=50)
    assert M.get(m) is m
    again = M.get(M.serialize(m))
    assert type(again) is M.AUC and again.get_config() == m.get_config()

    def abs_error(y_true, y_pred):
        return np.abs(y_true - y_pred)

    wrapped = M.get(abs_error)
    wrapped.update_state(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    assert wrapped.name == "abs_error" and wrapped.result() == pytest.approx(1.5)


def test_get_rejects_unknown_metrics():
    with pytest.raises(ValueError, match="unknown metric 'accuracyy'"):
        M.get("accuracyy")
    with pytest.raises(TypeError):
        M.get(42)


def test_shape_mismatches_raise_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        M.Precision().update_state(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="sample_weight"):
        M.AUC().update_state([0, 1, 1], [0.1, 0.2, 0.3], sample_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="labels"):
        M.SparseCategoricalAccuracy().update_state(np.zeros((4, 3)), np.zeros((4, 3)))
