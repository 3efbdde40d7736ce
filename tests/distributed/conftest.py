"""Helpers for the tests that start MPI ranks: find mpiexec (next to this Python first, then on
PATH) and run a scenario of ``mpi_scenarios.py`` on 2 ranks with a bounded wait."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ember.distributed.launch import find_mpiexec, rank_environment

SCENARIOS = Path(__file__).with_name("mpi_scenarios.py")


def need_mpi() -> str:
    """The mpiexec to use, or skip the test with the reason."""
    pytest.importorskip(
        "mpi4py", reason="mpi4py is not installed (pip install 'ember[distributed]')"
    )
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec was found neither next to this Python nor on PATH")
    return mpiexec


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, seconds: float):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds

    def check(self) -> Run:
        assert self.returncode == 0, f"the ranks failed:\n{self.stdout}\n{self.stderr}"
        return self


def run_ranks(
    scenario: str, out_dir, n: int = 2, timeout: float = 90, env=None, mpiexec_args=()
) -> Run:
    """``mpiexec -n n python mpi_scenarios.py scenario out_dir`` (one BLAS thread per rank)."""
    mpiexec = need_mpi()
    cmd = [mpiexec, *mpiexec_args, "-n", str(n), sys.executable, str(SCENARIOS), scenario]
    return _run([*cmd, str(out_dir)], timeout, env)


def run_launcher(scenario: str, out_dir, n: int = 2, timeout: float = 90, env=None) -> Run:
    """The same through ``python -m ember.distributed.launch``."""
    need_mpi()
    cmd = [sys.executable, "-m", "ember.distributed.launch", "-n", str(n), str(SCENARIOS)]
    return _run([*cmd, scenario, str(out_dir)], timeout, env)


def _run(cmd, timeout, env) -> Run:
    full_env = rank_environment(1)
    full_env.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    return Run(proc, time.monotonic() - start)
