"""The progress display: a live bar on a terminal, one line per epoch otherwise, silence at 0."""

from __future__ import annotations

import io

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberValueError
from ember.training.progress import ProgressLogger, format_time, resolve_verbose


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def model_and_data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = em.Sequential([layers.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model, x, y


def test_verbose_auto_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert resolve_verbose("auto", FakeTTY()) == "bar"
    assert resolve_verbose("auto", io.StringIO()) == "line"
    assert resolve_verbose(1, io.StringIO()) == "line"
    assert resolve_verbose(2, FakeTTY()) == "line"
    assert resolve_verbose(0) is None
    with pytest.raises(EmberValueError, match="verbose"):
        resolve_verbose(3)


def test_without_a_terminal_fit_prints_one_line_per_epoch(capsys):
    model, x, y = model_and_data()
    model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3 - 3 steps - ")
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert f" - {key}: " in line
    assert "\r" not in "".join(lines)


def test_verbose_0_prints_nothing(capsys):
    model, x, y = model_and_data()
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_on_a_terminal_the_bar_is_redrawn_in_place_with_an_eta():
    model, x, y = model_and_data()
    stream = FakeTTY()
    bar = ProgressLogger("bar", stream=stream)
    bar.min_interval = 0.0  # redraw at every batch
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[bar])
    out = stream.getvalue()
    assert out.count("Epoch 1/2\n") == 1 and out.count("Epoch 2/2\n") == 1
    assert "\r1/4 [" in out and "ETA:" in out
    finals = [seg for seg in out.split("\r") if seg.startswith("4/4")]
    assert len(finals) == 2
    assert finals[0].startswith("4/4 [" + "=" * 30 + "]") and "ms/step - loss: " in finals[0]
    assert finals[0].endswith("\n")


def test_the_bar_of_a_generator_counts_steps_without_a_total():
    model, x, y = model_and_data()
    stream = FakeTTY()
    bar = ProgressLogger("bar", stream=stream)
    gen = ((x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16))
    model.fit(gen, epochs=1, verbose=0, callbacks=[bar])
    assert "\r4 steps" in stream.getvalue()


def test_time_formatting():
    assert format_time(5.4) == "5s"
    assert format_time(75) == "1:15"
    assert format_time(3725) == "1:02:05"


def test_evaluate_and_predict_show_one_bar_on_a_terminal(monkeypatch):
    model, x, y = model_and_data()
    stream = FakeTTY()
    monkeypatch.setattr("sys.stdout", stream)
    model.evaluate(x, y, batch_size=16)
    model.predict(x, batch_size=16)
    finals = [seg for seg in stream.getvalue().split("\r") if seg.startswith("4/4 [")]
    assert len(finals) == 2 and " - loss: " in finals[0] and " - loss" not in finals[1]
