"""Model builders a newcomer starts from: ``mlp``, ``lenet5``, ``small_resnet`` and
``text_classifier``. Each returns an uncompiled model with sensible defaults (as Keras's
applications do); compile it with the loss its docstring names:

    model = ember.applications.lenet5((8, 8, 1), num_classes=10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

Skip connections (ResNet) are a ``ResidualBlock`` layer holding its own sublayers: it is
registered, so models that use it save and load like any other.
"""

from __future__ import annotations

from ember.errors import EmberTypeError, EmberValueError
from ember.layers.base import Layer, check_positive_int, register

__all__ = ["mlp", "lenet5", "small_resnet", "text_classifier", "ResidualBlock"]


def _shape(who: str, input_shape, ndim: int | None = None) -> tuple:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise EmberTypeError(
            f"{who}: input_shape must be a tuple of ints (no batch axis), received {input_shape!r}"
        ) from None
    if any(s <= 0 for s in shape) or (ndim is not None and len(shape) != ndim):
        want = f"{ndim} positive ints" if ndim else "positive ints"
        raise EmberValueError(
            f"{who}: input_shape must be {want} (no batch axis), received {input_shape!r}"
        )
    return shape


def _head(num_classes: int, who: str):
    """softmax over num_classes (sparse_categorical_crossentropy), or one sigmoid unit for
    num_classes=1 (binary_crossentropy)."""
    from ember import layers

    num_classes = check_positive_int(who, "num_classes", num_classes)
    if num_classes == 1:
        return layers.Dense(1, activation="sigmoid")
    return layers.Dense(num_classes, activation="softmax")


# ---------------------------------------------------------------------------------- MLP
def mlp(
    input_shape=(64,),
    num_classes: int = 10,
    hidden=(128, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    name: str | None = None,
):
    """A multilayer perceptron: [Dense -> (BatchNorm) -> activation -> (Dropout)] per hidden
    size, then a softmax head (one sigmoid unit when ``num_classes=1``). Inputs of more than
    one axis (images) are flattened first.

    Loss: ``sparse_categorical_crossentropy`` (``binary_crossentropy`` for one class).
    """
    import ember as em
    from ember import layers

    shape = _shape("mlp", input_shape)
    hidden = [check_positive_int("mlp", "hidden", h) for h in hidden]
    if not 0 <= dropout < 1:
        raise EmberValueError(f"mlp: dropout must be in [0, 1), received dropout={dropout!r}")
    model = em.Sequential([layers.Input(shape)], name=name)
    if len(shape) > 1:
        model.add(layers.Flatten())
    for units in hidden:
        if batch_norm:
            # the bias is redundant before a batch norm (its beta plays that role)
            model.add(layers.Dense(units, use_bias=False))
            model.add(layers.BatchNormalization())
            model.add(layers.Activation(activation))
        else:
            model.add(layers.Dense(units, activation=activation))
        if dropout:
            model.add(layers.Dropout(dropout))
    model.add(_head(num_classes, "mlp"))
    return model


# ---------------------------------------------------------------------------------- LeNet-5
def lenet5(
    input_shape=(28, 28, 1),
    num_classes: int = 10,
    activation: str = "relu",
    name: str | None = None,
):
    """LeNet-5 (LeCun et al., 1998) in its common modern form: Conv(6, 5x5, same) -> AvgPool ->
    Conv(16, 5x5) -> AvgPool -> Dense(120) -> Dense(84) -> softmax. The second convolution
    keeps its input size ("same") when the image is too small for a "valid" 5x5 (e.g. the
    8x8 digits); on 28x28 inputs it is the original "valid" one (10x10x16 out).

    Loss: ``sparse_categorical_crossentropy``.
    """
    import ember as em
    from ember import layers

    h, w, c = _shape("lenet5", input_shape, ndim=3)
    if min(h, w) < 4:
        raise EmberValueError(
            f"lenet5: images must be at least 4x4 (two 2x2 poolings), received {input_shape!r}"
        )
    second = "valid" if min(h, w) // 2 >= 6 else "same"  # a valid 5x5, then a 2x2 pool
    return em.Sequential(
        [
            layers.Input((h, w, c)),
            layers.Conv2D(6, 5, padding="same", activation=activation),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, padding=second, activation=activation),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation=activation),
            layers.Dense(84, activation=activation),
            _head(num_classes, "lenet5"),
        ],
        name=name,
    )


# ---------------------------------------------------------------------------------- ResNet
@register
class ResidualBlock(Layer):
    """The basic block of a ResNet (He et al., 2016): ``relu(F(x) + shortcut(x))`` with
    ``F = conv3x3 -> BN -> relu -> conv3x3 -> BN``; the shortcut is the identity, or a 1x1
    convolution + BN when the stride or the number of channels changes.

    Args:
        filters: output channels.
        strides: stride of the first convolution (2 halves the image).
        name, trainable, dtype: as for every Layer.
    """

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        from ember import layers

        self.filters = check_positive_int(self.name, "filters", filters)
        self.strides = check_positive_int(self.name, "strides", strides)
        self.conv1 = layers.Conv2D(
            filters, 3, strides=strides, padding="same", use_bias=False,
            kernel_initializer="he_normal",
        )  # fmt: skip
        self.bn1 = layers.BatchNormalization()
        self.conv2 = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal"
        )
        self.bn2 = layers.BatchNormalization()
        self.projection = None
        self.projection_bn = None

    def build(self, input_shape) -> None:
        from ember import layers

        if input_shape[-1] != self.filters or self.strides != 1:
            self.projection = layers.Conv2D(
                self.filters, 1, strides=self.strides, use_bias=False,
                kernel_initializer="he_normal",
            )  # fmt: skip
            self.projection_bn = layers.BatchNormalization()

    def check_input(self, shape: tuple) -> None:
        from ember.errors import ShapeError

        if len(shape) != 4:
            raise ShapeError(
                f"{self.name}: expected a 4-D input (batch, height, width, channels), "
                f"received an input of shape {tuple(shape)}"
            )

    def call(self, x, training=None):
        y = self.bn1(self.conv1(x)).relu()
        y = self.bn2(self.conv2(y))
        shortcut = x if self.projection is None else self.projection_bn(self.projection(x))
        return (y + shortcut).relu()

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def small_resnet(
    input_shape=(32, 32, 3),
    num_classes: int = 10,
    filters=(16, 32, 64),
    blocks_per_stage: int = 2,
    name: str | None = None,
):
    """A small ResNet for little images (the CIFAR ResNet family of He et al.): a 3x3 stem
    (conv -> BN -> relu), then one stage of ``blocks_per_stage`` ResidualBlocks per entry of
    ``filters`` (each stage after the first halves the image), global average pooling and a
    softmax head. With the defaults it is ResNet-14 (about 0.17M weights).

    Loss: ``sparse_categorical_crossentropy``.
    """
    import ember as em
    from ember import layers

    h, w, c = _shape("small_resnet", input_shape, ndim=3)
    filters = [check_positive_int("small_resnet", "filters", f) for f in filters]
    if not filters:
        raise EmberValueError("small_resnet: filters must name at least one stage")
    blocks = check_positive_int("small_resnet", "blocks_per_stage", blocks_per_stage)
    model = em.Sequential(
        [
            layers.Input((h, w, c)),
            layers.Conv2D(
                filters[0], 3, padding="same", use_bias=False, kernel_initializer="he_normal"
            ),  # fmt: skip
            layers.BatchNormalization(),
            layers.Activation("relu"),
        ],
        name=name,
    )
    for stage, f in enumerate(filters):
        for b in range(blocks):
            model.add(ResidualBlock(f, strides=2 if stage > 0 and b == 0 else 1))
    model.add(layers.GlobalAveragePooling2D())
    model.add(_head(num_classes, "small_resnet"))
    return model


# ---------------------------------------------------------------------------------- text
def text_classifier(
    vocab_size: int,
    num_classes: int = 2,
    sequence_length: int | None = None,
    embedding_dim: int = 64,
    units: int = 64,
    cell: str = "lstm",
    bidirectional: bool = False,
    dropout: float = 0.0,
    mask_zero: bool = True,
    name: str | None = None,
):
    """Embedding -> LSTM or GRU (optionally bidirectional) -> (Dropout) -> softmax head, for
    token-id sequences (e.g. from ``ember.data.text.TextVectorization``). Id 0 is padding and
    is masked out by default, so padded steps do not reach the recurrent state.

    Loss: ``sparse_categorical_crossentropy`` (one sigmoid unit and ``binary_crossentropy``
    with ``num_classes=1``).
    """
    import numpy as np

    import ember as em
    from ember import layers

    vocab_size = check_positive_int("text_classifier", "vocab_size", vocab_size)
    if cell not in ("lstm", "gru"):
        raise EmberValueError(
            f"text_classifier: cell must be 'lstm' or 'gru', received cell={cell!r}"
        )
    if not 0 <= dropout < 1:
        raise EmberValueError(
            f"text_classifier: dropout must be in [0, 1), received dropout={dropout!r}"
        )
    rnn = (layers.LSTM if cell == "lstm" else layers.GRU)(units)
    stack = []
    if sequence_length is not None:
        length = check_positive_int("text_classifier", "sequence_length", sequence_length)
        stack.append(layers.Input((length,), dtype=np.int64))
    stack.append(layers.Embedding(vocab_size, embedding_dim, mask_zero=mask_zero))
    stack.append(layers.Bidirectional(rnn) if bidirectional else rnn)
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(_head(num_classes, "text_classifier"))
    return em.Sequential(stack, name=name)
