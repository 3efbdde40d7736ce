"""``ember gradcheck`` and ``ember.guide.model_gradcheck``: whole-model gradient checks."""

import numpy as np
import pytest

import ember as em
from ember import cli, layers
from ember.errors import EmberValueError
from ember.guide import model_gradcheck
from ember.guide.gradients import BUILTIN_MODELS, builtin_model


class WrongScale(em.Function):
    """y = x * w with a deliberately wrong backward for w (twice the true gradient)."""

    def forward(self, x, w):
        self.x, self.w = x, w
        return x * w

    def backward(self, g):
        return g * self.w, 2 * (g * self.x)


class Scale(layers.Layer):
    def __init__(self, wrong: bool, **kwargs):
        super().__init__(**kwargs)
        self.wrong = wrong

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "ones")

    def call(self, x, training=None):
        return WrongScale.apply(x, self.w) if self.wrong else x * self.w


@pytest.mark.parametrize("kind", BUILTIN_MODELS)
def test_every_builtin_model_passes(kind):
    model, x, y, loss = builtin_model(kind)
    report = model_gradcheck(model, x, y, loss, samples=8, training=True)
    assert report.passed, report.format()
    names = {f"{r['layer']}/{r['weight']}" for r in report.rows}
    assert names == {w.name for w in model.trainable_weights}  # every weight, each once


def test_a_wrong_backward_is_caught_and_named():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    model = em.Sequential([layers.Dense(4, activation="tanh"), Scale(True, name="bad"),
                           layers.Dense(3)])  # fmt: skip
    report = model_gradcheck(model, x, y, "mse", samples=None)
    assert not report.passed
    failed = [(r["layer"], r["weight"]) for r in report.rows if not r["passed"]]
    assert failed == [("bad", "w")]
    assert report.worst > 0.1
    assert "GRADIENT MISMATCH" in report.format()
    good = em.Sequential([layers.Dense(4, activation="tanh"), Scale(False), layers.Dense(3)])
    assert model_gradcheck(good, x, y, "mse", samples=None).passed


def test_weights_come_back_unchanged_in_their_own_dtype():
    model, x, y, loss = builtin_model("cnn")
    with em.no_grad():
        model(x[:1].astype(np.float32))
    before = [w.data.copy() for w in model.weights]
    model_gradcheck(model, x, y, loss, samples=5)
    after = model.weights
    assert all(w.dtype == np.float32 for w in after)
    assert all(np.array_equal(a.data, b) for a, b in zip(after, before))
    assert all(w.grad is None for w in after)
    assert em.floatx() == "float32"


def test_the_check_is_numerical_not_a_copy_of_backward():
    # the numeric side alone: a linear model's MSE gradient has the closed form 2/N x^T (xw - y)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    model = em.Sequential([layers.Dense(1, use_bias=False)])
    report = model_gradcheck(model, x, y, "mse", samples=None)
    w = model.layers[0].kernel.numpy().astype(np.float64)
    closed = 2 / len(x) * x.T @ (x @ w - y)
    assert report.passed and report.rows[0]["checked"] == 3
    assert report.loss == pytest.approx(float(np.mean((x @ w - y) ** 2)), rel=1e-12)
    assert np.linalg.norm(closed) > 0


def test_bad_arguments():
    with pytest.raises(EmberValueError, match="loss"):
        model_gradcheck(em.Sequential([layers.Dense(1)]), np.ones((2, 2)), np.ones((2, 1)), 3)
    with pytest.raises(EmberValueError, match="model must be one of"):
        builtin_model("transformer")


def test_cli_prints_a_table_per_model_and_returns_zero(capsys):
    assert cli.main(["gradcheck", "--model", "lstm", "--samples", "5"]) == 0
    out = capsys.readouterr().out
    assert "== lstm:" in out and "recurrent_kernel" in out and "all gradients agree" in out
    assert out.count(" ok") >= 8  # 2 LSTM layers x 3 weights + Dense x 2


def test_cli_all_models(capsys):
    assert cli.main(["gradcheck", "--samples", "4", "--inference"]) == 0
    out = capsys.readouterr().out
    assert all(f"== {k}:" in out for k in BUILTIN_MODELS) and "inference mode" in out
