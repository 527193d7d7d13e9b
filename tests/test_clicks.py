"""Click robot and clicks utilities on small hand-made masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ivos_rl.clicks import (
    ClickRobot,
    clicked_frames,
    clicks2mask,
    clicks2points,
    clicks_to_scribbles,
    fuse_clicks,
    validate_clicks,
)
from ivos_rl.errors import InputValidationError, ScribbleError
from ivos_rl.scribbles import scribbles2mask


def _pixel(click: dict, h: int, w: int) -> tuple[int, int]:
    x, y = click["point"]
    return math.floor(y * h), math.floor(x * w)


def test_false_negative_square_gets_a_positive_click_at_its_centre() -> None:
    gt = np.zeros((1, 10, 10), np.uint8)
    gt[0, 2:5, 3:6] = 1  # 3x3 square, centre (3, 4)
    pred = np.zeros_like(gt)
    out = ClickRobot().interact("seq", pred, gt)
    assert out["sequence"] == "seq"
    (click,) = out["clicks"][0]
    assert click == {"point": [0.45, 0.35], "object_id": 1, "positive": True}  # (4.5/10, 3.5/10)
    assert _pixel(click, 10, 10) == (3, 4)


def test_false_positive_region_gets_a_negative_click() -> None:
    gt = np.zeros((1, 10, 10), np.uint8)
    gt[0, 0:2, 0:2] = 1
    pred = gt.copy()
    pred[0, 5:10, 5:10] = 1  # 5x5 false positive touching the border; interior-most pixel (7, 7)
    (click,) = ClickRobot().interact("seq", pred, gt)["clicks"][0]
    assert click["positive"] is False and click["object_id"] == 1
    assert _pixel(click, 10, 10) == (7, 7)


def test_largest_region_wins_between_fn_and_fp() -> None:
    gt = np.zeros((1, 12, 12), np.uint8)
    gt[0, 1:4, 1:4] = 1  # FN of area 9
    pred = np.zeros_like(gt)
    pred[0, 8:10, 8:10] = 1  # FP of area 4
    (click,) = ClickRobot().interact("seq", pred, gt)["clicks"][0]
    assert click["positive"] is True and _pixel(click, 12, 12) == (2, 2)
    pred[0, 6:12, 6:12] = 1  # FP grows to 36 > 9
    (click,) = ClickRobot().interact("seq", pred, gt)["clicks"][0]
    assert click["positive"] is False


def test_ties_go_to_smallest_row_then_column() -> None:
    gt = np.zeros((1, 8, 8), np.uint8)
    gt[0, 3:5, 2:6] = 1  # 2x4 block: every pixel is 1 from the outside
    (click,) = ClickRobot().interact("seq", np.zeros_like(gt), gt)["clicks"][0]
    assert _pixel(click, 8, 8) == (3, 2)


def test_worst_frame_and_per_object_clicks() -> None:
    gt = np.zeros((3, 10, 10), np.uint8)
    gt[:, 1:4, 1:4] = 1
    gt[:, 6:9, 6:9] = 2
    pred = gt.copy()
    pred[1, 1:4, 1:4] = 0  # object 1 missed on frame 1 only; object 2 perfect everywhere
    out = ClickRobot().interact("seq", pred, gt, nb_objects=2)
    assert [len(c) for c in out["clicks"]] == [0, 1, 0]
    assert out["clicks"][1][0]["object_id"] == 1
    forced = ClickRobot().interact("seq", pred, gt, nb_objects=2, frame=2)
    assert forced["clicks"] == [[], [], []]  # frame 2 is perfect: nothing to click


def test_negative_click_only_on_background_not_on_another_object() -> None:
    gt = np.zeros((1, 10, 10), np.uint8)
    gt[0, 0:6, 0:6] = 2
    gt[0, 8:10, 8:10] = 1
    pred = gt.copy()
    pred[0, 0:6, 0:6] = 1  # object 2's pixels predicted as 1
    clicks = ClickRobot().interact("seq", pred, gt, nb_objects=2)["clicks"][0]
    # object 1 has no background FP -> no click; object 2 gets a positive click
    assert [(c["object_id"], c["positive"]) for c in clicks] == [(2, True)]


def test_noisy_mode_is_seeded() -> None:
    gt = np.zeros((1, 30, 30), np.uint8)
    gt[0, 5:25, 5:25] = 1
    pred = np.zeros_like(gt)

    def run(seed: int) -> list[tuple[int, int]]:
        robot = ClickRobot(noise="distance", temperature=1.0, seed=seed)
        return [_pixel(robot.interact("s", pred, gt)["clicks"][0][0], 30, 30) for _ in range(5)]

    a, b, c = run(0), run(0), run(1)
    assert a == b
    assert a != c
    for r, col in a + c:
        assert gt[0, r, col] == 1  # always inside the error region
    assert len(set(a)) > 1  # a noisy annotator does not repeat the same pixel every time


def test_noisy_mode_at_tiny_temperature_is_the_interior_most_point() -> None:
    gt = np.zeros((1, 15, 15), np.uint8)
    gt[0, 2:13, 2:13] = 1  # 11x11 square, unique centre (7, 7)
    pred = np.zeros_like(gt)
    exact = ClickRobot().interact("s", pred, gt)
    for seed in range(3):
        noisy = ClickRobot(noise="distance", temperature=1e-3, seed=seed).interact("s", pred, gt)
        assert noisy == exact


def test_robot_rejects_bad_input() -> None:
    gt = np.zeros((2, 5, 5), np.uint8)
    gt[:, 1:3, 1:3] = 1
    robot = ClickRobot()
    with pytest.raises(InputValidationError, match="differs"):
        robot.interact("s", np.zeros((2, 5, 4), np.uint8), gt)
    nan = np.zeros(gt.shape, np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputValidationError, match="NaN"):
        robot.interact("s", nan, gt)
    with pytest.raises(InputValidationError, match=r"frame must be.*\[0, 2\), got 2"):
        robot.interact("s", gt, gt, frame=2)
    with pytest.raises(InputValidationError, match="no object"):
        robot.interact("s", gt, np.zeros_like(gt))
    with pytest.raises(InputValidationError, match="temperature"):
        ClickRobot(noise="distance", temperature=0.0, seed=0)
    with pytest.raises(InputValidationError, match="seed"):
        ClickRobot(noise="distance")
    with pytest.raises(InputValidationError, match="noise"):
        ClickRobot(noise="gaussian")  # type: ignore[arg-type]


def _clicks() -> dict:
    return {
        "clicks": [
            [{"point": [0.45, 0.35], "object_id": 1, "positive": True}],
            [],
            [{"point": [0.05, 0.95], "object_id": 2, "positive": False}],
        ],
        "sequence": "s",
    }


def test_clicks2mask_and_points() -> None:
    m = clicks2mask(_clicks(), (10, 10))
    assert m.shape == (3, 10, 10) and m.dtype == np.int32
    assert m[0, 3, 4] == 1 and (m[0] == 1).sum() == 1
    assert (m[1] == -1).all()
    assert m[2, 9, 0] == 0 and (m[2] != -1).sum() == 1  # negative click -> background
    disk = clicks2mask(_clicks(), (10, 10), radius_px=1)
    assert (disk[0] == 1).sum() == 5  # centre + 4 neighbours
    pts, ids, pos = clicks2points(_clicks(), (10, 10))
    assert pts.tolist() == [[0, 3, 4], [2, 9, 0]]
    assert ids.tolist() == [1, 2] and pos.tolist() == [True, False]
    assert clicked_frames(_clicks()) == [0, 2]


@pytest.mark.parametrize("radius", [0, 1, 2, 3.5, 8])
def test_clicks_to_scribbles_paints_a_disk(radius: float) -> None:
    h, w = 30, 40
    clicks = {
        "clicks": [[{"point": [(20 + 0.5) / w, (14 + 0.5) / h], "object_id": 3, "positive": True}], []],
        "sequence": "s",
    }
    scr = clicks_to_scribbles(clicks, radius, (h, w))
    (stroke,) = scr["scribbles"][0]
    assert stroke["object_id"] == 3 and scr["sequence"] == "s" and scr["scribbles"][1] == []
    painted = scribbles2mask(scr, (h, w))[0] == 3  # the DAVIS rasteriser with Bresenham lines
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy - 14, xx - 20)
    assert painted[dist <= radius].all()  # the whole disk
    assert not painted[dist > radius + 0.75].any()  # and nothing beyond its rim


def test_clicks_to_scribbles_polarity_and_border() -> None:
    neg = clicks_to_scribbles(_clicks(), 0, (10, 10))
    assert neg["scribbles"][2][0]["object_id"] == 0  # negative click -> background stroke
    assert [(int(y * 9), int(x * 9)) for x, y in neg["scribbles"][0][0]["path"]] == [(3, 4)]
    corner = clicks_to_scribbles(_clicks(), 3, (10, 10))  # click at (9, 0): the disk is clipped
    for x, y in corner["scribbles"][2][0]["path"]:
        assert 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0


def test_fuse_and_validate() -> None:
    fused = fuse_clicks(_clicks(), _clicks())
    assert [len(f) for f in fused["clicks"]] == [2, 0, 2]
    with pytest.raises(ScribbleError, match="cannot fuse"):
        fuse_clicks(_clicks(), {**_clicks(), "sequence": "other"})
    bad = _clicks()
    bad["clicks"][0][0]["point"] = [1.5, 0.2]
    with pytest.raises(ScribbleError, match=r"\[x, y\] in \[0, 1\]"):
        validate_clicks(bad)
    with pytest.raises(ScribbleError, match="not 4"):
        validate_clicks(_clicks(), n_frames=4)
    with pytest.raises(InputValidationError, match="radius_px"):
        clicks_to_scribbles(_clicks(), -1, (10, 10))
