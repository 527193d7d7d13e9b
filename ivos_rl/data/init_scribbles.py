"""Initial scribbles for datasets that ship without human ones (DAVIS-2016, YouTube-VOS, synthetic).

DAVIS-Interactive starts every session from a human scribble file ``Scribbles/<seq>/NNN.json``.
Where none exist we let the scribble robot draw them against an empty prediction, i.e. the
robot's scribbles cover each object as a user's first strokes would. The variants differ by the
annotated frame: variant 1 is the frame where every object is visible and the smallest object is
largest (the easiest place to start); the others are drawn by seed, one per stretch of the
remaining good frames, so they are spread over the video.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.data import layout
from ivos_rl.data.davis import DavisDataset, validate_scribble_dict
from ivos_rl.data.metadata import metadata_path, write_metadata
from ivos_rl.errors import DatasetError, InputValidationError, IvosError, ScribbleError
from ivos_rl.utils.io import atomic_write_json
from ivos_rl.utils.logging import get_logger, setup_logging
from ivos_rl.utils.seed import name_rng

_log = get_logger(__name__)


def choose_frames(masks: np.ndarray, n_objects: int, n_variants: int, rng: np.random.Generator) -> list[int]:
    """0-based frames to scribble on, one per variant (distinct unless there are fewer frames).

    Candidates are the frames showing the most objects; the first variant is the candidate whose
    smallest visible object is largest (ties: larger total area, then earlier frame).
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise InputValidationError(f"masks must be (T, H, W), got shape {masks.shape}")
    if isinstance(n_variants, bool) or not isinstance(n_variants, int) or n_variants < 1:
        raise InputValidationError(f"n_variants must be an int >= 1, got {n_variants!r}")
    t = masks.shape[0]
    k = max(int(n_objects), 1)
    area = np.stack([(masks == obj).sum(axis=(1, 2)) for obj in range(1, k + 1)], axis=1)  # (T, K)
    n_visible = (area > 0).sum(axis=1)
    smallest = np.where(area > 0, area, np.iinfo(np.int64).max).min(axis=1)
    smallest[n_visible == 0] = 0
    # Rank every frame: most objects visible, then the largest smallest-object, then total area.
    order = sorted(range(t), key=lambda f: (-n_visible[f], -smallest[f], -area[f].sum(), f))
    best = order[0]
    candidates = sorted(f for f in range(t) if n_visible[f] == n_visible[best] and f != best)
    chosen = [best]
    n_rest = n_variants - 1
    if n_rest > 0 and candidates:
        chunks = np.array_split(np.asarray(candidates), min(n_rest, len(candidates)))
        chosen += [int(c[rng.integers(len(c))]) for c in chunks]
    for f in order:  # too few good frames: take the next best ones
        if len(chosen) >= min(n_variants, t):
            break
        if f not in chosen:
            chosen.append(f)
    while len(chosen) < n_variants:  # fewer frames than variants: repeat in rank order
        chosen.append(order[(len(chosen) - t) % t])
    return chosen


class StepClock:
    """A fake clock for the robot's stroke times: 0, 1, 2... seconds from each ``reset``.

    The robot stamps strokes with wall time by default, which would make every generated file
    different; with this clock the files depend only on the data and the seed.
    """

    def __init__(self, step: float = 1.0) -> None:
        self.step = float(step)
        self._now = 0.0

    def reset(self) -> None:
        self._now = 0.0

    def __call__(self) -> float:
        now = self._now
        self._now += self.step
        return now


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy of a robot result (numpy scalars and arrays become Python numbers/lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def write_initial_scribbles(
    root: str | Path,
    resolution: str = "480p",
    n_variants: int = 3,
    seed: int = 0,
    sequences: list[str] | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    robot: Any | None = None,
) -> dict[str, list[int]]:
    """Write ``<out_dir>/<seq>/001..N.json`` for each sequence; return the chosen frames.

    ``out_dir`` defaults to ``<root>/Scribbles`` (pass another folder for read-only datasets and
    give it to ``DavisDataset(scribbles_root=...)``). Existing files are an error unless
    ``overwrite``. The metadata file, if any, is rewritten with the new scribble counts.
    ``robot`` defaults to ``ivos_rl.robot.ScribbleRobot(seed=seed)`` with a :class:`StepClock`
    (restarted for every file) so the output is byte-identical for the same seed; a robot passed
    in keeps its own clock.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputValidationError(f"seed must be an int >= 0, got {seed!r}")
    if isinstance(n_variants, bool) or not isinstance(n_variants, int) or n_variants < 1:
        raise InputValidationError(f"n_variants must be an int >= 1, got {n_variants!r}")
    clock: StepClock | None = None
    if robot is None:
        # Imported here: the robot belongs to the protocol layer, which itself reads datasets.
        from ivos_rl.robot import ScribbleRobot

        clock = StepClock()
        robot = ScribbleRobot(seed=int(seed), clock=clock)
    root = Path(root)
    default_out = out_dir is None
    out = layout.scribbles_dir(root) if out_dir is None else Path(out_dir)
    dataset = DavisDataset(root, resolution, sequences=sequences, scribbles_root=None if default_out else out)
    chosen: dict[str, list[int]] = {}
    for seq in dataset.sequences:
        info = dataset.info(seq)
        existing = [i for i in layout.list_scribble_indices(out, seq) if i <= n_variants]
        if existing and not overwrite:
            raise DatasetError(
                f"scribbles already exist for {seq!r} (pass overwrite=True / --overwrite)",
                layout.scribble_file(out, seq, existing[0]),
            )
        gt = dataset.load_masks(seq)
        rng = name_rng(int(seed), "init-scribbles", seq)  # by name: a subset picks the same frames
        frames = choose_frames(gt, info.n_objects, n_variants, rng)
        empty = np.zeros_like(gt)
        for variant, frame in enumerate(frames, start=1):
            if clock is not None:
                clock.reset()
            scribble = _jsonable(robot.interact(seq, empty, gt, nb_objects=info.n_objects, frame=frame))
            if not isinstance(scribble, dict):
                raise ScribbleError(
                    f"robot returned {type(scribble).__name__} for {seq!r} frame {frame}, not a dict"
                )
            scribble.setdefault("sequence", seq)
            scribble.setdefault("annotated_frame", int(frame))
            path = layout.scribble_file(out, seq, variant)
            validate_scribble_dict(scribble, info, path)
            if not any(scribble["scribbles"][frame]):
                _log.warning("robot drew nothing on %s frame %d (objects too small?): %s", seq, frame, path)
            atomic_write_json(path, scribble, indent=None)
        chosen[seq] = frames
        _log.info("scribbles for %s on frames %s", seq, frames)
    if default_out and metadata_path(root, resolution).is_file():
        write_metadata(root, resolution)
    return chosen


def main(argv: list[str] | None = None) -> int:
    """``ivos-rl init-scribbles ROOT --resolution 240p --variants 3 --seed 0``."""
    parser = argparse.ArgumentParser(prog="ivos-rl init-scribbles", description=main.__doc__)
    parser.add_argument("root", type=Path, help="DAVIS-layout dataset folder")
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--variants", type=int, default=3, help="scribble files per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequences", nargs="*", default=None, help="only these sequences")
    parser.add_argument("--out", type=Path, default=None, help="scribbles folder (default ROOT/Scribbles)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        chosen = write_initial_scribbles(
            args.root,
            resolution=args.resolution,
            n_variants=args.variants,
            seed=args.seed,
            sequences=args.sequences,
            out_dir=args.out,
            overwrite=args.overwrite,
        )
    except IvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"frames": chosen}))
    return 0
