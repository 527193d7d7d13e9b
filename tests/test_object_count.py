"""Object count: the first annotated frame defines the objects (DAVIS convention); a stray id is refused.

Issue #17 item 4: counting the largest id over every mask let one stray 10x10 patch of id 3 turn a
1-object video into 3 objects (empty objects score J&F 1, which inflated the round-AUC).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivos_rl.data import DavisDataset, build_metadata, write_metadata
from ivos_rl.data.imageio import write_jpeg, write_mask
from ivos_rl.data.metadata import main as make_metadata
from ivos_rl.errors import MaskFormatError

ROOT_SAMPLE = Path(__file__).resolve().parents[1] / "ivos_rl" / "sample_data" / "davis2016_excerpt"


def _write_video(root: Path, masks: np.ndarray, name: str = "v") -> Path:
    for t, mask in enumerate(masks):
        frame = np.full((*mask.shape, 3), 90, np.uint8)
        write_jpeg(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", frame)
        write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", mask)
    return root


def _one_object_with_stray(t_stray: int = 2) -> np.ndarray:
    """3 frames of 20x20: object 1 is rows/cols 0..9; frame ``t_stray`` also holds a 10x10 patch of id 3."""
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[:, :10, :10] = 1
    masks[t_stray, 10:, 10:] = 3
    return masks


def test_without_metadata_the_first_frame_defines_the_objects(tmp_path: Path) -> None:
    root = _write_video(tmp_path / "d", _one_object_with_stray())
    ds = DavisDataset(root, "480p")
    assert ds.info("v").n_objects == 1  # not 3
    np.testing.assert_array_equal(ds.load_masks("v", [0, 1])[:, :10, :10], 1)
    with pytest.raises(MaskFormatError, match="object id 3 exceeds the 1 objects") as exc:
        ds.load_masks("v")
    assert exc.value.path == root / "Annotations" / "480p" / "v" / "00002.png"
    assert "first annotated frame" in str(exc.value)


def test_first_annotated_frame_skips_empty_leading_masks(tmp_path: Path) -> None:
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[1:, 0:5, 0:5] = 1
    masks[1:, 15:, 15:] = 2
    ds = DavisDataset(_write_video(tmp_path / "d", masks), "480p")
    assert ds.info("v").n_objects == 2
    assert ds.load_masks("v").max() == 2


def test_make_metadata_refuses_a_stray_id_and_names_the_file(tmp_path: Path) -> None:
    root = _write_video(tmp_path / "d", _one_object_with_stray())
    with pytest.raises(MaskFormatError, match="--objects all") as exc:
        build_metadata(root, "480p")
    assert exc.value.path == root / "Annotations" / "480p" / "v" / "00002.png"
    assert make_metadata([str(root), "--resolution", "480p"]) == 1
    assert not (root / "davis-480p.json").exists()  # nothing half-written


def test_objects_entering_later_need_the_explicit_all_rule(tmp_path: Path) -> None:
    root = _write_video(tmp_path / "d", _one_object_with_stray())
    assert make_metadata([str(root), "--resolution", "480p", "--objects", "all"]) == 0
    meta = json.loads((root / "davis-480p.json").read_text())
    assert meta["objects_from"] == "all" and meta["sequences"]["v"]["num_objects"] == 3
    assert DavisDataset(root, "480p").info("v").n_objects == 3
    # a rewrite (as init-scribbles does) keeps the recorded rule instead of failing
    write_metadata(root, "480p")
    assert json.loads((root / "davis-480p.json").read_text())["objects_from"] == "all"


def test_clean_video_gets_the_same_count_either_way(tmp_path: Path) -> None:
    root = _write_video(tmp_path / "d", _one_object_with_stray()[:2])  # frames 0-1: no stray
    first = build_metadata(root, "480p")
    assert first["objects_from"] == "first" and first["sequences"]["v"]["num_objects"] == 1
    assert build_metadata(root, "480p", objects="all")["sequences"]["v"]["num_objects"] == 1


def test_bundled_sample_ships_its_metadata() -> None:
    meta = json.loads((ROOT_SAMPLE / "davis-240p.json").read_text())
    assert meta["objects_from"] == "first"
    assert sorted(meta["sequences"]) == ["dog-agility", "drift-turn", "horsejump-low"]
    ds = DavisDataset(ROOT_SAMPLE, "240p", image_set="2016/train")
    assert ds._metadata is not None
    assert all(ds.info(s).n_objects == 1 and ds.info(s).n_frames == 25 for s in ds.sequences)
