"""Figures without a display: matplotlib's Agg canvas (no pyplot, no window, safe in threads and
on servers), for ``History.plot``, ``LRFinderResult.plot``, ``Tuner.plot`` and the guide.

matplotlib is the ``plot`` extra: it is imported here, when a figure is first asked for.
"""

from __future__ import annotations

import os


def new_figure(who: str, ncols: int = 1, nrows: int = 1, size=(4.0, 3.2), panels=None):
    """A Figure on the Agg canvas and its first ``panels`` axes (default all of the grid) as a
    flat list; ``size`` is one panel's size in inches. ``who`` names the caller in the error
    raised when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"{who} needs matplotlib: pip install 'ember[plot]'") from None
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    count = ncols * nrows if panels is None else panels
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(count)]


def save_figure(fig, path, dpi: int = 100) -> str:
    """Write ``fig`` to ``path`` (PNG, SVG or PDF by extension), making its folder; the path."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
