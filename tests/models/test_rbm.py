"""RBM: CD-k and PCD updates against a NumPy transcription of the rule, free energy and
pseudo-log-likelihood against brute-force enumeration, and learning on binarized digits."""

import itertools

import numpy as np
import pytest

import ember as em
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.models.rbm import RBM


def binary_digits():
    """Binarized 8x8 digits as (N, 64) float32 rows (ember's loader, else scikit-learn's)."""
    try:
        from ember.datasets import digits

        (x, _), (x_test, _) = digits()
        x = np.concatenate([np.asarray(x), np.asarray(x_test)])
    except (ImportError, AttributeError):
        from sklearn.datasets import load_digits

        x = load_digits().data
    x = x.reshape(len(x), -1).astype(np.float64)
    return (x / x.max() > 0.5).astype(np.float32)


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def cd_update_transcription(W, c, b, vel, v0, gen, k, lr, mom, wd, chain=None):
    """The CD-k / PCD-k rule of Hinton's practical guide, written out step by step.

    Draw order: h0 (unless a persistent chain is given), then per Gibbs step v and h.
    Returns new (W, c, b), the velocities and the chain's last hidden state.
    """
    ph0 = sig(v0 @ W + c)
    h = chain if chain is not None else (gen.random(ph0.shape, dtype=W.dtype) < ph0) * 1.0
    for _ in range(k):
        pv = sig(h @ W.T + b)
        v = (gen.random(pv.shape, dtype=W.dtype) < pv) * 1.0
        ph = sig(v @ W + c)
        h = (gen.random(ph.shape, dtype=W.dtype) < ph) * 1.0
    n, m = len(v0), len(v)
    positive = v0.T @ ph0 / n
    negative = v.T @ ph / m
    dW = positive - negative - wd * W
    dc = ph0.mean(0) - ph.mean(0)
    db = v0.mean(0) - v.mean(0)
    vel = [mom * vel[0] + lr * dW, mom * vel[1] + lr * dc, mom * vel[2] + lr * db]
    return (W + vel[0], c + vel[1], b + vel[2]), vel, h


def small_rbm(d=6, h=4, wseed=1, **kwargs):
    """A built RBM with known weights (its own generator, if seeded, has drawn the initial
    kernel: a standard normal array of shape (d, h))."""
    r = np.random.default_rng(wseed)
    rbm = RBM(h, **kwargs)
    rbm.build((None, d))
    W = r.normal(0, 0.5, (d, h))
    c = r.normal(0, 0.5, h)
    b = r.normal(0, 0.5, d)
    rbm.set_weights([W, c, b])
    return rbm, [w.astype(rbm.kernel.dtype) for w in (W, c, b)]


@pytest.mark.parametrize("k", [1, 3])
def test_cd_k_updates_match_numpy_transcription_of_the_rule(k, float64):
    rbm, (W, c, b) = small_rbm(k=k, learning_rate=0.1, momentum=0.5, weight_decay=0.01, seed=7)
    gen = np.random.default_rng(7)  # the RBM's generator
    gen.standard_normal((6, 4))  # spent on the initial kernel by build()
    data = (np.random.default_rng(3).random((3, 5, 6)) < 0.5).astype(np.float64)
    vel = [np.zeros_like(W), np.zeros_like(c), np.zeros_like(b)]
    for batch in data:  # three updates: momentum carries over
        rbm.train_on_batch(batch)
        (W, c, b), vel, _ = cd_update_transcription(W, c, b, vel, batch, gen, k, 0.1, 0.5, 0.01)
    got = rbm.get_weights()
    np.testing.assert_allclose(got[0], W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1], c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[2], b, rtol=1e-10, atol=1e-12)


def test_cd_update_matches_transcription_in_float32():
    rbm, (W, c, b) = small_rbm(k=2, learning_rate=0.05, seed=11)
    gen = np.random.default_rng(11)
    gen.standard_normal((6, 4))
    batch = (np.random.default_rng(4).random((8, 6)) < 0.5).astype(np.float32)
    rbm.train_on_batch(batch)
    vel = [np.zeros_like(W), np.zeros_like(c), np.zeros_like(b)]
    (W, c, b), _, _ = cd_update_transcription(W, c, b, vel, batch, gen, 2, 0.05, 0.0, 0.0)
    assert rbm.kernel.dtype == np.float32
    np.testing.assert_allclose(rbm.get_weights()[0], W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rbm.get_weights()[2], b, rtol=1e-5, atol=1e-6)


def test_persistent_cd_continues_the_chain_between_updates(float64):
    rbm, (W, c, b) = small_rbm(k=2, learning_rate=0.1, persistent=True, seed=5)
    gen = np.random.default_rng(5)
    gen.standard_normal((6, 4))
    data = (np.random.default_rng(9).random((3, 4, 6)) < 0.5).astype(np.float64)
    vel = [np.zeros_like(W), np.zeros_like(c), np.zeros_like(b)]
    chain = None
    for batch in data:
        rbm.train_on_batch(batch)
        (W, c, b), vel, chain = cd_update_transcription(
            W, c, b, vel, batch, gen, 2, 0.1, 0.0, 0.0, chain=chain
        )
    np.testing.assert_allclose(rbm.get_weights()[0], W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rbm._chain, chain)


def brute_force_free_energy(v, W, c, b, gaussian=False):
    """-log sum_h exp(-E(v, h)) by enumerating every hidden configuration."""
    hs = np.array(list(itertools.product([0, 1], repeat=W.shape[1])), dtype=np.float64)
    vis = 0.5 * ((v - b) ** 2).sum() if gaussian else -(v @ b)
    energies = vis - hs @ c - (v @ W) @ hs.T  # (2^H,)
    return -np.log(np.exp(-energies).sum())


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_equals_brute_force_marginal(visible, float64):
    rbm, (W, c, b) = small_rbm(d=5, h=4, visible=visible)
    r = np.random.default_rng(2)
    v = (r.random((6, 5)) < 0.5) * 1.0 if visible == "bernoulli" else r.normal(size=(6, 5))
    expected = [brute_force_free_energy(row, W, c, b, visible == "gaussian") for row in v]
    np.testing.assert_allclose(rbm.free_energy(v), expected, rtol=1e-10)


def test_pseudo_log_likelihood_equals_enumerated_conditionals(float64):
    rbm, (W, c, b) = small_rbm(d=5, h=3)
    vs = np.array(list(itertools.product([0, 1], repeat=5)), dtype=np.float64)
    logp = -np.array([brute_force_free_energy(v, W, c, b) for v in vs])
    logp -= np.log(np.exp(logp).sum())  # exact log p(v) over all 32 states
    index = {tuple(v.astype(int)): i for i, v in enumerate(vs)}
    x = vs[[3, 10, 17, 30]]
    expected = []
    for v in x:
        total = 0.0
        for i in range(5):
            flipped = v.copy()
            flipped[i] = 1 - flipped[i]
            p = np.exp(logp[index[tuple(v.astype(int))]])
            q = np.exp(logp[index[tuple(flipped.astype(int))]])
            total += np.log(p / (p + q))  # log p(v_i | v_-i)
        expected.append(total)
    np.testing.assert_allclose(rbm.score_samples(x, exact=True), expected, rtol=1e-9)
    assert rbm.pseudo_log_likelihood(x, exact=True) == pytest.approx(np.mean(expected))
    # the one-flip estimate is unbiased: its mean over many flips approaches the exact value
    estimates = np.mean([rbm.score_samples(x, exact=False, seed=s) for s in range(400)], axis=0)
    np.testing.assert_allclose(estimates, expected, rtol=0.1)


def test_transform_reconstruct_and_call_follow_the_conditionals(float64):
    rbm, (W, c, b) = small_rbm()
    v = (np.random.default_rng(0).random((4, 6)) < 0.5) * 1.0
    np.testing.assert_allclose(rbm.transform(v), sig(v @ W + c), rtol=1e-12)
    np.testing.assert_allclose(rbm.reconstruct(v), sig(sig(v @ W + c) @ W.T + b), rtol=1e-12)
    out = rbm(v)
    assert isinstance(out, em.Tensor)
    np.testing.assert_allclose(out.numpy(), sig(v @ W + c), rtol=1e-12)


def test_call_is_differentiable_so_a_trained_rbm_can_be_fine_tuned(float64):
    rbm, _ = small_rbm()
    x = em.tensor(np.random.default_rng(1).random((3, 6)), requires_grad=True)
    assert em.gradcheck(lambda t: rbm(t).sum(), [x])
    rbm(x).sum().backward()
    assert rbm.kernel.grad is not None and rbm.kernel.grad.shape == (6, 4)


def test_gibbs_returns_binary_samples_or_means_of_the_right_shape():
    rbm, _ = small_rbm(seed=3)
    v = (np.random.default_rng(0).random((5, 6)) < 0.5).astype(np.float32)
    s = rbm.gibbs(v, steps=3)
    assert s.shape == (5, 6) and set(np.unique(s)) <= {0.0, 1.0}
    m = rbm.gibbs(v, steps=2, mean=True)
    assert m.shape == (5, 6) and ((m > 0) & (m < 1)).all()
    a = RBM(4, seed=3)
    a.build((None, 6))
    a.set_weights(rbm.get_weights())
    b = RBM(4, seed=3)
    b.build((None, 6))
    b.set_weights(rbm.get_weights())
    np.testing.assert_array_equal(a.gibbs(v, 5), b.gibbs(v, 5))  # same seed, same chain


def test_reconstruction_error_halves_between_epoch_1_and_20_on_binary_digits():
    x = binary_digits()
    rbm = RBM(64, learning_rate=0.1, batch_size=10, seed=0)
    history = rbm.fit(x, epochs=20, verbose=0, monitor_size=500)
    err = history.history["reconstruction_error"]
    pll = history.history["pseudo_log_likelihood"]
    assert len(err) == 20
    assert err[-1] <= 0.5 * err[0], err
    assert pll[-1] > pll[0]
    # the logged score is the reconstruction error measured independently
    W, c, b = rbm.get_weights()
    recon = sig(sig(x[:500] @ W + c) @ W.T + b)
    assert err[-1] == pytest.approx(np.mean((x[:500] - recon) ** 2), rel=1e-4)


def test_persistent_training_also_learns_digits():
    x = binary_digits()
    rbm = RBM(64, learning_rate=0.1, persistent=True, batch_size=10, seed=1)
    err = rbm.fit(x, epochs=8, verbose=0, monitor_size=500).history["reconstruction_error"]
    assert err[-1] < 0.6 * err[0]
    assert rbm._chain.shape == (10, 64)  # one persistent chain per batch row


def test_gaussian_visible_units_learn_real_valued_data():
    r = np.random.default_rng(0)
    # two clusters in 10-D, standardized: a Gaussian RBM should reconstruct them well
    centers = r.normal(0, 2, (2, 10))
    x = centers[r.integers(0, 2, 400)] + 0.3 * r.normal(size=(400, 10))
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    rbm = RBM(8, visible="gaussian", learning_rate=0.02, batch_size=20, seed=0)
    hist = rbm.fit(x, epochs=15, verbose=0).history
    assert "pseudo_log_likelihood" not in hist
    assert hist["reconstruction_error"][-1] < 0.3 * np.mean(x**2)  # the variance is 1
    with pytest.raises(EmberValueError, match="Bernoulli"):
        rbm.pseudo_log_likelihood(x)


def test_fit_prints_one_line_per_epoch_and_honours_callbacks(capsys):
    from ember.callbacks import Callback

    seen = []

    class Stop(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))
            if epoch == 1:
                self.model.stop_training = True

    x = binary_digits()[:100]
    RBM(8, seed=0).fit(x, epochs=5, verbose=2, callbacks=[Stop()])
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "reconstruction_error" in out
    assert seen[0] == ["pseudo_log_likelihood", "reconstruction_error"]


def test_weights_order_config_and_round_trip():
    rbm, (W, c, b) = small_rbm(d=6, h=4, k=2, persistent=True, momentum=0.5, seed=3)
    shapes = [w.shape for w in rbm.get_weights()]
    assert shapes == [(6, 4), (4,), (6,)]  # kernel, hidden_bias, visible_bias: Dense-compatible
    clone = RBM.from_config(rbm.get_config())
    assert (clone.k, clone.persistent, clone.momentum, clone.seed) == (2, True, 0.5, 3)
    clone.build((None, 6))
    clone.set_weights(rbm.get_weights())
    v = np.eye(6, dtype=np.float32)[:3]
    np.testing.assert_array_equal(clone.transform(v), rbm.transform(v))
    assert rbm.count_params() == 6 * 4 + 4 + 6


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(EmberValueError, match="n_hidden must be a positive int"):
        RBM(0)
    with pytest.raises(EmberValueError, match="k must be a positive int"):
        RBM(4, k=0)
    with pytest.raises(EmberValueError, match="momentum"):
        RBM(4, momentum=1.5)
    with pytest.raises(EmberValueError, match="visible"):
        RBM(4, visible="poisson")
    with pytest.raises(EmberTypeError, match="seed"):
        RBM(4, seed="x")
    rbm = RBM(4)
    with pytest.raises(EmberValueError, match=r"values in \[0, 1\]"):
        rbm.fit(np.full((3, 5), 2.0), verbose=0)
    rbm.fit(np.zeros((3, 5)), epochs=1, verbose=0)
    with pytest.raises(ShapeError, match=r"\(batch, 5\)"):
        rbm.transform(np.zeros((2, 7)))
    with pytest.raises(ShapeError, match="n_visible"):
        RBM(4).transform(np.zeros(5))
    with pytest.raises(EmberTypeError, match="numeric"):
        rbm.transform(np.array([["a"] * 5]))
