"""ember.datasets: small real data sets read from local files, and synthetic tasks.

Nothing downloads. Every loader returns ``(x_train, y_train), (x_test, y_test)`` with the
dtypes and shapes its docstring states; splits are fixed by a seed, so every run agrees.

- ``digits()``: scikit-learn's bundled 8x8 digits (needs scikit-learn).
- ``mnist(path)``: MNIST from the original IDX files (gzipped or not) or a Keras-style ``.npz``.
- ``sentiment_sentences(path)``: the UCI "Sentiment Labelled Sentences" folder.
- ``spirals``, ``xor``, ``adding_problem``, ``copy_task``, ``imbalanced``: synthetic tasks.
"""

from __future__ import annotations

from ember._lazy import lazy_exports

_WHERE = {
    "digits": "real",
    "mnist": "real",
    "sentiment_sentences": "real",
    "read_idx": "real",
    "spirals": "synthetic",
    "xor": "synthetic",
    "adding_problem": "synthetic",
    "copy_task": "synthetic",
    "imbalanced": "synthetic",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = sorted(_WHERE)
