"""Start N ranks under ``mpiexec`` and watch over them: ``python -m ember.distributed.launch
-n 2 script.py [args]`` (what ``ember train --workers N`` runs).

Each rank gets one BLAS thread (``OPENBLAS_NUM_THREADS=1``, ...; ``--threads`` changes it), set
before NumPy loads in the rank, so that N ranks on N cores do not fight over them.

Why a launcher at all, when ``mpiexec -n N python script.py`` works: when a rank dies (killed,
out of memory), MPICH's ``mpiexec`` kills the other ranks within milliseconds and reports one
process ID, not always that of the rank that died first, and the survivors get no chance to
speak. The launcher outlives them all: it reads the rank -> PID table that rank 0 prints at
start-up, waits on the ranks' processes (a pidfd each, so it wakes within microseconds of the
first death, before the others are killed), and ends with a line naming that rank and a
non-zero status. (``-disable-auto-cleanup`` would let the survivors speak, but MPICH's mpiexec
then also signals SIGUSR1 to ranks that are still shutting down after a normal end.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from ember.distributed.comm import process_gone

_TABLE = re.compile(r"rank (\d+) = pid (\d+) on (\S+?)(?:,|$)")
_EXIT_STRING = re.compile(r"EXIT STRING: (.+?)\s*$")
_HYDRA_PID = re.compile(r"=\s+PID (\d+) RUNNING AT ")  # MPICH's BAD TERMINATION report
_LOST = re.compile(r"ember\.distributed: rank \d+ of \d+ lost rank (\d+) ")
GRACE_S = 10.0  # how long the survivors of a failure get to exit by themselves


JOB_NICENESS = 5  # how far below the supervisor the job runs (see launch)


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
    """What the ranks' output says: who is who (rank 0's table) and how the job ended."""

    def __init__(self):
        self.ranks: dict = {}  # rank -> (pid, host)
        self.exit_string = None
        self.lost = None  # the first rank a survivor reported lost
        self.hydra_pid = None  # the PID in mpiexec's BAD TERMINATION report
        self.seen: set = set()  # ember's own lines that came through
        self.lock = threading.Lock()

    def scan(self, line: str) -> None:
        with self.lock:
            if "ember.distributed:" in line:
                self.seen.add(line.rstrip("\r"))
            if "ember.distributed:" in line and " ranks: " in line:
                for r, pid, host in _TABLE.findall(line):
                    self.ranks[int(r)] = (int(pid), host)
            m = _LOST.search(line)
            if m and self.lost is None:
                self.lost = int(m.group(1))
            m = _HYDRA_PID.search(line)
            if m and self.hydra_pid is None:
                self.hydra_pid = int(m.group(1))
            m = _EXIT_STRING.search(line)
            if m and self.exit_string is None:
                self.exit_string = m.group(1)

    def local_ranks(self) -> dict:
        import socket

        here = socket.gethostname()
        with self.lock:
            return {r: pid for r, (pid, host) in self.ranks.items() if host == here}


def _pump(src, dst, watch: _Watch) -> None:
    """Copy a stream as it comes (progress bars end lines with \\r), scanning whole lines."""
    pending = b""
    fd = src.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        try:
            dst.write(chunk)
            dst.flush()
        except (OSError, ValueError):
            pass
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
    0, or a non-zero status after a line naming the rank that failed first."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"launch: workers must be an int >= 1, received {workers!r}")
    mpiexec = mpiexec or find_mpiexec()
    if not mpiexec:
        sys.stderr.write(
            "ember.distributed: mpiexec was not found next to this Python or on PATH; "
            "pip install 'ember[distributed]' (mpi4py and the mpich wheel)\n"
        )
        return 127
    argv = [mpiexec, *mpiexec_args, "-n", str(workers), *command]
    run_dir = tempfile.mkdtemp(prefix="ember-dist-")
    env = rank_environment(blas_threads)
    env["EMBER_DIST_RUN_DIR"] = run_dir
    # mpiexec, its proxies and the ranks run one nice level below this supervisor: when a rank
    # dies, the supervisor's pidfd watcher must be scheduled before the proxy (busy cores, the
    # proxy kills the survivors within milliseconds) or it cannot tell which rank went first
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_below_supervisor
    )
    watch = _Watch()
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, watch), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, watch), daemon=True),
    ]
    for t in pumps:
        t.start()
    try:
        code, first_gone = _supervise(proc, watch)
    finally:
        for t in pumps:
            t.join(timeout=5)
        failures = _read_failures(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    for message in failures:  # what a rank said after mpiexec had stopped listening
        if message not in watch.seen:
            sys.stderr.write(message + "\n")
        watch.scan(message)
    if code != 0:
        how = f": {watch.exit_string}" if watch.exit_string else ""
        if watch.lost is not None and watch.lost in watch.ranks:  # a survivor's word first
            first_gone = (watch.lost, watch.ranks[watch.lost][0])
        if first_gone is None and watch.hydra_pid is not None:
            # the watcher woke after mpiexec had already stopped the others, so it saw every
            # rank gone at once: fall back to the PID mpiexec reported (the rank it saw fail)
            first_gone = next(
                ((r, pid) for r, (pid, _) in watch.ranks.items() if pid == watch.hydra_pid), None
            )
        if first_gone is not None:
            r, pid = first_gone
            host = watch.ranks[r][1]
            what = f"rank {r} of {workers} (pid {pid} on {host}) ended first{how}"
            if watch.exit_string and "signal" in watch.exit_string.lower():
                what = f"lost rank {r} of {workers} (pid {pid} on {host}){how}"
        else:
            what = f"a rank failed{how}"
        sys.stderr.write(f"ember.distributed: {what}; the job ends with status {code}\n")
        sys.stderr.flush()
    return code


def _below_supervisor() -> None:
    try:
        os.nice(JOB_NICENESS)
    except OSError:  # not permitted: run at the same priority
        pass


class _Deaths(threading.Thread):
    """Notes the first rank process to end while the others still run: it waits on a pidfd
    per rank (Linux), so it wakes within microseconds, before mpiexec's proxy stops the rest a
    few milliseconds later; elsewhere it polls /proc every 2 ms."""

    def __init__(self, watch: _Watch):
        super().__init__(daemon=True)
        self.watch = watch
        self.first = None  # (rank, pid)
        self.stop = threading.Event()

    def run(self) -> None:
        import select

        ranks: dict = {}
        while not self.stop.is_set() and not ranks:
            ranks = self.watch.local_ranks()
            if not ranks:
                time.sleep(0.005)
        fds: dict = {}
        try:
            if hasattr(os, "pidfd_open") and hasattr(select, "poll"):
                for r, pid in ranks.items():
                    try:
                        fds[os.pidfd_open(pid)] = r
                    except OSError:  # already gone
                        self._note({r}, ranks)
                        return
                poller = select.poll()
                for fd in fds:
                    poller.register(fd, select.POLLIN)
                while not self.stop.is_set():
                    ready = poller.poll(100)
                    if ready:
                        self._note({fds[fd] for fd, _ in ready}, ranks)
                        return
            else:
                while not self.stop.is_set():
                    gone = {r for r, pid in ranks.items() if process_gone(pid)}
                    if gone:
                        self._note(gone, ranks)
                        return
                    time.sleep(0.002)
        finally:
            for fd in fds:
                os.close(fd)

    def _note(self, gone: set, ranks: dict) -> None:
        if len(gone) < len(ranks):  # all at once: a normal end, or no way to tell
            r = min(gone)
            self.first = (r, ranks[r])


def _supervise(proc, watch: _Watch):
    """Wait for mpiexec; after a failure wait for the ranks too (they may outlive mpiexec
    with -disable-auto-cleanup), stopping those still running after GRACE_S. Returns mpiexec's
    status and (rank, pid) of the first rank that ended while others still ran."""
    deaths = _Deaths(watch)
    deaths.start()
    deadline = None
    try:
        while True:
            code = proc.poll()
            if code is not None:
                ranks = watch.local_ranks()
                alive = {r: pid for r, pid in ranks.items() if not process_gone(pid)}
                if code == 0 or not alive:
                    return code, deaths.first
                if deadline is None:
                    deadline = time.monotonic() + GRACE_S
                elif time.monotonic() > deadline:
                    for r, pid in alive.items():
                        sys.stderr.write(f"ember.distributed: stopping rank {r} (pid {pid})\n")
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    return code, deaths.first
            try:
                time.sleep(0.01)
            except KeyboardInterrupt:  # mpiexec got the same SIGINT and passes it on
                pass
    finally:
        deaths.stop.set()
        deaths.join(timeout=1)


def _read_failures(folder: str) -> list:
    out = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("failure-"):
            with open(os.path.join(folder, name), errors="replace") as f:
                out.extend(line.rstrip("\n") for line in f if line.strip())
    return out


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
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per rank")
    parser.add_argument("--mpiexec", default=None, help="the mpiexec to use")
    parser.add_argument("script", help="the Python script every rank runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    return launch(
        [sys.executable, args.script, *args.args], args.workers, args.threads, args.mpiexec
    )


if __name__ == "__main__":
    sys.exit(main())
