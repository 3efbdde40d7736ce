"""The ``ember`` command line: ``ember info | train | guide | tune | bench | serve``.

Each subcommand's module is imported only when it runs, so ``ember info`` stays instant.
"""

from __future__ import annotations

import argparse
import platform
import sys


def _info(args) -> int:
    import numpy as np

    import ember

    print(f"ember {ember.__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"numpy {np.__version__}")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(
                f"blas {pool.get('internal_api')} {pool.get('version')} "
                f"threads={pool.get('num_threads')} arch={pool.get('architecture')}"
            )
    except ImportError:
        cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        blas = (cfg or {}).get("Build Dependencies", {}).get("blas", {})
        print(f"blas {blas.get('name', '?')} {blas.get('version', '')}".rstrip())
    import importlib.util
    import os

    print(f"cpus {os.cpu_count()}  floatx {ember.floatx()}")
    # the optional compiled kernels (the `accel` extra): whether the ops would use them
    if importlib.util.find_spec("numba") is None:
        print("accel off (Numba is not installed: pip install 'ember[accel]')")
    elif os.environ.get("EMBER_ACCEL", "1") == "0":
        print("accel off (EMBER_ACCEL=0)")
    else:
        from importlib.metadata import version

        print(f"accel on (numba {version('numba')})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ember", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="version, NumPy, BLAS and thread count")
    p.set_defaults(func=_info)
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub) -> None:
    """Subcommands whose modules register themselves through ``add_parser(sub)``."""
    import importlib

    for module in (
        "ember.training.cli_train",
        "ember.guide.cli",
        "ember.tuning.cli",
        "ember.serving",
        "ember.bench_cli",
        "ember.gradcheck_cli",
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("ember"):
                continue  # that part of ember is not written yet
            raise
        mod.add_parser(sub)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
