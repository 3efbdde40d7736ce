"""Model: compile / fit / evaluate / predict / *_on_batch / summary / subclassing.

Oracles: losses and accuracies recomputed in NumPy from the model's own predictions (the
published cross-entropy formula), scikit-learn's class weights, hand-counted parameters, and
runs that must agree with each other (same batches fed through different input types).
"""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.callbacks import Callback
from ember.errors import EmberValueError, ShapeError


def blobs(n=96, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    x = (centers[y] + rng.normal(size=(n, d))).astype("float32")
    return x, y.astype("int64")


def mlp(d=6, k=3, hidden=16, dropout=0.0):
    stack = [layers.Input((d,)), layers.Dense(hidden, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(k, activation="softmax"))
    return em.Sequential(stack)


def ce(probs, y):
    """Sparse categorical cross-entropy per example (Keras clips probabilities to 1e-7)."""
    p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-7, 1 - 1e-7)
    return -np.log(p)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events, self.batch_logs, self.epoch_logs = [], [], []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))

    def on_test_begin(self, logs=None):
        self.events.append("test_begin")

    def on_train_end(self, logs=None):
        self.events.append("train_end")


# ---------------------------------------------------------------------------------- fit
def test_fit_lowers_the_loss_and_returns_keras_log_keys_as_floats():
    x, y = blobs()
    model = mlp()
    model.compile(em.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 8 for v in history.history.values())
    assert all(type(v) is float for vals in history.history.values() for v in vals)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.epoch == list(range(8))
    assert model.history is history


def test_fit_calls_callbacks_in_keras_order_with_0_based_epochs():
    x, y = blobs(n=40)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    rec = Recorder()
    model.fit(x, y, epochs=2, batch_size=20, validation_data=(x, y), callbacks=[rec], verbose=0)
    assert rec.events == [
        "train_begin", "epoch_begin 0", "test_begin", "epoch_end 0",
        "epoch_begin 1", "test_begin", "epoch_end 1", "train_end",
    ]  # fmt: skip
    assert len(rec.batch_logs) == 4


def test_epoch_loss_is_the_size_weighted_mean_of_the_batch_losses():
    # SGD with a zero rate keeps the weights: every batch loss is a loss of the same model
    x, y = blobs(n=50)
    model = mlp()
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    probs = model.predict(x)
    np.testing.assert_allclose(history.history["loss"][0], ce(probs, y).mean(), rtol=1e-5)
    acc = np.mean(np.argmax(probs, -1) == y)
    np.testing.assert_allclose(history.history["accuracy"][0], acc, rtol=1e-6)


def test_validation_split_holds_out_the_last_fraction_before_shuffling():
    x, y = blobs(n=40)
    model = mlp()
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy", ["accuracy"])
    rec = Recorder()
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, callbacks=[rec],
                        verbose=0)  # fmt: skip
    # 30 training examples -> 4 batches of 8; validation = the last 10 examples
    assert rec.params["steps"] == 4
    tail = model.predict(x[30:])
    np.testing.assert_allclose(history.history["val_loss"][0], ce(tail, y[30:]).mean(), rtol=1e-5)
    head = model.predict(x[:30])
    np.testing.assert_allclose(history.history["loss"][0], ce(head, y[:30]).mean(), rtol=1e-5)


def test_class_weight_dict_weights_each_example_by_its_class_as_keras():
    x, y = blobs(n=30)
    model = mlp()
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    weights = {0: 1.0, 1: 3.0, 2: 0.5}
    history = model.fit(x, y, epochs=1, batch_size=30, class_weight=weights, verbose=0)
    w = np.array([weights[int(c)] for c in y])
    expected = np.sum(w * ce(model.predict(x), y)) / len(y)  # summed, / batch size
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_class_weight_balanced_matches_scikit_learn():
    compute_class_weight = pytest.importorskip("sklearn.utils").compute_class_weight
    rng = np.random.default_rng(1)
    y = np.array([0] * 20 + [1] * 6 + [2] * 4)
    x = rng.normal(size=(30, 6)).astype("float32")
    model = mlp()
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, batch_size=30, class_weight="balanced", verbose=0)
    cw = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y)
    expected = np.sum(cw[y] * ce(model.predict(x), y)) / len(y)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_sample_weight_scales_each_example_loss():
    x, y = blobs(n=24)
    sw = np.linspace(0.0, 2.0, 24)
    model = mlp()
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, batch_size=24, sample_weight=sw, verbose=0)
    expected = np.sum(sw * ce(model.predict(x), y)) / 24
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_class_weight_and_sample_weight_together_are_refused():
    x, y = blobs(n=10)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(EmberValueError, match="class_weight or sample_weight"):
        model.fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(10), verbose=0)


def test_regularization_penalties_are_added_to_the_loss():
    x, y = blobs(n=20)
    model = em.Sequential([
        layers.Input((6,)),
        layers.Dense(3, activation="softmax", kernel_regularizer=em.regularizers.L2(0.1)),
    ])  # fmt: skip
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, batch_size=20, verbose=0)
    kernel = model.layers[0].kernel.data.astype(np.float64)
    expected = ce(model.predict(x), y).mean() + 0.1 * np.sum(kernel**2)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_two_seeded_fits_give_identical_weights():
    def run():
        em.set_seed(123)
        x, y = blobs(n=64)
        model = mlp(dropout=0.3)
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(x, y, epochs=3, batch_size=10, validation_split=0.2, verbose=0)
        return model.get_weights()

    a, b = run(), run()
    assert len(a) == 4
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    em.set_seed(7)
    x, y = blobs(n=64)
    other = mlp(dropout=0.3)
    assert not np.array_equal(other.get_weights()[0], a[0])


def _fit_weights(data, y=None, **kw):
    em.set_seed(5)
    model = mlp()
    model.compile(em.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(data, y, epochs=2, verbose=0, **kw)
    return model.get_weights()


def test_fit_on_a_generator_a_dataloader_a_dataset_and_a_sequence_matches_arrays():
    x, y = blobs(n=40)
    reference = _fit_weights(x, y, batch_size=8, shuffle=False)

    def gen():
        for _ in range(2):
            for i in range(0, 40, 8):
                yield x[i : i + 8], y[i : i + 8]

    class Seq(em.data.BatchSequence):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]

    loader = em.data.DataLoader(em.data.ArrayDataset(x, y), batch_size=8, shuffle=False)
    candidates = {
        "generator": _fit_weights(gen(), steps_per_epoch=5),
        "dataloader": _fit_weights(loader),
        "dataset": _fit_weights(em.data.ArrayDataset(x, y), batch_size=8, shuffle=False),
        "sequence": _fit_weights(Seq(), shuffle=False),
    }
    for name, weights in candidates.items():
        for a, b in zip(reference, weights):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=name)


def test_fit_on_an_image_data_generator_flow():
    x = np.random.default_rng(0).random((24, 8, 8, 1)).astype("float32")
    y = np.arange(24) % 3
    gen = em.data.ImageDataGenerator(horizontal_flip=True)
    model = em.Sequential([layers.Input((8, 8, 1)), layers.Flatten(), layers.Dense(3)])
    model.compile("sgd", em.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(gen.flow(x, y, batch_size=8, seed=0), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_a_generator_that_runs_out_stops_training_with_a_warning():
    x, y = blobs(n=16)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    batches = ((x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(batches, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1


def test_steps_per_epoch_continues_through_the_arrays_across_epochs():
    x, y = blobs(n=20)
    model = mlp()
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    rec = Recorder()
    model.fit(x, y, epochs=3, batch_size=8, steps_per_epoch=2, callbacks=[rec], verbose=0)
    assert len(rec.batch_logs) == 6
    assert rec.params["steps"] == 2


def test_initial_epoch_numbers_epochs_absolutely():
    x, y = blobs(n=16)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=5, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3, 4]


def test_stop_training_set_by_a_callback_ends_the_epoch_and_the_fit():
    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    x, y = blobs(n=64)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    rec = Recorder()
    history = model.fit(x, y, epochs=4, batch_size=8, callbacks=[StopAt(), rec], verbose=0)
    assert len(rec.batch_logs) == 3
    assert history.epoch == [0]


def test_fit_runs_layers_in_training_mode_and_evaluation_in_inference_mode():
    seen = []

    class Spy(layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    x, y = blobs(n=8)
    model = em.Sequential([layers.Input((6,)), Spy(), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    seen.clear()
    model.fit(x, y, epochs=1, batch_size=8, validation_data=(x, y), verbose=0)
    assert seen == [True, False]
    seen.clear()
    model.predict(x)
    model.evaluate(x, y, verbose=0)
    assert seen == [False, False]


def test_fit_errors_name_the_problem():
    x, y = blobs(n=10)
    model = mlp()
    with pytest.raises(EmberValueError, match="not compiled"):
        model.fit(x, y, verbose=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(EmberValueError, match="y is required"):
        model.fit(x, verbose=0)
    with pytest.raises(ShapeError, match="same number of examples"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(EmberValueError, match="validation_split"):
        model.fit(iter([(x, y)]), validation_split=0.2, verbose=0)
    with pytest.raises(EmberValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)


# ---------------------------------------------------------------------------------- evaluate
def test_evaluate_returns_loss_then_metrics_or_a_dict():
    x, y = blobs(n=30)
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    probs = model.predict(x)
    loss, acc = model.evaluate(x, y, batch_size=7, verbose=0)
    np.testing.assert_allclose(loss, ce(probs, y).mean(), rtol=1e-5)
    np.testing.assert_allclose(acc, np.mean(np.argmax(probs, -1) == y), rtol=1e-6)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert set(logs) == {"loss", "accuracy"}
    plain = mlp()
    plain.compile("sgd", "mse")
    assert isinstance(plain.evaluate(x, np.zeros((30, 3)), verbose=0), float)


def test_predict_batches_match_one_full_call_and_record_no_graph():
    x, _ = blobs(n=23)
    model = mlp()
    full = model(x).data
    np.testing.assert_allclose(model.predict(x, batch_size=5), full, rtol=1e-6)
    out = model.predict_step(x)
    assert not out.requires_grad and out.is_leaf


def test_train_on_batch_returns_the_batch_loss_before_the_update():
    x, y = blobs(n=16)
    model = mlp()
    model.compile(em.optimizers.SGD(0.5), "sparse_categorical_crossentropy", ["accuracy"])
    before = model.predict(x)
    w0 = model.get_weights()
    loss, acc = model.train_on_batch(x, y)
    np.testing.assert_allclose(loss, ce(before, y).mean(), rtol=1e-5)
    np.testing.assert_allclose(acc, np.mean(np.argmax(before, -1) == y))
    assert not np.array_equal(w0[0], model.get_weights()[0])
    after = model.predict(x)
    test_loss = model.test_on_batch(x, y, return_dict=True)["loss"]
    np.testing.assert_allclose(test_loss, ce(after, y).mean(), rtol=1e-5)
    np.testing.assert_allclose(model.predict_on_batch(x), after, rtol=1e-6)


# ---------------------------------------------------------------------------------- summary
def test_summary_counts_match_a_hand_count():
    model = em.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(4, 3),                    # (6, 6, 4): 3*3*1*4 + 4 = 40
        layers.MaxPool2D(2),                    # (3, 3, 4): 0
        layers.Flatten(),                       # (36,): 0
        layers.Dense(10),                       # 36*10 + 10 = 370
        layers.BatchNormalization(),            # gamma, beta 20 trainable; moving 20 not
    ], name="net")  # fmt: skip
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "net"' in text
    words = [(line.split() + ["", ""])[1] for line in lines]
    rows = {w: line for w, line in zip(words, lines) if w.startswith("(")}
    assert "(None, 6, 6, 4)" in rows["(Conv2D)"] and rows["(Conv2D)"].endswith(" 40")
    pool = next(v for k, v in rows.items() if k.startswith("(MaxPool"))
    assert "(None, 3, 3, 4)" in pool and pool.endswith(" 0")
    assert "(None, 36)" in rows["(Flatten)"]
    assert rows["(Dense)"].endswith(" 370")
    assert rows["(BatchNormalization)"].endswith(" 40")
    assert "Total params: 450 " in text
    assert "Trainable params: 430 " in text
    assert "Non-trainable params: 20 " in text


def test_summary_of_a_lazily_built_and_a_subclassed_model():
    model = em.Sequential([layers.Dense(5), layers.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    assert any("0 (unbuilt)" in line for line in lines)

    class Net(em.Model):
        def __init__(self):
            super().__init__()
            self.a = layers.Dense(4)
            self.b = layers.Dense(2)

        def call(self, x, training=None):
            return self.b(self.a(x))

    net = Net()
    net(np.zeros((3, 7), "float32"))
    lines = []
    net.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 4)" in text and "(None, 2)" in text
    assert f"Total params: {7 * 4 + 4 + 4 * 2 + 2} " in text


# ---------------------------------------------------------------------------------- subclassing
def test_a_subclassed_model_trains_with_fit():
    class TwoLayer(em.Model):
        def __init__(self, hidden=8, classes=3):
            super().__init__()
            self.hidden = layers.Dense(hidden, activation="relu")
            self.out = layers.Dense(classes, activation="softmax")

        def call(self, x, training=None):
            return self.out(self.hidden(x))

    x, y = blobs()
    model = TwoLayer()
    assert not model.built
    model.compile(em.optimizers.Adam(0.02), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert model.built and len(model.trainable_weights) == 4
    assert history.history["accuracy"][-1] > 0.9
    assert model.get_config() == {}
    assert TwoLayer(hidden=5).get_config() == {"hidden": 5}


def test_build_with_an_input_shape_creates_the_weights():
    model = em.Sequential([layers.Dense(4), layers.Dense(2)])
    model.build((None, 3))
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]
    assert model.count_params() == 3 * 4 + 4 + 4 * 2 + 2


def test_lr_find_restores_the_weights_and_suggests_a_rate_in_range(tmp_path):
    x, y = blobs(n=128)
    model = mlp()
    model.compile(em.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    w0 = model.get_weights()
    state = em.backend.get_rng_state()
    result = model.lr_find(x, y, start_lr=1e-5, end_lr=10.0, steps=40, batch_size=16)
    for a, b in zip(w0, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert em.backend.get_rng_state() == state
    assert model.optimizer.learning_rate == 0.01 and model.optimizer.iterations == 0
    lrs = np.array(result.lrs)
    ratio = (10.0 / 1e-5) ** (1 / 39)
    np.testing.assert_allclose(lrs, 1e-5 * ratio ** np.arange(len(lrs)), rtol=1e-9)
    assert 1e-5 <= result.suggested_lr <= 10.0
    path = result.plot(tmp_path / "lr.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_subclass_that_makes_its_own_weights_in_build_gets_build_called():
    class Scaled(em.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def build(self, input_shape):
            self.scale = self.add_weight("scale", (input_shape[-1],), "ones")

        def call(self, x, training=None):
            return self.dense(x * self.scale)

    model = Scaled()
    x = np.ones((3, 4), "float32")
    assert model(x).shape == (3, 2)
    assert [p.name.split("/")[-1] for p in model.weights] == ["scale", "kernel", "bias"]
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((3, 2)), epochs=1, verbose=0)
    assert not np.array_equal(model.scale.data, np.ones(4))  # the own weight trains too
