"""Noisy annotator populations: determinism per seed, the three kinds of scribble noise, clicks,
the population factory and its configs, and click robots end to end through ``evaluate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ivos_rl.annotators import NoisyClickRobot, NoisyScribbleRobot, annotator_seed, build_annotators
from ivos_rl.backends import SimulatedBackend
from ivos_rl.clicks import ClickRobot
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import evaluate
from ivos_rl.robot import ScribbleRobot
from ivos_rl.scribbles import validate_scribbles
from ivos_rl.strategies import LinspaceStrategy
from ivos_rl.strategies.linspace import linspace_frames

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _two_squares() -> tuple[np.ndarray, np.ndarray]:
    """2 frames of 40x60: object 1 = rows 5..16 x cols 5..16, object 2 = rows 20..33 x cols 30..49
    on frame 0 (frame 1 identical); the prediction is empty, so both objects are pure misses."""
    gt = np.zeros((2, 40, 60), np.uint8)
    gt[:, 5:17, 5:17] = 1
    gt[:, 20:34, 30:50] = 2
    return gt, np.zeros_like(gt)


def _strokes(answer: dict, frame: int = 0) -> list[dict]:
    return answer["scribbles"][frame]


def test_zero_noise_equals_the_protocol_robot() -> None:
    gt, pred = _two_squares()
    quiet = NoisyScribbleRobot(seed=5, jitter_px=0.0, partial_prob=0.0, miss_prob=0.0)
    base = ScribbleRobot(seed=5).interact("s", pred, gt, frame=0)
    assert quiet.interact("s", pred, gt, frame=0) == base
    assert {s["object_id"] for s in _strokes(base)} == {1, 2}


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    gt, pred = _two_squares()
    a1 = NoisyScribbleRobot(seed=1).interact("s", pred, gt, frame=0)
    a2 = NoisyScribbleRobot(seed=1).interact("s", pred, gt, frame=0)
    b = NoisyScribbleRobot(seed=2).interact("s", pred, gt, frame=0)
    assert a1 == a2
    assert a1 != b
    validate_scribbles(a1, n_frames=2, n_objects=2)
    validate_scribbles(b, n_frames=2, n_objects=2)


def test_answer_does_not_depend_on_the_order_of_questions() -> None:
    """Stateless per question: a resumed or reordered evaluation sees the same user."""
    gt, pred = _two_squares()
    pred_b = pred.copy()
    pred_b[0, 5:17, 5:11] = 1  # half of object 1 found
    r1, r2 = NoisyScribbleRobot(seed=3), NoisyScribbleRobot(seed=3)
    first = [r1.interact("s", p, gt, frame=0) for p in (pred, pred_b)]
    second = [r2.interact("s", p, gt, frame=0) for p in (pred_b, pred)][::-1]
    assert first == second
    assert first[0] != first[1]


def test_white_jitter_has_the_requested_standard_deviation() -> None:
    gt, pred = _two_squares()
    base = _strokes(ScribbleRobot(seed=0).interact("s", pred, gt, frame=0))
    noisy = _strokes(
        NoisyScribbleRobot(seed=0, jitter_px=1.5, jitter_correlation_px=0.0, partial_prob=0.0, miss_prob=0.0)
        .interact("s", pred, gt, frame=0)
    )
    size = np.array([60.0, 40.0])
    d = np.concatenate(
        [(np.asarray(n["path"]) - np.asarray(b["path"])) * size for b, n in zip(base, noisy, strict=True)]
    )
    # 2 strokes x 1000 points of independent N(0, 1.5^2) per axis (no clipping: far from the border)
    assert d.std(axis=0) == pytest.approx([1.5, 1.5], rel=0.1)
    assert np.abs(d.mean(axis=0)).max() < 0.2


def test_partial_strokes_are_contiguous_parts_of_the_path() -> None:
    gt, pred = _two_squares()
    base = _strokes(ScribbleRobot(seed=4).interact("s", pred, gt, frame=0))
    cut = _strokes(
        NoisyScribbleRobot(seed=4, jitter_px=0.0, partial_prob=1.0, min_keep=0.5, miss_prob=0.0)
        .interact("s", pred, gt, frame=0)
    )
    assert len(cut) == len(base)
    for b, c in zip(base, cut, strict=True):
        full, part = np.asarray(b["path"]), np.asarray(c["path"])
        assert 0.5 * len(full) - 1 <= len(part) < len(full)
        start = int(np.flatnonzero(np.all(full == part[0], axis=1))[0])
        np.testing.assert_array_equal(full[start : start + len(part)], part)


def test_missed_objects_but_never_an_empty_answer() -> None:
    gt, pred = _two_squares()
    # miss_prob 1: both objects overlooked, but the user still draws the first one
    answer = NoisyScribbleRobot(seed=0, miss_prob=1.0).interact("s", pred, gt, frame=0)
    assert {s["object_id"] for s in _strokes(answer)} == {1}
    # with a background error on the frame, the background strokes are enough: no object is kept
    pred_bg = pred.copy()
    pred_bg[0, 0:4, 0:60] = 1  # a 4x60 false-positive band above object 1
    answer = NoisyScribbleRobot(seed=0, miss_prob=1.0).interact("s", pred_bg, gt, frame=0)
    assert {s["object_id"] for s in _strokes(answer)} == {0}


def test_large_jitter_stays_inside_the_image() -> None:
    gt, pred = _two_squares()
    answer = NoisyScribbleRobot(seed=0, jitter_px=80.0).interact("s", pred, gt, frame=0)
    validate_scribbles(answer, n_frames=2, n_objects=2)  # every point in [0, 1]


@pytest.mark.parametrize(
    "kwargs",
    [{"jitter_px": -1.0}, {"miss_prob": 1.5}, {"partial_prob": -0.1}, {"min_keep": 0.0}, {"seed": -1}],
)
def test_bad_noise_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(InputValidationError, match=next(iter(kwargs))):
        NoisyScribbleRobot(**{"seed": 0, **kwargs})


def test_noisy_clicks_deterministic_inside_the_error_and_seed_dependent() -> None:
    gt, pred = _two_squares()
    answers = {s: NoisyClickRobot(temperature=5.0, seed=s).interact("s", pred, gt, frame=0) for s in range(4)}
    assert NoisyClickRobot(temperature=5.0, seed=0).interact("s", pred, gt, frame=0) == answers[0]
    points = {s: tuple(tuple(c["point"]) for c in a["clicks"][0]) for s, a in answers.items()}
    assert len(set(points.values())) > 1
    for a in answers.values():
        for c in a["clicks"][0]:
            row, col = int(c["point"][1] * 40), int(c["point"][0] * 60)
            assert c["positive"] and gt[0, row, col] == c["object_id"]
    with pytest.raises(InputValidationError, match="temperature"):
        NoisyClickRobot(temperature=0.0, seed=0)


def test_population_factory_seeds() -> None:
    cfg = {"_target_": "ivos_rl.annotators.NoisyScribbleRobot", "seed": None, "miss_prob": 0.2}
    pop = build_annotators(cfg, 3, seed=7)
    assert [r.seed for r in pop] == [annotator_seed(7, i) for i in range(3)]
    assert len({r.seed for r in pop}) == 3 and all(r.miss_prob == 0.2 for r in pop)
    assert [r.seed for r in build_annotators(cfg, 3, seed=7)] == [r.seed for r in pop]
    fixed = build_annotators({**cfg, "seed": 11}, 2)
    assert [r.seed for r in fixed] == [11, 11]
    with pytest.raises(ConfigError, match="n_annotators"):
        build_annotators(cfg, 0)
    with pytest.raises(ConfigError, match="_target_"):
        build_annotators({"seed": None}, 2)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("scribble", ScribbleRobot), ("noisy_scribble", NoisyScribbleRobot), ("click", ClickRobot),
     ("noisy_click", NoisyClickRobot)],
)
def test_annotator_configs_build_populations(name: str, cls: type) -> None:
    cfg = OmegaConf.load(CONFIGS / "annotator" / f"{name}.yaml")
    pop = build_annotators(cfg, 2, seed=0)
    assert len(pop) == 2 and all(isinstance(r, cls) for r in pop)
    gt, pred = _two_squares()
    answers = [r.interact("s", pred, gt, frame=0) for r in pop]
    kind = "clicks" if "click" in name else "scribbles"
    assert all(a[kind][0] for a in answers)
    if name.startswith("noisy"):
        assert answers[0] != answers[1]  # two different users
    else:
        assert answers[0] == answers[1]  # the protocol robot, twice


@pytest.mark.parametrize("robot", [ClickRobot(), NoisyClickRobot(temperature=1.0, seed=0)])
def test_click_robots_run_end_to_end_through_evaluate(synthetic_root: Path, robot: object) -> None:
    dataset = DavisDataset(synthetic_root, resolution="480p")
    res = evaluate(
        dataset, SimulatedBackend(seed=0), LinspaceStrategy(n_rounds=3), setting="wild",
        robot=robot, max_rounds=3, max_samples=1, progress=False,
    )
    s = res.samples[0]
    # round 1 is the dataset's initial scribble, then the clicks land on the Linspace frames
    planned = [f for f in linspace_frames(s.annotated_frames[0], 12, 3) if f != s.annotated_frames[0]]
    assert s.recommended_frames == planned[:2]
    assert len(res.curve_rounds) == 4 and 0.0 < res.auc_rounds <= 1.0
