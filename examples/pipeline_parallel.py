"""Pipeline (model) parallelism: the layers of one Sequential split across MPI ranks.

    mpiexec -n 2 python examples/pipeline_parallel.py [--epochs 10] [--micro-batches 4]
    python examples/pipeline_parallel.py          # one stage: micro-batched training

Rank 0 holds the first layers, the last rank the rest and the loss. Each global batch is cut
into micro-batches that flow forward through the stages (activations sent rank to rank) and
back (gradients sent the other way), GPipe-style; each rank updates only its own layers, and
the update equals one process's on the whole batch. At the end every stage's weights are
gathered on every rank (``synchronize``) and rank 0 saves the whole model.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import ember as em
from ember import datasets, distributed, layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--micro-batches", type=int, default=4)
    parser.add_argument("--out", default="runs/pipeline_parallel")
    args = parser.parse_args()

    em.set_seed(0)
    (x_train, y_train), (x_test, y_test) = datasets.digits(seed=0)
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    model = em.Sequential(
        [
            layers.Input((64,)),
            layers.Dense(256, activation="relu"),
            layers.Dense(256, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(10),
        ]
    )
    model.compile(optimizer=em.optimizers.Adam(1e-3),
                  loss=em.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    pipe = distributed.PipelineParallel(model, micro_batches=args.micro_batches)
    if pipe.is_first:
        print(pipe)
    start = time.perf_counter()
    history = pipe.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                       verbose=1)  # fmt: skip
    seconds = time.perf_counter() - start
    logits = pipe.predict(x_test, batch_size=256)  # on every rank
    pipe.synchronize()  # every rank now holds every stage's trained weights
    if distributed.is_chief():
        acc = float(np.mean(np.argmax(logits, -1) == y_test))
        os.makedirs(args.out, exist_ok=True)
        model.save(os.path.join(args.out, "model.ember"))
        speed = len(x_train) * args.epochs / seconds
        print(f"final loss {history['loss'][-1]:.4f}, test accuracy {acc:.4f}, "
              f"{speed:.0f} examples/s; wrote {args.out}/")  # fmt: skip


if __name__ == "__main__":
    main()
