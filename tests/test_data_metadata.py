"""davis.json-style metadata: building, writing, validation against the folder, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivos_rl.data import DavisDataset, build_metadata, load_metadata, metadata_path, write_metadata
from ivos_rl.data.metadata import main
from ivos_rl.errors import CorruptFileError, DatasetError, MissingDataError


def test_build_metadata_of_hand_made_dataset(tiny_root: Path) -> None:
    meta = build_metadata(tiny_root, "480p")
    assert meta["resolution"] == "480p" and meta["sets"] == ["train"] and meta["years"] == [2017]
    a, b = meta["sequences"]["a"], meta["sequences"]["b"]
    assert {k: a[k] for k in ("name", "num_frames", "num_objects", "image_size", "num_scribbles")} == {
        "name": "a",
        "num_frames": 3,
        "num_objects": 2,
        "image_size": [10, 8],  # [W, H] as in davisinteractive's davis.json
        "num_scribbles": 0,
    }
    assert a["frame_names"] == ["00000", "00001", "00002"]
    assert (a["set"], a["year"], a["image_sets"]) == (None, None, [])  # "a" is in no image set
    assert (b["set"], b["year"], b["image_sets"]) == ("train", 2017, ["2017/train"])
    assert b["num_objects"] == 1


def test_write_then_load_round_trip(tiny_root: Path) -> None:
    path = write_metadata(tiny_root, "480p")
    assert path == metadata_path(tiny_root, "480p") == tiny_root / "davis-480p.json"
    assert load_metadata(tiny_root, "480p") == build_metadata(tiny_root, "480p")
    assert not list(tiny_root.glob(".*tmp"))  # atomic write left no temp file


def test_entry_disagreeing_with_folder_is_named(tiny_root: Path) -> None:
    path = write_metadata(tiny_root, "480p")
    for sub in ("JPEGImages", "Annotations"):
        ext = "jpg" if sub == "JPEGImages" else "png"
        (tiny_root / sub / "480p" / "a" / f"00002.{ext}").unlink()
    with pytest.raises(DatasetError) as err:
        load_metadata(tiny_root, "480p")
    assert err.value.path == path
    assert "entry 'a'" in str(err.value) and "num_frames=3" in str(err.value) and "2 frames" in str(err.value)
    with pytest.raises(DatasetError, match="entry 'a'"):
        DavisDataset(tiny_root, "480p").info("a")  # the reader checks the entry before trusting it


def test_scribble_count_and_image_size_are_checked(tiny_root: Path) -> None:
    path = write_metadata(tiny_root, "480p")
    meta = json.loads(path.read_text())
    meta["sequences"]["b"]["num_scribbles"] = 3
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"entry 'b'.*num_scribbles=3 but 0"):
        load_metadata(tiny_root, "480p")
    meta["sequences"]["b"]["num_scribbles"] = 0
    meta["sequences"]["b"]["image_size"] = [8, 10]
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"entry 'b'.*image_size=\[8, 10\]"):
        load_metadata(tiny_root, "480p")


def test_sequence_sets_must_match(tiny_root: Path) -> None:
    write_metadata(tiny_root, "480p")
    (tiny_root / "JPEGImages" / "480p" / "c").mkdir()
    with pytest.raises(DatasetError, match=r"misses folders \['c'\]"):
        load_metadata(tiny_root, "480p")


def test_schema_errors(tiny_root: Path) -> None:
    with pytest.raises(MissingDataError):
        load_metadata(tiny_root, "480p")
    path = metadata_path(tiny_root, "480p")
    path.write_text("[")
    with pytest.raises(CorruptFileError) as err:
        load_metadata(tiny_root, "480p")
    assert err.value.path == path
    meta = build_metadata(tiny_root, "480p")
    meta["sequences"]["a"]["num_objects"] = -1
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="entry 'a': num_objects"):
        load_metadata(tiny_root, "480p", validate=False)
    with pytest.raises(DatasetError, match="resolution '480p', not '240p'"):
        write_metadata(tiny_root, "240p", metadata=build_metadata(tiny_root, "480p"))


def test_cli(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_root), "--resolution", "480p"]) == 0
    assert "2 sequences, 5 frames" in capsys.readouterr().out
    assert load_metadata(tiny_root, "480p")["sequences"]["a"]["num_objects"] == 2
    assert main([str(tiny_root / "absent"), "--resolution", "480p"]) == 1
    assert "error:" in capsys.readouterr().err
