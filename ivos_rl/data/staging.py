"""Build a whole dataset folder next to its destination and move it into place only when complete.

Generators and converters write hundreds of files; an interruption must not leave a folder that
looks like a dataset but lacks frames. Each file is also written atomically, but only staging the
folder makes the dataset as a whole all-or-nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ivos_rl.errors import DatasetError


@contextlib.contextmanager
def staged_directory(dst: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty sibling folder of ``dst``; on success it replaces ``dst``, on error it is removed.

    ``dst`` must be absent or empty unless ``overwrite`` (then the old content is deleted only after
    the new folder is complete).
    """
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DatasetError("output path exists and is not a folder", dst)
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise DatasetError("output folder is not empty (pass overwrite=True / --overwrite)", dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if dst.is_dir():
        if any(dst.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent)) / "content"
            os.replace(dst, old)
        else:
            dst.rmdir()
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
