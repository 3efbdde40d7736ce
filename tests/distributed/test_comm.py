"""The communicator: the world of one without MPI, and the fault rules with 2 ranks (a rank
killed, a rank that raises, a rank that stops answering)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ember import distributed as dist
from ember.distributed.comm import (
    Communicator,
    DistributedError,
    dtype_from_num,
    process_gone,
)

from .conftest import SCENARIOS, need_mpi, run_launcher, run_ranks


# ---------------------------------------------------------------------------- world of one
def test_world_of_one_without_mpi_returns_the_inputs():
    comm = Communicator()
    assert (comm.rank, comm.size) == (0, 1)
    assert (dist.rank(), dist.world_size(), dist.is_chief()) == (0, 1, True)
    a = np.arange(5.0)
    out = comm.allreduce(a)
    assert np.array_equal(out, a) and out is not a
    assert comm.allreduce_mean_(a) is a and np.array_equal(a, np.arange(5.0))
    assert comm.broadcast_(a) is a
    assert comm.agree(7, "a number") == 7
    comm.barrier()


def test_importing_ember_distributed_without_mpiexec_does_not_load_mpi4py():
    code = (
        "import sys, ember.distributed as d; c = d.world(); "
        "print(c.size, d.rank(), 'mpi4py' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.split() == ["1", "0", "False"], out.stderr


def test_dtype_numbers_round_trip():
    for dt in (np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_):
        assert dtype_from_num(np.dtype(dt).num) == np.dtype(dt)


# ---------------------------------------------------------------------------- faults
def _start_and_kill(cmd, out_dir, env):
    """Start the endless data-parallel loop, SIGKILL rank 1 once it has trained 3 steps, and
    return (elapsed seconds after the kill, returncode, stdout, stderr, pids)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    pid_files = [out_dir / "pid0", out_dir / "pid1"]
    deadline = time.monotonic() + 60
    while not all(f.exists() and f.read_text() for f in pid_files):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the ranks never started training"
        time.sleep(0.05)
    pids = [int(f.read_text()) for f in pid_files]
    time.sleep(0.2)  # mid-epoch: both ranks are exchanging gradients
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.monotonic()
    out, err = proc.communicate(timeout=90)
    return time.monotonic() - killed_at, proc.returncode, out, err, pids


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.mpi
def test_a_killed_rank_stops_the_other_and_the_launcher_names_it(tmp_path):
    need_mpi()
    from ember.distributed.launch import rank_environment

    cmd = [sys.executable, "-m", "ember.distributed.launch", "-n", "2", str(SCENARIOS),
           "endless_dp", str(tmp_path)]  # fmt: skip
    seconds, code, out, err, pids = _start_and_kill(cmd, tmp_path, rank_environment(1))
    assert code != 0
    assert seconds < 60
    assert _gone(pids[0]), "rank 0 outlived the job"
    assert f"lost rank 1 of 2 (pid {pids[1]} on " in err, err


@pytest.mark.mpi
def test_plain_mpiexec_stops_every_rank_and_rank_0_printed_who_is_who(tmp_path):
    # plain mpiexec kills the survivors within milliseconds and reports one PID (not always
    # the first to die): ember's table, printed at start-up, maps the PIDs to ranks
    mpiexec = need_mpi()
    from ember.distributed.launch import rank_environment

    cmd = [mpiexec, "-n", "2", sys.executable, str(SCENARIOS), "endless_dp", str(tmp_path)]
    seconds, code, out, err, pids = _start_and_kill(cmd, tmp_path, rank_environment(1))
    assert code != 0
    assert seconds < 60
    assert _gone(pids[0])
    assert f"rank 0 = pid {pids[0]} on " in err and f"rank 1 = pid {pids[1]} on " in err
    assert any(f"PID {pid} " in out + err for pid in pids)  # MPICH's report


@pytest.mark.mpi
@pytest.mark.parametrize("via", ["mpiexec", "launcher"])
def test_a_rank_that_raises_names_itself_and_every_rank_stops(tmp_path, via):
    run = (run_ranks if via == "mpiexec" else run_launcher)(
        "endless_dp", tmp_path, env={"RAISE_ON_RANK": "1"}
    )
    assert run.returncode != 0
    assert run.seconds < 60
    assert "ValueError: a deliberate failure" in run.stderr  # the traceback
    assert "rank 1 (pid" in run.stderr and "raised ValueError" in run.stderr
    assert "aborting every rank" in run.stderr


@pytest.mark.mpi
def test_a_rank_that_stops_answering_makes_the_others_exit_after_the_timeout(tmp_path):
    run = run_launcher("endless_dp", tmp_path, env={"STUCK_RANK": "1", "EMBER_DIST_TIMEOUT": "2"})
    assert run.returncode != 0
    assert run.seconds < 40  # the stuck rank would sleep 60 s
    assert "rank 0 of 2 got no answer from the other ranks within 2 s" in run.stderr


def test_disagreeing_ranks_raise_a_clear_error():
    class Split(Communicator):  # rank 0 of 2 whose peer passed 5
        def __init__(self):
            super().__init__()
            self.size = 2

        def allreduce(self, values, op="sum", what=""):
            return np.maximum(values, np.array([5, -5]))

    with pytest.raises(DistributedError, match="disagree about the batches per epoch"):
        Split().agree(3, "the batches per epoch")


def test_process_gone_tells_live_zombie_and_reaped_processes(monkeypatch):
    assert not process_gone(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while not process_gone(child.pid):  # exited, not yet reaped: a zombie counts as gone
        assert time.monotonic() < deadline, "a finished child was never seen as gone"
        time.sleep(0.01)
    child.wait()
    assert process_gone(child.pid)
    # without /proc (macOS, ...) the answer comes from kill(pid, 0)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: False if p == "/proc/self" else real_isdir(p))
    assert not process_gone(os.getpid())
    assert process_gone(child.pid)
