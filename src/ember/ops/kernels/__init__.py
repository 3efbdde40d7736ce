"""Optional compiled kernels (Numba), one module per op family: ``pool``, ``norm``, ``conv``,
``optim``, ``recurrent``...

Nothing here is imported by ``import ember``. An op asks ``ember.ops._accel.load("pool")`` at call
time and gets the module, or None when Numba is not installed, ``EMBER_ACCEL=0`` is set, or the
caller is inside ``with ember.ops._accel.enabled(False):``. The NumPy code in ``ember/ops`` is
always the reference: every kernel computes the same function, is tested against that path,
and must be measured to win before an op uses it.

Conventions for the kernel modules (they import Numba at top level; the import error is what
tells ``load`` that Numba is missing):

- ``@njit(**JIT)``: compiled on first use and cached on disk; ``nogil`` so that ember's chunk
  runner (``ember.ops.workers._workers``) runs kernels on several cores from Python threads;
  ``error_model="numpy"`` because Python's error model puts a zero-division check in every
  division, which stops LLVM from vectorising a loop (measured here: a float32 rational tanh,
  1.9 ns per element with the check, 0.3 ns without it, the speed of NumPy's own tanh).
- Kernels work in the arrays' own dtype (constants through ``x.dtype.type``): float32 stays
  float32.
"""

JIT = dict(cache=True, nogil=True, error_model="numpy")
