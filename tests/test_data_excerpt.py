"""`make_excerpt` / `ivos-rl make-excerpt`: byte-exact copies of a window of frames, staged output."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivos_rl.data import DavisDataset
from ivos_rl.data.excerpt import main, make_excerpt
from ivos_rl.errors import InputValidationError, MissingDataError

SAMPLE = Path(__file__).resolve().parents[1] / "ivos_rl" / "sample_data" / "davis2016_excerpt"


def test_window_is_copied_byte_for_byte(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    copied = make_excerpt(synthetic_root, out, ["synthetic-001"], resolution="480p", n_frames=4, start=3,
                          image_set="2017/train")
    assert copied == {"synthetic-001": ["00003", "00004", "00005", "00006"]}
    for sub, ext in (("JPEGImages", ".jpg"), ("Annotations", ".png")):
        files = sorted((out / sub / "480p" / "synthetic-001").iterdir())
        assert [f.name for f in files] == [f"0000{i}{ext}" for i in range(3, 7)]
        src = synthetic_root / sub / "480p" / "synthetic-001" / f"00005{ext}"
        assert (out / sub / "480p" / "synthetic-001" / f"00005{ext}").read_bytes() == src.read_bytes()
    assert (out / "ImageSets" / "2017" / "train.txt").read_text() == "synthetic-001\n"
    ds = DavisDataset(out, "480p", image_set="2017/train")
    assert ds.sequences == ["synthetic-001"] and ds.info("synthetic-001").n_frames == 4


def test_bad_requests_are_refused_and_leave_nothing(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    with pytest.raises(InputValidationError, match="12 frames"):
        make_excerpt(synthetic_root, out, ["synthetic-000"], resolution="480p", n_frames=10, start=5)
    with pytest.raises(MissingDataError, match="no-such"):
        make_excerpt(synthetic_root, out, ["no-such"], resolution="480p")
    with pytest.raises(InputValidationError, match="n_frames"):
        make_excerpt(synthetic_root, out, ["synthetic-000"], resolution="480p", n_frames=0)
    assert not out.exists()


def test_cli_reports_the_copied_frames(synthetic_root: Path, tmp_path: Path, capsys) -> None:
    rc = main([str(synthetic_root), str(tmp_path / "ex"), "--sequences", "synthetic-000",
               "--frames", "2", "--resolution", "480p"])
    assert rc == 0 and "synthetic-000: 2 frames (00000..00001)" in capsys.readouterr().out
    bad = [str(synthetic_root), str(tmp_path / "ex2"), "--sequences", "nope", "--resolution", "480p"]
    assert main(bad) == 1


def test_embedded_sample_is_a_valid_dataset() -> None:
    ds = DavisDataset(SAMPLE, "240p", image_set="2016/train")
    assert ds.sequences == ["dog-agility", "horsejump-low", "drift-turn"]
    assert [ds.info(s).n_frames for s in ds.sequences] == [25, 25, 25]
    assert ds.samples() == [("dog-agility", 1), ("horsejump-low", 1), ("drift-turn", 1)]
    assert (SAMPLE / "README.md").read_text().count("CC BY-NC 4.0") == 1
