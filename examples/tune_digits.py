"""Tune a small CNN on scikit-learn's 8x8 digits with Bayesian optimization (Optuna's TPE).

    python examples/tune_digits.py                      # in memory
    python examples/tune_digits.py sqlite:///digits.db  # shared by workers, resumable

Run the second form in two terminals at once: the workers share the study and run 20 trials
between them. Stop one (Ctrl+C) and run it again: the study continues where it stopped.
"""

import sys

import ember as em
from ember import layers
from ember.tuning import BayesianOptimization, Choice, Float, Int


def build_model(params):
    """params -> a compiled Model; "momentum" exists only in trials that chose SGD."""
    model = em.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(params["filters"], 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dropout(params["dropout"]),
            layers.Dense(params["units"], activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    if params["optimizer"] == "sgd":
        opt = em.optimizers.SGD(params["learning_rate"], momentum=params["momentum"])
    else:
        opt = em.optimizers.Adam(params["learning_rate"])
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


space = {
    "filters": Choice([4, 8, 16]),
    "units": Int(16, 64, step=16),
    "dropout": Float(0.0, 0.5),
    "optimizer": Choice(["adam", "sgd"]),
    "learning_rate": Float(1e-4, 0.3, log=True),
    "momentum": Float(0.0, 0.95, when={"optimizer": "sgd"}),  # conditional
}

if __name__ == "__main__":
    (x, y), (x_test, y_test) = em.datasets.digits()
    storage = sys.argv[1] if len(sys.argv) > 1 else None
    tuner = BayesianOptimization(
        build_model, space, objective="val_loss", max_trials=20, seed=0, storage=storage,
        study_name="digits-cnn",
    )  # fmt: skip
    tuner.search(x, y, epochs=4, batch_size=32, validation_split=0.2)
    print(tuner.results_table())
    print("best parameters:", tuner.best_params)
    model = tuner.best_model()  # this process's best trial: kept; else retrained
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy of the best model: {acc:.4f}")
    tuner.to_csv("tune_digits_results.csv")
    tuner.plot("tune_digits_trials.png")
