"""Cut a small DAVIS-layout excerpt (some sequences, a window of frames) out of a dataset.

Why: demos, fixtures and bug reports need real video that fits in a repository. Files are copied
byte for byte (no re-encoding), frames keep their original names, so an excerpt frame can be
traced back to its source; the folder is staged and moved into place only when complete.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ivos_rl.data import layout
from ivos_rl.data.staging import staged_directory
from ivos_rl.errors import InputValidationError, IvosError
from ivos_rl.utils.io import atomic_write_text


def make_excerpt(
    src_root: str | Path,
    out_dir: str | Path,
    sequences: Sequence[str],
    *,
    resolution: str = "240p",
    n_frames: int | None = None,
    start: int = 0,
    image_set: str = "2016/train",
    overwrite: bool = False,
) -> dict[str, list[str]]:
    """Copy frames ``start .. start + n_frames - 1`` (all if None) of ``sequences``; return the names.

    Writes ``JPEGImages/<res>/``, ``Annotations/<res>/`` and ``ImageSets/<image_set>.txt`` under
    ``out_dir``. Every sequence must have at least ``start + n_frames`` annotated frames.
    """
    if not sequences:
        raise InputValidationError("sequences: give at least one sequence name")
    if n_frames is not None and n_frames < 1:
        raise InputValidationError(f"n_frames must be >= 1 or None, got {n_frames}")
    if start < 0:
        raise InputValidationError(f"start must be >= 0, got {start}")
    plan: dict[str, list[str]] = {}
    for seq in sequences:
        names = layout.matched_frame_names(src_root, resolution, seq)  # MissingDataError if absent
        stop = len(names) if n_frames is None else start + n_frames
        if stop > len(names) or start >= len(names):
            raise InputValidationError(
                f"sequence {seq!r} has {len(names)} frames; frames {start}..{stop - 1} were asked for"
            )
        plan[seq] = names[start:stop]
    with staged_directory(out_dir, overwrite=overwrite) as tmp:
        for seq, names in plan.items():
            kinds = ((layout.images_dir, layout.FRAME_EXT), (layout.annotations_dir, layout.MASK_EXT))
            for folder, ext in kinds:
                src, dst = folder(src_root, resolution, seq), folder(tmp, resolution, seq)
                dst.mkdir(parents=True)
                for name in names:
                    shutil.copyfile(src / f"{name}{ext}", dst / f"{name}{ext}")
        set_file = layout.image_set_file(tmp, image_set)
        set_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(set_file, "".join(f"{s}\n" for s in sequences))
    return plan


def main(argv: list[str] | None = None) -> int:
    """``ivos-rl make-excerpt SRC OUT --sequences a b --frames 30 [--start 0] [--resolution 240p]``."""
    parser = argparse.ArgumentParser(prog="ivos-rl make-excerpt", description=main.__doc__)
    parser.add_argument("src", type=Path, help="DAVIS-layout dataset folder")
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--sequences", nargs="+", required=True)
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence (default: all)")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--resolution", default="240p")
    parser.add_argument("--image-set", default="2016/train")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        copied = make_excerpt(args.src, args.out, args.sequences, resolution=args.resolution,
                              n_frames=args.frames, start=args.start, image_set=args.image_set,
                              overwrite=args.overwrite)
    except IvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for seq, names in copied.items():
        print(f"{seq}: {len(names)} frames ({names[0]}..{names[-1]})")
    return 0
