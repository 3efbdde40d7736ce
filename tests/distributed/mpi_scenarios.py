"""Programs the distributed tests run under ``mpiexec -n 2`` (and, for the world-of-one checks,
as plain processes). ``python mpi_scenarios.py SCENARIO OUT_DIR``: each writes what the test
compares into OUT_DIR (rank 0 writes the shared results, every rank writes ``rank<r>.npz``).

The models and data are made here, and the test imports ``make_mlp`` / ``make_data`` /
``global_batches`` to train the one-process reference itself.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import ember as em
from ember import layers as L

STEPS = 5
# global batches: uneven splits over 2 ranks (7 -> 3 + 4) and one rank without an example (1)
BATCH_SIZES = [10, 7, 1, 12, 9]


def make_data(n: int = 64, seed: int = 123):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 1)
    return x.astype(em.floatx()), y


def make_mlp(seed: int, regularize: bool = False):
    em.set_seed(seed)
    reg = em.regularizers.L2(0.01) if regularize else None
    return em.Sequential(
        [
            L.Input((6,)),
            L.Dense(8, activation="tanh"),
            L.Dense(7, activation="relu", kernel_regularizer=reg),
            L.Dense(5, activation="tanh"),
            L.Dense(3),
        ]
    )


def global_batches(x, y):
    start = 0
    for bs in BATCH_SIZES:
        yield x[start : start + bs], y[start : start + bs]
        start += bs


def _save(out: str, name: str, model, **extra) -> None:
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(os.path.join(out, name), **arrays, **extra)


def dp_loop(out: str) -> None:
    """A hand-written loop with DistributedOptimizer: each rank starts from other weights
    (seeded by rank) and trains on its share of the same global batches."""
    from ember.distributed import DataParallel

    em.set_floatx("float64")
    strategy = DataParallel()
    model = make_mlp(seed=strategy.rank)  # rank 0's weights must win the broadcast
    strategy.broadcast_weights(model)
    opt = strategy.wrap_optimizer(em.optimizers.Adam(0.01, params=model.trainable_weights))
    loss_fn = em.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = make_data()
    for xb, yb in global_batches(x, y):
        xl, yl = strategy.split_batch(xb, yb)
        opt.zero_grad()
        if len(xl):  # a rank may have no example in a small batch: it sends zeros
            loss_fn(yl, model(xl)).backward()
        opt.step(n_local=len(xl))
    _save(out, f"rank{strategy.rank}.npz", model)


def pipeline(out: str) -> None:
    """PipelineParallel over 2 stages with 3 micro-batches (uneven: 4, 3, 3 of a 10-batch),
    an L2 penalty in the second stage, then synchronize and predict."""
    from ember.distributed import PipelineParallel, rank

    em.set_floatx("float64")
    model = make_mlp(seed=rank(), regularize=True)
    model.compile(
        optimizer=em.optimizers.SGD(0.1, momentum=0.9),
        loss=em.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    pipe = PipelineParallel(model, micro_batches=3)
    x, y = make_data()
    losses = [
        pipe.train_on_batch(xb if pipe.is_first else None, yb if pipe.is_last else None)
        for xb, yb in global_batches(x, y)
    ]
    pipe.synchronize()
    pred = pipe.predict(x if pipe.is_first else None, batch_size=16)
    _save(out, f"rank{rank()}.npz", model, losses=np.array(losses), pred=pred)


def endless_dp(out: str) -> None:
    """Data-parallel steps until killed; rank r writes its pid to pid<r> after 3 steps. With
    RAISE_ON_RANK=r rank r then raises; with STUCK_RANK=r it stops answering."""
    from ember.distributed import DataParallel

    strategy = DataParallel()
    model = make_mlp(seed=0)
    opt = strategy.wrap_optimizer(em.optimizers.SGD(0.01, params=model.trainable_weights))
    loss_fn = em.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = make_data()
    step = 0
    deadline = time.monotonic() + 120  # never outlive a broken test
    while time.monotonic() < deadline:
        xl, yl = strategy.split_batch(x[:16], y[:16])
        opt.zero_grad()
        loss_fn(yl, model(xl)).backward()
        opt.step()
        step += 1
        if step == 3:
            with open(os.path.join(out, f"pid{strategy.rank}"), "w") as f:
                f.write(str(os.getpid()))
        if step > 3 and os.environ.get("RAISE_ON_RANK") == str(strategy.rank):
            raise ValueError(f"a deliberate failure at step {step}")
        if step > 3 and os.environ.get("STUCK_RANK") == str(strategy.rank):
            time.sleep(60)  # alive but silent: the others must give up after the timeout
        time.sleep(0.01)


def compiled_mlp(seed: int):
    model = make_mlp(seed)
    model.compile(
        optimizer=em.optimizers.Adam(0.01),
        loss=em.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


FIT = {"batch_size": 10, "epochs": 3, "shuffle": True}  # 54 examples: 5 batches of 10, one of 4


def fit_arrays(strategy=None, callbacks=(), verbose=0):
    """fit on arrays with validation; the same call makes the one-process reference."""
    x, y = make_data()
    model = compiled_mlp(seed=0 if strategy is None else strategy.rank)
    history = model.fit(
        x[:54], y[:54], validation_data=(x[54:], y[54:]), verbose=verbose,
        callbacks=list(callbacks), strategy=strategy, **FIT,
    )  # fmt: skip
    return model, history.history


def fit_loader(strategy=None):
    """fit on a shuffling DataLoader (each rank seeds its own: rank 0's seed must win) of 54
    examples (a multiple of 2: the sharding sampler leaves out n % world_size), validated on
    a DataLoader of 11, which every rank reads whole."""
    from ember.data import DataLoader

    x, y = make_data()
    model = compiled_mlp(seed=0 if strategy is None else strategy.rank)
    em.set_seed(7 if strategy is None else 7 + strategy.rank)
    loader = DataLoader((x[:54], y[:54]), batch_size=8, shuffle=True)
    val = DataLoader((x[53:], y[53:]), batch_size=4)  # 11 examples: nothing may be left out
    history = model.fit(loader, epochs=2, verbose=0, validation_data=val, strategy=strategy)
    return model, history.history


def fit_last_batch_of_one(strategy=None):
    """51 examples in batches of 10: the last global batch has 1 example, so one rank trains
    on nothing in that step (and sends zeros with weight 0)."""
    x, y = make_data()
    model = compiled_mlp(seed=0 if strategy is None else strategy.rank)
    history = model.fit(x[:51], y[:51], batch_size=10, epochs=2, verbose=0, strategy=strategy)
    return model, history.history


def _save_fit(out: str, rank: int, model, history) -> None:
    import json

    _save(out, f"rank{rank}.npz", model)
    with open(os.path.join(out, f"history{rank}.json"), "w") as f:
        json.dump(history, f)


def dp_fit(out: str) -> None:
    """fit(strategy=DataParallel()) on arrays with validation, a CSVLogger and a progress line
    per epoch; then on a DataLoader (rank<r>_loader.npz), then with a last batch of one
    example (rank<r>_odd.npz)."""
    from ember.callbacks import CSVLogger
    from ember.distributed import DataParallel

    em.set_floatx("float64")
    strategy = DataParallel()
    csv = CSVLogger(os.path.join(out, f"log{strategy.rank}.csv"))
    model, history = fit_arrays(strategy, callbacks=[csv], verbose=2)
    _save_fit(out, strategy.rank, model, history)
    model, history = fit_loader(strategy)
    _save(out, f"rank{strategy.rank}_loader.npz", model, val_loss=history["val_loss"])
    model, history = fit_last_batch_of_one(strategy)
    _save(out, f"rank{strategy.rank}_odd.npz", model)


def dp_fit_resume(out: str) -> None:
    """fit with BackupAndRestore; with CRASH=1, rank 1 is killed in the third epoch."""
    import signal

    from ember.callbacks import BackupAndRestore, Callback
    from ember.distributed import DataParallel

    class Crash(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if os.environ.get("CRASH") and self.epoch == 2 and batch == 2 and strategy.rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    em.set_floatx("float64")
    strategy = DataParallel()
    backup = BackupAndRestore(os.path.join(out, "backup"))
    x, y = make_data()
    model = compiled_mlp(seed=strategy.rank)
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[backup, Crash()],
                        strategy=strategy)  # fmt: skip
    _save_fit(out, strategy.rank, model, history.history)


def dp_fit_tiny_batch(out: str) -> None:
    """fit with a global batch smaller than the number of ranks: a clear error everywhere."""
    from ember.distributed import DataParallel

    x, y = make_data()
    compiled_mlp(seed=0).fit(x, y, batch_size=1, verbose=0, strategy=DataParallel())


if __name__ == "__main__":
    scenario, out_dir = sys.argv[1], sys.argv[2]
    scenarios = {
        "dp_loop": dp_loop, "pipeline": pipeline, "endless_dp": endless_dp, "dp_fit": dp_fit,
        "dp_fit_resume": dp_fit_resume, "dp_fit_tiny_batch": dp_fit_tiny_batch,
    }  # fmt: skip
    scenarios[scenario](out_dir)
