"""Frame-selection strategies on hand-made states."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.strategies import (
    FarthestStrategy,
    FarthestWildStrategy,
    LinspaceStrategy,
    RandomStrategy,
    StrategyState,
    UncertaintyStrategy,
    WorstStrategy,
    build_strategy,
    linspace_frames,
)
from ivos_rl.strategies.farthest import distance_to_annotations
from ivos_rl.strategies.uncertainty import frame_uncertainty


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (0, [0, 2, 4, 6]),  # linspace(0, 9, 5) -> [0, 2, 4, 6, 9]; drop the last
        (1, [1, 3, 5, 7]),  # shifted by one: [1, 3, 5, 7, 10]; drop the last
        (8, [2, 4, 6, 8]),  # shifted by two: [2, 4, 6, 8, 11]
        (9, [2, 4, 6, 9]),  # initial frame is the last position: drop the first
    ],
)
def test_linspace_positions_n10_t4(first: int, expected: list[int]) -> None:
    assert linspace_frames(first, 10, 4) == expected


def test_linspace_short_video_and_order() -> None:
    assert linspace_frames(1, 3, 4) == [0, 1, 2]
    s = LinspaceStrategy(n_rounds=4)
    history: tuple[int, ...] = (1,)
    picks = []
    for r in range(1, 5):
        f = s.select(StrategyState(round=r, n_frames=10, history=history))
        picks.append(f)
        history = (*history, f)
    assert picks == [3, 5, 7, 1]  # planned frames in order, then back to the initial frame


def test_worst_never_repeats_until_exhausted() -> None:
    q = np.array([0.9, 0.1, 0.5, 0.2])
    s = WorstStrategy()
    history: tuple[int, ...] = (0,)
    picks = []
    for r in range(1, 5):
        f = s.select(StrategyState(round=r, n_frames=4, history=history, quality=q))
        picks.append(f)
        history = (*history, f)
    assert picks == [1, 3, 2, 1]  # ascending quality skipping frame 0, then argmin again
    with pytest.raises(InputValidationError):
        s.select(StrategyState(round=1, n_frames=4, history=(0,)))


def test_random_is_seeded_and_in_range() -> None:
    st = StrategyState(round=1, n_frames=7, history=(3,))
    a = [RandomStrategy(seed=5).select(st) for _ in range(1)]
    s1, s2 = RandomStrategy(seed=5), RandomStrategy(seed=5)
    seq1 = [s1.select(st) for _ in range(20)]
    seq2 = [s2.select(st) for _ in range(20)]
    assert seq1 == seq2 and a[0] == seq1[0]
    assert all(0 <= f < 7 for f in seq1)
    ex = RandomStrategy(seed=1, exclude_annotated=True)
    assert all(ex.select(st) != 3 for _ in range(30))


def test_farthest_distance_and_choice() -> None:
    np.testing.assert_array_equal(distance_to_annotations(6, (1, 4)), [1, 0, 1, 1, 0, 1])
    assert FarthestStrategy().select(StrategyState(round=1, n_frames=10, history=(2,))) == 9
    # tie between frame 0 and frame 4 (distance 2 from frame 2... and 6): earliest wins
    assert FarthestStrategy().select(StrategyState(round=2, n_frames=7, history=(2, 6))) == 0


def test_farthest_wild_leans_to_the_poorer_side_of_a_gap() -> None:
    """7 frames, 0 and 6 annotated: distances [0, 1, 2, 3, 2, 1, 0]. Farthest picks 3; with q = .2 on
    frame 4 the weighted scores d x (1 + .5 (1 - q)) are [0, 1, 2, 3, 2.8, 1, 0] (still 3), with q = 0 on
    frames 4 and 2 they are [0, 1, 3, 3, 3, 1, 0]: a tie between 2, 3 and 4, and the earliest wins."""
    q = np.ones(7, np.float32)
    q[4] = 0.2
    state = StrategyState(round=2, n_frames=7, history=(0, 6), quality=q)
    assert FarthestStrategy().select(state) == 3
    assert FarthestWildStrategy().select(state) == 3
    q[4] = 0.0
    q[2] = 0.0
    assert FarthestWildStrategy(quality_weight=0.5).select(state) == 2
    assert FarthestWildStrategy(quality_weight=2.0).select(state) == 2  # 2 x 3 = 6 > 3
    q[2] = 1.0
    assert FarthestWildStrategy(quality_weight=2.0).select(state) == 4  # 2 x 3 = 6 > 3
    assert FarthestWildStrategy().needs_quality and FarthestWildStrategy.name == "farthest_wild"
    with pytest.raises(ConfigError, match="quality_weight > 0"):
        FarthestWildStrategy(quality_weight=0.0)
    with pytest.raises(InputValidationError):
        FarthestWildStrategy().select(StrategyState(round=2, n_frames=7, history=(0, 6)))  # no quality


def test_uncertainty_prefers_soft_frames() -> None:
    probs = np.zeros((3, 1, 4, 4), np.uint8)
    probs[0, 0, :2] = 255  # confident object
    probs[1, 0, :2] = 255
    probs[1, 0, 2] = 128  # a band of p ~ 0.5
    probs[2, 0, :2] = 200
    u = frame_uncertainty(probs)
    assert u[0] == 0.0
    # frame 1: 4 pixels at p=128/255 over an area of 12 foreground pixels
    assert u[1] == pytest.approx(4 * (1 - abs(2 * 128 / 255 - 1)) / 12, rel=1e-5)
    # frame 2: 8 pixels at p=200/255, all foreground
    assert u[2] == pytest.approx(1 - abs(2 * 200 / 255 - 1), rel=1e-5)
    assert UncertaintyStrategy().select(StrategyState(round=1, n_frames=3, history=(0,), probs=probs)) == 2
    assert UncertaintyStrategy().select(StrategyState(round=1, n_frames=3, history=(2,), probs=probs)) == 1


def test_registry_lists_valid_names() -> None:
    assert isinstance(build_strategy("worst"), WorstStrategy)
    with pytest.raises(ConfigError, match="linspace"):
        build_strategy("best-ever")


def test_state_validation() -> None:
    with pytest.raises(InputValidationError, match="history"):
        StrategyState(round=1, n_frames=3, history=(3,))
    with pytest.raises(InputValidationError, match="NaN"):
        StrategyState(round=1, n_frames=2, history=(0,), quality=np.array([0.1, np.nan]))
    counts = StrategyState(round=2, n_frames=3, history=(0, 2, 0)).visit_counts()
    np.testing.assert_array_equal(counts, [2, 0, 1])


def test_agent_picks_argmax_q(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from ivos_rl.agents.checkpoint import save_policy
    from ivos_rl.agents.qnet import QNetwork
    from ivos_rl.agents.strategy import AgentStrategy
    from ivos_rl.errors import CheckpointError

    torch.manual_seed(0)
    qnet = QNetwork(recurrence="bilstm", hidden=8, decoder_hidden=8)
    path = save_policy(tmp_path / "p.pt", qnet, {"state_mode": "both"})
    agent = AgentStrategy.from_checkpoint(path)
    q = np.linspace(0.2, 0.9, 11)
    st = StrategyState(round=1, n_frames=11, history=(4,), quality=q)
    values = agent.q_values(st)
    assert values.shape == (11,)
    assert agent.select(st) == int(np.argmax(values))
    # the Q values are the network's on the (q, h) state
    obs = torch.tensor(np.stack([q, np.eye(11)[4]], 1), dtype=torch.float32)
    np.testing.assert_allclose(values, qnet(obs)[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(CheckpointError, match="state_mode"):
        AgentStrategy.from_checkpoint(path, state_mode="q_only")
    with pytest.raises(CheckpointError, match="not found"):
        AgentStrategy.from_checkpoint(tmp_path / "missing.pt")
    # the policy's split record (the field every trainer writes) is exposed for leak checks
    assert agent.split is None  # this file records none
    split = {"train": ["a", "b"], "held_out": ["c"], "seed": 0}
    recorded = save_policy(tmp_path / "s.pt", qnet, {"state_mode": "both", "split": split})
    assert AgentStrategy.from_checkpoint(recorded).split == split
    bad = save_policy(tmp_path / "bad.pt", qnet, {"state_mode": "both", "split": {"train": "a"}})
    with pytest.raises(CheckpointError, match="malformed 'split'"):
        AgentStrategy.from_checkpoint(bad)


def test_paper_ddqn_policy_loads_and_scores_any_length() -> None:
    from pathlib import Path

    from ivos_rl.agents.checkpoint import load_policy
    from ivos_rl.agents.strategy import AgentStrategy
    from ivos_rl.errors import CheckpointError

    # the paper's (q, h) DDQN trained on backend v1 (kept for reference; checkpoints/agent/README.md)
    path = Path(__file__).resolve().parents[1] / "checkpoints" / "agent" / "paper_ddqn_backend_v1_seed0.pt"
    qnet, meta = load_policy(path)
    assert meta["state_mode"] == "both" and meta["backend"] == "propagation" and meta["quality"] == "oracle"
    assert qnet.config()["recurrence"] == "bilstm"
    agent = AgentStrategy.from_checkpoint(path)
    for n in (25, 80):  # trained on 25-frame subsequences, used on whole videos
        q = np.linspace(0.9, 0.3, n)
        state = StrategyState(round=1, n_frames=n, history=(0,), quality=q)
        frame = agent.select(state)
        assert 0 <= frame < n and frame == int(np.argmax(agent.last_q_values))
    with pytest.raises(CheckpointError, match="state_mode"):
        AgentStrategy.from_checkpoint(path, state_mode="q_only")
