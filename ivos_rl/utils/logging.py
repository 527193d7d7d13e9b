"""Logging setup shared by scripts; library modules only call :func:`get_logger`."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Logger under the ``ivos_rl`` namespace (library code never configures handlers)."""
    return logging.getLogger(name if name.startswith("ivos_rl") else f"ivos_rl.{name}")


def setup_logging(level: int | str = logging.INFO) -> None:
    """Configure a single stream handler for command-line use (idempotent)."""
    root = logging.getLogger("ivos_rl")
    root.setLevel(level)
    if logging.getLogger().handlers:
        return  # an application (e.g. Hydra) already configured logging: propagate to it
    if not any(getattr(h, "_ivos_rl", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._ivos_rl = True  # type: ignore[attr-defined]
        root.addHandler(handler)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (pytest and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass
