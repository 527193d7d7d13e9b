"""Name -> class registry of VOS backends.

Hydra configs build backends through ``_target_`` directly; the registry serves code and
command-line flags that pick a backend by a short name (``--backend simulated``), and lets a
third-party segmenter plug in with one decorator instead of an edit to a central list. The
built-in backends register when their module is imported, which a lookup does on demand.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ivos_rl.backends.base import VOSBackend
from ivos_rl.errors import ConfigError
from ivos_rl.utils.lazy import import_submodules

__all__ = ["available_backends", "build_backend", "get_backend_class", "register_backend"]

B = TypeVar("B", bound=type[VOSBackend])

_REGISTRY: dict[str, type[VOSBackend]] = {}


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator registering a :class:`VOSBackend` subclass under ``name``.

    The class's ``name`` attribute is set to ``name`` so outputs and cache keys carry it.
    Registering a different class under a taken name raises :class:`ConfigError` (two plugins
    silently shadowing each other would make results irreproducible); re-registering the same
    class (a module reload) is allowed.
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(
            f"backend name must be a non-empty identifier (letters, digits, _ or -), got {name!r}"
        )

    def decorator(cls: B) -> B:
        if not (isinstance(cls, type) and issubclass(cls, VOSBackend)):
            raise ConfigError(f"register_backend({name!r}) expects a VOSBackend subclass, got {cls!r}")
        known = _REGISTRY.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigError(
                f"backend name {name!r} is already registered by {known.__module__}.{known.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_builtins() -> None:
    """Import the backend modules of this package (they register on import); the package
    ``__init__`` imports none of them eagerly, so code that only needs the interface stays light."""
    import_submodules(__name__.rsplit(".", 1)[0], skip=("base", "check", "registry"))


def available_backends() -> list[str]:
    """Sorted names of the built-in backends and of every other registered one."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_backend_class(name: str) -> type[VOSBackend]:
    """The class registered under ``name``; :class:`ConfigError` listing valid names otherwise."""
    if name not in _REGISTRY:
        _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; available backends: {', '.join(available_backends()) or '(none)'}"
        ) from None


def build_backend(name: str, **kwargs: Any) -> VOSBackend:
    """Instantiate the backend registered under ``name`` with ``kwargs``.

    A keyword the backend does not accept raises :class:`ConfigError` naming it, instead of a
    bare ``TypeError`` from deep inside the constructor call.
    """
    cls = get_backend_class(name)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"cannot build backend {name!r} with arguments {sorted(kwargs)}: {exc}") from exc
    return cls(**kwargs)
