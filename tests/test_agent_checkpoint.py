"""Policy files: round trip, state-mode mismatch refused, damaged files refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ivos_rl.agents.checkpoint import (
    load_policy,
    load_training_checkpoint,
    save_policy,
    save_training_checkpoint,
)
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.errors import CheckpointError


def test_policy_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = QNetwork("bilstm", hidden=16, decoder_hidden=8)
    path = save_policy(tmp_path / "agent.pt", net, {"state_mode": "both", "horizon": 4})
    loaded, meta = load_policy(path, state_mode="both")
    assert meta["horizon"] == 4 and loaded.recurrence == "bilstm"
    x = torch.rand(2, 9, 2)
    torch.testing.assert_close(loaded(x), net(x))


def test_policy_state_mode_mismatch_is_refused(tmp_path: Path) -> None:
    path = save_policy(tmp_path / "agent.pt", QNetwork(hidden=8, decoder_hidden=4), {"state_mode": "q_only"})
    with pytest.raises(CheckpointError, match="state_mode='q_only'"):
        load_policy(path, state_mode="both")


def test_damaged_or_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_policy(tmp_path / "missing.pt")
    path = save_policy(tmp_path / "agent.pt", QNetwork(hidden=8, decoder_hidden=4), {"state_mode": "both"})
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_policy(truncated)
    with pytest.raises(CheckpointError, match=r"not a ivos_rl\.agent\.training"):
        load_training_checkpoint(path)


def test_training_checkpoint_meta_mismatch(tmp_path: Path) -> None:
    path = save_training_checkpoint(tmp_path / "ck.pt", {"step": 3}, {"state_mode": "both", "n": 25})
    assert load_training_checkpoint(path, {"n": 25})["state"]["step"] == 3
    with pytest.raises(CheckpointError, match="n: checkpoint 25 vs requested 30"):
        load_training_checkpoint(path, {"n": 30})
