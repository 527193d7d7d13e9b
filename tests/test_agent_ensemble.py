"""The seed ensemble (``strategy=agent_ensemble``): mean-Q argmax, one file = that agent, mixes refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ivos_rl.agents.checkpoint import save_policy
from ivos_rl.agents.ensemble import AgentEnsembleStrategy, MeanQNetwork, merged_split
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.agents.strategy import AgentStrategy
from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.evaluation import checkpoint_provenance, evaluate
from ivos_rl.provenance import file_sha256, files_sha256
from ivos_rl.strategies import StrategyState


class _FixedQ(nn.Module):
    """A 'network' whose Q values are given by hand (whatever the state), for 4-frame videos."""

    in_features = 2

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = torch.tensor(values, dtype=torch.float32)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.values.expand(state.shape[0], -1) if state.ndim == 3 else self.values[None]


def _state(n: int = 4) -> StrategyState:
    return StrategyState(round=1, n_frames=n, history=(3,), quality=np.linspace(0.2, 0.8, n))


def test_the_mean_picks_what_no_member_picks() -> None:
    a, b = _FixedQ([3.0, 0.0, 2.0, 0.0]), _FixedQ([0.0, 3.0, 2.0, 0.0])
    assert AgentStrategy(a).select(_state()) == 0  # type: ignore[arg-type]
    assert AgentStrategy(b).select(_state()) == 1  # type: ignore[arg-type]
    ens = AgentEnsembleStrategy(MeanQNetwork([a, b]))  # type: ignore[arg-type]
    # mean Q = [1.5, 1.5, 2, 0]: frame 2, second choice of both members
    np.testing.assert_array_equal(ens.q_values(_state()), [1.5, 1.5, 2.0, 0.0])
    assert ens.select(_state()) == 2
    with pytest.raises(ConfigError, match="at least one"):
        MeanQNetwork([])


def _policy(path: Path, seed: int, meta: dict | None = None, **net: object) -> Path:  # type: ignore[type-arg]
    torch.manual_seed(seed)
    return save_policy(path, QNetwork(recurrence="bilstm", hidden=8, decoder_hidden=8, **net),  # type: ignore[arg-type]
                       {"state_mode": "both", **(meta or {})})


def test_files_mean_and_one_file_is_the_agent_bit_for_bit(tmp_path: Path) -> None:
    p0, p1 = _policy(tmp_path / "s0.pt", 0), _policy(tmp_path / "s1.pt", 1)
    state = _state(11)
    q0 = AgentStrategy.from_checkpoint(p0).q_values(state)
    q1 = AgentStrategy.from_checkpoint(p1).q_values(state)
    one = AgentEnsembleStrategy.from_checkpoints(str(p0))
    assert one.name == "agent_ensemble" and isinstance(one, AgentStrategy)
    assert one.q_values(state).tobytes() == q0.tobytes()
    assert AgentEnsembleStrategy.from_checkpoints([p0]).q_values(state).tobytes() == q0.tobytes()
    both = AgentEnsembleStrategy.from_checkpoints([p0, p1])
    np.testing.assert_allclose(both.q_values(state), (q0 + q1) / 2, rtol=1e-6, atol=1e-7)
    assert both.select(state) == int(np.argmax(both.last_q_values))  # type: ignore[arg-type]


def test_mixed_observations_and_missing_files_are_refused(tmp_path: Path) -> None:
    p0 = _policy(tmp_path / "s0.pt", 0)
    q_only = _policy(tmp_path / "q.pt", 0, {"state_mode": "q_only"})
    feats = _policy(tmp_path / "f.pt", 0, {"state_features": ["round"], "horizon": 7}, in_features=3)
    other_h = _policy(tmp_path / "h.pt", 0, {"state_features": ["round"], "horizon": 5}, in_features=3)
    with pytest.raises(CheckpointError, match="state_mode"):
        AgentEnsembleStrategy.from_checkpoints([p0, q_only])
    with pytest.raises(CheckpointError, match="state_features"):
        AgentEnsembleStrategy.from_checkpoints([p0, feats])
    with pytest.raises(CheckpointError, match="horizon"):
        AgentEnsembleStrategy.from_checkpoints([feats, other_h])
    with pytest.raises(CheckpointError, match="state_mode"):  # the caller's mode, as for one agent
        AgentEnsembleStrategy.from_checkpoints([p0], state_mode="q_only")
    with pytest.raises(CheckpointError, match="not found"):
        AgentEnsembleStrategy.from_checkpoints([p0, tmp_path / "missing.pt"])
    with pytest.raises(ConfigError, match="no policy file"):
        AgentEnsembleStrategy.from_checkpoints([])


def test_split_is_the_union_of_the_members_training_videos(tmp_path: Path) -> None:
    a = {"train": ["a", "b"], "held_out": ["c", "d"], "seed": 0}
    b = {"train": ["a", "c"], "held_out": ["d", "e"], "seed": 0}
    assert merged_split([a, b]) == {"train": ["a", "b", "c"], "held_out": ["d"], "seed": 0}
    assert merged_split([a, {**b, "seed": 1}])["seed"] is None  # type: ignore[index]
    assert merged_split([None, None]) is None
    ens = AgentEnsembleStrategy.from_checkpoints(
        [_policy(tmp_path / "a.pt", 0, {"split": a}), _policy(tmp_path / "b.pt", 1, {"split": b})]
    )
    assert ens.split == {"train": ["a", "b", "c"], "held_out": ["d"], "seed": 0}


def test_provenance_hashes_every_member_and_one_path_as_before(tmp_path: Path) -> None:
    p0, p1 = _policy(tmp_path / "s0.pt", 0), _policy(tmp_path / "s1.pt", 1)
    assert files_sha256(p0) == file_sha256(p0) and files_sha256(None) is None
    assert files_sha256([p0, p1]) == [file_sha256(p0), file_sha256(p1)]
    assert checkpoint_provenance(None, str(p0)) == {"agent_checkpoint": file_sha256(p0)}
    listed = checkpoint_provenance(None, [str(p0), str(p1)])
    assert listed["agent_checkpoint"] == [file_sha256(p0), file_sha256(p1)]


def test_one_file_evaluates_exactly_as_the_agent(synthetic_root: Path, tmp_path: Path) -> None:
    dataset = DavisDataset(synthetic_root, resolution="480p")
    p0 = _policy(tmp_path / "s0.pt", 0)
    kw = {"setting": "oracle", "max_rounds": 3, "max_samples": 2, "progress": False}
    plain = evaluate(dataset, SimulatedBackend(seed=0), AgentStrategy.from_checkpoint(p0), **kw)
    ens = evaluate(dataset, SimulatedBackend(seed=0), AgentEnsembleStrategy.from_checkpoints([p0]), **kw)
    assert [s.annotated_frames for s in ens.samples] == [s.annotated_frames for s in plain.samples]
    assert ens.report["j_and_f"].to_numpy().tobytes() == plain.report["j_and_f"].to_numpy().tobytes()


def test_shipped_ensemble_loads_and_its_members_share_one_observation() -> None:
    """checkpoints/agent: the 3 members (strategy=agent_ensemble's default; strategy=agent's is seed 0)
    read the same observation, were trained on all 30 videos of backend v2, and the manifest hashes
    exactly these files; the ensemble's Q is the mean of the members' Q on a state with probabilities."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ivos_rl.agents.strategy import read_policy_file
    from ivos_rl.provenance import fingerprint, read_manifest

    root = Path(__file__).resolve().parents[1]
    folder = root / "checkpoints" / "agent"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root / "configs"), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["strategy=agent_ensemble", f"paths.root_dir={root}"])
        single = compose(config_name="evaluate", overrides=["strategy=agent", f"paths.root_dir={root}"])
    GlobalHydra.instance().clear()
    paths = [Path(p) for p in cfg.strategy.path]
    assert paths == [folder / f"dagger2_seed{s}.pt" for s in range(3)]
    assert Path(single.strategy.path) == paths[0]
    options, splits = [], []
    for p in paths:
        _, opts, split = read_policy_file(p)
        options.append(opts)
        splits.append(split)
    assert options == [options[0]] * 3
    assert options[0] == {
        "state_mode": "both",
        "state_features": ["distance", "entropy", "area_change", "round", "span"],
        "horizon": 7,
    }
    assert all(len(s["train"]) == 30 and s["held_out"] == [] for s in splits)
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["fingerprint"] == fingerprint(manifest["fields"])
    assert manifest["fields"]["members"] == {p.name: file_sha256(p) for p in paths}
    assert '"version": "2"' in manifest["fields"]["backend"]
    ens = AgentEnsembleStrategy.from_checkpoints(paths)
    n = 12
    probs = np.zeros((n, 1, 8, 8), np.uint8)
    for t in range(n):  # an object whose area changes over time
        probs[t, 0, 2:6, 2 : 3 + t % 4] = 230
    state = StrategyState(round=2, n_frames=n, history=(0, 7), quality=np.linspace(0.9, 0.4, n), probs=probs)
    members = np.mean([AgentStrategy.from_checkpoint(p).q_values(state) for p in paths], axis=0)
    np.testing.assert_allclose(ens.q_values(state), members, rtol=1e-5, atol=1e-6)
    assert ens.select(state) == int(np.argmax(members))
