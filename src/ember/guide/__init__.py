"""ember.guide: the living guide. 75 questions, each with ember's own answer, and for every
question where one can show the claim, an experiment that proves it with ember itself.

Use it
------
- ``ember guide`` builds a static HTML site (``index.html`` + ``q1.html`` .. ``q75.html``, each
  page with an ``id="qN"`` anchor) into a folder it names; ``--quick`` shrinks every experiment.
- ``ember guide 24`` runs one experiment and prints its table, its checks and its figure paths.
- ``ember guide --quiz [--part N]`` asks the questions in the terminal, favouring the ones you
  did not know last time (progress in ``~/.ember/quiz.json``; ``--progress PATH`` or the
  ``EMBER_QUIZ_PROGRESS`` variable move it).
- From Python: ``QUESTIONS``, ``get(n)``, ``PARTS``; ``experiments()``, ``get_experiment(n)``;
  ``build_site(out_dir, quick=...)``; ``run_quiz(...)``; ``model_gradcheck(model, x, y, loss)``.

Writing an experiment (how parts 3 and 4 are added)
---------------------------------------------------
Experiments live in ``ember/guide/experiments/partK.py`` (part 1: questions 1-17, part 2:
18-41, part 3: 42-52, part 4: 53-75); ``registry.load_all`` imports each of those modules, so a
new module needs no other registration. An experiment is one function::

    from pathlib import Path

    import numpy as np

    import ember as em
    from ember.guide.registry import Result, experiment, new_figure, save_figure
    from ember.guide.experiments import common

    @experiment(43, claim="Clipping by norm keeps every update's norm <= 1 while the raw "
                "gradient of an exploding RNN reaches norms above 100.")
    def clipping(quick: bool, out_dir: Path) -> Result:
        steps = 20 if quick else 200          # quick mode: well under a second or two
        ...                                   # only ember's public API
        fig, (ax,) = new_figure()             # matplotlib on the Agg canvas
        ax.semilogy(norms)
        res = Result(table=[{"step": i, "norm": n} for i, n in enumerate(norms)],
                     figures=[save_figure(fig, out_dir, "norms")],
                     values={"max_clipped": max_clipped})
        res.check("clipped updates have norm <= 1", max_clipped <= 1 + 1e-6,
                  f"max {max_clipped:.3g}")
        return res

The rules every experiment keeps:

- Signature ``run(quick: bool, out_dir: Path) -> Result``; write figures only into ``out_dir``
  (PNG via ``new_figure``/``save_figure``), never elsewhere, and download nothing.
- State the claim in the decorator as one sentence, and assert each part of it with
  ``res.check(description, condition, detail)``: the detail shows the measured numbers. A
  result with no check, or with a failed check, does not pass. Checks compare with numbers
  computed independently (a formula, a hand calculation, a baseline): never with numbers
  copied from an earlier run. No wall-clock checks (timings may go in the table).
- ``Experiment.run`` seeds ember with the question's number (``em.set_seed(n)``) and sets float32
  before calling you, so draw randomness from ``em.backend.rng()`` or
  ``np.random.default_rng(seed)`` and the run is reproducible; restore anything else you change.
- Quick mode (``quick=True``, used by the tests and ``--quick``) must still make every check
  hold, in well under two seconds; the full mode may take a few seconds (all 75 in under ten
  minutes). Keep the table small (tens of rows) and figures small (dpi 80 by default).
- Functions the experiment calls whose code a reader should see (a training loop, a data
  builder) are named in ``helpers=(...)``: the site shows their source beside the result.
  Reusable pieces live in ``ember.guide.experiments.common`` (datasets, tiny training loops,
  per-layer statistics, gradient norms).
- ``tests/guide/test_experiments.py`` runs every registered experiment in quick mode and
  asserts its claim, so a new module is tested as soon as it exists.
"""

from __future__ import annotations

from ember._lazy import lazy_exports
from ember.guide.questions import PARTS, QUESTIONS, Question, get

# public name -> module in ember.guide that defines it (loaded on first use, so importing
# ember.guide stays as light as the question list)
_WHERE = {
    "Result": "registry",
    "Check": "registry",
    "ClaimError": "registry",
    "Experiment": "registry",
    "experiment": "registry",
    "experiments": "registry",
    "get_experiment": "registry",
    "run_cached": "registry",
    "new_figure": "registry",
    "save_figure": "registry",
    "build_site": "site",
    "run_quiz": "quiz",
    "model_gradcheck": "gradients",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = ["PARTS", "QUESTIONS", "Question", "get", *_WHERE]
