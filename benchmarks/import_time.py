"""How long ``import ember`` takes, beyond starting Python itself.

Runs ``python -c "import ember"`` and ``python -c "pass"`` alternately in fresh subprocesses
(so nothing is cached in the interpreter), takes the median of each and prints one JSON line:
``{"benchmark": "import_time", "seconds": ..., ...}``. The budget is 0.3 s.

    python benchmarks/import_time.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="subprocess runs of each (10)")
    args = parser.parse_args(argv)
    _time("import ember")  # warm the OS file cache once; not counted
    bare, ember = [], []
    for _ in range(args.runs):  # interleaved: machine load drifts alike for both
        bare.append(_time("pass"))
        ember.append(_time("import ember"))
    result = {
        "benchmark": "import_time",
        "seconds": round(statistics.median(ember) - statistics.median(bare), 4),
        "python_startup_s": round(statistics.median(bare), 4),
        "runs": args.runs,
        "budget_s": 0.3,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
