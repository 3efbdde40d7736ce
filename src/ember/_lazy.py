"""Names that load their module on first use (PEP 562), for ember's package modules.

``import ember`` stays cheap because a package lists its public names with the module that
defines each, and imports that module only when the name is first asked for.
"""

from __future__ import annotations

import importlib
import sys


def lazy_exports(module: str, where: dict, package: str | None = None, submodules=frozenset()):
    """``__getattr__`` and ``__dir__`` for ``module``.

    A name in ``where`` is read from ``<package>.<where[name]>`` (``package`` defaults to
    ``module``) when first asked for; a name in ``submodules`` is the submodule
    ``<module>.<name>``; anything else raises AttributeError as a module would.
    """
    base = package or module

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(f"{base}.{where[name]}"), name)
        if name in submodules:
            return importlib.import_module(f"{module}.{name}")
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[module])) | set(where) | set(submodules))

    return __getattr__, __dir__
