"""Memory of streaming an image folder: peak memory must stay flat as the folder grows.

Makes folders of 1,000 and 20,000 small PNG files (32x32 RGB, 10 class subfolders) in a
temporary directory, then streams one epoch of ``ImageDataGenerator().flow_from_directory`` over
each in a fresh child process and prints one JSON line per folder:

    {"images", "batches", "rss_before_mb", "peak_rss_mb", "rss_growth_mb",
     "tracemalloc_peak_mb", "seconds", "images_per_s"}

``peak_rss_mb`` is the child's peak resident set (``ru_maxrss``); ``rss_growth_mb`` is that
peak minus the resident set after imports, before the iterator is made; ``tracemalloc_peak_mb``
is the peak of Python-level allocations while listing and streaming (measured in a second
child, since tracing slows decoding). Only the file list grows with the folder (about a
hundred bytes per file); the decoded images of one batch are all that is held at once.

``--workers`` adds a throughput comparison on the 1,000-image folder: the same epoch read
by a DataLoader with no workers, with 2 threads, and by a pool of 2 processes (fork), one JSON
line each.

Run: ``python benchmarks/data_memory.py [--sizes 1000 20000] [--workers]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH = 32
SIZE = (32, 32)


def make_folder(root: str, n: int, size=SIZE, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(10):
        os.makedirs(os.path.join(root, f"class_{k}"), exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        Image.fromarray(arr).save(os.path.join(root, f"class_{i % 10}", f"img_{i:06d}.png"))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(folder: str, trace: bool) -> dict:
    import tracemalloc

    from ember.data import ImageDataGenerator

    gen = ImageDataGenerator(rescale=1 / 255)
    before = _rss_mb()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    it = gen.flow_from_directory(folder, target_size=SIZE, batch_size=BATCH, seed=0)
    seen = 0
    for x, _ in it:
        seen += len(x)
    seconds = time.perf_counter() - t0
    out = {"images": seen, "batches": len(it), "seconds": round(seconds, 2)}
    if trace:
        out["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
        tracemalloc.stop()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        out.update(
            rss_before_mb=round(before, 1),
            peak_rss_mb=round(peak, 1),
            rss_growth_mb=round(peak - before, 1),
            images_per_s=round(seen / seconds),
        )
    return out


def _run_child(folder: str, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", folder] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _decode_batch(args):
    from ember.data.image import ImageFolderDataset

    paths, size = args
    ds = ImageFolderDataset(paths, np.zeros(len(paths), np.int32), 10, size)
    return np.stack([ds[i][0] for i in range(len(paths))])


def throughput(folder: str, size=SIZE) -> list:
    """One epoch of decoding via DataLoader (0 workers, 2 threads) and a 2-process pool."""
    import multiprocessing as mp

    from ember.data import DataLoader, image_dataset_from_directory

    rows = []
    for workers in (0, 2):
        loader = image_dataset_from_directory(
            folder, image_size=size, batch_size=BATCH, shuffle=False, num_workers=workers
        )
        t0 = time.perf_counter()
        n = sum(len(x) for x, _ in loader)
        dt = time.perf_counter() - t0
        kind = "threads" if workers else "main thread"
        rows.append(
            {
                "reader": f"DataLoader {kind}",
                "image_size": size[0],
                "workers": workers,
                "images_per_s": round(n / dt),
            }
        )
    paths = list(loader.file_paths)
    chunks = [(paths[i : i + BATCH], size) for i in range(0, len(paths), BATCH)]
    with mp.get_context("fork").Pool(2) as pool:
        t0 = time.perf_counter()
        n = sum(len(b) for b in pool.imap(_decode_batch, chunks))
        dt = time.perf_counter() - t0
    rows.append(
        {
            "reader": "process pool (fork)",
            "image_size": size[0],
            "workers": 2,
            "images_per_s": round(n / dt),
        }
    )
    assert isinstance(loader, DataLoader)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    p.add_argument("--workers", action="store_true", help="also compare threads and processes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.trace)))
        return
    with tempfile.TemporaryDirectory(prefix="ember-data-memory-") as tmp:
        for n in args.sizes:
            folder = os.path.join(tmp, f"n{n}")
            t0 = time.perf_counter()
            make_folder(folder, n)
            made = time.perf_counter() - t0
            row = {"folder_images": n, "make_seconds": round(made, 1)}
            row.update(_run_child(folder, trace=False))
            row.update(tracemalloc_peak_mb=_run_child(folder, trace=True)["tracemalloc_peak_mb"])
            print(json.dumps(row), flush=True)
            if args.workers and n == min(args.sizes):
                for r in throughput(folder):
                    print(json.dumps(r), flush=True)
        if args.workers:  # larger images: decoding (which releases the GIL) dominates
            big = (192, 192)
            folder = os.path.join(tmp, "big")
            make_folder(folder, 500, size=big)
            for r in throughput(folder, big):
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
