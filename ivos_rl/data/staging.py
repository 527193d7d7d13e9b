"""Build a whole dataset folder next to its destination and move it into place only when complete.

Generators and converters write hundreds of files; an interruption must not leave a folder that
looks like a dataset but lacks frames. Each file is also written atomically, but only staging the
folder makes the dataset as a whole all-or-nothing.

``overwrite`` replaces only what the tool itself writes (its ``owned`` top-level entries) in a folder
that carries the tool's ``marker`` file; every other entry (a user's notes, a results folder...) is
kept, and a folder with dataset content but without the marker (someone else's data) is refused.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ivos_rl.errors import DatasetError


def _split_owned(dst: Path, owned: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """(entries of ``dst`` matching an ``owned`` glob, the other entries), by top-level name."""
    mine, others = [], []
    for entry in sorted(dst.iterdir()):
        (mine if any(fnmatch.fnmatchcase(entry.name, pat) for pat in owned) else others).append(entry)
    return mine, others


def _check_overwrite(dst: Path, owned: Sequence[str], marker: str | None) -> list[Path]:
    """Refuse to overwrite a folder the tool did not write; return the unrelated entries to keep."""
    mine, others = _split_owned(dst, owned)
    if mine and (marker is None or not (dst / marker).is_file()):
        what = f"it has no {marker}" if marker else "the tool cannot recognise its own output"
        raise DatasetError(
            f"refusing to overwrite {[p.name for p in mine][:5]}: {what}, so this folder was not written "
            "by this tool; remove it yourself or choose another output folder",
            dst,
        )
    return others


@contextlib.contextmanager
def staged_directory(
    dst: str | Path,
    overwrite: bool = False,
    *,
    owned: Sequence[str] = (),
    marker: str | None = None,
) -> Iterator[Path]:
    """Yield an empty sibling folder of ``dst``; on success it replaces ``dst``, on error it is removed.

    ``dst`` must be absent or empty unless ``overwrite``. Then ``owned`` (glob patterns of the
    top-level names the tool writes, e.g. ``"JPEGImages"``, ``"davis-*.json"``) are replaced, but only
    if ``marker`` (the tool's own info file, one of ``owned``) is there; other entries are moved into
    the new folder untouched. The old content is deleted only after the new folder is complete.
    """
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DatasetError("output path exists and is not a folder", dst)
    keep: list[Path] = []
    if dst.is_dir() and any(dst.iterdir()):
        if not overwrite:
            raise DatasetError("output folder is not empty (pass overwrite=True / --overwrite)", dst)
        keep = _check_overwrite(dst, owned, marker)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    clash = [p.name for p in keep if (tmp / p.name).exists()]
    if clash:  # the tool wrote an entry it did not declare as owned: keep the user's, fail loudly
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"new output would replace unrelated entries {clash}", dst)
    old: Path | None = None
    if dst.is_dir():
        if any(dst.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent)) / "content"
            os.replace(dst, old)
        else:
            dst.rmdir()
    os.replace(tmp, dst)
    if old is not None:
        for entry in keep:  # back from the old folder; on failure the old folder stays for recovery
            os.replace(old / entry.name, dst / entry.name)
        shutil.rmtree(old.parent, ignore_errors=True)
