"""DataLoader and datasets: batching, seeded per-epoch shuffling, drop_last, transforms, thread
prefetch, generators, sampler and shard."""

import threading

import numpy as np
import pytest

import ember as em
from ember.data import ArrayDataset, BatchSequence, DataLoader, Dataset, collate
from ember.errors import EmberTypeError, EmberValueError, ShapeError


def _xy(n=10):
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return x, y


def _epoch(loader):
    return [tuple(np.array(a) for a in b) for b in loader]


# ---------------------------------------------------------------------------------- datasets
def test_array_dataset_items_and_batches():
    x, y = _xy()
    ds = ArrayDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, x[3])
    assert yi == 3
    bx, by = ds.get_batch([4, 1])
    np.testing.assert_array_equal(bx, x[[4, 1]])
    assert bx.dtype == np.float32  # floats become floatx
    np.testing.assert_array_equal(by, [4, 1])
    assert by.dtype == np.int64


def test_array_dataset_rejects_mismatched_lengths():
    with pytest.raises(ShapeError, match="10 samples but y has 9"):
        ArrayDataset(np.zeros((10, 2)), np.zeros(9))


def test_collate_stacks_fields_and_skips_none():
    batch = collate([(np.ones(2), 1), None, (np.zeros(2), 0)])
    np.testing.assert_array_equal(batch[0], [[1, 1], [0, 0]])
    np.testing.assert_array_equal(batch[1], [1, 0])


def test_collate_of_ragged_samples_names_the_problem():
    with pytest.raises(ShapeError, match="pad"):
        collate([np.ones(2), np.ones(3)])


# ---------------------------------------------------------------------------------- batching
def test_loader_batches_in_order_with_a_short_last_batch():
    x, y = _xy(10)
    batches = _epoch(DataLoader((x, y), batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    assert batches[0][0].dtype == np.float32
    assert len(DataLoader((x, y), batch_size=4)) == 3


def test_loader_drop_last_drops_the_short_batch():
    x, y = _xy(10)
    loader = DataLoader((x, y), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [len(b[0]) for b in _epoch(loader)] == [4, 4]


def test_loader_over_inputs_only_yields_arrays():
    x, _ = _xy(5)
    batches = list(DataLoader(x, batch_size=2))
    assert isinstance(batches[0], np.ndarray) and batches[0].shape == (2, 2)


def test_loader_floats_follow_floatx(float64):
    x, y = _xy(4)
    bx, _ = next(iter(DataLoader((x.astype(np.float32), y), batch_size=2)))
    assert bx.dtype == np.float64


# ---------------------------------------------------------------------------------- shuffling
def test_shuffle_visits_every_sample_once_per_epoch_in_a_new_order():
    x, y = _xy(50)
    loader = DataLoader((x, y), batch_size=8, shuffle=True, seed=3)
    e0 = np.concatenate([b[1] for b in loader])
    e1 = np.concatenate([b[1] for b in loader])
    assert sorted(e0) == list(range(50)) and sorted(e1) == list(range(50))
    assert not np.array_equal(e0, e1)
    assert not np.array_equal(e0, np.arange(50))


def test_shuffle_with_the_same_seed_is_reproducible_epoch_by_epoch():
    x, y = _xy(30)
    a = DataLoader((x, y), batch_size=7, shuffle=True, seed=11)
    b = DataLoader((x, y), batch_size=7, shuffle=True, seed=11)
    for _ in range(3):
        assert [list(t[1]) for t in a] == [list(t[1]) for t in b]


def test_shuffle_order_of_an_epoch_is_the_seeded_permutation():
    x, y = _xy(20)
    loader = DataLoader((x, y), batch_size=5, shuffle=True, seed=4)
    loader.set_epoch(2)
    got = np.concatenate([b[1] for b in loader])
    np.testing.assert_array_equal(got, np.random.default_rng([4, 2]).permutation(20))


def test_shuffle_without_seed_follows_ember_set_seed():
    x, y = _xy(20)
    em.set_seed(9)
    a = [list(b[1]) for b in DataLoader((x, y), batch_size=5, shuffle=True)]
    em.set_seed(9)
    b = [list(b[1]) for b in DataLoader((x, y), batch_size=5, shuffle=True)]
    assert a == b


# ---------------------------------------------------------------------------------- transforms
def test_transform_applies_to_each_sample_input():
    x, y = _xy(6)
    loader = DataLoader((x, y), batch_size=3, transform=lambda s: s * 10)
    bx, by = next(iter(loader))
    np.testing.assert_array_equal(bx, x[:3] * 10)
    np.testing.assert_array_equal(by, y[:3])


class _Squares(Dataset):
    def __init__(self, n, skip=()):
        self.n, self.skip = n, set(skip)
        self.threads = set()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.threads.add(threading.get_ident())
        if i in self.skip:
            return None
        return np.array([i * i], dtype=np.float32), np.int64(i)


def test_custom_dataset_samples_are_collated_and_none_is_skipped():
    batches = list(DataLoader(_Squares(5, skip={2}), batch_size=5))
    np.testing.assert_array_equal(batches[0][1], [0, 1, 3, 4])


@pytest.mark.parametrize("workers", [1, 3])
def test_thread_workers_give_the_same_batches_in_the_same_order(workers):
    ds = _Squares(23)
    plain = _epoch(DataLoader(ds, batch_size=4, shuffle=True, seed=1))
    ds_threads = _Squares(23)
    loader = DataLoader(ds_threads, batch_size=4, shuffle=True, seed=1, num_workers=workers)
    threaded = _epoch(loader)
    assert len(plain) == len(threaded)
    for a, b in zip(plain, threaded):
        np.testing.assert_array_equal(a[0], b[0])
    assert threading.get_ident() not in ds_threads.threads  # work ran in the background


def test_worker_errors_reach_the_caller():
    class Broken(_Squares):
        def __getitem__(self, i):
            if i == 5:
                raise RuntimeError("sample 5 is broken")
            return super().__getitem__(i)

    with pytest.raises(RuntimeError, match="sample 5"):
        list(DataLoader(Broken(8), batch_size=2, num_workers=2))


def test_breaking_out_of_a_threaded_epoch_leaves_no_worker_running():
    before = threading.active_count()
    loader = DataLoader(_Squares(100), batch_size=2, num_workers=2, prefetch=2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert threading.active_count() <= before  # the pool was shut down on close


# ---------------------------------------------------------------------------------- generators
def _samples(n):
    for i in range(n):
        yield np.full(2, i, dtype=np.float64), np.int64(i)


def test_generator_function_is_batched_and_rerun_every_epoch():
    loader = DataLoader(lambda: _samples(5), batch_size=2)
    for _ in range(2):
        labels = [list(b[1]) for b in loader]
        assert labels == [[0, 1], [2, 3], [4]]


def test_generator_object_works_once_then_says_so():
    loader = DataLoader(_samples(3), batch_size=2)
    assert len(list(loader)) == 2
    with pytest.raises(EmberValueError, match="generator FUNCTION"):
        list(loader)


def test_generator_with_a_background_thread_keeps_the_order():
    loader = DataLoader(lambda: _samples(9), batch_size=4, num_workers=1, prefetch=1)
    assert [list(b[1]) for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]


def test_generator_of_batches_with_batch_size_none_passes_them_through():
    def batches():
        yield np.zeros((3, 2)), np.zeros(3)
        yield np.ones((2, 2)), np.ones(2)

    out = list(DataLoader(batches, batch_size=None))
    assert [b[0].shape for b in out] == [(3, 2), (2, 2)]


def test_generator_length_is_unknown_and_shuffling_it_is_refused():
    with pytest.raises(EmberTypeError, match="steps_per_epoch"):
        len(DataLoader(lambda: _samples(3)))
    with pytest.raises(EmberValueError, match="cannot be shuffled"):
        DataLoader(lambda: _samples(3), shuffle=True)


class _Seq(BatchSequence):
    def __init__(self):
        self.epochs = 0

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return np.full((2, 1), i + 10 * self.epochs, np.float32), np.zeros(2)

    def on_epoch_end(self):
        self.epochs += 1


def test_loader_over_a_batch_sequence_calls_on_epoch_end():
    seq = _Seq()
    loader = DataLoader(seq, batch_size=None, num_workers=2)
    first = [b[0][0, 0] for b in loader]
    second = [b[0][0, 0] for b in loader]
    assert first == [0, 1, 2] and second == [10, 11, 12]


def test_batch_sequence_next_cycles_over_epochs():
    seq = _Seq()
    values = [next(seq)[0][0, 0] for _ in range(5)]
    assert values == [0, 1, 2, 10, 11]


# ---------------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("world", [2, 3])
def test_shards_never_overlap_and_together_cover_each_epoch(world):
    x, y = _xy(23)
    base = DataLoader((x, y), batch_size=4, shuffle=True, seed=7)
    shards = [base.shard(r, world) for r in range(world)]
    for epoch in range(2):
        seen = []
        for s in shards:
            s.set_epoch(epoch)
            seen.append(np.concatenate([b[1] for b in s]))
        everything = np.concatenate(seen)
        assert sorted(everything) == list(range(23))
        assert max(map(len, seen)) - min(map(len, seen)) <= 1
    assert sum(len(s) for s in shards) >= len(base)


def test_even_shards_have_equal_sizes_and_never_overlap():
    x, y = _xy(10)
    base = DataLoader((x, y), batch_size=4, shuffle=True, seed=2)
    shards = [base.shard(r, 3, even=True) for r in range(3)]
    parts = [np.concatenate([b[1] for b in s]) for s in shards]
    assert [len(p) for p in parts] == [3, 3, 3] and [len(s) for s in shards] == [1, 1, 1]
    assert len(set(np.concatenate(parts).tolist())) == 9


def test_shard_rejects_a_rank_outside_the_world():
    with pytest.raises(EmberValueError, match="rank"):
        DataLoader(_xy(4), batch_size=2).shard(3, 2)


def test_sampler_gives_the_visiting_order():
    x, y = _xy(10)
    loader = DataLoader((x, y), batch_size=3, sampler=[9, 0, 5, 5])
    assert [list(b[1]) for b in loader] == [[9, 0, 5], [5]]
    assert len(loader) == 2
    with pytest.raises(EmberValueError, match="sampler or shuffle"):
        DataLoader((x, y), sampler=[0], shuffle=True)


def test_loader_rejects_bad_arguments():
    with pytest.raises(EmberValueError, match="batch_size"):
        DataLoader(_xy(4), batch_size=0)
    with pytest.raises(EmberValueError, match="num_workers"):
        DataLoader(_xy(4), num_workers=-1)
    with pytest.raises(EmberTypeError, match="dataset"):
        DataLoader(42)


def test_model_fit_and_evaluate_consume_a_threaded_loader():
    from ember import layers

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = em.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loader = DataLoader((x, y), batch_size=8, shuffle=True, seed=0, num_workers=2)
    history = model.fit(loader, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert loader.epoch == 3  # one pass of the loader per epoch
    loss, acc = model.evaluate(DataLoader((x, y), batch_size=16), verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0
