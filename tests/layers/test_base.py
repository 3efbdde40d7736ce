"""The Layer contract (layers/base.py): lazy build, ordered registries, freezing, weights I/O,
mode propagation, configs and counting."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers.base import Layer, get_registered, register, training_mode


class Block(Layer):
    """A layer with a weight of its own and two sublayers, to exercise the registries."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.second = layers.Dense(2)
        self.first = layers.Dense(3)
        self.drop = layers.Dropout(0.5)

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), "ones")

    def call(self, x, training=None):
        return self.second(self.drop(self.first(x * self.scale)))


def test_layers_build_lazily_from_the_first_input():
    d = layers.Dense(4)
    assert not d.built and d.weights == []
    d(np.zeros((2, 7), np.float32))
    assert d.built
    assert [w.shape for w in d.get_weights()] == [(7, 4), (4,)]


def test_weights_are_own_first_then_sublayers_in_attachment_order():
    b = Block()
    b(np.ones((2, 5), np.float32))
    names = [w.name.split("/")[-1] for w in b.weights]
    # own weight, then `second` (attached first) and `first`
    assert names == ["scale", "kernel", "bias", "kernel", "bias"]
    assert [w.shape for w in b.weights] == [(5,), (3, 2), (2,), (5, 3), (3,)]
    assert b.sublayers == [b.second, b.first, b.drop]


def test_reassigning_an_attribute_replaces_the_sublayer_and_lists_register():
    b = Block()
    new = layers.Dense(9)
    b.second = new
    assert b.sublayers == [b.first, b.drop, new]
    b.second = None
    assert new not in b.sublayers

    class Stack(Layer):
        def __init__(self):
            super().__init__()
            self.parts = [layers.Dense(2), layers.Dense(3)]

        def call(self, x, training=None):
            for p in self.parts:
                x = p(x)
            return x

    s = Stack()
    s(np.ones((1, 4), np.float32))
    assert s.sublayers == s.parts
    assert [w.shape for w in s.weights] == [(4, 2), (2,), (2, 3), (3,)]


def test_freezing_turns_off_requires_grad_and_empties_trainable_weights():
    b = Block()
    x = np.ones((2, 5), np.float32)
    b(x)
    b.trainable = False
    assert b.trainable_weights == []
    assert len(b.non_trainable_weights) == len(b.weights) == 5
    assert all(not w.requires_grad for w in b.weights)
    assert not b.first.trainable  # reaches sublayers
    # no graph is recorded for frozen weights: the output needs no gradient at all
    assert not b(x).requires_grad
    b.trainable = True
    assert all(w.requires_grad for w in b.weights)
    out = b(em.tensor(x)).sum()
    out.backward()
    assert b.first.kernel.grad is not None


def test_freezing_a_sublayer_leaves_the_parent_trainable():
    b = Block()
    b(np.ones((2, 5), np.float32))
    b.first.trainable = False
    assert [w.name for w in b.trainable_weights] == [
        w.name for w in b.weights if not w.name.startswith(b.first.name + "/")
    ]
    assert b.first.kernel in b.non_trainable_weights


def test_non_trainable_weights_stay_out_of_trainable_weights():
    bn = layers.BatchNormalization()
    bn(np.ones((4, 3), np.float32))
    assert [w.name.split("/")[-1] for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name.split("/")[-1] for w in bn.non_trainable_weights] == [
        "moving_mean",
        "moving_variance",
    ]
    assert not bn.moving_mean.requires_grad


def test_get_weights_returns_copies_and_set_weights_writes_in_place():
    d = layers.Dense(2)
    d(np.ones((1, 3), np.float32))
    w = d.get_weights()
    w[0][...] = 5
    assert not np.any(d.kernel.data == 5)
    kernel = d.kernel
    d.set_weights([np.full((3, 2), 2.0), np.arange(2.0)])
    assert d.kernel is kernel and d.kernel.dtype == np.float32
    np.testing.assert_array_equal(d.kernel.data, np.full((3, 2), 2.0))
    np.testing.assert_array_equal(d.bias.data, [0, 1])


def test_set_weights_with_wrong_shapes_names_the_layer_and_both_shapes():
    d = layers.Dense(2, name="head")
    d(np.ones((1, 3), np.float32))
    with pytest.raises(ShapeError, match=r"head.*\(3, 2\).*\(2, 3\)"):
        d.set_weights([np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(EmberValueError, match=r"head.*2 arrays.*received 1"):
        d.set_weights([np.zeros((3, 2))])
    # a failed set_weights changes nothing
    before = d.get_weights()
    with pytest.raises(ShapeError):
        d.set_weights([np.ones((3, 2)), np.ones(3)])
    np.testing.assert_array_equal(d.get_weights()[0], before[0])


def test_training_none_follows_the_training_mode_context():
    drop = layers.Dropout(0.5)
    x = np.ones((50, 50), np.float32)
    np.testing.assert_array_equal(drop(x).data, x)  # inference by default
    with training_mode(True):
        assert (drop(x).data == 0).any()
    np.testing.assert_array_equal(drop(x).data, x)


def test_a_parent_called_with_training_true_runs_nested_layers_in_training():
    b = Block()
    x = np.ones((40, 5), np.float32)
    b(x)
    b.second.set_weights([np.eye(3, 2), np.zeros(2)])
    b.first.set_weights([np.ones((5, 3)), np.zeros(3)])
    inference = b(x).data
    trained = b(x, training=True).data  # Block.call passes nothing to its Dropout
    assert not np.allclose(trained, inference)
    np.testing.assert_allclose(b(x, training=False).data, inference)


def test_explicit_train_and_eval_override_the_context_and_reach_sublayers():
    b = Block()
    x = np.ones((40, 5), np.float32)
    b(x)
    reference = b(x).data
    b.train()
    assert b.drop._explicit_training is True
    assert not np.allclose(b(x).data, reference)
    b.eval()
    with training_mode(True):
        np.testing.assert_allclose(b(x).data, reference)
    b.train(None)  # back to following fit
    with training_mode(True):
        assert not np.allclose(b(x).data, reference)


def test_count_params_counts_every_weight_and_needs_a_build():
    bn = layers.BatchNormalization()
    with pytest.raises(EmberValueError, match="not built"):
        bn.count_params()
    bn(np.ones((2, 6), np.float32))
    assert bn.count_params() == 4 * 6
    b = Block()
    b(np.ones((2, 5), np.float32))
    assert b.count_params() == 5 + (5 * 3 + 3) + (3 * 2 + 2)


def test_losses_collect_the_regularizers_of_trainable_weights():
    d = layers.Dense(2, kernel_regularizer=em.regularizers.L2(0.5))
    d(np.ones((1, 3), np.float32))
    d.set_weights([np.full((3, 2), 2.0), np.zeros(2)])
    (penalty,) = d.losses
    assert penalty.item() == pytest.approx(0.5 * 6 * 4.0)
    d.trainable = False
    assert d.losses == []


def test_unknown_keyword_arguments_are_rejected_by_name():
    with pytest.raises(EmberTypeError, match="unitz"):
        layers.Dense(3, unitz=4)


def test_names_are_unique_and_snake_cased():
    a, b = layers.BatchNormalization(), layers.BatchNormalization()
    assert a.name.startswith("batch_normalization") and a.name != b.name


def test_register_makes_a_class_loadable_by_name():
    @register
    class Custom(Layer):
        def call(self, x, training=None):
            return x

    assert get_registered("Custom") is Custom
    assert get_registered("Dense") is layers.Dense
    with pytest.raises(EmberValueError, match="register"):
        get_registered("NoSuchLayer")


def test_default_compute_output_shape_traces_a_batch_of_one():
    class Double(Layer):
        def call(self, x, training=None):
            return em.ops.concatenate([x, x], axis=-1)

    assert Double().compute_output_shape((None, 3, 4)) == (None, 3, 8)
