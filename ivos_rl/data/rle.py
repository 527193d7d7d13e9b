"""COCO run-length encoding of masks and a compact JSON archive of a run's predictions.

A run over a dataset produces one label map per frame per round; storing them as PNGs costs
thousands of files, storing arrays costs gigabytes. COCO RLE (pycocotools, the format of the
Places/COCO instance-segmentation submissions) is lossless and tiny for masks, so predictions are
kept as ``sequence -> round -> frame -> object -> RLE counts`` in one JSON file.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ivos_rl.errors import CorruptFileError, InputValidationError, MissingDataError
from ivos_rl.utils.io import atomic_write_json

__all__ = [
    "PredictionArchive",
    "decode_labels",
    "decode_mask",
    "encode_labels",
    "encode_mask",
    "encode_masks",
]

ARCHIVE_FORMAT = "ivos-rl/predictions-rle"
ARCHIVE_VERSION = 1


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """RLE of each binary mask in an (N, H, W) stack: ``[{"size": [H, W], "counts": str}, ...]``.

    One pycocotools call encodes the whole stack (it wants column-major (H, W, N) uint8).
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise InputValidationError(f"masks must be (N, H, W), got shape {masks.shape}")
    if masks.dtype != np.bool_ and masks.size and not np.isin(masks, (0, 1)).all():
        raise InputValidationError("masks must be binary (0/1 or bool)")
    if masks.shape[0] == 0:
        return []
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
    rles = mask_utils.encode(fortran)
    return [
        {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")} for r in rles
    ]


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """RLE of one binary (H, W) mask as ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputValidationError(f"mask must be (H, W), got shape {mask.shape}")
    return encode_masks(mask[None])[0]


def run_lengths(counts: str | bytes) -> list[int]:
    """Run lengths encoded in a compressed COCO ``counts`` string (alternating 0/1 runs, 0 first).

    COCO packs each run in 5-bit groups offset by ASCII 48, the 6th bit flagging continuation and
    runs after the second stored as differences to the run two places before.
    """
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    runs: list[int] = []
    pos = 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(data):
                raise InputValidationError("RLE counts string ends inside a run")
            c = data[pos] - 48
            if not 0 <= c < 64:
                raise InputValidationError(f"RLE counts contain an invalid character {chr(data[pos])!r}")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """Binary (H, W) uint8 mask from an RLE dict with str or bytes ``counts``."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise InputValidationError(f"an RLE must be a dict with 'size' and 'counts', got {rle!r:.80}")
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    size = [int(v) for v in rle["size"]]
    runs = run_lengths(counts)
    # pycocotools does not check that the runs cover the mask and returns uninitialised memory
    # when they fall short, so the total is verified here.
    if any(r < 0 for r in runs) or sum(runs) != size[0] * size[1]:
        raise InputValidationError(
            f"RLE runs cover {sum(runs)} pixels (min run {min(runs, default=0)}) but size {size} has "
            f"{size[0] * size[1]}"
        )
    try:
        with warnings.catch_warnings():
            # pycocotools' Cython array wrapper predates NumPy 2's copy keyword; harmless here.
            warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy")
            decoded = mask_utils.decode({"size": size, "counts": counts})
        return np.ascontiguousarray(decoded, dtype=np.uint8)
    except (ValueError, TypeError) as exc:
        raise InputValidationError(f"invalid RLE counts for size {size}: {exc}") from exc


def encode_labels(labels: np.ndarray, n_objects: int | None = None) -> dict[int, dict[str, Any]]:
    """Per-object RLEs of an (H, W) label map; objects absent from the frame are omitted.

    ``n_objects`` bounds the ids (1..K); ids above it raise rather than being dropped.
    """
    labels = _check_labels(labels, n_objects, "labels", ndim=2)
    ids = [int(k) for k in np.unique(labels) if k != 0]
    rles = encode_masks(np.stack([labels == k for k in ids])) if ids else []
    return dict(zip(ids, rles, strict=True))


def decode_labels(rles: dict[int, dict[str, Any]], size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 label map from per-object RLEs; overlapping objects are an error."""
    out = np.zeros(size, dtype=np.uint8)
    for k, rle in rles.items():
        m = decode_mask(rle).astype(bool)
        if m.shape != tuple(size):
            raise InputValidationError(f"RLE of object {k} has size {m.shape}, expected {tuple(size)}")
        if (out[m] != 0).any():
            raise InputValidationError(f"RLE of object {k} overlaps another object")
        out[m] = int(k)
    return out


def _check_labels(labels: np.ndarray, n_objects: int | None, name: str, ndim: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != ndim:
        raise InputValidationError(f"{name} must have {ndim} dims, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputValidationError(f"{name} must be an integer label map, got dtype {labels.dtype}")
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        limit = 255 if n_objects is None else int(n_objects)
        if lo < 0 or hi > limit:
            raise InputValidationError(f"{name} ids must be in 0..{limit}, got range [{lo}, {hi}]")
    return labels


class PredictionArchive:
    """Predictions of a run: ``sequence -> round -> frame -> object -> RLE counts``.

    Each sequence stores its ``n_frames``, ``size`` [H, W] and ``n_objects`` once; a frame's entry
    lists only the objects present in it, so empty frames cost nothing. Rounds are ints (the
    session's round numbers); frames are 0-based indices.
    """

    def __init__(self) -> None:
        self._seqs: dict[str, dict[str, Any]] = {}

    def __contains__(self, key: object) -> bool:
        if isinstance(key, tuple) and len(key) == 2:
            seq, rnd = key
            return seq in self._seqs and str(rnd) in self._seqs[seq]["rounds"]
        return key in self._seqs

    def __len__(self) -> int:
        return sum(len(s["rounds"]) for s in self._seqs.values())

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for seq in self.sequences():
            for rnd in self.rounds(seq):
                yield seq, rnd

    def sequences(self) -> list[str]:
        """Sequences with at least one stored round, in insertion order."""
        return list(self._seqs)

    def rounds(self, sequence: str) -> list[int]:
        """Stored rounds of ``sequence`` in increasing order."""
        return sorted(int(r) for r in self._entry(sequence)["rounds"])

    def _entry(self, sequence: str) -> dict[str, Any]:
        if sequence not in self._seqs:
            raise InputValidationError(f"sequence {sequence!r} is not in the archive")
        return self._seqs[sequence]

    def add(
        self,
        sequence: str,
        round: int,
        masks: np.ndarray,
        n_objects: int | None = None,
        overwrite: bool = False,
    ) -> None:
        """Store the (T, H, W) label maps of ``sequence`` after ``round``.

        The first call for a sequence fixes its shape and object count (``n_objects`` or the
        largest id); later calls must match it.
        """
        if isinstance(round, bool) or not isinstance(round, (int, np.integer)):
            raise InputValidationError(f"round must be an int, got {round!r}")
        masks = _check_labels(masks, n_objects, "masks", ndim=3)
        t, h, w = masks.shape
        entry = self._seqs.get(sequence)
        if entry is None:
            k = int(masks.max()) if n_objects is None and masks.size else int(n_objects or 0)
            entry = {"n_frames": t, "size": [h, w], "n_objects": k, "rounds": {}}
        else:
            if n_objects is not None and int(n_objects) != entry["n_objects"]:
                raise InputValidationError(
                    f"n_objects={n_objects} for {sequence!r} differs from the archive's {entry['n_objects']}"
                )
            if (t, h, w) != (entry["n_frames"], *entry["size"]):
                raise InputValidationError(
                    f"masks for {sequence!r} have shape {masks.shape}, the archive has "
                    f"{(entry['n_frames'], *entry['size'])}"
                )
            if masks.size and int(masks.max()) > entry["n_objects"]:
                raise InputValidationError(
                    f"masks for {sequence!r} contain id {int(masks.max())} > n_objects={entry['n_objects']}"
                )
        key = str(int(round))
        if key in entry["rounds"] and not overwrite:
            raise InputValidationError(f"round {key} of {sequence!r} is already stored (pass overwrite=True)")
        frames: dict[str, dict[str, str]] = {}
        for f in range(t):
            counts = np.bincount(masks[f].ravel(), minlength=entry["n_objects"] + 1)
            present = [k for k in range(1, entry["n_objects"] + 1) if counts[k]]
            if present:
                rles = encode_masks(np.stack([masks[f] == k for k in present]))
                frames[str(f)] = {str(k): rle["counts"] for k, rle in zip(present, rles, strict=True)}
        entry["rounds"][key] = frames
        self._seqs[sequence] = entry

    def get(self, sequence: str, round: int) -> np.ndarray:
        """The stored (T, H, W) uint8 label maps of ``sequence`` after ``round``."""
        entry = self._entry(sequence)
        key = str(int(round))
        if key not in entry["rounds"]:
            raise InputValidationError(
                f"round {round!r} of {sequence!r} is not stored (have {self.rounds(sequence)})"
            )
        h, w = entry["size"]
        out = np.zeros((entry["n_frames"], h, w), dtype=np.uint8)
        for f, objs in entry["rounds"][key].items():
            rles = {int(k): {"size": [h, w], "counts": c} for k, c in objs.items()}
            out[int(f)] = decode_labels(rles, (h, w))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the file content)."""
        return {"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, "sequences": self._seqs}

    def save(self, path: str | Path) -> Path:
        """Atomically write the archive as compact JSON."""
        return atomic_write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | Path) -> PredictionArchive:
        """Read an archive written by :meth:`save`, checking its structure."""
        path = Path(path)
        if not path.is_file():
            raise MissingDataError("prediction archive does not exist", path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"prediction archive is not valid JSON ({exc})", path) from exc
        if not isinstance(data, dict) or data.get("format") != ARCHIVE_FORMAT:
            raise CorruptFileError(f"not a prediction archive (format must be {ARCHIVE_FORMAT!r})", path)
        if data.get("version") != ARCHIVE_VERSION:
            raise CorruptFileError(f"unsupported archive version {data.get('version')!r}", path)
        seqs = data.get("sequences")
        if not isinstance(seqs, dict):
            raise CorruptFileError("archive has no 'sequences' mapping", path)
        for name, entry in seqs.items():
            ok = (
                isinstance(entry, dict)
                and isinstance(entry.get("n_frames"), int)
                and isinstance(entry.get("n_objects"), int)
                and isinstance(entry.get("size"), list)
                and len(entry["size"]) == 2
                and isinstance(entry.get("rounds"), dict)
            )
            if not ok:
                raise CorruptFileError(f"archive entry {name!r} lacks n_frames/size/n_objects/rounds", path)
            for rnd, frames in entry["rounds"].items():
                if not rnd.lstrip("-").isdigit() or not isinstance(frames, dict):
                    raise CorruptFileError(f"archive entry {name!r}: bad round {rnd!r}", path)
                for f, objs in frames.items():
                    if not f.isdigit() or int(f) >= entry["n_frames"] or not isinstance(objs, dict):
                        raise CorruptFileError(f"archive entry {name!r} round {rnd}: bad frame {f!r}", path)
                    for k, counts in objs.items():
                        if (
                            not k.isdigit()
                            or not 1 <= int(k) <= entry["n_objects"]
                            or not isinstance(counts, str)
                        ):
                            raise CorruptFileError(
                                f"archive entry {name!r} round {rnd} frame {f}: bad object {k!r}", path
                            )
        archive = cls()
        archive._seqs = seqs
        return archive
