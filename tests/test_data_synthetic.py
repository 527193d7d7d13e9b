"""The synthetic video generator: determinism, events that really happen, difficulty, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivos_rl.data import DavisDataset, generate_dataset, synthetic_dataset
from ivos_rl.data.synthetic import SyntheticParams, generate_sequence, main, read_synthetic_info
from ivos_rl.errors import DatasetError, InputValidationError

SMALL = {"n_sequences": 2, "n_frames": 6, "size": (40, 48), "with_scribbles": False}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    params = {**SMALL, "with_scribbles": True}
    a = _tree(generate_dataset(tmp_path / "a", seed=3, **params))
    b = _tree(generate_dataset(tmp_path / "b", seed=3, **params))
    assert a == b
    assert "Scribbles/synthetic-001/003.json" in a
    assert "JPEGImages/480p/synthetic-001/00005.jpg" in a
    assert "Annotations/480p/synthetic-000/00000.png" in a
    assert a["ImageSets/2017/train.txt"] == b"synthetic-000\nsynthetic-001\n"
    assert "davis-480p.json" in a and "synthetic.json" in a


def test_different_seed_differs(tmp_path: Path) -> None:
    a = generate_sequence(SyntheticParams(seed=0, n_frames=4, size=(40, 48)), 0)
    b = generate_sequence(SyntheticParams(seed=1, n_frames=4, size=(40, 48)), 0)
    assert not np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.masks, b.masks)


def test_sequence_does_not_depend_on_dataset_size() -> None:
    one = generate_sequence(SyntheticParams(n_sequences=1, n_frames=5, size=(40, 48)), 0)
    many = generate_sequence(SyntheticParams(n_sequences=9, n_frames=5, size=(40, 48)), 0)
    np.testing.assert_array_equal(one.frames, many.frames)


def test_files_hold_the_rendered_arrays(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "d", seed=5, **SMALL)
    ds = DavisDataset(root, "480p", image_set="2017/train")
    seq = generate_sequence(SyntheticParams(seed=5, n_sequences=2, n_frames=6, size=(40, 48)), 1)
    np.testing.assert_array_equal(ds.load_masks("synthetic-001"), seq.masks)  # PNG is lossless
    err = np.abs(ds.load_frames("synthetic-001").astype(int) - seq.frames.astype(int))
    assert err.mean() < 4  # JPEG quality 90


def _areas(masks: np.ndarray, k: int) -> np.ndarray:
    return (masks == k).sum(axis=(1, 2))


def test_masks_are_consistent_with_the_recorded_events(synthetic_root: Path) -> None:
    info = read_synthetic_info(synthetic_root)
    ds = DavisDataset(synthetic_root, "480p")
    assert sorted(info["sequences"]) == ds.sequences
    for seq, events in info["sequences"].items():
        masks = ds.load_masks(seq)
        k = events["n_objects"]
        assert ds.info(seq).n_objects == k
        assert set(np.unique(masks).tolist()) <= set(range(k + 1))
        for obj in range(1, k + 1):
            assert (_areas(masks, obj) > 0).sum() >= 12 // 3  # every object is visible on a third of frames
        leaver = events["leaving_object"]
        out = events["outside_frames"]
        area = _areas(masks, leaver)
        assert out and (area[out] == 0).all()
        assert (
            area[: min(out)].any() and area[max(out) + 1 :].any()
        )  # seen before leaving and after re-entering
        hidden = events["occluded_frames"]
        assert hidden and (_areas(masks, events["occluded_object"])[hidden] == 0).all()


def test_events_can_be_switched_off() -> None:
    params = SyntheticParams(
        n_frames=8, size=(48, 64), leave_frame=False, occluder=False, max_objects=3, min_objects=3
    )
    seq = generate_sequence(params, 0)
    assert seq.events["leaving_object"] is None and seq.events["occluded_object"] is None
    assert seq.events["n_objects"] == 3
    assert sorted(seq.events["depth_order"]) == [1, 2, 3]


def test_a_colour_threshold_does_not_segment_the_objects() -> None:
    """Even knowing each object's true mean colour and the best threshold, colour alone fails."""
    params = SyntheticParams(n_frames=12, size=(64, 96), max_objects=2, seed=0)
    best = []
    for i in range(3):
        seq = generate_sequence(params, i)
        img = seq.frames.astype(np.float32)
        for k in range(1, seq.events["n_objects"] + 1):
            gt = seq.masks == k
            dist = np.linalg.norm(img - img[gt].mean(axis=0), axis=-1)
            scores = [
                ((dist < tau) & gt).sum() / ((dist < tau) | gt).sum() for tau in np.linspace(2, 150, 40)
            ]
            best.append(max(scores))
    assert np.mean(best) < 0.5, best


def test_appearance_drift_changes_objects_over_time() -> None:
    def change(drift: float) -> float:
        seq = generate_sequence(SyntheticParams(n_frames=12, size=(64, 96), seed=0, drift=drift), 0)
        out = []
        for k in range(1, seq.events["n_objects"] + 1):
            vis = [t for t in range(12) if (seq.masks[t] == k).sum() > 20]
            first = seq.frames[vis[0]][seq.masks[vis[0]] == k].mean(axis=0)
            last = seq.frames[vis[-1]][seq.masks[vis[-1]] == k].mean(axis=0)
            out.append(np.linalg.norm(first - last))
        return float(np.mean(out))

    assert change(1.0) > change(0.0) + 10


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": (16, 64)}, "size"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"drift": 1.5}, "drift"),
        ({"n_frames": 2}, "n_frames"),
        ({"seed": -1}, "seed"),
        ({"size": 64}, "size"),
        ({"drift": "high"}, "drift"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, name: str) -> None:
    with pytest.raises(InputValidationError, match=name):
        generate_dataset(tmp_path / "x", **{**SMALL, **kwargs})
    assert not (tmp_path / "x").exists()


def test_non_empty_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        generate_dataset(out, **SMALL)
    assert (out / "keep.txt").exists()
    generate_dataset(out, overwrite=True, **SMALL)
    # --overwrite deletes only what the tool itself writes (issue #17 item 5)
    assert (out / "keep.txt").read_text() == "x" and (out / "synthetic.json").exists()


def test_overwrite_replaces_only_what_the_generator_wrote(tmp_path: Path) -> None:
    out = generate_dataset(tmp_path / "d", **{**SMALL, "seed": 1})
    (out / "notes.md").write_text("my notes")
    (out / "results").mkdir()
    (out / "results" / "table.csv").write_text("a,b\n")
    before = json.loads((out / "synthetic.json").read_text())["params"]["seed"]
    generate_dataset(out, overwrite=True, **{**SMALL, "seed": 2})
    assert before == 1 and json.loads((out / "synthetic.json").read_text())["params"]["seed"] == 2
    assert (out / "notes.md").read_text() == "my notes"
    assert (out / "results" / "table.csv").read_text() == "a,b\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["d"]  # no staging leftovers


def test_overwrite_refuses_a_dataset_the_generator_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "d"
    (out / "JPEGImages" / "480p" / "mine").mkdir(parents=True)
    (out / "JPEGImages" / "480p" / "mine" / "00000.jpg").write_bytes(b"a user's frame")
    with pytest.raises(DatasetError, match=r"no synthetic\.json"):
        generate_dataset(out, overwrite=True, **SMALL)
    assert (out / "JPEGImages" / "480p" / "mine" / "00000.jpg").read_bytes() == b"a user's frame"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_synthetic_dataset_generates_once_and_checks_parameters(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    ds = synthetic_dataset(root, n_sequences=1, n_frames=5, size=[40, 48], with_scribbles=False)
    assert ds.sequences == ["synthetic-000"] and ds.info("synthetic-000").n_frames == 5
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    again = synthetic_dataset(root, n_sequences=1, n_frames=5, size=(40, 48), with_scribbles=False)
    assert again.sequences == ds.sequences and (root / "synthetic.json").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="n_frames"):
        synthetic_dataset(root, n_sequences=1, n_frames=6, size=(40, 48), with_scribbles=False)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = [
        str(out),
        "--sequences",
        "1",
        "--frames",
        "4",
        "--size",
        "40x48",
        "--objects",
        "2",
        "--no-scribbles",
    ]
    assert main(argv) == 0
    info = json.loads((out / "synthetic.json").read_text())
    assert info["params"]["size"] == [40, 48] and info["params"]["n_frames"] == 4
    assert main(argv) == 1  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(out), "--size", "40by48"])
