"""ember.plotting: headless figures and saving them."""

import sys

import pytest

from ember import plotting


def test_a_figure_has_the_panels_asked_for(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    fig, axes = plotting.new_figure("test", ncols=3, nrows=2, size=(2, 1), panels=4)
    assert len(axes) == 4
    assert tuple(fig.get_size_inches()) == (6.0, 2.0)
    path = plotting.save_figure(fig, tmp_path / "new" / "folder" / "f.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_is_named_with_the_caller(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(ImportError, match=r"History\.plot needs matplotlib.*ember\[plot\]"):
        plotting.new_figure("History.plot")
