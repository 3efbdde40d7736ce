"""``ember tune CONFIG.toml``: a search described in a TOML file (model family, space, data,
budget). ``examples/tune_digits.toml`` shows every key; in short::

    [search]   method = "grid" | "random" | "bayesian", objective, max_trials, seed, storage, ...
    [data]     dataset = "digits" | "mnist" | "npz" | "spirals" | "xor", path, limit, validation
    [model]    family = "mlp" | "cnn" | "package.module:function"
    [fit]      epochs, batch_size, ... (Model.fit arguments)
    [space]    name = [choices] | constant | { type = "float", low = ..., high = ..., log = true,
               when = { parent = value } }   (in order: a condition names an earlier parameter)
    [output]   dir = "tune_out"   (results.csv, trials.png, best.json)

Relative paths (data, output, a sqlite file) are relative to the working directory.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from ember.errors import EmberValueError

_SECTIONS = {"search", "data", "model", "fit", "space", "output"}
_SEARCH_KEYS = {
    "method", "sampler", "objective", "direction", "max_trials", "seed", "storage",
    "study_name", "pruner", "n_startup_trials", "objective_epoch", "heartbeat_interval",
    "verbose",
}  # fmt: skip
_DATA_KEYS = {"dataset", "path", "limit", "validation", "validation_split", "options"}
_PARAM_KEYS = {
    "choice": {"values"},
    "int": {"low", "high", "step", "log"},
    "float": {"low", "high", "step", "log"},
    "fixed": {"value"},
}


class ConfigError(EmberValueError):
    """A config file that does not describe a search (the message names the key)."""


def load_toml(path) -> dict:
    """Read a TOML file (``tomllib`` on Python 3.11+, the ``tomli`` package before)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ImportError(
                "ember tune on Python 3.10 needs tomli: pip install 'ember[tune]'"
            ) from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _unknown(where: str, got, allowed) -> None:
    extra = sorted(set(got) - set(allowed))
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def build_space(table: dict, where: str = "[space]"):
    """A ``SearchSpace`` from the ``[space]`` table."""
    from ember.tuning.space import Choice, Fixed, Float, Int, SearchSpace

    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: give at least one parameter, e.g. units = [32, 64]")
    kinds = {"choice": Choice, "int": Int, "float": Float, "fixed": Fixed}
    params: dict[str, Any] = {}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            params[name] = spec  # a list (Choice) or a constant (Fixed)
            continue
        kind = spec.get("type")
        if kind not in kinds:
            raise ConfigError(
                f"{where} {name}: type must be one of {sorted(kinds)}, received {kind!r}"
            )
        args = {k: v for k, v in spec.items() if k != "type"}
        _unknown(f"{where} {name}", args, _PARAM_KEYS[kind] | {"when"})
        try:
            params[name] = kinds[kind](**args)
        except TypeError as exc:
            raise ConfigError(f"{where} {name}: {exc}") from None
        except EmberValueError as exc:
            raise ConfigError(f"{where} {name}: {exc}") from None
    try:
        return SearchSpace(params)
    except (EmberValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_data(table: dict):
    """``(x, y), (x_test, y_test)`` from the ``[data]`` table."""
    import numpy as np

    from ember import datasets

    _unknown("[data]", table, _DATA_KEYS)
    name = table.get("dataset", "digits")
    options = dict(table.get("options", {}))
    path = table.get("path")
    if name in ("mnist", "npz") and not path:
        raise ConfigError(f"[data]: dataset = {name!r} needs path = '...'")
    if name == "npz":
        with np.load(path, allow_pickle=False) as f:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
            if missing:
                raise ConfigError(f"[data] {path}: the npz file lacks {sorted(missing)}")
            train, test = (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
    elif name == "mnist":
        train, test = datasets.mnist(path, **options)
    elif name in ("digits", "spirals", "xor"):
        train, test = getattr(datasets, name)(**options)
    else:
        raise ConfigError(
            f"[data]: dataset must be 'digits', 'mnist', 'npz', 'spirals' or 'xor', "
            f"received {name!r}"
        )
    limit = table.get("limit")
    if limit is not None:
        if not isinstance(limit, int) or limit < 2:
            raise ConfigError(f"[data]: limit must be an int >= 2, received {limit!r}")
        train = (train[0][:limit], train[1][:limit])
    return train, test


def build_model_fn(table: dict, input_shape: tuple, classes: int):
    """``build_model(params)`` from the ``[model]`` table."""
    from ember.tuning.families import FAMILIES

    _unknown("[model]", table, {"family"})
    family = table.get("family", "mlp")
    if family in FAMILIES:
        fn = FAMILIES[family]
        return lambda params: fn(params, input_shape, classes)
    if isinstance(family, str) and ":" in family:
        module, _, attr = family.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"[model]: cannot load family = {family!r}: {exc}") from None
        return fn
    raise ConfigError(
        f"[model]: family must be one of {sorted(FAMILIES)} or 'package.module:function' "
        f"(a build_model(params) -> compiled Model), received {family!r}"
    )


def make_tuner(config: dict, overrides: dict | None = None):
    """The tuner and the ``search`` arguments described by a parsed config.

    Returns ``(tuner, x, y, fit_kwargs)``.
    """
    import numpy as np

    from ember.tuning.tuner import BayesianOptimization, GridSearch, RandomSearch

    _unknown("config", config, _SECTIONS)
    search = {**config.get("search", {}), **(overrides or {})}
    _unknown("[search]", search, _SEARCH_KEYS)
    method = search.pop("method", "bayesian")
    classes_of = {"grid": GridSearch, "random": RandomSearch, "bayesian": BayesianOptimization}
    if method not in classes_of:
        raise ConfigError(
            f"[search]: method must be 'grid', 'random' or 'bayesian', received {method!r}"
        )
    if method != "bayesian":
        for key in ("sampler", "n_startup_trials"):
            if key in search:
                raise ConfigError(f"[search]: {key} is for method = 'bayesian' only")
    space = build_space(config.get("space", {}))
    data = dict(config.get("data", {}))
    (x, y), (xt, yt) = load_data(data)
    classes = int(max(np.max(y), np.max(yt))) + 1
    build = build_model_fn(config.get("model", {}), tuple(x.shape[1:]), classes)
    fit_kwargs = dict(config.get("fit", {}))
    validation = data.get("validation", "split")
    if validation == "test":
        fit_kwargs.setdefault("validation_data", (xt, yt))
    elif validation == "split":
        fit_kwargs.setdefault("validation_split", float(data.get("validation_split", 0.2)))
    elif validation != "none":
        raise ConfigError(
            f"[data]: validation must be 'split', 'test' or 'none', received {validation!r}"
        )
    try:
        tuner = classes_of[method](build, space, **search)
    except TypeError as exc:
        raise ConfigError(f"[search]: {exc}") from None
    return tuner, x, y, fit_kwargs


def run(path, overrides: dict | None = None, out: str | None = None, plot: bool = True) -> int:
    """Run the search a config file describes; write results.csv, best.json and trials.png
    into the output folder. Returns 0 when some trial completed, 1 otherwise."""
    config = load_toml(path)
    output = dict(config.get("output", {}))
    _unknown("[output]", output, {"dir"})
    out = out or output.get("dir", "tune_out")
    tuner, x, y, fit_kwargs = make_tuner(config, overrides)
    tuner.search(x, y, **fit_kwargs)
    os.makedirs(out, exist_ok=True)
    tuner.to_csv(os.path.join(out, "results.csv"))
    if tuner.verbose:
        print(tuner.results_table())
    try:
        best = tuner.best_trial
    except EmberValueError:
        print("ember tune: no trial completed; see the errors in results.csv", file=sys.stderr)
        return 1
    with open(os.path.join(out, "best.json"), "w") as f:
        json.dump(
            {"trial": best["trial"], tuner.objective: best["objective"], "params": best["params"]},
            f,
            indent=2,
        )
    if plot:
        tuner.plot(os.path.join(out, "trials.png"))
    if tuner.verbose:
        files = ["results.csv", "best.json"] + ["trials.png"] * plot
        print(f"ember tune: wrote {', '.join(files)} in {out}")
    return 0
