"""The interaction rules every round loop shares: marks, the initial frame, the one fuse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ivos_rl.errors import ScribbleError
from ivos_rl.interactions import (
    copy_items,
    count_marks,
    first_annotated_frame,
    fuse_interactions,
    marked_frames,
)


def _stroke(n_points: int, obj: int = 1) -> dict[str, Any]:
    return {"path": [[0.5, 0.5]] * n_points, "object_id": obj, "start_time": 0.0, "end_time": 0.0}


def test_marks_are_clicks_and_strokes_with_points() -> None:
    inter = {
        "scribbles": [[_stroke(0)], [], [_stroke(3), _stroke(1)], []],
        "clicks": [[], [], [], [{"point": [0.1, 0.1], "object_id": 1, "positive": True}]],
        "sequence": "s",
    }
    assert count_marks(inter) == 3  # the empty stroke on frame 0 is no mark
    assert [count_marks(inter, f) for f in range(4)] == [0, 0, 2, 1]
    assert marked_frames(inter) == [2, 3]
    assert first_annotated_frame(inter) == 2  # not frame 0, whose only stroke is empty


def test_an_interaction_without_marks_has_no_initial_frame() -> None:
    with pytest.raises(ScribbleError, match="annotates no frame"):
        first_annotated_frame({"scribbles": [[_stroke(0)], []], "sequence": "s"})


def test_fuse_keeps_order_kinds_and_inputs() -> None:
    a = {"scribbles": [[_stroke(2, 1)], []], "sequence": "s", "annotated_frame": 0}
    b = {"clicks": [[], [{"point": [0.2, 0.3], "object_id": 2, "positive": False}]], "sequence": "s"}
    c = {"scribbles": [[_stroke(1, 0)], [_stroke(1, 2)]], "sequence": "s"}
    fused = fuse_interactions(fuse_interactions(a, b), c)
    assert [st["object_id"] for st in fused["scribbles"][0]] == [1, 0]
    assert [st["object_id"] for st in fused["scribbles"][1]] == [2]
    assert fused["clicks"] == [[], [{"point": [0.2, 0.3], "object_id": 2, "positive": False}]]
    assert fused["annotated_frame"] == 0 and fused["sequence"] == "s"
    fused["scribbles"][0][0]["path"][0][0] = 9.0
    assert a["scribbles"][0][0]["path"][0][0] == 0.5  # nothing shared with the inputs
    with pytest.raises(ScribbleError, match="different sequences"):
        fuse_interactions(a, {**c, "sequence": "t"})
    with pytest.raises(ScribbleError, match="2 and 3 frames"):
        fuse_interactions(a, {"scribbles": [[], [], []], "sequence": "s"})


def test_fusing_in_place_extends_the_first_dict_with_copies_of_the_second() -> None:
    a = {"scribbles": [[_stroke(2, 1)], []], "sequence": "s", "annotated_frame": 0}
    b = {"clicks": [[], [{"point": [0.2, 0.3], "object_id": 2, "positive": False}]], "sequence": "s"}
    c = {"scribbles": [[_stroke(1, 0)], [_stroke(1, 2)]], "sequence": "s"}
    expected = fuse_interactions(fuse_interactions(a, b), c)
    own = fuse_interactions(a, {"scribbles": [[], []]})  # the owner's copy
    fused = fuse_interactions(fuse_interactions(own, b, in_place=True), c, in_place=True)
    assert fused is own and fused == expected
    fused["scribbles"][1][0]["path"][0][0] = 9.0
    fused["clicks"][1][0]["point"][0] = 9.0
    assert c["scribbles"][1][0]["path"][0][0] == 0.5 and b["clicks"][1][0]["point"][0] == 0.2  # b copied
    with pytest.raises(ScribbleError, match="different sequences"):
        fuse_interactions(own, {**c, "sequence": "t"}, in_place=True)


def test_copies_share_read_only_array_paths_and_copy_writable_ones() -> None:
    frozen = np.array([[0.1, 0.2], [0.3, 0.4]])
    frozen.flags.writeable = False
    loose = np.array([[0.5, 0.6]])
    (a, b) = copy_items([{"path": frozen, "object_id": 1}, {"path": loose, "object_id": 0}])
    assert a["path"] is frozen  # cannot change: nothing to copy
    assert b["path"] is not loose and b["path"].tolist() == [[0.5, 0.6]]
    loose[0, 0] = 0.0
    assert b["path"].tolist() == [[0.5, 0.6]]
    assert count_marks({"scribbles": [[a, b]], "sequence": "s"}) == 2
    buffer = np.array([[0.7, 0.8]])
    view = buffer.view()
    view.flags.writeable = False  # read-only, but its buffer is not
    (c,) = copy_items([{"path": view, "object_id": 1}])
    buffer[0, 0] = 0.0
    assert c["path"] is not view and c["path"].tolist() == [[0.7, 0.8]]
