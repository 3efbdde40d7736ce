"""``ember guide --quiz``: the questions in the terminal, for readers preparing for an exam.

Each round asks a question, waits for the reader's own answer, shows ember's answer and what its
experiment measured (run in quick mode, or reused from the cache), and asks whether the reader
knew it. Progress is a small JSON file (``~/.ember/quiz.json`` by default; ``--progress PATH``
or ``EMBER_QUIZ_PROGRESS`` move it), rewritten atomically after every answer, so the next quiz
asks first the questions not yet known, in random order.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import textwrap
import time
from pathlib import Path

from ember.errors import EmberValueError
from ember.guide.questions import PARTS, QUESTIONS, Question
from ember.guide.registry import write_json_atomic

PROGRESS_ENV = "EMBER_QUIZ_PROGRESS"
VERSION = 1


def default_progress_path() -> Path:
    env = os.environ.get(PROGRESS_ENV)
    return Path(env) if env else Path.home() / ".ember" / "quiz.json"


def load_progress(path) -> dict:
    """The saved progress: ``{"version": 1, "questions": {"24": {"asked", "known", "streak",
    "last"}}}``; an absent or unreadable file is a fresh start."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("questions"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"version": VERSION, "questions": {}}


def save_progress(path, progress: dict) -> None:
    write_json_atomic(path, progress)


def record(progress: dict, number: int, knew: bool) -> None:
    """Count one answer: ``streak`` is how many times in a row the reader knew it."""
    entry = progress["questions"].setdefault(
        str(number), {"asked": 0, "known": 0, "streak": 0, "last": None}
    )
    entry["asked"] += 1
    entry["known"] += int(knew)
    entry["streak"] = entry["streak"] + 1 if knew else 0
    entry["last"] = time.strftime("%Y-%m-%dT%H:%M:%S")


def order(questions: list, progress: dict, rng: random.Random) -> list:
    """Questions in random order, those not yet known first: sorted by how many times in a row
    the reader knew each (0 for never asked or missed last time), ties broken at random."""
    shuffled = list(questions)
    rng.shuffle(shuffled)
    streak = {int(k): v.get("streak", 0) for k, v in progress["questions"].items()}
    return sorted(shuffled, key=lambda q: streak.get(q.number, 0))


def _ask(input_fn, prompt: str) -> str | None:
    try:
        return input_fn(prompt)
    except EOFError:
        return None


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=88, initial_indent=indent, subsequent_indent=indent)


def _experiment_text(number: int, run_experiments: bool, cache_dir) -> str | None:
    from ember.guide.registry import get_experiment, run_cached

    exp = get_experiment(number)
    if exp is None:
        return None
    lines = ["What ember's experiment shows:", _wrap(exp.claim)]
    if not run_experiments:
        return "\n".join(lines + [f"  (run it with: ember guide {number})"])
    result = run_cached(number, quick=True, cache_dir=cache_dir)
    verdict = "the claim held" if result.passed else "the claim did NOT hold"
    lines.append(f"  Measured in quick mode: {verdict}.")
    lines.append(result.format_checks())
    lines.append(textwrap.indent(result.format_table(max_rows=8), "  "))
    lines += [f"  figure: {p}" for p in result.figures]
    return "\n".join(lines)


def run_quiz(
    part: int | None = None,
    count: int | None = 10,
    progress_path=None,
    input_fn=None,
    print_fn=None,
    seed: int | None = None,
    run_experiments: bool = True,
    cache_dir=None,
) -> dict:
    """Ask up to ``count`` questions (of one ``part``, or all) and record the answers.

    Args:
        part: 1-4 to ask only that part's questions, or None for all.
        count: how many questions this round (None: every question of the selection).
        progress_path: the JSON progress file (default ``default_progress_path()``).
        input_fn, print_fn: the terminal (default ``input`` and ``print``, looked up at call
            time; tests pass scripted ones).
        seed: seeds the random order (None: a fresh order every time).
        run_experiments: show each experiment's measured result (run quick, or cached).
        cache_dir: where experiment results are cached (default: next to the progress file).

    Typing ``q`` (or end of input) at any prompt ends the quiz; progress so far is kept.
    Returns a summary ``{"asked": n, "known": k, "numbers": [...], "progress_path": path}``.
    """
    if part is not None and part not in PARTS:
        raise EmberValueError(f"quiz: part must be one of {sorted(PARTS)}, received {part!r}")
    input_fn = input_fn if input_fn is not None else builtins.input
    print_fn = print_fn if print_fn is not None else builtins.print
    path = Path(progress_path) if progress_path is not None else default_progress_path()
    cache_dir = Path(cache_dir) if cache_dir is not None else path.parent / "guide-cache"
    progress = load_progress(path)
    pool: list[Question] = [q for q in QUESTIONS if part is None or q.part == part]
    queue = order(pool, progress, random.Random(seed))
    if count is not None:
        queue = queue[: max(0, int(count))]
    scope = f"part {part} ({PARTS[part]})" if part else "all parts"
    print_fn(f"ember guide quiz: {len(queue)} question(s) from {scope}. Type q to stop.\n")
    asked, known, numbers = 0, 0, []
    for i, q in enumerate(queue, 1):
        print_fn(f"[{i}/{len(queue)}] Q{q.number} (part {q.part}): {q.title}")
        reply = _ask(input_fn, "Your answer (Enter when done): ")
        if reply is None or reply.strip().lower() == "q":
            break
        print_fn("\nember's answer:")
        print_fn(_wrap(q.answer))
        shown = _experiment_text(q.number, run_experiments, cache_dir)
        if shown:
            print_fn("")
            print_fn(shown)
        knew = None
        while knew is None:
            reply = _ask(input_fn, "Did you know it? [y/n] ")
            if reply is None or reply.strip().lower() == "q":
                break
            r = reply.strip().lower()
            knew = True if r in ("y", "yes") else False if r in ("n", "no") else None
        if knew is None:
            break
        record(progress, q.number, knew)
        save_progress(path, progress)  # after every answer: quitting keeps what was done
        asked += 1
        known += int(knew)
        numbers.append(q.number)
        print_fn("")
    entries = progress["questions"]
    mastered = sum(1 for q in pool if entries.get(str(q.number), {}).get("streak", 0) > 0)
    print_fn(
        f"Knew {known} of {asked} this round; {mastered} of {len(pool)} questions in "
        f"{scope} known at the last asking. Progress: {path}"
    )
    return {"asked": asked, "known": known, "numbers": numbers, "progress_path": str(path)}
