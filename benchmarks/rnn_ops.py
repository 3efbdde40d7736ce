"""Time ember's fused recurrent ops against torch.nn.LSTM / nn.GRU at the BENCHMARKS.md shapes.

    python benchmarks/rnn_ops.py [--op lstm|gru|simple_rnn] [--pairs N] [--threads 2]

Forward + backward of the recurrent layer alone (batch 32, length 100, 64 features -> 128 units,
last output), float32. The two frameworks run interleaved (A B A B ...) after a warm-up; the
ratio printed is the median of per-pair ratios, so the machine's drift cancels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

N, T, D, U = 32, 100, 64, 128


def ember_step(op: str):
    import ember as em
    from ember import initializers
    from ember.ops import recurrent as R

    em.set_seed(0)
    rng = np.random.default_rng(0)
    k = {"lstm": 4, "gru": 3, "simple_rnn": 1}[op]
    # as in the benchmark model: Embedding's uniform(-0.05, 0.05) output, Keras's initializers
    x = em.tensor(rng.uniform(-0.05, 0.05, (N, T, D)).astype(np.float32), requires_grad=True)
    w = em.Parameter(initializers.get("glorot_uniform")((D, k * U)))
    u = em.Parameter(initializers.get("orthogonal")((U, k * U)))
    b = em.Parameter(np.zeros((2, 3 * U) if op == "gru" else (k * U,), np.float32))
    fn = getattr(R, op)

    def step(train: bool = True):
        if not train:
            with em.no_grad():
                return fn(x, w, u, b, return_sequences=False)[0]
        for p in (x, w, u, b):
            p.grad = None
        y = fn(x, w, u, b, return_sequences=False)[0]
        y.sum().backward()

    return step


def torch_step(op: str):
    import torch

    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[op]
    layer = cls(D, U, batch_first=True)
    x = torch.randn(N, T, D, requires_grad=True)

    def step(train: bool = True):
        if not train:
            with torch.no_grad():
                return layer(x)[0][:, -1]
        layer.zero_grad()
        x.grad = None
        y = layer(x)[0][:, -1]
        y.sum().backward()

    return step


def timed(fn, train: bool) -> float:
    t0 = time.perf_counter()
    fn(train)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", default="lstm", choices=["lstm", "gru", "simple_rnn"])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    e, t = ember_step(args.op), torch_step(args.op)
    out = {"op": args.op}
    for train in (True, False):
        for _ in range(3):
            e(train), t(train)
        es, ts = [], []
        for _ in range(args.pairs):
            es.append(timed(e, train))
            ts.append(timed(t, train))
        key = "train" if train else "infer"
        out[f"ember_{key}_ms"] = round(1e3 * statistics.median(es), 2)
        out[f"torch_{key}_ms"] = round(1e3 * statistics.median(ts), 2)
        out[f"{key}_ratio"] = round(statistics.median(a / b for a, b in zip(es, ts)), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
