"""The experiment registry: one runnable experiment per question, its claim stated as checks.

An experiment is a function ``run(quick: bool, out_dir: Path) -> Result`` registered with
``@experiment(number, claim="...")``. It builds what it needs from ember's public API, writes
its figures (PNG) into ``out_dir``, and returns a ``Result``: a small table (a list of dicts,
one per row), the figure paths, the measured values, and one ``check`` per part of the claim.
``Experiment.run`` seeds ember, times the run (with BLAS on one thread: the arrays are small),
keeps the float dtype as it found it and fills in the number and the claim; ``Result.passed``
says whether every check held.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import os
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ember.errors import EmberTypeError, EmberValueError

# the modules that hold experiments, imported by ``load_all`` (a missing one is skipped: the
# experiments of parts 3 and 4 are written separately)
EXPERIMENT_MODULES = ("part1", "part2", "part3", "part4")

_REGISTRY: dict[int, Experiment] = {}


class ClaimError(AssertionError):
    """An experiment's claim did not hold: the message lists the failed checks."""


# ---------------------------------------------------------------------------------- Result
@dataclass
class Check:
    """One part of a claim: what was asserted, whether it held, and the numbers behind it."""

    description: str
    passed: bool
    detail: str = ""


@dataclass
class Result:
    """What an experiment produced.

    Args:
        table: rows of the experiment's small table, each a dict column -> value (numbers,
            strings or booleans); every row should have the same keys.
        figures: paths of the PNG figures it wrote (inside its ``out_dir``).
        values: the measured numbers the checks are made of, by name.
        notes: free text shown under the table (e.g. a layer's ``explain()``).
    """

    table: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    notes: str = ""
    checks: list = field(default_factory=list)
    # filled in by Experiment.run
    number: int = 0
    claim: str = ""
    quick: bool = False
    seconds: float = 0.0
    error: str | None = None

    def check(self, description: str, condition, detail: str = "") -> bool:
        """Record one part of the claim; returns whether it held."""
        ok = bool(condition)
        self.checks.append(Check(str(description), ok, str(detail)))
        return ok

    @property
    def passed(self) -> bool:
        """True when the experiment ran and every check (at least one) held."""
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    def failed_checks(self) -> list:
        return [c for c in self.checks if not c.passed]

    def assert_claim(self) -> None:
        """Raise ``ClaimError`` naming every failed check (or the error) unless the claim held."""
        if self.passed:
            return
        if self.error is not None:
            raise ClaimError(f"q{self.number}: the experiment failed to run:\n{self.error}")
        if not self.checks:
            raise ClaimError(f"q{self.number}: the experiment recorded no check of its claim")
        lines = [f"q{self.number}: claim did not hold: {self.claim}"]
        lines += [f"  FAILED {c.description} ({c.detail})" for c in self.failed_checks()]
        raise ClaimError("\n".join(lines))

    # ------------------------------------------------------------------ text and JSON
    def columns(self) -> list:
        cols: list = []
        for row in self.table:
            cols += [k for k in row if k not in cols]
        return cols

    def format_table(self, max_rows: int | None = None) -> str:
        """The table as aligned text columns (for the terminal)."""
        if not self.table:
            return "(no table)"
        cols = self.columns()
        rows = self.table if max_rows is None else self.table[:max_rows]
        cells = [[format_value(r.get(c, "")) for c in cols] for r in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
        out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        out.append("  ".join("-" * w for w in widths))
        out += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        if max_rows is not None and len(self.table) > max_rows:
            out.append(f"... {len(self.table) - max_rows} more rows")
        return "\n".join(out)

    def format_checks(self) -> str:
        lines = []
        for c in self.checks:
            mark = "held  " if c.passed else "FAILED"
            lines.append(f"  [{mark}] {c.description}" + (f" ({c.detail})" if c.detail else ""))
        if self.error:
            lines.append("  [ERROR ] " + self.error.strip().splitlines()[-1])
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-friendly form (figure paths as strings, NumPy scalars as Python numbers)."""
        d = dataclasses.asdict(self)
        d["figures"] = [str(p) for p in self.figures]
        d["table"] = [{k: _plain(v) for k, v in row.items()} for row in self.table]
        d["values"] = {k: _plain(v) for k, v in self.values.items()}
        d["passed"] = self.passed
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["checks"] = [Check(**c) for c in d.get("checks", [])]
        kw["figures"] = [Path(p) for p in d.get("figures", [])]
        return cls(**kw)


def _plain(v):
    """NumPy scalars and arrays to Python values; non-finite floats to strings (JSON has none)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def format_value(v) -> str:
    """A table cell: floats with four significant digits, the rest as str."""
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


# ---------------------------------------------------------------------------------- figures
def new_figure(ncols: int = 1, nrows: int = 1, size: tuple = (4.0, 3.2)):
    """A Figure on the Agg canvas and its axes as a flat list (``ember.plotting.new_figure``);
    ``size`` is the size of one panel in inches."""
    from ember import plotting

    return plotting.new_figure("the guide's figures", ncols, nrows, size)


def save_figure(fig, out_dir, name: str, dpi: int = 80) -> Path:
    """Write ``fig`` as ``out_dir/name`` (PNG) and return the path."""
    from ember import plotting

    path = Path(out_dir) / (name if name.endswith(".png") else name + ".png")
    return Path(plotting.save_figure(fig, path, dpi=dpi))


# ---------------------------------------------------------------------------------- Experiment
@dataclass(frozen=True)
class Experiment:
    """A registered experiment: the question's number, its claim and the function that runs it."""

    number: int
    claim: str
    fn: Callable
    helpers: tuple = ()

    @property
    def question(self):
        from ember.guide.questions import get

        return get(self.number)

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def source(self) -> str:
        """The experiment's code (and that of the helpers it names), as a reader sees it."""
        parts = [textwrap.dedent(inspect.getsource(self.fn))]
        parts += [textwrap.dedent(inspect.getsource(h)) for h in self.helpers]
        return "\n\n".join(p.rstrip() for p in parts) + "\n"

    def cache_key(self, quick: bool) -> str:
        import ember

        text = f"{ember.__version__}|{quick}|{self.claim}|{self.source}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run(self, quick: bool = False, out_dir=None, catch: bool = False) -> Result:
        """Run the experiment (seeded by its number) into ``out_dir`` (a fresh temporary folder
        when None). With ``catch=True`` an exception becomes ``Result.error`` instead of
        propagating, so a site build goes on."""
        import ember as em

        out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="ember-"))
        out_dir.mkdir(parents=True, exist_ok=True)
        floatx = em.floatx()
        em.set_seed(self.number)
        em.set_floatx("float32")
        start = time.perf_counter()
        try:
            with _one_blas_thread():
                result = self.fn(bool(quick), out_dir)
            if not isinstance(result, Result):
                raise EmberTypeError(
                    f"guide experiment q{self.number} ({self.name}) must return a "
                    f"ember.guide.Result, returned {type(result).__name__}"
                )
        except Exception:
            if not catch:
                raise
            result = Result(error=traceback.format_exc())
        finally:
            em.set_floatx(floatx)
        result.seconds = time.perf_counter() - start
        result.number, result.claim, result.quick = self.number, self.claim, bool(quick)
        result.figures = [Path(p) for p in result.figures]
        missing = [str(p) for p in result.figures if not Path(p).exists()]
        if missing and result.error is None:
            result.check("every figure was written", False, f"missing: {missing}")
        return result


def _one_blas_thread():
    """The experiments' arrays are small: BLAS threads only add overhead there, and on a busy
    machine they make a run several times slower. threadpoolctl, when installed, limits BLAS
    to one thread for the run."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def experiment(number: int, claim: str, *, helpers: tuple = ()):
    """Register ``fn(quick, out_dir) -> Result`` as the experiment of question ``number``.

    Args:
        number: the question (1-75).
        claim: what the experiment shows, as a sentence its checks assert.
        helpers: functions it calls whose code the site should show next to its own.
    """
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 75:
        raise EmberValueError(f"experiment: number must be an int in 1-75, received {number!r}")
    if not isinstance(claim, str) or not claim.strip():
        raise EmberValueError(f"experiment q{number}: claim must be a non-empty sentence")

    def register(fn):
        old = _REGISTRY.get(number)
        if old is not None and old.fn.__qualname__ != fn.__qualname__:
            raise EmberValueError(
                f"experiment q{number}: already registered by {old.fn.__module__}."
                f"{old.name}; received {fn.__module__}.{fn.__name__}"
            )
        _REGISTRY[number] = Experiment(number, " ".join(claim.split()), fn, tuple(helpers))
        fn.experiment = _REGISTRY[number]
        return fn

    return register


def load_all() -> dict:
    """Import every experiment module (parts 1-4; one not written yet is skipped)."""
    for module in EXPERIMENT_MODULES:
        name = f"ember.guide.experiments.{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return dict(sorted(_REGISTRY.items()))


def experiments() -> dict:
    """Every registered experiment, number -> Experiment, in question order."""
    return load_all()


def get_experiment(number: int) -> Experiment | None:
    """The experiment of question ``number``, or None when that question has none."""
    from ember.guide.questions import get

    get(number)  # validates the number
    return load_all().get(int(number))


def run_cached(number: int, quick: bool = True, cache_dir=None) -> Result | None:
    """Run question ``number``'s experiment, or reuse the result saved in ``cache_dir`` by an
    earlier run of the same code (and figures still there). None when it has no experiment."""
    exp = get_experiment(number)
    if exp is None:
        return None
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache_dir / f"q{number}" / ("quick" if quick else "full")
    record = folder / "result.json"
    key = exp.cache_key(quick)
    if record.exists():
        try:
            saved = json.loads(record.read_text())
            result = Result.from_dict(saved["result"])
            if saved.get("key") == key and all(Path(p).exists() for p in result.figures):
                return result
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is simply recomputed
    result = exp.run(quick=quick, out_dir=folder, catch=True)
    write_json_atomic(record, {"key": key, "result": result.to_dict()})
    return result


def default_cache_dir() -> Path:
    return Path(os.environ.get("EMBER_GUIDE_CACHE", Path.home() / ".ember" / "guide-cache"))


def write_json_atomic(path, data) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder and ``os.replace``, so
    a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
