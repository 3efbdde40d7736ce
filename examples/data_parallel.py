"""Data-parallel training on MPI ranks: the same fit, N processes, one global batch.

    mpiexec -n 2 python examples/data_parallel.py [--epochs 10] [--batch-size 64]
    python -m ember.distributed.launch -n 2 examples/data_parallel.py   # names a rank that dies
    python examples/data_parallel.py                                    # a world of one

Every rank builds the same CNN (rank 0's weights are broadcast before the first epoch), reads
its share of every global batch of the 8x8 digits, and the gradients are averaged by one
allreduce per step, so the ranks stay identical and the result is what one process would get on
the same batches. Only rank 0 prints progress and writes the checkpoint and the CSV log; with
``--backup DIR`` a run killed mid-way resumes from the last finished epoch when started again.
A second part trains the same way in a hand-written loop with ``DistributedOptimizer``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import ember as em
from ember import callbacks, datasets, distributed, layers


def build_model() -> em.Sequential:
    return em.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="the GLOBAL batch")
    parser.add_argument("--out", default="runs/data_parallel")
    parser.add_argument("--backup", default=None, help="BackupAndRestore folder")
    args = parser.parse_args()

    strategy = distributed.DataParallel()
    chief = strategy.is_chief
    em.set_seed(0)
    (x_train, y_train), (x_test, y_test) = datasets.digits(seed=0)
    if chief:
        share = args.batch_size // strategy.world_size
        print(f"{strategy.world_size} rank(s), each training on {share} of every global batch")

    # ---- 1. fit with a strategy
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = [
        callbacks.ModelCheckpoint(os.path.join(args.out, "best.ember"), save_best_only=True),
        callbacks.CSVLogger(os.path.join(args.out, "history.csv")),
    ]
    if args.backup:
        cbs.append(callbacks.BackupAndRestore(args.backup))
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=0.1, callbacks=cbs, verbose=2 if chief else 0,
              strategy=strategy)  # fmt: skip
    logs = model.evaluate(
        x_test, y_test, verbose=0, return_dict=True
    )  # every rank holds the same model
    if chief:
        print(f"fit: test accuracy {logs['accuracy']:.4f}; wrote {args.out}/")

    # ---- 2. the same in a hand-written loop
    model = build_model()
    strategy.broadcast_weights(model)
    opt = strategy.wrap_optimizer(em.optimizers.Adam(1e-3, params=model.trainable_weights))
    loss_fn = em.losses.SparseCategoricalCrossentropy()
    for _ in range(args.epochs):
        order = em.backend.rng().permutation(len(x_train))  # the same order on every rank:
        strategy.comm.broadcast_(order)  # rank 0's
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            xl, yl = strategy.split_batch(x_train[idx], y_train[idx])
            opt.zero_grad()
            if len(xl):
                loss_fn(yl, model(xl, training=True)).backward()
            opt.step(n_local=len(xl))
    with em.no_grad():
        acc = float(np.mean(np.argmax(model(x_test).data, -1) == y_test))
    if chief:
        print(f"hand-written loop: test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
