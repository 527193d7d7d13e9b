"""Lazy package exports and registries: naming a package's API must not import all of it.

A package ``__init__`` that imports every submodule makes ``import ivos_rl.strategies.worst`` pay
for torch, Gymnasium and OpenCV (seconds), because Python runs the package ``__init__`` first.
Packages here declare which submodule defines each public name; :func:`lazy_exports` returns the
PEP 562 module hooks that import that submodule on first attribute access::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"worst": ["WorstStrategy"]})

Registries keyed by short names (strategies, backends) find the built-in entries the same way:
:func:`import_submodules` imports a package's public modules, whose decorators register them,
only when a name is looked up and not yet known.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["import_submodules", "lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` from ``{submodule: [public names]}``.

    A resolved name is cached in the package's namespace, so only its first access goes through
    ``__getattr__``. A name listed under two submodules is a programming error (ValueError).
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported by both {where[name]} and {module}")
            where[name] = module

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)


def import_submodules(package: str, skip: Iterable[str] = ()) -> list[str]:
    """Import every public (not ``_``-prefixed) module of ``package`` except ``skip``; their names.

    Used by registries on a lookup miss: the built-in entries register themselves on import, and
    a new file in the package is found without editing a central list.
    """
    pkg = importlib.import_module(package)
    skipped = set(skip)
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(pkg.__path__)
        if not info.name.startswith("_") and info.name not in skipped
    )
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
