"""Switches that change how ops record: gradient recording on/off and anomaly detection."""

from __future__ import annotations

import contextlib

_state = {"grad": True, "anomaly": False}


def is_grad_enabled() -> bool:
    return _state["grad"]


@contextlib.contextmanager
def _set(key: str, value: bool):
    old = _state[key]
    _state[key] = value
    try:
        yield
    finally:
        _state[key] = old


def no_grad():
    """Context in which ops record no graph (inference, weight updates)."""
    return _set("grad", False)


def enable_grad():
    """Context that turns recording back on inside ``no_grad``."""
    return _set("grad", True)


def detect_anomaly():
    """Context that checks every op's forward output and backward gradients for NaN/Inf and
    raises ``AnomalyError`` naming the first op that produced one."""
    return _set("anomaly", True)
