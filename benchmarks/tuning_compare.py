"""Bayesian optimization (Optuna's TPE) vs random search on the digits with a small CNN.

    python benchmarks/tuning_compare.py [--seeds 0 1 2 3 4] [--trials 20] [--epochs 4]
                                        [--startup 10] [--gp]

For each seed, both searches get the same budget, the same space, the same data and the same
per-trial model seeds (trial n's seed is derived from (seed, n)); the Bayesian search's first
``--startup`` trials (Optuna's default 10) are the very draws the random search makes (the same
seeded generator), so the comparison is paired: what matters is what each method does with the
rest of the budget. Pruning is off, so every trial trains its full epochs.

Prints one JSON line per (seed, method): the best validation loss found, its trial, the test
accuracy of that trial's model, the seconds taken; then a table and one summary JSON line
(how many seeds the Bayesian search matched or beat random search in).
"""

from __future__ import annotations

import argparse
import json
import time


def make_space():
    from ember.tuning import Choice, Float, Int

    return {
        "filters": Choice([4, 8, 16]),
        "dense_units": Int(16, 64, step=16),
        "dropout": Float(0.0, 0.5),
        "optimizer": Choice(["adam", "sgd"]),
        "learning_rate": Float(1e-4, 0.3, log=True),
        "momentum": Float(0.0, 0.95, when={"optimizer": "sgd"}),
    }


def run_one(method: str, seed: int, trials: int, epochs: int, data, startup: int = 10) -> dict:
    from ember.tuning import BayesianOptimization, RandomSearch
    from ember.tuning.families import cnn

    (x, y), (xt, yt) = data

    def build_model(params):
        return cnn(params, x.shape[1:], 10)

    common = dict(objective="val_loss", max_trials=trials, seed=seed, pruner=None, verbose=0)
    if method == "random":
        tuner = RandomSearch(build_model, make_space(), **common)
    else:
        tuner = BayesianOptimization(
            build_model, make_space(), sampler=method, n_startup_trials=startup, **common
        )
    start = time.perf_counter()
    tuner.search(x, y, epochs=epochs, batch_size=32, validation_split=0.2)
    seconds = time.perf_counter() - start
    model = tuner.best_model()  # the best trial's trained model (kept, not retrained)
    test = model.evaluate(xt, yt, batch_size=256, verbose=0, return_dict=True)
    failed = sum(r["state"] != "COMPLETE" for r in tuner.results)
    return {
        "seed": seed,
        "method": method,
        "best_val_loss": round(tuner.best_value, 5),
        "best_trial": tuner.best_trial["trial"],
        "test_accuracy": round(test["accuracy"], 4),
        "trials": len(tuner.results),
        "not_complete": failed,
        "seconds": round(seconds, 1),
        "best_params": tuner.best_params,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--gp", action="store_true", help="also Optuna's GP sampler (torch)")
    parser.add_argument(
        "--startup", type=int, default=10, help="random trials before the model (Optuna's 10)"
    )
    args = parser.parse_args(argv)

    import ember as em

    data = em.datasets.digits()
    methods = ["random", "tpe"] + (["gp"] if args.gp else [])
    results: dict = {}
    for seed in args.seeds:
        for method in methods:
            row = run_one(method, seed, args.trials, args.epochs, data, args.startup)
            results[(seed, method)] = row
            print(json.dumps(row), flush=True)

    header = f"{'seed':>4}  " + "  ".join(f"{m + ' val_loss':>16}" for m in methods)
    header += "  " + "  ".join(f"{m + ' test acc':>15}" for m in methods)
    print("\n" + header)
    for seed in args.seeds:
        line = f"{seed:>4}  " + "  ".join(
            f"{results[(seed, m)]['best_val_loss']:>16.4f}" for m in methods
        )
        line += "  " + "  ".join(f"{results[(seed, m)]['test_accuracy']:>15.4f}" for m in methods)
        print(line)
    summary = {"seeds": len(args.seeds), "trials": args.trials, "epochs": args.epochs,
               "startup": args.startup}  # fmt: skip
    for m in methods[1:]:
        wins = sum(
            results[(s, m)]["best_val_loss"] <= results[(s, "random")]["best_val_loss"]
            for s in args.seeds
        )
        summary[f"{m}_at_least_as_good_as_random"] = wins
        print(f"{m}: at least as good as random search in {wins} of {len(args.seeds)} seeds")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
