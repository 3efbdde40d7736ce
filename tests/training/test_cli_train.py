"""``ember train`` end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the digits data comes from scikit-learn (datasets extra)")


def ember(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", "train", *args], cwd=cwd, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def test_ember_train_writes_the_model_history_and_curves_and_prints_accuracy(tmp_path):
    out = tmp_path / "run"
    result = ember("--epochs", "2", "--out", str(out), "--model", "mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "test accuracy: " in text and "confusion matrix" in text
    accuracy = float(text.split("test accuracy: ")[1].split()[0])
    assert 0.5 < accuracy <= 1.0
    for name in ("model.ember", "history.csv", "curves.png"):
        assert (out / name).exists(), name
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"] and "val_accuracy" in rows[0]

    import ember as em

    model = em.load_model(out / "model.ember")
    (_, _), (x_test, y_test) = em.datasets.digits()
    reloaded = float(np.mean(np.argmax(model.predict(x_test), -1) == y_test))
    assert reloaded == pytest.approx(accuracy, abs=1e-4)  # the file holds the trained model


def test_ember_train_names_its_default_output_folder_under_runs(tmp_path):
    result = ember("--epochs", "1", "--model", "mlp", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("digits-mlp-")
    assert "Epoch" not in result.stdout


def test_ember_train_refuses_bad_workers_and_bad_data_clearly(tmp_path):
    result = ember("--workers", "0", cwd=tmp_path)  # --workers 2 trains on 2 MPI ranks now
    assert result.returncode == 2 and "--workers must be >= 1" in result.stderr
    result = ember("--data", "imagenet", cwd=tmp_path)
    assert result.returncode == 2 and "--data must be" in result.stderr
    result = ember("--threads", "0", cwd=tmp_path)
    assert result.returncode == 2 and "--threads must be >= 1" in result.stderr


def test_the_printed_confusion_matrix_matches_scikit_learn():
    from sklearn.metrics import confusion_matrix as sk_confusion

    from ember.training.cli_train import confusion_matrix, format_confusion

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    cm = confusion_matrix(y, p, 4)
    np.testing.assert_array_equal(cm, sk_confusion(y, p, labels=[0, 1, 2, 3]))
    lines = format_confusion(cm, ["a", "b", "c", "d"]).splitlines()
    assert [int(v) for v in lines[3].split()[2:]] == cm[1].tolist()
