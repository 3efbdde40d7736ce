"""The communicator: mpi4py underneath, a world of one without it.

Every message that training sends goes through here, so the fault rules live in one place:

- a rank that raises prints its traceback, names itself and aborts every rank (``MPI_Abort``);
- a rank killed outright (SIGKILL, out of memory) is stopped by MPICH's ``mpiexec``, which
  kills the other ranks within milliseconds and prints a process ID. Rank 0 prints the rank ->
  PID table at start-up, and the launcher (``python -m ember.distributed.launch``, which
  ``ember train --workers N`` uses) watches the processes and names the rank that ended first;
- a rank that waits for a peer checks, while it waits, whether the peer's process still exists
  (same machine; for launchers that leave the survivors running), and a wait longer than
  ``timeout`` seconds (a peer alive but stuck) ends it: either way it exits with status 1 and
  a message naming the lost rank(s) or the timeout.

Waiting is non-blocking MPI polled from Python (``Test``): a short spin, then naps that grow to
2 ms, which frees the CPU for other processes on a shared machine while costing little latency.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np

from ember.errors import EmberError

_HOST_BYTES = 64  # host names are gathered in fixed-size records
_DTYPES = {np.dtype(c).num: np.dtype(c) for c in "?bBhHiIlLqQefdgFDG"}


def dtype_from_num(num: int) -> np.dtype:
    """The NumPy dtype whose ``dtype.num`` is ``num`` (sent in message headers)."""
    return _DTYPES[int(num)]


def _default_timeout() -> float:
    try:
        return float(os.environ.get("EMBER_DIST_TIMEOUT", "300"))
    except ValueError:
        return 300.0


class DistributedError(EmberError, RuntimeError):
    """A peer process failed or could not be reached, or the ranks disagree."""


def under_mpi() -> bool:
    """Whether this process was started by an MPI launcher (MPICH's hydra, Open MPI, PMIx)."""
    return any(k in os.environ for k in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK"))


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                pass
    return None


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting to be reaped)."""
    if os.path.isdir("/proc/self"):  # Linux: /proc also tells a zombie from a live process
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        # the state letter follows the command name, which is in parentheses
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X")
    try:  # no /proc (macOS, ...): whether the process exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Pending:
    """Non-blocking sends in flight; ``wait()`` completes them (buffers are kept alive here)."""

    def __init__(self, comm: Communicator, requests: list, buffers: list, what: str):
        self.comm, self.requests, self.buffers, self.what = comm, requests, buffers, what

    def wait(self) -> None:
        for req in self.requests:
            self.comm._wait(req, self.what)
        self.requests, self.buffers = [], []


class Communicator:
    """A world of ranks.

    ``Communicator()`` joins MPI's world when the process was started by ``mpiexec``
    (importing mpi4py only then); otherwise it is a world of one, where every collective returns
    its input. Creating it is collective: every rank must create it.

    Args:
        timeout: seconds a rank waits for its peers before it gives up and exits with status 1
            (default: ``$EMBER_DIST_TIMEOUT`` or 300). A peer that died is noticed at once.
        mpi_comm: an mpi4py communicator to use instead of ``MPI.COMM_WORLD``.
    """

    def __init__(self, timeout: float | None = None, mpi_comm=None):
        self.timeout = _default_timeout() if timeout is None else float(timeout)
        self._comm = None
        self._MPI = None
        if mpi_comm is not None or under_mpi():
            try:
                from mpi4py import MPI
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise DistributedError(
                    "this process was started by mpiexec but mpi4py is not installed: "
                    "pip install 'ember[distributed]'"
                ) from exc
            self._MPI = MPI
            self._comm = mpi_comm if mpi_comm is not None else MPI.COMM_WORLD
        self.rank = self._comm.Get_rank() if self._comm is not None else 0
        self.size = self._comm.Get_size() if self._comm is not None else 1
        me = (socket.gethostname(), os.getpid())
        self.peers = [me]
        if self.size > 1:
            self._install_fault_handlers()
            self.peers = self._gather_peers(me)
            if self.rank == 0:
                table = ", ".join(
                    f"rank {r} = pid {p} on {h}" for r, (h, p) in enumerate(self.peers)
                )
                sys.stderr.write(f"ember.distributed: {self.size} ranks: {table}\n")
                sys.stderr.flush()

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    # ------------------------------------------------------------------ faults
    def _install_fault_handlers(self) -> None:
        install_excepthook(self)

    def lost_ranks(self) -> list:
        """Ranks on this machine whose process no longer runs."""
        host = socket.gethostname()
        return [
            r for r, (h, pid) in enumerate(self.peers)
            if r != self.rank and h == host and process_gone(pid)
        ]  # fmt: skip

    def describe(self, r: int) -> str:
        if r < len(self.peers):
            host, pid = self.peers[r]
            return f"rank {r} (pid {pid} on {host})"
        return f"rank {r}"

    def fail(self, what: str, lost=None, detail: str = "") -> None:
        """Print why this rank gives up and exit with status 1 at once (a pending MPI
        operation cannot be unwound, so no exception is raised)."""
        me = f"ember.distributed: rank {self.rank} of {self.size}"
        if lost:
            lost_names = ", ".join(self.describe(r) for r in lost)
            msg = f"{me} lost {lost_names} during {what}: the process died"
        else:
            msg = (
                f"{me} got no answer from the other ranks within {self.timeout:g} s during "
                f"{what} (a rank is stuck, or died on another machine; EMBER_DIST_TIMEOUT sets "
                f"the wait)"
            )
        if detail:
            msg += f" ({detail})"
        report(msg + "; exiting with status 1")
        os._exit(1)

    def _wait(self, request, what: str) -> None:
        """Complete a non-blocking request, or exit naming the lost ranks."""
        MPI = self._MPI
        try:
            if request.Test():
                return
            start = time.monotonic()
            spin_until, check_at, nap = start + 0.002, start + 0.25, 5e-5
            while not request.Test():
                now = time.monotonic()
                if now < spin_until:
                    continue
                if now >= check_at:
                    lost = self.lost_ranks()
                    if lost or now - start > self.timeout:
                        self.fail(what, lost)
                    check_at = now + 0.25
                time.sleep(nap)
                nap = min(nap * 2, 0.002)
        except MPI.Exception as exc:  # MPI noticed the failure first
            self.fail(what, self.lost_ranks(), detail=f"MPI error: {exc}")

    def _gather_peers(self, me) -> list:
        rec = np.zeros(_HOST_BYTES + 8, dtype=np.uint8)
        host = me[0].encode()[:_HOST_BYTES]
        rec[: len(host)] = np.frombuffer(host, dtype=np.uint8)
        rec[_HOST_BYTES:] = np.frombuffer(np.int64(me[1]).tobytes(), dtype=np.uint8)
        out = np.empty((self.size, rec.size), dtype=np.uint8)
        self._wait(self._comm.Iallgather(rec, out), "start-up (gathering the ranks)")
        peers = []
        for row in out:
            name = bytes(row[:_HOST_BYTES]).rstrip(b"\0").decode(errors="replace")
            peers.append((name, int(np.frombuffer(bytes(row[_HOST_BYTES:]), np.int64)[0])))
        return peers

    # ------------------------------------------------------------------ collectives
    def allreduce(self, values: np.ndarray, op: str = "sum", what: str = "an allreduce"):
        """A new array holding ``op`` ("sum", "max" or "min") of ``values`` over all ranks."""
        values = np.ascontiguousarray(values)
        if self._comm is None:
            return values.copy()
        mpi_op = {"sum": self._MPI.SUM, "max": self._MPI.MAX, "min": self._MPI.MIN}[op]
        out = np.empty_like(values)
        self._wait(self._comm.Iallreduce(values, out, op=mpi_op), what)
        return out

    def allreduce_(self, buf: np.ndarray, what: str = "an allreduce") -> np.ndarray:
        """Sum ``buf`` (contiguous) over all ranks, in place."""
        if self._comm is None:
            return buf
        self._wait(self._comm.Iallreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM), what)
        return buf

    def allreduce_mean_(self, buf: np.ndarray, what: str = "an allreduce") -> np.ndarray:
        """Average ``buf`` (contiguous) over all ranks, in place."""
        if self._comm is None:
            return buf
        self.allreduce_(buf, what)
        buf *= buf.dtype.type(1.0 / self.size)
        return buf

    def broadcast_(self, buf: np.ndarray, root: int = 0, what: str = "a broadcast"):
        """Overwrite ``buf`` (contiguous) on every rank with root's values, in place."""
        if self._comm is None:
            return buf
        self._wait(self._comm.Ibcast(buf, root=root), what)
        return buf

    def agree(self, value: int, what: str) -> int:
        """``value`` when every rank passed the same integer; raises DistributedError (on every
        rank alike) when they differ."""
        if self.size == 1:
            return int(value)
        both = self.allreduce(np.array([value, -value], dtype=np.int64), "max", what)
        if both[0] != -both[1]:
            raise DistributedError(
                f"ember.distributed: the ranks disagree about {what}: values from "
                f"{-int(both[1])} to {int(both[0])}"
            )
        return int(value)

    def barrier(self, what: str = "a barrier") -> None:
        if self._comm is not None:
            self._wait(self._comm.Ibarrier(), what)

    # ------------------------------------------------------------------ point to point
    # A message is a fixed-size header (ndim, dtype number, shape) then the data, both with the
    # same tag: MPI keeps messages between two ranks with one tag in order.
    _HEADER = 10

    def isend(self, array: np.ndarray, dest: int, tag: int = 0) -> Pending:
        """Start sending ``array`` to rank ``dest``; ``.wait()`` the result before reusing it."""
        array = np.ascontiguousarray(array)
        if array.ndim > self._HEADER - 2:
            raise DistributedError(f"can only send arrays of up to {self._HEADER - 2} axes")
        header = np.zeros(self._HEADER, dtype=np.int64)
        header[0], header[1] = array.ndim, array.dtype.num
        header[2 : 2 + array.ndim] = array.shape
        what = f"a send to {self.describe(dest)}"
        reqs = [
            self._comm.Isend(header, dest=dest, tag=tag),
            self._comm.Isend(array, dest=dest, tag=tag),
        ]
        return Pending(self, reqs, [header, array], what)

    def send(self, array: np.ndarray, dest: int, tag: int = 0) -> None:
        self.isend(array, dest, tag).wait()

    def recv(self, source: int, tag: int = 0) -> np.ndarray:
        """Receive the next array that rank ``source`` sent with ``tag``."""
        what = f"a receive from {self.describe(source)}"
        header = np.empty(self._HEADER, dtype=np.int64)
        self._wait(self._comm.Irecv(header, source=source, tag=tag), what)
        ndim, num = int(header[0]), int(header[1])
        out = np.empty(tuple(int(s) for s in header[2 : 2 + ndim]), dtype=_DTYPES[num])
        self._wait(self._comm.Irecv(out, source=source, tag=tag), what)
        return out

    def abort(self, code: int = 1) -> None:
        """End every rank (MPI_Abort); in a world of one, this process."""
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            pass
        if self._comm is not None:
            # mpiexec drops what a rank wrote just before MPI_Abort if it is not forwarded
            # yet; a moment's grace lets the traceback reach the terminal
            time.sleep(0.3)
            self._comm.Abort(code)
        os._exit(code)


def report(message: str) -> None:
    """Write a failure message to stderr, and to the launcher's folder when there is one
    (a launcher whose mpiexec has already gone relays what it finds there)."""
    try:
        sys.stdout.flush()
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    folder = os.environ.get("EMBER_DIST_RUN_DIR")
    if folder:
        try:
            with open(os.path.join(folder, f"failure-{os.getpid()}.txt"), "w") as f:
                f.write(message + "\n")
        except OSError:
            pass


_WORLD: Communicator | None = None


def world() -> Communicator:
    """The process's communicator over every rank (created on first use; collective)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = Communicator()
    return _WORLD


def rank() -> int:
    """This process's rank (0 without MPI). Not collective: safe to call on one rank only."""
    if _WORLD is not None:
        return _WORLD.rank
    if not under_mpi():
        return 0
    r = _env_int("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
    return r if r is not None else world().rank


def world_size() -> int:
    """How many ranks take part (1 without MPI). Not collective."""
    if _WORLD is not None:
        return _WORLD.size
    if not under_mpi():
        return 1
    n = _env_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
    return n if n is not None else world().size


def is_chief() -> bool:
    """Rank 0: the only rank that prints progress and writes files, logs and checkpoints."""
    return rank() == 0


_HOOKED = False


def install_excepthook(comm: Communicator | None = None) -> None:
    """Make an uncaught exception on one rank name that rank and end every rank (MPI_Abort)
    instead of leaving the others waiting for it. Done by ``world()`` when there are several
    ranks; harmless to call again."""
    global _HOOKED
    if _HOOKED or (comm is None and world_size() == 1):
        return
    _HOOKED = True
    previous = sys.excepthook

    def hook(kind, value, tb):
        c = comm or world()
        previous(kind, value, tb)
        if issubclass(kind, KeyboardInterrupt):
            why = "was interrupted"
        else:
            why = f"raised {kind.__name__}: {value}"
        report(f"ember.distributed: {c.describe(c.rank)} of {c.size} {why}; aborting every rank")
        c.abort(1)

    sys.excepthook = hook
