"""Time to accuracy: the ``cnn`` workload's model trained on MNIST, ember against PyTorch.

    python benchmarks/accuracy.py [--data ../shared/data/mnist] [--target 0.98] [--epochs 15]

Both frameworks train the same model (benchmarks/run.py's ``cnn``: two 3x3 convolutions with
ReLU and 2x2 max pooling, Dense 128, Dropout 0.5, Dense 10) with the same recipe: Adam 1e-3,
batch 64, softmax cross-entropy, the same shuffled order of the 8,000 training images each epoch
(``ember.datasets.mnist``'s 8,000 / 2,000 stratified split of the files, seed 0). Each framework
keeps its own default initialization (Glorot-uniform kernels in ember as in Keras, PyTorch's
Kaiming-uniform), so their accuracy curves differ a little. The test accuracy on the 2,000
held-out images is measured every ``--eval-every`` steps; the clock counts training steps only.
The two runs advance in alternation, one segment of steps each (A B A B ...), so that both see
the same machine load. Prints one JSON line per framework and one with the ratio of the times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the workload definitions)

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"
)


class EmberRun:
    name = "ember"

    def __init__(self, data):
        import ember as em

        self.em = em
        (self.x, self.y), (self.xt, self.yt) = data
        self.model = run.ember_model("cnn")

    def step(self, idx):
        self.model.train_on_batch(self.x[idx], self.y[idx])

    def accuracy(self) -> float:
        pred = self.model.predict(self.xt, batch_size=500)
        return float((pred.argmax(axis=1) == self.yt).mean())


class TorchRun:
    name = "torch"

    def __init__(self, data):
        import torch

        torch.set_num_threads(2)
        self.torch = torch
        (x, y), (xt, yt) = data
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.y = torch.from_numpy(y)
        self.xt = torch.from_numpy(np.ascontiguousarray(xt.transpose(0, 3, 1, 2)))
        self.yt = yt
        self.model, self.opt = run.torch_model("cnn")
        self.loss = torch.nn.CrossEntropyLoss()

    def step(self, idx):
        idx = self.torch.from_numpy(idx)
        self.model.train()
        self.opt.zero_grad()
        self.loss(self.model(self.x[idx]), self.y[idx]).backward()
        self.opt.step()

    def accuracy(self) -> float:
        self.model.eval()
        with self.torch.no_grad():
            pred = np.concatenate(
                [self.model(self.xt[i : i + 500]).numpy() for i in range(0, len(self.yt), 500)]
            )
        return float((pred.argmax(axis=1) == self.yt).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="folder with the MNIST IDX files")
    p.add_argument("--target", type=float, default=0.98, help="test accuracy to reach")
    p.add_argument("--epochs", type=int, default=15, help="give up after this many epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=25, help="steps between evaluations")
    p.add_argument("--frameworks", default="ember,torch")
    args = p.parse_args(argv)

    if not os.path.isdir(args.data):
        print(f"accuracy.py: skipped: no MNIST data at {os.path.abspath(args.data)}")
        return 0
    import ember as em

    data = em.datasets.mnist(args.data)  # 8,000 / 2,000 stratified split, seed 0
    names = args.frameworks.split(",")
    if "torch" in names:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: timing ember alone", file=sys.stderr)
            names = [n for n in names if n != "torch"]
    runs = [EmberRun(data) if n == "ember" else TorchRun(data) for n in names]
    n = len(data[0][1])
    steps_per_epoch = n // args.batch_size  # the last partial batch is dropped
    # one shuffled order per epoch, the same for every framework
    order = np.random.default_rng(0)
    batches = []
    for _ in range(args.epochs):
        perm = order.permutation(n)
        batches += [perm[i * args.batch_size : (i + 1) * args.batch_size]
                    for i in range(steps_per_epoch)]  # fmt: skip
    state = {r.name: {"seconds": 0.0, "step": 0, "done": False, "curve": []} for r in runs}
    while not all(s["done"] for s in state.values()):
        for r in runs:  # one segment each, in alternation
            s = state[r.name]
            if s["done"]:
                continue
            stop = min(len(batches), s["step"] + args.eval_every)
            t = time.perf_counter()
            for i in range(s["step"], stop):
                r.step(batches[i])
            s["seconds"] += time.perf_counter() - t
            s["step"] = stop
            acc = r.accuracy()
            s["curve"].append((stop, round(acc, 4)))
            print(f"{r.name}: step {stop}, {s['seconds']:.1f} s, test accuracy {acc:.4f}",
                  file=sys.stderr, flush=True)  # fmt: skip
            if acc >= args.target or stop >= len(batches):
                s["done"] = True
                s["reached"] = acc >= args.target
                s["accuracy"] = acc
    for r in runs:
        s = state[r.name]
        print(json.dumps({
            "framework": r.name,
            "target": args.target,
            "reached": s["reached"],
            "seconds": round(s["seconds"], 2),
            "steps": s["step"],
            "epochs": round(s["step"] / steps_per_epoch, 2),
            "test_accuracy": round(s["accuracy"], 4),
        }))  # fmt: skip
    if len(runs) == 2 and all(state[r.name]["reached"] for r in runs):
        e, t = (state[r.name]["seconds"] for r in runs)
        print(json.dumps({"seconds_ratio_ember_over_torch": round(e / t, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
