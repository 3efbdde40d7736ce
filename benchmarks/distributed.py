"""Data-parallel throughput on the ``cnn`` workload of BENCHMARKS.md: 1 process with 2 BLAS
threads against 2 MPI ranks with 1 BLAS thread each (and 1 process with 1 thread, the per-core
baseline), same global batch of 64, same model and optimizer.

    python benchmarks/distributed.py [--steps 30] [--repeats 5] [--batch 64]

The step configurations time ``train_step`` alone (the data-parallel one with
``DistributedOptimizer``); the ``fit`` ones time a whole ``model.fit`` epoch of the same number of
global batches (shuffling, sharding, the loss and accuracy reduced every step).

Each configuration runs in its own processes (the BLAS thread count is set in the environment
before NumPy loads); the configurations take turns (A B C A B C ...) so that the machine's
drift hits them alike, and each figure is the median over the repeats. Prints JSON lines: one
per configuration and repeat, one with the allreduce of the whole gradient as 1 buffer vs 4
buckets, and a summary: throughputs (median and best of the repeats), the speedup (2 ranks vs
1 process x 2 threads) and the scaling efficiency (2 ranks vs twice 1 process x 1 thread) as the
median and range of the per-repeat ratios, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(kind: str, steps: int, batch: int) -> None:
    """Time ``steps`` training steps on a global batch of ``batch``; rank 0 prints JSON."""
    import numpy as np

    sys.path.insert(0, HERE)
    from run import ember_model, make_data  # the cnn workload, as benchmarks/run.py builds it

    from ember.distributed import DataParallel, DistributedOptimizer

    dp = DataParallel()
    model = ember_model("cnn")
    x, y = make_data("cnn")
    if batch != len(x):
        reps = -(-batch // len(x))
        x, y = np.concatenate([x] * reps)[:batch], np.concatenate([y] * reps)[:batch]
    dp.broadcast_weights(model)
    xl, yl = dp.split_batch(x, y)
    opt = DistributedOptimizer(model.optimizer, dp)
    opt.layout = list(model.trainable_weights)
    opt.n_local = len(xl)
    comm_s = [0.0]
    reduce = dp.allreduce_gradients

    def timed_reduce(*a, **k):
        t = time.perf_counter()
        out = reduce(*a, **k)
        comm_s[0] += time.perf_counter() - t
        return out

    dp.allreduce_gradients = timed_reduce
    if kind.endswith("fit"):  # the whole fit loop: sharding, metrics reduced every step
        xs, ys = np.concatenate([x] * (steps + 3)), np.concatenate([y] * (steps + 3))
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
        model.fit(xs[: 3 * batch], ys[: 3 * batch], batch_size=batch, verbose=0, strategy=dp)
        dp.comm.barrier()
        comm_s[0] = 0.0
        start = time.perf_counter()
        model.fit(xs[: steps * batch], ys[: steps * batch], batch_size=batch, verbose=0,
                  shuffle=True, strategy=dp)  # fmt: skip
    else:  # the training step alone
        for _ in range(3):  # warm-up: buffers, optimizer state, BLAS
            model.train_step(xl, yl, optimizer=opt)
        dp.comm.barrier()
        comm_s[0] = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            model.train_step(xl, yl, optimizer=opt)
    dp.comm.barrier()
    seconds = time.perf_counter() - start
    if dp.is_chief:
        row = {
            "config": kind,
            "processes": dp.world_size,
            "blas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
            "global_batch": batch,
            "steps": steps,
            "step_ms": round(1e3 * seconds / steps, 2),
            "samples_per_s": round(steps * batch / seconds, 1),
            "allreduce_ms_per_step": round(1e3 * comm_s[0] / steps, 3),
        }
        print(json.dumps(row), flush=True)

    if kind == "2 ranks x 1 thread":  # one flat buffer vs 4 buckets, same bytes
        n = sum(p.data.size for p in model.trainable_weights)
        flat = np.ones(n, dtype=np.float32)
        quarters = np.array_split(flat.copy(), 4)
        one, four = [], []
        for _ in range(40):
            dp.comm.barrier()
            t = time.perf_counter()
            dp.comm.allreduce_(flat)
            one.append(time.perf_counter() - t)
            dp.comm.barrier()
            t = time.perf_counter()
            for q in quarters:
                dp.comm.allreduce_(q)
            four.append(time.perf_counter() - t)
        if dp.is_chief:
            print(json.dumps({
                "allreduce_floats": int(n),
                "one_buffer_ms": round(1e3 * statistics.median(one), 3),
                "four_buckets_ms": round(1e3 * statistics.median(four), 3),
            }), flush=True)  # fmt: skip


def _run(kind: str, steps: int, batch: int) -> list:
    from ember.distributed.launch import find_mpiexec, rank_environment

    threads = 2 if kind.startswith("1 process x 2 threads") else 1
    env = rank_environment(threads)
    me = [sys.executable, os.path.abspath(__file__), "--child", kind, "--steps", str(steps),
          "--batch", str(batch)]  # fmt: skip
    if kind.startswith("2 ranks"):
        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise SystemExit("mpiexec not found: pip install 'ember[distributed]'")
        cmd = [mpiexec, "-n", "2", *me]
    else:
        env.pop("EMBER_DIST_LAUNCHED", None)
        cmd = me
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stdout}\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _median_range(values: list) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.steps, args.batch)
        return 0
    kinds = ["1 process x 2 threads", "2 ranks x 1 thread", "1 process x 1 thread",
             "1 process x 2 threads, fit", "2 ranks x 1 thread, fit"]  # fmt: skip
    load_before = os.getloadavg()
    results: dict = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            for row in _run(kind, args.steps, args.batch):
                print(json.dumps(row), flush=True)
                if "config" in row:
                    results[kind].append(row["samples_per_s"])

    def ratios(num: str, den: str, factor: float = 1.0) -> list:
        # per repeat: the configurations of one repeat ran back to back, under similar load
        return [a / (factor * b) for a, b in zip(results[num], results[den])]

    speedup = ratios("2 ranks x 1 thread", "1 process x 2 threads")
    efficiency = ratios("2 ranks x 1 thread", "1 process x 1 thread", 2.0)
    fit_speedup = ratios("2 ranks x 1 thread, fit", "1 process x 2 threads, fit")
    summary = {
        "workload": "cnn",
        "global_batch": args.batch,
        "repeats": args.repeats,
        "median_samples_per_s": {k: statistics.median(v) for k, v in results.items()},
        "best_samples_per_s": {k: max(v) for k, v in results.items()},
        # median of the per-repeat ratios, and their range
        "speedup_2ranks_vs_1proc_2threads": _median_range(speedup),
        "scaling_efficiency_2ranks_vs_2x_1proc_1thread": _median_range(efficiency),
        "fit_speedup_2ranks_vs_1proc_2threads": _median_range(fit_speedup),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
