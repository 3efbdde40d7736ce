"""Recurrent layers: SimpleRNN, LSTM, GRU (Keras's weights, gate orders and masking) and the
Bidirectional wrapper. Each layer owns its weights and calls ONE fused op over the whole
sequence (``ember.ops.recurrent``), where backpropagation through time is written out."""

from __future__ import annotations

import numpy as np

from ember import activations, backend, initializers, ops, regularizers
from ember.autograd import Tensor
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, check_positive_int, get_registered, register
from ember.ops import recurrent as R
from ember.ops.norm import dropout as _dropout


def _rate(layer: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EmberTypeError(f"{layer}: {arg} must be a float, received {arg}={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise EmberValueError(f"{layer}: {arg} must be in [0, 1), received {arg}={value!r}")
    return float(value)


def _activation_name(layer: str, arg: str, value, allowed: tuple) -> str:
    """The name of a built-in activation the fused op implements, or a clear error."""
    name = activations.serialize(activations.get(value))
    if name not in allowed:
        raise EmberValueError(
            f"{layer}: {arg} must be one of {list(allowed)} (the fused recurrent op implements "
            f"these), received {arg}={value!r}"
        )
    return name


class _RNN(Layer):
    """What SimpleRNN, LSTM and GRU share: arguments, weights, checks, dropout, masks, states.

    Subclasses set ``_gates`` (columns of the kernel per unit), ``_n_states`` and implement
    ``_run(x, h0s, mask, recurrent_mask)`` returning the op's outputs, plus ``explain()``.
    """

    _gates = 1
    _n_states = 1

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int(self.name, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate(self.name, "dropout", dropout)
        self.recurrent_dropout = _rate(self.name, "recurrent_dropout", recurrent_dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.unroll = bool(unroll)  # accepted for Keras compatibility: the op is the same
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        ):
            raise EmberTypeError(f"{self.name}: seed must be an int or None, received {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)
        self.kernel = self.recurrent_kernel = self.bias = None

    # ------------------------------------------------------------------ weights
    def _bias_shape(self) -> tuple:
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def check_input(self, shape: tuple) -> None:
        if len(shape) != 3:
            raise ShapeError(
                f"{self.name}: {type(self).__name__} expects a 3-D input (batch, timesteps, "
                f"features), received shape {tuple(shape)}"
            )
        if self.kernel is not None and shape[-1] != self.kernel.shape[0]:
            raise ShapeError(
                f"{self.name}: expected input with {self.kernel.shape[0]} features (the layer "
                f"was built for input shape {self._build_shape}), received shape {tuple(shape)}"
            )

    def build(self, input_shape) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(f"{self.name}: the features axis of the input must be known")
        k = self._gates * self.units
        self.kernel = self.add_weight(
            "kernel", (in_dim, k), self.kernel_initializer, regularizer=self.kernel_regularizer
        )
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, k), self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
        )  # fmt: skip
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", self._bias_shape(), self._bias_init(), regularizer=self.bias_regularizer
            )

    # ------------------------------------------------------------------ calling
    def __call__(self, x, training=None, **kwargs):
        if isinstance(x, (list, tuple)):  # Keras also takes [sequence, *initial_states]
            if len(x) > 1:
                kwargs["initial_state"] = list(x[1:])
            x = x[0]
        return super().__call__(x, training=training, **kwargs)

    def _initial_states(self, initial_state, n: int) -> list:
        if initial_state is None:
            return [None] * self._n_states
        if isinstance(initial_state, (Tensor, np.ndarray)):
            initial_state = [initial_state]
        states = list(initial_state)
        if len(states) != self._n_states:
            raise EmberValueError(
                f"{self.name}: initial_state must hold {self._n_states} array(s) of shape "
                f"(batch, units) = ({n}, {self.units}), received {len(states)}"
            )
        out = []
        for s in states:
            s = s if isinstance(s, Tensor) else Tensor(s)
            if s.shape != (n, self.units):
                raise ShapeError(
                    f"{self.name}: each initial state must have shape (batch, units) = "
                    f"({n}, {self.units}), received {s.shape}"
                )
            out.append(s)
        return out

    def call(self, x, training=None, mask=None, initial_state=None):
        n, t = x.shape[0], x.shape[1]
        if x.dtype != self.kernel.dtype:
            x = ops.cast(x, self.kernel.dtype)
        if mask is not None:
            mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
            if mask.shape != (n, t):
                raise ShapeError(
                    f"{self.name}: mask must have shape (batch, timesteps) = ({n}, {t}), "
                    f"received {mask.shape}"
                )
        states = self._initial_states(initial_state, n)
        rng = self._rng if self._rng is not None else backend.rng()
        if training and self.dropout > 0:  # one mask per sequence, shared by every step
            x = _dropout(x, self.dropout, True, rng=rng, noise_shape=(n, 1, x.shape[2]))
        rec_mask = None
        if training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            draw = rng.random((n, self.units)) < keep
            rec_mask = draw.astype(self.kernel.dtype) * self.kernel.dtype.type(1.0 / keep)
        out = self._run(x, states, mask, rec_mask)
        y, final = out[0], list(out[1:])
        return [y, *final] if self.return_state else y

    def compute_mask(self, x, mask=None):
        out = mask if self.return_sequences else None
        return [out] + [None] * self._n_states if self.return_state else out

    def compute_output_shape(self, input_shape):
        n, t = input_shape[0], input_shape[1]
        y = (n, t, self.units) if self.return_sequences else (n, self.units)
        return [y] + [(n, self.units)] * self._n_states if self.return_state else y

    def _options(self, mask, recurrent_mask) -> dict:
        return {
            "go_backwards": self.go_backwards,
            "mask": mask,
            "return_sequences": self.return_sequences,
            "zero_output_for_mask": self.zero_output_for_mask,
            "recurrent_mask": recurrent_mask,
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
            "unroll": self.unroll,
            "seed": self.seed,
        }

    def _explain_options(self) -> str:
        lines = []
        if self.go_backwards:
            lines.append("The sequence is read from the last step to the first (go_backwards).")
        lines.append(
            "A masked step (mask False) keeps the previous state; its output "
            + ("is zero." if self.zero_output_for_mask else "repeats the previous output.")
        )
        lines.append(
            "Returns "
            + ("every h_t (batch, timesteps, units)" if self.return_sequences else "the last h_t")
            + (" and the final state(s)." if self.return_state else ".")
        )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- SimpleRNN
@register
class SimpleRNN(_RNN):
    """A fully connected recurrent layer: ``h_t = activation(x_t W + h_{t-1} U + b)``.

    Weights (Keras's order): kernel (features, units), recurrent_kernel (units, units),
    bias (units,).

    Args:
        units: the state size (a positive int).
        activation: "tanh" (default), "relu", "sigmoid" or "linear".
        use_bias: whether to add a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers of the
            three weights (default glorot_uniform, orthogonal, zeros).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional penalties.
        dropout: input dropout rate in training (one mask per sequence, shared by all steps).
        recurrent_dropout: dropout rate of the state entering ``h U`` in training.
        return_sequences: return every step's output (batch, timesteps, units) instead of
            the last one.
        return_state: also return the final state: ``[output, h]``.
        go_backwards: read the sequence from the last step to the first.
        zero_output_for_mask: output zeros at masked steps instead of repeating.
        seed: None (draw dropout masks from ``ember.backend.rng()``) or an int.
    """

    _gates = 1
    _n_states = 1

    def __init__(self, units: int, activation="tanh", **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self._act = _activation_name(self.name, "activation", activation, R._RNN_ACTIVATIONS)

    def _run(self, x, states, mask, recurrent_mask):
        return R.simple_rnn(
            x, self.kernel, self.recurrent_kernel, self.bias, states[0],
            activation=self._act, **self._options(mask, recurrent_mask),
        )  # fmt: skip

    def explain(self) -> str:
        """The cell's update equation, as text."""
        return (
            f"SimpleRNN(units={self.units}): for each time step t, with input x_t "
            f"(batch, features) and state h_{{t-1}} (batch, units):\n"
            f"  h_t = {self._act}(x_t W + h_{{t-1}} U + b)\n"
            f"Weights: kernel W (features, {self.units}), recurrent_kernel U "
            f"({self.units}, {self.units}), bias b ({self.units},). h_0 = 0 unless an "
            f"initial_state is given.\n" + self._explain_options()
        )


# ---------------------------------------------------------------------------------- LSTM
@register
class LSTM(_RNN):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997) with Keras's weights.

    Weights: kernel (features, 4 units), recurrent_kernel (units, 4 units), bias (4 units,),
    gate blocks in the order i, f, c, o.

    Args:
        units: the state size (a positive int).
        activation: the candidate / output nonlinearity: "tanh" (the only one implemented).
        recurrent_activation: the gates' nonlinearity: "sigmoid" (the only one implemented).
        unit_forget_bias: start the forget gate's bias at 1 (Keras's default), so the cell
            remembers by default early in training.
        Other arguments as ``SimpleRNN``; ``return_state`` gives ``[output, h, c]``.
    """

    _gates = 4
    _n_states = 2

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        unit_forget_bias: bool = True,
        **kwargs,
    ):
        super().__init__(units, activation=activation, **kwargs)
        _activation_name(self.name, "activation", activation, ("tanh",))
        _activation_name(self.name, "recurrent_activation", recurrent_activation, ("sigmoid",))
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, u = self.bias_initializer, self.units

        def bias_init(shape, dtype=None):  # [b_i, 1, b_c, b_o], as Keras
            return np.concatenate(
                [
                    np.asarray(init((u,), dtype=dtype), dtype=dtype),
                    np.ones((u,), dtype=dtype),
                    np.asarray(init((2 * u,), dtype=dtype), dtype=dtype),
                ]
            )

        return bias_init

    def _run(self, x, states, mask, recurrent_mask):
        return R.lstm(
            x, self.kernel, self.recurrent_kernel, self.bias, states[0], states[1],
            **self._options(mask, recurrent_mask),
        )  # fmt: skip

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }

    def explain(self) -> str:
        """The cell's gate and update equations, as text."""
        u = self.units
        return (
            f"LSTM(units={u}): for each time step t, with input x_t (batch, features) and "
            f"state (h_{{t-1}}, c_{{t-1}}):\n"
            f"  i_t = sigmoid(x_t W_i + h_{{t-1}} U_i + b_i)    input gate\n"
            f"  f_t = sigmoid(x_t W_f + h_{{t-1}} U_f + b_f)    forget gate\n"
            f"  g_t = tanh(x_t W_c + h_{{t-1}} U_c + b_c)       candidate cell\n"
            f"  o_t = sigmoid(x_t W_o + h_{{t-1}} U_o + b_o)    output gate\n"
            f"  c_t = f_t * c_{{t-1}} + i_t * g_t               cell state (additive: "
            f"gradients flow through f_t)\n"
            f"  h_t = o_t * tanh(c_t)                         output and hidden state\n"
            f"Weights: kernel [W_i W_f W_c W_o] (features, {4 * u}), recurrent_kernel "
            f"[U_i U_f U_c U_o] ({u}, {4 * u}), bias ({4 * u},)"
            + (", forget-gate bias starting at 1" if self.unit_forget_bias else "")
            + ".\n"
            + self._explain_options()
        )


# ---------------------------------------------------------------------------------- GRU
@register
class GRU(_RNN):
    """Gated recurrent unit (Cho et al., 2014) with Keras's weights.

    Weights: kernel (features, 3 units), recurrent_kernel (units, 3 units), gate blocks in
    the order z, r, h; bias (2, 3 units) with reset_after=True (input and recurrent biases,
    as cuDNN and PyTorch), (3 units,) with reset_after=False.

    Args:
        units: the state size (a positive int).
        activation: "tanh" (the only one implemented); recurrent_activation: "sigmoid".
        reset_after: apply the reset gate after the recurrent matrix product (Keras 3's
            default and PyTorch's GRU) or before it (the original paper).
        Other arguments as ``SimpleRNN``; ``return_state`` gives ``[output, h]``.
    """

    _gates = 3
    _n_states = 1

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        reset_after: bool = True,
        **kwargs,
    ):
        super().__init__(units, activation=activation, **kwargs)
        _activation_name(self.name, "activation", activation, ("tanh",))
        _activation_name(self.name, "recurrent_activation", recurrent_activation, ("sigmoid",))
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _run(self, x, states, mask, recurrent_mask):
        return R.gru(
            x, self.kernel, self.recurrent_kernel, self.bias, states[0],
            reset_after=self.reset_after, **self._options(mask, recurrent_mask),
        )  # fmt: skip

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }

    def explain(self) -> str:
        """The cell's gate and update equations, as text."""
        u = self.units
        if self.reset_after:
            cand = "hh_t = tanh(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))"
            bias = f"bias ({2}, {3 * u}): row 0 input biases b, row 1 recurrent biases b'"
            zr = "sigmoid(x_t W_{g} + b_{g} + h_{{t-1}} U_{g} + b'_{g})"
        else:
            cand = "hh_t = tanh(x_t W_h + (r_t * h_{t-1}) U_h + b_h)"
            bias = f"bias ({3 * u},)"
            zr = "sigmoid(x_t W_{g} + h_{{t-1}} U_{g} + b_{g})"
        return (
            f"GRU(units={u}, reset_after={self.reset_after}): for each time step t, with "
            f"input x_t (batch, features) and state h_{{t-1}}:\n"
            f"  z_t = {zr.format(g='z')}    update gate\n"
            f"  r_t = {zr.format(g='r')}    reset gate\n"
            f"  {cand}    candidate\n"
            f"  h_t = z_t * h_{{t-1}} + (1 - z_t) * hh_t    (z_t near 1 keeps the old state)\n"
            f"Weights: kernel [W_z W_r W_h] (features, {3 * u}), recurrent_kernel "
            f"[U_z U_r U_h] ({u}, {3 * u}), {bias}.\n" + self._explain_options()
        )


# ---------------------------------------------------------------------------------- Bidirectional
_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


@register
class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards over the sequence and merges
    the two outputs (Keras semantics).

    The backward copy reads the sequence from the end (``go_backwards``); with
    return_sequences its output is reversed again, so step t of both outputs refers to input
    step t. Weights: the forward layer's, then the backward layer's. With masks and
    return_sequences, masked steps output zeros (Keras forces ``zero_output_for_mask``).

    Args:
        layer: a SimpleRNN, LSTM or GRU instance (its configuration is copied; the instance
            itself is not used).
        merge_mode: "concat" (default), "sum", "ave", "mul" or None (a list of both outputs).
        backward_layer: an explicit backward layer (with the opposite ``go_backwards``).
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, _RNN):
            raise EmberTypeError(
                f"Bidirectional: layer must be a SimpleRNN, LSTM or GRU instance, received "
                f"{layer!r}"
            )
        super().__init__(**kwargs)
        if merge_mode not in _MERGE_MODES:
            raise EmberValueError(
                f"{self.name}: merge_mode must be one of {list(_MERGE_MODES)}, received "
                f"merge_mode={merge_mode!r}"
            )
        self.merge_mode = merge_mode
        self.forward_layer = self._copy(layer, "forward_", layer.go_backwards)
        if backward_layer is None:
            self.backward_layer = self._copy(layer, "backward_", not layer.go_backwards)
        else:
            if not isinstance(backward_layer, _RNN):
                raise EmberTypeError(
                    f"{self.name}: backward_layer must be a SimpleRNN, LSTM or GRU instance, "
                    f"received {backward_layer!r}"
                )
            self.backward_layer = backward_layer
        fw, bw = self.forward_layer, self.backward_layer
        if fw.go_backwards == bw.go_backwards:
            raise EmberValueError(
                f"{self.name}: the forward and backward layers must have different "
                f"go_backwards, received {fw.go_backwards} for both"
            )
        for a in ("return_sequences", "return_state"):
            if getattr(fw, a) != getattr(bw, a):
                raise EmberValueError(
                    f"{self.name}: the forward and backward layers must have the same {a}, "
                    f"received {getattr(fw, a)} and {getattr(bw, a)}"
                )
        for sub in (fw, bw):
            sub.zero_output_for_mask = sub.return_sequences
        self.return_sequences = fw.return_sequences
        self.return_state = fw.return_state

    @staticmethod
    def _copy(layer, prefix: str, go_backwards: bool):
        config = layer.get_config()
        name = layer.name[len(prefix) :] if layer.name.startswith(prefix) else layer.name
        config.update(name=prefix + name, go_backwards=go_backwards)
        return type(layer).from_config(config)

    def check_input(self, shape: tuple) -> None:
        if len(shape) != 3:
            raise ShapeError(
                f"{self.name}: Bidirectional expects a 3-D input (batch, timesteps, features), "
                f"received shape {tuple(shape)}"
            )
        self.forward_layer.check_input(shape)

    def build(self, input_shape) -> None:
        self.forward_layer._maybe_build(tuple(input_shape))
        self.backward_layer._maybe_build(tuple(input_shape))

    def call(self, x, training=None, mask=None, initial_state=None):
        fw_state = bw_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            fw_state, bw_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(x, training=training, mask=mask, initial_state=fw_state)
        y_rev = self.backward_layer(x, training=training, mask=mask, initial_state=bw_state)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:  # back to input order: step t of both refers to x_t
            y_rev = ops.getitem(y_rev, (slice(None), slice(None, None, -1)))
        if self.merge_mode == "concat":
            out = ops.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) * 0.5
        elif self.merge_mode == "mul":
            out = y * y_rev
        else:
            out = [y, y_rev]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, x, mask=None):
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            n = self.forward_layer._n_states * 2
            return outs + [None] * n
        return outs if self.merge_mode is None else out

    def get_config(self) -> dict:
        def ser(layer):
            return {"class_name": type(layer).__name__, "config": layer.get_config()}

        return {
            **super().get_config(),
            "layer": ser(self.forward_layer),
            "merge_mode": self.merge_mode,
            "backward_layer": ser(self.backward_layer),
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)

        def de(c):
            if c is None or isinstance(c, Layer):
                return c
            return get_registered(c["class_name"]).from_config(dict(c["config"]))

        config["layer"] = de(config["layer"])
        config["backward_layer"] = de(config.get("backward_layer"))
        return cls(**config)

    def explain(self) -> str:
        """The wrapped cell's equations and how the two directions combine, as text."""
        merge = self.merge_mode or "none (both outputs returned as a list)"
        return (
            f"Bidirectional (merge_mode={merge}): the forward layer reads x_1 .. x_T, a copy "
            f"with its own weights reads x_T .. x_1"
            + (
                ", and its outputs are reversed back so that step t of both refers to x_t"
                if self.return_sequences
                else ""
            )
            + "; the two outputs are merged.\nForward layer: "
            + self.forward_layer.explain()
        )
