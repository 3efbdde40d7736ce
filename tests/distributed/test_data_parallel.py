"""DataParallel: 2 ranks train exactly like one process on the same global batches (float64,
1e-10); the batch split and the sharding sampler never overlap and cover every example."""

import numpy as np
import pytest

import ember as em
from ember.data import DataLoader
from ember.distributed import DataParallel, DistributedOptimizer
from ember.distributed.comm import Communicator

from . import mpi_scenarios as S
from .conftest import run_ranks


class FakeComm(Communicator):
    """Rank ``rank`` of ``size`` in one process: broadcasts hand rank 0's values to the ranks
    asked after it (the ranks are simulated one after the other, rank 0 first)."""

    def __init__(self, rank, size, board):
        super().__init__()
        self.rank, self.size, self.board, self.calls = rank, size, board, 0

    def broadcast_(self, buf, root=0, what=""):
        self.calls += 1
        if self.rank == root:
            self.board[self.calls] = buf.copy()
        else:
            buf[...] = self.board[self.calls]
        return buf


# ---------------------------------------------------------------------------- exactness
def _one_process_weights():
    em.set_floatx("float64")
    model = S.make_mlp(seed=0)
    opt = em.optimizers.Adam(0.01, params=model.trainable_weights)
    loss_fn = em.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = S.make_data()
    for xb, yb in S.global_batches(x, y):
        opt.zero_grad()
        loss_fn(yb, model(xb)).backward()
        opt.step()
    return model.get_weights()


@pytest.mark.mpi
def test_two_ranks_with_distributed_optimizer_equal_one_process(tmp_path, float64):
    run_ranks("dp_loop", tmp_path).check()
    expected = _one_process_weights()
    start = S.make_mlp(seed=0).get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(start, expected))  # it did train
    for r in (0, 1):
        got = np.load(tmp_path / f"rank{r}.npz")
        for i, w in enumerate(expected):
            np.testing.assert_allclose(got[f"w{i}"], w, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------- the split
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_slices_are_disjoint_cover_the_batch_and_differ_by_at_most_one(size):
    for n in range(0, 13):
        parts = [DataParallel(FakeComm(r, size, {})).local_slice(n) for r in range(size)]
        covered = np.concatenate([np.arange(n)[s] for s in parts])
        assert np.array_equal(covered, np.arange(n))  # in order, no overlap, nothing missing
        sizes = [s.stop - s.start for s in parts]
        assert max(sizes) - min(sizes) <= 1


def test_split_batch_splits_every_array_and_tuples_member_by_member():
    dp = DataParallel(FakeComm(1, 2, {}))
    x, y = np.arange(10).reshape(5, 2), np.arange(5)
    xl, yl, nothing = dp.split_batch(x, y, None)
    assert np.array_equal(xl, x[2:]) and np.array_equal(yl, y[2:]) and nothing is None
    (a, b), yl = dp.split_batch((x, x * 10), y)
    assert np.array_equal(a, x[2:]) and np.array_equal(b, x[2:] * 10)


# ---------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize("size", [2, 3, 4])
def test_sharding_sampler_shards_never_overlap_and_cover_the_epoch(size):
    n, global_batch = 23, 4 * size
    data = np.arange(n)
    board = {}
    shards = []
    for r in range(size):
        em.set_seed(100 + r)  # every rank would draw another shuffle seed by itself
        loader = DataLoader(data, batch_size=global_batch, shuffle=True)
        shards.append(DataParallel(FakeComm(r, size, board)).shard(loader))
    em.set_seed(100)
    whole = DataLoader(data, batch_size=global_batch, shuffle=True)  # rank 0's seed
    for epoch in range(3):
        per_rank = [list(s) for s in shards]
        assert len({len(b) for b in per_rank}) == 1  # the same number of batches everywhere
        seen = np.concatenate([np.concatenate(b) for b in per_rank])
        assert len(np.unique(seen)) == len(seen)  # no example twice
        assert len(seen) == n - n % size  # everything but the few that do not divide
        order = whole.indices(epoch)[: n - n % size]
        for i, batches in enumerate(zip(*per_rank)):
            # batch i of all ranks together is batch i of one process over the same order
            together = np.sort(np.concatenate(batches))
            assert np.array_equal(together, np.sort(order[i * global_batch :][:global_batch]))
    orders = [s.indices(0) for s in shards]
    assert not np.array_equal(np.sort(orders[0]), orders[0])  # it does shuffle


def test_shard_needs_a_global_batch_that_the_ranks_divide():
    loader = DataLoader(np.arange(10), batch_size=5)
    with pytest.raises(ValueError, match=r"batch_size \(5\) must be a multiple of the number"):
        DataParallel(FakeComm(0, 2, {})).shard(loader)


# ---------------------------------------------------------------------------- world of one
def test_world_of_one_leaves_gradients_and_batches_alone():
    dp = DataParallel()
    assert dp.world_size == 1 and dp.is_chief
    w = em.Parameter(np.ones(3))
    w.grad = np.array([1.0, 2.0, 3.0])
    dp.allreduce_gradients([w], n_local=7)
    assert np.array_equal(w.grad, [1.0, 2.0, 3.0])
    x = np.arange(6)
    assert np.array_equal(dp.split_batch(x), x)


def test_distributed_optimizer_passes_settings_through_to_the_inner_one():
    w = em.Parameter(np.zeros(2))
    inner = em.optimizers.SGD(0.1, params=[w])
    opt = DistributedOptimizer(inner, DataParallel())
    opt.learning_rate = 0.5  # as ReduceLROnPlateau does
    assert inner.learning_rate == 0.5 and opt.learning_rate == 0.5
    w.grad = np.array([1.0, -2.0])
    opt.step()
    np.testing.assert_allclose(w.data, [-0.5, 1.0])
    assert opt.iterations == 1


def test_allreduce_weights_counts_examples_and_keeps_missing_gradients_missing():
    # rank 1 of 2 whose peer (rank 0) had 3 examples with gradient [3, 3] for a and none for b
    class Peer(Communicator):
        def __init__(self):
            super().__init__()
            self.rank, self.size = 1, 2

        def allreduce_(self, buf, what=""):
            peer = np.array([3 * 3.0, 3 * 3.0, 0.0, 3.0, 1.0, 0.0])  # 3*g_a, g_b, n, flags
            buf += peer
            return buf

    a, b = em.Parameter(np.zeros(2)), em.Parameter(np.zeros(1))
    a.grad = np.array([1.0, 5.0])
    DataParallel(Peer()).allreduce_gradients([a, b], n_local=1)
    np.testing.assert_allclose(a.grad, [(9 + 1) / 4, (9 + 5) / 4])  # weighted by 3 and 1
    assert b.grad is None


# ---------------------------------------------------------------------------- fit
def _weights(path):
    got = np.load(path)
    return [got[f"w{i}"] for i in range(len(got.files))]


def _assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.mpi
def test_fit_with_data_parallel_on_two_ranks_equals_one_process(tmp_path, float64):
    import json

    run = run_ranks("dp_fit", tmp_path).check()
    model, history = S.fit_arrays()
    loader_model, loader_history = S.fit_loader()
    odd_model, _ = S.fit_last_batch_of_one()
    for r in (0, 1):
        _assert_same(_weights(tmp_path / f"rank{r}.npz"), model.get_weights())
        loader = np.load(tmp_path / f"rank{r}_loader.npz")
        _assert_same([loader[f"w{i}"] for i in range(len(loader.files) - 1)],
                     loader_model.get_weights())  # fmt: skip
        np.testing.assert_allclose(loader["val_loss"], loader_history["val_loss"], atol=1e-10)
        _assert_same(_weights(tmp_path / f"rank{r}_odd.npz"), odd_model.get_weights())
        # the logs every rank saw are the global ones: loss, metric and validation
        got = json.loads((tmp_path / f"history{r}.json").read_text())
        assert sorted(got) == sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
        for key in history:
            np.testing.assert_allclose(got[key], history[key], rtol=0, atol=1e-10)
    # only rank 0 writes files and prints progress
    assert not (tmp_path / "log1.csv").exists()
    assert len((tmp_path / "log0.csv").read_text().splitlines()) == 1 + S.FIT["epochs"]
    for epoch in range(1, S.FIT["epochs"] + 1):
        assert run.stdout.count(f"Epoch {epoch}/{S.FIT['epochs']}") == 1


@pytest.mark.mpi
def test_fit_resumes_from_the_backup_after_a_rank_is_killed(tmp_path, float64):
    from .conftest import run_launcher

    crashed = run_launcher("dp_fit_resume", tmp_path, env={"CRASH": "1"})
    assert crashed.returncode != 0, crashed.stdout + crashed.stderr
    assert "lost rank 1 of 2" in crashed.stderr, crashed.stdout + crashed.stderr
    assert (tmp_path / "backup" / "backup.ember-backup").exists()
    assert not (tmp_path / "rank0.npz").exists()  # it did not get to the end
    run_launcher("dp_fit_resume", tmp_path).check()
    x, y = S.make_data()
    model = S.compiled_mlp(seed=0)  # one process, never interrupted
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    for r in (0, 1):
        _assert_same(_weights(tmp_path / f"rank{r}.npz"), model.get_weights())
    import json

    resumed = json.loads((tmp_path / "history0.json").read_text())
    np.testing.assert_allclose(resumed["loss"], history.history["loss"][2:], rtol=0, atol=1e-10)
    assert not (tmp_path / "backup" / "backup.ember-backup").exists()  # deleted at the end


def test_fit_with_data_parallel_in_a_world_of_one_is_plain_fit(float64):
    from ember.distributed import DataParallel

    model, history = S.fit_arrays(DataParallel())
    em.set_floatx("float64")
    ref, ref_history = S.fit_arrays()
    _assert_same(model.get_weights(), ref.get_weights())
    assert history == ref_history


@pytest.mark.mpi
def test_fit_with_a_global_batch_smaller_than_the_ranks_fails_clearly(tmp_path):
    run = run_ranks("dp_fit_tiny_batch", tmp_path)
    assert run.returncode != 0
    assert "batch_size (1) is the global batch, split across the 2 ranks" in run.stderr
