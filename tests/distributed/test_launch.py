"""The launcher: which mpiexec it picks, the ranks' environment, and a run on 2 ranks."""

import stat
import sys

import pytest

from ember.distributed import launch

from .conftest import need_mpi


def _fake_exe(path):
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_find_mpiexec_prefers_the_one_next_to_python(tmp_path, monkeypatch):
    venv_bin, elsewhere = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    venv_bin.mkdir(parents=True)
    elsewhere.mkdir()
    _fake_exe(elsewhere / "mpiexec")
    monkeypatch.setenv("PATH", str(elsewhere))
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert launch.find_mpiexec() == str(elsewhere / "mpiexec")  # none next to python yet
    _fake_exe(venv_bin / "mpiexec")
    assert launch.find_mpiexec() == str(venv_bin / "mpiexec")


def test_ranks_get_one_blas_thread_each_by_default():
    env = launch.rank_environment(base={"PATH": "/bin", "OMP_NUM_THREADS": "8"})
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    assert env["MKL_NUM_THREADS"] == "1" and env["PATH"] == "/bin"
    assert launch.rank_environment(3, base={})["OPENBLAS_NUM_THREADS"] == "3"


def test_launch_without_mpiexec_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    assert launch.launch([sys.executable, "-c", "pass"], 2) == 127
    assert "pip install 'ember[distributed]'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        launch.launch(["x"], 0)


@pytest.mark.mpi
def test_launched_ranks_see_their_rank_world_size_and_one_blas_thread(tmp_path, capfd):
    need_mpi()
    script = tmp_path / "who.py"
    script.write_text(
        "import os, sys\nfrom ember import distributed as d\n"
        "sys.stdout.write(f'rank {d.rank()} of {d.world_size()} chief {d.is_chief()} '"
        " f'blas {os.environ[\"OPENBLAS_NUM_THREADS\"]}\\n')\n"  # one write: lines stay whole
    )
    assert launch.main(["-n", "2", str(script)]) == 0
    out = capfd.readouterr().out
    assert "rank 0 of 2 chief True blas 1" in out
    assert "rank 1 of 2 chief False blas 1" in out


def test_argv_from_args_parses_back_to_the_same_options():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(["--batch-size", "8", "--data", "folder:/a b", "--quiet"])
    argv = launch.argv_from_args(args)
    assert "--lr" not in argv  # None is left out
    assert parser.parse_args(argv) == args


@pytest.mark.mpi
def test_ember_train_workers_2_trains_on_two_ranks_and_writes_once(tmp_path):
    need_mpi()
    import subprocess

    out_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ember.cli", "train", "--workers", "2", "--epochs", "1",
         "--out", str(out_dir), "--quiet"],
        capture_output=True, text=True, timeout=180, env=launch.rank_environment(1),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ember.distributed: 2 ranks: rank 0 = pid" in proc.stderr  # it did start 2 ranks
    assert proc.stdout.count("ember train: cnn on digits") == 1
    assert proc.stdout.count("test accuracy:") == 1
    assert (out_dir / "model.ember").exists()
    assert len((out_dir / "history.csv").read_text().splitlines()) == 2  # header + 1 epoch
