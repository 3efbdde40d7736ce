"""ember.tuning.tuner: the search methods, failures, pruning, resumption, results."""

import csv
import itertools

import pytest

import ember as em
from ember.errors import EmberTypeError, EmberValueError
from ember.tuning import (
    BayesianOptimization,
    Choice,
    Float,
    GridSearch,
    Int,
    RandomSearch,
)

from .conftest import dense_model

optuna = pytest.importorskip("optuna", reason="Optuna (the tune extra) is not installed")

FIT = {"epochs": 3, "batch_size": 32, "validation_split": 0.25}


def build(params):
    return dense_model(**params)


# ------------------------------------------------------------------ the search methods
def test_grid_search_runs_every_combination_once(blobs):
    space = {"units": [4, 8], "learning_rate": [0.01, 0.05, 0.1], "optimizer": ["adam", "sgd"]}
    tuner = GridSearch(build, space, seed=0, verbose=0).search(*blobs, **FIT)
    rows = tuner.results
    assert len(rows) == 2 * 3 * 2
    combos = {(r["params"]["units"], r["params"]["learning_rate"], r["params"]["optimizer"])
              for r in rows}  # fmt: skip
    assert combos == set(itertools.product([4, 8], [0.01, 0.05, 0.1], ["adam", "sgd"]))
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)


def test_grid_search_over_a_conditional_space_counts_each_branch(blobs):
    space = {
        "optimizer": ["adam", "sgd"],
        "momentum": Choice([0.0, 0.9], when={"optimizer": "sgd"}),
        "units": [4, 8],
    }
    tuner = GridSearch(build, space, seed=0, pruner=None, verbose=0)
    assert tuner.grid_size == 6  # adam x 2 units + sgd x 2 momenta x 2 units
    rows = tuner.search(*blobs, **FIT).results
    assert len(rows) == 6
    assert len({tuple(sorted(r["params"].items())) for r in rows}) == 6
    assert all(("momentum" in r["params"]) == (r["params"]["optimizer"] == "sgd") for r in rows)


def test_grid_search_refuses_a_continuous_float():
    with pytest.raises(EmberValueError, match="'learning_rate' is a continuous Float"):
        GridSearch(build, {"learning_rate": Float(1e-3, 1e-1, log=True)})


def test_grid_search_max_trials_runs_part_of_the_grid(blobs):
    tuner = GridSearch(build, {"units": [2, 4, 8, 16]}, max_trials=2, seed=0, verbose=0)
    rows = tuner.search(*blobs, **FIT).results
    assert len(rows) == 2
    assert len({r["params"]["units"] for r in rows}) == 2


def test_random_search_draws_what_optunas_random_sampler_draws(blobs):
    space = {"units": Int(2, 16), "learning_rate": Float(1e-3, 1e-1, log=True)}
    tuner = RandomSearch(build, space, max_trials=5, seed=3, pruner=None, verbose=0)
    got = [r["params"] for r in tuner.search(*blobs, **FIT).results]
    # the oracle: Optuna alone, the same seed, the same suggest calls
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    want = []
    for _ in range(5):
        t = study.ask()
        want.append(
            {"units": t.suggest_int("units", 2, 16), "learning_rate":
             t.suggest_float("learning_rate", 1e-3, 1e-1, log=True)}
        )  # fmt: skip
        study.tell(t, 0.0)
    assert got == want


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_bayesian_optimization_runs_its_budget_and_is_reproducible(blobs, sampler):
    if sampler == "gp":
        pytest.importorskip("torch", reason="Optuna's GP sampler needs torch")
    space = {"units": Int(2, 16), "learning_rate": Float(1e-3, 3e-1, log=True)}

    def run():
        t = BayesianOptimization(build, space, max_trials=5, seed=0, sampler=sampler,
                                 n_startup_trials=3, pruner=None, verbose=0)  # fmt: skip
        return t.search(*blobs, **FIT)

    a, b = run(), run()
    assert len(a.results) == 5
    assert [r["params"] for r in a.results] == [r["params"] for r in b.results]
    assert [r["objective"] for r in a.results] == [r["objective"] for r in b.results]
    assert a.best_value == min(r["objective"] for r in a.results)


def test_conditional_parameters_reach_build_model_only_when_active(blobs):
    seen = []

    def build_checked(params):
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        seen.append(params["optimizer"])
        return dense_model(**params)

    space = {
        "optimizer": ["adam", "sgd"],
        "momentum": Float(0.0, 0.9, when={"optimizer": "sgd"}),
        "learning_rate": Float(1e-2, 1e-1, log=True),
    }
    tuner = BayesianOptimization(build_checked, space, max_trials=10, seed=1,
                                 n_startup_trials=4, pruner=None, verbose=0)  # fmt: skip
    rows = tuner.search(*blobs, **FIT).results
    assert [r["state"] for r in rows] == ["COMPLETE"] * 10
    assert set(seen) == {"adam", "sgd"}
    assert all(("momentum" in r["params"]) == (r["params"]["optimizer"] == "sgd") for r in rows)


# ------------------------------------------------------------------ objective and direction
@pytest.mark.parametrize(
    "objective, direction, want",
    [
        ("val_loss", "auto", "min"),
        ("loss", "auto", "min"),
        ("val_accuracy", "auto", "max"),
        ("val_auc", "auto", "max"),
        ("val_accuracy", "min", "min"),
        ("val_loss", "maximize", "max"),
    ],
)
def test_direction_follows_the_objective_name_unless_given(objective, direction, want):
    t = RandomSearch(build, {"units": [4]}, objective=objective, direction=direction)
    assert t.direction == want
    assert t.study.direction.name == {"min": "MINIMIZE", "max": "MAXIMIZE"}[want]


def test_maximized_objective_picks_the_largest_value(blobs):
    tuner = GridSearch(build, {"learning_rate": [1e-4, 0.05]}, objective="val_accuracy",
                       pruner=None, verbose=0).search(*blobs, **FIT)  # fmt: skip
    values = [r["objective"] for r in tuner.results]
    assert tuner.best_value == max(values)
    assert tuner.best_params == {"learning_rate": 0.05}


def test_an_objective_missing_from_the_logs_stops_the_search_with_the_reason(blobs):
    tuner = RandomSearch(build, {"units": [4, 8]}, objective="val_loss", max_trials=3, verbose=0)
    with pytest.raises(EmberValueError, match=r"'val_loss' is not in the logs.*validation_split"):
        tuner.search(*blobs, epochs=1)  # no validation data
    assert [r["state"] for r in tuner.results] == ["FAIL"]


def test_build_model_must_return_a_compiled_model(blobs):
    tuner = RandomSearch(lambda p: object(), {"units": [4]}, max_trials=2, verbose=0)
    with pytest.raises(EmberTypeError, match="must return a compiled Model"):
        tuner.search(*blobs, **FIT)


# ------------------------------------------------------------------ failures and pruning
def test_a_trial_that_raises_is_recorded_failed_and_the_search_goes_on(blobs):
    def build_some_fail(params):
        if params["units"] == 8:
            raise RuntimeError("no 8s today")
        return dense_model(**params)

    tuner = GridSearch(build_some_fail, {"units": [4, 8, 16]}, pruner=None, verbose=0)
    rows = {r["params"]["units"]: r for r in tuner.search(*blobs, **FIT).results}
    assert rows[8]["state"] == "FAIL"
    assert rows[8]["error"] == "RuntimeError: no 8s today"
    assert rows[8]["objective"] is None
    assert rows[4]["state"] == rows[16]["state"] == "COMPLETE"
    assert tuner.best_params["units"] in (4, 16)


def test_a_nan_objective_is_recorded_failed_and_training_stops(blobs):
    ce = em.losses.SparseCategoricalCrossentropy()

    def build_poison(params):
        if params["poison"]:
            return dense_model(loss=lambda yt, yp: ce(yt, yp) * float("nan"))
        return dense_model()

    tuner = GridSearch(build_poison, {"poison": [False, True]}, pruner=None, verbose=0)
    rows = {r["params"]["poison"]: r for r in tuner.search(*blobs, **FIT).results}
    assert rows[True]["state"] == "FAIL"
    assert "NaN" in rows[True]["error"]
    assert rows[True]["epochs"] == 1  # stopped at the first NaN, not after 3 epochs
    assert rows[False]["state"] == "COMPLETE" and rows[False]["epochs"] == 3


def test_a_clearly_bad_configuration_is_pruned_early(blobs):
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    tuner = RandomSearch(build, {"learning_rate": Choice([0.05, 0.0])}, max_trials=4,
                         pruner=pruner, seed=0, verbose=0)  # fmt: skip
    for lr in (0.05, 0.05, 0.05, 0.0):  # three good trials, then one that cannot learn
        tuner.enqueue({"learning_rate": lr})
    rows = tuner.search(*blobs, epochs=5, batch_size=16, validation_split=0.25).results
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 + ["PRUNED"]
    assert [r["epochs"] for r in rows] == [5, 5, 5, 1]
    assert rows[3]["params"] == {"learning_rate": 0.0}
    assert tuner.best_params == {"learning_rate": 0.05}


def test_pruner_none_lets_every_trial_finish(blobs):
    tuner = RandomSearch(build, {"learning_rate": Choice([0.05, 0.0])}, max_trials=7,
                         pruner=None, seed=0, verbose=0)  # fmt: skip
    rows = tuner.search(*blobs, **FIT).results
    assert {r["state"] for r in rows} == {"COMPLETE"}


# ------------------------------------------------------------------ resumption
def test_a_new_tuner_on_the_same_storage_continues_the_study(blobs, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"units": Int(2, 16), "learning_rate": Float(1e-2, 1e-1, log=True)}
    first = RandomSearch(build, space, max_trials=3, seed=0, storage=url, verbose=0)
    first_rows = first.search(*blobs, **FIT).results
    assert len(first_rows) == 3

    again = RandomSearch(build, space, max_trials=3, seed=0, storage=url, verbose=0)
    assert again.search(*blobs, **FIT).results == first_rows  # the budget is already spent

    more = RandomSearch(build, space, max_trials=5, seed=0, storage=url, verbose=0)
    rows = more.search(*blobs, **FIT).results
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[:3] == first_rows


def test_a_trial_stopped_by_ctrl_c_runs_again_with_its_parameters_and_seed(blobs, tmp_path):
    calls = {"n": 0}

    def build_interrupted_once(params):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return dense_model(**params)

    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"units": Int(2, 16), "learning_rate": Float(1e-2, 1e-1, log=True)}
    kw = dict(max_trials=3, seed=0, storage=url, pruner=None, verbose=0)
    tuner = RandomSearch(build_interrupted_once, space, **kw)
    with pytest.raises(KeyboardInterrupt):
        tuner.search(*blobs, **FIT)
    rows = tuner.results
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL"]
    assert rows[1]["error"].startswith("interrupted")

    rows = RandomSearch(build_interrupted_once, space, **kw).search(*blobs, **FIT).results
    done = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(done) == 3  # the interrupted trial does not use up the budget
    retry = [r for r in rows if r["retry_of"] == 1]
    assert len(retry) == 1 and retry[0]["state"] == "COMPLETE"
    assert retry[0]["params"] == rows[1]["params"]


def test_a_study_with_another_objective_is_not_mixed_in(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    RandomSearch(build, {"units": [4]}, objective="val_loss", storage=url).study  # noqa: B018
    with pytest.raises(EmberValueError, match="use another study_name"):
        RandomSearch(build, {"units": [4]}, objective="loss", storage=url).study  # noqa: B018


# ------------------------------------------------------------------ results and best model
def test_results_table_csv_and_plot_list_every_trial(blobs, tmp_path):
    tuner = GridSearch(build, {"units": [4, 8]}, pruner=None, verbose=0).search(*blobs, **FIT)
    rows = tuner.results
    assert {"trial", "state", "objective", "epochs", "seconds", "params", "error"} <= set(rows[0])
    assert all(r["epochs"] == 3 and r["seconds"] >= 0 for r in rows)
    table = tuner.results_table().splitlines()
    assert table[0].split()[:6] == ["trial", "state", "val_loss", "epochs", "seconds", "units"]
    assert len(table) == 2 + 2  # header, rule, one line per trial
    with open(tuner.to_csv(tmp_path / "r.csv")) as f:
        got = list(csv.DictReader(f))
    assert [int(r["units"]) for r in got] == [r["params"]["units"] for r in rows]
    assert [float(r["val_loss"]) for r in got] == [r["objective"] for r in rows]
    png = tuner.plot(tmp_path / "trials.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_best_model_is_the_best_trials_trained_model_and_retraining_reproduces_it(blobs):
    x, y = blobs
    tuner = RandomSearch(build, {"units": Int(2, 16), "learning_rate": Float(1e-2, 1e-1)},
                         max_trials=4, seed=0, pruner=None, verbose=0)  # fmt: skip
    tuner.search(x, y, **FIT)
    xv, yv = x[-len(x) // 4 :], y[-len(y) // 4 :]  # validation_split takes the last quarter
    kept = tuner.best_model()
    loss = kept.evaluate(xv, yv, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(tuner.best_value, rel=1e-6)
    again = tuner.best_model(retrain=True)
    assert again is not kept
    loss = again.evaluate(xv, yv, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(tuner.best_value, rel=1e-6)


def test_objective_epoch_best_scores_the_best_epoch_and_keeps_its_weights(blobs):
    x, y = blobs
    tuner = GridSearch(build, {"learning_rate": [0.3]}, objective_epoch="best", pruner=None,
                       verbose=0)  # fmt: skip
    tuner.search(x, y, epochs=6, batch_size=16, validation_split=0.25)
    model = tuner.best_model()
    per_epoch = model.history.history["val_loss"]
    assert tuner.best_value == min(per_epoch)
    xv, yv = x[-len(x) // 4 :], y[-len(y) // 4 :]
    loss = model.evaluate(xv, yv, batch_size=16, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(min(per_epoch), rel=1e-6)


def test_best_model_of_a_trial_run_elsewhere_needs_the_data(blobs, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    RandomSearch(build, {"units": [4, 8]}, max_trials=2, seed=0, storage=url,
                 verbose=0).search(*blobs, **FIT)  # fmt: skip
    other = RandomSearch(build, {"units": [4, 8]}, max_trials=2, seed=0, storage=url, verbose=0)
    with pytest.raises(EmberValueError, match="did not run in this process"):
        other.best_model()
    other.search(*blobs, **FIT)  # runs no trial, but gives the data
    assert len(other.results) == 2
    model = other.best_model()
    assert model.get_layer(index=0).units == other.best_params["units"]


def test_no_completed_trial_gives_a_clear_error():
    tuner = RandomSearch(build, {"units": [4]})
    with pytest.raises(EmberValueError, match="no trial has completed"):
        tuner.best_params  # noqa: B018


def test_progress_lines_report_each_trial(blobs, capsys):
    GridSearch(build, {"units": [4, 8]}, pruner=None, verbose=1).search(*blobs, **FIT)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[tune] grid search: val_loss (min), 2 trials")
    assert "1/2" in out[1] and "2/2" in out[2] and "COMPLETE" in out[2]
    assert out[-1].startswith("[tune] best: trial")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_trials": 0}, "max_trials must be an int >= 1"),
        ({"seed": -1}, "seed must be None or an int"),
        ({"direction": "up"}, "direction must be"),
        ({"objective_epoch": "first"}, "objective_epoch"),
        ({"objective": ""}, "objective must be"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
    ],
)
def test_bad_tuner_arguments_get_clear_errors(kwargs, match):
    with pytest.raises((EmberValueError, EmberTypeError), match=match):
        RandomSearch(build, {"units": [4]}, **kwargs)


def test_bad_sampler_and_pruner_names_are_refused():
    with pytest.raises(EmberValueError, match="sampler must be"):
        BayesianOptimization(build, {"units": [4]}, sampler="cma")
    with pytest.raises(EmberValueError, match="pruner must be"):
        RandomSearch(build, {"units": [4]}, pruner="sometimes").study  # noqa: B018


def test_a_trial_whose_worker_died_before_starting_it_is_failed(monkeypatch):
    # a worker killed between Optuna's ask and the trial's first step leaves a running trial
    # with no heartbeat and no seed: a waiting worker must fail it instead of waiting forever
    from ember.tuning import tuner as tuner_module

    study = optuna.create_study()
    unstarted = study.ask()
    started = study.ask()
    started.set_user_attr("seed", 7)
    trials = study.get_trials(deepcopy=False)
    assert not tuner_module.Tuner._fail_unstarted(study, trials)  # too young to judge
    monkeypatch.setattr(tuner_module, "_START_GRACE_S", 0.0)
    assert tuner_module.Tuner._fail_unstarted(study, trials)
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {unstarted.number: "FAIL", started.number: "RUNNING"}
