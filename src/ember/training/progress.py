"""The progress display of fit/evaluate: a live bar per epoch on a terminal (steps, ETA,
running loss and metrics), one line per epoch when output goes to a file or a CI log, nothing at
``verbose=0``."""

from __future__ import annotations

import sys
import time

from ember.callbacks import Callback
from ember.errors import EmberValueError


def resolve_verbose(verbose, stream=None) -> str | None:
    """ "bar", "line" or None (silent) for fit's ``verbose`` ("auto", 0, 1, 2)."""
    if verbose in (0, False, None):
        return None
    if verbose not in ("auto", 1, 2, True):
        raise EmberValueError(f"verbose must be 'auto', 0, 1 or 2, received verbose={verbose!r}")
    if verbose == 2:
        return "line"
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "bar" if tty else "line"


def format_value(v) -> str:
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")) or v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4f}"
    return f"{v:.4e}"


def format_logs(logs: dict) -> str:
    """`` - loss: 0.1234 - accuracy: 0.9500`` (per-layer diagnostics like grad_norm/x left
    out: they belong in TensorBoard, not on one line)."""
    parts = []
    for key, value in (logs or {}).items():
        if "/" in key:
            continue
        try:
            parts.append(f" - {key}: {format_value(value)}")
        except (TypeError, ValueError):
            continue
    return "".join(parts)


def format_time(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}:{s:02d}"
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class ProgressLogger(Callback):
    """Prints fit's (or evaluate's) progress.

    Args:
        mode: "bar" (a live bar redrawn in place, for terminals) or "line" (one line per epoch).
        stream: where to write (default: sys.stdout at the time of writing).
        target: "train" (fit: one bar per epoch), "test" (evaluate) or "predict" (one bar).
        width: the bar's width in characters.
    """

    def __init__(self, mode: str = "bar", stream=None, target: str = "train", width: int = 30):
        super().__init__()
        if mode not in ("bar", "line"):
            raise EmberValueError(
                f"ProgressLogger: mode must be 'bar' or 'line', received mode={mode!r}"
            )
        self.mode = mode
        self._stream = stream
        self.target = target
        self.width = width
        self.min_interval = 0.1  # seconds between redraws
        self._start = 0.0
        self._last_draw = 0.0
        self._seen = 0
        self._drawn = 0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    # ------------------------------------------------------------------ drawing
    def _bar_line(self, seen: int, logs: dict, final: bool) -> str:
        steps = self.params.get("steps")
        elapsed = time.perf_counter() - self._start
        if steps:
            digits = len(str(steps))
            done = min(seen, steps)
            filled = int(self.width * done / steps)
            if done >= steps:
                bar = "=" * self.width
            else:
                bar = "=" * max(0, filled - 1) + ">" + "." * (self.width - max(filled, 1))
            head = f"{seen:>{digits}}/{steps} [{bar}]"
        else:
            head = f"{seen} steps"
        if final or not steps or not seen:
            per_step = elapsed / seen if seen else 0.0
            tail = f" {format_time(elapsed)} {per_step * 1000:.0f}ms/step"
        else:
            tail = f" - ETA: {format_time(elapsed / seen * (steps - seen))}"
        return head + tail + format_logs(logs)

    def _draw(self, seen: int, logs: dict, final: bool = False) -> None:
        line = self._bar_line(seen, logs, final)
        pad = " " * max(0, self._drawn - len(line))
        self._drawn = len(line)
        self._write("\r" + line + pad + ("\n" if final else ""))
        self._last_draw = time.perf_counter()

    # ------------------------------------------------------------------ fit
    def on_epoch_begin(self, epoch, logs=None):
        if self.target != "train":
            return
        self._start = self._last_draw = time.perf_counter()
        self._seen = 0
        self._drawn = 0
        if self.mode == "bar":
            self._write(f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.target != "train":
            return
        self._seen = batch + 1
        if self.mode == "bar":
            now = time.perf_counter()
            steps = self.params.get("steps")
            if now - self._last_draw >= self.min_interval and self._seen != steps:
                self._draw(self._seen, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.target != "train":
            return
        logs = logs or {}
        if self.mode == "bar":
            self._draw(self._seen, logs, final=True)
        else:
            elapsed = time.perf_counter() - self._start
            self._write(
                f"Epoch {epoch + 1}/{self.params.get('epochs', '?')} - {self._seen} steps - "
                f"{format_time(elapsed)}{format_logs(logs)}\n"
            )

    # ------------------------------------------------------------------ evaluate, predict
    def _single_begin(self) -> None:
        self._start = self._last_draw = time.perf_counter()
        self._seen = 0
        self._drawn = 0

    def _single_batch(self, batch: int, logs) -> None:
        self._seen = batch + 1
        if self.mode == "bar" and time.perf_counter() - self._last_draw >= self.min_interval:
            self._draw(self._seen, logs or {})

    def _single_end(self, logs) -> None:
        if self.mode == "bar":
            self._draw(self._seen, logs or {}, final=True)
        else:
            elapsed = time.perf_counter() - self._start
            self._write(f"{self._seen} steps - {format_time(elapsed)}{format_logs(logs)}\n")

    def on_test_begin(self, logs=None):
        if self.target == "test":
            self._single_begin()

    def on_test_batch_end(self, batch, logs=None):
        if self.target == "test":
            self._single_batch(batch, logs)

    def on_test_end(self, logs=None):
        if self.target == "test":
            self._single_end(logs)

    def on_predict_begin(self, logs=None):
        if self.target == "predict":
            self._single_begin()

    def on_predict_batch_end(self, batch, logs=None):
        if self.target == "predict":
            self._single_batch(batch, None)

    def on_predict_end(self, logs=None):
        if self.target == "predict":
            self._single_end(None)
