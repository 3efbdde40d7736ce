"""ember.models: Model (compile / fit / evaluate / predict / save), Sequential, load_model, and
the model families built on them (RBM, Autoencoder, transfer learning helpers). Each name loads
its module on first use."""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ember.models.{_WHERE[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"ember.models.{name}")
    raise AttributeError(f"module 'ember.models' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE) | _SUBMODULES)


__all__ = ["Model", "Sequential", "load_model", "save_model", "RBM", "Autoencoder", "transfer"]
