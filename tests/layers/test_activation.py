"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError

X = np.array([[-3.5, -1.2, -0.3, 0.4], [0.9, 2.5, 6.5, -7.0]])


def test_relu_layer_follows_keras_definition():
    y = layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5)(X.astype(np.float32)).data
    expected = np.where(X >= 6.0, 6.0, np.where(X >= 0.5, X, 0.1 * (X - 0.5)))
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_array_equal(layers.ReLU()(X).data, np.maximum(X, 0).astype(np.float32))


def test_leaky_relu_elu_softmax_layers():
    x = em.tensor(X, dtype=np.float64)
    np.testing.assert_allclose(layers.LeakyReLU()(x).data, np.where(X > 0, X, 0.01 * X))
    np.testing.assert_allclose(layers.LeakyReLU(0.3)(x).data, np.where(X > 0, X, 0.3 * X))
    np.testing.assert_allclose(layers.ELU(0.5)(x).data, np.where(X > 0, X, 0.5 * np.expm1(X)))
    e = np.exp(X - X.max(0))
    np.testing.assert_allclose(layers.Softmax(axis=0)(x).data, e / e.sum(0))


@pytest.mark.parametrize(
    "layer",
    [
        lambda: layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5),
        lambda: layers.LeakyReLU(0.2),
        lambda: layers.ELU(0.7),
        lambda: layers.Softmax(),
    ],
)
def test_activation_layers_gradcheck(layer, float64):
    assert em.gradcheck(layer(), [em.tensor(X, requires_grad=True)])


def test_prelu_learns_a_slope_per_unit_and_starts_as_relu(rng):
    p = layers.PReLU()
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(p(x).data, np.maximum(x, 0))
    assert p.alpha.shape == (3, 5)
    alpha = rng.random((3, 5)).astype(np.float32)
    p.set_weights([alpha])
    np.testing.assert_allclose(p(x).data, np.where(x > 0, x, alpha * x), rtol=1e-6)


def test_prelu_shared_axes_give_one_slope_per_channel(rng):
    p = layers.PReLU(alpha_initializer=em.initializers.Constant(0.25), shared_axes=[1, 2])
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    y = p(x)
    assert p.alpha.shape == (1, 1, 3) and p.count_params() == 3
    np.testing.assert_allclose(y.data, np.where(x > 0, x, 0.25 * x), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(p.alpha.grad.reshape(3), np.minimum(x, 0).sum(axis=(0, 1, 2)),
                               rtol=1e-5)  # fmt: skip


def test_prelu_gradcheck_input_and_alpha(float64, rng):
    p = layers.PReLU(shared_axes=2)
    x = rng.standard_normal((3, 2, 4))
    p(x)
    p.set_weights([rng.random((2, 1))])

    def fn(x, alpha):
        old = p.alpha
        p.alpha = alpha
        try:
            return p(x)
        finally:
            p.alpha = old

    ts = [em.tensor(x, requires_grad=True), em.tensor(p.alpha.data, requires_grad=True)]
    assert em.gradcheck(fn, ts)


def test_prelu_errors_name_the_layer():
    p = layers.PReLU(name="act")
    p(np.ones((2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"act.*\(2, 4\)"):
        p(np.ones((2, 4), np.float32))
    with pytest.raises(EmberValueError, match="shared_axes"):
        layers.PReLU(shared_axes=[0])
    with pytest.raises(ShapeError, match="shared_axes"):
        layers.PReLU(shared_axes=[3])(np.ones((2, 3), np.float32))


def test_config_validation_and_round_trips():
    with pytest.raises(EmberValueError, match="negative_slope must be >= 0"):
        layers.LeakyReLU(-0.1)
    with pytest.raises(EmberTypeError, match="alpha"):
        layers.ELU("big")
    with pytest.raises(ShapeError, match="axis=2"):
        layers.Softmax(axis=2)(np.ones((2, 2), np.float32))
    for layer in (
        layers.ReLU(max_value=6.0),
        layers.LeakyReLU(0.3),
        layers.ELU(0.5),
        layers.Softmax(axis=1),
        layers.PReLU(alpha_initializer="ones", shared_axes=[1]),
    ):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
    assert layers.LeakyReLU(alpha=0.2).negative_slope == 0.2  # Keras 2 spelling
