"""``import ember`` stays light: it loads NumPy and the autograd core, nothing heavy, and every
other public name loads its module only when first asked for. Checked on ``sys.modules`` in a
fresh interpreter (never on wall-clock time: see benchmarks/import_time.py for that)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ember
import ember.functional
import ember.layers

SRC = Path(ember.__file__).resolve().parent

HEAVY_THIRD_PARTY = [
    "torch", "scipy", "matplotlib", "sklearn", "optuna", "PIL", "tensorboardX", "tensorboard",
    "mpi4py", "pandas", "tqdm",
]  # fmt: skip

# ember modules that must wait until used: layers and models, the fused ops, training, data, ...
HEAVY_EMBER = [
    "ember.layers", "ember.models", "ember.functional", "ember.ops.conv", "ember.ops.pool",
    "ember.ops.norm", "ember.ops.embedding", "ember.ops.recurrent", "ember.ops.loss",
    "ember.losses", "ember.optimizers", "ember.metrics", "ember.callbacks", "ember.training",
    "ember.data", "ember.datasets", "ember.tuning", "ember.distributed", "ember.guide",
    "ember.cli", "ember.applications", "ember.initializers", "ember.activations",
]  # fmt: skip


# the core ops load with ember (Tensor's methods need them); F.linear lives there
CORE_OPS = {f"ember.ops.{m}" for m in ("math", "reduce", "shape", "linalg", "activation")}


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def modules_after_import() -> set:
    return set(_run("import json, sys, ember; print(json.dumps(sorted(sys.modules)))"))


def _loaded(modules: set, name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


@pytest.mark.parametrize("name", HEAVY_THIRD_PARTY)
def test_import_ember_does_not_import_heavy_dependencies(modules_after_import, name):
    assert not _loaded(modules_after_import, name), f"import ember imported {name}"


@pytest.mark.parametrize("name", HEAVY_EMBER)
def test_import_ember_does_not_import_heavy_ember_modules(modules_after_import, name):
    assert not _loaded(modules_after_import, name), f"import ember imported {name}"


def test_import_ember_loads_the_core(modules_after_import):
    assert {"numpy", "ember.autograd", "ember.ops", "ember.backend"} <= modules_after_import


# --------------------------------------------------------------------------- lazy names
def _module_file_exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def _lazy_names() -> list:
    """(owner module, name, defining module) for every lazily exported name whose module has
    been written (the others arrive with later parts of ember)."""
    rows = [("ember", n, f"ember.{m}") for n, m in ember._LAZY.items()]
    rows += [("ember.layers", n, f"ember.layers.{m}") for n, m in ember.layers._WHERE.items()]
    rows += [("ember.functional", n, f"ember.ops.{m}") for n, m in ember.functional._WHERE.items()]
    return [r for r in rows if _module_file_exists(r[2])]


LAZY = _lazy_names()

_PROBE = """
import importlib, json, sys
import ember
before = set(sys.modules)
rows = json.loads(sys.argv[1])
result = {}
for owner, name, module in rows:
    try:
        getattr(importlib.import_module(owner), name)
        ok = True
    except Exception as exc:
        ok = f"{type(exc).__name__}: {exc}"
    result[f"{owner}.{name}"] = {"loaded_at_import": module in before, "resolved": ok,
                                 "loaded_after": module in sys.modules}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def lazy_probe() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(LAZY)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("owner,name,module", LAZY, ids=[f"{o}.{n}" for o, n, _ in LAZY])
def test_lazy_name_resolves_on_first_use_only(lazy_probe, owner, name, module):
    row = lazy_probe[f"{owner}.{name}"]
    assert row["resolved"] is True, row["resolved"]
    if module not in CORE_OPS:
        assert not row["loaded_at_import"], f"{module} was imported by `import ember`"
    assert row["loaded_after"]


def test_core_names_resolve_without_extra_imports():
    found = _run(
        "import json, sys, ember\n"
        "before = set(sys.modules)\n"
        "import ember.ops\n"
        "ok = [ember.ops.relu is ember.functional.relu, callable(ember.ops.matmul),\n"
        "      ember.Tensor is ember.autograd.Tensor, callable(ember.gradcheck)]\n"
        "print(json.dumps({'ok': ok, 'new': sorted(set(sys.modules) - before)}))"
    )
    assert found["ok"] == [True, True, True, True]
    # ember.functional itself is light: it loads nothing beyond the core ops
    assert found["new"] == ["ember.functional"]


def test_a_name_that_does_not_exist_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        ember.layers.NotAThing  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'not_a_thing'"):
        ember.not_a_thing  # noqa: B018


def test_lazy_names_and_submodules_are_listed_by_dir_and_load_on_use():
    import ember.data

    assert {"Sequential", "layers", "Tensor"} <= set(dir(ember))
    assert {"DirectoryIterator", "image"} <= set(dir(ember.data))  # a name and a submodule
    assert ember.data.image.__name__ == "ember.data.image"
    assert ember.data.DirectoryIterator is ember.data.image.DirectoryIterator
