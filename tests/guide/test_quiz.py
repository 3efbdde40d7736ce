"""The terminal quiz with scripted input and a temporary progress file."""

import json

import pytest

from ember.errors import EmberValueError
from ember.guide import quiz
from ember.guide.questions import QUESTIONS


class Script:
    """Answers prompts from a list; raises EOFError when it runs out (like a closed stdin)."""

    def __init__(self, *answers):
        self.answers, self.prompts = list(answers), []

    def __call__(self, prompt=""):
        self.prompts.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


def progress_with(tmp_path, streaks: dict):
    path = tmp_path / "quiz.json"
    entries = {str(n): {"asked": 1, "known": int(s > 0), "streak": s, "last": None}
               for n, s in streaks.items()}  # fmt: skip
    path.write_text(json.dumps({"version": 1, "questions": entries}))
    return path


def run(tmp_path, script, **kw):
    out = []
    kw.setdefault("progress_path", tmp_path / "quiz.json")
    kw.setdefault("run_experiments", False)
    summary = quiz.run_quiz(input_fn=script, print_fn=out.append, **kw)
    return summary, "\n".join(map(str, out))


def test_answers_are_recorded_and_saved_after_each_question(tmp_path):
    script = Script("a guess", "n", "another", "y", "third", "yes")
    summary, text = run(tmp_path, script, part=1, count=3, seed=1)
    assert summary["asked"] == 3 and summary["known"] == 2
    saved = json.loads((tmp_path / "quiz.json").read_text())["questions"]
    assert sorted(saved) == sorted(str(n) for n in summary["numbers"])
    first, second, third = (saved[str(n)] for n in summary["numbers"])
    assert (first["known"], first["streak"]) == (0, 0)
    assert (second["known"], second["streak"]) == (1, 1)
    assert all(QUESTIONS[n - 1].part == 1 for n in summary["numbers"])
    assert "ember's answer:" in text
    assert QUESTIONS[summary["numbers"][0] - 1].answer[:30] in text.replace("\n  ", " ")
    assert [p for p in tmp_path.iterdir()] == [tmp_path / "quiz.json"]  # no temporary files


def test_next_quiz_asks_first_the_questions_not_yet_known(tmp_path):
    part1 = [q.number for q in QUESTIONS if q.part == 1]
    progress_with(tmp_path, {n: (0 if n in (5, 11) else 2) for n in part1})
    for seed in range(6):
        summary, _ = run(tmp_path, Script("x", "y", "x", "y"), part=1, count=2, seed=seed)
        assert sorted(summary["numbers"]) == [5, 11]
        progress_with(tmp_path, {n: (0 if n in (5, 11) else 2) for n in part1})


def test_never_asked_questions_count_as_not_known(tmp_path):
    known = [q.number for q in QUESTIONS if q.part == 2 and q.number != 30]
    progress_with(tmp_path, {n: 1 for n in known})
    summary, _ = run(tmp_path, Script("x", "n"), part=2, count=1, seed=3)
    assert summary["numbers"] == [30]


def test_a_missed_question_comes_back_before_known_ones(tmp_path):
    part4 = [q.number for q in QUESTIONS if q.part == 4]
    progress_with(tmp_path, {n: 1 for n in part4})
    quiz_path = tmp_path / "quiz.json"
    summary, _ = run(tmp_path, Script("x", "n"), part=4, count=1, seed=0)
    missed = summary["numbers"][0]
    assert json.loads(quiz_path.read_text())["questions"][str(missed)]["streak"] == 0
    again, _ = run(tmp_path, Script("x", "y"), part=4, count=1, seed=99)
    assert again["numbers"] == [missed]


def test_q_or_end_of_input_stops_and_keeps_progress(tmp_path):
    summary, text = run(tmp_path, Script("x", "y", "q"), count=5, seed=0)
    assert summary["asked"] == 1
    saved = json.loads((tmp_path / "quiz.json").read_text())["questions"]
    assert list(saved) == [str(summary["numbers"][0])]
    summary, _ = run(tmp_path, Script("x", "maybe", "n", "x"), count=5, seed=0)
    assert summary["asked"] == 1  # "maybe" was asked again; then stdin closed
    assert "Knew 0 of 1" in _


def test_quiz_shows_the_experiment_result_run_quick_and_cached(tmp_path):
    others = {q.number: 1 for q in QUESTIONS if q.part == 1 and q.number != 7}
    progress_with(tmp_path, others)
    cache = tmp_path / "cache"
    summary, text = run(tmp_path, Script("x", "y"), part=1, count=1, run_experiments=True,
                        cache_dir=cache)  # fmt: skip
    assert summary["numbers"] == [7]
    assert "What ember's experiment shows:" in text and "the claim held" in text
    assert (cache / "q7" / "quick" / "result.json").exists()


def test_progress_path_from_the_environment(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere" / "p.json"
    monkeypatch.setenv(quiz.PROGRESS_ENV, str(target))
    assert quiz.default_progress_path() == target
    summary = quiz.run_quiz(count=1, seed=0, input_fn=Script("x", "y"), print_fn=lambda *a: None,
                            run_experiments=False)  # fmt: skip
    assert summary["progress_path"] == str(target) and target.exists()


def test_a_damaged_progress_file_is_a_fresh_start(tmp_path):
    (tmp_path / "quiz.json").write_text("{oops")
    summary, _ = run(tmp_path, Script("x", "y"), count=1, seed=0)
    assert summary["asked"] == 1
    assert len(json.loads((tmp_path / "quiz.json").read_text())["questions"]) == 1


def test_bad_part_is_refused(tmp_path):
    with pytest.raises(EmberValueError, match="part"):
        run(tmp_path, Script(), part=5)
