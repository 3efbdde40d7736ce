"""ember vs PyTorch on the five reference workloads of BENCHMARKS.md.

    python benchmarks/run.py [--workload NAME] [--steps N] [--against torch] [--profile]

Prints one JSON line per workload. With ``--against torch`` both frameworks run interleaved in one
process after a warm-up, in blocks of ``--block`` steps (A-block B-block ...; see ``bench`` for
why not single steps), and each ratio is the median of per-block-pair ratios, so the machine's
drift cancels. ``load_avg_1min`` gives the load average before and after. Peak memory is
measured in a child process per framework (the growth of the peak RSS over a training run, from
the RSS after imports, a tiny warm-up step and data creation), so the two do not pollute each
other. ``--profile`` prints where ember's step time goes, op by op, forward and backward
separately, and the optimizer's update.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

WORKLOADS = ("mlp", "cnn", "cnn_bn", "lstm", "gru")
BATCH = {"mlp": 128, "cnn": 64, "cnn_bn": 64, "lstm": 32, "gru": 32}


def gemm_flops(name: str) -> float:
    """Matrix-multiply FLOPs of one training step: forward GEMMs x 3 (forward, dX, dW)."""
    b = BATCH[name]
    if name == "mlp":
        fwd = 2 * b * (784 * 512 + 512 * 512 + 512 * 10)
    elif name == "cnn":
        fwd = 2 * b * (28 * 28 * 32 * 9 * 1 + 14 * 14 * 64 * 9 * 32 + 3136 * 128 + 128 * 10)
    elif name == "cnn_bn":
        fwd = 2 * b * (32 * 32 * 32 * 9 * (3 + 32) + 16 * 16 * 64 * 9 * (32 + 64) + 64 * 10)
    else:
        gates = 4 if name == "lstm" else 3
        fwd = 2 * b * (100 * gates * 128 * (64 + 128) + 128 * 2)
    return 3.0 * fwd


def make_data(name: str):
    rng = np.random.default_rng(0)
    b = BATCH[name]
    if name == "mlp":
        x = rng.standard_normal((b, 784)).astype(np.float32)
        y = rng.integers(0, 10, b)
    elif name == "cnn":
        x = rng.standard_normal((b, 28, 28, 1)).astype(np.float32)
        y = rng.integers(0, 10, b)
    elif name == "cnn_bn":
        x = rng.standard_normal((b, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 10, b)
    else:
        x = rng.integers(0, 5000, (b, 100))
        y = rng.integers(0, 2, b)
    return x, y.astype(np.int64)


# ------------------------------------------------------------------------------------ ember
def ember_model(name: str):
    import ember as em
    from ember import layers as L

    em.set_seed(0)
    if name == "mlp":
        model = em.Sequential(
            [
                L.Input((784,)),
                L.Dense(512, activation="relu"),
                L.Dense(512, activation="relu"),
                L.Dense(10),
            ]
        )
        opt = em.optimizers.Adam(1e-3)
    elif name == "cnn":
        model = em.Sequential(
            [
                L.Input((28, 28, 1)),
                L.Conv2D(32, 3, padding="same", activation="relu"),
                L.MaxPool2D(2),
                L.Conv2D(64, 3, padding="same", activation="relu"),
                L.MaxPool2D(2),
                L.Flatten(),
                L.Dense(128, activation="relu"),
                L.Dropout(0.5),
                L.Dense(10),
            ]
        )
        opt = em.optimizers.Adam(1e-3)
    elif name == "cnn_bn":

        def block(f):
            return [L.Conv2D(f, 3, padding="same"), L.BatchNormalization(), L.Activation("relu")]

        model = em.Sequential(
            [
                L.Input((32, 32, 3)),
                *block(32),
                *block(32),
                L.MaxPool2D(2),
                *block(64),
                *block(64),
                L.MaxPool2D(2),
                L.GlobalAveragePooling2D(),
                L.Dense(10),
            ]
        )
        opt = em.optimizers.SGD(0.01, momentum=0.9)
    else:
        rnn = L.LSTM(128) if name == "lstm" else L.GRU(128, reset_after=True)
        model = em.Sequential(
            [L.Input((100,), dtype="int64"), L.Embedding(5000, 64), rnn, L.Dense(2)]
        )
        opt = em.optimizers.Adam(1e-3)
    model.compile(optimizer=opt, loss=em.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def ember_steps(name: str):
    import ember as em

    model = ember_model(name)
    x, y = make_data(name)

    def train():
        model.train_on_batch(x, y)

    def infer():
        with em.no_grad():
            model(x, training=False)

    return train, infer


# ------------------------------------------------------------------------------------ torch
def torch_model(name: str):
    """The workload's PyTorch model (NCHW) and optimizer."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )
    elif name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3136, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
        )
    elif name == "cnn_bn":

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]

        model = nn.Sequential(
            *block(3, 32),
            *block(32, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            *block(64, 64),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
    else:

        class Rnn(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(5000, 64)
                cell = nn.LSTM if name == "lstm" else nn.GRU
                self.rnn = cell(64, 128, batch_first=True)
                self.out = nn.Linear(128, 2)

            def forward(self, ids):
                seq, _ = self.rnn(self.emb(ids))
                return self.out(seq[:, -1])

        model = Rnn()
    if name == "cnn_bn":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt


def torch_steps(name: str):
    import torch
    from torch import nn

    model, opt = torch_model(name)
    x, y = make_data(name)
    if x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = nn.CrossEntropyLoss()

    def train():
        model.train()
        opt.zero_grad()
        loss_fn(model(xt), yt).backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(xt)

    return train, infer


# ------------------------------------------------------------------------------------ timing
def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def peak_rss_child(framework: str, name: str, steps: int) -> float | None:
    """Peak-RSS growth (MB) of a training run of one framework, measured in a fresh process."""
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        framework,
        "--workload",
        name,
        "--steps",
        str(steps),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def _status_kb(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(framework: str, name: str, steps: int) -> None:
    """Print the growth of the peak RSS (MB) over a training run, from the RSS once the
    framework, its layer modules and the data are loaded (so imports are not counted; the
    model, optimizer state, activations and gradients are).

    ``ru_maxrss`` cannot be used for this: a child forked from a large parent starts with the
    parent's RSS as its maximum (Linux keeps it across exec), which hides the child's own peak.
    /proc/self/status's VmHWM belongs to the new process image, and clear_refs resets it."""
    # One tiny step of each kind first, so that what a framework sets up once per process
    # (PyTorch's thread pools and kernel caches: about 80 MB; ember's lazily imported
    # modules) is not charged to the workload.
    if framework == "torch":
        import torch
        from torch import nn

        torch.set_num_threads(2)
        tiny = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 2))
        rnn = nn.LSTM(2, 2, batch_first=True), nn.GRU(2, 2, batch_first=True)
        opt = torch.optim.Adam(tiny.parameters())
        for _ in range(2):
            opt.zero_grad()
            y = torch.zeros(4, dtype=torch.long)
            nn.CrossEntropyLoss()(tiny(torch.randn(4, 1, 5, 5)), y).backward()
            opt.step()
            for r in rnn:
                r(torch.randn(4, 3, 2))[0].sum().backward()
        make = torch_steps
    else:
        import ember as em
        from ember import layers as L

        tiny = em.Sequential(
            [
                L.Input((5, 5, 1)),
                L.Conv2D(2, 3),
                L.BatchNormalization(),
                L.MaxPool2D(2),
                L.Flatten(),
                L.Dense(2),
            ]
        )
        rnn = [
            em.Sequential([L.Input((3,), dtype="int64"), L.Embedding(5, 2), cell, L.Dense(2)])
            for cell in (L.LSTM(2), L.GRU(2))
        ]
        for m in (tiny, *rnn):
            m.compile(optimizer="adam", loss=em.losses.SparseCategoricalCrossentropy(True))
        for _ in range(2):
            tiny.train_on_batch(np.zeros((4, 5, 5, 1), np.float32), np.zeros(4, np.int64))
            for m in rnn:
                m.train_on_batch(np.zeros((4, 3), np.int64), np.zeros(4, np.int64))
        make = ember_steps
    del tiny, rnn
    make_data(name)
    if _reset_peak() and _status_kb("VmRSS") is not None:
        base = _status_kb("VmRSS")
        read_peak = lambda: _status_kb("VmHWM")  # noqa: E731
    else:  # no /proc: the process's own maximum (fine when started from a small parent)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        read_peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    train, _ = make(name)
    for _ in range(steps):
        train()
    print((read_peak() - base) / 1024.0)  # KiB -> MiB


def bench(
    name: str,
    steps: int,
    against: str | None,
    memory: bool,
    block: int = 5,
    settle: float = 0.2,
) -> dict:
    """Time ``steps`` training and inference steps of each framework, alternating in blocks of
    ``block`` steps (A-block B-block A-block ...). Before each block the process sleeps
    ``settle`` seconds and runs one untimed step: PyTorch's OpenMP threads and NumPy's
    OpenBLAS threads spin for a while after their work (up to ~0.1 s for OpenBLAS), and per-step
    alternation measures mostly each library fighting the other's spinning threads (measured
    here: ember's mlp step 4.1 ms alone, 7.2 ms alternating step by step with PyTorch). Each
    ratio is the median over block pairs of (ember block median / PyTorch block median), so
    drift of the machine still cancels; block=1, settle=0 is plain step-by-step alternation."""
    e_train, e_infer = ember_steps(name)
    pairs = [(e_train, e_infer)]
    if against == "torch":
        import torch

        torch.set_num_threads(2)
        pairs.append(torch_steps(name))
    for train, infer in pairs:  # warm-up: allocators, BLAS threads, lazy builds
        for _ in range(3):
            train()
            infer()
    times = {k: [] for k in ("et", "ei", "tt", "ti")}
    blocks = {k: [] for k in times}
    keys = [("et", "ei"), ("tt", "ti")][: len(pairs)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for _ in range(max(1, steps // block)):
        for (train, infer), (kt, ki) in zip(pairs, keys):
            for fn, key in ((train, kt), (infer, ki)):
                if settle:
                    time.sleep(settle)
                fn()  # untimed: wakes this library's threads
                run = [_time(fn) for _ in range(block)]
                times[key] += run
                blocks[key].append(statistics.median(run))
    med = {k: statistics.median(v) if v else None for k, v in times.items()}
    row = {
        "workload": name,
        "ember_train_ms": round(med["et"], 3),
        "ember_infer_ms": round(med["ei"], 3),
        "torch_train_ms": None,
        "torch_infer_ms": None,
        "train_ratio": None,
        "infer_ratio": None,
        "gemm_gflops_per_s": round(gemm_flops(name) / (med["et"] * 1e-3) / 1e9, 1),
        "peak_rss_mb": None,
    }
    if against:
        row["torch_train_ms"] = round(med["tt"], 3)
        row["torch_infer_ms"] = round(med["ti"], 3)
        row["train_ratio"] = round(
            statistics.median(a / b for a, b in zip(blocks["et"], blocks["tt"])), 3
        )
        row["infer_ratio"] = round(
            statistics.median(a / b for a, b in zip(blocks["ei"], blocks["ti"])), 3
        )
    row["load_avg_1min"] = [load, os.getloadavg()[0] if load is not None else None]
    if memory:
        row["peak_rss_mb"] = peak_rss_child("ember", name, 10)
        if against:
            row["torch_peak_rss_mb"] = peak_rss_child("torch", name, 10)
            if row["peak_rss_mb"] and row["torch_peak_rss_mb"]:
                row["memory_ratio"] = round(row["peak_rss_mb"] / row["torch_peak_rss_mb"], 3)
    return row


# ------------------------------------------------------------------------------------ profile
def profile(name: str, steps: int) -> None:
    """Time every Function subclass's forward and backward and the optimizer's update (wrapped
    here, not in ember); "outside_ops_ms" is the rest: layers, the autograd engine, the loop."""
    from ember.autograd.function import Function

    totals: dict = {}

    def wrap(cls, phase, method=None):
        method = method or phase
        inner = getattr(cls, method)

        def timed(self, *args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(self, *args, **kwargs)
            finally:
                key = (cls.__name__, phase)
                totals[key] = totals.get(key, 0.0) + time.perf_counter() - t

        setattr(cls, method, timed)

    train, _ = ember_steps(name)
    train()  # build and import every op class first
    stack = list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                wrap(cls, phase)
    from ember.optimizers import Optimizer

    wrap(Optimizer, "update", "apply_gradients")  # the weight update, outside every op
    t0 = time.perf_counter()
    for _ in range(steps):
        train()
    total = (time.perf_counter() - t0) / steps * 1e3
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    accounted = sum(totals.values()) / steps * 1e3
    print(
        json.dumps(
            {
                "workload": name,
                "step_ms": round(total, 3),
                "in_ops_ms": round(accounted, 3),
                "outside_ops_ms": round(total - accounted, 3),
            }
        )
    )
    for (op, phase), sec in rows:
        print(
            json.dumps(
                {
                    "op": op,
                    "phase": phase,
                    "ms_per_step": round(sec / steps * 1e3, 3),
                    "share": round(sec / steps * 1e3 / total, 3),
                }
            )
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=WORKLOADS, action="append")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--against", choices=["torch"], default=None)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the child-process memory runs")
    p.add_argument("--block", type=int, default=5, help="steps per block of one framework")
    p.add_argument("--settle", type=float, default=0.2, help="seconds of sleep before each block")
    p.add_argument("--memory-child", choices=["ember", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = args.workload or list(WORKLOADS)
    if args.memory_child:
        memory_child(args.memory_child, names[0], args.steps)
        return 0
    if args.against == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: reporting ember alone", file=sys.stderr)
            args.against = None
    for name in names:
        if args.profile:
            profile(name, args.steps)
        else:
            print(
                json.dumps(
                    bench(
                        name,
                        args.steps,
                        args.against,
                        not args.no_memory,
                        args.block,
                        args.settle,
                    )
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
