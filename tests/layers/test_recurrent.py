"""SimpleRNN, LSTM, GRU and Bidirectional layers.

The golden values in the ``KERAS_*`` tables are Keras's own published expectations, copied from
keras-team/keras ``keras/src/layers/rnn/lstm_test.py``, ``gru_test.py`` and
``simple_rnn_test.py`` (``test_correctness``, ``test_pass_initial_state``, ``test_masking``):
constant initializers (kernel 0.01, recurrent kernel 0.02, bias 0.03) and an ``arange`` input.
They come from Keras, not from ember.
"""

import numpy as np
import pytest

import ember as em
from ember import initializers, layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError

CONST = {
    "kernel_initializer": initializers.Constant(0.01),
    "recurrent_initializer": initializers.Constant(0.02),
    "bias_initializer": initializers.Constant(0.03),
}
SEQ_72 = np.arange(72).reshape((3, 6, 4)).astype("float32")
SEQ_24_34 = np.arange(24).reshape((2, 3, 4)).astype("float32")
SEQ_24_43 = np.arange(24).reshape((2, 4, 3)).astype("float32")

# ------------------------------------------------------------------------- Keras golden values
# (layer, units, extra kwargs, input, expected last output; every unit has the same value)
KERAS_CORRECTNESS = [
    ("LSTM", 3, {}, SEQ_72, [0.6288687, 0.86899155, 0.9460773]),
    ("LSTM", 3, {"go_backwards": True}, SEQ_72, [0.35622165, 0.74789524, 0.8872726]),
    ("LSTM", 3, {"unroll": True}, SEQ_72, [0.6288687, 0.86899155, 0.9460773]),
    ("LSTM", 3, {"unit_forget_bias": False}, SEQ_72, [0.57019705, 0.8661914, 0.9459622]),
    ("LSTM", 3, {"use_bias": False}, SEQ_72, [0.54986924, 0.86226785, 0.9443936]),
    ("GRU", 3, {}, SEQ_72, [0.5217289, 0.6371659, 0.39384964]),
    ("GRU", 3, {"go_backwards": True}, SEQ_72, [0.24406259, 0.611516, 0.3928808]),
    ("GRU", 3, {"reset_after": False}, SEQ_72, [0.51447755, 0.6426879, 0.40208298]),
    ("GRU", 3, {"use_bias": False}, SEQ_72, [0.49988455, 0.64701194, 0.4103359]),
    ("SimpleRNN", 4, {}, SEQ_24_34, [0.405432, 0.73605347]),
    ("SimpleRNN", 4, {"go_backwards": True}, SEQ_24_34, [0.11144729, 0.5528889]),
]


@pytest.mark.parametrize(
    "cls,units,kwargs,x,expected", KERAS_CORRECTNESS, ids=lambda v: str(v)[:20]
)
def test_layers_reproduce_keras_golden_outputs(cls, units, kwargs, x, expected):
    layer = getattr(layers, cls)(units, **CONST, **kwargs)
    out = layer(x).data
    np.testing.assert_allclose(out, np.repeat(np.array(expected)[:, None], units, 1), atol=1e-5)


def test_lstm_initial_state_matches_keras():
    state = [np.arange(4).reshape((2, 2)).astype("float32")] * 2
    out = layers.LSTM(2, **CONST)(SEQ_24_43, initial_state=state).data
    np.testing.assert_allclose(out, [[0.20574439, 0.3558822], [0.64930826, 0.66276]], atol=1e-5)
    out = layers.LSTM(2, go_backwards=True, **CONST)(SEQ_24_43, initial_state=state).data
    np.testing.assert_allclose(out, [[0.13281618, 0.2790356], [0.5839337, 0.5992567]], atol=1e-5)


def test_gru_initial_state_and_return_state_match_keras():
    state = np.arange(4).reshape((2, 2)).astype("float32")
    expected = [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]
    out, h = layers.GRU(2, return_state=True, **CONST)(SEQ_24_43, initial_state=state)
    np.testing.assert_allclose(out.data, expected, atol=1e-5)
    np.testing.assert_allclose(h.data, expected, atol=1e-5)
    out = layers.GRU(2, go_backwards=True, **CONST)(SEQ_24_43, initial_state=state).data
    np.testing.assert_allclose(out, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]], atol=1e-5)


def test_simple_rnn_initial_state_matches_keras():
    state = np.arange(8).reshape((2, 4)).astype("float32")
    out = layers.SimpleRNN(4, **CONST)(SEQ_24_43, initial_state=state).data
    np.testing.assert_allclose(out[:, 0], [0.33621645, 0.6262637], atol=1e-5)
    out = layers.SimpleRNN(4, go_backwards=True, **CONST)(SEQ_24_43, initial_state=state).data
    np.testing.assert_allclose(out[:, 0], [0.07344437, 0.43043602], atol=1e-5)


def _rows(*values):
    return np.repeat(np.array(values, dtype=np.float64)[..., None], 2, -1)


def test_lstm_masking_matches_keras():
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    out = layers.LSTM(2, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out, _rows(0.11755939, 0.28556206), atol=1e-5)
    out = layers.LSTM(2, return_sequences=True, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(
        out[0], _rows(0.01588910, 0.05552048, 0.11755939, 0.11755939), atol=1e-5
    )
    np.testing.assert_allclose(
        out[1], _rows(0.14185596, 0.28556206, 0.28556206, 0.28556206), atol=1e-5
    )
    layer = layers.LSTM(2, return_sequences=True, zero_output_for_mask=True, **CONST)
    out = layer(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out[0], _rows(0.01588910, 0.05552048, 0.11755939, 0), atol=1e-5)
    np.testing.assert_allclose(out[1], _rows(0.14185596, 0.28556206, 0, 0), atol=1e-5)
    backwards_mask = np.array([[False, True, True, True], [False, False, True, True]])
    out = layers.LSTM(2, go_backwards=True, **CONST)(SEQ_24_43, mask=backwards_mask).data
    np.testing.assert_allclose(out, _rows(0.15341201, 0.3844719), atol=1e-5)


def test_gru_masking_matches_keras():
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    out = layers.GRU(2, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out, _rows(0.19393763, 0.30818558), atol=1e-5)
    out = layers.GRU(2, return_sequences=True, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(
        out[0], _rows(0.03606692, 0.09497581, 0.09497581, 0.19393763), atol=1e-5
    )
    np.testing.assert_allclose(
        out[1], _rows(0.16051409, 0.16051409, 0.16051409, 0.30818558), atol=1e-5
    )
    layer = layers.GRU(2, return_sequences=True, zero_output_for_mask=True, **CONST)
    out = layer(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out[0], _rows(0.03606692, 0.09497581, 0, 0.19393763), atol=1e-5)
    np.testing.assert_allclose(out[1], _rows(0.16051409, 0, 0, 0.30818558), atol=1e-5)
    out = layers.GRU(2, go_backwards=True, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out, _rows(0.11669192, 0.28380975), atol=1e-5)


def test_simple_rnn_masking_matches_keras():
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    out = layers.SimpleRNN(4, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out[:, 0], [0.32951632, 0.61799484], atol=1e-5)
    out = layers.SimpleRNN(2, return_sequences=True, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(
        out[0], _rows(0.0599281, 0.15122814, 0.15122814, 0.32394567), atol=1e-5
    )
    np.testing.assert_allclose(out[1], _rows(0.3969304, 0.3969304, 0.3969304, 0.608085), atol=1e-5)
    out = layers.SimpleRNN(4, go_backwards=True, **CONST)(SEQ_24_43, mask=mask).data
    np.testing.assert_allclose(out[:, 0], [0.07376196, 0.43645123], atol=1e-5)


# ------------------------------------------------------------------------- weights and shapes
@pytest.mark.parametrize(
    "layer,shapes",
    [
        (layers.SimpleRNN(5), [(3, 5), (5, 5), (5,)]),
        (layers.LSTM(5), [(3, 20), (5, 20), (20,)]),
        (layers.GRU(5), [(3, 15), (5, 15), (2, 15)]),
        (layers.GRU(5, reset_after=False), [(3, 15), (5, 15), (15,)]),
        (layers.LSTM(5, use_bias=False), [(3, 20), (5, 20)]),
    ],
    ids=["simple_rnn", "lstm", "gru", "gru_reset_before", "lstm_no_bias"],
)
def test_weight_order_and_shapes_follow_keras(layer, shapes):
    layer(np.zeros((2, 4, 3), np.float32))
    assert [w.shape for w in layer.get_weights()] == shapes
    assert [w.name.split("/")[-1] for w in layer.weights][:2] == ["kernel", "recurrent_kernel"]
    assert layer.count_params() == sum(int(np.prod(s)) for s in shapes)


def test_lstm_unit_forget_bias_starts_forget_gate_at_one():
    layer = layers.LSTM(4, bias_initializer="zeros")
    layer(np.zeros((1, 2, 3), np.float32))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias[4:8], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[4:8]), 0.0)


def test_default_initializers_give_orthogonal_recurrent_kernel():
    layer = layers.SimpleRNN(6)
    layer(np.zeros((1, 2, 3), np.float32))
    u = layer.get_weights()[1]
    np.testing.assert_allclose(u.T @ u, np.eye(6), atol=1e-5)


@pytest.mark.parametrize("cls,n_states", [("SimpleRNN", 1), ("LSTM", 2), ("GRU", 1)])
def test_return_sequences_and_return_state_shapes(cls, n_states):
    x = np.random.default_rng(0).standard_normal((2, 7, 3)).astype(np.float32)
    assert getattr(layers, cls)(4)(x).shape == (2, 4)
    assert getattr(layers, cls)(4, return_sequences=True)(x).shape == (2, 7, 4)
    out = getattr(layers, cls)(4, return_sequences=True, return_state=True)(x)
    assert isinstance(out, list) and len(out) == 1 + n_states
    assert out[0].shape == (2, 7, 4) and all(s.shape == (2, 4) for s in out[1:])
    np.testing.assert_allclose(out[1].data, out[0].data[:, -1])  # h_T is the last output
    layer = getattr(layers, cls)(4, return_state=True)
    assert layer.compute_output_shape((None, 7, 3)) == [(None, 4)] * (1 + n_states)


def test_go_backwards_reads_the_sequence_reversed():
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    fwd = layers.GRU(4, return_sequences=True)
    bwd = layers.GRU(4, return_sequences=True, go_backwards=True)
    fwd(x)
    bwd(x)
    bwd.set_weights(fwd.get_weights())
    np.testing.assert_allclose(bwd(x).data, fwd(x[:, ::-1]).data, rtol=1e-6)


def test_initial_state_as_list_input_like_keras():
    x = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)
    h0 = np.full((2, 4), 0.5, np.float32)
    c0 = np.full((2, 4), -0.5, np.float32)
    layer = layers.LSTM(4)
    a = layer(x, initial_state=[h0, c0]).data
    b = layer([x, h0, c0]).data
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, layer(x).data)


# ------------------------------------------------------------------------- masking through models
def test_embedding_mask_zero_reaches_lstm_in_sequential():
    ids = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    em.set_seed(0)
    model = em.Sequential([layers.Embedding(10, 3, mask_zero=True), layers.LSTM(4)])
    out = model(ids).data
    emb, lstm = model.layers
    # the first row equals running the LSTM on its unpadded part only
    direct = lstm(emb(ids[:1, 2:])).data
    np.testing.assert_allclose(out[:1], direct, rtol=1e-5, atol=1e-8)
    unmasked = lstm(emb(ids[:1])).data  # the padding steps would have changed the result
    assert np.abs(unmasked - direct).max() > 1e-5


def test_masked_state_carried_and_output_repeated_with_return_sequences():
    x = np.random.default_rng(3).standard_normal((1, 4, 2)).astype(np.float32)
    mask = np.array([[True, False, True, False]])
    y = layers.SimpleRNN(3, return_sequences=True)(x, mask=mask).data
    np.testing.assert_array_equal(y[0, 1], y[0, 0])
    np.testing.assert_array_equal(y[0, 3], y[0, 2])
    assert layers.SimpleRNN(3, return_sequences=True).compute_mask(x, mask) is mask
    assert layers.SimpleRNN(3).compute_mask(x, mask) is None


# ------------------------------------------------------------------------- Bidirectional
def test_bidirectional_concat_is_forward_then_reversed_backward():
    x = np.random.default_rng(4).standard_normal((2, 5, 3)).astype(np.float32)
    bi = layers.Bidirectional(layers.LSTM(4, return_sequences=True))
    y = bi(x).data
    assert y.shape == (2, 5, 8)
    fw, bw = layers.LSTM(4, return_sequences=True), layers.LSTM(4, return_sequences=True)
    fw(x)
    bw(x)
    w = bi.get_weights()
    fw.set_weights(w[:3])
    bw.set_weights(w[3:])
    np.testing.assert_allclose(y[..., :4], fw(x).data, rtol=1e-6)
    # the backward copy reads x reversed; its outputs are put back in input order
    np.testing.assert_allclose(y[..., 4:], bw(x[:, ::-1]).data[:, ::-1], rtol=1e-6)


@pytest.mark.parametrize("mode", ["sum", "ave", "mul", None])
def test_bidirectional_merge_modes(mode):
    x = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32)
    bi = layers.Bidirectional(layers.GRU(3), merge_mode=mode)
    out = bi(x)
    cat = layers.Bidirectional(layers.GRU(3))
    cat(x)
    cat.set_weights(bi.get_weights())
    both = cat(x).data
    a, b = both[:, :3], both[:, 3:]
    expected = {"sum": a + b, "ave": (a + b) / 2, "mul": a * b}
    if mode is None:
        np.testing.assert_allclose(out[0].data, a, rtol=1e-6)
        np.testing.assert_allclose(out[1].data, b, rtol=1e-6)
    else:
        np.testing.assert_allclose(out.data, expected[mode], rtol=1e-6)


def test_bidirectional_return_state_and_weights_order():
    x = np.random.default_rng(6).standard_normal((2, 4, 3)).astype(np.float32)
    bi = layers.Bidirectional(layers.LSTM(3, return_state=True))
    out = bi(x)
    assert len(out) == 5 and out[0].shape == (2, 6)
    np.testing.assert_allclose(out[0].data[:, :3], out[1].data)  # forward h
    np.testing.assert_allclose(out[0].data[:, 3:], out[3].data)  # backward h
    names = [w.name for w in bi.weights]
    assert names[0].startswith("forward_") and names[3].startswith("backward_")


def test_bidirectional_masked_sequence_outputs_zero_at_masked_steps():
    x = np.random.default_rng(7).standard_normal((1, 4, 2)).astype(np.float32)
    mask = np.array([[True, True, False, False]])
    y = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True))(x, mask=mask).data
    np.testing.assert_array_equal(y[0, 2:], 0.0)  # Keras forces zero_output_for_mask
    assert np.all(y[0, :2] != 0)


def test_bidirectional_config_round_trip():
    x = np.random.default_rng(8).standard_normal((2, 4, 3)).astype(np.float32)
    bi = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="sum")
    bi(x)
    clone = layers.Bidirectional.from_config(bi.get_config())
    clone(x)
    clone.set_weights(bi.get_weights())
    np.testing.assert_allclose(clone(x).data, bi(x).data)
    assert clone.backward_layer.go_backwards and not clone.forward_layer.go_backwards


# ------------------------------------------------------------------------- dropout and training
def test_dropout_only_in_training_and_one_mask_per_sequence():
    x = np.ones((64, 6, 5), np.float32)
    layer = layers.SimpleRNN(3, activation="linear", return_sequences=True, dropout=0.5,
                             recurrent_initializer="zeros", use_bias=False)  # fmt: skip
    infer = layer(x).data
    assert np.allclose(layer(x, training=False).data, infer)
    train = layer(x, training=True).data
    assert not np.allclose(train, infer)
    # with U = 0 every step sees the same dropped input: outputs equal across time
    np.testing.assert_allclose(train, np.repeat(train[:, :1], 6, axis=1), rtol=1e-6)


def test_recurrent_dropout_changes_training_output_only():
    x = np.random.default_rng(9).standard_normal((8, 5, 3)).astype(np.float32)
    layer = layers.LSTM(4, recurrent_dropout=0.5, seed=3)
    a = layer(x).data
    assert np.allclose(layer(x).data, a)
    assert not np.allclose(layer(x, training=True).data, a)


def test_layer_gradients_reach_every_weight():
    x = em.tensor(np.random.default_rng(10).standard_normal((2, 4, 3)), requires_grad=True)
    layer = layers.GRU(3, return_sequences=True)
    layer(x).sum().backward()
    assert x.grad is not None and all(w.grad is not None for w in layer.weights)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_layer_passes_gradcheck(float64, cls):
    x = em.tensor(np.random.default_rng(11).standard_normal((2, 3, 2)), requires_grad=True)
    layer = getattr(layers, cls)(2, return_sequences=True)
    layer(x)
    for w in layer.weights:  # gradcheck perturbs the weights through their tensors
        w.data[...] = np.random.default_rng(12).standard_normal(w.shape)
    assert em.gradcheck(lambda t, *ws: layer(t), [x, *layer.weights])


def test_frozen_layer_gets_no_weight_gradients():
    x = em.tensor(np.ones((1, 3, 2), np.float32), requires_grad=True)
    layer = layers.LSTM(2)
    layer(x)
    layer.trainable = False
    layer(x).sum().backward()
    assert x.grad is not None and all(w.grad is None for w in layer.weights)


# ------------------------------------------------------------------------- config and explain
@pytest.mark.parametrize(
    "layer",
    [layers.SimpleRNN(3, activation="relu", return_sequences=True),
     layers.LSTM(3, unit_forget_bias=False, go_backwards=True, dropout=0.1),
     layers.GRU(3, reset_after=False, return_state=True)],
    ids=["simple_rnn", "lstm", "gru"],
)  # fmt: skip
def test_config_round_trip_rebuilds_the_same_layer(layer):
    x = np.random.default_rng(13).standard_normal((2, 4, 3)).astype(np.float32)
    out = layer(x)
    clone = type(layer).from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    a = out[0] if isinstance(out, list) else out
    b = clone(x)
    b = b[0] if isinstance(b, list) else b
    np.testing.assert_allclose(a.data, b.data)


def test_layers_are_registered_for_loading():
    from ember.layers.base import get_registered

    for name in ("SimpleRNN", "LSTM", "GRU", "Bidirectional"):
        assert get_registered(name) is getattr(layers, name)


def test_explain_gives_the_update_equations():
    assert "h_t = tanh(x_t W + h_{t-1} U + b)" in layers.SimpleRNN(2).explain()
    text = layers.LSTM(2).explain()
    assert "c_t = f_t * c_{t-1} + i_t * g_t" in text and "h_t = o_t * tanh(c_t)" in text
    text = layers.GRU(2).explain()
    assert "h_t = z_t * h_{t-1} + (1 - z_t) * hh_t" in text and "r_t * (h_{t-1} U_h" in text
    assert "(r_t * h_{t-1}) U_h" in layers.GRU(2, reset_after=False).explain()
    assert "reversed" in layers.Bidirectional(layers.GRU(2, return_sequences=True)).explain()


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_2d_input_raises_shape_error_naming_layer_expected_and_received(cls):
    layer = getattr(layers, cls)(3, name=f"my_{cls.lower()}")
    with pytest.raises(
        ShapeError, match=rf"my_{cls.lower()}: .*\(batch, timesteps, features\).*\(4, 5\)"
    ):
        layer(np.zeros((4, 5), np.float32))


def test_changed_feature_count_after_build_raises():
    layer = layers.LSTM(3, name="enc")
    layer(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ShapeError, match=r"enc: expected input with 5 features.*\(2, 4, 6\)"):
        layer(np.zeros((2, 4, 6), np.float32))


def test_bad_arguments_raise_ember_errors():
    with pytest.raises(EmberValueError, match=r"units must be a positive int.*units=0"):
        layers.LSTM(0)
    with pytest.raises(EmberValueError, match=r"dropout must be in \[0, 1\).*1.5"):
        layers.GRU(3, dropout=1.5)
    with pytest.raises(EmberValueError, match=r"activation must be one of .*'relu'"):
        layers.LSTM(3, activation="relu")
    with pytest.raises(EmberValueError, match=r"merge_mode must be one of"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(EmberTypeError, match=r"Bidirectional: layer must be"):
        layers.Bidirectional(layers.Dense(3))
    layer = layers.LSTM(3, name="lstm_states")
    x = np.zeros((2, 4, 5), np.float32)
    with pytest.raises(EmberValueError, match=r"lstm_states: initial_state must hold 2"):
        layer(x, initial_state=[np.zeros((2, 3))])
    with pytest.raises(ShapeError, match=r"lstm_states: each initial state .*\(2, 3\).*\(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 4)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match=r"lstm_states: mask must have shape .*\(2, 4\)"):
        layer(x, mask=np.ones((2, 5), bool))
