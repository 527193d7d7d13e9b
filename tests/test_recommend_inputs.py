"""`ivos-rl recommend`: object count from the first mask, stray ids and NaN maps name their file, and
the shipped checkpoints are the default (issue #17 items 4 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ivos_rl.recommend as recommend
from ivos_rl.data.imageio import write_jpeg, write_mask
from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError, MaskFormatError
from ivos_rl.recommend import as_probabilities, main, read_mask_folder

T, H, W = 6, 16, 20
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "ivos_rl" / "sample_data" / "davis2016_excerpt"


def _video(tmp_path: Path, stray_frame: int | None = 4) -> tuple[Path, Path]:
    """6 grey frames; object 1 is rows 4..11, cols 2..9 in every mask; a 4x4 patch of label 7 in one."""
    fdir, mdir = tmp_path / "frames", tmp_path / "masks"
    for t in range(T):
        write_jpeg(fdir / f"{t:05d}.jpg", np.full((H, W, 3), 20 * t, np.uint8))
        mask = np.zeros((H, W), np.uint8)
        mask[4:12, 2:10] = 1
        if t == stray_frame:
            mask[0:4, 14:18] = 7
        write_mask(mdir / f"{t:05d}.png", mask)
    return fdir, mdir


def test_stray_label_is_refused_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fdir, mdir = _video(tmp_path)
    out = tmp_path / "rec.json"
    argv = ["--frames", str(fdir), "--masks", str(mdir), "--history", "0", "--strategy", "linspace",
            "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "label 7 but 1 object(s)" in err and str(mdir / "00004.png") in err and "00000.png" in err
    assert not out.exists()
    with pytest.raises(MaskFormatError) as exc:
        read_mask_folder(mdir)
    assert exc.value.path == mdir / "00004.png"
    # declaring the objects explicitly accepts the label (7 one-hot channels)
    assert main([*argv, "--n-objects", "7"]) == 0
    assert json.loads(out.read_text())["n_frames"] == T
    # ... and a declared count below a label is refused, naming the file and the flag
    assert main([*argv[:-2], "--out", str(tmp_path / "x.json"), "--n-objects", "1"]) == 1
    assert "--n-objects" in capsys.readouterr().err


def test_count_comes_from_the_first_mask_with_an_object(tmp_path: Path) -> None:
    labels = np.zeros((3, 2, 2), np.uint8)
    labels[1] = [[0, 1], [2, 0]]   # frame 0 empty: frame 1 defines 2 objects
    labels[2] = [[1, 0], [0, 0]]
    assert as_probabilities(labels, (3, 2, 2)).shape == (3, 2, 2, 2)
    labels[2, 1, 1] = 3            # a stray id in a later frame
    with pytest.raises(InputValidationError, match=r"frame 2 holds label 3 .* \(frame 1\) has 2"):
        as_probabilities(labels, (3, 2, 2))
    assert as_probabilities(labels, (3, 2, 2), n_objects=3).shape == (3, 3, 2, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1.5])
def test_bad_npy_probability_map_names_the_file(tmp_path: Path, bad: float) -> None:
    mdir = tmp_path / "masks"
    mdir.mkdir()
    for t in range(3):
        p = np.full((1, H, W), 0.25, np.float32)
        if t == 1:
            p[0, 3, 3] = bad
        np.save(mdir / f"{t:05d}.npy", p)
    with pytest.raises(MaskFormatError, match="NaN/inf" if bad != 1.5 else r"\[0, 1\]") as exc:
        read_mask_folder(mdir)
    assert exc.value.path == mdir / "00001.npy"


def test_no_model_flags_use_the_shipped_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec.json"
    base = ["--frames", str(SAMPLE), "--masks", str(SAMPLE), "--sequence", "dog-agility", "--history", "12"]
    assert main([*base, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # the shipped agent is a 3-seed ensemble; the shipped quality model is the one its rows used
    agents = [str(REPO / "checkpoints" / "agent" / f"dagger2_seed{s}.pt") for s in range(3)]
    quality = REPO / "checkpoints" / "quality" / "features-davis2016-propagation_accurate-v2.4.features.pt"
    assert f"using agent: 3-member ensemble {', '.join(agents)} (shipped default)" in printed
    assert f"using quality net: {quality} (shipped default)" in printed
    data = json.loads(out.read_text())
    assert data["source"] == "agent"
    assert data["agent_checkpoint"] == agents and data["quality_checkpoint"] == str(quality)
    explicit = tmp_path / "explicit.json"
    assert main([*base, "--agent", *agents, "--quality", str(quality), "--out", str(explicit)]) == 0
    assert json.loads(explicit.read_text())["frame"] == data["frame"]
    # a strategy that needs quality gets the shipped quality net; one that does not gets none
    assert main([*base, "--strategy", "worst", "--out", str(out)]) == 0
    net = REPO / "checkpoints" / recommend.SHIPPED_CHECKPOINTS["quality"][0]
    assert json.loads(out.read_text())["quality_checkpoint"] == str(net)
    assert main([*base, "--strategy", "linspace", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["quality_checkpoint"] is None


def test_missing_shipped_checkpoints_say_where_they_were_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recommend, "checkpoint_dirs", lambda: [tmp_path / "checkpoints"])
    with pytest.raises(CheckpointError, match="--agent PATH") as exc:
        recommend.shipped_checkpoints("agent")
    assert str(tmp_path / "checkpoints" / "agent" / "dagger2_seed0.pt") in str(exc.value)
    # an ensemble is never assembled from a partial folder
    members = [tmp_path / "checkpoints" / "agent" / f"dagger2_seed{s}.pt" for s in range(3)]
    members[0].parent.mkdir(parents=True)
    for m in members[:2]:
        m.write_bytes(b"placeholder")
    with pytest.raises(CheckpointError, match=r"dagger2_seed2\.pt"):
        recommend.shipped_checkpoints("agent")
    members[2].write_bytes(b"placeholder")
    assert recommend.shipped_checkpoints("agent") == members
    with pytest.raises(ConfigError, match="3 files"):  # the one-file accessor refuses an ensemble
        recommend.shipped_checkpoint("agent")


def test_ivos_rl_root_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = [tmp_path / "checkpoints" / "agent" / f"dagger2_seed{s}.pt" for s in range(3)]
    targets[0].parent.mkdir(parents=True)
    for t in targets:
        t.write_bytes(b"placeholder")
    monkeypatch.setenv("IVOS_RL_ROOT", str(tmp_path))
    assert recommend.shipped_checkpoints("agent") == [t.resolve() for t in targets]


def _run_expecting_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], agent: Path, out: Path) -> str:
    """Run the CLI on a clean 6-frame video with ``--agent agent --out out``; it must fail: its stderr."""
    fdir, mdir = _video(tmp_path, stray_frame=None)
    assert main(["--frames", str(fdir), "--masks", str(mdir), "--agent", str(agent), "--out", str(out)]) == 1
    return capsys.readouterr().err


def test_unwritable_output_fails_before_any_compute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    # the agent path does not exist: reaching the model loading would report a CheckpointError instead
    err = _run_expecting_error(tmp_path, capsys, agent=tmp_path / "absent.pt", out=blocker / "rec.json")
    assert "is not a folder" in err and str(blocker) in err and "absent.pt" not in err


def test_a_file_that_is_not_a_checkpoint_is_named_without_unsafe_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint\n")
    err = _run_expecting_error(tmp_path, capsys, agent=notes, out=tmp_path / "r.json")
    assert f"{notes} is truncated or corrupt, or not a checkpoint at all" in err
    assert "weights_only" not in err and "Traceback" not in err
