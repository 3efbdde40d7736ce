"""Configurable: the small base of objects that ``get_config()`` describes as JSON-able
arguments and ``from_config(config)`` rebuilds (initializers, regularizers, losses, learning-rate
schedules). Model files store these configs, never code."""

from __future__ import annotations


class Configurable:
    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
