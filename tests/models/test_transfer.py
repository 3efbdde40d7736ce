"""Transfer learning: freezing (no graph, no gradient, BN in inference mode), new heads,
learning-rate multipliers, loading by layer name, and fine-tuning digits 0-4 -> 5-9."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, FileFormatError, ShapeError
from ember.models.transfer import (
    freeze,
    load_weights_by_name,
    lr_multipliers,
    replace_head,
    unfreeze,
)


def cnn(n_out: int = 5, prefix: str = "") -> em.Sequential:
    return em.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu", name=prefix + "conv_a"),
            layers.BatchNormalization(name=prefix + "bn"),
            layers.MaxPool2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu", name=prefix + "conv_b"),
            layers.Flatten(),
            layers.Dense(64, activation="relu", name=prefix + "features"),
            layers.Dense(n_out, activation="softmax", name=prefix + "head"),
        ]
    )


def test_fine_tuning_a_frozen_base_on_new_digits(one_blas_thread):
    (x, y), (x_test, y_test) = em.datasets.digits()
    old, new, new_test = y < 5, y >= 5, y_test >= 5
    base = cnn(5, prefix="ft_")
    base.compile(em.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    base.fit(x[old], y[old], batch_size=32, epochs=6, verbose=0)

    freeze(base)
    # the convolutional base stays; the two Dense layers make way for a new head
    head = [layers.Dense(64, activation="relu"), layers.Dense(5, activation="softmax")]
    model = replace_head(base, head, remove=2)
    frozen = [p.data.copy() for p in model.weights[:-4]]  # BN moving statistics included
    assert len(model.trainable_weights) == 4
    model.compile(em.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x[new], y[new] - 5, batch_size=32, epochs=10, verbose=0)

    assert len(frozen) == 2 + 4 + 2
    for before, p in zip(frozen, model.weights[:-4]):
        assert np.array_equal(before, p.data), p.name  # bit-identical
    accuracy = model.evaluate(x_test[new_test], y_test[new_test] - 5, verbose=0)[1]
    assert accuracy >= 0.9, accuracy


def test_frozen_layers_record_no_graph_and_get_no_gradient(rng):
    model = cnn(prefix="ng_")
    x = rng.random((4, 8, 8, 1)).astype(np.float32)
    model(x)
    freeze(model, up_to="ng_conv_b")
    conv_a = model.get_layer("ng_conv_a")
    assert not conv_a(x).requires_grad  # no op kept anything for a backward
    with layers.training_mode(True):
        loss = model(x).sum()
    loss.backward()
    for layer in model.layers[:4]:
        assert all(p.grad is None and not p.requires_grad for p in layer.weights), layer.name
    assert model.get_layer("ng_features").kernel.grad is not None


def test_a_frozen_batch_norm_stays_in_inference_mode(rng):
    bn = layers.BatchNormalization()
    x = (3 + 2 * rng.normal(size=(16, 4))).astype(np.float32)
    bn(x, training=True)  # moves the statistics once
    moving = [w.copy() for w in bn.get_weights()[2:]]
    freeze(em.Sequential([layers.Input((4,)), bn]))
    inference = bn(x, training=False).numpy()
    np.testing.assert_array_equal(bn(x, training=True).numpy(), inference)
    for before, after in zip(moving, bn.get_weights()[2:]):
        np.testing.assert_array_equal(before, after)


def test_freeze_up_to_and_unfreeze_from_a_layer():
    model = cnn(prefix="fu_")
    names = [layer.name for layer in model.layers]
    frozen = freeze(model, up_to=3)
    assert [layer.name for layer in frozen] == names[:4]
    assert [layer.trainable for layer in model.layers] == [False] * 4 + [True] * 3
    freeze(model)
    assert model.trainable_weights == []
    thawed = unfreeze(model, from_layer="fu_features")
    assert [layer.name for layer in thawed] == ["fu_features", "fu_head"]
    assert {p.name for p in model.trainable_weights} == {
        "fu_features/kernel", "fu_features/bias", "fu_head/kernel", "fu_head/bias"
    }  # fmt: skip
    model.trainable = False
    unfreeze(model, from_layer=-1)  # also thaws the model, but not the layers before
    assert {p.name for p in model.trainable_weights} == {"fu_head/kernel", "fu_head/bias"}
    with pytest.raises(EmberValueError, match="not a layer of"):
        freeze(model, up_to="nope")
    with pytest.raises(EmberValueError, match="out of range"):
        unfreeze(model, from_layer=10)


def test_replace_head_shares_the_base_layers(rng):
    model = cnn(prefix="rh_")
    new = replace_head(model, layers.Dense(3, name="rh_three"), remove=1)
    assert new.layers[:-1] == model.layers[:-1]  # the same objects: shared weights
    x = rng.random((2, 8, 8, 1)).astype(np.float32)
    assert new.predict(x, verbose=0).shape == (2, 3)
    deeper = replace_head(model, [layers.Dense(7)], remove=2)
    assert len(deeper.layers) == len(model.layers) - 1
    wrapped = replace_head(deeper, [layers.Dense(2)], remove=0)
    assert wrapped.predict(x, verbose=0).shape == (2, 2)

    class Sub(em.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(4)

        def call(self, x, training=None):
            return self.d(x)

    sub = Sub()
    on_top = replace_head(sub, [layers.Dense(2)], remove=0)
    assert on_top.predict(np.zeros((1, 3), np.float32), verbose=0).shape == (1, 2)
    with pytest.raises(EmberTypeError, match="only a Sequential"):
        replace_head(sub, [layers.Dense(2)])
    with pytest.raises(EmberTypeError, match="new_layers must be ember Layers"):
        replace_head(model, ["dense"])


def test_lr_multipliers_scale_the_base_update(rng, float64):
    x = rng.random((8, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 5, 8)

    def one_step(multipliers):
        em.set_seed(0)
        model = cnn(prefix="lr_")
        start = [w.copy() for w in model.get_weights()]
        opt = em.optimizers.SGD(0.1, lr_multipliers=multipliers(model))
        model.compile(opt, "sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        return [w - s for w, s in zip(model.get_weights(), start)], model

    plain, _ = one_step(lambda m: None)
    scaled, model = one_step(lambda m: lr_multipliers(m, 0.1, up_to="lr_features"))
    names = [p.name for p in model.weights]
    for name, a, b in zip(names, plain, scaled):
        factor = 1.0 if name.startswith("lr_head/") else 0.1
        if "moving" in name:  # statistics, not an SGD update
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_allclose(b, factor * a, rtol=1e-4, atol=1e-8)
    with pytest.raises(EmberValueError, match="factor"):
        lr_multipliers(model, -1.0)


def test_load_weights_by_name_from_an_ember_file_into_a_new_head(tmp_path, rng):
    source = cnn(5, prefix="lw_")
    source.save(tmp_path / "source.ember")
    target = cnn(3, prefix="lw_")  # same base names, a head of another shape
    with pytest.raises(ShapeError, match="lw_head"):
        load_weights_by_name(target, tmp_path / "source.ember")
    report = load_weights_by_name(target, tmp_path / "source.ember", skip_mismatch=True)
    assert report["skipped"] == ["lw_head"]
    assert set(report["loaded"]) == {"lw_conv_a", "lw_bn", "lw_conv_b", "lw_features"}
    for name in report["loaded"]:
        for a, b in zip(
            target.get_layer(name).get_weights(), source.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(a, b)


def test_load_weights_by_name_from_keras_layout_arrays(tmp_path, rng):
    model = em.Sequential([layers.Input((6,)), layers.Dense(4, name="kl_dense"),
                           layers.BatchNormalization(name="kl_bn"),
                           layers.Dense(2, name="kl_out")])  # fmt: skip
    kernel, bias = rng.normal(size=(6, 4)), rng.normal(size=4)
    bn = [rng.random(4) + 0.5 for _ in range(4)]
    out = [rng.normal(size=(4, 2)), rng.normal(size=2)]
    arrays = {  # h5-style paths, a name-keyed layer and an index-keyed one
        "kl_dense/kl_dense/kernel:0": kernel,
        "kl_dense/kl_dense/bias:0": bias,
        "kl_bn/gamma": bn[0], "kl_bn/beta": bn[1],
        "kl_bn/moving_mean": bn[2], "kl_bn/moving_variance": bn[3],
        "kl_out/1": out[1], "kl_out/0": out[0],
        "other_layer/kernel": np.zeros(3),
    }  # fmt: skip
    np.savez(tmp_path / "keras.npz", **arrays)
    report = load_weights_by_name(model, tmp_path / "keras.npz")
    assert report["not_in_model"] == ["other_layer"]
    expected = [kernel, bias, *bn, *out]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want.astype(np.float32))
    # the model now computes Keras's function: Dense -> BN (inference) -> Dense
    x = rng.normal(size=(3, 6)).astype(np.float32)
    h = x @ kernel + bias
    h = bn[0] * (h - bn[2]) / np.sqrt(bn[3] + 1e-3) + bn[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), h @ out[0] + out[1], rtol=1e-4)


def test_load_weights_by_name_rejects_foreign_files(tmp_path):
    model = em.Sequential([layers.Input((2,)), layers.Dense(1, name="ff_d")])
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(FileFormatError):
        load_weights_by_name(model, tmp_path / "x.txt")
    np.savez(tmp_path / "bad.npz", kernel=np.zeros(2))
    with pytest.raises(FileFormatError, match="does not name a layer"):
        load_weights_by_name(model, tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_weights_by_name(model, tmp_path / "missing.npz")
