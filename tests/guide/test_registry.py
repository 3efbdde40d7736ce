"""The experiment registry: Result checks, registration rules, seeding, errors and the cache."""

import json

import numpy as np
import pytest

import ember as em
from ember.errors import EmberTypeError, EmberValueError
from ember.guide import registry
from ember.guide.registry import ClaimError, Result, experiment


@pytest.fixture
def empty_registry(monkeypatch):
    """A registry of its own, so the fake experiments below never meet the real ones."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", ())
    return registry._REGISTRY


def test_result_passes_only_when_every_check_holds():
    r = Result()
    assert not r.passed  # no check: nothing was shown
    assert r.check("first", True) is True
    assert r.passed
    assert r.check("second", 1 > 2, "1 vs 2") is False
    assert not r.passed
    with pytest.raises(ClaimError, match="second.*1 vs 2"):
        r.assert_claim()


def test_result_with_error_does_not_pass_and_says_why():
    r = Result(error="Traceback ...\nZeroDivisionError: boom")
    r.check("held", True)
    assert not r.passed
    with pytest.raises(ClaimError, match="failed to run"):
        r.assert_claim()


def test_format_table_aligns_columns_and_formats_numbers():
    r = Result(table=[{"name": "a", "value": 0.5}, {"name": "longer", "value": 12345678.0}])
    lines = r.format_table().splitlines()
    assert lines[0].split() == ["name", "value"]
    assert len({len(line) for line in lines}) == 1  # every line has the same width
    assert "1.235e+07" in lines[3] and "0.5" in lines[2]


def test_to_dict_round_trips_through_json(tmp_path):
    r = Result(table=[{"x": np.float32(1.5), "n": np.int64(3)}], values={"inf": float("inf")})
    r.figures.append(tmp_path / "f.png")
    r.check("ok", np.bool_(True), "detail")
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.table == [{"x": 1.5, "n": 3}]
    assert back.values == {"inf": "inf"}
    assert back.figures == [tmp_path / "f.png"]
    assert back.passed and back.checks[0].detail == "detail"


def test_experiment_number_must_be_in_range(empty_registry):
    with pytest.raises(EmberValueError, match="1-75"):
        experiment(76, claim="x")
    with pytest.raises(EmberValueError, match="claim"):
        experiment(3, claim="  ")


def test_two_functions_cannot_claim_one_question(empty_registry):
    @experiment(3, claim="first")
    def a(quick, out_dir):
        return Result()

    with pytest.raises(EmberValueError, match="already registered"):

        @experiment(3, claim="second")
        def b(quick, out_dir):
            return Result()


def test_run_seeds_ember_restores_floatx_and_fills_the_result(empty_registry, tmp_path):
    seen = {}

    @experiment(12, claim="draws   from the seeded generator")
    def draw(quick, out_dir):
        seen["floatx"] = em.floatx()
        seen["draw"] = em.backend.rng().random()
        em.set_floatx("float64")  # the registry puts it back
        r = Result()
        r.check("ran", True)
        return r

    em.set_floatx("float64")
    result = draw.experiment.run(quick=True, out_dir=tmp_path)
    assert em.floatx() == "float64"
    assert seen["floatx"] == "float32"
    assert seen["draw"] == np.random.default_rng(12).random()  # seeded with the number
    assert (result.number, result.quick, result.passed) == (12, True, True)
    assert result.claim == "draws from the seeded generator"
    assert "def draw(quick, out_dir):" in draw.experiment.source


def test_run_reports_errors_when_asked_and_raises_otherwise(empty_registry, tmp_path):
    @experiment(20, claim="breaks")
    def broken(quick, out_dir):
        raise ZeroDivisionError("boom")

    @experiment(21, claim="returns the wrong type")
    def wrong(quick, out_dir):
        return {"table": []}

    with pytest.raises(ZeroDivisionError):
        broken.experiment.run(out_dir=tmp_path)
    result = broken.experiment.run(out_dir=tmp_path, catch=True)
    assert not result.passed and "ZeroDivisionError: boom" in result.error
    with pytest.raises(EmberTypeError, match="must return"):
        wrong.experiment.run(out_dir=tmp_path)


def test_a_missing_figure_fails_the_claim(empty_registry, tmp_path):
    @experiment(30, claim="names a figure it never wrote")
    def liar(quick, out_dir):
        r = Result(figures=[out_dir / "absent.png"])
        r.check("ran", True)
        return r

    result = liar.experiment.run(out_dir=tmp_path)
    assert not result.passed
    assert "missing" in result.failed_checks()[0].detail


def test_run_cached_reuses_a_result_of_the_same_code(empty_registry, tmp_path):
    calls = []

    @experiment(40, claim="counts its runs")
    def counted(quick, out_dir):
        calls.append(quick)
        r = Result(values={"runs": len(calls)})
        r.check("ran", True)
        return r

    first = registry.run_cached(40, quick=True, cache_dir=tmp_path)
    second = registry.run_cached(40, quick=True, cache_dir=tmp_path)
    assert calls == [True]
    assert second.values == first.values == {"runs": 1}
    registry.run_cached(40, quick=False, cache_dir=tmp_path)  # another mode: another entry
    assert calls == [True, False]
    (tmp_path / "q40" / "quick" / "result.json").write_text("{not json")
    registry.run_cached(40, quick=True, cache_dir=tmp_path)  # a damaged entry is recomputed
    assert calls == [True, False, True]
    assert registry.run_cached(41, cache_dir=tmp_path) is None  # no experiment there


def test_write_json_atomic_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "deep" / "state.json"
    registry.write_json_atomic(path, {"a": 1})
    registry.write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_get_experiment_validates_the_number():
    with pytest.raises(EmberValueError, match="1-75"):
        registry.get_experiment(0)
    assert registry.get_experiment(26) is None  # an opinion question: no experiment
    assert registry.get_experiment(17).number == 17
