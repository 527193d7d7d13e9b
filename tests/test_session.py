"""InteractiveSession end to end on a tiny hand-made DAVIS folder with trivial models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ivos_rl.clicks import ClickRobot, clicks_to_scribbles, interaction_to_scribbles
from ivos_rl.data.davis import DavisDataset
from ivos_rl.data.imageio import write_jpeg, write_mask
from ivos_rl.errors import ConfigError, InputValidationError, MaskFormatError, MissingDataError, SessionError
from ivos_rl.interactions import fuse_interactions
from ivos_rl.session import InteractiveSession
from ivos_rl.summary import REPORT_COLUMNS, summarize_report

H, W = 12, 16


class FakeClock:
    """Seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _scribble(seq: str, n_frames: int, frame: int, object_ids: list[int]) -> dict[str, Any]:
    frames: list[list[dict[str, Any]]] = [[] for _ in range(n_frames)]
    for k in object_ids:
        frames[frame].append(
            {"path": [[0.2, 0.3], [0.3, 0.3]], "object_id": k, "start_time": 0, "end_time": 0}
        )
    return {"scribbles": frames, "sequence": seq}


def _write_sequence(root: Path, seq: str, masks: np.ndarray, scribbles: list[dict[str, Any]]) -> None:
    for t, m in enumerate(masks):
        write_jpeg(root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg", np.full((H, W, 3), 40 * t, np.uint8))
        write_mask(root / "Annotations" / "480p" / seq / f"{t:05d}.png", m)
    for i, s in enumerate(scribbles, start=1):
        path = root / "Scribbles" / seq / f"{i:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(s))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """'one': 4 frames, 1 object in every frame, 2 scribbles on frame 0.
    'two': 3 frames, 2 objects in every frame, 1 scribble on frame 1.
    'empty': 2 frames without any object, 1 (empty) scribble."""
    one = np.zeros((4, H, W), np.uint8)
    one[:, 2:8, 3:10] = 1
    _write_sequence(tmp_path, "one", one, [_scribble("one", 4, 0, [1]), _scribble("one", 4, 0, [1, 0])])
    two = np.zeros((3, H, W), np.uint8)
    two[:, 1:5, 1:6] = 1
    two[:, 7:11, 8:14] = 2
    _write_sequence(tmp_path, "two", two, [_scribble("two", 3, 1, [1, 2])])
    _write_sequence(tmp_path, "empty", np.zeros((2, H, W), np.uint8), [_scribble("empty", 2, 0, [])])
    sets = tmp_path / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("one\ntwo\n")
    return tmp_path


@pytest.fixture
def ds(root: Path) -> DavisDataset:
    return DavisDataset(root, "480p", sequences=["one", "two"])


def _annotated(inter: dict[str, Any]) -> set[int]:
    frames: set[int] = set()
    for kind in ("scribbles", "clicks"):
        for f, items in enumerate(inter.get(kind, [])):
            if items:
                frames.add(f)
    return frames


def _run(sess: InteractiveSession, ds: DavisDataset, model: str, clock: FakeClock, dt: float = 2.0) -> None:
    with sess:
        while sess.next():
            seq, inter, _ = sess.get_scribbles()
            gt = ds.load_masks(seq)
            if model == "gt":
                pred = gt.copy()
            elif model == "empty":
                pred = np.zeros_like(gt)
            else:  # ground truth on annotated frames only
                pred = np.zeros_like(gt)
                for f in _annotated(inter):
                    pred[f] = gt[f]
            clock.t += dt
            sess.submit_masks(pred)


def test_ground_truth_model_scores_one(ds: DavisDataset, tmp_path: Path) -> None:
    clock = FakeClock()
    sess = InteractiveSession(
        ds,
        max_nb_interactions=3,
        robot=ClickRobot(),
        clock=clock,
        report_save_dir=tmp_path / "out",
        report_name="r",
    )
    _run(sess, ds, "gt", clock)
    df = sess.get_report()
    assert list(df.columns) == list(REPORT_COLUMNS)
    # one: 2 samples x 3 rounds x 4 frames x 1 object; two: 1 sample x 3 rounds x 3 frames x 2 objects
    assert len(df) == 2 * 3 * 4 + 3 * 3 * 2
    assert np.allclose(df[["jaccard", "contour", "j_and_f"]].to_numpy(), 1.0)
    assert np.allclose(df["timing"], 2.0)
    s = sess.get_global_summary()
    # time curve [0, 2, 4, 6, 6] (timeout = 3 rounds x 2 s), metric [0, 1, 1, 1, 1] -> 5 / 6
    assert s["curve_time"]["time"] == pytest.approx([0, 2, 4, 6, 6])
    assert s["auc_time"] == pytest.approx(5 / 6)
    assert s["jf_at_60s"] == pytest.approx(1.0)
    assert s["auc_rounds"] == pytest.approx(2.5 / 3)  # [0, 1, 1, 1] over x = 0, 1/3, 2/3, 1
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.summary.json"]
    saved = pd.read_csv(out / "r.csv")
    assert len(saved) == len(df) and list(saved.columns) == list(REPORT_COLUMNS)
    assert json.loads((out / "r.summary.json").read_text())["auc_rounds"] == pytest.approx(s["auc_rounds"])
    again = summarize_report(
        saved, max_nb_interactions=3, samples=[("one", 1, 1), ("one", 2, 1), ("two", 1, 2)]
    )
    assert again["auc_time"] == pytest.approx(s["auc_time"])


def test_empty_model_scores_zero(ds: DavisDataset) -> None:
    clock = FakeClock()
    sess = InteractiveSession(ds, max_nb_interactions=2, robot=ClickRobot(), clock=clock)
    _run(sess, ds, "empty", clock, dt=1.0)
    df = sess.get_report()
    assert np.allclose(df[["jaccard", "contour", "j_and_f"]].to_numpy(), 0.0)  # every object in every frame
    s = sess.get_global_summary()
    assert s["auc_time"] == 0.0 and s["auc_rounds"] == 0.0 and s["jf_at_60s"] == 0.0
    assert s["curve_rounds"]["J_AND_F"] == [0.0, 0.0, 0.0]


def test_robot_annotates_the_worst_unused_frame(ds: DavisDataset) -> None:
    clock = FakeClock()
    sess = InteractiveSession(ds, sequences=["one"], samples=[("one", 1)], robot=ClickRobot(), clock=clock)
    _run(sess, ds, "annotated", clock)
    # annotated frames: 0 (initial scribble), then 1, 2, 3 (the worst frames all score 0, the lowest
    # index goes first); the model is exact on annotated frames -> round means 1/4, 2/4, 3/4, 1
    # and 1 for the remaining rounds of the default 8
    curve = sess.get_global_summary()["curve_rounds"]["J_AND_F"]
    assert curve[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert curve[5:] == pytest.approx([1.0] * 4)


def test_candidates_and_fused_interactions(ds: DavisDataset) -> None:
    clock = FakeClock()
    with InteractiveSession(
        ds, samples=[("one", 1)], max_nb_interactions=4, robot=ClickRobot(), clock=clock
    ) as s:
        assert s.next()
        seq, inter, new = s.get_scribbles()
        assert (seq, new, _annotated(inter)) == ("one", True, {0})
        gt = ds.load_masks(seq)
        s.submit_masks(np.zeros_like(gt), next_scribble_frame_candidates=[3])
        assert s.last_annotated_frame == 3
        assert s.next()
        _, last, new = s.get_scribbles(only_last=True)
        assert not new and "scribbles" not in last and _annotated(last) == {3}
        s.submit_masks(
            np.zeros_like(gt), next_scribble_frame_candidates=[3]
        )  # already used: falls back to [3]
        assert s.last_annotated_frame == 3
        assert s.next()
        _, everything, _ = s.get_scribbles()
        assert _annotated(everything) == {0, 3} and len(everything["clicks"][3]) == 2
        s.submit_masks(np.zeros_like(gt), next_scribble_frame_candidates=[])  # empty = all frames
        assert s.last_annotated_frame == 0  # 3 was used; the worst unused frame with the lowest index


def test_timeout_skips_late_submissions(ds: DavisDataset) -> None:
    clock = FakeClock()
    with InteractiveSession(
        ds, samples=[("one", 1)], max_nb_interactions=None, max_time=5.0, robot=ClickRobot(), clock=clock
    ) as s:
        assert s.next()
        gt = ds.load_masks("one")
        s.get_scribbles()
        clock.t += 3.0
        s.submit_masks(gt)  # 3 s <= 5 s x 1 object
        assert s.next()
        s.get_scribbles()
        clock.t += 3.0
        s.submit_masks(gt)  # 6 s > 5 s: not evaluated
        assert not s.next()
        df = s.get_report()
        assert df["interaction"].unique().tolist() == [1]
        summary = s.get_global_summary()
    # one round (the reconstruction needs none); timeout closes the curve at 1 object x 5 s
    assert summary["curve_time"]["time"] == pytest.approx([0.0, 3.0, 5.0])
    assert summary["auc_time"] == pytest.approx((0.5 * 3 + 2) / 5)


def test_bad_input_leaves_state_unchanged(ds: DavisDataset) -> None:
    clock = FakeClock()
    with InteractiveSession(
        ds, samples=[("two", 1)], max_nb_interactions=1, robot=ClickRobot(), clock=clock
    ) as s:
        with pytest.raises(SessionError, match="call next"):
            s.get_scribbles()
        assert s.next()
        with pytest.raises(SessionError, match="before get_scribbles"):
            s.submit_masks(np.zeros((3, H, W), np.uint8))
        s.get_scribbles()
        with pytest.raises(SessionError, match="twice"):
            s.get_scribbles()
        gt = ds.load_masks("two")
        clock.t += 1.5
        bad_ids = gt.copy()
        bad_ids[0, 0, 0] = 3
        nan = gt.astype(np.float32)
        nan[1, 2, 3] = np.nan
        for bad, match in [
            (gt[:2], r"shape \(3, 12, 16\)"),
            (gt.astype(np.complex64), "integer dtype"),
            (bad_ids, "ids up to 3 but the sequence has 2 objects"),
            (nan, "NaN"),
            (gt + 0.5, "whole object ids"),
        ]:
            with pytest.raises(InputValidationError, match=match):
                s.submit_masks(bad)
        with pytest.raises(InputValidationError, match=r"has 3, outside the frames \[0, 3\)"):
            s.submit_masks(gt, next_scribble_frame_candidates=[0, 3])
        with pytest.raises(InputValidationError, match="outside"):
            s.submit_masks(gt, next_scribble_frame_candidates=[-1])
        assert s.get_report().empty and s.interaction_number == 0
        clock.t += 0.5
        s.submit_masks(gt.astype(np.float64))  # whole-number floats are fine
        df = s.get_report()
        assert df["interaction"].tolist() == [1] * 6 and np.allclose(df["timing"], 2.0)
        with pytest.raises(SessionError, match="exceeds max_nb_interactions=1"):
            s.get_scribbles()
        with pytest.raises(SessionError, match="before get_scribbles"):
            s.submit_masks(gt)
        assert not s.next()
        with pytest.raises(SessionError, match="ended"):
            s.get_scribbles()


def test_configuration_errors(root: Path, ds: DavisDataset) -> None:
    robot = ClickRobot()
    with pytest.raises(ConfigError, match="both be None"):
        InteractiveSession(ds, max_nb_interactions=None, robot=robot)
    with pytest.raises(ConfigError, match="metric_to_optimize"):
        InteractiveSession(ds, metric_to_optimize="IoU", robot=robot)
    with pytest.raises(ConfigError, match="either subset or sequences"):
        InteractiveSession(ds, subset="2017/train", sequences=["one"], robot=robot)
    with pytest.raises(ConfigError, match="max_time"):
        InteractiveSession(ds, max_time=float("nan"), robot=robot)
    with pytest.raises(MissingDataError, match=r"\('one', 3\)"):
        InteractiveSession(ds, samples=[("one", 3)], robot=robot)
    with pytest.raises(SessionError, match="entered"):
        InteractiveSession(ds, robot=robot).next()
    every = DavisDataset(root, "480p")
    with pytest.raises(MaskFormatError, match="'empty' has an empty ground truth"):
        InteractiveSession(every, robot=robot)
    subset = InteractiveSession(every, subset="2017/train", robot=robot)
    assert subset.samples == [("one", 1), ("one", 2), ("two", 1)]


def test_shuffle_and_session_id_follow_the_seed(ds: DavisDataset) -> None:
    robot = ClickRobot()
    a = InteractiveSession(ds, shuffle=True, seed=3, robot=robot)
    b = InteractiveSession(ds, shuffle=True, seed=3, robot=robot)
    assert a.samples == b.samples and a.session_id == b.session_id
    assert sorted(a.samples) == [("one", 1), ("one", 2), ("two", 1)]
    orders = {tuple(InteractiveSession(ds, shuffle=True, seed=s, robot=robot).samples) for s in range(6)}
    assert len(orders) > 1


def test_fuse_interactions_keeps_both_kinds() -> None:
    scr = _scribble("s", 2, 0, [1])
    clk = {"clicks": [[], [{"point": [0.5, 0.5], "object_id": 1, "positive": True}]], "sequence": "s"}
    fused = fuse_interactions(scr, clk)
    assert _annotated(fused) == {0, 1}
    assert fused["scribbles"][1] == [] and fused["clicks"][0] == []
    assert scr["scribbles"][1] == []  # inputs untouched


def test_click_session_starts_from_the_robot(ds: DavisDataset) -> None:
    clock = FakeClock()
    with InteractiveSession(
        ds, samples=[("one", 1)], robot=ClickRobot(), clock=clock, initial_interaction="robot"
    ) as s:
        assert s.next()
        _, first, new = s.get_interaction()
    assert new and "scribbles" not in first
    # frame 0 (the initial scribble's frame), empty prediction: the whole 6x7 object is a false
    # negative; its interior-most pixels (distance 3) are rows 4-5 x cols 5-7 -> smallest (4, 5)
    assert first["clicks"][0] == [{"point": [5.5 / W, 4.5 / H], "object_id": 1, "positive": True}]
    assert all(not c for c in first["clicks"][1:])


def test_interaction_to_scribbles_merges_clicks_as_disks() -> None:
    scr = _scribble("s", 2, 0, [1])
    mixed = {
        "scribbles": scr["scribbles"],
        "clicks": [[], [{"point": [0.5, 0.5], "object_id": 2, "positive": False}]],
        "sequence": "s",
    }
    out = interaction_to_scribbles(mixed, 1.0, (H, W))
    assert set(out) == {"scribbles", "sequence"}
    assert out["scribbles"][0] == scr["scribbles"][0]
    (disk,) = out["scribbles"][1]
    assert disk["object_id"] == 0  # negative click -> background stroke
    alone = clicks_to_scribbles({"clicks": mixed["clicks"], "sequence": "s"}, 1.0, (H, W))
    assert disk == alone["scribbles"][1][0]
    assert interaction_to_scribbles(scr, 1.0, (H, W)) == scr


def test_default_scribble_robot_on_synthetic_data(synthetic_root: Path) -> None:
    data = DavisDataset(synthetic_root, "480p")
    clock = FakeClock()
    sess = InteractiveSession(data, max_nb_interactions=2, clock=clock)  # default ScribbleRobot
    _run(sess, data, "gt", clock, dt=1.0)
    s = sess.get_global_summary()
    assert s["n_samples"] == len(data.samples()) == 9
    assert s["auc_rounds"] == pytest.approx(0.75)  # [0, 1, 1] over x = 0, 0.5, 1
    assert s["auc_time"] == pytest.approx((0.5 + 1.0) / 2.0)  # time [0, 1, 2, 2], J&F [0, 1, 1, 1]

    sess = InteractiveSession(data, max_nb_interactions=2, clock=clock)
    _run(sess, data, "empty", clock, dt=1.0)
    # an empty prediction scores 1 on frames without the object (empty union, no boundary), else 0
    expected = []
    for seq, _ in data.samples():
        gt = data.load_masks(seq)
        for k in range(1, data.info(seq).n_objects + 1):
            expected.append(np.mean([not (m == k).any() for m in gt]))
    curve = sess.get_global_summary()["curve_rounds"]["J_AND_F"]
    assert curve == pytest.approx([0.0, np.mean(expected), np.mean(expected)])


def test_scribble_robot_answers_on_the_worst_frame(synthetic_root: Path) -> None:
    data = DavisDataset(synthetic_root, "480p")
    seq, idx = data.samples()[0]
    clock = FakeClock()
    with InteractiveSession(data, samples=[(seq, idx)], max_nb_interactions=3, clock=clock) as s:
        assert s.next()
        _, first, _ = s.get_scribbles()
        gt = data.load_masks(seq)
        pred = gt.copy()
        pred[5] = 0  # only frame 5 is wrong
        s.submit_masks(pred)
        assert s.last_annotated_frame == 5
        assert s.next()
        _, last, _ = s.get_scribbles(only_last=True)
        assert _annotated(last) == {5}
        assert {st["object_id"] for st in last["scribbles"][5]} <= set(range(data.info(seq).n_objects + 1))
        s.submit_masks(gt)
        assert s.next()
        _, everything, _ = s.get_scribbles()
        assert _annotated(everything) == _annotated(first) | {5}


def test_fused_strokes_share_nothing_mutable_with_the_inputs() -> None:
    from ivos_rl.interactions import fuse_interactions

    a = {"sequence": "s", "scribbles": [[{"path": [[0.1, 0.2]], "object_id": 1, "meta": {"k": [1]}}], []]}
    b = {"sequence": "s", "scribbles": [[], [{"path": [(0.3, 0.4)], "object_id": 2}]]}
    fused = fuse_interactions(a, b)
    assert fused["scribbles"] == [a["scribbles"][0], b["scribbles"][1]]
    fused["scribbles"][0][0]["path"][0][0] = 9.0
    fused["scribbles"][0][0]["meta"]["k"].append(2)
    assert a["scribbles"][0][0]["path"][0][0] == 0.1 and a["scribbles"][0][0]["meta"] == {"k": [1]}
    assert fused["scribbles"][1][0]["path"][0] == (0.3, 0.4)  # tuples are kept as they are
