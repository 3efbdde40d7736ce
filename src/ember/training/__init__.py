"""ember.training: the fit loop (data adapters, train/test steps), History, the progress display,
the learning-rate range test and the ``ember train`` command. Names load on first use."""

from __future__ import annotations

import importlib

_WHERE = {
    "History": "history",
    "ProgressLogger": "progress",
    "LRFinderResult": "lr_finder",
    "lr_find": "lr_finder",
    "adapt": "data_adapter",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ember.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ember.training' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = list(_WHERE)
