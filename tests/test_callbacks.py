"""Callbacks: each one pinned by a scripted sequence of logs (expected outcomes worked out by
hand from Keras 3's rules) and by a real fit.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ember as em
from ember import callbacks as cb
from ember import layers
from ember.errors import EmberTypeError, EmberValueError


def blobs(n=60, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(size=(n, d))).astype("float32"), y.astype("int64")


def small_model(lr=0.01, opt="adam", metrics=("accuracy",)):
    model = em.Sequential(
        [layers.Input((5,)), layers.Dense(8, activation="relu"), layers.Dense(3, "softmax")]
    )
    optimizer = em.optimizers.get(opt)
    optimizer.learning_rate = lr
    model.compile(optimizer, "sparse_categorical_crossentropy", list(metrics))
    return model


def scripted(callback, values, key="val_loss", model=None):
    """Feed ``values`` as epoch logs; return the epoch at which training was stopped (or None)
    and the learning rate after each epoch."""
    model = model or small_model(lr=1.0, opt="sgd")
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    lrs, stopped = [], None
    for epoch, v in enumerate(values):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {key: v})
        lrs.append(model.optimizer.learning_rate)
        if model.stop_training and stopped is None:
            stopped = epoch
            break
    callback.on_train_end()
    return stopped, lrs


class WeightsAtEpochEnd(cb.Callback):
    def __init__(self, x=None):
        super().__init__()
        self.weights, self.preds, self.batches = [], [], 0
        self.x = x

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        if self.x is not None:
            self.preds.append(self.model.predict(self.x))


# ---------------------------------------------------------------------------------- base
def test_callback_list_rejects_non_callbacks_and_runs_log_producers_first():
    seen = []

    class Reader(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(k for k in logs if k.startswith("grad_norm")))

    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=1, callbacks=[Reader(), cb.GradientMonitor()], verbose=0)
    assert len(seen[0]) == 2  # the monitor ran first although it was listed second
    with pytest.raises(EmberTypeError, match="Callback instances"):
        cb.CallbackList([print])


def test_auto_mode_reads_the_direction_from_the_name():
    assert cb.monitor_direction("val_loss") == "min"
    assert cb.monitor_direction("val_accuracy") == "max"
    assert cb.monitor_direction("auc") == "max"
    assert cb.monitor_direction("val_mse") == "min"
    assert cb.monitor_direction("accuracy", mode="min") == "min"
    with pytest.raises(EmberValueError, match="mode"):
        cb.EarlyStopping(mode="sideways")


# ---------------------------------------------------------------------------------- EarlyStopping
@pytest.mark.parametrize(
    "kwargs, values, key, stopped",
    [
        # best 0.9 at epoch 1; epochs 2 and 3 do not improve -> wait reaches 2 at epoch 3
        (dict(patience=2), [1.0, 0.9, 0.95, 0.92, 0.91], "val_loss", 3),
        # improvement must beat best - 0.05: 0.96 does not (wait 1 = patience at epoch 1)
        (dict(patience=1, min_delta=0.05), [1.0, 0.96, 0.93, 0.90], "val_loss", 1),
        (dict(patience=1, min_delta=0.05), [1.0, 0.94, 0.88, 0.85], "val_loss", 3),
        # max mode from the name
        (dict(monitor="val_accuracy", patience=1), [0.5, 0.6, 0.6, 0.7], "val_accuracy", 2),
        # baseline 0.5 never beaten: wait keeps counting while improving, stops at the first
        # epoch that does not improve once wait >= patience
        (dict(patience=2, baseline=0.5), [0.8, 0.7, 0.6, 0.65, 0.55], "val_loss", 3),
        # nothing is watched before start_from_epoch
        (dict(patience=0, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0], "val_loss", 3),
        (dict(patience=3), [1.0, 0.9, 0.8, 0.7, 0.6], "val_loss", None),
    ],
)
def test_early_stopping_on_scripted_sequences(kwargs, values, key, stopped):
    es = cb.EarlyStopping(**kwargs)
    got, _ = scripted(es, values, key)
    assert got == stopped
    assert es.stopped_epoch == (stopped or 0)


def test_early_stopping_restores_the_best_epochs_weights_in_a_scripted_run():
    model = small_model()
    es = cb.EarlyStopping(patience=2, restore_best_weights=True)
    es.set_model(model)
    es.on_train_begin()
    snapshots = []
    for epoch, v in enumerate([1.0, 0.5, 0.7, 0.8]):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        snapshots.append(model.get_weights())
        es.on_epoch_end(epoch, {"val_loss": v})
    assert model.stop_training and es.best_epoch == 1
    es.on_train_end()
    for a, b in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_in_a_real_fit_stops_and_restores_the_best_weights():
    x, y = blobs()
    model = small_model(lr=0.02)
    rec = WeightsAtEpochEnd()
    # the loss falls every epoch, so in max mode epoch 0 stays the best: stop after patience
    es = cb.EarlyStopping(monitor="loss", mode="max", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=10, batch_size=20, callbacks=[es, rec], verbose=0)
    loss = history.history["loss"]
    assert all(b < a for a, b in zip(loss, loss[1:]))
    assert history.epoch == [0, 1, 2] and es.stopped_epoch == 2
    for a, b in zip(model.get_weights(), rec.weights[0]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_weights_when_the_epochs_run_out():
    x, y = blobs()
    model = small_model(lr=0.02)
    rec = WeightsAtEpochEnd()
    es = cb.EarlyStopping(monitor="loss", mode="max", patience=50, restore_best_weights=True)
    history = model.fit(x, y, epochs=3, batch_size=20, callbacks=[es, rec], verbose=0)
    assert history.epoch == [0, 1, 2] and es.stopped_epoch == 0
    for a, b in zip(model.get_weights(), rec.weights[0]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- ReduceLR
def test_reduce_lr_on_plateau_scripted_with_cooldown_and_min_lr():
    rl = cb.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    values = [1.0] * 6 + [0.5] * 7
    _, lrs = scripted(rl, values)
    # worked by hand from Keras's rule (cooldown is counted down before the wait check)
    expected = [1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1, 0.1]
    np.testing.assert_allclose(lrs, expected)


def test_reduce_lr_on_plateau_cooldown_pauses_the_count():
    rl = cb.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)
    _, lrs = scripted(rl, [1.0] * 7)
    np.testing.assert_allclose(lrs, [1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125])


def test_reduce_lr_on_plateau_in_a_real_fit_logs_the_rate_it_used():
    x, y = blobs()
    model = small_model(lr=0.04)
    rl = cb.ReduceLROnPlateau(monitor="loss", mode="max", factor=0.5, patience=1)
    history = model.fit(x, y, epochs=4, batch_size=20, callbacks=[rl], verbose=0)
    np.testing.assert_allclose(history.history["learning_rate"], [0.04, 0.04, 0.02, 0.01])
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    with pytest.raises(EmberValueError, match="factor"):
        cb.ReduceLROnPlateau(factor=1.5)


# ---------------------------------------------------------------------------------- schedulers
def test_learning_rate_scheduler_with_one_and_two_argument_schedules():
    x, y = blobs()
    model = small_model(lr=0.08, opt="sgd")
    halve = cb.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr / 2)
    history = model.fit(x, y, epochs=4, callbacks=[halve], verbose=0)
    np.testing.assert_allclose(history.history["learning_rate"], [0.08, 0.04, 0.02, 0.01])
    model = small_model(opt="sgd")
    inverse = cb.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    history = model.fit(x, y, epochs=3, callbacks=[inverse], verbose=0)
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.1 / 3])
    bad = cb.LearningRateScheduler(lambda epoch: "fast")
    with pytest.raises(EmberTypeError, match="must return a float"):
        small_model().fit(x, y, epochs=1, callbacks=[bad], verbose=0)


def test_terminate_on_nan_stops_at_the_first_bad_batch():
    x, y = blobs(n=40)
    x[25] = np.nan  # in the third batch of 10
    model = small_model()
    rec = WeightsAtEpochEnd()
    with np.errstate(invalid="ignore"):
        history = model.fit(x, y, epochs=3, batch_size=10, shuffle=False,
                            callbacks=[cb.TerminateOnNaN(), rec], verbose=0)  # fmt: skip
    assert rec.batches == 3
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])


# ---------------------------------------------------------------------------------- checkpoints
def test_model_checkpoint_fills_templates_and_checkpoints_reload_identically(tmp_path):
    x, y = blobs()
    model = small_model()
    rec = WeightsAtEpochEnd(x=x)
    template = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.4f}.ember")
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[cb.ModelCheckpoint(template), rec])  # fmt: skip
    for epoch, val_loss in enumerate(history.history["val_loss"]):
        path = tmp_path / f"ckpt-{epoch + 1:02d}-{val_loss:.4f}.ember"
        assert path.exists(), sorted(os.listdir(tmp_path))
        reloaded = em.load_model(path)
        np.testing.assert_array_equal(reloaded.predict(x), rec.preds[epoch])
    assert len(os.listdir(tmp_path)) == 3


def test_model_checkpoint_save_best_only_keeps_the_best(tmp_path):
    model = small_model()
    path = tmp_path / "best.weights.npz"
    ck = cb.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, save_weights_only=True)
    ck.set_model(model)
    saved = {}
    for epoch, v in enumerate([1.0, 2.0, 0.5, 0.7]):
        model.set_weights([np.full_like(w, epoch + 1) for w in model.get_weights()])
        ck.on_epoch_end(epoch, {"val_loss": v})
        with np.load(path) as f:
            saved[epoch] = float(f[f.files[0]].ravel()[0])
    assert saved == {0: 1.0, 1: 1.0, 2: 3.0, 3: 3.0}
    ck_max = cb.ModelCheckpoint(tmp_path / "m.ember", monitor="val_accuracy", save_best_only=True)
    ck_max.set_model(model)
    ck_max.on_epoch_end(0, {"val_accuracy": 0.5})
    mtime = os.stat(tmp_path / "m.ember").st_mtime_ns
    ck_max.on_epoch_end(1, {"val_accuracy": 0.4})
    assert os.stat(tmp_path / "m.ember").st_mtime_ns == mtime


def test_model_checkpoint_errors(tmp_path):
    with pytest.raises(EmberValueError, match=r"\.weights\.npz"):
        cb.ModelCheckpoint(tmp_path / "w.ember", save_weights_only=True)
    ck = cb.ModelCheckpoint(str(tmp_path / "{val_auc:.2f}.ember"))
    ck.set_model(small_model())
    with pytest.raises(EmberValueError, match="val_auc"):
        ck.on_epoch_end(0, {"loss": 1.0})


# ---------------------------------------------------------------------------------- loggers
def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = blobs()
    path = tmp_path / "log.csv"
    model = small_model()
    h1 = model.fit(x, y, epochs=2, validation_split=0.2, callbacks=[cb.CSVLogger(path)],
                   verbose=0)  # fmt: skip
    h2 = model.fit(x, y, epochs=4, initial_epoch=2, validation_split=0.2,
                   callbacks=[cb.CSVLogger(path, append=True)], verbose=0)  # fmt: skip
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    losses = [float(r["loss"]) for r in rows]
    assert losses == h1.history["loss"] + h2.history["loss"]


def test_tensorboard_event_files_load_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX", reason="tensorboardX (the tensorboard extra) is absent")
    ea_mod = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="the tensorboard package (its event reader is the oracle) is absent",
    )
    x, y = blobs()
    model = small_model()
    logdir = tmp_path / "tb"
    history = model.fit(x, y, epochs=3, validation_split=0.2, verbose=0,
                        callbacks=[cb.TensorBoard(logdir, histogram_freq=1),
                                   cb.GradientMonitor()])  # fmt: skip

    def load(sub):
        acc = ea_mod.EventAccumulator(str(logdir / sub), size_guidance={"histograms": 0})
        acc.Reload()
        return acc

    train, val = load("train"), load("validation")
    events = train.Scalars("epoch_loss")
    assert [e.step for e in events] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in events], history.history["loss"], rtol=1e-6)
    val_events = val.Scalars("epoch_accuracy")
    np.testing.assert_allclose([e.value for e in val_events], history.history["val_accuracy"],
                               rtol=1e-6)  # fmt: skip
    tags = train.Tags()
    assert any(t.startswith("grad_norm/") for t in tags["scalars"])
    assert {p.name for p in model.weights} <= set(tags["histograms"])
    assert len(train.Histograms(model.weights[0].name)) == 3


# ---------------------------------------------------------------------------------- backup
def _backup_run(tmp_path, crash_at=None, backup="bk"):
    em.set_seed(11)
    x, y = blobs(n=50)
    model = em.Sequential([
        layers.Input((5,)), layers.Dense(16, activation="relu"), layers.Dropout(0.3, seed=3),
        layers.Dense(8, activation="relu"), layers.Dropout(0.2), layers.Dense(3, "softmax"),
    ])  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")

    class Crash(cb.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == crash_at:
                raise RuntimeError("simulated crash")

    callbacks = [cb.BackupAndRestore(tmp_path / backup), Crash()]
    history = model.fit(x, y, epochs=6, batch_size=8, validation_split=0.2, callbacks=callbacks,
                        verbose=0)  # fmt: skip
    return model, history


def test_backup_and_restore_resumes_after_a_crash_with_identical_results(tmp_path):
    reference, ref_history = _backup_run(tmp_path, backup="ref")
    assert not os.path.exists(tmp_path / "ref" / cb.BackupAndRestore.FILENAME)  # cleaned up
    with pytest.raises(RuntimeError, match="simulated crash"):
        _backup_run(tmp_path, crash_at=3)
    assert os.path.exists(tmp_path / "bk" / cb.BackupAndRestore.FILENAME)
    resumed, history = _backup_run(tmp_path)
    assert history.epoch == [3, 4, 5]
    assert history.history["loss"] == ref_history.history["loss"][3:]
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import ember as em
    from ember import callbacks as cb, layers

    backup, out, pause_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    em.set_seed(5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    model = em.Sequential([layers.Input((5,)), layers.Dense(16, activation="relu"),
                           layers.Dropout(0.25), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")

    class PauseAfter(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == pause_after:
                open(out + ".marker", "w").close()
                time.sleep(120)  # the test kills the process here, with SIGKILL

    h = model.fit(x, y, epochs=7, batch_size=8, verbose=0,
                  callbacks=[cb.BackupAndRestore(backup), PauseAfter()])
    np.savez(out, *model.get_weights())
    print("epochs run:", h.epoch)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_mid_training_then_rerun_ends_with_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    run = [sys.executable, str(script)]
    killed_out = str(tmp_path / "killed.npz")
    proc = subprocess.Popen([*run, str(tmp_path / "bk"), killed_out, "3"])
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(killed_out + ".marker"):
            assert proc.poll() is None, "the training script ended before the kill"
            assert time.monotonic() < deadline, "the training script never reached epoch 3"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not os.path.exists(killed_out)
    resumed = subprocess.run([*run, str(tmp_path / "bk"), str(tmp_path / "resumed.npz"), "-1"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "epochs run: [4, 5, 6]" in resumed.stdout
    straight = subprocess.run([*run, str(tmp_path / "bk2"), str(tmp_path / "straight.npz"), "-1"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert straight.returncode == 0, straight.stderr
    assert "epochs run: [0, 1, 2, 3, 4, 5, 6]" in straight.stdout
    with np.load(tmp_path / "resumed.npz") as a, np.load(tmp_path / "straight.npz") as b:
        assert len(a.files) == 4
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])


# ---------------------------------------------------------------------------------- diagnostics
def test_gradient_monitor_logs_each_layers_gradient_norm():
    x, y = blobs(n=30)
    model = small_model(lr=0.0, opt="sgd")  # a zero rate: the weights stay where we read them
    k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=30, callbacks=[cb.GradientMonitor()],
                        verbose=0)  # fmt: skip
    # backprop by hand: softmax + cross-entropy gives dz = (p - onehot) / n
    xx = x.astype(np.float64)
    pre = xx @ k1 + b1
    h = np.maximum(pre, 0)
    z = h @ k2 + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(3)[y]) / len(y)
    dk2, db2 = h.T @ dz, dz.sum(0)
    dh = (dz @ k2.T) * (pre > 0)
    dk1, db1 = xx.T @ dh, dh.sum(0)
    d1, d2 = (layer.name for layer in model.layers)
    logs = history.history
    norm1 = np.sqrt((dk1**2).sum() + (db1**2).sum())
    norm2 = np.sqrt((dk2**2).sum() + (db2**2).sum())
    np.testing.assert_allclose(logs[f"grad_norm/{d1}"][0], norm1, rtol=1e-4)
    np.testing.assert_allclose(logs[f"grad_norm/{d2}"][0], norm2, rtol=1e-4)


def test_dead_neuron_monitor_counts_units_that_never_fire():
    x, y = blobs(n=20)
    model = em.Sequential([
        layers.Input((5,)),
        layers.Dense(4, activation="relu", kernel_initializer="zeros"),
        layers.Dense(3),
        layers.ReLU(),
        layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    d1, d2 = model.layers[0], model.layers[1]
    d1.bias.assign(np.array([-1.0, -1.0, 1.0, 0.0]))  # units 0, 1, 3 output 0 for every input
    d2.kernel.assign(np.zeros((4, 3)))
    d2.bias.assign(np.array([2.0, -0.5, -3.0]))  # after the ReLU, units 1 and 2 stay at 0
    model.compile(em.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    monitor = cb.DeadNeuronMonitor((x, y))
    history = model.fit(x, y, epochs=2, callbacks=[monitor], verbose=0)
    assert history.history[f"dead_relu/{d1.name}"] == [0.75, 0.75]
    relu_name = model.layers[2].name
    assert history.history[f"dead_relu/{relu_name}"] == pytest.approx([2 / 3, 2 / 3])
    assert f"dead_relu/{model.layers[3].name}" not in history.history  # softmax: not a ReLU
