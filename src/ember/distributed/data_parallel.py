"""Data parallelism (Keras's MirroredStrategy, PyTorch's DDP, Horovod): every rank holds a full
replica, trains on its shard of each global batch, and the gradients are averaged by one allreduce
over a flat buffer before every update, so the replicas stay identical.

Exactness: each rank's loss is the mean over its local examples. Multiplying its gradient by
``n_local * world / n_global`` before the mean-allreduce makes the result the gradient of the mean
over the whole global batch, also when the batch does not divide evenly.
"""

from __future__ import annotations

import numpy as np

from ember.distributed.comm import Communicator, world


class DataParallel:
    """Replicate the model on every rank and average gradients each step.

    Args:
        comm: the communicator (default: MPI's world, or a world of one without MPI).

    Use with ``model.fit(..., strategy=DataParallel())`` (``batch_size`` is the global batch,
    split across ranks), or in a hand-written loop through ``wrap_optimizer``.
    """

    def __init__(self, comm: Communicator | None = None):
        self.comm = comm or world()
        self._flat = None

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def world_size(self) -> int:
        return self.comm.size

    @property
    def is_chief(self) -> bool:
        return self.comm.rank == 0

    # ------------------------------------------------------------------ weights
    def broadcast_weights(self, model_or_params) -> None:
        """Give every rank rank 0's weights (one flat broadcast)."""
        params = _params(model_or_params)
        if self.world_size == 1 or not params:
            return
        flat = np.concatenate([p.data.ravel() for p in params]).astype(params[0].dtype)
        self.comm.broadcast_(flat, root=0)
        _unpack(flat, [p.data for p in params])

    # ------------------------------------------------------------------ data
    def local_slice(self, n: int) -> slice:
        """This rank's contiguous share of a global batch of n examples."""
        bounds = np.linspace(0, n, self.world_size + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def split_batch(self, *arrays):
        """This rank's part of each array of a global batch (None passes through)."""
        n = len(arrays[0])
        s = self.local_slice(n)
        out = tuple(None if a is None else a[s] for a in arrays)
        return out if len(out) > 1 else out[0]

    # ------------------------------------------------------------------ gradients
    def allreduce_gradients(
        self, params, n_local: int | None = None, n_global: int | None = None
    ) -> None:
        """Average the ``.grad`` of params over ranks in place (missing grads count as zero)."""
        if self.world_size == 1:
            return
        params = [p for p in params if p.requires_grad]
        size = sum(p.size for p in params)
        dtype = params[0].dtype if params else np.float32
        if self._flat is None or self._flat.size != size or self._flat.dtype != dtype:
            self._flat = np.empty(size, dtype=dtype)  # reused every step
        flat, offset = self._flat, 0
        for p in params:
            view = flat[offset : offset + p.size]
            if p.grad is None:
                view[...] = 0
            else:
                view[...] = p.grad.ravel()
            offset += p.size
        if n_local is not None and n_global:
            flat *= n_local * self.world_size / n_global
        self.comm.allreduce_mean_(flat)
        offset = 0
        for p in params:
            p.grad = flat[offset : offset + p.size].reshape(p.shape).copy()
            offset += p.size

    def reduce_logs(self, logs: dict, weight: float = 1.0) -> dict:
        """Average numeric log values over ranks (weighted by ``weight``, e.g. example counts)."""
        if self.world_size == 1 or not logs:
            return logs
        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float, np.floating)))
        vals = np.array([float(logs[k]) * weight for k in keys] + [weight], dtype=np.float64)
        total = self.comm.allreduce_sum(vals)
        out = dict(logs)
        for k, v in zip(keys, total[:-1]):
            out[k] = float(v / total[-1])
        return out

    def wrap_optimizer(self, optimizer) -> DistributedOptimizer:
        return DistributedOptimizer(optimizer, self)


MirroredStrategy = DataParallel


class DistributedOptimizer:
    """An optimizer whose ``step``/``apply_gradients`` first average gradients over ranks
    (ChainerMN's multi-node optimizer, Horovod's DistributedOptimizer)."""

    def __init__(self, optimizer, strategy: DataParallel | None = None):
        self.inner = optimizer
        self.strategy = strategy or DataParallel()
        self.n_local = None
        self.n_global = None

    def step(self) -> None:
        self.strategy.allreduce_gradients(self.inner.params, self.n_local, self.n_global)
        self.inner.step()

    def apply_gradients(self, grads_and_vars) -> None:
        pairs = list(grads_and_vars)
        for g, p in pairs:
            p.grad = g
        self.strategy.allreduce_gradients([p for _, p in pairs], self.n_local, self.n_global)
        self.inner.apply_gradients([(p.grad, p) for _, p in pairs])

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _params(model_or_params) -> list:
    if hasattr(model_or_params, "weights"):
        return list(model_or_params.weights)
    return list(model_or_params)


def _unpack(flat: np.ndarray, arrays) -> None:
    offset = 0
    for a in arrays:
        a[...] = flat[offset : offset + a.size].reshape(a.shape)
        offset += a.size
