"""The agent's split comes from the one split function and is checked against the quality net's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ivos_rl.data.splits import split_record, split_sequences
from ivos_rl.envs.factory import Components, agent_split, quality_split
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.rounds import QualitySource

VIDEOS = ["bear", "boat", "dog", "hike", "kite", "surf"]


def _components(quality: object) -> Components:
    return Components(dataset=SimpleNamespace(sequences=VIDEOS), backend=None, robot=None, quality=quality)


def _net(train: list[str], held_out: list[str]) -> SimpleNamespace:
    """What QualityEstimator.from_checkpoint exposes: the checkpoint's split record and its path."""
    return SimpleNamespace(
        split=split_record(train, held_out, 0), checkpoint_path=Path("q.pt"), predict=lambda f, p: (f, p)
    )


def test_oracle_uses_the_shared_split() -> None:
    assert agent_split(_components("oracle"), 2, seed=0) == split_sequences(VIDEOS, 2, seed=0)
    assert agent_split(_components("oracle"), ["dog"], seed=0) == (
        ["bear", "boat", "hike", "kite", "surf"],
        ["dog"],
    )
    assert quality_split("oracle") is None


def test_held_out_videos_unseen_by_the_quality_net_pass() -> None:
    net = _net(["bear", "boat", "hike", "kite"], ["dog", "surf"])
    assert agent_split(_components(net), ["dog"], seed=0)[1] == ["dog"]
    # a net without a record (older checkpoint, custom estimator) cannot be checked
    assert agent_split(_components(SimpleNamespace()), ["bear"], seed=0)[1] == ["bear"]


def test_held_out_videos_the_quality_net_trained_on_are_refused() -> None:
    net = _net(["bear", "boat", "hike", "kite"], ["dog", "surf"])
    with pytest.raises(ConfigError, match=r"\['bear', 'kite'\] were used to train the quality net q\.pt"):
        agent_split(_components(net), ["kite", "dog", "bear"], seed=0)


def test_a_malformed_record_is_a_checkpoint_error() -> None:
    net = SimpleNamespace(split={"train": "bear"}, checkpoint_path=Path("q.pt"))
    with pytest.raises(CheckpointError, match=r"q\.pt"):
        agent_split(_components(net), ["dog"], seed=0)


def test_the_setting_groups_quality_source_is_checked_through_its_estimator() -> None:
    """build_components gives a QualitySource (setting=oracle|wild): the net inside it is checked."""
    net = _net(["bear", "boat", "hike", "kite"], ["dog", "surf"])
    assert quality_split(QualitySource("oracle")) is None
    assert quality_split(QualitySource("wild", net)) == net.split
    with pytest.raises(ConfigError, match=r"\['bear'\] were used to train the quality net q\.pt"):
        agent_split(_components(QualitySource("wild", net)), ["dog", "bear"], seed=0)
