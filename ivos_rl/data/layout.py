"""The DAVIS-2017 folder layout: where things live and how folders are listed.

Shared by the reader, the metadata builder and the writers so that every part of the data layer
agrees on names, ordering and which files are ignored (hidden files, e.g. atomic-write temps).

    <root>/JPEGImages/<resolution>/<seq>/NNNNN.jpg
    <root>/Annotations/<resolution>/<seq>/NNNNN.png
    <root>/ImageSets/<year>/<set>.txt
    <root>/Scribbles/<seq>/NNN.json          (1-based, resolution independent)
    <root>/davis-<resolution>.json           (metadata, see ivos_rl.data.metadata)
"""

from __future__ import annotations

import re
from pathlib import Path

from ivos_rl.errors import DatasetError, InputValidationError, MissingDataError

IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"
SCRIBBLES_DIR = "Scribbles"
IMAGESETS_DIR = "ImageSets"
FRAME_EXT = ".jpg"
MASK_EXT = ".png"
_SCRIBBLE_RE = re.compile(r"^(\d{3,})\.json$")


def images_dir(root: str | Path, resolution: str, sequence: str | None = None) -> Path:
    """``<root>/JPEGImages/<resolution>[/<sequence>]``."""
    base = Path(root) / IMAGES_DIR / resolution
    return base if sequence is None else base / sequence


def annotations_dir(root: str | Path, resolution: str, sequence: str | None = None) -> Path:
    """``<root>/Annotations/<resolution>[/<sequence>]``."""
    base = Path(root) / ANNOTATIONS_DIR / resolution
    return base if sequence is None else base / sequence


def scribbles_dir(root: str | Path, sequence: str | None = None) -> Path:
    """``<root>/Scribbles[/<sequence>]``."""
    base = Path(root) / SCRIBBLES_DIR
    return base if sequence is None else base / sequence


def scribble_file(scribbles_root: str | Path, sequence: str, idx: int) -> Path:
    """``<scribbles_root>/<sequence>/NNN.json`` for the 1-based scribble index ``idx``."""
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 1:
        raise InputValidationError(f"scribble idx must be an int >= 1 (1-based), got {idx!r}")
    return Path(scribbles_root) / sequence / f"{idx:03d}.json"


def frame_file_name(index: int) -> str:
    """DAVIS frame stem for a 0-based index: ``00000``."""
    return f"{index:05d}"


def natural_key(stem: str) -> tuple[int, int, str]:
    """Sort key of frame stems: numeric names by value ("9" < "10" without zero padding), then others."""
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def list_stems(folder: Path, ext: str) -> list[str]:
    """Sorted stems of the visible files with extension ``ext`` in ``folder``."""
    if not folder.is_dir():
        raise MissingDataError("folder does not exist", folder)
    stems = [
        p.stem for p in folder.iterdir() if p.suffix == ext and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(stems, key=natural_key)


def matched_frame_names(root: str | Path, resolution: str, sequence: str) -> list[str]:
    """Frame stems of ``sequence``, checking that every frame has a mask of the same name.

    Raises MissingDataError for a missing folder and DatasetError naming both folders when the
    frame and mask lists differ in count or names.
    """
    img_dir = images_dir(root, resolution, sequence)
    ann_dir = annotations_dir(root, resolution, sequence)
    if not img_dir.is_dir():
        raise MissingDataError(f"sequence {sequence!r} has no frame folder", img_dir)
    if not ann_dir.is_dir():
        raise MissingDataError(f"sequence {sequence!r} has no annotation folder", ann_dir)
    frames = list_stems(img_dir, FRAME_EXT)
    masks = list_stems(ann_dir, MASK_EXT)
    if frames != masks:
        only_frames = sorted(set(frames) - set(masks), key=natural_key)[:5]
        only_masks = sorted(set(masks) - set(frames), key=natural_key)[:5]
        raise DatasetError(
            f"sequence {sequence!r}: {len(frames)} frames in {img_dir} but {len(masks)} masks in {ann_dir}; "
            f"frames without mask: {only_frames}, masks without frame: {only_masks}",
            ann_dir,
        )
    if not frames:
        raise DatasetError(f"sequence {sequence!r} has no {FRAME_EXT} frames", img_dir)
    return frames


def list_scribble_indices(scribbles_root: str | Path, sequence: str) -> list[int]:
    """Sorted 1-based indices of ``NNN.json`` files for ``sequence`` (empty if no folder)."""
    folder = Path(scribbles_root) / sequence
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _SCRIBBLE_RE.match(p.name)
        if m and p.is_file():
            found.append(int(m.group(1)))
    return sorted(found)


def list_sequences(root: str | Path, resolution: str) -> list[str]:
    """Sorted sequence folder names under ``JPEGImages/<resolution>``."""
    base = images_dir(root, resolution)
    if not base.is_dir():
        raise MissingDataError(f"no frame folder for resolution {resolution!r}", base)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_set_file(root: str | Path, image_set: str) -> Path:
    """``<root>/ImageSets/<image_set>.txt`` (``image_set`` like ``"2016/train"``)."""
    name = image_set[:-4] if image_set.endswith(".txt") else image_set
    return Path(root) / IMAGESETS_DIR / f"{name}.txt"


def read_image_set(root: str | Path, image_set: str) -> list[str]:
    """Sequence names listed in an ImageSets file, in file order, without blanks or duplicates."""
    path = image_set_file(root, image_set)
    if not path.is_file():
        raise MissingDataError(f"image set {image_set!r} does not exist", path)
    names: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.strip()
        if name and name not in names:
            names.append(name)
    if not names:
        raise DatasetError(f"image set {image_set!r} lists no sequences", path)
    return names


def list_image_sets(root: str | Path) -> dict[str, list[str]]:
    """All ``ImageSets/**/*.txt`` as ``{"2016/train": [seq, ...]}`` (empty if there is no folder)."""
    base = Path(root) / IMAGESETS_DIR
    if not base.is_dir():
        return {}
    out: dict[str, list[str]] = {}
    for path in sorted(base.rglob("*.txt")):
        key = path.relative_to(base).with_suffix("").as_posix()
        out[key] = read_image_set(root, key)
    return out
