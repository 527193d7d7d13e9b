"""Lazy reader for DAVIS-2017-layout datasets (DAVIS, converted YouTube-VOS, synthetic).

Nothing is decoded at construction: folders are checked to exist, and frames, masks and scribbles
are read only for the indices asked for, so memory stays bounded by what the caller requests.
Per-sequence facts (frame names, size, object count) are computed once and cached; they come from
the metadata file when there is one (see :mod:`ivos_rl.data.metadata`), which is then checked
against the folder the first time a sequence is touched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.data import layout
from ivos_rl.data.imageio import image_size, read_image, read_mask, resize_image, resize_labels
from ivos_rl.data.metadata import VOID_ID, check_entry, first_annotated_objects, load_metadata, metadata_path
from ivos_rl.errors import (
    CorruptFileError,
    DatasetError,
    InputValidationError,
    MaskFormatError,
    MissingDataError,
    ScribbleError,
)


@dataclass(frozen=True)
class SequenceInfo:
    """What callers need to allocate for a sequence before loading it.

    ``height``/``width`` are those of the arrays ``load_*`` return (the working size when one is
    set); ``original_size`` is the (H, W) stored on disk (None means the same as height/width).
    """

    name: str
    n_frames: int
    n_objects: int
    height: int
    width: int
    n_scribbles: int
    frame_names: tuple[str, ...]
    original_size: tuple[int, int] | None = None

    @property
    def stored_size(self) -> tuple[int, int]:
        """(H, W) of the files on disk."""
        return self.original_size if self.original_size is not None else (self.height, self.width)


class DavisDataset:
    """DAVIS-layout dataset: ``JPEGImages/<res>/<seq>``, ``Annotations/<res>/<seq>``, ``Scribbles/<seq>``.

    Args:
        root: dataset folder.
        resolution: resolution folder name, e.g. ``"480p"`` or ``"240p"``.
        image_set: sequence list relative to ``ImageSets/``, e.g. ``"2016/train"``.
        sequences: explicit sequence names (takes precedence over ``image_set``).
        working_size: (H, W) every frame/mask is resized to (frames bilinear/area, masks nearest).
        scribbles_root: folder holding ``<seq>/NNN.json`` when not ``<root>/Scribbles`` (e.g. for a
            read-only dataset); metadata scribble counts are then not checked.
    """

    def __init__(
        self,
        root: str | Path,
        resolution: str = "480p",
        image_set: str | None = None,
        sequences: list[str] | None = None,
        working_size: tuple[int, int] | None = None,
        *,
        scribbles_root: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.resolution = str(resolution)
        if not self.root.is_dir():
            raise MissingDataError("dataset root does not exist", self.root)
        if working_size is not None:
            # Any non-string sequence (tuple, list, Hydra ListConfig) of two positive ints.
            if (
                isinstance(working_size, str)
                or not isinstance(working_size, Sequence)
                or len(working_size) != 2
                or not all(isinstance(v, (int, np.integer)) and v > 0 for v in working_size)
            ):
                raise InputValidationError(f"working_size must be (H, W) positive ints, got {working_size!r}")
            working_size = (int(working_size[0]), int(working_size[1]))
        self.working_size = working_size
        self._custom_scribbles = scribbles_root is not None
        self.scribbles_root = (
            layout.scribbles_dir(self.root) if scribbles_root is None else Path(scribbles_root)
        )

        self._meta_path = metadata_path(self.root, self.resolution)
        self._metadata: dict[str, Any] | None = None
        if self._meta_path.is_file():
            self._metadata = load_metadata(self.root, self.resolution, validate=False)

        if sequences is not None:
            if isinstance(sequences, str) or not all(isinstance(s, str) for s in sequences):
                raise InputValidationError(f"sequences must be a list of names, got {sequences!r}")
            names = list(dict.fromkeys(sequences))
        elif image_set is not None:
            names = layout.read_image_set(self.root, image_set)
        elif self._metadata is not None:
            names = list(self._metadata["sequences"])
        else:
            names = layout.list_sequences(self.root, self.resolution)
        if not names:
            raise DatasetError("no sequences selected", self.root)
        for name in names:
            if not name or name in (".", "..") or "/" in name or "\\" in name:
                raise InputValidationError(f"sequence name {name!r} is not a plain folder name")
            folder = layout.images_dir(self.root, self.resolution, name)
            if not folder.is_dir():
                raise MissingDataError(f"sequence {name!r} has no frame folder", folder)
            ann = layout.annotations_dir(self.root, self.resolution, name)
            if not ann.is_dir():
                raise MissingDataError(f"sequence {name!r} has no annotation folder", ann)
            if self._metadata is not None and name not in self._metadata["sequences"]:
                raise DatasetError(
                    f"sequence {name!r} has folders but no metadata entry (rerun `ivos-rl make-metadata`)",
                    self._meta_path,
                )
        self.sequences: list[str] = names
        self._info: dict[str, SequenceInfo] = {}

    def __len__(self) -> int:
        return len(self.sequences)

    def __repr__(self) -> str:
        return (
            f"DavisDataset(root={str(self.root)!r}, resolution={self.resolution!r}, "
            f"n_sequences={len(self.sequences)}, working_size={self.working_size})"
        )

    # ------------------------------------------------------------------ per-sequence facts
    def _check_sequence(self, seq: str) -> None:
        if seq not in self.sequences:
            raise InputValidationError(
                f"sequence {seq!r} is not in this dataset ({len(self.sequences)} selected)"
            )

    def info(self, seq: str) -> SequenceInfo:
        """Frames, objects, size and scribble count of ``seq`` (computed once, then cached)."""
        cached = self._info.get(seq)
        if cached is not None:
            return cached
        self._check_sequence(seq)
        if self._metadata is not None:
            entry = self._metadata["sequences"][seq]
            check_entry(
                entry, self.root, self.resolution, self._meta_path, check_scribbles=not self._custom_scribbles
            )
            names = list(entry["frame_names"])
            width, height = entry["image_size"]
            n_objects = int(entry["num_objects"])
        else:
            names = layout.matched_frame_names(self.root, self.resolution, seq)
            first = layout.images_dir(self.root, self.resolution, seq) / f"{names[0]}{layout.FRAME_EXT}"
            height, width = image_size(first)
            # DAVIS convention: the first annotated frame defines the objects; load_masks refuses later ids
            ann_dir = layout.annotations_dir(self.root, self.resolution, seq)
            n_objects, _ = first_annotated_objects(ann_dir, names)
        n_scribbles = len(layout.list_scribble_indices(self.scribbles_root, seq))
        out_h, out_w = self.working_size if self.working_size is not None else (height, width)
        info = SequenceInfo(
            name=seq,
            n_frames=len(names),
            n_objects=n_objects,
            height=out_h,
            width=out_w,
            n_scribbles=n_scribbles,
            frame_names=tuple(names),
            original_size=(height, width),
        )
        self._info[seq] = info
        return info

    def _indices(self, info: SequenceInfo, indices: Sequence[int] | np.ndarray | None) -> list[int]:
        if indices is None:
            return list(range(info.n_frames))
        out = []
        for i in np.asarray(indices).reshape(-1).tolist():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < info.n_frames:
                raise InputValidationError(
                    f"indices for {info.name!r} must be ints in [0, {info.n_frames}), got {i!r}"
                )
            out.append(i)
        return out

    # ------------------------------------------------------------------ pixels
    def frame_path(self, seq: str, index: int) -> Path:
        """Path of the JPEG of 0-based frame ``index``."""
        info = self.info(seq)
        self._indices(info, [index])
        return (
            layout.images_dir(self.root, self.resolution, seq)
            / f"{info.frame_names[index]}{layout.FRAME_EXT}"
        )

    def mask_path(self, seq: str, index: int) -> Path:
        """Path of the palette PNG of 0-based frame ``index``."""
        info = self.info(seq)
        self._indices(info, [index])
        return (
            layout.annotations_dir(self.root, self.resolution, seq)
            / f"{info.frame_names[index]}{layout.MASK_EXT}"
        )

    def load_frames(self, seq: str, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """RGB frames ``(len(indices), H, W, 3)`` uint8 (all frames when ``indices`` is None)."""
        info = self.info(seq)
        idx = self._indices(info, indices)
        out = np.empty((len(idx), info.height, info.width, 3), dtype=np.uint8)
        folder = layout.images_dir(self.root, self.resolution, seq)
        for j, i in enumerate(idx):
            path = folder / f"{info.frame_names[i]}{layout.FRAME_EXT}"
            img = read_image(path)
            if img.shape[:2] != info.stored_size:
                raise DatasetError(
                    f"frame size {img.shape[:2]} differs from the sequence's {info.stored_size}", path
                )
            out[j] = img if self.working_size is None else resize_image(img, self.working_size)
        return out

    def load_masks(self, seq: str, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Label masks ``(len(indices), H, W)`` uint8: 0 background, 1..K objects, 255 void."""
        info = self.info(seq)
        idx = self._indices(info, indices)
        out = np.empty((len(idx), info.height, info.width), dtype=np.uint8)
        folder = layout.annotations_dir(self.root, self.resolution, seq)
        for j, i in enumerate(idx):
            path = folder / f"{info.frame_names[i]}{layout.MASK_EXT}"
            mask = read_mask(path)
            if mask.shape != info.stored_size:
                raise MaskFormatError(
                    f"mask size {mask.shape} differs from the frames' {info.stored_size}", path
                )
            bad = (mask > info.n_objects) & (mask != VOID_ID)
            if bad.any():
                where = "metadata" if self._metadata is not None else "first annotated frame"
                raise MaskFormatError(
                    f"object id {int(mask[bad].max())} exceeds the {info.n_objects} objects of {seq!r} "
                    f"(from the {where})",
                    path,
                )
            out[j] = mask if self.working_size is None else resize_labels(mask, self.working_size)
        return out

    # ------------------------------------------------------------------ scribbles
    def scribble_indices(self, seq: str) -> list[int]:
        """1-based indices of the scribble files of ``seq`` (``001.json`` -> 1)."""
        self._check_sequence(seq)
        return layout.list_scribble_indices(self.scribbles_root, seq)

    def load_scribbles(self, seq: str, idx: int) -> dict[str, Any]:
        """Scribble dict of ``Scribbles/<seq>/<idx:03d>.json``, checked against the sequence."""
        info = self.info(seq)
        path = layout.scribble_file(self.scribbles_root, seq, idx)
        if not path.is_file():
            raise MissingDataError(f"scribble {idx} of {seq!r} does not exist", path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"scribble file is not valid JSON ({exc})", path) from exc
        validate_scribble_dict(data, info, path)
        return data

    def samples(self) -> list[tuple[str, int]]:
        """(sequence, scribble_idx) for every existing scribble file, in sequence order."""
        return [(seq, idx) for seq in self.sequences for idx in self.scribble_indices(seq)]


def validate_scribble_dict(data: Any, info: SequenceInfo, path: Path | str) -> None:
    """Check a DAVIS scribble dict against its sequence; ScribbleError naming ``path`` otherwise."""
    where = f"[{path}]"
    if not isinstance(data, dict) or not isinstance(data.get("scribbles"), list):
        raise ScribbleError(f"scribble file must hold a dict with a 'scribbles' list {where}")
    if data.get("sequence") != info.name:
        raise ScribbleError(
            f"scribble file is for sequence {data.get('sequence')!r}, not {info.name!r} {where}"
        )
    frames = data["scribbles"]
    if len(frames) != info.n_frames:
        raise ScribbleError(
            f"scribble file has {len(frames)} frame lists but sequence {info.name!r} has "
            f"{info.n_frames} frames {where}"
        )
    for t, strokes in enumerate(frames):
        if not isinstance(strokes, list):
            raise ScribbleError(f"frame {t}: scribbles must be a list of strokes {where}")
        for stroke in strokes:
            if not isinstance(stroke, dict) or not isinstance(stroke.get("path"), list):
                raise ScribbleError(f"frame {t}: each stroke must be a dict with a 'path' list {where}")
            obj = stroke.get("object_id")
            if isinstance(obj, bool) or not isinstance(obj, int) or not 0 <= obj <= info.n_objects:
                raise ScribbleError(
                    f"frame {t}: object_id {obj!r} is not in 0..{info.n_objects} for {info.name!r} {where}"
                )
            for point in stroke["path"]:
                if not (
                    isinstance(point, list)
                    and len(point) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
                ):
                    raise ScribbleError(
                        f"frame {t}: path points must be [x, y] numbers, got {point!r} {where}"
                    )
