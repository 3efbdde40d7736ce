"""ember.models: Model (compile / fit / evaluate / predict / save), Sequential, load_model, and
the model families built on them (RBM, Autoencoder, transfer learning helpers). Each name loads
its module on first use."""

from __future__ import annotations

from ember._lazy import lazy_exports

# public name -> module in ember.models that defines it
_WHERE = {
    "Model": "model",
    "Sequential": "sequential",
    "load_model": "saving",
    "save_model": "saving",
    "RBM": "rbm",
    "Autoencoder": "autoencoder",
    "Seq2Seq": "seq2seq",
}

_SUBMODULES = {"model", "sequential", "saving", "rbm", "autoencoder", "transfer", "applications"}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, submodules=_SUBMODULES)


__all__ = ["Model", "Sequential", "load_model", "save_model", "RBM", "Autoencoder", "transfer"]
