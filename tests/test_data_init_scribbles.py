"""Initial scribble files: frame choice, files written, determinism, and the real robot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.data import DavisDataset, choose_frames, write_initial_scribbles, write_metadata
from ivos_rl.data.init_scribbles import main
from ivos_rl.errors import DatasetError, ScribbleError


def _hand_masks() -> np.ndarray:
    """5 frames, 2 objects. Visible objects / smallest area: f0 1/-, f1 2/1, f2 2/2, f3 2/1, f4 0/-."""
    m = np.zeros((5, 4, 4), np.uint8)
    m[0, 0, 0:3] = 1
    m[1, 0, 0:4] = 1
    m[1, 3, 3] = 2
    m[2, 0, 0:2] = 1
    m[2, 3, 2:4] = 2
    m[3, 0, 0] = 1
    m[3, 3, 3] = 2
    return m


def test_choose_frames_by_hand() -> None:
    rng = np.random.default_rng(0)
    masks = _hand_masks()
    assert choose_frames(masks, 2, 1, rng) == [2]  # both objects, largest smallest object
    # The other frames showing both objects are 1 and 3, one per stretch.
    assert choose_frames(masks, 2, 3, rng) == [2, 1, 3]
    # Then the next best frames: f0 (one object), then f4 (none).
    assert choose_frames(masks, 2, 5, rng) == [2, 1, 3, 0, 4]
    # More variants than frames: repeat in rank order.
    assert choose_frames(masks, 2, 7, rng) == [2, 1, 3, 0, 4, 2, 1]


def test_choose_frames_depends_only_on_the_seed() -> None:
    masks = np.zeros((40, 6, 6), np.uint8)
    masks[:, 2:4, 2:4] = 1
    masks[7, :, :] = 1  # the largest object: variant 1
    a = choose_frames(masks, 1, 3, np.random.default_rng(11))
    b = choose_frames(masks, 1, 3, np.random.default_rng(11))
    assert a == b and a[0] == 7 and len(set(a)) == 3
    # Variants 2 and 3 come from the first and second half of the remaining frames.
    assert a[1] < 20 <= a[2]
    draws = {tuple(choose_frames(masks, 1, 3, np.random.default_rng(s))) for s in range(6)}
    assert len(draws) > 1


class CentroidRobot:
    """Test double with the robot's interface: one two-point stroke on each visible object."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
    ) -> dict[str, Any]:
        assert frame is not None and not pred_masks.any()
        self.calls.append((sequence, frame, int(nb_objects or 0)))
        h, w = gt_masks.shape[1:]
        strokes = []
        for k in range(1, int(nb_objects or 0) + 1):
            ys, xs = np.nonzero(gt_masks[frame] == k)
            if ys.size:
                x, y = xs.mean() / w, ys.mean() / h
                strokes.append(
                    {"path": [[x, y], [x, y]], "object_id": np.int64(k), "start_time": 0, "end_time": 1}
                )
        scribbles: list[list[dict[str, Any]]] = [[] for _ in range(gt_masks.shape[0])]
        scribbles[frame] = strokes
        return {"scribbles": scribbles, "sequence": sequence}


def test_writes_valid_files_and_updates_metadata(tiny_root: Path) -> None:
    write_metadata(tiny_root, "480p")
    robot = CentroidRobot()
    chosen = write_initial_scribbles(tiny_root, "480p", n_variants=2, seed=0, robot=robot)
    # "a": frames 0 and 1 show both objects, each with an 8-px smallest object; frame 0 has more
    # total area (40 + 8 px against 24 + 8 px), so it is variant 1. "b": ties, earlier frame first.
    assert chosen["a"] == [0, 1]
    assert chosen["b"] == [0, 1]
    assert robot.calls[:2] == [("a", 0, 2), ("a", 1, 2)]
    ds = DavisDataset(tiny_root, "480p")  # metadata was rewritten: its scribble counts match again
    assert ds.samples() == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    first = ds.load_scribbles("a", 1)
    assert first["annotated_frame"] == 0
    assert [s["object_id"] for s in first["scribbles"][0]] == [1, 2]
    # object 1 covers columns 0..4 of the 8x10 frame: centroid x = 2 / 10
    assert first["scribbles"][0][0]["path"][0] == pytest.approx([0.2, 3.5 / 8])
    with pytest.raises(DatasetError, match="already exist"):
        write_initial_scribbles(tiny_root, "480p", n_variants=2, robot=CentroidRobot())
    write_initial_scribbles(tiny_root, "480p", n_variants=2, overwrite=True, robot=CentroidRobot())


def test_same_seed_same_files(tiny_root: Path, tmp_path: Path) -> None:
    out1, out2 = tmp_path / "s1", tmp_path / "s2"
    write_initial_scribbles(tiny_root, "480p", n_variants=3, seed=4, out_dir=out1, robot=CentroidRobot())
    write_initial_scribbles(tiny_root, "480p", n_variants=3, seed=4, out_dir=out2, robot=CentroidRobot())
    files1 = sorted(p.relative_to(out1) for p in out1.rglob("*.json"))
    assert len(files1) == 6
    for rel in files1:
        assert (out1 / rel).read_bytes() == (out2 / rel).read_bytes()
    assert not (tiny_root / "Scribbles").exists()  # out_dir leaves the dataset untouched


def test_robot_output_is_validated(tiny_root: Path) -> None:
    class ShortRobot(CentroidRobot):
        def interact(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            out = super().interact(*args, **kwargs)
            out["scribbles"] = out["scribbles"][:-1]
            return out

    with pytest.raises(ScribbleError, match="frame lists"):
        write_initial_scribbles(tiny_root, "480p", n_variants=1, robot=ShortRobot())
    assert not list(tiny_root.rglob("*.json"))  # nothing was written


def test_real_robot_scribbles_cover_the_objects(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_root), "--resolution", "480p", "--variants", "2", "--seed", "0"]) == 0
    chosen = json.loads(capsys.readouterr().out)["frames"]
    assert chosen == {"a": [0, 1], "b": [0, 1]}
    ds = DavisDataset(tiny_root, "480p")
    gt = ds.load_masks("a")
    for idx, frame in zip((1, 2), chosen["a"], strict=True):
        scribble = ds.load_scribbles("a", idx)
        strokes = scribble["scribbles"][frame]
        assert {s["object_id"] for s in strokes} == {1, 2}  # an empty prediction misses both objects
        for s in strokes:  # every scribble point lies on its object
            for x, y in s["path"]:
                r, c = min(int(y * 8), 7), min(int(x * 10), 9)
                assert gt[frame, r, c] == s["object_id"]
        assert all(not strokes_t for t, strokes_t in enumerate(scribble["scribbles"]) if t != frame)


def test_real_robot_files_are_byte_identical_for_a_seed(tiny_root: Path, tmp_path: Path) -> None:
    for name in ("r1", "r2"):
        write_initial_scribbles(tiny_root, "480p", n_variants=2, seed=1, out_dir=tmp_path / name)
    files = sorted(p.relative_to(tmp_path / "r1") for p in (tmp_path / "r1").rglob("*.json"))
    assert len(files) == 4
    for rel in files:
        assert (tmp_path / "r1" / rel).read_bytes() == (tmp_path / "r2" / rel).read_bytes()
    stroke = json.loads((tmp_path / "r1" / "a" / "001.json").read_text())["scribbles"][0][0]
    # The step clock restarts per file (seconds 0, 1, 2...), so times are small, not wall time.
    assert 0.0 <= stroke["start_time"] <= stroke["end_time"] < 10.0
