"""Every registered experiment runs in quick mode and its claim holds."""

import pytest

from ember.guide.registry import Result, experiments

EXPERIMENTS = experiments()


def test_parts_one_and_two_have_at_least_thirty_experiments():
    assert len([n for n in EXPERIMENTS if n <= 41]) >= 30


@pytest.mark.parametrize("number", sorted(EXPERIMENTS), ids=lambda n: f"q{n}")
def test_experiment_claim_holds_in_quick_mode(number, tmp_path):
    exp = EXPERIMENTS[number]
    result = exp.run(quick=True, out_dir=tmp_path)
    assert isinstance(result, Result)
    result.assert_claim()  # raises ClaimError naming each failed check
    assert result.checks, "an experiment must assert its claim"
    for fig in result.figures:
        assert fig.exists() and fig.suffix == ".png"
        assert fig.resolve().is_relative_to(tmp_path.resolve())  # figures stay in out_dir
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.table) <= 60, "keep the table small: it is shown on the page"
