"""``ember tune CONFIG.toml``: run a hyperparameter search a config file describes.

Several ``ember tune`` processes given the same ``--storage sqlite:///study.db`` share one
study (they run ``max_trials`` trials between them), and a search run again after it was
stopped continues where it was.
"""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search (grid, random, Bayesian) from a TOML config",
        description="Run the hyperparameter search a TOML config describes "
        "(see examples/tune_digits.toml).",
    )
    p.add_argument("config", help="the TOML file (see examples/tune_digits.toml)")
    p.add_argument("--max-trials", type=int, help="trials in the study (overrides the config)")
    p.add_argument("--storage", help="study database, e.g. sqlite:///study.db (shared, resumable)")
    p.add_argument("--study-name", help="the study's name in the storage")
    p.add_argument("--seed", type=int, help="seed of the sampler and the models")
    p.add_argument("--out", help="output folder (default: [output] dir, or tune_out)")
    p.add_argument("--no-plot", action="store_true", help="do not draw trials.png")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("-v", "--verbose", action="store_true", help="also Optuna's own log")
    p.set_defaults(func=_tune)


def _tune(args) -> int:
    from ember.errors import EmberError
    from ember.tuning import config

    overrides = {
        key: value
        for key, value in (
            ("max_trials", args.max_trials),
            ("storage", args.storage),
            ("study_name", args.study_name),
            ("seed", args.seed),
        )
        if value is not None
    }
    if args.quiet or args.verbose:
        overrides["verbose"] = 0 if args.quiet else 2
    try:
        return config.run(args.config, overrides, out=args.out, plot=not args.no_plot)
    except EmberError as exc:
        print(f"ember tune: error: {exc}", file=sys.stderr)
        return 2
