"""Autoencoder: a convolutional autoencoder beats PCA on held-out digits, the encoder works on
its own, the denoising corruption happens in training only (against clean targets), saving."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError
from ember.models import Autoencoder


def conv_autoencoder(latent: int) -> Autoencoder:
    encoder = em.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(latent),
        ]
    )
    decoder = em.Sequential(
        [
            layers.Input((latent,)),
            layers.Dense(4 * 4 * 32, activation="relu"),
            layers.Reshape((4, 4, 32)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.UpSampling2D(2),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ]
    )
    return Autoencoder(encoder, decoder)


def dense_autoencoder(latent: int = 4, **kwargs) -> Autoencoder:
    encoder = em.Sequential([layers.Input((16,)), layers.Dense(8, activation="relu"),
                             layers.Dense(latent)])  # fmt: skip
    decoder = em.Sequential([layers.Input((latent,)), layers.Dense(8, activation="relu"),
                             layers.Dense(16, activation="sigmoid")])  # fmt: skip
    return Autoencoder(encoder, decoder, **kwargs)


def test_conv_autoencoder_reconstructs_held_out_digits_better_than_pca(one_blas_thread):
    from sklearn.decomposition import PCA

    (x, _), (x_test, _) = em.datasets.digits()
    latent = 8
    ae = conv_autoencoder(latent)
    ae.compile(em.optimizers.Adam(3e-3), "mse")
    ae.fit(x, batch_size=32, epochs=10, verbose=0)  # no y: the target is x
    ae_error = float(np.mean((ae.predict(x_test, verbose=0) - x_test) ** 2))

    flat, flat_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    pca = PCA(n_components=latent).fit(flat)
    pca_error = float(np.mean((pca.inverse_transform(pca.transform(flat_test)) - flat_test) ** 2))
    assert ae_error < 0.9 * pca_error, (ae_error, pca_error)
    z = ae.encode(x_test)
    assert z.shape == (len(x_test), latent)
    assert ae.evaluate(x_test, verbose=0) == pytest.approx(ae_error, rel=1e-4)


def test_encoder_alone_gives_the_latent_vectors_and_decode_inverts_the_path(rng):
    ae = dense_autoencoder(latent=3)
    x = rng.random((5, 16)).astype(np.float32)
    z = ae.encode(x)
    np.testing.assert_allclose(z, ae.encoder.predict(x, verbose=0), rtol=1e-6)
    assert z.shape == (5, 3)
    np.testing.assert_allclose(ae.decode(z), ae.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # the encoder is the same object, so its weights are the autoencoder's
    assert all(any(p is q for q in ae.weights) for p in ae.encoder.weights)
    assert len(ae.weights) == len(ae.encoder.weights) + len(ae.decoder.weights)


def test_corruption_applies_in_training_only(rng):
    x = rng.random((4, 16)).astype(np.float32)
    ae = dense_autoencoder(noise=0.5, seed=0)
    clean = ae.decoder(ae.encoder(x)).numpy()
    np.testing.assert_array_equal(ae(x).numpy(), clean)  # inference: no noise
    np.testing.assert_array_equal(ae.predict(x, verbose=0), clean)
    assert not np.allclose(ae(x, training=True).numpy(), clean)


def test_noise_statistics_gaussian_and_masking():
    x = np.full((400, 50), 0.5, dtype=np.float32)
    gaussian = dense_autoencoder(noise=0.3, seed=1).corrupt(x).numpy()
    assert gaussian.dtype == np.float32
    assert np.std(gaussian - x) == pytest.approx(0.3, rel=0.03)
    assert abs(np.mean(gaussian - x)) < 0.01
    masked = dense_autoencoder(noise=0.25, noise_type="masking", seed=1).corrupt(x).numpy()
    assert set(np.unique(masked)) == {0.0, 0.5}
    assert np.mean(masked == 0) == pytest.approx(0.25, abs=0.01)


def test_denoising_fit_scores_the_corrupted_input_against_the_clean_one(rng):
    seen = []

    class Probe(Autoencoder):
        def compute_loss(self, y, y_pred, sample_weight=None):
            seen.append(np.array(getattr(y, "data", y)))
            return super().compute_loss(y, y_pred, sample_weight)

    ae = Probe(*dense_autoencoder().sublayers, noise=0.5, noise_type="masking", seed=0)
    x = rng.random((8, 16)).astype(np.float32)
    ae.compile("adam", "mse")
    ae.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(seen[0], x)  # the target is the clean batch


def test_denoising_autoencoder_learns_to_remove_noise(rng):
    # data on a 2-D subspace: a denoising autoencoder projects noisy points back onto it
    basis = rng.normal(size=(2, 16))
    x = (rng.normal(size=(600, 2)) @ basis / 8 + 0.5).clip(0, 1).astype(np.float32)
    ae = dense_autoencoder(latent=2, noise=0.1, seed=0)
    ae.compile(em.optimizers.Adam(1e-2), "mse")
    ae.fit(x, batch_size=32, epochs=40, verbose=0)
    noisy = x + 0.1 * rng.normal(size=x.shape).astype(np.float32)
    assert np.mean((ae.predict(noisy, verbose=0) - x) ** 2) < 0.5 * np.mean((noisy - x) ** 2)


def test_save_and_load_round_trip(tmp_path, rng):
    ae = dense_autoencoder(noise=0.1, noise_type="masking", seed=3)
    ae.compile("adam", "mse")
    x = rng.random((6, 16)).astype(np.float32)
    ae.fit(x, epochs=1, verbose=0)
    path = tmp_path / "ae.ember"
    ae.save(path)
    loaded = em.load_model(path)
    assert isinstance(loaded, Autoencoder)
    assert (loaded.noise, loaded.noise_type, loaded.seed) == (0.1, "masking", 3)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ae.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.encode(x), ae.encode(x))


def test_bad_arguments_raise_clear_errors():
    enc, dec = layers.Dense(2), layers.Dense(4)
    with pytest.raises(EmberTypeError, match="encoder must be an ember Layer"):
        Autoencoder(lambda x: x, dec)
    with pytest.raises(EmberValueError, match="different layers"):
        Autoencoder(enc, enc)
    with pytest.raises(EmberValueError, match="noise must be a number >= 0"):
        Autoencoder(enc, dec, noise=-0.1)
    with pytest.raises(EmberValueError, match="noise_type"):
        Autoencoder(enc, dec, noise_type="salt")
    with pytest.raises(EmberValueError, match=r"probability in \[0, 1\)"):
        Autoencoder(enc, dec, noise=1.0, noise_type="masking")
