"""``ember info``: what it reports about the machine and the optional compiled kernels."""

import importlib.util

import numpy as np
import pytest

from ember import cli


def _info(capsys) -> str:
    assert cli.build_parser().parse_args(["info"]).func(None) == 0
    return capsys.readouterr().out


def test_info_names_numpy_and_the_float_type(capsys):
    out = _info(capsys)
    assert f"numpy {np.__version__}" in out
    assert "floatx float32" in out


def test_info_says_when_the_kernels_are_switched_off(capsys, monkeypatch):
    monkeypatch.setenv("EMBER_ACCEL", "0")
    line = _info(capsys).splitlines()[-1]
    assert line.startswith("accel off")


def test_info_says_whether_numba_is_there(capsys, monkeypatch):
    monkeypatch.delenv("EMBER_ACCEL", raising=False)
    line = _info(capsys).splitlines()[-1]
    if importlib.util.find_spec("numba") is None:
        assert "not installed" in line
    else:
        assert line.startswith("accel on (numba ")


@pytest.mark.parametrize("value", ["1", ""])
def test_info_treats_anything_but_zero_as_on(capsys, monkeypatch, value):
    monkeypatch.setenv("EMBER_ACCEL", value)
    line = _info(capsys).splitlines()[-1]
    assert "EMBER_ACCEL=0" not in line
