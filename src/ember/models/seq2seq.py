"""Seq2Seq: an LSTM (or GRU) encoder-decoder for sequence-to-sequence tasks (Sutskever et al.,
2014), trained with teacher forcing and decoded greedily.

    model = em.models.Seq2Seq(input_vocab=11, output_vocab=11, units=128, output_length=8)
    model.compile("adam", em.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(source_ids, target_ids, epochs=20)        # teacher forcing is done for you
    predicted_ids = model.generate(source_ids)          # greedy decoding, (N, output_length)

The encoder reads the source ids (Embedding -> recurrent layer) and hands its final state to
the decoder. In training the decoder reads the target shifted right by one step behind a start
token (``[start, y_0, ..., y_{T-2}]``: teacher forcing) and predicts ``y`` at every step, so
the whole target sequence is one fused recurrent op. At inference it feeds back its own
most likely token, one step at a time. The outputs are logits over the output vocabulary.
"""

from __future__ import annotations

import numpy as np

from ember.autograd import no_grad
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import check_positive_int, register, training_mode
from ember.models.model import Model

__all__ = ["Seq2Seq", "shift_right"]


def shift_right(y, start_token: int) -> np.ndarray:
    """The decoder's teacher-forcing input: ``[start, y_0, ..., y_{T-2}]`` per row of ``y``."""
    y = np.asarray(getattr(y, "data", y))
    if y.ndim != 2:
        raise ShapeError(
            f"shift_right: expected targets of shape (batch, steps), received {y.shape}"
        )
    out = np.empty(y.shape, dtype=np.int64)
    out[:, 0] = start_token
    out[:, 1:] = y[:, :-1]
    return out


def _ids(x, who: str) -> np.ndarray:
    arr = np.asarray(getattr(x, "data", x))
    if arr.ndim != 2:
        raise ShapeError(
            f"{who}: expected token ids of shape (batch, steps), received {arr.shape}"
        )
    if arr.dtype.kind == "f":  # ids that went through a float array (Model.build's zeros)
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise EmberTypeError(f"{who}: token ids must be integers, received dtype {arr.dtype}")
    return arr


@register
class Seq2Seq(Model):
    """Recurrent encoder-decoder over token ids, with logits over ``output_vocab`` as output.

    Args:
        input_vocab: number of source token ids (ids in ``[0, input_vocab)``).
        output_vocab: number of target token ids, the start token included.
        units: size of the recurrent state.
        embedding_dim: size of the token embeddings (encoder and decoder each have one).
        cell: "lstm" or "gru".
        start_token: the id that starts every decoder input (reserve one id for it).
        output_length: default number of steps ``generate`` and ``predict`` decode.
        name, trainable, dtype: as for every Model.

    Calling it on ``[source, decoder_input]`` runs teacher forcing; on ``source`` alone it
    decodes greedily for ``output_length`` steps. ``fit(source, target)`` builds the decoder
    input from the target itself.
    """

    def __init__(
        self,
        input_vocab: int,
        output_vocab: int,
        units: int = 128,
        embedding_dim: int = 32,
        cell: str = "lstm",
        start_token: int = 0,
        output_length: int | None = None,
        name: str | None = None,
        trainable: bool = True,
        dtype=None,
    ):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        from ember import layers

        owner = "Seq2Seq"
        self.input_vocab = check_positive_int(owner, "input_vocab", input_vocab)
        self.output_vocab = check_positive_int(owner, "output_vocab", output_vocab)
        self.units = check_positive_int(owner, "units", units)
        self.embedding_dim = check_positive_int(owner, "embedding_dim", embedding_dim)
        if cell not in ("lstm", "gru"):
            raise EmberValueError(f"{owner}: cell must be 'lstm' or 'gru', received cell={cell!r}")
        self.cell = cell
        bad = isinstance(start_token, bool) or not isinstance(start_token, (int, np.integer))
        if bad or not 0 <= start_token < self.output_vocab:
            raise EmberValueError(
                f"{owner}: start_token must be an id in [0, output_vocab={self.output_vocab}), "
                f"received start_token={start_token!r}"
            )
        self.start_token = int(start_token)
        self.output_length = (
            None if output_length is None
            else check_positive_int(owner, "output_length", output_length)
        )  # fmt: skip
        rnn = layers.LSTM if cell == "lstm" else layers.GRU
        self.encoder_embedding = layers.Embedding(self.input_vocab, self.embedding_dim)
        self.encoder_rnn = rnn(self.units, return_state=True)
        self.decoder_embedding = layers.Embedding(self.output_vocab, self.embedding_dim)
        self.decoder_rnn = rnn(self.units, return_sequences=True, return_state=True)
        self.output_layer = layers.Dense(self.output_vocab)

    # ------------------------------------------------------------------ pieces
    def encode(self, source) -> list:
        """The encoder's final state(s), which start the decoder: a list of (N, units)."""
        out = self.encoder_rnn(self.encoder_embedding(_ids(source, f"{self.name} source")))
        return list(out[1:])

    def decode_steps(self, decoder_input, states) -> tuple:
        """Logits (N, T, output_vocab) for the decoder input ids, and the final states."""
        ids = _ids(decoder_input, f"{self.name} decoder input")
        out = self.decoder_rnn(self.decoder_embedding(ids), initial_state=states)
        return self.output_layer(out[0]), list(out[1:])

    def call(self, x, training=None):
        if isinstance(x, (list, tuple)):
            if len(x) != 2:
                raise EmberValueError(
                    f"{self.name}: expected [source, decoder_input] or source alone, received "
                    f"{len(x)} inputs"
                )
            logits, _ = self.decode_steps(x[1], self.encode(x[0]))
            return logits
        return self._greedy(x, self.output_length)[0]

    def _greedy(self, source, steps) -> tuple:
        if steps is None:
            raise EmberValueError(
                f"{self.name}: greedy decoding needs a length: give output_length to the "
                f"constructor or length= to generate()"
            )
        from ember.ops import concatenate

        states = self.encode(source)
        token = np.full((len(states[0].data), 1), self.start_token, dtype=np.int64)
        all_logits, ids = [], []
        for _ in range(steps):
            logits, states = self.decode_steps(token, states)  # (N, 1, V)
            token = logits.data.argmax(axis=-1)  # feed back the most likely token
            all_logits.append(logits)
            ids.append(token)
        return concatenate(all_logits, axis=1), np.concatenate(ids, axis=1)

    def generate(self, source, length: int | None = None, batch_size: int = 256) -> np.ndarray:
        """Greedy decoding: the predicted target ids, int64 of shape (N, length)."""
        steps = length if length is not None else self.output_length
        if steps is not None:
            steps = check_positive_int(f"{self.name}.generate", "length", steps)
        source = _ids(source, f"{self.name}.generate source")
        parts = []
        with no_grad(), training_mode(False):
            for start in range(0, len(source), batch_size):
                parts.append(self._greedy(source[start : start + batch_size], steps)[1])
        return np.concatenate(parts) if parts else np.zeros((0, steps or 0), dtype=np.int64)

    # ------------------------------------------------------------------ training
    def _with_decoder_input(self, x, y):
        if y is not None and not isinstance(x, (list, tuple)):
            return (x, shift_right(y, self.start_token))
        return x

    def train_step(self, x, y=None, sample_weight=None, optimizer=None) -> float:
        return super().train_step(self._with_decoder_input(x, y), y, sample_weight, optimizer)

    def test_step(self, x, y=None, sample_weight=None) -> float:
        return super().test_step(self._with_decoder_input(x, y), y, sample_weight)
