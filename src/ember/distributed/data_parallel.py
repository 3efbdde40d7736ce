"""Data parallelism (Keras's MirroredStrategy, PyTorch's DDP, Horovod, ChainerMN): every rank
holds a full replica, trains on its share of each global batch, and the gradients are combined
by one allreduce over a flat buffer before every update, so the replicas stay identical.

Exactness: each rank's loss is the mean over its ``n_r`` local examples (plus the weight
penalties). Every rank sends ``n_r * g_r`` and ``n_r`` in the same buffer; after the sum each
holds ``sum_r n_r g_r / sum_r n_r``, the gradient of the mean over the whole global batch, also
when the batch does not split evenly and when a rank's share is empty. The penalties' gradient
comes out once, since the weights ``n_r / N`` add up to 1. The buffer also counts, per weight,
the ranks that had a gradient, so a weight without one on every rank stays without one (the
optimizer skips it, as on one process).

One allreduce of the whole flat buffer is the fastest layout here: ember's backward runs in
Python on one thread, so there is no computation for bucketed allreduces to hide behind, and
on this machine one allreduce of the ``cnn`` workload's 421,642 float32 gradients took 0.31 ms
(median) against 0.38 ms for four quarter-size ones (``benchmarks/distributed.py``).

What is not exact: BatchNormalization normalizes with each rank's local statistics (as
PyTorch's DDP without SyncBatchNorm); its moving statistics are averaged over the ranks before
every validation pass and at every epoch's end. Dropout masks come from each rank's own
generator.
"""

from __future__ import annotations

import inspect
import zlib

import numpy as np

from ember.callbacks import Callback
from ember.distributed.comm import Communicator, DistributedError, world
from ember.errors import EmberValueError
from ember.training import data_adapter as da


class DataParallel:
    """Replicate the model on every rank and average the gradients each step.

    Args:
        comm: the communicator (default: MPI's world, or a world of one without MPI).

    Use ``model.fit(..., strategy=DataParallel())``: ``batch_size`` is the global batch, split
    across the ranks; rank 0's weights are broadcast before the first epoch; the logs and
    metrics that callbacks and the History see are those of the global batch, on every rank;
    only rank 0 prints progress and runs ModelCheckpoint, CSVLogger, TensorBoard and
    BackupAndRestore's writes (and any callback with ``chief_only = True``).

    In a hand-written loop::

        strategy = DataParallel()
        strategy.broadcast_weights(model)
        opt = strategy.wrap_optimizer(Adam(params=model.trainable_weights))
        for xb, yb in global_batches:              # the same batches on every rank
            xl, yl = strategy.split_batch(xb, yb)  # this rank's share
            opt.zero_grad()
            loss_fn(yl, model(xl)).backward()
            opt.step(n_local=len(xl))
    """

    def __init__(self, comm: Communicator | None = None):
        self.comm = comm if comm is not None else world()
        self._buffers: dict = {}

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"

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
    def broadcast_weights(self, model_or_params, root: int = 0) -> None:
        """Give every rank ``root``'s weights (all of them: trainable or not); one broadcast
        per dtype."""
        params = _params(model_or_params)
        if self.world_size == 1 or not params:
            return
        for dtype, group in _by_dtype(params):
            flat = self._buffer(("bcast", dtype), sum(p.data.size for p in group), dtype)
            if self.rank == root:
                _pack([p.data for p in group], flat)
            self.comm.broadcast_(flat, root=root, what="the weight broadcast")
            _unpack(flat, [p.data for p in group])

    def average_weights(self, model_or_params) -> None:
        """Replace each weight by its mean over the ranks (summed in float64, so identical
        values stay identical); used for BatchNormalization's moving statistics."""
        params = [p for p in _params(model_or_params) if p.data.dtype.kind == "f"]
        if self.world_size == 1 or not params:
            return
        flat = np.concatenate([p.data.ravel() for p in params]).astype(np.float64)
        self.comm.allreduce_(flat, "averaging the non-trainable weights")
        flat /= self.world_size
        _unpack(flat, [p.data for p in params])

    # ------------------------------------------------------------------ data
    def local_slice(self, n: int) -> slice:
        """This rank's contiguous share of a global batch of ``n`` examples (shares differ by
        at most one example; the lower ranks get the smaller ones)."""
        w, r = self.world_size, self.rank
        return slice(r * n // w, (r + 1) * n // w)

    def split_batch(self, *arrays):
        """This rank's rows of each array of a global batch (a tuple of arrays, for a model
        with several inputs, is split member by member; None passes through)."""
        if not arrays:
            return None
        first = arrays[0][0] if isinstance(arrays[0], (tuple, list)) else arrays[0]
        s = self.local_slice(len(first))
        out = tuple(_take(a, s) for a in arrays)
        return out if len(out) > 1 else out[0]

    def shard(self, loader, batch_size: int | None = None):
        """The sharding sampler: a copy of an ``ember.data.DataLoader`` that yields this rank's
        share of every global batch.

        Every rank walks the same shuffled order of the epoch (the seed is rank 0's, broadcast
        here), cut round-robin (``DataLoader.shard``): the shards never overlap and together
        cover the epoch, and batch ``i`` of all ranks together is batch ``i`` of one process
        reading the whole order with the global batch size. To keep the ranks in step each gets
        the same number of samples: the last ``n % world_size`` samples of each epoch's order
        are left out (a different few each epoch when shuffling).

        Args:
            loader: the DataLoader, whose ``batch_size`` is the global batch.
            batch_size: the global batch (default: the loader's); must be a multiple of the
                number of ranks.
        """
        bs = loader.batch_size if batch_size is None else int(batch_size)
        w = self.world_size
        if bs is not None and bs % w:
            raise EmberValueError(
                f"DataParallel.shard: the global batch_size ({bs}) must be a multiple of the "
                f"number of ranks ({w}); each rank loads batch_size / {w} samples of every "
                f"batch"
            )
        if getattr(loader, "world_size", 1) != 1:
            raise EmberValueError(
                f"DataParallel.shard: this DataLoader is already a shard "
                f"({loader.rank}/{loader.world_size}); pass the whole loader"
            )
        seed = np.array([loader.seed], dtype=np.int64)
        self.comm.broadcast_(seed, what="the data order's seed")
        out = loader.shard(self.rank, w, even=True)
        out.seed = int(seed[0])
        out.batch_size = None if bs is None else bs // w
        return out

    # ------------------------------------------------------------------ gradients
    def allreduce_gradients(self, params, n_local: float | None = None) -> float:
        """Combine the ``.grad`` of ``params`` over the ranks, in place: the mean of the ranks'
        gradients weighted by ``n_local`` (their local example counts; None: equal weights).
        A weight whose ``.grad`` is None on every rank keeps None. ``params`` must list the same
        weights in the same order on every rank. Returns the sum of the weights."""
        params = list(params)
        w = 1.0 if n_local is None else float(n_local)
        if self.world_size == 1 or not params:
            return w
        groups = _by_dtype(params)
        extra = 1 + len(params)  # the weight's sum, then a has-gradient count per weight
        bufs = []
        for i, (dtype, group) in enumerate(groups):
            size = sum(p.data.size for p in group) + (extra if i == 0 else 0)
            flat = self._buffer(("grad", dtype, i), size, dtype)
            offset = 0
            for p in group:
                view = flat[offset : offset + p.data.size]
                g = p.grad
                if g is None:
                    view[...] = 0
                else:
                    np.multiply(np.asarray(getattr(g, "data", g)).reshape(-1), w, out=view)
                offset += p.data.size
            if i == 0:
                flat[offset] = w
                flat[offset + 1 :] = [p.grad is not None for p in params]
            bufs.append(flat)
        for flat in bufs:
            self.comm.allreduce_(flat, "a gradient allreduce")
        tail = bufs[0][-extra:].astype(np.float64)
        total, has = float(tail[0]), tail[1:]
        if total <= 0:
            raise DistributedError(
                "DataParallel: no rank had an example in this batch (the weights n_local add "
                "up to 0)"
            )
        where = {id(p): k for k, p in enumerate(params)}
        for (_, group), flat in zip(groups, bufs):
            offset = 0
            for p in group:
                view = flat[offset : offset + p.data.size]
                offset += p.data.size
                if has[where[id(p)]] == 0:
                    p.grad = None
                    continue
                view *= view.dtype.type(1.0 / total)
                p.grad = view.reshape(p.data.shape)  # a view: valid until the next allreduce
        return total

    def reduce_logs(self, logs: dict, weight: float = 1.0) -> dict:
        """The weighted mean over the ranks of each number in ``logs`` (e.g. weighted by the
        ranks' example counts); other entries pass through. Every rank gets the same dict."""
        if self.world_size == 1 or not logs:
            return dict(logs)
        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float, np.number)))
        self.comm.agree(zlib.crc32(repr(keys).encode()), "the keys of the logs to reduce")
        vals = np.array([float(logs[k]) * weight for k in keys] + [weight], dtype=np.float64)
        total = self.comm.allreduce(vals, "sum", "reducing the logs")
        out = dict(logs)
        for k, v in zip(keys, total[:-1]):
            out[k] = float(v / total[-1]) if total[-1] else float("nan")
        return out

    def wrap_optimizer(self, optimizer) -> DistributedOptimizer:
        """``optimizer`` whose updates first combine the gradients over the ranks."""
        return DistributedOptimizer(optimizer, self)

    def _buffer(self, key, size: int, dtype) -> np.ndarray:
        buf = self._buffers.get(key)
        if buf is None or buf.size != size:
            buf = self._buffers[key] = np.empty(size, dtype=dtype)  # reused every step
        return buf

    # ------------------------------------------------------------------ metrics
    def reduce_metric_states(self, model, before: list) -> None:
        """Add the other ranks' metric updates since ``before`` (from ``_snapshot(model)``)
        to this rank's, so that the model's loss tracker and metrics hold the global values."""
        leaves = _metric_leaves(model)
        layout, deltas = [], []
        for i, leaf in enumerate(leaves):
            state = _get_state(leaf)
            old = before[i] if i < len(before) else {}
            for key in sorted(state):
                now = np.asarray(state[key], dtype=np.float64)
                layout.append((i, key, now.shape))
                prev = old.get(key)
                deltas.append((now - prev if prev is not None else now).ravel())
        if not before or not before[0].get("count"):
            # the first reduction since the metrics were reset (the same step on every rank:
            # the states are global, so a zero count is zero everywhere) is when lazily made
            # states appear; after it the layout stays, and checking it once is enough
            self.comm.agree(
                zlib.crc32(repr(layout).encode()),
                "the layout of the metric states (did a rank get no example in the first "
                "batch? use a batch size of at least the number of ranks)",
            )
        if not deltas:
            return
        flat = self.comm.allreduce_(np.concatenate(deltas), "reducing the metrics")
        offset = 0
        for i, key, shape in layout:
            size = int(np.prod(shape))
            leaf, old = leaves[i], before[i] if i < len(before) else {}
            prev = old.get(key)
            delta = flat[offset : offset + size].reshape(shape)
            _set_state_entry(leaf, key, delta if prev is None else prev + delta)
            offset += size

    # ------------------------------------------------------------------ fit
    def run_fit(self, fit_fn, model, x=None, y=None, **kw):
        """``fit(..., strategy=self)`` on this rank: shard the data, wrap the steps so that the
        gradients and metrics are combined, keep the file-writing callbacks on rank 0, and run
        the ordinary loop ``fit_fn`` (``ember.training.loop.fit``)."""
        kw.pop("strategy", None)
        if self.world_size == 1:
            return fit_fn(model, x, y, **kw)
        from ember.training import loop  # its argument checks and validation split

        model._assert_compiled("fit")
        bs = loop._check_int("fit", "batch_size", 32 if kw["batch_size"] is None else
                             kw["batch_size"], 1)  # fmt: skip
        kw["batch_size"] = bs
        if bs < self.world_size:
            raise EmberValueError(
                f"fit: batch_size ({bs}) is the global batch, split across the "
                f"{self.world_size} ranks; it must be at least {self.world_size}"
            )
        if kw.get("validation_split") and kw.get("validation_data") is None:
            (x, y, sw), kw["validation_data"] = loop._split_validation(
                x, y, kw.get("sample_weight"), kw["validation_split"]
            )
            kw["sample_weight"] = sw
        kw["validation_split"] = 0.0
        if isinstance(kw.get("class_weight"), str) and kw["class_weight"] == "balanced":
            if da.as_inputs(x, "fit") is None or y is None:
                raise EmberValueError(
                    "fit: class_weight='balanced' needs array targets y to count the classes"
                )
            kw["class_weight"] = da.balanced_class_weight(da._to_array(y, "fit", "y"))
        inner = da.adapt(x, y, kw.pop("sample_weight", None), bs, kw["shuffle"], "fit")
        if isinstance(inner, da.ArrayAdapter) and inner.y is None and model.compiled_loss:
            raise EmberValueError(
                f"fit: y is required with array inputs (the model was compiled with "
                f"loss={model.loss!r})"
            )
        train = ShardedAdapter(self, inner, "fit")
        if kw.get("validation_data") is not None:
            vbs = kw.get("validation_batch_size") or bs
            kw["validation_data"] = ShardedAdapter(
                self, loop._validation_adapter(kw["validation_data"], vbs), "fit", shard=False
            )
        callbacks = [_SyncCallback(self)] + [
            self._for_this_rank(cb) for cb in (kw.get("callbacks") or [])
        ]
        kw["callbacks"] = callbacks
        if not self.is_chief:
            kw["verbose"] = 0
        opt = DistributedOptimizer(model.optimizer, self)
        steps = self._wrapped_steps(model, opt)
        try:
            for name, fn in steps.items():
                object.__setattr__(model, name, fn)
            return fit_fn(model, train, None, **kw)
        finally:
            for name in steps:
                model.__dict__.pop(name, None)

    def _for_this_rank(self, cb):
        if self.is_chief:
            return cb
        from ember import callbacks as C

        if isinstance(cb, C.BackupAndRestore):
            return _ChiefOnly(cb, keep=("on_train_begin",))  # every rank restores
        if isinstance(cb, (C.ModelCheckpoint, C.CSVLogger, C.TensorBoard)) or getattr(
            cb, "chief_only", False
        ):
            return _ChiefOnly(cb)
        return cb

    def _wrapped_steps(self, model, opt) -> dict:
        cls = type(model)
        takes_opt = "optimizer" in inspect.signature(cls.train_step).parameters
        strategy = self

        def train_step(x, y=None, sample_weight=None):
            # the same weights in the same order on every rank, as of now (a callback may
            # freeze or unfreeze layers between steps)
            opt.layout = list(model.trainable_weights)
            before = _snapshot(model)
            n = _batch_len(x)
            opt.n_local = n
            if n:
                if takes_opt:
                    value = cls.train_step(model, x, y, sample_weight, optimizer=opt)
                else:  # a train_step of its own that uses self.optimizer
                    saved, model.optimizer = model.optimizer, opt
                    try:
                        value = cls.train_step(model, x, y, sample_weight)
                    finally:
                        model.optimizer = saved
            else:  # no example here this step: take part in the allreduce with weight 0
                for p in opt.layout:
                    p.grad = None
                opt.apply_gradients([], n_local=0)
                value = float("nan")
            strategy.reduce_metric_states(model, before)
            return value

        def test_step(x, y=None, sample_weight=None):
            before = _snapshot(model)
            value = cls.test_step(model, x, y, sample_weight) if _batch_len(x) else float("nan")
            strategy.reduce_metric_states(model, before)
            return value

        return {"train_step": train_step, "test_step": test_step}


MirroredStrategy = DataParallel


class DistributedOptimizer:
    """An optimizer whose ``step`` / ``apply_gradients`` first combine the gradients over the
    ranks (ChainerMN's multi-node optimizer, Horovod's DistributedOptimizer). Everything else
    (``learning_rate``, ``get_state``, ...) is the wrapped optimizer's.

    Args:
        optimizer: the ``ember.optimizers`` instance to wrap.
        strategy: the DataParallel (default: a new one over MPI's world).
    """

    _OWN = frozenset({"inner", "strategy", "n_local", "layout"})

    def __init__(self, optimizer, strategy: DataParallel | None = None):
        object.__setattr__(self, "inner", optimizer)
        object.__setattr__(self, "strategy", strategy if strategy is not None else DataParallel())
        object.__setattr__(self, "n_local", None)  # this step's local example count
        object.__setattr__(self, "layout", None)  # the weights, in an order every rank shares

    def step(self, n_local: float | None = None) -> None:
        """Combine the ``.grad`` of the optimizer's ``params`` over the ranks, then update."""
        params = self.layout if self.layout is not None else self.inner._need_params("step")
        self.strategy.allreduce_gradients(params, self.n_local if n_local is None else n_local)
        self.inner.step()

    def apply_gradients(self, grads_and_vars, n_local: float | None = None) -> int:
        """Set each weight's ``.grad``, combine them over the ranks, then apply."""
        pairs = list(grads_and_vars)
        for g, p in pairs:
            p.grad = g
        params = self.layout if self.layout is not None else [p for _, p in pairs]
        self.strategy.allreduce_gradients(params, self.n_local if n_local is None else n_local)
        return self.inner.apply_gradients([(p.grad, p) for p in params if p.grad is not None])

    def zero_grad(self) -> None:
        self.inner.zero_grad()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:  # e.g. a callback setting learning_rate
            setattr(self.inner, name, value)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.inner!r})"


# ---------------------------------------------------------------------------------- data
class ShardedAdapter(da.Adapter):
    """Batches for one rank of a data-parallel ``fit``: its share of every global batch, in
    the same order on every rank (rank 0 draws the shuffled order and broadcasts it).

    Arrays and Keras-style Sequences are cut batch by batch (``split_batch``); an
    ``ember.data.DataLoader`` is sharded (``DataParallel.shard``), so each rank loads only its
    share (with ``shard=False``, for validation, every rank reads every batch and keeps its
    part, so that no example is left out); a generator must yield the same global batches on
    every rank."""

    def __init__(self, strategy: DataParallel, inner, who: str = "fit", shard: bool = True):
        try:
            from ember.data import DataLoader
        except ImportError:  # pragma: no cover - ember.data is part of ember
            DataLoader = ()
        self.s, self.inner, self.who = strategy, inner, who
        self.reiterable = inner.reiterable
        self.num_samples = inner.num_samples
        self.loader = None  # what the fit loop calls set_epoch on
        loader = getattr(inner, "loader", None)
        if isinstance(inner, da.ArrayAdapter):
            self.mode = "array"
        elif (
            isinstance(loader, DataLoader)
            and loader.indexable
            and (shard or loader.world_size > 1)
        ):
            if loader.world_size == 1:
                self.mode, self.loader = "loader", strategy.shard(loader)
            else:
                self.mode, self.loader = "local", loader  # the program sharded it itself
            self._delegate = da.LoaderAdapter(self.loader, who)
        elif isinstance(inner, da.SequenceAdapter):
            self.mode = "sequence"
        else:
            self.mode = "stream"
            if isinstance(loader, DataLoader) and loader.indexable:
                # validation reads every batch on every rank (sharding would leave out the
                # last few examples), in rank 0's order
                seed = np.array([loader.seed], dtype=np.int64)
                loader.seed = int(strategy.comm.broadcast_(seed, what="the data order's seed")[0])
        self.steps = len(self.loader) if self.loader is not None else inner.steps
        strategy.comm.agree(-1 if self.steps is None else self.steps, "the batches per epoch")

    def __getattr__(self, name):  # anything else the loop asks an adapter
        return getattr(self.inner, name)

    def _order(self, n: int) -> np.ndarray:
        from ember import backend

        if self.s.is_chief:
            order = backend.rng().permutation(n).astype(np.int64)  # as on one process
        else:
            order = np.empty(n, dtype=np.int64)
        return self.s.comm.broadcast_(order, what="the shuffled order")

    def _local(self, x, y, sw):
        s = self.s.local_slice(_batch_len(x))
        return da.take(x, s), da.take(y, s), da.take(sw, s)

    def batches(self):
        inner = self.inner
        if self.mode == "array":
            n, bs, shuffle = inner.num_samples, inner.batch_size, inner._shuffle_mode
            # the global batches, as ArrayAdapter makes them on one process
            if shuffle == "batch":
                bounds = [(b * bs, min(n, (b + 1) * bs)) for b in self._order(inner.steps)]
                perm = None
            else:
                bounds = [(i, min(n, i + bs)) for i in range(0, n, bs)]
                perm = self._order(n) if shuffle else None
            for start, stop in bounds:
                s = self.s.local_slice(stop - start)
                lo, hi = start + s.start, start + s.stop
                sel = slice(lo, hi) if perm is None else perm[lo:hi]
                yield (
                    da.take(inner.x, sel),
                    da.take(inner.y, sel),
                    da.take(inner.sample_weight, sel),
                )
        elif self.mode in ("loader", "local"):
            yield from self._delegate.batches()
        elif self.mode == "sequence":
            seq = inner.seq
            order = self._order(inner.steps) if inner.shuffle else range(inner.steps)
            for i in order:
                yield self._local(*da._batch_arrays(seq[int(i)], self.who))
            if hasattr(seq, "on_epoch_end"):
                seq.on_epoch_end()
        else:  # generators: every rank reads the same stream; stop together
            it = inner.batches()
            while True:
                batch = next(it, None)
                have = int(batch is not None)
                got = self.s.comm.allreduce(np.array([have, -have]), "max", "the next batch")
                if got[0] != -got[1]:
                    raise DistributedError(
                        f"{self.who}: the ranks' data streams ended at different batches: each "
                        f"rank must read the same global batches (seed them alike), or pass an "
                        f"ember.data.DataLoader, which DataParallel shards itself"
                    )
                if not have:
                    return
                yield self._local(*batch)

    def first_batch(self):
        if self.mode in ("loader", "local"):
            return self._delegate.first_batch()
        return self.inner.first_batch()  # global rows, only used to build the model


# ---------------------------------------------------------------------------------- callbacks
class _ChiefOnly(Callback):
    """A callback that runs on rank 0 only (on other ranks: only the hooks in ``keep``)."""

    def __init__(self, inner, keep=()):
        super().__init__()
        self.inner = inner
        self.adds_logs = inner.adds_logs
        for name in keep:
            setattr(self, name, getattr(inner, name))

    def set_model(self, model) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.inner.set_params(params)


class _SyncCallback(Callback):
    """Keeps the replicas together: rank 0's weights go to all before the first epoch (after
    the model is built and BackupAndRestore has restored), and the moving statistics of
    BatchNormalization (the non-trainable weights) are averaged before validating and at each
    epoch's end (before a checkpoint is written)."""

    def __init__(self, strategy: DataParallel):
        super().__init__()
        self.s = strategy
        self._synced = False

    def on_train_begin(self, logs=None):
        self._synced = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._synced:
            return
        self.s.comm.agree(
            epoch,
            "the epoch fit starts at (a BackupAndRestore folder must be visible to every rank)",
        )
        self.s.broadcast_weights(self.model)
        self._synced = True

    def on_test_begin(self, logs=None):
        self.s.average_weights(self.model.non_trainable_weights)

    def on_epoch_end(self, epoch, logs=None):
        self.s.average_weights(self.model.non_trainable_weights)


# ---------------------------------------------------------------------------------- helpers
def _params(model_or_params) -> list:
    if hasattr(model_or_params, "weights") and not isinstance(model_or_params, (list, tuple)):
        return list(model_or_params.weights)
    return list(model_or_params)


def _by_dtype(params) -> list:
    """[(dtype, [params])] in order of first appearance (the same on every rank)."""
    groups: dict = {}
    for p in params:
        groups.setdefault(p.data.dtype, []).append(p)
    return list(groups.items())


def _pack(arrays, flat: np.ndarray) -> None:
    offset = 0
    for a in arrays:
        flat[offset : offset + a.size] = a.ravel()
        offset += a.size


def _unpack(flat: np.ndarray, arrays) -> None:
    offset = 0
    for a in arrays:
        a[...] = flat[offset : offset + a.size].reshape(a.shape)
        offset += a.size


def _take(a, s):
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(e[s] for e in a)
    return a[s]


def _batch_len(x) -> int:
    if isinstance(x, (tuple, list)):
        return _batch_len(x[0])
    return int(x.shape[0]) if getattr(x, "ndim", 0) else 1


def _metric_leaves(model) -> list:
    """The objects holding the model's running loss and metric states, in a fixed order."""
    leaves = [model._loss_tracker]
    for m in model.metrics:
        while hasattr(m, "_inner") and m._inner is not None:
            m = m._inner
        leaves.append(m)
    return leaves


def _get_state(leaf) -> dict:
    if hasattr(leaf, "_state"):
        return getattr(leaf, "_state", None) or {}
    return {"count": leaf.count, "total": leaf.total}  # the loss tracker


def _set_state_entry(leaf, key: str, value: np.ndarray) -> None:
    if hasattr(leaf, "_state"):
        leaf._state[key] = np.array(value, dtype=np.float64)
    else:
        setattr(leaf, key, float(value))  # the loss tracker's total and count


def _snapshot(model) -> list:
    return [
        {k: np.array(v, dtype=np.float64, copy=True) for k, v in _get_state(leaf).items()}
        for leaf in _metric_leaves(model)
    ]
