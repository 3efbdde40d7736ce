"""Parts 3 and 4 of the guide (questions 42-75): enough experiments, and the code paths that the
parametrized claim test (test_experiments.py) does not reach on this machine: the text
experiment without ../shared data, and the data-parallel experiment without MPI."""

import importlib.util
from pathlib import Path

from ember.guide.questions import QUESTIONS
from ember.guide.registry import experiments

EXPERIMENTS = experiments()
PARTS_3_4 = [n for n in EXPERIMENTS if n >= 42]


def test_parts_three_and_four_have_at_least_twenty_five_experiments():
    assert len(PARTS_3_4) >= 25, PARTS_3_4


def test_every_part_three_and_four_experiment_belongs_to_its_question_and_module():
    parts = {q.number: q.part for q in QUESTIONS}
    for n in PARTS_3_4:
        exp = EXPERIMENTS[n]
        module = exp.fn.__module__.rsplit(".", 1)[-1]
        assert module == f"part{parts[n]}", (n, module)
        assert exp.claim.endswith(".") and len(exp.claim) > 40, n


def test_text_preparation_claim_holds_with_the_builtin_corpus(tmp_path, monkeypatch):
    # without ../shared/data/sentiment the experiment falls back to its own sentences
    real_is_dir = Path.is_dir
    monkeypatch.setattr(
        Path, "is_dir", lambda self: False if self.name == "sentiment" else real_is_dir(self)
    )
    result = EXPERIMENTS[44].run(quick=True, out_dir=tmp_path)
    assert result.notes.startswith("source: built-in corpus")
    result.assert_claim()


def test_data_parallel_claim_holds_with_simulated_replicas_when_mpi4py_is_missing(
    tmp_path, monkeypatch
):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "mpi4py" else real_find_spec(name, *args),
    )
    result = EXPERIMENTS[75].run(quick=True, out_dir=tmp_path)
    assert result.values["mode"] == "simulated in one process"
    assert "mpi4py or mpiexec is not installed" in result.notes
    result.assert_claim()
