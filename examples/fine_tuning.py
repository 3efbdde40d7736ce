"""Transfer learning on the digits: pre-train on 0-4, freeze the base, train a new head on 5-9.

    python examples/fine_tuning.py [--data digits | --data mnist:../shared/data/mnist]

1. A small CNN learns digits 0-4.
2. Its convolutional base is frozen (``freeze``: trainable=False, so no gradient is computed
   for it and its BatchNormalization keeps its moving statistics) and its Dense layers are
   replaced by a new head for digits 5-9 (``replace_head``). Only the head trains; the script
   checks that the base is bit-for-bit unchanged and reports the accuracy on 5-9.
3. Optional second stage: the top convolution is unfrozen and fine-tuned at a tenth of the
   head's rate (``lr_multipliers``).
It also times one training step with the base frozen and with it trainable.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ember as em
from ember import layers
from ember.models.transfer import freeze, lr_multipliers, replace_head, unfreeze


def cnn(shape, n_out: int) -> em.Sequential:
    return em.Sequential(
        [
            layers.Input(shape),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_1"),
            layers.BatchNormalization(name="bn_1"),
            layers.MaxPool2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv_2"),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu", name="features"),
            layers.Dense(n_out, activation="softmax", name="head"),
        ]
    )


def step_time(model, x, y, steps: int = 30) -> float:
    """Median seconds of one train_on_batch (after a warm-up)."""
    model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    em.set_seed(args.seed)
    if args.data == "digits":
        (x, y), (x_test, y_test) = em.datasets.digits()
    else:
        (x, y), (x_test, y_test) = em.datasets.mnist(args.data.removeprefix("mnist:"))
    epochs = args.epochs or (8 if x.shape[1] == 8 else 2)
    old, new, new_test = y < 5, y >= 5, y_test >= 5

    base = cnn(x.shape[1:], 5)
    base.compile(em.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    base.fit(x[old], y[old], batch_size=32, epochs=epochs, verbose=0)
    acc_old = base.evaluate(x_test[~new_test], y_test[~new_test], verbose=0)[1]
    print(f"pre-trained on 0-4: test accuracy {acc_old:.3f}")

    freeze(base)
    model = replace_head(base, [layers.Dense(64, activation="relu", name="new_features"),
                                layers.Dense(5, activation="softmax", name="new_head")],
                         remove=2)  # fmt: skip
    frozen = {p.name: p.data.copy() for p in model.weights if not p.requires_grad}
    model.compile(em.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.summary()
    model.fit(x[new], y[new] - 5, batch_size=32, epochs=epochs, verbose=2)
    same = all(np.array_equal(frozen[p.name], p.data) for p in model.weights if p.name in frozen)
    acc_new = model.evaluate(x_test[new_test], y_test[new_test] - 5, verbose=0)[1]
    print(f"new head on 5-9: test accuracy {acc_new:.3f}; frozen base bit-identical: {same}")

    # what freezing saves: one step with the base frozen vs the same step with it trainable
    xb, yb = x[new][:64], y[new][:64] - 5
    t_frozen = step_time(model, xb, yb)
    unfreeze(model)
    t_full = step_time(model, xb, yb)
    freeze(model, up_to="conv_2")
    print(f"one step of 64 images: {1e3 * t_frozen:.2f} ms frozen base, {1e3 * t_full:.2f} ms "
          f"all trainable ({100 * (1 - t_frozen / t_full):.0f}% saved)")  # fmt: skip

    # stage 2: fine-tune the top convolution too, at a tenth of the head's rate
    unfreeze(model, from_layer="conv_2")
    opt = em.optimizers.Adam(5e-4, lr_multipliers=lr_multipliers(model, 0.1, up_to="conv_2"))
    model.compile(opt, "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x[new], y[new] - 5, batch_size=32, epochs=max(1, epochs // 2), verbose=0)
    acc_ft = model.evaluate(x_test[new_test], y_test[new_test] - 5, verbose=0)[1]
    print(f"after fine-tuning conv_2 at 0.1x the rate: test accuracy on 5-9 {acc_ft:.3f}")


if __name__ == "__main__":
    main()
