"""ember's chunk runner: work split into cache-sized chunks and run on every core, shared by the
heavy ops (convolution, batch norm, pooling, the recurrent loops, the optimizer updates).

Python threads run the chunks (NumPy and the compiled kernels release the GIL), each BLAS call
on one BLAS thread, so that ember's threads and OpenBLAS's never fight over the cores. Also
here: the per-thread scratch buffers of the ops' temporaries, column sums, and the little
state by which Dense products and convolutions keep out of each other's way.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time

import numpy as np

OPENBLAS_SPINNING = [0.0]  # monotonic time until which OpenBLAS's helpers may still spin
CONV_RECENT = [0.0]  # monotonic time until which convolutions count as running


def sum_rows(a: np.ndarray) -> np.ndarray:
    """Column sums of a 2-D array (a bias gradient). NumPy's sum over axis 0 adds one short row
    at a time (slow, and one long sequential chain in float32); folding k rows into one wide row
    first sums k times fewer, k times longer rows, then the k partial sums."""
    m, n = a.shape
    for k in (64, 16, 4):
        if m % k == 0 and m >= 4 * k:
            return a.reshape(m // k, k * n).sum(axis=0).reshape(k, n).sum(axis=0)
    return np.einsum("ij->j", a)


_local = threading.local()


def _scratch(slot: str, shape, dtype) -> np.ndarray:
    """A reusable work buffer for a temporary that dies inside one call (never returned, never
    kept for a backward). Fresh multi-MB arrays cost a page fault per 4 KB on every step; this
    memory is touched once and reused. One buffer per slot and thread, grown as needed."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(slot)
    if buf is None or buf.nbytes < nbytes:
        buf = buffers[slot] = np.empty(nbytes, dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _numpys_blas(libs):
    """NumPy's own BLAS among the loaded ones (threadpoolctl controllers), or False.

    SciPy's wheels bring a second OpenBLAS (sparse and linalg load it, e.g. the Embedding op's
    backward): picking "the only BLAS" failed once SciPy was imported first, and every chunk
    then ran serial (measured: the lstm step 12 -> 17.6 ms in a run where SciPy came first).
    """
    if len(libs) == 1:
        return libs[0]
    for keep in (lambda p: "numpy" in p, lambda p: "scipy" not in p):
        mine = [c for c in libs if keep(str(c.filepath).lower())]
        if len(mine) == 1:
            return mine[0]
    return False


def _cpus_of_this_thread():
    """The cores this thread may run on (None where the OS cannot say)."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def _current_cpu():
    """The core this thread runs on now (glibc's sched_getcpu), or None."""
    if _GETCPU[0] is None:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).sched_getcpu
            fn.restype = ctypes.c_int
            _GETCPU[0] = fn
        except (OSError, AttributeError):
            _GETCPU[0] = False
    cpu = _GETCPU[0]() if _GETCPU[0] else -1
    return cpu if cpu >= 0 else None


_GETCPU = [None]  # glibc's sched_getcpu once looked up, False where there is none


def _others_running() -> int:
    """How many other threads on the machine are running or waiting for a core now (Linux's
    /proc/loadavg, less this one), read at most every 50 ms; a large number where unknown."""
    now = time.monotonic()
    if now - _RUNNING[0] > 0.05:
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            running = 1 << 30
        _RUNNING[:] = [now, running - 1]
    return _RUNNING[1]


_RUNNING = [-1.0, 0]  # when /proc/loadavg was last read, and the others running then


def _pin(cores) -> None:
    """Hold this thread on ``cores``; a refusal (a cpuset changed under us) only costs speed."""
    try:
        os.sched_setaffinity(0, cores)
    except OSError:
        pass


class _Workers:
    """Runs ``work(i)`` for every chunk i on the calling thread plus helper threads, one per
    BLAS thread the user allows, each BLAS call on one thread. NumPy releases the GIL in copies
    and GEMMs, so two cores build patches and multiply at once; one multi-threaded GEMM per
    chunk would leave the patch copies on one core. Chunks are handed out one at a time (a
    busy core takes fewer) and every chunk writes only its own output, so results do not
    depend on the thread count or timing. Serial without threadpoolctl (BLAS threads as set),
    under ``threadpool_limits(1)``, or when another thread is already running chunks.

    Every BLAS call made here runs on one BLAS thread, a lone chunk too: on a busy machine a
    multi-threaded OpenBLAS call waits for its helper thread to be scheduled, and the same
    (9 x 50176) @ (50176 x 32) product was measured at 0.6 ms and at 300-1,800 ms on 2 loaded
    cores. These threads block on a queue when idle (no spinning), and a helper that has not
    started when the caller has done every chunk is not waited for."""

    def __init__(self):
        self.lock = threading.Lock()
        self.blas = None  # threadpoolctl's controller of NumPy's BLAS, False when unavailable
        self.pool, self.pid = None, None

    def _blas(self):
        if self.blas is None:
            try:
                from threadpoolctl import ThreadpoolController

                libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
                self.blas = _numpys_blas(libs)
            except Exception:  # not installed, or an unusual setup: stay serial
                self.blas = False
        return self.blas

    # BLAS threads of a serial run: 1, so that no OpenBLAS helper is woken inside ember's chunk
    # work (measured on cnn steps: 28 ms at the median of a loaded machine, against 134-272 ms
    # with OpenBLAS's 2 threads per chunk GEMM)
    serial_blas_threads = 1

    # Spread a run's threads over different cores: for the length of a run the calling thread
    # is held on the core it is on and the helpers on the others (both set back after). After
    # the process has slept (between batches, or the benchmark's pauses), Linux woke the helper
    # on the caller's core and left both there for tens of milliseconds: measured on lstm
    # inference after a 0.2 s sleep, 7.5 ms per forward (no faster than one thread) against
    # 4.3 ms with the threads spread (4.1 ms either way without the sleep).
    # Only while a core is free (fewer other threads running than our cores, less one): with
    # another process busy on one of two cores, holding a thread on that core measured 10-14 %
    # slower training steps than letting Linux move it (lstm 19.8 vs 18.0 ms, cnn 20.1 vs
    # 17.7 ms).
    spread_threads = True

    def threads(self) -> int:
        """How many threads a run may use: NumPy's BLAS thread count as the user set it (1
        where threadpoolctl cannot see NumPy's BLAS)."""
        blas = self._blas()
        return blas.get_num_threads() if blas else 1

    def run(self, work, count: int) -> None:
        blas = self._blas()
        threads = self.threads()
        if threads <= 1 or not self.lock.acquire(blocking=False):
            for i in range(count):
                work(i)
            return
        try:
            if time.monotonic() < OPENBLAS_SPINNING[0]:
                # serial while OpenBLAS's helpers still spin after a Dense product (a helper
                # of ours would fight them for a core)
                blas.set_num_threads(self.serial_blas_threads or threads)
                for i in range(count):
                    work(i)
                return
            blas.set_num_threads(1)
            if count == 1:  # even then on one BLAS thread: see the class docstring
                work(0)
                return
            if self.pool is None or self.pid != os.getpid():  # none yet, or a forked child
                from concurrent.futures import (
                    ThreadPoolExecutor,  # on first use: import ember stays light
                )

                self.pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="ember-workers")
                self.pid = os.getpid()
            chunks = itertools.count()
            allowed = _cpus_of_this_thread() if self.spread_threads else None
            quiet = allowed and len(allowed) > 1 and _others_running() < len(allowed) - 1
            here = _current_cpu() if quiet else None
            others = allowed - {here} if here in (allowed or ()) else None
            if others:  # see spread_threads
                _pin({here})

            def loop(helper=False):
                if helper and allowed:  # off our core, or free again after a spread run
                    _pin(others or allowed)
                for i in chunks:
                    if i >= count:
                        return
                    work(i)

            helpers = [self.pool.submit(loop, True) for _ in range(min(threads, count) - 1)]
            try:
                loop()
            finally:
                if others:
                    _pin(allowed)
                for h in helpers:
                    # a helper that has not started (its core is busy elsewhere) is not waited
                    # for: this thread has done every chunk
                    if not h.cancel():
                        h.result()  # re-raises a helper's error
        finally:
            blas.set_num_threads(threads)
            self.lock.release()


_workers = _Workers()


def matmul_rows(a, b, out=None) -> np.ndarray:
    """a @ b for 2-D operands on the workers, each GEMM on one BLAS thread: the longer side of
    the output is split into up to 4 blocks of 256+ rows (or columns), so that each GEMM packs
    only its share of the larger operand. The split depends on the shapes alone, so the bits
    do not depend on the thread count."""
    m, n = a.shape[0], b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    if m >= n:
        per = -(-m // max(1, min(4, m // 256)))

        def work(i):
            np.matmul(a[i * per : i * per + per], b, out=out[i * per : i * per + per])

        _workers.run(work, -(-m // per))
    else:
        per = -(-n // max(1, min(4, n // 256)))

        def work(i):
            np.matmul(a, b[:, i * per : i * per + per], out=out[:, i * per : i * per + per])

        _workers.run(work, -(-n // per))
    return out
