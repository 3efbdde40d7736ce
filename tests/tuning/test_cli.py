"""ember tune CONFIG.toml (ember.tuning.cli and ember.tuning.config), end to end."""

import csv
import json
import re

import pytest

from ember.cli import main
from ember.tuning.config import ConfigError, build_space, make_tuner
from ember.tuning.space import Float, Int

optuna = pytest.importorskip("optuna", reason="Optuna (the tune extra) is not installed")

TINY = """
[search]
method = "{method}"
objective = "val_accuracy"
max_trials = {max_trials}
seed = 0
pruner = "none"

[data]
dataset = "xor"
options = {{ n_samples = 200 }}
validation_split = 0.25

[model]
family = "mlp"

[fit]
epochs = 2
batch_size = 32

[space]
units = [4, 8]
activation = ["relu", "tanh"]
learning_rate = {{ type = "float", low = 0.01, high = 0.1, step = 0.09 }}
optimizer = "adam"
"""


def write(tmp_path, text, name="tune.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_ember_tune_runs_a_config_and_writes_results_best_and_plot(tmp_path, capsys):
    cfg = write(tmp_path, TINY.format(method="random", max_trials=3))
    out = tmp_path / "out"
    assert main(["tune", cfg, "--out", str(out)]) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert {r["state"] for r in rows} == {"COMPLETE"}
    assert all(r["units"] in ("4", "8") and r["optimizer"] == "adam" for r in rows)
    best = json.loads((out / "best.json").read_text())
    assert best["val_accuracy"] == max(float(r["val_accuracy"]) for r in rows)
    assert set(best["params"]) == {"units", "activation", "learning_rate", "optimizer"}
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"
    shown = capsys.readouterr().out
    assert "[tune]   3/3 trial" in shown  # the progress display
    assert "ember tune: wrote results.csv, best.json, trials.png" in shown


def test_ember_tune_grid_runs_the_product_of_the_choices(tmp_path):
    cfg = write(tmp_path, TINY.format(method="grid", max_trials=100))
    out = tmp_path / "out"
    assert main(["tune", cfg, "--out", str(out), "--quiet", "--no-plot"]) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    # units 2 x activation 2 x learning_rate {0.01, 0.1} 2 x optimizer 1
    assert len(rows) == 8
    assert len({(r["units"], r["activation"], r["learning_rate"]) for r in rows}) == 8
    assert not (out / "trials.png").exists()


def test_command_line_options_override_the_config(tmp_path):
    cfg = write(tmp_path, TINY.format(method="random", max_trials=5))
    url = f"sqlite:///{tmp_path / 's.db'}"
    common = ["tune", cfg, "--out", str(tmp_path / "o"), "-q", "--storage", url,
              "--study-name", "xor"]  # fmt: skip
    assert main([*common, "--max-trials", "2"]) == 0
    assert main([*common, "--max-trials", "3"]) == 0  # a second run continues the study
    study = optuna.load_study(study_name="xor", storage=url)
    assert len(study.trials) == 3


@pytest.mark.parametrize(
    "edit, match",
    [
        (('method = "random"', 'method = "annealing"'), "method must be 'grid', 'random'"),
        (('family = "mlp"', 'family = "transformer"'), "family must be one of"),
        (('dataset = "xor"', 'dataset = "imagenet"'), "dataset must be"),
        (("units = [4, 8]", 'units = { type = "int", low = 4 }'), r"\[space\] units"),
        (("units = [4, 8]", 'units = { type = "range" }'), "type must be one of"),
        (("seed = 0", 'seed = 0\nsampler = "tpe"'), "sampler is for method = 'bayesian'"),
        (("[fit]", "[fitting]"), "unknown key"),
    ],
)
def test_bad_configs_exit_2_with_the_key_named(tmp_path, capsys, edit, match):
    text = TINY.format(method="random", max_trials=2).replace(*edit)
    assert main(["tune", write(tmp_path, text), "--out", str(tmp_path / "o")]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_not_toml_and_missing_files_are_config_errors(tmp_path, capsys):
    assert main(["tune", write(tmp_path, "[search\nmethod=")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["tune", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the config" in capsys.readouterr().err


def test_space_tables_become_parameters_in_order():
    space = build_space(
        {
            "opt": ["adam", "sgd"],
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"opt": "sgd"}},
            "units": {"type": "int", "low": 8, "high": 64, "step": 8},
        }
    )
    assert list(space) == ["opt", "lr", "momentum", "units"]
    assert repr(space.params["lr"]) == repr(Float(1e-4, 1e-1, log=True))
    assert repr(space.params["units"]) == repr(Int(8, 64, step=8))
    assert space.params["momentum"].when == {"opt": ("sgd",)}
    with pytest.raises(ConfigError, match="unknown key"):
        build_space({"lr": {"type": "float", "low": 0, "high": 1, "lgo": True}})


def test_validation_test_uses_the_test_split_as_validation_data():
    config = {
        "search": {"method": "random", "max_trials": 1},
        "data": {"dataset": "xor", "validation": "test", "options": {"n_samples": 100}},
        "space": {"units": [4]},
    }
    tuner, x, y, fit_kwargs = make_tuner(config)
    xv, yv = fit_kwargs["validation_data"]
    assert len(x) + len(xv) == 100 and "validation_split" not in fit_kwargs
    assert tuner.method == "random"
