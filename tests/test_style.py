"""The tree stays ruff-clean (the rules are in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed (it comes with the `test` extra: pip install -e '.[test]')",
)
def test_ruff_check_passes():
    paths = [p for p in ("src", "tests", "benchmarks", "examples") if (ROOT / p).exists()]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"
