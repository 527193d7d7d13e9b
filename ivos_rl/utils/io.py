"""Safe outputs: atomic writes (a file is either absent or complete) and writable-folder checks."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ivos_rl.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the final file the usual umask-based permissions
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Serialise ``obj`` as JSON and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it writable by creating and removing a probe file.

    Call it before any compute, so a read-only or impossible output folder fails in the first second
    instead of after hours of work. ``os.access`` is not trusted (it ignores read-only mounts and
    ACL subtleties); a real write is. Raises :class:`OutputError` naming the folder.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"output path {p} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {p}: {e.strerror or e}") from e
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=p)
    except OSError as e:
        raise OutputError(f"output folder {p} is not writable: {e.strerror or e}") from e
    os.close(fd)
    os.unlink(probe)
    return p
