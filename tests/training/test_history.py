"""History: the per-epoch logs and their plot."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberValueError
from ember.training.history import History


def test_history_collects_every_log_key_per_epoch():
    h = History()
    h.on_train_begin()
    h.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    h.on_epoch_end(1, {"loss": 0.5, "val_loss": 1.5, "learning_rate": 0.1})
    assert h.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5], "learning_rate": [0.1]}
    assert h.epoch == [0, 1]


def test_plot_draws_every_quantity_to_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is absent")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = em.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    path = history.plot(tmp_path / "sub" / "curves.png")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert em.callbacks.History is History
    with pytest.raises(EmberValueError, match="empty"):
        History().plot(tmp_path / "none.png")


def test_history_diagnose_names_overfitting_and_the_turning_epoch():
    from ember.training.history import History

    h = History()
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1]
    val = [1.0, 0.7, 0.55, 0.5, 0.56, 0.65, 0.8]  # lowest at epoch 3, then rising
    for epoch, (t, v) in enumerate(zip(train, val)):
        h.on_epoch_end(epoch, {"loss": t, "val_loss": v})
    d = h.diagnose()
    assert d.kind == "overfit"
    assert d.turning_epoch == 3
