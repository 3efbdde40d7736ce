"""The communicator: mpi4py underneath, one process without it.

Every collective that training relies on goes through here, so the fault rule lives in one place:
a collective that does not complete within ``timeout`` seconds means a peer died or hung, and this
process exits with status 1 and a message naming the rank(s) it lost, instead of hanging.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np

from ember.errors import EmberError

DEFAULT_TIMEOUT = float(os.environ.get("EMBER_DIST_TIMEOUT", "30"))


class DistributedError(EmberError, RuntimeError):
    """A peer process failed or could not be reached."""


def _under_mpi() -> bool:
    # set by MPICH's hydra (PMI_*), Open MPI (OMPI_*) and our launcher
    return any(k in os.environ for k in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK"))


class Communicator:
    """A world of ranks. ``Communicator()`` joins MPI's world when the process was started by
    ``mpiexec``; otherwise it is a world of one and every collective is the identity."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self._comm = None
        if _under_mpi():
            try:
                from mpi4py import MPI
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise DistributedError(
                    "this process was started by mpiexec but mpi4py is not installed: "
                    "pip install 'ember[distributed]'"
                ) from exc
            self._MPI = MPI
            self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank() if self._comm else 0
        self.size = self._comm.Get_size() if self._comm else 1
        # who is where, so that a timeout can say which peer is gone
        me = (socket.gethostname(), os.getpid())
        self.peers = self._comm.allgather(me) if self._comm else [me]

    # ------------------------------------------------------------------ faults
    def _lost_ranks(self) -> list:
        host = socket.gethostname()
        lost = []
        for r, (h, pid) in enumerate(self.peers):
            if r == self.rank or h != host:
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                lost.append(r)
            except PermissionError:
                pass
        return lost

    def _wait(self, request, what: str):
        """Poll a non-blocking request until done or the deadline; exit naming lost ranks."""
        deadline = time.monotonic() + self.timeout
        while not request.Test():
            if time.monotonic() > deadline:
                self.fail(what)
            time.sleep(0.0005)

    def fail(self, what: str) -> None:
        lost = self._lost_ranks()
        who = (
            f"rank(s) {', '.join(map(str, lost))} died"
            if lost
            else f"no answer from the other rank(s) within {self.timeout:.0f} s"
        )
        sys.stderr.write(
            f"ember.distributed: rank {self.rank} lost contact during {what}: {who}; exiting\n"
        )
        sys.stderr.flush()
        os._exit(1)  # a hung collective cannot be unwound: leave at once

    # ------------------------------------------------------------------ collectives
    def allreduce_mean_(self, buf: np.ndarray) -> np.ndarray:
        """Average ``buf`` over all ranks, in place."""
        if self._comm is None:
            return buf
        out = np.empty_like(buf)
        req = self._comm.Iallreduce(buf, out, op=self._MPI.SUM)
        self._wait(req, "a gradient allreduce")
        np.multiply(out, 1.0 / self.size, out=buf)
        return buf

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        if self._comm is None:
            return values
        values = np.ascontiguousarray(values)
        out = np.empty_like(values)
        req = self._comm.Iallreduce(values, out, op=self._MPI.SUM)
        self._wait(req, "an allreduce")
        return out

    def broadcast_(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buf`` on every rank with root's values, in place."""
        if self._comm is None:
            return buf
        req = self._comm.Ibcast(buf, root=root)
        self._wait(req, "a weight broadcast")
        return buf

    def send(self, array: np.ndarray, dest: int, tag: int = 0) -> None:
        array = np.ascontiguousarray(array)
        header = np.array([array.ndim, *array.shape], dtype=np.int64)
        hreq = self._comm.Isend(np.array([header.size], dtype=np.int64), dest=dest, tag=tag)
        self._wait(hreq, f"a send to rank {dest}")
        self._wait(self._comm.Isend(header, dest=dest, tag=tag), f"a send to rank {dest}")
        self._wait(self._comm.Isend(array, dest=dest, tag=tag), f"a send to rank {dest}")

    def recv(self, source: int, dtype, tag: int = 0) -> np.ndarray:
        n = np.empty(1, dtype=np.int64)
        self._wait(self._comm.Irecv(n, source=source, tag=tag), f"a receive from rank {source}")
        header = np.empty(int(n[0]), dtype=np.int64)
        self._wait(
            self._comm.Irecv(header, source=source, tag=tag), f"a receive from rank {source}"
        )
        out = np.empty(tuple(header[1:]), dtype=dtype)
        self._wait(self._comm.Irecv(out, source=source, tag=tag), f"a receive from rank {source}")
        return out

    def barrier(self) -> None:
        if self._comm is not None:
            self._wait(self._comm.Ibarrier(), "a barrier")

    def abort(self, code: int = 1) -> None:
        if self._comm is not None:
            self._comm.Abort(code)
        os._exit(code)


_WORLD: Communicator | None = None


def world() -> Communicator:
    """The process's communicator (created on first use)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = Communicator()
    return _WORLD


def rank() -> int:
    """This process's rank (0 without MPI)."""
    return world().rank if _WORLD is not None or _under_mpi() else 0


def world_size() -> int:
    """How many ranks take part (1 without MPI)."""
    return world().size if _WORLD is not None or _under_mpi() else 1


def is_chief() -> bool:
    """Rank 0: the only rank that writes files, logs and checkpoints."""
    return rank() == 0


def install_excepthook() -> None:
    """An uncaught exception on one rank names that rank and brings the whole world down
    (MPI_Abort), instead of leaving the others waiting in a collective forever."""
    if world_size() == 1:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.write(
            f"ember.distributed: rank {rank()} failed with {kind.__name__}; aborting all ranks\n"
        )
        sys.stderr.flush()
        world().abort(1)

    sys.excepthook = hook
