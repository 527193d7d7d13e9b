"""Every malformed dataset raises a typed error naming the offending file; nothing is half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ivos_rl.data import DavisDataset, generate_dataset, write_jpeg, write_mask, write_metadata
from ivos_rl.data import synthetic as synthetic_module
from ivos_rl.errors import (
    CorruptFileError,
    DatasetError,
    InputValidationError,
    IvosError,
    MaskFormatError,
    MissingDataError,
    ScribbleError,
)


def _ann(root: Path, seq: str, name: str) -> Path:
    return root / "Annotations" / "480p" / seq / f"{name}.png"


def _img(root: Path, seq: str, name: str) -> Path:
    return root / "JPEGImages" / "480p" / seq / f"{name}.jpg"


def test_missing_sequence_folder(tiny_root: Path) -> None:
    (tiny_root / "ImageSets" / "2017" / "train.txt").write_text("b\nghost\n")
    with pytest.raises(MissingDataError) as err:
        DavisDataset(tiny_root, "480p", image_set="2017/train")
    assert err.value.path == tiny_root / "JPEGImages" / "480p" / "ghost"
    assert "ghost" in str(err.value)
    with pytest.raises(MissingDataError, match="ghost"):
        DavisDataset(tiny_root, "480p", sequences=["ghost"])
    with pytest.raises(FileNotFoundError):  # typed errors also derive from the matching builtin
        DavisDataset(tiny_root / "nowhere", "480p")


def test_missing_annotation_folder(tiny_root: Path) -> None:
    for p in (tiny_root / "Annotations" / "480p" / "b").iterdir():
        p.unlink()
    (tiny_root / "Annotations" / "480p" / "b").rmdir()
    with pytest.raises(MissingDataError) as err:
        DavisDataset(tiny_root, "480p")
    assert err.value.path == tiny_root / "Annotations" / "480p" / "b"


def test_frames_and_masks_with_different_counts(tiny_root: Path) -> None:
    _ann(tiny_root, "a", "00002").unlink()
    ds = DavisDataset(tiny_root, "480p")
    with pytest.raises(DatasetError) as err:
        ds.info("a")
    msg = str(err.value)
    assert "3 frames" in msg and "2 masks" in msg and "00002" in msg
    assert err.value.path == tiny_root / "Annotations" / "480p" / "a"


def test_frames_and_masks_with_different_names(tiny_root: Path) -> None:
    _ann(tiny_root, "a", "00002").rename(_ann(tiny_root, "a", "00007"))
    with pytest.raises(DatasetError) as err:
        DavisDataset(tiny_root, "480p").load_masks("a")
    assert "['00002']" in str(err.value) and "['00007']" in str(err.value)


def test_rgb_mask_where_palette_expected(tiny_root: Path) -> None:
    bad = _ann(tiny_root, "a", "00001")
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(bad)  # mode RGB
    with pytest.raises(MaskFormatError) as err:
        DavisDataset(tiny_root, "480p").load_masks("a")  # info() reads masks only up to the first object
    assert err.value.path == bad and "'RGB'" in str(err.value)


def test_rgb_mask_rejected_when_loading_with_metadata(tiny_root: Path) -> None:
    write_metadata(tiny_root, "480p")
    bad = _ann(tiny_root, "a", "00001")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(bad)  # grayscale "L" is not a palette either
    ds = DavisDataset(tiny_root, "480p")
    ds.load_masks("a", [0])
    with pytest.raises(MaskFormatError) as err:
        ds.load_masks("a", [1])
    assert err.value.path == bad and "'L'" in str(err.value)


def test_object_ids_above_declared_count(tiny_root: Path) -> None:
    write_metadata(tiny_root, "480p")  # declares 2 objects for "a"
    bad = _ann(tiny_root, "a", "00002")
    labels = np.zeros((8, 10), np.uint8)
    labels[4, 4] = 3
    labels[0, 0] = 255  # void is always allowed
    write_mask(bad, labels)
    ds = DavisDataset(tiny_root, "480p")
    assert ds.load_masks("a", [0, 1]).shape == (2, 8, 10)
    with pytest.raises(MaskFormatError) as err:
        ds.load_masks("a")
    assert err.value.path == bad
    assert "object id 3" in str(err.value) and "2 objects" in str(err.value)


def _write_scribble(root: Path, seq: str, idx: int, data: object) -> Path:
    path = root / "Scribbles" / seq / f"{idx:03d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_scribble_with_wrong_number_of_frames(tiny_root: Path) -> None:
    path = _write_scribble(tiny_root, "a", 1, {"scribbles": [[], []], "sequence": "a"})
    with pytest.raises(ScribbleError) as err:
        DavisDataset(tiny_root, "480p").load_scribbles("a", 1)
    msg = str(err.value)
    assert str(path) in msg and "2 frame lists" in msg and "3 frames" in msg


@pytest.mark.parametrize(
    ("content", "error", "fragment"),
    [
        ("{not json", CorruptFileError, "not valid JSON"),
        ({"scribbles": [[], [], []], "sequence": "b"}, ScribbleError, "for sequence 'b'"),
        (
            {"scribbles": [[], [{"path": [[0.1, 0.1]], "object_id": 3}], []], "sequence": "a"},
            ScribbleError,
            "object_id 3",
        ),
        (
            {"scribbles": [[], [{"path": [[0.1]], "object_id": 1}], []], "sequence": "a"},
            ScribbleError,
            "[x, y]",
        ),
        ([1, 2], ScribbleError, "'scribbles' list"),
    ],
)
def test_other_malformed_scribbles(tiny_root: Path, content: object, error: type, fragment: str) -> None:
    path = _write_scribble(tiny_root, "a", 1, content)
    with pytest.raises(error) as err:
        DavisDataset(tiny_root, "480p").load_scribbles("a", 1)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_missing_scribble_file(tiny_root: Path) -> None:
    with pytest.raises(MissingDataError) as err:
        DavisDataset(tiny_root, "480p").load_scribbles("a", 4)
    assert err.value.path == tiny_root / "Scribbles" / "a" / "004.json"
    with pytest.raises(InputValidationError, match="1-based"):
        DavisDataset(tiny_root, "480p").load_scribbles("a", 0)


def test_truncated_jpeg_frame(tiny_root: Path) -> None:
    bad = _img(tiny_root, "a", "00001")
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    ds = DavisDataset(tiny_root, "480p")
    ds.load_frames("a", [0, 2])
    with pytest.raises(CorruptFileError) as err:
        ds.load_frames("a")
    assert err.value.path == bad and "truncated" in str(err.value)


def test_truncated_png_mask(tiny_root: Path) -> None:
    bad = _ann(tiny_root, "b", "00001")
    data = bad.read_bytes()
    bad.write_bytes(data[:40])
    with pytest.raises(CorruptFileError) as err:
        DavisDataset(tiny_root, "480p").load_masks("b")
    assert err.value.path == bad


def test_frame_of_other_size(tiny_root: Path) -> None:
    bad = _img(tiny_root, "a", "00002")
    write_jpeg(bad, np.zeros((9, 10, 3), np.uint8))
    with pytest.raises(DatasetError) as err:
        DavisDataset(tiny_root, "480p").load_frames("a")
    assert err.value.path == bad and "(9, 10)" in str(err.value)


@pytest.mark.parametrize("indices", [[3], [-1], [0.5], [True]])
def test_bad_frame_indices(tiny_root: Path, indices: list) -> None:
    with pytest.raises(InputValidationError, match=r"\[0, 3\)"):
        DavisDataset(tiny_root, "480p").load_frames("a", indices)


@pytest.mark.parametrize("size", [(0, 5), (4,), "4x5", (4.0, 5)])
def test_bad_working_size(tiny_root: Path, size: object) -> None:
    with pytest.raises(InputValidationError, match="working_size"):
        DavisDataset(tiny_root, "480p", working_size=size)  # type: ignore[arg-type]


def test_missing_image_set(tiny_root: Path) -> None:
    with pytest.raises(MissingDataError) as err:
        DavisDataset(tiny_root, "480p", image_set="2016/val")
    assert err.value.path == tiny_root / "ImageSets" / "2016" / "val.txt"


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synthetic_module.write_mask

    def failing_write_mask(path: Path, labels: np.ndarray) -> Path:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full (simulated)")
        return real(path, labels)

    monkeypatch.setattr(synthetic_module, "write_mask", failing_write_mask)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        generate_dataset(out, n_sequences=2, n_frames=4, size=(32, 40), with_scribbles=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone too


def test_typed_errors_share_the_base_class() -> None:
    for cls in (CorruptFileError, DatasetError, MaskFormatError, MissingDataError, ScribbleError):
        assert issubclass(cls, IvosError)
