"""Convert YouTube-VOS into a DAVIS-layout folder restricted to the annotated frames.

YouTube-VOS annotates every 5th frame and object ids per video need not be contiguous. IVOS-W
evaluated on a subset of YouTube-VOS videos using only annotated frames; this converter produces
exactly that in the DAVIS layout the rest of ivos-rl reads: kept frames renumbered ``00000..``,
object ids remapped to ``1..K`` in increasing original id, and the mapping (original frame names,
original ids, categories) saved in ``youtube_vos.json`` so results can be traced back.

Source layout: ``JPEGImages/<vid>/<frame>.jpg``, ``Annotations/<vid>/<frame>.png`` (palette) and
``meta.json`` = ``{"videos": {vid: {"objects": {"1": {"category": str, "frames": [...]}}}}}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.data import layout
from ivos_rl.data.imageio import read_image, read_mask, resize_image, resize_labels, write_jpeg, write_mask
from ivos_rl.data.metadata import write_metadata
from ivos_rl.data.splits import rank_by_name
from ivos_rl.data.staging import staged_directory
from ivos_rl.errors import (
    CorruptFileError,
    DatasetError,
    InputValidationError,
    IvosError,
    MaskFormatError,
    MissingDataError,
)
from ivos_rl.utils.io import atomic_write_json, atomic_write_text
from ivos_rl.utils.logging import get_logger, setup_logging

MAPPING_FILE = "youtube_vos.json"
#: what convert-youtube-vos writes at the top of its folder; --overwrite replaces these and nothing else
OWNED_ENTRIES = ("JPEGImages", "Annotations", "ImageSets", "davis-*.json", MAPPING_FILE)
MAPPING_FORMAT = "ivos-rl/youtube-vos-conversion"
_log = get_logger(__name__)


def read_meta(src: str | Path) -> dict[str, Any]:
    """The ``videos`` mapping of ``<src>/meta.json``, with object ids checked to be integers."""
    path = Path(src) / "meta.json"
    if not path.is_file():
        raise MissingDataError("YouTube-VOS meta.json does not exist", path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"meta.json is not valid JSON ({exc})", path) from exc
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict) or not videos:
        raise CorruptFileError("meta.json has no 'videos' mapping", path)
    for vid, entry in videos.items():
        objects = entry.get("objects") if isinstance(entry, dict) else None
        if not isinstance(objects, dict):
            raise CorruptFileError(f"video {vid!r} has no 'objects' mapping", path)
        for oid, obj in objects.items():
            if not oid.isdigit() or not 1 <= int(oid) <= 254 or not isinstance(obj, dict):
                raise CorruptFileError(f"video {vid!r}: object id {oid!r} must be an integer in 1..254", path)
    return videos


def _annotated_frames(src: Path, vid: str) -> list[str]:
    """Annotated frame stems of ``vid`` that also have a JPEG; a missing JPEG is an error."""
    ann_dir = src / "Annotations" / vid
    img_dir = src / "JPEGImages" / vid
    stems = layout.list_stems(ann_dir, layout.MASK_EXT)
    if not img_dir.is_dir():
        raise MissingDataError(f"video {vid!r} has no frame folder", img_dir)
    for stem in stems:
        if not (img_dir / f"{stem}{layout.FRAME_EXT}").is_file():
            raise MissingDataError(f"annotated frame {stem} of {vid!r} has no JPEG", img_dir / f"{stem}.jpg")
    return stems


def _n_annotated_objects(entry: dict[str, Any], stems: list[str]) -> int:
    kept = set(stems)
    count = 0
    for obj in entry["objects"].values():
        frames = obj.get("frames")
        if frames is None or kept.intersection(frames):
            count += 1
    return count


def select_videos(
    src: str | Path,
    meta: dict[str, Any],
    n_videos: int | None = None,
    seed: int = 0,
    videos: list[str] | None = None,
    min_frames: int = 2,
    min_objects: int = 1,
) -> list[str]:
    """Videos to convert: ``videos`` if given, else eligible ones, ``n_videos`` of them drawn by ``seed``.

    Eligible: at least ``min_frames`` annotated frames and ``min_objects`` objects annotated on them.
    """
    src = Path(src)
    if videos is not None:
        unknown = [v for v in videos if v not in meta]
        if unknown:
            raise InputValidationError(f"videos {unknown} are not in {src / 'meta.json'}")
        return list(dict.fromkeys(videos))
    eligible = []
    for vid in sorted(meta):
        stems = _annotated_frames(src, vid)
        if len(stems) >= min_frames and _n_annotated_objects(meta[vid], stems) >= min_objects:
            eligible.append(vid)
    if n_videos is None:
        return eligible
    if isinstance(n_videos, bool) or not isinstance(n_videos, int) or not 1 <= n_videos <= len(eligible):
        raise InputValidationError(
            f"n_videos must be in 1..{len(eligible)} (eligible videos), got {n_videos!r}"
        )
    # by name hash, not list position: a smaller n picks a subset of a larger n's videos, and
    # adding or removing other videos does not change which of these are picked
    return sorted(rank_by_name(eligible, seed)[:n_videos])


def _convert_video(
    src: Path, dst: Path, vid: str, entry: dict[str, Any], resolution: str, height: int | None, quality: int
) -> dict[str, Any]:
    stems = _annotated_frames(src, vid)
    if not stems:
        raise DatasetError(f"video {vid!r} has no annotated frames", src / "Annotations" / vid)
    declared = {int(k) for k in entry["objects"]}
    masks = []
    present: set[int] = set()
    for stem in stems:
        path = src / "Annotations" / vid / f"{stem}{layout.MASK_EXT}"
        mask = read_mask(path)
        ids = {int(i) for i in np.unique(mask)} - {0}
        undeclared = sorted(ids - declared)
        if undeclared:
            raise MaskFormatError(f"object ids {undeclared} are not declared for {vid!r} in meta.json", path)
        present |= ids
        masks.append((path, mask))
    if not present:
        raise DatasetError(f"video {vid!r} has no object in its annotated frames", src / "Annotations" / vid)
    order = sorted(present)
    lut = np.zeros(256, np.uint8)
    for new, old in enumerate(order, start=1):
        lut[old] = new
    img_out = layout.images_dir(dst, resolution, vid)
    ann_out = layout.annotations_dir(dst, resolution, vid)
    img_out.mkdir(parents=True, exist_ok=True)
    size: tuple[int, int] | None = None
    for i, (stem, (mpath, mask)) in enumerate(zip(stems, masks, strict=True)):
        name = layout.frame_file_name(i)
        jpg = src / "JPEGImages" / vid / f"{stem}{layout.FRAME_EXT}"
        frame = read_image(jpg)  # decoded even when copied, so a truncated source is caught here
        if frame.shape[:2] != mask.shape:
            raise MaskFormatError(f"mask size {mask.shape} differs from frame size {frame.shape[:2]}", mpath)
        labels = lut[mask]
        if height is not None:
            h, w = mask.shape
            size = (height, max(1, round(w * height / h)))
            write_jpeg(img_out / f"{name}{layout.FRAME_EXT}", resize_image(frame, size), quality)
            labels = resize_labels(labels, size)
        else:
            shutil.copyfile(jpg, img_out / f"{name}{layout.FRAME_EXT}")
        write_mask(ann_out / f"{name}{layout.MASK_EXT}", labels)
    return {
        "frames": stems,
        "objects": {
            str(new): {"original_id": old, "category": entry["objects"][str(old)].get("category")}
            for new, old in enumerate(order, start=1)
        },
        "dropped_objects": sorted(declared - present),
    }


def convert_youtube_vos(
    src: str | Path,
    dst: str | Path,
    *,
    n_videos: int | None = None,
    seed: int = 0,
    videos: list[str] | None = None,
    height: int | None = 480,
    resolution: str = "480p",
    image_set: str = "youtube-vos/train",
    min_frames: int = 2,
    min_objects: int = 1,
    jpeg_quality: int = 90,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert (a subset of) YouTube-VOS at ``src`` into a DAVIS-layout folder at ``dst``.

    ``height`` resizes frames (area/bilinear, re-encoded JPEG) and masks (nearest) to that height
    keeping the aspect ratio; ``None`` copies the JPEGs unchanged. Writes ``ImageSets/<image_set>.txt``,
    the metadata file and ``youtube_vos.json`` (the mapping, also returned). The output folder is
    built aside and moved into place only when complete.
    """
    src = Path(src)
    if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height < 8):
        raise InputValidationError(f"height must be an int >= 8 or None, got {height!r}")
    meta = read_meta(src)
    chosen = select_videos(src, meta, n_videos, seed, videos, min_frames, min_objects)
    if not chosen:
        raise DatasetError(f"no video has >= {min_frames} annotated frames and >= {min_objects} objects", src)
    mapping: dict[str, Any] = {
        "format": MAPPING_FORMAT,
        "version": 1,
        "source": str(src),
        "seed": seed,
        "n_videos": n_videos,
        "height": height,
        "resolution": resolution,
        "videos": {},
    }
    with staged_directory(dst, overwrite=overwrite, owned=OWNED_ENTRIES, marker=MAPPING_FILE) as tmp:
        for vid in chosen:
            mapping["videos"][vid] = _convert_video(
                src, tmp, vid, meta[vid], resolution, height, jpeg_quality
            )
            _log.info("converted %s: %d frames", vid, len(mapping["videos"][vid]["frames"]))
        atomic_write_text(layout.image_set_file(tmp, image_set), "\n".join(chosen) + "\n")
        write_metadata(tmp, resolution, objects="all")  # YouTube-VOS objects may enter later
        atomic_write_json(tmp / MAPPING_FILE, mapping)
    return mapping


def main(argv: list[str] | None = None) -> int:
    """``ivos-rl convert-youtube-vos SRC DST [--videos 50 --seed 0 --height 480]``."""
    parser = argparse.ArgumentParser(prog="ivos-rl convert-youtube-vos", description=main.__doc__)
    parser.add_argument(
        "src", type=Path, help="YouTube-VOS split folder (JPEGImages/, Annotations/, meta.json)"
    )
    parser.add_argument("dst", type=Path, help="output folder (absent or empty unless --overwrite)")
    parser.add_argument("--videos", type=int, default=None, help="random subset of this many videos")
    parser.add_argument("--names", nargs="*", default=None, help="convert exactly these videos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--height", type=int, default=480, help="output frame height; 0 keeps the source size"
    )
    parser.add_argument("--resolution", default=None, help="resolution folder name (default <height>p)")
    parser.add_argument("--min-frames", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    height = None if args.height == 0 else args.height
    resolution = args.resolution or (f"{height}p" if height else "source")
    try:
        mapping = convert_youtube_vos(
            args.src,
            args.dst,
            n_videos=args.videos,
            seed=args.seed,
            videos=args.names,
            height=height,
            resolution=resolution,
            min_frames=args.min_frames,
            overwrite=args.overwrite,
        )
    except IvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n_frames = sum(len(v["frames"]) for v in mapping["videos"].values())
    print(f"converted {len(mapping['videos'])} videos ({n_frames} annotated frames) to {args.dst}")
    return 0
