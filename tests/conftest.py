"""Shared fixtures: every test starts from the same seed and float32, whatever ran before."""

from pathlib import Path

import numpy as np
import pytest

import ember as em

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _fresh_state():
    em.set_seed(0)
    em.set_floatx("float32")
    yield
    em.set_floatx("float32")


@pytest.fixture
def float64():
    em.set_floatx("float64")
    yield
    em.set_floatx("float32")


@pytest.fixture
def one_blas_thread():
    """Train small models on one BLAS thread: with two, OpenBLAS's threads fight other work for
    the 2 cores and a run gets several times slower (threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_data(*parts) -> Path:
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (../shared is absent on this machine)")
    return path
