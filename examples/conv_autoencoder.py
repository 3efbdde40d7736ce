"""A convolutional (denoising) autoencoder on the digits, compared with PCA.

    python examples/conv_autoencoder.py [--latent 8] [--epochs 20] [--noise 0.3]

The encoder (convolutions, pooling, a Dense bottleneck) maps each 8x8 image to ``--latent``
numbers; the decoder (Dense, UpSampling2D, convolutions) maps them back. With ``--noise`` the
inputs are corrupted in training only (masking noise: a fraction of pixels set to 0), so the
network learns to fill them in. Prints the held-out reconstruction error of the autoencoder and
of PCA with the same number of components, and writes ``conv_autoencoder.png``.
"""

from __future__ import annotations

import argparse

import numpy as np

import ember as em
from ember import layers
from ember.models import Autoencoder


def build(latent: int, noise: float) -> Autoencoder:
    encoder = em.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),  # (4, 4, 16)
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(latent),
        ],
        name="encoder",
    )
    decoder = em.Sequential(
        [
            layers.Input((latent,)),
            layers.Dense(4 * 4 * 32, activation="relu"),
            layers.Reshape((4, 4, 32)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.UpSampling2D(2),  # (8, 8, 16)
            layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ],
        name="decoder",
    )
    return Autoencoder(encoder, decoder, noise=noise, noise_type="masking", seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.3, help="masking probability")
    parser.add_argument("--out", default="conv_autoencoder.png")
    args = parser.parse_args()

    em.set_seed(0)
    (x, _), (x_test, _) = em.datasets.digits()
    ae = build(args.latent, args.noise)
    ae.compile(em.optimizers.Adam(3e-3), "mse")
    ae.fit(x, batch_size=32, epochs=args.epochs, validation_data=x_test, verbose=2)
    recon = ae.predict(x_test, verbose=0)
    ae_err = float(np.mean((recon - x_test) ** 2))

    from sklearn.decomposition import PCA

    flat, flat_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    pca = PCA(args.latent).fit(flat)
    pca_recon = pca.inverse_transform(pca.transform(flat_test)).reshape(x_test.shape)
    pca_err = float(np.mean((pca_recon - x_test) ** 2))
    print(f"held-out reconstruction MSE with {args.latent} latent numbers: "
          f"autoencoder {ae_err:.4f}, PCA {pca_err:.4f}")  # fmt: skip

    # denoising: hide 30% of the pixels of test images and let the autoencoder fill them in
    gen = np.random.default_rng(1)
    masked = x_test * (gen.random(x_test.shape) >= 0.3)
    filled = ae.predict(masked.astype(np.float32), verbose=0)
    print(f"masked test images: MSE {np.mean((masked - x_test) ** 2):.4f} -> "
          f"{np.mean((filled - x_test) ** 2):.4f} after the autoencoder")  # fmt: skip

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [("test images", x_test), (f"autoencoder ({ae_err:.4f})", recon),
            (f"PCA ({pca_err:.4f})", pca_recon), ("30% pixels masked", masked),
            ("autoencoder on masked", filled)]  # fmt: skip
    n = 12
    fig = Figure(figsize=(n * 0.8, len(rows) * 0.95), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), n)
    for r, (title, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(imgs[c, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
