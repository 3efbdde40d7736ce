"""Seq2Seq: teacher forcing equals step-by-step decoding, greedy decoding feeds back its argmax,
and an LSTM encoder-decoder learns to reverse digit sequences."""

import numpy as np
import pytest

import ember as em
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.models.seq2seq import Seq2Seq, shift_right


def reverse_task(n: int, length: int, seed: int):
    """Digits 0-9 as ids 1-10 (id 0 is the start token); the target is the source reversed."""
    src = np.random.default_rng(seed).integers(1, 11, (n, length))
    return src, src[:, ::-1].copy()


def test_shift_right_puts_the_start_token_first():
    y = np.array([[5, 6, 7], [1, 2, 3]])
    np.testing.assert_array_equal(shift_right(y, 0), [[0, 5, 6], [0, 1, 2]])
    with pytest.raises(ShapeError, match=r"\(batch, steps\)"):
        shift_right(np.zeros(3, dtype=int), 0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_teacher_forcing_equals_feeding_the_tokens_one_at_a_time(cell, float64):
    model = Seq2Seq(7, 9, units=6, embedding_dim=4, cell=cell, start_token=8)
    src = np.random.default_rng(0).integers(0, 7, (3, 5))
    tgt = np.random.default_rng(1).integers(0, 8, (3, 4))
    dec_in = shift_right(tgt, 8)
    fused = model([src, dec_in]).numpy()  # one recurrent op over the whole target
    states = model.encode(src)
    steps = []
    for t in range(4):
        logits, states = model.decode_steps(dec_in[:, t : t + 1], states)
        steps.append(logits.numpy())
    np.testing.assert_allclose(fused, np.concatenate(steps, axis=1), rtol=1e-10, atol=1e-12)


def test_greedy_decoding_feeds_back_its_own_argmax():
    model = Seq2Seq(7, 9, units=8, embedding_dim=4, start_token=0, output_length=4)
    src = np.random.default_rng(0).integers(0, 7, (5, 6))
    ids = model.generate(src)
    assert ids.shape == (5, 4) and ids.dtype == np.int64
    # the logits of a teacher-forced pass on the generated ids reproduce the same choices
    logits = model([src, shift_right(ids, 0)]).numpy()
    np.testing.assert_array_equal(logits.argmax(-1), ids)
    np.testing.assert_array_equal(model.predict(src, verbose=0).argmax(-1), ids)
    assert model.generate(src, length=2).shape == (5, 2)


def test_lstm_encoder_decoder_learns_to_reverse_digit_sequences(one_blas_thread):
    x, y = reverse_task(3000, 5, seed=0)
    x_test, y_test = reverse_task(500, 5, seed=1)
    model = Seq2Seq(11, 11, units=64, embedding_dim=16, output_length=5)
    loss = em.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(em.optimizers.Adam(1e-2), loss, metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.25 * history.history["loss"][0]
    predicted = model.generate(x_test)
    token_accuracy = np.mean(predicted == x_test[:, ::-1])
    assert token_accuracy >= 0.95, token_accuracy


def test_save_and_load_round_trip(tmp_path):
    x, y = reverse_task(64, 4, seed=0)
    model = Seq2Seq(11, 11, units=8, embedding_dim=4, output_length=4, cell="gru")
    model.compile("adam", em.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.save(tmp_path / "s2s.ember")
    loaded = em.load_model(tmp_path / "s2s.ember")
    assert isinstance(loaded, Seq2Seq) and loaded.cell == "gru"
    np.testing.assert_array_equal(loaded.generate(x), model.generate(x))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(EmberValueError, match="cell must be 'lstm' or 'gru'"):
        Seq2Seq(5, 5, cell="rnn")
    with pytest.raises(EmberValueError, match="start_token"):
        Seq2Seq(5, 5, start_token=5)
    with pytest.raises(EmberValueError, match="units must be a positive int"):
        Seq2Seq(5, 5, units=0)
    model = Seq2Seq(5, 5, units=4)
    with pytest.raises(EmberValueError, match="output_length"):
        model.generate(np.zeros((2, 3), dtype=int))
    with pytest.raises(EmberTypeError, match="integers"):
        model.generate(np.array([["a", "b"]]), length=2)
    with pytest.raises(ShapeError, match=r"\(batch, steps\)"):
        model.generate(np.zeros(3, dtype=int), length=2)
