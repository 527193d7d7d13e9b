"""Per-dataset metadata file, modelled on davisinteractive's ``davis.json``.

The reader needs the number of objects, frames and the image size of every sequence before it
loads any pixels; computing the object count means decoding every mask, so it is done once here
and stored next to the data as ``<root>/davis-<resolution>.json``. Because a stale file would
silently give wrong counts, loading it re-checks each entry against the folder (cheap: listings
and one image header per sequence) and raises a DatasetError naming the entry that disagrees.

Per-sequence fields follow davis.json (``name, num_frames, num_objects, image_size [W, H],
num_scribbles, set, year``) plus ``image_sets`` and ``frame_names``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.data import layout
from ivos_rl.data.imageio import image_size, read_image, read_mask
from ivos_rl.errors import CorruptFileError, DatasetError, IvosError, MaskFormatError, MissingDataError
from ivos_rl.utils.io import atomic_write_json
from ivos_rl.utils.logging import get_logger, setup_logging

FORMAT = "ivos-rl/davis-metadata"
VERSION = 1
VOID_ID = 255
_log = get_logger(__name__)


def metadata_path(root: str | Path, resolution: str) -> Path:
    """Where the metadata of ``root`` at ``resolution`` lives: ``<root>/davis-<resolution>.json``."""
    return Path(root) / f"davis-{resolution}.json"


def _split_image_set(key: str) -> tuple[str, int | None]:
    """``"2016/train"`` -> ("train", 2016); ``"train"`` -> ("train", None)."""
    parts = key.split("/")
    year = int(parts[0]) if len(parts) > 1 and parts[0].isdigit() else None
    return parts[-1], year


#: how the object count of a sequence is found: ``"first"`` (DAVIS convention) or ``"all"`` (largest id)
OBJECT_MODES = ("first", "all")


def _object_ids(mask: np.ndarray) -> np.ndarray:
    ids = np.unique(mask)
    return ids[(ids != 0) & (ids != VOID_ID)]


def objects_of_first_annotated(masks: Iterable[np.ndarray]) -> tuple[int, int | None]:
    """DAVIS convention: the objects are those of the first annotated frame (first mask with an object).

    Returns the largest id (void 255 ignored) of that mask and its position (``(0, None)`` when every
    mask is empty); ``masks`` may be a lazy iterable, consumed only up to that frame. Later frames
    must not hold larger ids: a stray patch with an unknown id in one mask must not turn a 1-object
    video into a 3-object one (empty objects score J&F 1 and inflate the AUC).
    """
    for t, mask in enumerate(masks):
        ids = _object_ids(np.asarray(mask))
        if ids.size:
            return int(ids.max()), t
    return 0, None


def first_annotated_objects(masks_dir: Path, frame_names: list[str]) -> tuple[int, str | None]:
    """:func:`objects_of_first_annotated` over a mask folder: (count, frame name), reading lazily.

    The reader (:meth:`~ivos_rl.data.DavisDataset.load_masks`) refuses later frames with larger ids.
    """
    lazy = (read_mask(masks_dir / f"{name}{layout.MASK_EXT}") for name in frame_names)
    n_objects, t = objects_of_first_annotated(lazy)
    return n_objects, None if t is None else frame_names[t]


def count_objects(
    masks_dir: Path, frame_names: list[str], objects: str = "first"
) -> tuple[int, tuple[int, int]]:
    """Object count of a sequence and the common mask size, decoding every mask.

    ``objects="first"``: the count of the first annotated frame (DAVIS convention); a later mask
    holding a larger id raises :class:`MaskFormatError` naming that file. ``objects="all"``: the
    largest id over all masks, for data whose objects may enter later (converted YouTube-VOS,
    generated videos).
    """
    if objects not in OBJECT_MODES:
        raise DatasetError(f"objects must be one of {OBJECT_MODES}, got {objects!r}", masks_dir)
    n_objects = 0
    first: str | None = None
    size: tuple[int, int] | None = None
    for name in frame_names:
        path = masks_dir / f"{name}{layout.MASK_EXT}"
        mask = read_mask(path)
        if size is None:
            size = mask.shape
        elif mask.shape != size:
            raise MaskFormatError(f"mask size {mask.shape} differs from the sequence's {size}", path)
        ids = _object_ids(mask)
        if not ids.size:
            continue
        top = int(ids.max())
        if objects == "all" or first is None:
            n_objects = max(n_objects, top)
            first = name if first is None else first
        elif top > n_objects:
            raise MaskFormatError(
                f"object id {top} is not among the {n_objects} object(s) of the first annotated frame "
                f"{first} (DAVIS convention); fix the mask, or write metadata with "
                "`ivos-rl make-metadata --objects all` if objects enter later",
                path,
            )
    assert size is not None  # frame_names is never empty (matched_frame_names guarantees it)
    return n_objects, (int(size[0]), int(size[1]))


def build_sequence_entry(
    root: str | Path,
    resolution: str,
    sequence: str,
    scribbles_root: str | Path | None = None,
    verify_frames: bool = False,
    objects: str = "first",
) -> dict[str, Any]:
    """Metadata entry of one sequence (decodes all its masks; frames too if ``verify_frames``).

    ``objects`` says how the object count is found (see :func:`count_objects`).
    """
    names = layout.matched_frame_names(root, resolution, sequence)
    img_dir = layout.images_dir(root, resolution, sequence)
    height, width = image_size(img_dir / f"{names[0]}{layout.FRAME_EXT}")
    for name in names[1:]:
        path = img_dir / f"{name}{layout.FRAME_EXT}"
        if image_size(path) != (height, width):
            raise DatasetError(
                f"frame size {image_size(path)} differs from the first frame's {(height, width)}", path
            )
    if verify_frames:
        for name in names:
            read_image(img_dir / f"{name}{layout.FRAME_EXT}")
    ann_dir = layout.annotations_dir(root, resolution, sequence)
    n_objects, mask_size = count_objects(ann_dir, names, objects)
    if mask_size != (height, width):
        raise MaskFormatError(f"masks are {mask_size} but frames are {(height, width)}", ann_dir)
    scr_root = layout.scribbles_dir(root) if scribbles_root is None else Path(scribbles_root)
    return {
        "name": sequence,
        "num_frames": len(names),
        "num_objects": n_objects,
        "image_size": [width, height],
        "num_scribbles": len(layout.list_scribble_indices(scr_root, sequence)),
        "frame_names": names,
    }


def build_metadata(
    root: str | Path,
    resolution: str = "480p",
    scribbles_root: str | Path | None = None,
    verify_frames: bool = False,
    objects: str = "first",
) -> dict[str, Any]:
    """Scan a DAVIS-layout folder and return its metadata dict (all sequences under JPEGImages).

    ``objects``: ``"first"`` (DAVIS convention, the default) or ``"all"`` (see :func:`count_objects`);
    recorded as ``objects_from`` so a rewrite (e.g. after ``init-scribbles``) uses the same rule.
    """
    root = Path(root)
    image_sets = layout.list_image_sets(root)
    membership: dict[str, list[str]] = {}
    for key, names in image_sets.items():
        for name in names:
            membership.setdefault(name, []).append(key)
    sequences: dict[str, Any] = {}
    for seq in layout.list_sequences(root, resolution):
        entry = build_sequence_entry(root, resolution, seq, scribbles_root, verify_frames, objects)
        keys = sorted(membership.get(seq, []), key=lambda k: (_split_image_set(k)[1] or 10**9, k))
        set_name, year = _split_image_set(keys[0]) if keys else (None, None)
        entry.update({"set": set_name, "year": year, "image_sets": keys})
        sequences[seq] = entry
        _log.debug("metadata %s: %d frames, %d objects", seq, entry["num_frames"], entry["num_objects"])
    if not sequences:
        raise DatasetError("no sequence folders found", layout.images_dir(root, resolution))
    sets = sorted({_split_image_set(k)[0] for k in image_sets})
    years = sorted({y for y in (_split_image_set(k)[1] for k in image_sets) if y is not None})
    return {
        "format": FORMAT,
        "version": VERSION,
        "resolution": resolution,
        "sets": sets,
        "years": years,
        "objects_from": objects,
        "sequences": sequences,
    }


def write_metadata(
    root: str | Path,
    resolution: str = "480p",
    metadata: dict[str, Any] | None = None,
    scribbles_root: str | Path | None = None,
    verify_frames: bool = False,
    objects: str | None = None,
) -> Path:
    """Build (unless given) and atomically write ``<root>/davis-<resolution>.json``.

    ``objects=None`` keeps the rule of the metadata file already there (``objects_from``; files
    written before it was recorded counted ids over all frames), else ``"first"``.
    """
    path = metadata_path(root, resolution)
    if objects is None:
        objects = _existing_object_mode(path)
    if metadata is None:
        metadata = build_metadata(root, resolution, scribbles_root, verify_frames, objects)
    validate_schema(metadata, path, resolution)
    return atomic_write_json(path, metadata)


def _existing_object_mode(path: Path) -> str:
    """``objects_from`` of the metadata file at ``path``; ``"first"`` when there is none."""
    if not path.is_file():
        return "first"
    try:
        mode = json.loads(path.read_text(encoding="utf-8")).get("objects_from", "all")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise CorruptFileError(f"metadata is not valid JSON ({exc})", path) from exc
    if mode not in OBJECT_MODES:
        raise DatasetError(f"objects_from must be one of {OBJECT_MODES}, got {mode!r}", path)
    return str(mode)


_REQUIRED_INT = ("num_frames", "num_objects", "num_scribbles")


def validate_schema(metadata: Any, path: Path, resolution: str) -> None:
    """Check the structure and types of a metadata dict; DatasetError naming ``path`` otherwise."""
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DatasetError(f"not an ivos-rl metadata file (format must be {FORMAT!r})", path)
    if metadata.get("version") != VERSION:
        raise DatasetError(
            f"unsupported metadata version {metadata.get('version')!r}, expected {VERSION}", path
        )
    if metadata.get("resolution") != resolution:
        raise DatasetError(
            f"metadata is for resolution {metadata.get('resolution')!r}, not {resolution!r}", path
        )
    seqs = metadata.get("sequences")
    if not isinstance(seqs, dict) or not seqs:
        raise DatasetError("metadata has no 'sequences' mapping", path)
    for name, entry in seqs.items():
        if not isinstance(entry, dict) or entry.get("name") != name:
            raise DatasetError(f"metadata entry {name!r} is not a dict with a matching 'name'", path)
        for key in _REQUIRED_INT:
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DatasetError(f"metadata entry {name!r}: {key} must be an int >= 0, got {value!r}", path)
        size = entry.get("image_size")
        if not (
            isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
        ):
            raise DatasetError(f"metadata entry {name!r}: image_size must be [W, H], got {size!r}", path)
        names = entry.get("frame_names")
        if not (isinstance(names, list) and len(names) == entry["num_frames"]):
            raise DatasetError(
                f"metadata entry {name!r}: frame_names must list num_frames={entry['num_frames']} names", path
            )


def check_entry(
    entry: dict[str, Any],
    root: str | Path,
    resolution: str,
    path: Path,
    check_scribbles: bool = True,
) -> None:
    """Compare one metadata entry with its folder; DatasetError naming the entry and field if they differ.

    ``check_scribbles=False`` skips ``num_scribbles`` for callers that read scribbles from a folder
    other than ``<root>/Scribbles`` (the count then describes a different folder).
    """
    name = entry["name"]
    names = layout.matched_frame_names(root, resolution, name)
    if len(names) != entry["num_frames"] or names != entry["frame_names"]:
        raise DatasetError(
            f"metadata entry {name!r} disagrees with the folder: num_frames={entry['num_frames']} but "
            f"{len(names)} frames on disk (rerun `ivos-rl make-metadata`)",
            path,
        )
    first = layout.images_dir(root, resolution, name) / f"{names[0]}{layout.FRAME_EXT}"
    height, width = image_size(first)
    if [width, height] != entry["image_size"]:
        raise DatasetError(
            f"metadata entry {name!r} disagrees with the folder: image_size={entry['image_size']} "
            f"but {first.name} is [{width}, {height}]",
            path,
        )
    if check_scribbles:
        found = len(layout.list_scribble_indices(layout.scribbles_dir(root), name))
        if found != entry["num_scribbles"]:
            raise DatasetError(
                f"metadata entry {name!r} disagrees with the folder: num_scribbles={entry['num_scribbles']} "
                f"but {found} scribble files (rerun `ivos-rl make-metadata`)",
                path,
            )


def load_metadata(root: str | Path, resolution: str = "480p", validate: bool = True) -> dict[str, Any]:
    """Read and schema-check ``<root>/davis-<resolution>.json``.

    With ``validate`` every entry is also checked against the folder, and the set of sequence
    folders must equal the set of entries.
    """
    path = metadata_path(root, resolution)
    if not path.is_file():
        raise MissingDataError("metadata file does not exist (run `ivos-rl make-metadata`)", path)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"metadata is not valid JSON ({exc})", path) from exc
    validate_schema(metadata, path, resolution)
    if validate:
        on_disk = set(layout.list_sequences(root, resolution))
        listed = set(metadata["sequences"])
        if on_disk != listed:
            raise DatasetError(
                f"metadata lists sequences {sorted(listed - on_disk)} without folders and misses folders "
                f"{sorted(on_disk - listed)} (rerun `ivos-rl make-metadata`)",
                path,
            )
        for entry in metadata["sequences"].values():
            check_entry(entry, root, resolution, path)
    return metadata


def main(argv: list[str] | None = None) -> int:
    """``ivos-rl make-metadata ROOT --resolution 240p``: write ``ROOT/davis-<res>.json``."""
    parser = argparse.ArgumentParser(prog="ivos-rl make-metadata", description=main.__doc__)
    parser.add_argument("root", type=Path, help="DAVIS-layout dataset folder")
    parser.add_argument("--resolution", default="480p", help="resolution folder name (default 480p)")
    parser.add_argument("--verify-frames", action="store_true", help="also decode every JPEG frame")
    parser.add_argument(
        "--objects", choices=OBJECT_MODES, default="first",
        help="object count from the first annotated frame (DAVIS convention, default; later unknown ids "
        "are refused) or the largest id over all frames (objects that enter later, e.g. YouTube-VOS)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        path = write_metadata(
            args.root, args.resolution, verify_frames=args.verify_frames, objects=args.objects
        )
    except IvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = json.loads(path.read_text(encoding="utf-8"))
    n_frames = sum(e["num_frames"] for e in meta["sequences"].values())
    print(f"wrote {path}: {len(meta['sequences'])} sequences, {n_frames} frames")
    return 0
