"""Saving: one zip file, no pickle, atomic writes, exact round trips, clear errors."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberValueError, FileFormatError, ShapeError
from ember.models import saving


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    return x, y


def trained(epochs=2):
    x, y = data()
    model = em.Sequential([
        layers.Input((6,)),
        layers.Dense(8, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    model.compile(em.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model


def test_save_writes_one_zip_at_exactly_the_path(tmp_path):
    model = trained()
    path = tmp_path / "model.anything"
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.anything"]
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        config = json.loads(zf.read("config.json"))
        meta = json.loads(zf.read("metadata.json"))
        compile_cfg = json.loads(zf.read("compile.json"))
    assert names == {"metadata.json", "config.json", "weights.npz", "compile.json",
                     "optimizer.npz"}  # fmt: skip
    assert meta["format"] == "ember.model"
    assert config["class_name"] == "Sequential"
    kinds = [c["class_name"] for c in config["config"]["layers"]]
    assert kinds == ["InputLayer", "Dense", "BatchNormalization", "Dropout", "Dense"]
    assert compile_cfg["optimizer"]["class_name"] == "Adam"
    assert compile_cfg["loss"] == "sparse_categorical_crossentropy"
    assert compile_cfg["metrics"] == ["accuracy"]


def test_load_model_round_trip_predicts_identically_and_keeps_training_identically(tmp_path):
    x, y = data()
    model = trained()
    model.save(tmp_path / "m.ember")
    loaded = em.load_model(tmp_path / "m.ember")
    assert type(loaded) is em.Sequential
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.metrics_names == ["loss", "accuracy"]
    # the optimizer state came along: one more epoch moves both models the same way
    em.set_seed(3)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    em.set_seed(3)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_uncompiled_or_lazily_built_model_round_trips(tmp_path):
    model = em.Sequential([layers.Dense(4, activation="tanh"), layers.Dense(2)])
    x = np.ones((3, 5), "float32")
    expected = model(x).data
    model.save(tmp_path / "m.ember")
    loaded = em.load_model(tmp_path / "m.ember")
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(x), expected)
    loaded2 = em.load_model(tmp_path / "m.ember", compile=False)
    assert loaded2.optimizer is None


@em.layers.register
class _Tower(em.Model):
    def __init__(self, width=4, classes=2, name=None):
        super().__init__(name=name)
        self.width = width
        self.hidden = layers.Dense(width, activation="relu")
        self.out = layers.Dense(classes)

    def call(self, x, training=None):
        return self.out(self.hidden(x))


def test_a_registered_subclassed_model_round_trips(tmp_path):
    model = _Tower(width=5, classes=3)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    expected = model(x).data
    model.save(tmp_path / "tower.ember")
    loaded = em.load_model(tmp_path / "tower.ember")
    assert isinstance(loaded, _Tower) and loaded.width == 5
    np.testing.assert_array_equal(loaded.predict(x), expected)


def test_an_unregistered_class_fails_to_load_with_a_hint(tmp_path):
    class Unknown(em.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x, training=None):
            return self.d(x)

    model = Unknown()
    model(np.ones((1, 3), "float32"))
    model.save(tmp_path / "u.ember")
    with pytest.raises(EmberValueError, match="register"):
        em.load_model(tmp_path / "u.ember")


def test_save_weights_and_load_weights_by_name_and_by_order(tmp_path):
    model = trained()
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    with np.load(path, allow_pickle=False) as f:
        assert f.files == [p.name for p in model.weights]
    twin = em.Sequential.from_config(model.get_config())  # same layer names: matched by name
    twin.load_weights(path)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    fresh = em.Sequential([  # other (auto) names: matched by order
        layers.Input((6,)), layers.Dense(8, activation="relu"), layers.BatchNormalization(),
        layers.Dropout(0.2), layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    fresh.load_weights(path)
    x, _ = data()
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    fresh.load_weights(tmp_path / "w.weights.npz")
    model.save(tmp_path / "m.ember")
    fresh.load_weights(tmp_path / "m.ember")  # a whole model file works too


def test_weight_mismatches_are_reported(tmp_path):
    model = trained()
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    smaller = em.Sequential([layers.Input((6,)), layers.Dense(3)])
    with pytest.raises(EmberValueError, match="holds 8 weights but model .* has 2"):
        smaller.load_weights(path)
    wrong = em.Sequential([
        layers.Input((6,)), layers.Dense(9, activation="relu"), layers.BatchNormalization(),
        layers.Dropout(0.2), layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    before = wrong.get_weights()
    with pytest.raises(ShapeError, match=r"shape \(6, 8\).*shape \(6, 9\)"):
        wrong.load_weights(path)
    for a, b in zip(before, wrong.get_weights()):  # nothing was half-loaded
        np.testing.assert_array_equal(a, b)
    with pytest.raises(EmberValueError, match=r"\.weights\.npz"):
        model.save_weights(tmp_path / "w.npz")
    unbuilt = em.Sequential([layers.Dense(2)])
    with pytest.raises(EmberValueError, match="build it first"):
        unbuilt.load_weights(path)


def test_damaged_or_foreign_files_raise_file_format_error_naming_the_file(tmp_path):
    model = trained()
    good = tmp_path / "m.ember"
    model.save(good)
    raw = good.read_bytes()

    truncated = tmp_path / "truncated.ember"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="truncated.ember.*truncated or corrupt"):
        em.load_model(truncated)

    text = tmp_path / "notes.ember"
    text.write_text("hello, not a model")
    with pytest.raises(FileFormatError, match="notes.ember.*not a zip"):
        em.load_model(text)

    empty = tmp_path / "empty.ember"
    empty.write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty"):
        em.load_model(empty)

    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("readme.txt", "some other archive")
    with pytest.raises(FileFormatError, match="foreign.zip.*lacks metadata.json"):
        em.load_model(foreign)

    # flip bytes inside the stored weights: the zip's CRC check catches it
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("weights.npz")
    flipped = bytearray(raw)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    flipped[start : start + 8] = bytes(255 - b for b in flipped[start : start + 8])
    corrupt = tmp_path / "corrupt.ember"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(FileFormatError, match="corrupt.ember"):
        em.load_model(corrupt)

    bad_json = tmp_path / "badjson.ember"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad_json, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, b"{not json" if name == "config.json" else src.read(name))
    with pytest.raises(FileFormatError, match="config.json is not valid JSON"):
        em.load_model(bad_json)

    with pytest.raises(FileNotFoundError):
        em.load_model(tmp_path / "missing.ember")


def test_a_pickled_array_inside_the_file_is_refused(tmp_path):
    model = trained()
    good = tmp_path / "m.ember"
    model.save(good)
    buf = io.BytesIO()
    np.savez(buf, **{p.name: np.array([{"evil": 1}], dtype=object) for p in model.weights})
    evil = tmp_path / "evil.ember"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, buf.getvalue() if name == "weights.npz" else src.read(name))
    with pytest.raises(FileFormatError, match="evil.ember: weights.npz"):
        em.load_model(evil)


def test_a_backup_file_is_not_taken_for_a_model(tmp_path):
    model = trained()
    saving.save_training_state(model, tmp_path / "b.zip", epoch=1)
    with pytest.raises(FileFormatError, match="not an ember model"):
        em.load_model(tmp_path / "b.zip")


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    model = trained()
    path = tmp_path / "m.ember"
    model.save(path)
    before = path.read_bytes()
    model.fit(*data(), epochs=1, verbose=0)

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(saving.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["m.ember"]  # and no temporary file is left behind
    assert zipfile.ZipFile(path).testzip() is None


def test_overwrite_false_keeps_an_existing_file(tmp_path):
    model = trained()
    path = tmp_path / "m.ember"
    model.save(path)
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)


def test_a_fresh_process_loads_a_model_by_class_names_alone(tmp_path):
    import subprocess
    import sys

    model = trained()
    x, _ = data()
    model.save(tmp_path / "m.ember")
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, ember\n"
        "m = ember.load_model(sys.argv[1])\n"
        "np.save(sys.argv[2], m.predict(np.load(sys.argv[3])))\n"
        "print(type(m).__name__, m.compiled, [type(l).__name__ for l in m.layers])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.ember"), str(tmp_path / "p.npy"),
         str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["Sequential", "True"]
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.predict(x))
