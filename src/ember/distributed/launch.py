"""Start N ranks under ``mpiexec`` and watch them: ``python -m ember.distributed.launch -n 2
script.py [args]`` (what ``ember train --workers N`` runs).

Each rank gets one BLAS thread (``OPENBLAS_NUM_THREADS=1``, ...; ``--threads`` changes it), set
before NumPy loads in the rank, so that N ranks on N cores do not fight over them.

Why a launcher at all, when ``mpiexec -n N python script.py`` works: when a rank dies (killed,
out of memory), MPICH's ``mpiexec`` stops the other ranks within a second and prints the dead
process's PID, not its rank; the survivors get no chance to speak. The launcher is the one
process that outlives them all: it passes the ranks' output through, reads ember's rank -> PID
table (printed by rank 0 at start-up) and mpiexec's report, and ends with a line naming the lost
rank and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading

_TABLE = re.compile(r"rank (\d+) = pid (\d+) on (\S+?)(?:,|$)")
_HYDRA_PID = re.compile(r"PID (\d+) RUNNING AT (\S+)")
_HYDRA_CODE = re.compile(r"EXIT CODE: (\d+)")
_HYDRA_STRING = re.compile(r"EXIT STRING: (.+?)\s*$")


def find_mpiexec() -> str | None:
    """``mpiexec`` next to the running Python (a venv with the ``mpich`` wheel), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")


def rank_environment(blas_threads: int = 1, base=None) -> dict:
    """The environment for the ranks: ``blas_threads`` threads for every BLAS / OpenMP
    library, and a mark that they were started by this launcher."""
    env = dict(os.environ if base is None else base)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(blas_threads)
    env["EMBER_DIST_LAUNCHED"] = "1"
    return env


class _Watch:
    """What the ranks' output says about who is who and who failed."""

    def __init__(self):
        self.ranks: dict = {}  # pid -> (rank, host)
        self.failed_pid = None
        self.exit_code = None
        self.exit_string = None
        self.lock = threading.Lock()

    def scan(self, line: str) -> None:
        with self.lock:
            if "ember.distributed:" in line and " ranks: " in line:
                for r, pid, host in _TABLE.findall(line):
                    self.ranks[int(pid)] = (int(r), host)
            m = _HYDRA_PID.search(line)
            if m and self.failed_pid is None:
                self.failed_pid = int(m.group(1))
            m = _HYDRA_CODE.search(line)
            if m and self.exit_code is None:
                self.exit_code = int(m.group(1))
            m = _HYDRA_STRING.search(line)
            if m and self.exit_string is None:
                self.exit_string = m.group(1)


def _pump(src, dst, watch: _Watch) -> None:
    """Copy a stream as it comes (progress bars end lines with \\r), scanning whole lines."""
    pending = b""
    fd = src.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        dst.write(chunk)
        dst.flush()
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            watch.scan(line.decode(errors="replace"))
    if pending:
        watch.scan(pending.decode(errors="replace"))


def launch(
    command: list,
    workers: int,
    blas_threads: int = 1,
    mpiexec: str | None = None,
    mpiexec_args=(),
) -> int:
    """Run ``command`` (e.g. ``[sys.executable, "script.py"]``) on ``workers`` ranks; returns
    mpiexec's exit status (non-zero when a rank failed, after a line naming it)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"launch: workers must be an int >= 1, received {workers!r}")
    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        sys.stderr.write(
            "ember.distributed: mpiexec was not found next to this Python or on PATH; "
            "pip install 'ember[distributed]' (mpi4py and the mpich wheel)\n"
        )
        return 127
    argv = [mpiexec, *mpiexec_args, "-n", str(workers), *command]
    proc = subprocess.Popen(
        argv, env=rank_environment(blas_threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    watch = _Watch()
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, watch), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, watch), daemon=True),
    ]
    for t in pumps:
        t.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # mpiexec got the same SIGINT and passes it to the ranks
        code = proc.wait()
    for t in pumps:
        t.join(timeout=10)
    if code != 0 and watch.failed_pid is not None:
        rank, host = watch.ranks.get(watch.failed_pid, (None, None))
        who = f"a rank (pid {watch.failed_pid})"
        if rank is not None:
            who = f"rank {rank} of {workers} (pid {watch.failed_pid} on {host})"
        how = watch.exit_string or (
            f"exit code {watch.exit_code}" if watch.exit_code is not None else "it failed"
        )
        if "signal" in how.lower():
            what = f"lost {who}: {how}"
        else:  # it gave up or failed on its own, and said why above
            what = f"{who} was the first to end: {how}"
        sys.stderr.write(
            f"ember.distributed: {what}; mpiexec stopped the other ranks (exit status {code})\n"
        )
        sys.stderr.flush()
    return code


def argv_from_args(args, skip=("func", "command")) -> list:
    """Command-line options that parse back to ``args`` (an argparse Namespace whose options
    are ``--long-names``): None and False are left out, True is a bare flag."""
    out = []
    for name, value in vars(args).items():
        if name in skip or value is None or value is False or callable(value):
            continue
        flag = "--" + name.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


def relaunch(args, module_argv: list, workers: int, blas_threads: int = 1) -> int:
    """Run this command again on ``workers`` ranks: ``python <module_argv> <args as options>``
    (what ``ember train --workers N`` does)."""
    command = [sys.executable, *module_argv, *argv_from_args(args)]
    return launch(command, workers, blas_threads)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ember.distributed.launch",
        description="Run a Python script on N MPI ranks (one BLAS thread each) and report "
        "which rank failed, if one does.",
    )
    parser.add_argument("-n", "--workers", type=int, required=True, help="number of ranks")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per rank (default 1)")
    parser.add_argument("--mpiexec", default=None, help="the mpiexec to use")
    parser.add_argument("script", help="the Python script every rank runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    return launch(
        [sys.executable, args.script, *args.args], args.workers, args.threads, args.mpiexec
    )


if __name__ == "__main__":
    sys.exit(main())
