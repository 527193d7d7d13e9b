"""Agent state features beyond (q, h): hand-checked values, and the env's observation with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data.davis import DavisDataset
from ivos_rl.envs import FrameRecommendationEnv
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.state import build_state, history_counts
from ivos_rl.state_features import (
    FEATURE_GROUPS,
    StateFeatures,
    area_change,
    label_entropy,
    run_disagreement,
    side_distances,
    span_columns,
)
from ivos_rl.strategies import StrategyState


def test_side_distances_by_hand() -> None:
    d = side_distances([7, 3], 10)
    # frame 0: nothing before (1.0), frame 3 after (0.3); frame 5: 3 before (.2), 7 after (.2)
    assert d[0].tolist() == pytest.approx([1.0, 0.3])
    assert d[3].tolist() == pytest.approx([0.0, 0.0])
    assert d[5].tolist() == pytest.approx([0.2, 0.2])
    assert d[9].tolist() == pytest.approx([0.2, 1.0])
    assert side_distances([], 4).tolist() == [[1.0, 1.0]] * 4
    with pytest.raises(InputValidationError, match="outside"):
        side_distances([4], 4)


def test_span_columns_by_hand() -> None:
    # 4 frames, frame 0 annotated, error .5 on frames 1 and 3. Frame 1: itself (1) + frame 3, 3 from
    # frame 0 and 2 from 1, fusion share 3 / 5 -> .5 + .3 = .8; frame 2: frame 1 (1 / 2) and 3 (3 / 4)
    # -> .25 + .375 = .625; frame 3: frame 1 (1 from 0, 2 from 3: 1 / 3) and itself. Frame 0 reaches
    # every frame at full share (1.0). Spans: frame 0 has no other annotated frame (4 frames), the
    # others (0, 4): 3.
    cols = span_columns(np.array([1.0, 0.5, 1.0, 0.5]), [0])
    np.testing.assert_allclose(cols[:, 0], np.array([1.0, 0.8, 0.625, 0.5 * (1 / 3 + 1)]) / 4)
    np.testing.assert_allclose(cols[:, 1], [1.0, 0.75, 0.75, 0.75])
    state = build_state(np.array([1.0, 0.5, 1.0, 0.5]), history_counts([0], 4))
    obs = StateFeatures.parse(["span"]).extend(state, [0], horizon=7)
    np.testing.assert_allclose(obs[:, 2:], cols)
    np.testing.assert_allclose(span_columns(np.full(4, 0.5), [0])[::-1, 0],
                               span_columns(np.full(4, 0.5), [3])[:, 0])  # time reversal


def test_label_entropy_by_hand() -> None:
    probs = np.zeros((3, 1, 2, 2), np.uint8)
    probs[1] = 255  # certain foreground: entropy 0
    probs[2, 0, 0, :] = 128  # ~0.5 on half the pixels: ~1 bit there, 0 elsewhere -> ~0.5
    e = label_entropy(probs)
    assert e[0] == pytest.approx(0.0) and e[1] == pytest.approx(0.0)
    assert e[2] == pytest.approx(0.5, abs=1e-4)
    two = np.full((1, 2, 1, 1), 1 / 3, np.float32)  # three equally likely labels: maximal = 1
    assert label_entropy(two)[0] == pytest.approx(1.0)


def test_one_object_entropy_table_gives_the_float_formulas_bytes() -> None:
    """The uint8, one-object path reads a 256-entry table; the float formula (here written out) on
    the same uint8 values must give the same float32 bytes, for every value and a mixed stack."""
    def formula(probs: np.ndarray) -> np.ndarray:
        p = probs.astype(np.float32) / 255.0
        full = np.concatenate([np.clip(1.0 - p.sum(axis=1, keepdims=True), 0.0, None), p], axis=1)
        full /= np.maximum(full.sum(axis=1, keepdims=True), 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(full > 0, -full * np.log(full), 0.0)
        return (terms.sum(axis=1).mean(axis=(1, 2)) / np.log(p.shape[1] + 1)).astype(np.float32)

    every = np.arange(256, dtype=np.uint8).reshape(256, 1, 1, 1)  # one frame per value
    assert label_entropy(every).tobytes() == formula(every).tobytes()
    stack = np.random.default_rng(0).integers(0, 256, (5, 1, 37, 53), dtype=np.uint8)
    assert label_entropy(stack).tobytes() == formula(stack).tobytes()
    two = np.random.default_rng(1).integers(0, 128, (3, 2, 9, 11), dtype=np.uint8)  # the general path
    assert label_entropy(two).tobytes() == formula(two).tobytes()


def test_area_change_by_hand() -> None:
    masks = np.zeros((4, 2, 10), np.uint8)
    masks[0, 0, :10] = 1  # area 10
    masks[1, :, :10] = 1  # 20
    masks[2, :, :10] = 2  # 20 (object id does not matter)
    # masks[3] empty: 0
    # pairs: (10, 20) -> .5, (20, 20) -> 0, (20, 0) -> 1
    assert area_change(masks).tolist() == pytest.approx([0.5, 0.25, 0.5, 1.0])
    assert area_change(np.zeros((2, 3, 3), np.uint8)).tolist() == [0.0, 0.0]


def test_parse_width_and_extend() -> None:
    assert StateFeatures.parse(None).groups == () and StateFeatures.parse([]).width == 0
    every = StateFeatures.parse("all")
    assert every.groups == tuple(FEATURE_GROUPS) and every.width == 9
    assert StateFeatures.parse(["round", "distance"]).groups == ("distance", "round")  # canonical order
    for bad in (["colour"], ["round", "round"]):
        with pytest.raises(ConfigError, match="state_features"):
            StateFeatures.parse(bad)
    state = build_state(np.full(10, 0.5), history_counts([3, 7], 10))
    assert StateFeatures().extend(state, [3, 7], horizon=4) is state  # the paper's state, untouched
    obs = StateFeatures.parse(["distance", "round"]).extend(state, [3, 7], horizon=4)
    assert obs.shape == (10, 5) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, :2], state)
    assert obs[5, 2:4].tolist() == pytest.approx([0.2, 0.2]) and np.all(obs[:, 4] == 0.25)  # 1 of 4 used
    with pytest.raises(InputValidationError, match="entropy"):
        StateFeatures.parse(["entropy"]).extend(state, [3, 7], horizon=4)


def test_uncertainty_needs_an_estimator_that_reports_it() -> None:
    feats = StateFeatures.parse(["uncertainty"])
    feats.check_quality("oracle", oracle=True)  # the Oracle knows J&F exactly: uncertainty 0
    with pytest.raises(ConfigError, match="last_uncertainty"):
        feats.check_quality(object(), oracle=False)
    probs, masks = np.zeros((3, 1, 2, 2), np.uint8), np.zeros((3, 2, 2), np.uint8)
    assert feats.from_output(probs, masks, uncertainty=np.zeros(3)).tolist() == [[0.0]] * 3
    unsure = feats.from_output(probs, masks, uncertainty=np.array([0.1, 2.0, 0.3]))
    assert unsure.ravel().tolist() == pytest.approx([0.1, 1.0, 0.3])  # clipped to [0, 1]
    with pytest.raises(InputValidationError, match="gave none"):
        feats.from_output(probs, masks)
    with pytest.raises(InputValidationError, match=r"\(3,\)"):
        feats.from_output(probs, masks, uncertainty=np.zeros(2))


# ----------------------------------------------------------------------------- in the environment


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p", image_set="2017/train")


def _env(dataset: DavisDataset, **kw: Any) -> FrameRecommendationEnv:
    return FrameRecommendationEnv(dataset, backend=SimulatedBackend(seed=0), interaction="fast",
                                  reward={"use_goal": False}, horizon=3, subsequence_length=8, **kw)


def test_default_observation_is_the_papers_state(dataset: DavisDataset) -> None:
    env = _env(dataset)
    assert env.observation_space.shape == (8, 2)
    assert env.observation_space.high[:, 1].tolist() == [4.0] * 8
    env.reset(seed=0)
    obs, *_ = env.step(2)
    ep = env._episode
    assert ep is not None
    np.testing.assert_array_equal(obs, build_state(ep["q"], history_counts(ep["history"], 8)))


def test_env_appends_selected_groups_and_caches_them(dataset: DavisDataset) -> None:
    groups = ["distance", "entropy", "area_change", "round"]
    plain = _env(dataset, state_features=groups)
    cached = _env(dataset, state_features=groups, transition_cache=50)
    assert plain.observation_space.shape == (8, 7)
    for _ in range(2):  # second pass: every step of `cached` is a transition-cache hit
        oa, _ = plain.reset(seed=1)
        ob, _ = cached.reset(seed=1)
        for a in (2, 6):
            oa, *_ = plain.step(a)
            ob, *_ = cached.step(a)
            np.testing.assert_array_equal(oa, ob)
    ep = plain._episode
    assert ep is not None and plain.observation_space.contains(oa)
    np.testing.assert_array_equal(oa[:, 2:4], side_distances(ep["history"], 8))
    out = plain.engine.state.output
    assert out is not None
    np.testing.assert_allclose(oa[:, 4], label_entropy(out.probs))
    np.testing.assert_allclose(oa[:, 5], area_change(out.masks))
    assert np.all(oa[:, 6] == pytest.approx(2 / 3))  # two of three recommendations made
    assert cached.cache_hits > 0


def test_env_refuses_uncertainty_without_an_estimator_that_has_it(dataset: DavisDataset) -> None:
    class Plain:
        def predict(self, frames: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
            return np.full(len(frames), 0.5), np.full((len(frames), 1), 0.5)

    with pytest.raises(ConfigError, match="uncertainty"):
        _env(dataset, quality=Plain(), state_features=["uncertainty"])


class _Unsure:
    """A Wild estimator that reports a per-frame standard deviation after each predict, as the
    feature model and the fused CNN do: 0, 0.3, 0.6, ... (clipped to 1 in the state)."""

    def __init__(self) -> None:
        self.last_uncertainty: np.ndarray | None = None

    def predict(self, frames: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
        n = len(frames)
        self.last_uncertainty = 0.3 * np.arange(n)
        return np.full(n, 0.5), np.full((n, 1), 0.5)


def test_uncertainty_column_is_the_estimators_and_the_agent_rebuilds_it(dataset: DavisDataset) -> None:
    from ivos_rl.agents.qnet import QNetwork
    from ivos_rl.agents.strategy import AgentStrategy

    agent = AgentStrategy(QNetwork("bilstm", hidden=4, decoder_hidden=4, in_features=3),
                          state_features=["uncertainty"])
    for quality, want in ((_Unsure(), np.minimum(0.3 * np.arange(8), 1.0)), (None, np.zeros(8))):
        kw = {} if quality is None else {"quality": quality}
        env = _env(dataset, state_features=["uncertainty"], **kw)
        env.reset(seed=0)
        obs, *_ = env.step(2)
        np.testing.assert_allclose(obs[:, 2], want, atol=1e-6)  # Oracle: J&F is exact, uncertainty 0
        view = env.engine.view(agent, 2, 4)  # what evaluation gives the agent after the same round
        assert view.uncertainty is not None
        np.testing.assert_array_equal(agent.observation(view), obs)
    with pytest.raises(InputValidationError, match="gave none"):
        agent.observation(StrategyState(round=1, n_frames=8, history=(0,), quality=np.full(8, 0.5),
                                        probs=np.zeros((8, 1, 2, 2), np.uint8)))


def test_strategy_state_checks_the_uncertainty() -> None:
    ok = np.array([0.0, 0.1, 2.0])
    StrategyState(round=1, n_frames=3, history=(0,), quality=np.ones(3), uncertainty=ok)
    for bad in (np.zeros(2), np.array([0.0, -0.1, 0.0]), np.array([0.0, np.nan, 0.0])):
        with pytest.raises(InputValidationError, match="uncertainty"):
            StrategyState(round=1, n_frames=3, history=(0,), uncertainty=bad)


def test_disagreement_is_one_minus_the_runs_iou_averaged_over_objects() -> None:
    # Two objects on 3 frames: IoU (1, 1), (.5, .7), (0, .2) -> disagreement 0, .4, .9.
    iou = np.array([[1.0, 1.0], [0.5, 0.7], [0.0, 0.2]], np.float32)
    masks = np.zeros((3, 4, 4), np.uint8)
    probs = np.zeros((3, 2, 4, 4), np.uint8)
    col = StateFeatures.parse(["disagreement"]).from_output(probs, masks, diagnostics={"runs_iou": iou})
    assert col.shape == (3, 1) and col[:, 0].tolist() == pytest.approx([0.0, 0.4, 0.9])
    assert run_disagreement({"runs_iou": iou}, 3).tolist() == pytest.approx([0.0, 0.4, 0.9])
    with pytest.raises(InputValidationError, match="diagnostics=true"):
        StateFeatures.parse(["disagreement"]).from_output(probs, masks)  # a backend without diagnostics
    with pytest.raises(InputValidationError, match="runs_iou"):
        run_disagreement({"runs_iou": iou[:2]}, 3)
