"""DataLoader: batches, seeded shuffling, sharding and background prefetch.

Shuffling is reproducible and epoch-dependent: epoch ``e`` uses the permutation drawn from
``numpy.random.default_rng([seed, e])``, so two loaders with the same seed agree batch for
batch, every epoch differs from the last, and a resumed run (``set_epoch``) sees the same
order as an uninterrupted one.

Prefetch uses threads (``num_workers`` of them, up to ``num_workers * prefetch`` batches in
flight, delivered in order). Threads were measured against a pool of processes here (2 cores;
``benchmarks/data_memory.py --workers``): decoding 192x192 PNGs, 2 threads read about 1,850
images/s, the main thread alone 1,400 and 2 forked processes 790 (each batch must be pickled
back); for tiny 32x32 PNGs, where Pillow's Python-level overhead holds the GIL, no workers at
all is as fast as any. Pillow's decoders and NumPy's gathers release the GIL, and threads need
no pickling of the dataset, so ember uses threads.
"""

from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ember import backend
from ember.data.dataset import ArrayDataset, BatchSequence, Dataset, collate, to_batch_array
from ember.errors import EmberTypeError, EmberValueError


def _is_indexable(obj) -> bool:
    return hasattr(obj, "__len__") and hasattr(obj, "__getitem__") and not isinstance(obj, dict)


class DataLoader:
    """Iterate over a dataset in batches.

    Args:
        dataset: a ``Dataset`` (len + getitem), an array, an ``(x, y)`` tuple of arrays, a
            Keras-style ``BatchSequence`` (use ``batch_size=None``), or an iterable / generator /
            generator function yielding samples (or batches with ``batch_size=None``).
        batch_size: samples per batch; None when the dataset's items already are batches.
        shuffle: reshuffle the order every epoch (indexable datasets only).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        num_workers: background threads preparing batches (0: prepare in the caller's thread).
        prefetch: batches each worker may prepare ahead.
        transform: a function applied to each sample's input ``x`` (e.g. augmentation), run in
            the workers.
        seed: the shuffle seed; None draws one from ``ember.backend.rng()`` when the loader is
            made (so ``ember.set_seed`` makes runs repeatable).
        sampler: an iterable of indices used instead of ``range(len(dataset))`` each epoch
            (``set_epoch(epoch)`` is called on it first when it has one); excludes shuffle.

    Yields ``(x, y)`` (or ``x``, or ``(x, y, w)``, following the samples) as NumPy arrays; float
    arrays are in floatx (float32 unless changed).
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        num_workers: int = 0,
        prefetch: int = 2,
        transform=None,
        seed: int | None = None,
        sampler=None,
    ):
        if isinstance(dataset, tuple) and all(isinstance(a, np.ndarray) for a in dataset):
            dataset = ArrayDataset(*dataset)
        elif isinstance(dataset, np.ndarray):
            dataset = ArrayDataset(dataset)
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size <= 0
        ):
            raise EmberValueError(
                f"DataLoader: batch_size must be a positive int or None, received {batch_size!r}"
            )
        for name, v in (("num_workers", num_workers), ("prefetch", prefetch)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise EmberValueError(f"DataLoader: {name} must be an int >= 0, received {v!r}")
        if transform is not None and not callable(transform):
            raise EmberTypeError(f"DataLoader: transform must be callable, received {transform!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        ):
            raise EmberTypeError(f"DataLoader: seed must be an int or None, received {seed!r}")
        self.dataset = dataset
        self.indexable = _is_indexable(dataset)
        if not self.indexable and not (callable(dataset) or hasattr(dataset, "__iter__")):
            raise EmberTypeError(
                "DataLoader: dataset must be a Dataset (len + getitem), arrays, or an iterable / "
                f"generator, received {type(dataset).__name__}"
            )
        if sampler is not None and shuffle:
            raise EmberValueError("DataLoader: give either sampler or shuffle=True, not both")
        if not self.indexable and (shuffle or sampler is not None):
            raise EmberValueError(
                "DataLoader: a generator or iterable cannot be shuffled or sampled (its order is "
                "its own); shuffle inside the generator, or give a Dataset"
            )
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.prefetch = max(int(prefetch), 1)
        self.transform = transform
        self.sampler = sampler
        self.seed = int(seed) if seed is not None else int(backend.rng().integers(2**62))
        self.epoch = 0
        self.rank, self.world_size, self.even = 0, 1, False
        self._consumed_iterator = False

    # ------------------------------------------------------------------ order
    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use epoch ``epoch``'s order (for resuming and for data parallelism,
        where every rank must agree on the epoch)."""
        self.epoch = int(epoch)

    def shard(self, rank: int, world_size: int, even: bool = False) -> DataLoader:
        """A loader over this rank's part of every epoch: the epoch's order (the same on every
        rank, as long as all ranks use the same seed) split round-robin, so the shards never
        overlap and together cover the epoch. Shard sizes differ by at most one sample.

        With ``even=True`` the last ``n % world_size`` samples of each epoch's order are left
        out, so every rank gets the same number of samples (and of batches), which lock-step
        data parallelism needs; with shuffling, a different few are left out each epoch."""
        if not self.indexable:
            raise EmberValueError("DataLoader.shard: only indexable datasets can be sharded")
        if not (isinstance(world_size, (int, np.integer)) and world_size >= 1):
            raise EmberValueError(f"DataLoader.shard: world_size must be >= 1, got {world_size!r}")
        if not (isinstance(rank, (int, np.integer)) and 0 <= rank < world_size):
            raise EmberValueError(
                f"DataLoader.shard: rank must be in [0, {world_size}), received {rank!r}"
            )
        out = DataLoader.__new__(DataLoader)
        out.__dict__.update(self.__dict__)
        out.rank, out.world_size = int(rank), int(world_size)
        out.even = bool(even)
        return out

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """The sample indices this loader visits in ``epoch`` (default: the next one), in
        order: the sampler's or all of them, shuffled if asked, then this rank's shard."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            order = np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        else:
            n = len(self.dataset)
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(n)
            else:
                order = np.arange(n)
        if self.even:
            order = order[: len(order) - len(order) % self.world_size]
        return order[self.rank :: self.world_size]

    def _batches_of_indices(self, order: np.ndarray) -> list:
        if self.batch_size is None:
            return [int(i) for i in order]
        bs = self.batch_size
        stops = range(0, len(order), bs)
        batches = [order[i : i + bs] for i in stops]
        if self.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        return batches

    def __len__(self) -> int:
        if not self.indexable:
            raise EmberTypeError(
                "DataLoader: the number of batches of a generator is unknown; pass "
                "steps_per_epoch to fit"
            )
        if self.sampler is not None:
            n = len(self.indices())
        else:
            n_all = len(self.dataset)
            if self.even:
                n_all -= n_all % self.world_size
            n = len(range(self.rank, n_all, self.world_size))
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # ------------------------------------------------------------------ fetching
    def _transform_sample(self, sample):
        if self.transform is None or sample is None:
            return sample
        if isinstance(sample, tuple):
            return (self.transform(sample[0]),) + tuple(sample[1:])
        return self.transform(sample)

    def _fetch(self, item):
        """One batch: ``item`` is an index array (or one index when batch_size is None)."""
        ds = self.dataset
        if self.batch_size is None:
            batch = ds[item]
            if self.transform is not None:
                batch = self._transform_sample(tuple(batch) if isinstance(batch, list) else batch)
            return _as_batch(batch)
        if self.transform is None and hasattr(ds, "get_batch"):
            return ds.get_batch(item)
        return collate([self._transform_sample(ds[int(i)]) for i in item])

    # ------------------------------------------------------------------ iteration
    def __iter__(self):
        if not self.indexable:
            yield from self._iter_stream()
            return
        epoch = self.epoch
        self.epoch += 1
        plan = self._batches_of_indices(self.indices(epoch))
        if self.num_workers == 0:
            for item in plan:
                batch = self._fetch(item)
                if batch is not None:
                    yield batch
        else:
            yield from self._iter_threads(plan)
        if isinstance(self.dataset, BatchSequence):
            self.dataset.on_epoch_end()

    def _iter_threads(self, plan: list):
        window = self.num_workers * self.prefetch
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="ember-data")
        pending = collections.deque()
        try:
            it = iter(plan)
            for item in it:
                pending.append(pool.submit(self._fetch, item))
                if len(pending) >= window:
                    break
            while pending:
                batch = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._fetch, nxt))
                if batch is not None:
                    yield batch
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)

    def _source(self):
        """An iterator over this epoch's stream, and whether it is single-pass."""
        ds = self.dataset
        if hasattr(ds, "__iter__"):
            it = iter(ds)
            if it is ds and self._consumed_iterator:  # a generator object: one pass only
                raise EmberValueError(
                    "DataLoader: this generator was already exhausted by an earlier epoch; "
                    "pass the generator FUNCTION (called again every epoch) instead"
                )
            return it, it is ds
        return iter(ds()), False  # a generator function: a fresh pass every epoch

    def _iter_batches_of_stream(self):
        it, single_pass = self._source()
        if self.batch_size is None:
            for batch in it:
                yield _as_batch(self._transform_sample(batch))
        else:
            chunk = []
            for sample in it:
                chunk.append(self._transform_sample(sample))
                if len(chunk) == self.batch_size:
                    batch = collate(chunk)
                    chunk = []
                    if batch is not None:
                        yield batch
            if chunk and not self.drop_last:
                batch = collate(chunk)
                if batch is not None:
                    yield batch
        if single_pass:
            self._consumed_iterator = True

    def _iter_stream(self):
        if self.num_workers == 0:
            yield from self._iter_batches_of_stream()
            return
        # one producer thread (a generator is sequential); the queue bounds the read-ahead
        q: queue.Queue = queue.Queue(maxsize=self.num_workers * self.prefetch)
        stop = threading.Event()
        done = object()

        def produce():
            try:
                for batch in self._iter_batches_of_stream():
                    while not stop.is_set():
                        try:
                            q.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(done)
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(_Failure(exc))

        thread = threading.Thread(target=produce, name="ember-data-stream", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)

    def __repr__(self) -> str:
        return (
            f"DataLoader(batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"num_workers={self.num_workers}, shard={self.rank}/{self.world_size})"
        )


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _as_batch(batch):
    if batch is None:
        return None
    if isinstance(batch, (tuple, list)):
        return tuple(to_batch_array(a) if a is not None else None for a in batch)
    return to_batch_array(batch)


__all__ = ["DataLoader", "Dataset", "ArrayDataset"]
