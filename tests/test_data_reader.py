"""DavisDataset on hand-made, synthetic, committed-real and (when present) shared DAVIS data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ivos_rl.data import DavisDataset, write_metadata
from ivos_rl.errors import InputValidationError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def _expected_a() -> np.ndarray:
    a = np.zeros((3, 8, 10), np.uint8)
    a[0, :, 0:5] = 1
    a[1:, :, 0:3] = 1
    a[0:2, 6:8, 6:10] = 2
    return a


def test_hand_made_dataset_reads_back_exactly(tiny_root: Path) -> None:
    ds = DavisDataset(tiny_root, "480p")
    assert ds.sequences == ["a", "b"]
    assert len(ds) == 2
    info = ds.info("a")
    assert (info.n_frames, info.n_objects, info.height, info.width) == (3, 2, 8, 10)
    assert info.frame_names == ("00000", "00001", "00002")
    assert info.n_scribbles == 0
    assert ds.info("b").n_objects == 1
    masks = ds.load_masks("a")
    assert masks.dtype == np.uint8 and masks.shape == (3, 8, 10)
    np.testing.assert_array_equal(masks, _expected_a())
    frames = ds.load_frames("a", [2, 0])
    assert frames.shape == (2, 8, 10, 3) and frames.dtype == np.uint8
    # Flat colours survive JPEG almost exactly: frame 2 is (80, 100, 200), frame 0 is (0, 100, 200).
    assert np.abs(frames[0].astype(int) - [80, 100, 200]).max() <= 3
    assert np.abs(frames[1].astype(int) - [0, 100, 200]).max() <= 3
    np.testing.assert_array_equal(ds.load_masks("a", np.array([1])), _expected_a()[1:2])
    assert ds.load_masks("a", []).shape == (0, 8, 10)


def test_image_set_and_explicit_sequences_select(tiny_root: Path) -> None:
    assert DavisDataset(tiny_root, "480p", image_set="2017/train").sequences == ["b"]
    assert DavisDataset(tiny_root, "480p", sequences=["b", "a", "b"]).sequences == ["b", "a"]
    ds = DavisDataset(tiny_root, "480p", image_set="2017/train")
    with pytest.raises(InputValidationError, match="'a'"):
        ds.info("a")


def test_working_size_resizes_frames_bilinear_and_masks_nearest(tiny_root: Path) -> None:
    ds = DavisDataset(tiny_root, "480p", working_size=(4, 5))
    info = ds.info("a")
    assert (info.height, info.width, info.original_size) == (4, 5, (8, 10))
    masks = ds.load_masks("a", [0])[0]
    # Pixel-centre nearest sampling: output column x reads input column 2x+1, row y reads row 2y+1.
    expected = np.zeros((4, 5), np.uint8)
    expected[:, 0:2] = 1  # input columns 1 and 3 belong to object 1
    expected[3, 3:5] = 2  # input row 7, columns 7 and 9 belong to object 2
    np.testing.assert_array_equal(masks, expected)
    frames = ds.load_frames("a", [2])
    assert frames.shape == (1, 4, 5, 3)
    assert np.abs(frames[0].astype(int) - [80, 100, 200]).max() <= 3


def test_scribbles_listing_loading_and_samples(tiny_root: Path) -> None:
    folder = tiny_root / "Scribbles" / "a"
    folder.mkdir(parents=True)
    stroke = {"path": [[0.1, 0.2], [0.3, 0.4]], "object_id": 2, "start_time": 0.0, "end_time": 1.0}
    data = {"scribbles": [[], [stroke], []], "sequence": "a"}
    (folder / "002.json").write_text(json.dumps(data))
    (folder / "001.json").write_text(json.dumps(data))
    (folder / ".003.json.abc.tmp").write_text("partial")  # atomic-write leftovers are ignored
    ds = DavisDataset(tiny_root, "480p")
    assert ds.scribble_indices("a") == [1, 2]
    assert ds.scribble_indices("b") == []
    assert ds.info("a").n_scribbles == 2
    assert ds.load_scribbles("a", 2) == data
    assert ds.samples() == [("a", 1), ("a", 2)]


def test_scribbles_root_can_live_outside_the_dataset(tiny_root: Path, tmp_path: Path) -> None:
    other = tmp_path / "my_scribbles"
    (other / "b").mkdir(parents=True)
    (other / "b" / "001.json").write_text(json.dumps({"scribbles": [[], []], "sequence": "b"}))
    ds = DavisDataset(tiny_root, "480p", scribbles_root=other)
    assert ds.samples() == [("b", 1)]
    assert ds.load_scribbles("b", 1)["sequence"] == "b"


def test_metadata_is_used_when_present(tiny_root: Path) -> None:
    path = write_metadata(tiny_root, "480p")
    meta = json.loads(path.read_text())
    meta["sequences"]["a"]["num_objects"] = 5  # object count is taken from the file, not recounted
    path.write_text(json.dumps(meta))
    ds = DavisDataset(tiny_root, "480p")
    assert ds.info("a").n_objects == 5
    np.testing.assert_array_equal(ds.load_masks("a"), _expected_a())


def test_synthetic_dataset_reads(synthetic_root: Path) -> None:
    ds = DavisDataset(synthetic_root, "480p", image_set="2017/train")
    assert ds.sequences == ["synthetic-000", "synthetic-001", "synthetic-002"]
    for seq in ds.sequences:
        info = ds.info(seq)
        assert (info.n_frames, info.height, info.width) == (12, 64, 96)
        assert 1 <= info.n_objects <= 2
        assert info.n_scribbles == 3
        masks = ds.load_masks(seq)
        assert set(np.unique(masks).tolist()) == set(range(info.n_objects + 1))
        assert ds.load_frames(seq, [0, 11]).shape == (2, 64, 96, 3)
        scribble = ds.load_scribbles(seq, 1)
        assert len(scribble["scribbles"]) == 12 and scribble["sequence"] == seq
        # Drawn by the robot on one frame against an empty prediction: strokes on every object
        # visible there, each point on its object.
        frame = scribble["annotated_frame"]
        strokes = scribble["scribbles"][frame]
        assert all(not s for t, s in enumerate(scribble["scribbles"]) if t != frame)
        visible = {int(k) for k in np.unique(masks[frame]) if k}
        assert {s["object_id"] for s in strokes} == visible
        for s in strokes:
            xy = np.asarray(s["path"])
            cols = np.clip((xy[:, 0] * 96).astype(int), 0, 95)
            rows = np.clip((xy[:, 1] * 64).astype(int), 0, 63)
            assert (masks[frame, rows, cols] == s["object_id"]).mean() > 0.95
    assert len(ds.samples()) == 9


def test_committed_davis_excerpt(davis_excerpt_root: Path) -> None:
    ds = DavisDataset(davis_excerpt_root, "240p", image_set="2016/train")
    assert ds.sequences == ["bear", "rollerblade"]
    for seq in ds.sequences:
        info = ds.info(seq)
        assert (info.n_frames, info.n_objects, info.height, info.width) == (10, 1, 240, 427)
        masks = ds.load_masks(seq, [0, 9])
        direct = np.asarray(Image.open(davis_excerpt_root / "Annotations" / "240p" / seq / "00009.png"))
        np.testing.assert_array_equal(masks[1], direct)
        assert set(np.unique(masks).tolist()) == {0, 1}
        frames = ds.load_frames(seq, [3])
        direct_rgb = np.asarray(Image.open(davis_excerpt_root / "JPEGImages" / "240p" / seq / "00003.jpg"))
        np.testing.assert_array_equal(frames[0], direct_rgb)
    # The bear fills a large part of the frame, the rollerblader a small one.
    bear = (DavisDataset(davis_excerpt_root, "240p").load_masks("bear", [0]) == 1).mean()
    roller = (DavisDataset(davis_excerpt_root, "240p").load_masks("rollerblade", [0]) == 1).mean()
    assert bear > 2 * roller > 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared DAVIS-2016 data not present")
def test_shared_davis2016_train() -> None:
    ds = DavisDataset(SHARED, "240p", image_set="2016/train")
    assert len(ds.sequences) == 30
    infos = [ds.info(seq) for seq in ds.sequences]
    assert sum(i.n_frames for i in infos) == 2079  # as stated in the data's README
    assert {i.n_objects for i in infos} == {1}
    assert {(i.height, i.width) for i in infos} == {(240, 427)}
    frames = ds.load_frames("bear")
    masks = ds.load_masks("bear")
    assert frames.shape == (82, 240, 427, 3) and masks.shape == (82, 240, 427)
    assert (masks == 1).any(axis=(1, 2)).all()
