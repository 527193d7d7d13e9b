"""Lazy package exports and registries: naming a package's API must not import all of it.

A package ``__init__`` that imports every submodule makes ``import ivos_rl.strategies.worst`` pay
for torch, Gymnasium and OpenCV (seconds), because Python runs the package ``__init__`` first.
Package ``__init__`` files here keep their usual imports, but under ``if TYPE_CHECKING:`` (type
checkers and IDEs read them as always), and :func:`lazy_exports` turns that block into the PEP 562
module hooks that import a submodule on first access of one of its names::

    if TYPE_CHECKING:
        from ivos_rl.strategies.worst import WorstStrategy
    __all__ = ["WorstStrategy"]
    __getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)

Registries keyed by short names (strategies, backends) find the built-in entries the same way:
:func:`import_submodules` imports a package's public modules, whose decorators register them,
only when a name is looked up and not yet known.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["import_submodules", "lazy_exports", "type_checking_imports"]


def type_checking_imports(init_file: str | Path) -> dict[str, tuple[str, str]]:
    """``{alias: (module, name)}`` of the absolute ``from module import name [as alias]``
    statements inside the top-level ``if TYPE_CHECKING:`` blocks of ``init_file``."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    found: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        test = node.test if isinstance(node, ast.If) else None
        if not (
            (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        ):
            continue
        for stmt in node.body:  # type: ignore[attr-defined]
            if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                for alias in stmt.names:
                    found[alias.asname or alias.name] = (stmt.module, alias.name)
    return found


def lazy_exports(
    package: str, init_file: str | Path, names: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, resolving its ``TYPE_CHECKING`` imports lazily.

    ``names`` (the package's ``__all__``) must be exactly those imports plus names the package
    defines itself; a mismatch is an ``ImportError`` at import time, so a name cannot be exported
    without a source or imported for typing without being exported. A resolved name is cached in
    the package's namespace, so only its first access goes through ``__getattr__``.
    """
    where = type_checking_imports(init_file)
    own = set(vars(sys.modules[package]))
    missing = sorted(set(names) - set(where) - own)
    unlisted = sorted(set(where) - set(names))
    if missing or unlisted:
        raise ImportError(
            f"{package}: __all__ names without a TYPE_CHECKING import {missing}, "
            f"TYPE_CHECKING imports missing from __all__ {unlisted}"
        )

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, original = where[name]
        value = getattr(importlib.import_module(module), original)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__


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
