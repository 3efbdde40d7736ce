"""conv2d and max_pool2d (forward + backward) at the shapes of the cnn / cnn_bn workloads,
ember against PyTorch, interleaved (A B A B ...) so that both see the same machine load.

    python benchmarks/conv_ops.py [--reps 21] [--algorithm im2col|rows] [--accel]

Prints one line per op and shape: the fastest ember and PyTorch times, their ratio, and the
median of the per-pair ratios (ember / PyTorch). ``--accel`` compares ember with its compiled
kernels (ember.ops._accel) against ember without them instead of against PyTorch (for conv2d
with the layer's fused ReLU, as the cnn workload uses it). On a machine shared with other work the
fastest runs are the ones least disturbed (PyTorch's 2 OpenMP threads suffer more than
NumPy's from a busy core), so the ratio of minima is the better estimate of a quiet machine.
PyTorch runs with 2 threads, as in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import ember as em
from ember.ops import _accel
from ember.ops.conv import Conv2D, conv2d
from ember.ops.pool import max_pool2d

# (N, H, W, C, filters, input needs a gradient): the conv layers of cnn and cnn_bn
CONVS = [
    (64, 28, 28, 1, 32, False),
    (64, 14, 14, 32, 64, True),
    (64, 32, 32, 3, 32, False),
    (64, 32, 32, 32, 32, True),
    (64, 16, 16, 32, 64, True),
    (64, 16, 16, 64, 64, True),
]
POOLS = [(64, 28, 28, 32), (64, 14, 14, 64), (64, 32, 32, 32), (64, 16, 16, 64)]


def interleaved(a, b, reps):
    a(), b()  # warm-up
    ta, tb, ratios = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    return min(ta) * 1e3, min(tb) * 1e3, statistics.median(ratios)


def bench_conv(torch, n, h, w, c, o, needs_dx, reps, algorithm, rng) -> str:
    F = torch.nn.functional
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    k = rng.standard_normal((3, 3, c, o), dtype=np.float32) * 0.1
    b = np.zeros(o, np.float32)
    g = rng.standard_normal((n, h, w, o), dtype=np.float32)
    ex = em.tensor(x, requires_grad=needs_dx)
    ek, eb = em.tensor(k, requires_grad=True), em.tensor(b, requires_grad=True)
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=needs_dx)
    tk = torch.tensor(k.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    tg = torch.tensor(g.transpose(0, 3, 1, 2).copy())

    def ember_step():
        Conv2D.apply(ex, ek, eb, padding="same", algorithm=algorithm).backward(g)
        ek.grad = eb.grad = ex.grad = None

    def torch_step():
        F.conv2d(tx, tk, tb, padding=1).backward(tg)
        tk.grad = tb.grad = tx.grad = None

    def ember_infer():
        with em.no_grad():
            conv2d(ex, ek, eb, padding="same")

    def torch_infer():
        with torch.no_grad():
            F.conv2d(tx, tk, tb, padding=1)

    fe, ft, fr = interleaved(ember_infer, torch_infer, reps)
    te, tt, tr = interleaved(ember_step, torch_step, reps)
    return (
        f"conv2d {(h, w, c)}->{o} dx={needs_dx!s:5}  forward: ember {fe:6.2f} torch "
        f"{ft:6.2f} ms ratio {fe / ft:4.2f} (paired {fr:4.2f}) | fwd+bwd: ember {te:6.2f} "
        f"torch {tt:6.2f} ms ratio {te / tt:4.2f} (paired {tr:4.2f})"
    )


def bench_conv_accel(n, h, w, c, o, needs_dx, reps, rng) -> str:
    """ember with the compiled kernels (B) against ember without them (A), fused ReLU."""
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    k = rng.standard_normal((3, 3, c, o), dtype=np.float32) * 0.1
    b = np.zeros(o, np.float32)
    g = rng.standard_normal((n, h, w, o), dtype=np.float32)
    ex = em.tensor(x, requires_grad=needs_dx)
    ek, eb = em.tensor(k, requires_grad=True), em.tensor(b, requires_grad=True)

    def step(on):
        def run():
            with _accel.enabled(on):
                conv2d(ex, ek, eb, padding="same", _relu=True).backward(g)
            ek.grad = eb.grad = ex.grad = None

        return run

    def infer(on):
        def run():
            with _accel.enabled(on), em.no_grad():
                conv2d(ex, ek, eb, padding="same", _relu=True)

        return run

    fa, fb, fr = interleaved(infer(False), infer(True), reps)
    ta, tb, tr = interleaved(step(False), step(True), reps)
    return (
        f"conv2d {(h, w, c)}->{o} dx={needs_dx!s:5}  forward: numpy {fa:6.2f} compiled "
        f"{fb:6.2f} ms ratio {fb / fa:4.2f} (paired {1 / fr:4.2f}) | fwd+bwd: numpy {ta:6.2f} "
        f"compiled {tb:6.2f} ms ratio {tb / ta:4.2f} (paired {1 / tr:4.2f})"
    )


def bench_pool(torch, n, h, w, c, reps, rng) -> str:
    F = torch.nn.functional
    x = np.maximum(rng.standard_normal((n, h, w, c), dtype=np.float32), 0)  # after a ReLU
    g = rng.standard_normal((n, h // 2, w // 2, c), dtype=np.float32)
    ex = em.tensor(x, requires_grad=True)
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    tg = torch.tensor(g.transpose(0, 3, 1, 2).copy())

    def ember_step():
        max_pool2d(ex, 2).backward(g)
        ex.grad = None

    def torch_step():
        F.max_pool2d(tx, 2).backward(tg)
        tx.grad = None

    te, tt, tr = interleaved(ember_step, torch_step, reps)
    return (
        f"max_pool2d {(h, w, c)}  fwd+bwd: ember {te:6.2f} torch {tt:6.2f} ms ratio "
        f"{te / tt:4.2f} (paired {tr:4.2f})"
    )


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument(
        "--algorithm", default=None, help="force one conv2d forward algorithm (training step)"
    )
    parser.add_argument(
        "--accel", action="store_true", help="compiled kernels against none (conv2d only)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.accel:
        for shape in CONVS:
            print(bench_conv_accel(*shape, args.reps, rng), flush=True)
        return
    torch.set_num_threads(2)
    for shape in CONVS:
        print(bench_conv(torch, *shape, args.reps, args.algorithm, rng), flush=True)
    for shape in POOLS:
        print(bench_pool(torch, *shape, args.reps, rng), flush=True)


if __name__ == "__main__":
    main()
