"""Model builders: published parameter counts, the residual block's skip connection, saving,
and each builder learning a small task."""

import numpy as np
import pytest

import ember as em
from ember import applications
from ember.errors import EmberTypeError, EmberValueError


@pytest.fixture(scope="module")
def digits():
    return em.datasets.digits()


def fit_and_score(model, data, epochs, lr=1e-3):
    (x, y), (x_test, y_test) = data
    model.compile(em.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1]


def test_lenet5_has_the_published_61706_weights_on_28x28():
    # conv 5x5x1x6+6, conv 5x5x6x16+16, dense 400x120+120, 120x84+84, 84x10+10
    expected = (25 * 6 + 6) + (25 * 6 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + 850
    assert expected == 61706
    model = applications.lenet5()
    assert model.count_params() == expected
    assert model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0).shape == (2, 10)


def test_small_resnet_weight_count_matches_the_architecture_by_hand():
    def conv(k, cin, cout):
        return k * k * cin * cout

    bn = 4  # gamma, beta, moving mean, moving variance per channel
    stem = conv(3, 3, 16) + bn * 16
    same = lambda f: 2 * conv(3, f, f) + 2 * bn * f  # noqa: E731 - identity shortcut
    down = lambda fi, f: conv(3, fi, f) + conv(3, f, f) + 2 * bn * f + conv(1, fi, f) + bn * f  # noqa: E731
    expected = stem + 2 * same(16) + down(16, 32) + same(32) + down(32, 64) + same(64) + 650
    model = applications.small_resnet()
    assert model.count_params() == expected
    assert model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0).shape == (2, 10)


def test_residual_block_adds_its_input_back(rng):
    block = applications.ResidualBlock(4)
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    block(x)
    for conv in (block.conv1, block.conv2):
        conv.kernel.data[...] = 0  # F(x) = BN(0) = beta = 0: only the skip path is left
    np.testing.assert_allclose(block(x).numpy(), np.maximum(x, 0), atol=1e-6)
    assert block.projection is None


def test_residual_block_projects_the_shortcut_when_the_shape_changes(rng):
    block = applications.ResidualBlock(8, strides=2)
    out = block(rng.normal(size=(2, 6, 6, 4)).astype(np.float32))
    assert out.shape == (2, 3, 3, 8)
    assert block.projection is not None and block.projection.kernel.shape == (1, 1, 4, 8)


def test_small_resnet_saves_and_loads_with_identical_predictions(tmp_path, rng):
    model = applications.small_resnet((8, 8, 1), filters=(8, 16), blocks_per_stage=1)
    x = rng.random((3, 8, 8, 1)).astype(np.float32)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1, 2]), epochs=1, verbose=0)  # moves the BN statistics
    model.save(tmp_path / "resnet.ember")
    loaded = em.load_model(tmp_path / "resnet.ember")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_mlp_learns_digits(digits, one_blas_thread):
    assert fit_and_score(applications.mlp((8, 8, 1)), digits, epochs=15) >= 0.95


def test_mlp_options_add_batch_norm_and_dropout():
    model = applications.mlp((20,), num_classes=3, hidden=(16,), batch_norm=True, dropout=0.5)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNormalization", "Activation", "Dropout", "Dense"]
    assert len(model.layers[0].weights) == 1  # no bias before a batch norm


def test_lenet5_and_small_resnet_learn_digits(digits, one_blas_thread):
    assert fit_and_score(applications.lenet5((8, 8, 1)), digits, epochs=20, lr=3e-3) >= 0.9
    resnet = applications.small_resnet((8, 8, 1), filters=(16, 32), blocks_per_stage=1)
    assert fit_and_score(resnet, digits, epochs=6) >= 0.9


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True)])
def test_text_classifier_learns_whether_a_token_occurs(cell, bidirectional, one_blas_thread):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 12, 800)
    x = np.zeros((800, 12), dtype=np.int64)  # 0 is padding, at the end
    for i, n in enumerate(lengths):
        x[i, :n] = rng.integers(2, 20, n)
    y = (x == 7).any(axis=1).astype(np.int64)  # class 1: the sentence holds token 7
    model = applications.text_classifier(
        20, num_classes=2, sequence_length=12, embedding_dim=8, units=16, cell=cell,
        bidirectional=bidirectional,
    )  # fmt: skip
    model.compile(em.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x[:600], y[:600], batch_size=32, epochs=8, verbose=0)
    assert model.evaluate(x[600:], y[600:], verbose=0)[1] >= 0.9


def test_one_class_means_a_sigmoid_unit():
    model = applications.mlp((4,), num_classes=1)
    out = model.predict(np.zeros((2, 4), np.float32), verbose=0)
    assert out.shape == (2, 1) and ((out > 0) & (out < 1)).all()


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(EmberValueError, match="input_shape must be 3 positive ints"):
        applications.lenet5((28, 28))
    with pytest.raises(EmberTypeError, match="input_shape must be a tuple of ints"):
        applications.mlp("big")
    with pytest.raises(EmberValueError, match="at least 4x4"):
        applications.lenet5((3, 3, 1))
    with pytest.raises(EmberValueError, match="cell must be 'lstm' or 'gru'"):
        applications.text_classifier(10, cell="rnn")
    with pytest.raises(EmberValueError, match="num_classes must be a positive int"):
        applications.small_resnet(num_classes=0)
    with pytest.raises(EmberValueError, match="dropout"):
        applications.mlp(dropout=1.0)
