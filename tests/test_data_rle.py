"""COCO RLE round trips, the prediction archive, and Places-style instance PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from ivos_rl.data import (
    PredictionArchive,
    decode_instance_png,
    decode_labels,
    decode_mask,
    encode_instance_png,
    encode_labels,
    encode_mask,
    encode_masks,
    instance_annotations,
)
from ivos_rl.data.instance_png import write_instance_png
from ivos_rl.data.rle import run_lengths
from ivos_rl.errors import CorruptFileError, InputValidationError, MaskFormatError, MissingDataError


def test_hand_made_mask_round_trip_and_area() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 3:7] = 1  # 3 x 4 = 12 pixels
    rle = encode_mask(mask)
    assert rle["size"] == [10, 10] and isinstance(rle["counts"], str)
    assert json.loads(json.dumps(rle)) == rle  # JSON-ready
    np.testing.assert_array_equal(decode_mask(rle), mask)
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == 12


def test_uncompressed_counts_match_column_major_runs() -> None:
    # 3x3 with only the centre set: column-major runs are 4 zeros, 1 one, 4 zeros.
    mask = np.zeros((3, 3), np.uint8)
    mask[1, 1] = 1
    rle = encode_mask(mask)
    runs = mask_utils.frPyObjects({"size": [3, 3], "counts": [4, 1, 4]}, 3, 3)
    assert rle["counts"] == runs["counts"].decode()
    assert run_lengths(rle["counts"]) == [4, 1, 4]


@pytest.mark.parametrize("value", [0, 1])
def test_empty_and_full_masks(value: int) -> None:
    mask = np.full((7, 5), value, np.uint8)
    rle = encode_mask(mask)
    np.testing.assert_array_equal(decode_mask(rle), mask)
    np.testing.assert_array_equal(decode_mask(encode_mask(mask.astype(bool))), mask)


def test_random_masks_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((20, 33, 47)) < rng.random((20, 1, 1))
    rles = encode_masks(masks)
    assert len(rles) == 20
    for m, rle in zip(masks, rles, strict=True):
        np.testing.assert_array_equal(decode_mask(rle), m.astype(np.uint8))
        runs = run_lengths(rle["counts"])
        assert sum(runs) == m.size and sum(runs[1::2]) == m.sum()
    # bytes counts (as pycocotools returns them) decode as well
    raw = {"size": rles[0]["size"], "counts": rles[0]["counts"].encode()}
    np.testing.assert_array_equal(decode_mask(raw), masks[0].astype(np.uint8))


def test_non_binary_and_bad_rles_are_rejected() -> None:
    with pytest.raises(InputValidationError, match="binary"):
        encode_mask(np.full((3, 3), 2, np.uint8))
    with pytest.raises(InputValidationError, match=r"\(H, W\)"):
        encode_mask(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(InputValidationError, match="'size' and 'counts'"):
        decode_mask({"counts": "x"})
    # Runs 4, 1 cover 5 of 9 pixels: pycocotools would return uninitialised memory.
    short = mask_utils.frPyObjects({"size": [3, 3], "counts": [4, 1]}, 3, 3)["counts"].decode()
    with pytest.raises(InputValidationError, match="cover 5 pixels"):
        decode_mask({"size": [3, 3], "counts": short})
    with pytest.raises(InputValidationError):
        decode_mask({"size": [3, 3], "counts": "zzz"})


def test_label_map_round_trip_omits_absent_objects() -> None:
    labels = np.zeros((6, 8), np.uint8)
    labels[0:2, 0:2] = 1
    labels[4:6, 5:8] = 3
    rles = encode_labels(labels, n_objects=3)
    assert sorted(rles) == [1, 3]  # object 2 is absent
    np.testing.assert_array_equal(decode_labels(rles, (6, 8)), labels)
    with pytest.raises(InputValidationError, match=r"0\.\.2"):
        encode_labels(labels, n_objects=2)
    with pytest.raises(InputValidationError, match="overlaps"):
        decode_labels({1: encode_mask(labels == 1), 2: encode_mask(labels == 1)}, (6, 8))


def _video(seed: int, t: int = 5, h: int = 12, w: int = 16, k: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, k + 1, (t, h, w)).astype(np.uint8)


def test_archive_round_trip_through_file(tmp_path: Path) -> None:
    archive = PredictionArchive()
    v1, v2 = _video(1), _video(2)
    v2[3] = 0  # an empty frame
    archive.add("seq-a", 1, v1, n_objects=3)
    archive.add("seq-a", 2, v2)
    archive.add("seq-b", 1, _video(3, t=2, h=4, w=4, k=1))
    assert ("seq-a", 2) in archive and ("seq-a", 3) not in archive and "seq-b" in archive
    assert archive.rounds("seq-a") == [1, 2] and archive.sequences() == ["seq-a", "seq-b"]
    assert list(archive) == [("seq-a", 1), ("seq-a", 2), ("seq-b", 1)] and len(archive) == 3
    path = archive.save(tmp_path / "preds.json")
    loaded = PredictionArchive.load(path)
    np.testing.assert_array_equal(loaded.get("seq-a", 1), v1)
    np.testing.assert_array_equal(loaded.get("seq-a", 2), v2)
    assert loaded.get("seq-a", 2).dtype == np.uint8
    raw = json.loads(path.read_text())
    entry = raw["sequences"]["seq-a"]
    assert entry["size"] == [12, 16] and entry["n_frames"] == 5 and entry["n_objects"] == 3
    assert "3" not in entry["rounds"]["2"]  # empty frames are not stored
    assert isinstance(entry["rounds"]["1"]["0"]["1"], str)  # sequence -> round -> frame -> object -> counts


def test_archive_is_compact() -> None:
    archive = PredictionArchive()
    masks = np.zeros((50, 240, 427), np.uint8)
    masks[:, 60:180, 100:300] = 1
    archive.add("s", 1, masks)
    size = len(json.dumps(archive.to_dict()))
    # A 120x200 box spans 200 columns -> ~400 column-major runs -> well under 1 kB per frame,
    # against 102 kB of raw pixels.
    assert size < 50 * 1000


def test_archive_rejects_inconsistent_adds(tmp_path: Path) -> None:
    archive = PredictionArchive()
    archive.add("s", 1, _video(0))
    with pytest.raises(InputValidationError, match="already stored"):
        archive.add("s", 1, _video(1))
    archive.add("s", 1, _video(1), overwrite=True)
    np.testing.assert_array_equal(archive.get("s", 1), _video(1))
    with pytest.raises(InputValidationError, match="shape"):
        archive.add("s", 2, _video(0, t=4))
    with pytest.raises(InputValidationError, match="n_objects"):
        archive.add("s", 2, _video(0), n_objects=4)
    with pytest.raises(InputValidationError, match="not stored"):
        archive.get("s", 7)
    with pytest.raises(InputValidationError, match="not in the archive"):
        archive.get("nope", 1)
    with pytest.raises(InputValidationError, match="integer"):
        archive.add("t", 1, np.zeros((2, 3, 3), np.float32))


def test_archive_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError):
        PredictionArchive.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CorruptFileError) as err:
        PredictionArchive.load(bad)
    assert err.value.path == bad
    archive = PredictionArchive()
    archive.add("s", 1, _video(0))
    data = archive.to_dict()
    data["sequences"]["s"]["rounds"]["1"]["9"] = {"1": "x"}  # frame 9 of a 5-frame sequence
    bad.write_text(json.dumps(data))
    with pytest.raises(CorruptFileError, match="bad frame '9'"):
        PredictionArchive.load(bad)


def _instance_rgb() -> np.ndarray:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0, 0:2] = (7, 1, 0)  # instance 1, category 7
    rgb[1, 0:3] = (7, 2, 0)  # instance 2, category 7
    rgb[3, 4] = (12, 3, 0)  # instance 3, category 12
    rgb[2, 2] = (5, 0, 0)  # category without instance: not an instance
    return rgb


def test_instance_png_decoding_from_array_and_file(tmp_path: Path) -> None:
    expected = np.zeros((4, 5), np.int32)
    expected[0, 0:2] = 1
    expected[1, 0:3] = 2
    expected[3, 4] = 3
    inst, cats = decode_instance_png(_instance_rgb())
    assert inst.dtype == np.int32
    np.testing.assert_array_equal(inst, expected)
    assert cats == {1: 7, 2: 7, 3: 12}
    path = tmp_path / "ann.png"
    Image.fromarray(_instance_rgb()).save(path)
    inst2, cats2 = decode_instance_png(path)
    np.testing.assert_array_equal(inst2, expected)
    assert cats2 == cats
    written = write_instance_png(tmp_path / "again.png", inst, cats)
    inst3, cats3 = decode_instance_png(written)
    np.testing.assert_array_equal(inst3, expected)
    assert cats3 == cats
    np.testing.assert_array_equal(decode_instance_png(encode_instance_png(inst, cats))[0], expected)


def test_instance_png_errors(tmp_path: Path) -> None:
    rgb = _instance_rgb()
    rgb[0, 1] = (9, 1, 0)  # instance 1 now has categories 7 and 9
    path = tmp_path / "bad.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(MaskFormatError) as err:
        decode_instance_png(path)
    assert err.value.path == path and "instance 1" in str(err.value)
    pal = tmp_path / "palette.png"
    Image.fromarray(np.zeros((4, 5), np.uint8)).convert("P").save(pal)
    with pytest.raises(MaskFormatError, match="'P'"):
        decode_instance_png(pal)
    with pytest.raises(InputValidationError):
        decode_instance_png(np.zeros((4, 5), np.uint8))


def test_instance_annotations_are_coco_records() -> None:
    inst, cats = decode_instance_png(_instance_rgb())
    records = instance_annotations(inst, cats, image_id=42, scores={1: 0.9, 2: 0.5, 3: 0.1})
    assert [(r["instance_id"], r["category_id"], r["score"]) for r in records] == [
        (1, 7, 0.9),
        (2, 7, 0.5),
        (3, 12, 0.1),
    ]
    assert all(r["image_id"] == 42 for r in records)
    areas = [int(decode_mask(r["segmentation"]).sum()) for r in records]
    assert areas == [2, 3, 1]
    assert "score" not in instance_annotations(inst, cats, image_id=1)[0]
