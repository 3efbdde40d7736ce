"""Embedding: integer ids -> dense vectors (a learned lookup table)."""

from __future__ import annotations

from ember import initializers, regularizers
from ember.autograd import Tensor
from ember.layers.base import Layer, check_positive_int, register
from ember.ops.embedding import embedding


@register
class Embedding(Layer):
    """Maps integer ids of any shape to vectors: (batch, ...) -> (batch, ..., output_dim).

    Pretrained vectors: ``Embedding(V, D, embeddings_initializer=Constant(matrix))`` or
    ``set_weights([matrix])`` after building (add ``trainable=False`` to freeze them).

    Args:
        input_dim: the vocabulary size; ids must lie in [0, input_dim).
        output_dim: the vector size.
        embeddings_initializer: initializer of the (input_dim, output_dim) table (Keras's
            default: uniform in [-0.05, 0.05]).
        mask_zero: whether id 0 is padding: ``compute_mask`` then gives ``ids != 0`` for the
            layers downstream (recurrent layers skip masked steps).
        embeddings_regularizer: a regularizer penalizing the table, or None.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        mask_zero: bool = False,
        embeddings_regularizer=None,
        **kwargs,
    ):
        kwargs.pop("input_length", None)  # Keras 2 argument, no longer needed
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(self.name, "input_dim", input_dim)
        self.output_dim = check_positive_int(self.name, "output_dim", output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.embeddings = None

    def build(self, input_shape) -> None:
        self.embeddings = self.add_weight(
            "embeddings",
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
        )

    def call(self, x, training=None):
        return embedding(x, self.embeddings, name=self.name)

    def compute_mask(self, x, mask=None):
        if not self.mask_zero:
            return None
        ids = x.data if isinstance(x, Tensor) else x
        return Tensor(ids != 0)

    def compute_output_shape(self, input_shape) -> tuple:
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
        }
