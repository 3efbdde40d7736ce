"""Deep belief network: pre-train a stack of RBMs greedily, then fine-tune it as a Dense network.

    python examples/dbn_pretraining.py

Hinton, Osindero & Teh (2006): each RBM learns the distribution of the hidden activities of the
one below it, without labels. Their weights (``kernel``, ``hidden_bias``) have exactly the shapes
of a Dense layer's ``[kernel, bias]``, so they initialise a sigmoid MLP, which is then fine-tuned
with labels by backpropagation (``fit``). The script compares it with the same network started
from random weights, both trained on only a few labelled examples per class (the setting where
pre-training on all the unlabelled images helps most), and prints test accuracy as training
goes on: on these small digits the pre-trained network gets there in far fewer epochs, while
the final accuracies end up close (a well-initialised sigmoid MLP with Adam also gets there).
"""

from __future__ import annotations

import argparse

import numpy as np

import ember as em
from ember import layers
from ember.models import RBM


def build_mlp(sizes, n_classes: int) -> em.Sequential:
    model = em.Sequential([layers.Input((sizes[0],))])
    for units in sizes[1:]:
        model.add(layers.Dense(units, activation="sigmoid"))
    model.add(layers.Dense(n_classes, activation="softmax"))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="128,64", help="sizes of the RBM stack")
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--report", default="5,10,30,100", help="epochs to report accuracy at")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    em.set_seed(args.seed)
    (x, y), (x_test, y_test) = em.datasets.digits()
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    sizes = [x.shape[1], *(int(s) for s in args.hidden.split(","))]

    # 1. greedy, unsupervised pre-training on every training image
    rbms, features = [], x
    for i, units in enumerate(sizes[1:]):
        rbm = RBM(units, k=1, learning_rate=0.05, momentum=0.5, batch_size=20, seed=args.seed + i)
        hist = rbm.fit(features, epochs=30, verbose=0).history
        err = hist["reconstruction_error"]
        print(f"RBM {i + 1} ({features.shape[1]} -> {units}): reconstruction error "
              f"{err[0]:.4f} -> {err[-1]:.4f}")  # fmt: skip
        rbms.append(rbm)
        features = rbm.transform(features)  # the next RBM models these activities

    # 2. a few labels per class for the supervised part
    gen = np.random.default_rng(args.seed)
    few = np.concatenate(
        [gen.choice(np.flatnonzero(y == c), args.labels_per_class, replace=False)
         for c in range(10)]
    )  # fmt: skip

    checkpoints = [int(e) for e in args.report.split(",")]
    print(f"test accuracy with {args.labels_per_class} labels per class, after epoch:")
    print(f"{'':>16}  " + "  ".join(f"{e:>5}" for e in checkpoints))
    for name in ("random init", "DBN pre-trained"):
        em.set_seed(args.seed)
        model = build_mlp(sizes, 10)
        if name == "DBN pre-trained":
            for dense, rbm in zip(model.layers, rbms):
                kernel, hidden_bias, _ = rbm.get_weights()
                dense.set_weights([kernel, hidden_bias])
        model.compile(optimizer=em.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])  # fmt: skip
        accs, done = [], 0
        for epoch in checkpoints:
            model.fit(x[few], y[few], batch_size=20, epochs=epoch, initial_epoch=done, verbose=0)
            done = epoch
            accs.append(model.evaluate(x_test, y_test, verbose=0)[1])
        print(f"{name:>16}  " + "  ".join(f"{a:5.3f}" for a in accs))


if __name__ == "__main__":
    main()
