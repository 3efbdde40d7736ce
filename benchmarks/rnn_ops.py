"""Time ember's fused recurrent ops against torch.nn.LSTM / nn.GRU at the BENCHMARKS.md shapes.

    python benchmarks/rnn_ops.py [--op lstm|gru|simple_rnn] [--rounds 5] [--steps 20]
                                 [--accel on|off|both]

Forward + backward of the recurrent layer alone (batch 32, length 100, 64 features -> 128 units,
last output; inputs like an Embedding's, Keras's initializers), float32, 2 threads. Each round
runs ember, then PyTorch, each in a fresh child process (warm-up, then the median of --steps
steps), and the ratio printed is the median of the per-round ratios. With ``--accel both`` (the
default when Numba is installed) each round runs ember twice, with its optional Numba kernels
(the LSTM's compiled loops in ``ember/ops/kernels/recurrent.py``, the GRU's per-step kernels in
``ember/ops/_accel.py``) on and off (``EMBER_ACCEL=0``), and prints both. ``first_ms`` is the
first training step of a fresh process (with a cold Numba cache it includes the compilation).

Why not both in one process: between its GEMMs, NumPy's OpenBLAS keeps a worker thread spinning
on the second core for a while, and PyTorch's step right after ember's then runs 2-10x slower
(measured here: nn.LSTM forward + backward 9 ms alone, 20-80 ms right after a NumPy GEMM), which
would flatter ember. Separate processes, alternated, compare the two fairly.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
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

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[op]
    layer = cls(D, U, batch_first=True)
    x = (torch.rand(N, T, D) * 0.1 - 0.05).requires_grad_()

    def step(train: bool = True):
        if not train:
            with torch.no_grad():
                return layer(x)[0][:, -1]
        layer.zero_grad()
        x.grad = None
        y = layer(x)[0][:, -1]
        y.sum().backward()

    return step


def child(framework: str, op: str, steps: int) -> None:
    """Print {"train_ms", "infer_ms"}: medians after a warm-up (run in a fresh process)."""
    t0 = time.perf_counter()
    step = ember_step(op) if framework == "ember" else torch_step(op)
    step(True)
    out = {"first_ms": 1e3 * (time.perf_counter() - t0)}
    for train in (True, False):
        for _ in range(3):
            step(train)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step(train)
            times.append(time.perf_counter() - t0)
        out["train_ms" if train else "infer_ms"] = 1e3 * statistics.median(times)
    print(json.dumps(out))


def run_child(framework: str, op: str, steps: int, accel: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", framework, "--op", op, "--steps", str(steps)]
    env = dict(os.environ, EMBER_ACCEL="1" if accel else "0")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", default="lstm", choices=["lstm", "gru", "simple_rnn"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--accel", choices=["on", "off", "both"], default=None)
    ap.add_argument("--child", choices=["ember", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.op, args.steps)
        return
    accel = args.accel or ("both" if importlib.util.find_spec("numba") else "off")
    runs = {"on": [True], "off": [False], "both": [True, False]}[accel]
    rounds = []
    for _ in range(args.rounds):
        r = {f"ember_accel_{'on' if a else 'off'}": run_child("ember", args.op, args.steps, a)
             for a in runs}  # fmt: skip
        r["torch"] = run_child("torch", args.op, args.steps)
        rounds.append(r)
    out = {"op": args.op, "load_avg_1m": round(os.getloadavg()[0], 2)}
    for name in rounds[0]:
        out[f"{name}_first_ms"] = round(statistics.median(r[name]["first_ms"] for r in rounds), 1)
    for key in ("train", "infer"):
        t = [r["torch"][f"{key}_ms"] for r in rounds]
        out[f"torch_{key}_ms"] = round(statistics.median(t), 2)
        for name in rounds[0]:
            if name == "torch":
                continue
            e = [r[name][f"{key}_ms"] for r in rounds]
            out[f"{name}_{key}_ms"] = round(statistics.median(e), 2)
            out[f"{name}_{key}_ratio"] = round(statistics.median(a / b for a, b in zip(e, t)), 3)
        if accel == "both":  # accel on / off, per round
            on = [r["ember_accel_on"][f"{key}_ms"] for r in rounds]
            off = [r["ember_accel_off"][f"{key}_ms"] for r in rounds]
            out[f"accel_on_off_{key}_ratio"] = round(
                statistics.median(a / b for a, b in zip(on, off)), 3
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
