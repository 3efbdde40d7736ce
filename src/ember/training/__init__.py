"""ember.training: the fit loop (data adapters, train/test steps), History, the progress display,
the learning-rate range test and the ``ember train`` command. Names load on first use."""

from __future__ import annotations

from ember._lazy import lazy_exports

_WHERE = {
    "History": "history",
    "ProgressLogger": "progress",
    "LRFinderResult": "lr_finder",
    "lr_find": "lr_finder",
    "adapt": "data_adapter",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = list(_WHERE)
