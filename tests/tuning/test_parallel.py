"""Several `ember tune` processes on one SQLite study: shared budget, no duplicates, and a
killed worker's study continued by a restarted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="Optuna (the tune extra) is not installed")

HERE = Path(__file__).resolve().parent

CONFIG = """
[search]
method = "random"
objective = "val_loss"
max_trials = {n}
seed = 0
pruner = "none"
heartbeat_interval = 1
storage = "{url}"
study_name = "parallel"

[data]
dataset = "xor"
options = {{ n_samples = 64 }}

[model]
family = "_tune_helper:build"

[fit]
epochs = 1
batch_size = 32

[space]
units = {{ type = "int", low = 2, high = 64 }}
learning_rate = {{ type = "float", low = 1e-3, high = 1e-1, log = true }}
"""


def start_worker(cfg, out, env_extra):
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "tune", cfg, "--out", out, "-q", "--no-plot"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc, timeout=90):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker did not finish in {timeout} s:\n{out}")
    assert proc.returncode == 0, out
    return out


def setup(tmp_path, n):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    cfg = tmp_path / "tune.toml"
    cfg.write_text(CONFIG.format(n=n, url=url))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    return str(cfg), url, barrier


def params_key(t):
    return (t.params["units"], t.params["learning_rate"])


def test_two_workers_share_one_study_and_run_n_trials_in_total(tmp_path):
    n = 8
    cfg, url, barrier = setup(tmp_path, n)
    env = {"EMBER_TUNE_BARRIER": str(barrier), "EMBER_TUNE_WORKERS": "2",
           "EMBER_TUNE_SLEEP": "0.25"}  # fmt: skip
    workers = [start_worker(cfg, str(tmp_path / f"out{i}"), env) for i in range(2)]
    for w in workers:
        finish(w)

    study = optuna.load_study(study_name="parallel", storage=url)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    ran = [t for t in study.trials if not t.user_attrs.get("surplus")]
    assert len(done) == n and len(ran) == n  # n in total, not n per worker
    assert len({params_key(t) for t in done}) == n  # no configuration twice
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers took part


def test_a_killed_worker_is_replaced_and_the_study_completes(tmp_path):
    n = 6
    cfg, url, barrier = setup(tmp_path, n)
    env = {"EMBER_TUNE_SLEEP": "0.4"}
    first = start_worker(cfg, str(tmp_path / "out1"), env)
    deadline = time.monotonic() + 60
    while True:  # wait until two trials are done and a third is running, then kill
        assert time.monotonic() < deadline, "the first worker made no progress"
        assert first.poll() is None, first.communicate()[0]
        try:
            trials = optuna.load_study(study_name="parallel", storage=url).trials
        except (KeyError, ValueError):  # the study does not exist yet
            trials = []
        states = [t.state.name for t in trials]
        # a running trial that has started (recorded its seed: its heartbeat thread is on)
        started = any(t.state.name == "RUNNING" and "seed" in t.user_attrs for t in trials)
        if states.count("COMPLETE") >= 2 and started:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = optuna.load_study(study_name="parallel", storage=url).trials
    stuck = [t for t in killed if t.state.name == "RUNNING"]
    assert len(stuck) == 1  # the killed trial is left running in the database

    finish(start_worker(cfg, str(tmp_path / "out2"), env))

    trials = optuna.load_study(study_name="parallel", storage=url).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == n  # the study reached its budget
    assert len({params_key(t) for t in done}) == n
    lost = [t for t in trials if t.number == stuck[0].number][0]
    assert lost.state.name == "FAIL"  # the heartbeat marked the dead worker's trial failed
    retry = [t for t in done if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retry) == 1  # ... and it ran again, with the same parameters and seed
    assert params_key(retry[0]) == params_key(lost)
    assert retry[0].user_attrs["seed"] == lost.user_attrs["seed"]
