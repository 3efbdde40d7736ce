"""Train a restricted Boltzmann machine on binarized digits and draw samples from it.

    python examples/rbm_digits.py                                   # scikit-learn's 8x8 digits
    python examples/rbm_digits.py --data mnist:../shared/data/mnist  # 28x28 MNIST (local files)

Writes ``rbm_digits.png`` (or ``--out``): a row of training images, their reconstructions, then
Gibbs samples: chains started from random noise, shown after more and more steps (the RBM
dreams digits), and the first learned filters (columns of W).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ember as em
from ember.models import RBM


def load(data: str) -> tuple[np.ndarray, int]:
    if data == "digits":
        (x, _), (x_test, _) = em.datasets.digits()
    elif data.startswith("mnist:"):
        (x, _), (x_test, _) = em.datasets.mnist(data[len("mnist:") :])
    else:
        raise SystemExit(f"--data must be 'digits' or 'mnist:PATH', received {data!r}")
    x = np.concatenate([x, x_test])
    side = x.shape[1]
    return (x.reshape(len(x), -1) > 0.5).astype(np.float32), side


def grid(images: np.ndarray, side: int, cols: int, gap: float = 0.0) -> np.ndarray:
    """Tile (N, side*side) images into one array with a 1-pixel gap."""
    rows = -(-len(images) // cols)
    out = np.full((rows * (side + 1), cols * (side + 1)), gap)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (side + 1) : r * (side + 1) + side, c * (side + 1) : c * (side + 1) + side] = (
            img.reshape(side, side)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default="rbm_digits.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    em.set_seed(args.seed)
    x, side = load(args.data)
    small = side == 8
    hidden = args.hidden or (100 if small else 256)
    epochs = args.epochs or (30 if small else 10)
    # CD-10: longer negative chains than CD-1 give a model whose own Gibbs chains wander
    # between the digit classes (PCD with a large rate here collapses onto one or two modes)
    # On 28x28 MNIST, PCD with a small rate (Tieleman 2008) gives the sharper samples.
    if small:
        rbm = RBM(hidden, k=10, learning_rate=0.05, momentum=0.5, weight_decay=1e-4,
                  batch_size=20, seed=args.seed)  # fmt: skip
    else:
        rbm = RBM(hidden, k=1, learning_rate=0.01, persistent=True, momentum=0.5,
                  weight_decay=1e-4, batch_size=20, seed=args.seed)  # fmt: skip
    t0 = time.perf_counter()
    history = rbm.fit(x, epochs=epochs, verbose=2, monitor_size=1000)
    err = history.history["reconstruction_error"]
    print(f"trained in {time.perf_counter() - t0:.1f}s: reconstruction error "
          f"{err[0]:.4f} (epoch 1) -> {err[-1]:.4f} (epoch {len(err)})")  # fmt: skip

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = 10
    gen = np.random.default_rng(args.seed)
    noise = (gen.random((n, x.shape[1])) < 0.5).astype(np.float32)
    steps = [1, 10, 100, 1000, 5000]
    chains, v, done = [], noise, 0
    for s in steps:
        v = rbm.gibbs(v, steps=s - done)
        done = s
        # show the mean of one more step from the current state: less speckle, same chain
        chains.append(rbm.gibbs(v, steps=1, mean=True))
    panels = [("training images", x[:n]), ("reconstructions", rbm.reconstruct(x[:n]))]
    panels += [(f"Gibbs samples from noise, step {s}", c) for s, c in zip(steps, chains)]

    fig = Figure(figsize=(10, 1.2 * (len(panels) + 2)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels) + 1, 1, height_ratios=[1] * len(panels) + [2])
    for ax, (title, imgs) in zip(axes, panels):
        ax.imshow(grid(imgs, side, n), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    filters = rbm.get_weights()[0].T[:40]
    lim = np.abs(filters).max()
    tiles = grid(filters / (2 * lim) + 0.5, side, 20, gap=0.5)
    axes[-1].imshow(tiles, cmap="RdBu_r", vmin=0, vmax=1)
    axes[-1].set_title("first 40 filters (columns of W)", fontsize=9)
    axes[-1].axis("off")
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
