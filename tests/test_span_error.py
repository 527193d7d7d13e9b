"""Span-error strategy (issue 16): weights and choices checked by hand on tiny timelines."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.strategies import FarthestStrategy, StrategyState, WorstStrategy, build_strategy
from ivos_rl.strategies.span_error import SpanErrorStrategy, span_error_scores, span_weights

# 9 frames annotated at 0 and 3: span A = (0, 3) holds one bad frame (1), the open span B = (3, 9)
# holds five mediocre ones (4..8), whose error adds up to twice A's.
Q = np.array([1.0, 0.0, 1.0, 1.0, 0.6, 0.6, 0.6, 0.6, 0.6])
HISTORY = (0, 3)


def _state(q: np.ndarray = Q, history: tuple[int, ...] = HISTORY) -> StrategyState:
    return StrategyState(round=len(history), n_frames=q.size, history=history, quality=q)


def test_weights_follow_the_span_and_the_backend_fusion_share() -> None:
    w = span_weights(9, HISTORY, length=None, fusion=True)
    # k = 1 in span (0, 3): j = 2 sits 1 from k and 1 from the neighbour 3 -> 1 / (1 + 1)
    np.testing.assert_allclose(w[1], [0, 1, 0.5, 0, 0, 0, 0, 0, 0])
    # k = 5 in the open span (3, 9): d_o = j - 3 on both sides (the nearest other annotated frame is 3)
    np.testing.assert_allclose(w[5], [0, 0, 0, 0, 1 / 2, 1, 3 / 4, 4 / 6, 5 / 8])
    free = [1, 2, 4, 5, 6, 7, 8]
    assert np.all(w[free][:, [0, 3]] == 0)  # annotated frames end a free frame's span, never inside it


def test_weights_without_fusion_decay_exponentially() -> None:
    w = span_weights(9, HISTORY, length=1.0, fusion=False)
    np.testing.assert_allclose(w[5, 4:], np.exp(-np.abs(np.arange(4, 9) - 5.0)))
    np.testing.assert_allclose(w[5, :4], 0)
    flat = span_weights(9, HISTORY, length=None, fusion=False)
    np.testing.assert_allclose(flat[2], [0, 1, 1, 0, 0, 0, 0, 0, 0])


def test_single_annotation_open_ends_use_the_nearest_other_annotation() -> None:
    # only frame 0 annotated: for k = 2, j = 1 is 1 from 0 and 1 from k (1/2); j = 3 is 3 from 0 (3/4)
    np.testing.assert_allclose(span_weights(4, (0,), fusion=True)[2], [0, 0.5, 1, 0.75])
    # an annotated candidate (allow_repeat): its span runs between its other neighbours, itself inside
    np.testing.assert_allclose(span_weights(4, (0, 2), fusion=False)[2], [0, 1, 1, 1])


def test_choice_weighs_span_error_unlike_worst_and_farthest() -> None:
    s = _state()
    assert WorstStrategy().select(s) == 1  # the single worst frame, in the small span
    assert FarthestStrategy().select(s) == 8  # the far end of the long span
    # no decay, no fusion: span B's error 5 x 0.4 = 2.0 beats span A's 1.0; ties to the earliest frame
    # (the annotated 3 would reach both spans, 3.0, but is skipped)
    np.testing.assert_allclose(span_error_scores(Q, HISTORY, None, False), [1, 1, 1, 3, 2, 2, 2, 2, 2])
    assert SpanErrorStrategy(length=None, fusion=False).select(s) == 4
    # fusion: 0.4 x (1/2 + 1 + 3/4 + 2/3 + 5/8) = 1.4167 at k = 5, the best of span B; span A at most 1
    scores = span_error_scores(Q, HISTORY, None, True)
    assert scores[5] == pytest.approx(0.4 * (1 / 2 + 1 + 3 / 4 + 2 / 3 + 5 / 8))
    assert scores[1] == pytest.approx(1.0)
    assert build_strategy("span_error").select(s) == 5


def test_short_decay_length_falls_back_toward_worst() -> None:
    # length 0.1: only the frame itself counts, so the rule is Worst (among unannotated frames)
    assert SpanErrorStrategy(length=0.1, fusion=True).select(_state()) == 1


def test_annotated_frames_skipped_unless_repeats_allowed() -> None:
    q = np.array([0.0, 1.0, 1.0])  # the only error sits on the annotated frame 0
    s = _state(q, (0,))
    assert SpanErrorStrategy(length=None, fusion=False).select(s) == 1
    assert SpanErrorStrategy(length=None, fusion=False, allow_repeat=True).select(s) == 0
    every = _state(np.array([0.2, 0.1]), (0, 1))  # all annotated: repeats allowed, each its own span
    assert SpanErrorStrategy(fusion=False).select(every) == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="length"):
        SpanErrorStrategy(length=0)
    with pytest.raises(InputValidationError, match="quality"):
        SpanErrorStrategy().select(StrategyState(round=1, n_frames=3, history=(0,)))
    with pytest.raises(InputValidationError, match="history"):
        span_weights(3, (5,))
    with pytest.raises(InputValidationError, match="finite"):
        span_error_scores(np.array([0.5, np.nan]), (0,))
