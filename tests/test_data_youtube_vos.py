"""YouTube-VOS -> DAVIS-layout conversion on a tiny generated YouTube-VOS folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivos_rl.data import DavisDataset, convert_youtube_vos, write_jpeg, write_mask
from ivos_rl.data.youtube_vos import main, select_videos
from ivos_rl.errors import CorruptFileError, InputValidationError, MaskFormatError, MissingDataError

H, W = 16, 24


def _labels(t: int, ids: tuple[int, ...]) -> np.ndarray:
    """Object ``ids[j]`` fills a 4x4 square at row 2 + t, column 5 * j (moves down with t)."""
    out = np.zeros((H, W), np.uint8)
    for j, oid in enumerate(ids):
        out[2 + t : 6 + t, 5 * j : 5 * j + 4] = oid
    return out


def make_youtube_vos(root: Path) -> Path:
    """Three videos with JPEGs on every frame 00000..00010 and masks on every 5th one.

    ``v1`` uses object ids 1 and 3 (meta.json also declares 4, which never appears); ``v2`` uses
    id 2 only; ``v3`` has one annotated frame.
    """
    meta: dict = {"videos": {}}
    spec = {"v1": ((1, 3), (0, 5, 10)), "v2": ((2,), (0, 5, 10)), "v3": ((1,), (0,))}
    for vid, (ids, annotated) in spec.items():
        for f in range(11):
            frame = np.zeros((H, W, 3), np.uint8)
            frame[:] = (10 * f, 50, 100)
            write_jpeg(root / "JPEGImages" / vid / f"{f:05d}.jpg", frame)
        for f in annotated:
            write_mask(root / "Annotations" / vid / f"{f:05d}.png", _labels(f, ids))
        objects = {str(i): {"category": f"cat{i}", "frames": [f"{f:05d}" for f in annotated]} for i in ids}
        if vid == "v1":
            objects["4"] = {"category": "ghost", "frames": ["00007"]}
        meta["videos"][vid] = {"objects": objects}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def ytvos(tmp_path: Path) -> Path:
    return make_youtube_vos(tmp_path / "ytvos")


def test_conversion_keeps_annotated_frames_and_remaps_ids(ytvos: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    mapping = convert_youtube_vos(ytvos, dst, height=None, resolution="orig", min_frames=2)
    assert sorted(mapping["videos"]) == ["v1", "v2"]  # v3 has a single annotated frame
    v1 = mapping["videos"]["v1"]
    assert v1["frames"] == ["00000", "00005", "00010"]
    assert v1["objects"] == {
        "1": {"original_id": 1, "category": "cat1"},
        "2": {"original_id": 3, "category": "cat3"},
    }
    assert v1["dropped_objects"] == [4]
    assert json.loads((dst / "youtube_vos.json").read_text())["videos"]["v1"] == v1
    assert (dst / "ImageSets" / "youtube-vos" / "train.txt").read_text() == "v1\nv2\n"
    # JPEGs are copied byte for byte, renumbered 00000, 00001, 00002.
    for new, old in enumerate(("00000", "00005", "00010")):
        src_bytes = (ytvos / "JPEGImages" / "v1" / f"{old}.jpg").read_bytes()
        assert (dst / "JPEGImages" / "orig" / "v1" / f"{new:05d}.jpg").read_bytes() == src_bytes
    ds = DavisDataset(dst, "orig", image_set="youtube-vos/train")
    assert ds.info("v1").n_objects == 2 and ds.info("v2").n_objects == 1
    masks = ds.load_masks("v1")
    for new, old in enumerate((0, 5, 10)):
        expected = _labels(old, (1, 3))
        expected[expected == 3] = 2
        np.testing.assert_array_equal(masks[new], expected)
    np.testing.assert_array_equal(ds.load_masks("v2")[1], (_labels(5, (2,)) > 0).astype(np.uint8))


def test_conversion_with_resize(ytvos: Path, tmp_path: Path) -> None:
    convert_youtube_vos(ytvos, tmp_path / "out", height=8, resolution="8p", videos=["v1"])
    ds = DavisDataset(tmp_path / "out", "8p")
    assert ds.sequences == ["v1"]
    info = ds.info("v1")
    assert (info.height, info.width, info.n_frames) == (8, 12, 3)
    mask = ds.load_masks("v1", [0])[0]
    # Halving with pixel-centre nearest sampling reads odd input rows/columns: square rows 2..5,
    # columns 0..3 (id 1) and 5..8 (id 3 -> 2) become rows 1..2 (inputs 3, 5), columns 0..1
    # (inputs 1, 3) and 2..3 (inputs 5, 7).
    expected = np.zeros((8, 12), np.uint8)
    expected[1:3, 0:2] = 1
    expected[1:3, 2:4] = 2
    np.testing.assert_array_equal(mask, expected)


def test_subset_by_seed(ytvos: Path, tmp_path: Path) -> None:
    meta = json.loads((ytvos / "meta.json").read_text())["videos"]
    picks = {tuple(select_videos(ytvos, meta, n_videos=1, seed=s)) for s in range(12)}
    assert picks == {("v1",), ("v2",)}  # only eligible videos, and the seed matters
    assert select_videos(ytvos, meta, n_videos=1, seed=4) == select_videos(ytvos, meta, n_videos=1, seed=4)
    assert select_videos(ytvos, meta, min_frames=1) == ["v1", "v2", "v3"]
    with pytest.raises(InputValidationError, match="n_videos"):
        select_videos(ytvos, meta, n_videos=3)
    with pytest.raises(InputValidationError, match="nope"):
        select_videos(ytvos, meta, videos=["nope"])


def test_undeclared_object_id_names_the_mask(ytvos: Path, tmp_path: Path) -> None:
    bad = ytvos / "Annotations" / "v2" / "00005.png"
    write_mask(bad, _labels(5, (7,)))
    with pytest.raises(MaskFormatError) as err:
        convert_youtube_vos(ytvos, tmp_path / "out", height=None)
    assert err.value.path == bad and "[7]" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_inputs(ytvos: Path, tmp_path: Path) -> None:
    (ytvos / "JPEGImages" / "v2" / "00010.jpg").unlink()
    with pytest.raises(MissingDataError) as err:
        convert_youtube_vos(ytvos, tmp_path / "out")
    assert err.value.path == ytvos / "JPEGImages" / "v2" / "00010.jpg"
    (ytvos / "meta.json").write_text("{}")
    with pytest.raises(CorruptFileError, match="videos"):
        convert_youtube_vos(ytvos, tmp_path / "out")
    (ytvos / "meta.json").unlink()
    with pytest.raises(MissingDataError, match=r"meta\.json"):
        convert_youtube_vos(ytvos, tmp_path / "out")


def test_cli(ytvos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(ytvos), str(tmp_path / "out"), "--height", "8", "--videos", "1", "--seed", "0"]) == 0
    assert "converted 1 videos (3 annotated frames)" in capsys.readouterr().out
    assert len(DavisDataset(tmp_path / "out", "8p").sequences) == 1
