"""ember.tuning: grid, random and Bayesian hyperparameter search on Optuna.

    from ember.tuning import BayesianOptimization, Choice, Float, Int

    def build_model(params):
        model = ember.Sequential([...Dense(params["units"])...])
        model.compile(optimizer=ember.optimizers.Adam(params["lr"]), loss=..., metrics=[...])
        return model

    tuner = BayesianOptimization(build_model, {"units": Int(16, 128, step=16),
                                               "lr": Float(1e-4, 1e-1, log=True)},
                                 objective="val_accuracy", max_trials=20, seed=0)
    tuner.search(x, y, epochs=5, validation_split=0.2)
    tuner.best_params, tuner.results_table(), tuner.best_model()

Names load on first use, so ``import ember.tuning`` does not import Optuna.
"""

from __future__ import annotations

from ember._lazy import lazy_exports

_WHERE = {
    "SearchSpace": "space", "Param": "space", "Choice": "space", "Int": "space",
    "Float": "space", "Fixed": "space",
    "Tuner": "tuner", "GridSearch": "tuner", "RandomSearch": "tuner",
    "BayesianOptimization": "tuner", "TrialCallback": "tuner",
}  # fmt: skip


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = sorted(_WHERE)
