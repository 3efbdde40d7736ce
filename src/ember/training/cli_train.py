"""``ember train``: train a classifier end to end and keep what it produced.

With no arguments it trains a small CNN on scikit-learn's 8x8 handwritten digits (bundled, no
download), shows the progress, prints the test accuracy and the confusion matrix, and writes
``model.ember``, ``history.csv`` and ``curves.png`` to ``runs/digits-cnn-<timestamp>/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.05, "rmsprop": 1e-3, "adagrad": 0.05}
DEFAULT_EPOCHS = {"digits": 20, "mnist": 5, "folder": 10}


def add_parser(subparsers) -> None:
    """Register ``ember train`` (called by ember.cli)."""
    p = subparsers.add_parser(
        "train",
        help="train a classifier (default: a small CNN on the bundled 8x8 digits)",
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", choices=("cnn", "mlp"), default="cnn", help="the architecture")
    p.add_argument(
        "--data",
        default="digits",
        help="digits (bundled), mnist:PATH (IDX folder or .npz), or folder:PATH "
        "(PATH/<class>/<image>)",
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 20 digits, "
                   "5 mnist, 10 folder)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="examples per batch")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="the optimizer")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3 for "
                   "adam/adamw/rmsprop, 0.05 for sgd/adagrad)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (weights, shuffling)")
    p.add_argument("--out", default=None, help="output folder (default: "
                   "runs/<data>-<model>-<timestamp>)")  # fmt: skip
    p.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction of the training set held out for validation")  # fmt: skip
    p.add_argument("--image-size", type=int, default=32,
                   help="folder data: images are resized to this square size")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="processes for data-parallel training (MPI ranks started with mpiexec, "
                   "one BLAS thread each; needs ember[distributed])")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (default: 1 for digits, whose small matrices only lose "
                   "time to threading; the library's default otherwise)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(func=run)


class _UsageError(Exception):
    pass


def _load_data(spec: str, image_size: int, seed: int):
    """((x_train, y_train), (x_test, y_test), class names, short data name)."""
    import numpy as np

    from ember import datasets

    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        (xtr, ytr), (xte, yte) = datasets.digits(seed=seed)
        return (xtr, ytr), (xte, yte), [str(i) for i in range(10)], "digits"
    if kind == "mnist":
        if not path:
            raise _UsageError("--data mnist:PATH needs the path of the MNIST files")
        (xtr, ytr), (xte, yte) = datasets.mnist(path, seed=seed)
        return (xtr, ytr), (xte, yte), [str(i) for i in range(10)], "mnist"
    if kind == "folder":
        if not path or not os.path.isdir(path):
            raise _UsageError(f"--data folder:PATH needs an existing folder, received {path!r}")
        from ember.data import image_dataset_from_directory

        train, test = image_dataset_from_directory(
            path, image_size=(image_size, image_size), batch_size=256, shuffle=True,
            seed=seed, validation_split=0.2, subset="both",
        )  # fmt: skip

        def arrays(loader):
            xs, ys = [], []
            for xb, yb in loader:
                xs.append(np.asarray(xb))
                ys.append(np.asarray(yb))
            return np.concatenate(xs) / np.float32(255.0), np.concatenate(ys).astype(np.int64)

        return arrays(train), arrays(test), list(train.class_names), "folder"
    raise _UsageError(f"--data must be digits, mnist:PATH or folder:PATH, received {spec!r}")


def build_model(kind: str, input_shape: tuple, n_classes: int):
    """The ``--model`` architectures, sized from the input: a small CNN (two 3x3 conv layers
    with 32 and 64 filters, each followed by 2x2 max pooling while the side is >= 4, dropout,
    a dense head) or a two-layer MLP."""
    import ember as em
    from ember import layers

    stack = [layers.Input(input_shape)]
    if kind == "mlp":
        stack += [
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(128, activation="relu"),
        ]
    else:
        h = input_shape[0]
        for filters in (32, 64):
            stack.append(layers.Conv2D(filters, 3, padding="same", activation="relu"))
            if h >= 4:  # pool down to about a quarter of the input side
                stack.append(layers.MaxPool2D(2))
                h //= 2
        stack += [layers.Flatten(), layers.Dropout(0.25), layers.Dense(128, activation="relu")]
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return em.Sequential(stack, name=f"{kind}")


def confusion_matrix(y_true, y_pred, n_classes: int):
    import numpy as np

    idx = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def format_confusion(cm, names) -> str:
    width = max(4, max(len(str(v)) for v in cm.ravel()) + 1, max(len(n) for n in names) + 1)
    label = max(len(f"true {n}") for n in names) + 1
    head = " " * label + "".join(f"{n:>{width}}" for n in names)
    rows = [
        f"{'true ' + n:>{label}}" + "".join(f"{v:>{width}}" for v in row)
        for n, row in zip(names, cm)
    ]
    return "\n".join(["confusion matrix (rows: true class, columns: predicted)", head, *rows])


def _out_dir(args, data_name: str) -> str:
    if args.out:
        return args.out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{data_name}-{args.model}-{stamp}")
    out, n = base, 1
    while os.path.exists(out):
        out = f"{base}-{n}"
        n += 1
    return out


def _blas_threads(n: int | None):
    """Context limiting BLAS to ``n`` threads (threadpoolctl; a no-op without it or for None)."""
    import contextlib

    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def run(args) -> int:
    """The ``ember train`` command."""
    if args.threads is not None and args.threads < 1:
        print(f"ember train: --threads must be >= 1, received {args.threads}", file=sys.stderr)
        return 2
    threads = args.threads
    if threads is None and args.data == "digits":
        threads = 1
    with _blas_threads(threads):
        return _train(args)


def _train(args) -> int:
    if args.workers < 1:
        print(f"ember train: --workers must be >= 1, received {args.workers}", file=sys.stderr)
        return 2
    for name in ("epochs", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"ember train: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if not 0.0 <= args.validation_split < 1.0:
        print("ember train: --validation-split must be in [0, 1)", file=sys.stderr)
        return 2
    from ember import distributed

    if args.workers > 1 and distributed.world_size() == 1:
        # ember.distributed: start the ranks under mpiexec; each runs this command again, with
        # the output folder chosen here, and trains with fit(strategy=DataParallel())
        from ember.distributed.launch import relaunch

        args.out = _out_dir(args, args.data.partition(":")[0])
        return relaunch(args, ["-m", "ember.cli", "train"], args.workers, args.threads or 1)
    strategy = distributed.DataParallel() if distributed.world_size() > 1 else None
    chief = strategy is None or strategy.is_chief  # only rank 0 prints and writes files

    import numpy as np

    import ember as em
    from ember import callbacks, optimizers

    start = time.perf_counter()
    em.set_seed(args.seed)
    try:
        (xtr, ytr), (xte, yte), names, data_name = _load_data(
            args.data, args.image_size, args.seed
        )
    except _UsageError as exc:
        print(f"ember train: {exc}", file=sys.stderr)
        return 2
    n_classes = max(len(names), int(max(ytr.max(), yte.max())) + 1)
    epochs = args.epochs or DEFAULT_EPOCHS[data_name]
    out = _out_dir(args, data_name)
    os.makedirs(out, exist_ok=True)

    model = build_model(args.model, tuple(xtr.shape[1:]), n_classes)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    opt = optimizers.get(args.optimizer)
    opt.learning_rate = lr
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if chief:
        print(
            f"ember train: {args.model} on {data_name} ({len(xtr)} train / {len(xte)} test "
            f"images of shape {tuple(xtr.shape[1:])}, {n_classes} classes), {args.optimizer} "
            f"lr={lr:g}, {epochs} epochs, batch {args.batch_size}, seed {args.seed}"
        )
    history = model.fit(
        xtr, ytr, batch_size=args.batch_size, epochs=epochs,
        validation_split=args.validation_split, verbose=0 if args.quiet else "auto",
        callbacks=[callbacks.CSVLogger(os.path.join(out, "history.csv"))], strategy=strategy,
    )  # fmt: skip
    if not chief:
        return 0
    probs = model.predict(xte, batch_size=256, verbose=0)
    pred = np.argmax(probs, axis=-1)
    accuracy = float(np.mean(pred == yte))
    cm = confusion_matrix(yte, pred, n_classes)
    model_path = os.path.join(out, "model.ember")
    model.save(model_path)
    curves = os.path.join(out, "curves.png")
    try:
        history.plot(curves, title=f"{args.model} on {data_name}")
    except ImportError as exc:
        curves = f"(not drawn: {exc})"
    elapsed = time.perf_counter() - start
    print(format_confusion(cm, names[:n_classes] if len(names) >= n_classes else
                           [str(i) for i in range(n_classes)]))  # fmt: skip
    print(f"test accuracy: {accuracy:.4f} ({int(np.sum(pred == yte))}/{len(yte)})")
    print(f"wrote {out}/: model.ember, history.csv, curves.png  ({elapsed:.1f}s)")
    print(f"load it with: ember.load_model({model_path!r})")
    return 0
