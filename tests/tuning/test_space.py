"""ember.tuning.space: parameter kinds, conditions, grids."""

import itertools

import pytest

from ember.errors import EmberTypeError, EmberValueError
from ember.tuning.space import Choice, Fixed, Float, Int, SearchSpace

optuna = pytest.importorskip("optuna", reason="Optuna (the tune extra) is not installed")


def test_grid_is_the_product_of_every_parameters_values():
    space = SearchSpace({"a": [1, 2], "b": Choice(["x", "y", "z"]), "c": Int(0, 4, step=2)})
    combos = list(space.grid())
    assert space.grid_size() == 2 * 3 * 3
    expected = [dict(zip("abc", t)) for t in itertools.product([1, 2], "xyz", [0, 2, 4])]
    assert combos == expected


def test_float_grid_uses_decimal_steps():
    # 0.1 * 3 must be 0.3, not 0.30000000000000004
    assert Float(0.0, 0.3, step=0.1).grid("d") == [0.0, 0.1, 0.2, 0.3]
    assert Float(1e-3, 3e-3, step=1e-3).grid("d") == [0.001, 0.002, 0.003]


def test_continuous_float_has_no_grid_and_says_which_parameter():
    with pytest.raises(EmberValueError, match=r"'lr' is a continuous Float.*step="):
        SearchSpace({"lr": Float(1e-4, 1e-1, log=True)}).grid_size()


def test_conditional_grid_counts_each_branch_with_its_own_parameters():
    space = SearchSpace(
        {
            "optimizer": ["adam", "sgd"],
            "momentum": Choice([0.0, 0.9], when={"optimizer": "sgd"}),
            "units": [4, 8],
        }
    )
    combos = list(space.grid())
    # adam: 2 (units); sgd: 2 (momentum) x 2 (units) -> 6, not 2 * 2 * 2 = 8
    assert space.grid_size() == 6
    assert len(combos) == 6
    assert {"optimizer": "adam", "units": 4} in combos
    assert {"optimizer": "sgd", "momentum": 0.9, "units": 8} in combos
    assert all(("momentum" in c) == (c["optimizer"] == "sgd") for c in combos)


def test_when_accepts_a_list_of_values_and_several_parents():
    p = Int(1, 3, when={"opt": ["sgd", "rmsprop"], "deep": True})
    assert p.active({"opt": "rmsprop", "deep": True})
    assert not p.active({"opt": "adam", "deep": True})
    assert not p.active({"opt": "sgd", "deep": False})
    assert not p.active({"opt": "sgd"})  # parent inactive -> child inactive


def test_condition_on_a_later_or_unknown_parameter_is_refused():
    with pytest.raises(EmberValueError, match="'b' is later in the space"):
        SearchSpace({"a": Int(1, 2, when={"b": 1}), "b": [1, 2]})
    with pytest.raises(EmberValueError, match="'zz' is not in the space"):
        SearchSpace({"a": Int(1, 2, when={"zz": 1})})


def test_suggest_asks_optuna_only_for_active_parameters():
    space = SearchSpace(
        {
            "opt": ["adam", "sgd"],
            "momentum": Float(0.0, 0.9, when={"opt": "sgd"}),
            "lr": Float(1e-4, 1e-1, log=True),
            "units": Int(8, 64, step=8),
            "epochs": 3,
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        params = space.suggest(trial)
        assert set(trial.params) == set(params) - {"epochs"}  # a Fixed is not searched
        assert ("momentum" in params) == (params["opt"] == "sgd")
        assert 1e-4 <= params["lr"] <= 1e-1
        assert params["units"] in range(8, 65, 8)
        assert params["epochs"] == 3
        seen.add(params["opt"])
        study.tell(trial, 0.0)
    assert seen == {"adam", "sgd"}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Choice([]), "non-empty list"),
        (lambda: Choice("abc"), "non-empty list"),
        (lambda: Choice([(32, 64)]), "encode it as a string"),
        (lambda: Choice([1, 1]), "distinct"),
        (lambda: Int(5, 1), "high must be >= low"),
        (lambda: Int(1, 10, step=4), "multiple of step"),
        (lambda: Int(0, 8, log=True), "log=True needs low >= 1"),
        (lambda: Int(1.5, 3), "low must be an int"),
        (lambda: Float(0.0, 1.0, log=True), "log=True needs low > 0"),
        (lambda: Float(1e-3, 1.0, log=True, step=0.1), "not both"),
        (lambda: Float(0, float("inf")), "finite"),
        (lambda: Fixed([1]), "value must be"),
        (lambda: Int(1, 2, when={}), "non-empty dict"),
        (lambda: SearchSpace({}), "non-empty dict"),
        (lambda: SearchSpace({"a": object()}), "must be a Choice, Int, Float"),
    ],
)
def test_bad_parameters_get_clear_errors(make, match):
    with pytest.raises((EmberValueError, EmberTypeError), match=match):
        make()


def test_repr_names_the_configuration():
    assert repr(Float(1e-3, 0.1, log=True)) == "Float(0.001, 0.1, log=True)"
    assert repr(Int(1, 9, step=2, when={"a": "x"})) == "Int(1, 9, step=2, when={'a': 'x'})"
