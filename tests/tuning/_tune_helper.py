"""A model family for the worker processes of test_parallel.py (``family =
"_tune_helper:build"``, with this folder on PYTHONPATH).

On import it waits until ``EMBER_TUNE_WORKERS`` processes have imported it (a barrier in the
folder ``EMBER_TUNE_BARRIER``), so that the workers search at the same time; each build sleeps
``EMBER_TUNE_SLEEP`` seconds, so that a trial lasts long enough to kill its worker inside it.
"""

import os
import time

from ember.tuning.families import mlp


def _barrier() -> None:
    folder = os.environ.get("EMBER_TUNE_BARRIER")
    if not folder:
        return
    want = int(os.environ.get("EMBER_TUNE_WORKERS", "1"))
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < want and time.monotonic() < deadline:
        time.sleep(0.02)


_barrier()


def build(params):
    time.sleep(float(os.environ.get("EMBER_TUNE_SLEEP", "0")))
    return mlp(params, (2,), 2)
