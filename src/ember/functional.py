"""ember.functional (``F``): stateless functions over ops, PyTorch's ``torch.nn.functional`` in
spirit. Each name loads the ops module that defines it on first use."""

from __future__ import annotations

from ember._lazy import lazy_exports
from ember.ops import (  # noqa: F401  (re-exported)
    elu,
    gelu,
    hard_sigmoid,
    leaky_relu,
    log_softmax,
    relu,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    swish,
    tanh,
)

# name -> ops module that defines it (heavy fused ops, loaded on first use)
_WHERE = {
    "conv2d": "conv",
    "max_pool2d": "pool", "avg_pool2d": "pool",
    "global_avg_pool2d": "pool", "global_max_pool2d": "pool",
    "batch_norm": "norm", "dropout": "norm",
    "embedding": "embedding",
    "simple_rnn": "recurrent", "lstm": "recurrent", "gru": "recurrent",
    "cross_entropy": "loss", "sparse_softmax_cross_entropy": "loss",
    "softmax_cross_entropy": "loss", "binary_cross_entropy": "loss",
    "binary_cross_entropy_with_logits": "loss", "mse_loss": "loss",
    "l1_loss": "loss", "huber_loss": "loss",
    "linear": "linalg",
}  # fmt: skip


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, package="ember.ops")
