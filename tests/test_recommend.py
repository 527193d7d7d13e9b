"""Recommender API and `ivos-rl recommend` CLI on synthetic frames/masks with tiny real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ivos_rl.agents.checkpoint import save_policy
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.backends.base import BackendOutput
from ivos_rl.data.imageio import write_jpeg, write_mask
from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError
from ivos_rl.quality.checkpoint import save_checkpoint
from ivos_rl.quality.model import QualityNet
from ivos_rl.recommend import Recommender, as_probabilities, main
from ivos_rl.rounds import QualitySource
from ivos_rl.strategies import WorstStrategy

T, H, W = 6, 24, 32


@pytest.fixture(scope="module")
def video() -> tuple[np.ndarray, np.ndarray]:
    """6 frames 24x32 of seeded noise; object 1 is a 8x10 box moving right by 2 px per frame."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    masks = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        masks[t, 8:16, 2 + 2 * t : 12 + 2 * t] = 1
    return frames, masks


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight quality net and agent policies, written by the real save functions."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    quality = save_checkpoint(d / "quality.pt", QualityNet(backbone="mobilenet_v3_small", input_size=32))
    bilstm = QNetwork("bilstm", hidden=8, decoder_hidden=4)
    agent = save_policy(d / "agent.pt", bilstm, {"state_mode": "both"})
    q_only = save_policy(d / "q_only.pt", QNetwork(hidden=8, decoder_hidden=4), {"state_mode": "q_only"})
    return {"quality": quality, "agent": agent, "q_only": q_only}


class FixedQuality:
    """A quality 'estimator' with known per-frame values (hand-checkable choices)."""

    def __init__(self, q: list[float]) -> None:
        self.q = np.asarray(q, dtype=np.float32)

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.q.copy(), self.q[:, None].copy()


class WorstUnvisitedQ(nn.Module):
    """Q = (1 - q) - 10 h: the argmax is the worst frame not yet annotated if the state is (q, h)."""

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return (1.0 - state[..., 0]) - 10.0 * state[..., 1]


def test_agent_recommendation_is_a_valid_frame(video: tuple, checkpoints: dict[str, Path]) -> None:
    frames, masks = video
    rec = Recommender.from_checkpoints(quality=checkpoints["quality"], agent=checkpoints["agent"])
    r = rec.recommend(frames, masks, history=[0])
    assert 0 <= r.frame < T and r.source == "agent" and r.n_frames == T
    assert r.q_values is not None and r.q_values.shape == (T,) and r.quality is not None
    assert r.quality.shape == (T,) and np.all((r.quality >= 0) & (r.quality <= 1))
    assert r.frame == int(np.argmax(r.q_values))
    again = rec.recommend(frames, masks, history=[0])
    np.testing.assert_array_equal(again.q_values, r.q_values)
    data = r.to_json()
    assert data["frame"] == r.frame and len(data["q_values"]) == T and data["history"] == [0]


def test_agent_sees_quality_and_history_counts(video: tuple) -> None:
    frames, masks = video
    q = [0.9, 0.1, 0.5, 0.2, 0.8, 0.7]
    rec = Recommender(FixedQuality(q), agent=WorstUnvisitedQ())
    assert rec.recommend(frames, masks, history=[]).frame == 1  # h all zeros: the worst frame
    assert rec.recommend(frames, masks, history=[1]).frame == 3
    r = rec.recommend(frames, masks, history=[1, 3, 1])
    assert r.frame == 2
    # Q = (1 - q) - 10 h with h = (0, 2, 0, 1, 0, 0)
    np.testing.assert_allclose(r.q_values, [0.1, 0.9 - 20, 0.5, 0.8 - 10, 0.2, 0.3], atol=1e-6)


def test_estimates_outside_0_1_are_clipped_as_in_evaluation(video: tuple) -> None:
    """A third-party estimator straying outside [0, 1] gives the agent the clipped quality the round
    engine gives it in evaluation (QualitySource), so the same question gets the same answer."""
    frames, masks = video
    raw = [1.3, -0.2, 0.5, 0.2, 1.1, 0.7]
    rec = Recommender(FixedQuality(raw), agent=WorstUnvisitedQ())
    r = rec.recommend(frames, masks, history=[2])
    np.testing.assert_allclose(r.quality, [1.0, 0.0, 0.5, 0.2, 1.0, 0.7], atol=1e-6)
    # Q = (1 - q) - 10 h on the clipped q, h = (0, 0, 1, 0, 0, 0): frame 1 (q 0) wins
    np.testing.assert_allclose(r.q_values, [0.0, 1.0, 0.5 - 10, 0.8, 0.0, 0.3], atol=1e-6)
    assert r.frame == 1
    probs = (masks[:, None] == 1).astype(np.uint8) * 255
    source = QualitySource("wild", FixedQuality(raw))
    engine_q = source.quality(frames, BackendOutput(masks=masks, probs=probs), None, [2])
    np.testing.assert_array_equal(engine_q, r.quality)


class UncertainQuality(FixedQuality):
    """A fixed estimate with a per-frame standard deviation, as the feature model reports one."""

    def __init__(self, q: list[float], sd: list[float]) -> None:
        super().__init__(q)
        self.sd = np.asarray(sd, dtype=np.float32)
        self.last_uncertainty: np.ndarray | None = None

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.last_uncertainty = self.sd.copy()
        return super().predict(frames, probs)


def test_uncertainty_is_read_as_the_round_engine_reads_it(video: tuple) -> None:
    frames, masks = video
    q = [0.9, 0.1, 0.5, 0.2, 0.8, 0.7]
    rec = Recommender(UncertainQuality(q, [0.1, -1e-7, 0.2, 0.0, 0.05, 0.3]), strategy=WorstStrategy())
    r = rec.recommend(frames, masks, history=[0])
    np.testing.assert_allclose(r.uncertainty, [0.1, 0.0, 0.2, 0.0, 0.05, 0.3], atol=1e-7)  # floored at 0
    assert r.to_json()["uncertainty"][1] == 0.0
    with pytest.raises(InputValidationError, match=r"UncertainQuality.last_uncertainty is \(3,\)"):
        short = Recommender(UncertainQuality(q, [0.1, 0.2, 0.3]), strategy=WorstStrategy())
        short.recommend(frames, masks, [0])


def test_q_only_agent_ignores_history(video: tuple, checkpoints: dict[str, Path]) -> None:
    frames, masks = video
    rec = Recommender.from_checkpoints(quality=checkpoints["quality"], agent=checkpoints["q_only"])
    a = rec.recommend(frames, masks, history=[])
    b = rec.recommend(frames, masks, history=[0, 1, 1])
    np.testing.assert_array_equal(a.q_values, b.q_values)


def test_worst_strategy_respects_history(video: tuple) -> None:
    frames, masks = video
    rec = Recommender(FixedQuality([0.9, 0.1, 0.5, 0.2, 0.8, 0.7]), strategy=WorstStrategy())
    assert [rec.recommend(frames, masks, h).frame for h in ([], [1], [1, 3], [1, 3, 2])] == [1, 3, 2, 5]
    r = rec.recommend(frames, masks, [1])
    assert r.q_values is None and r.source == "strategy:worst"


class HistoryQuality(FixedQuality):
    """A fixed estimate from an estimator that, like the feature model, reads the annotated frames."""

    needs_history = True

    def predict(  # type: ignore[override]
        self, frames: np.ndarray, probs: np.ndarray, history: tuple[int, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        assert history, "called without the annotated frames"
        return super().predict(frames, probs)


def test_estimator_reading_history_refuses_an_empty_one(video: tuple) -> None:
    frames, masks = video
    rec = Recommender(HistoryQuality([0.9, 0.1, 0.5, 0.2, 0.8, 0.7]), strategy=WorstStrategy())
    with pytest.raises(InputValidationError, match=r"HistoryQuality reads the annotated frames.*--history"):
        rec.recommend(frames, masks, [])
    assert rec.recommend(frames, masks, [1]).frame == 3


def test_strategy_by_name_with_a_real_quality_net(video: tuple, checkpoints: dict[str, Path]) -> None:
    frames, masks = video
    rec = Recommender.from_checkpoints(quality=checkpoints["quality"], strategy="worst")
    r = rec.recommend(frames, masks, [0])
    assert r.quality is not None and r.frame != 0
    assert r.quality[r.frame] == pytest.approx(np.delete(r.quality, 0).min())
    # a strategy that needs no quality works without a quality net; farthest from frame 0 is 5
    assert Recommender.from_checkpoints(strategy="farthest").recommend(frames, masks, [0]).frame == 5
    assert Recommender.from_checkpoints(strategy="farthest").recommend(frames, masks, [0]).quality is None


def test_random_strategy_is_deterministic_per_history(video: tuple) -> None:
    frames, masks = video
    picks = [Recommender.from_checkpoints(strategy="random", seed=3).recommend(frames, masks, [0]).frame
             for _ in range(2)]
    assert picks[0] == picks[1]


def test_any_resolution_and_length(checkpoints: dict[str, Path]) -> None:
    rec = Recommender.from_checkpoints(quality=checkpoints["quality"], agent=checkpoints["agent"])
    rng = np.random.default_rng(1)
    for t, h, w in ((3, 20, 30), (11, 45, 17)):
        frames = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
        masks = np.zeros((t, h, w), np.uint8)
        masks[:, h // 4 : h // 2, w // 4 : w // 2] = 1
        r = rec.recommend(frames, masks, [t - 1])
        assert 0 <= r.frame < t and r.q_values.shape == (t,)


def test_label_maps_become_one_hot_and_probabilities_pass() -> None:
    labels = np.array([[[0, 1], [2, 2]]], dtype=np.uint8)  # (1, 2, 2)
    p = as_probabilities(labels, (1, 2, 2))
    assert p.shape == (1, 2, 2, 2) and p.dtype == np.uint8
    np.testing.assert_array_equal(p[0, 0], [[0, 255], [0, 0]])
    np.testing.assert_array_equal(p[0, 1], [[0, 0], [255, 255]])
    assert as_probabilities(labels, (1, 2, 2), n_objects=3).shape == (1, 3, 2, 2)
    probs = np.full((1, 1, 2, 2), 0.25, np.float32)
    assert as_probabilities(probs, (1, 2, 2)) is probs


def test_bad_inputs_raise_typed_errors(video: tuple, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    frames, masks = video
    rec = Recommender(FixedQuality([0.5] * T), strategy=WorstStrategy())
    with pytest.raises(InputValidationError, match=r"masks shape \(5, 24, 32\)"):
        rec.recommend(frames, masks[:5], [])
    with pytest.raises(InputValidationError, match="history frame 6 is outside"):
        rec.recommend(frames, masks, [0, 6])
    with pytest.raises(InputValidationError, match="non-integer"):
        rec.recommend(frames, masks, [1.5])
    with pytest.raises(InputValidationError, match="integer label maps"):
        rec.recommend(frames, masks.astype(np.float32), [])
    with pytest.raises(InputValidationError, match=r"\[0, 1\]"):
        rec.recommend(frames, np.full((T, 1, H, W), 1.5, np.float32), [])
    with pytest.raises(InputValidationError, match="no object"):
        rec.recommend(frames, np.zeros_like(masks), [])
    with pytest.raises(InputValidationError, match="label 2 but n_objects=1"):
        rec.recommend(frames, masks * 2, [], n_objects=1)
    with pytest.raises(CheckpointError, match="does not exist"):
        Recommender.from_checkpoints(quality=tmp_path / "nope.pt", strategy="worst")
    with pytest.raises(CheckpointError, match="not found"):
        Recommender.from_checkpoints(quality=checkpoints["quality"], agent=tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="exactly one"):
        Recommender.from_checkpoints(quality=checkpoints["quality"])
    with pytest.raises(ConfigError, match="exactly one"):
        Recommender.from_checkpoints(
            quality=checkpoints["quality"], agent=checkpoints["agent"], strategy="worst"
        )
    with pytest.raises(ConfigError, match="quality checkpoint too"):
        Recommender.from_checkpoints(agent=checkpoints["agent"])
    with pytest.raises(ConfigError, match="'worst' needs per-frame quality"):
        Recommender.from_checkpoints(strategy="worst")
    with pytest.raises(ConfigError, match="pass agent=PATH"):
        Recommender.from_checkpoints(quality=checkpoints["quality"], strategy="agent")
    with pytest.raises(ConfigError, match="unknown strategy 'best'"):
        Recommender.from_checkpoints(strategy="best")


def _write_folders(
    root: Path, frames: np.ndarray, masks: np.ndarray, grayscale: bool = False
) -> tuple[Path, Path]:
    fdir, mdir = root / "frames", root / "masks"
    for t in range(frames.shape[0]):
        write_jpeg(fdir / f"{t:05d}.jpg", frames[t])
        if grayscale:  # 0/255 binary masks, as DAVIS-2016 and many tools write them
            mdir.mkdir(parents=True, exist_ok=True)
            Image.fromarray((masks[t] > 0).astype(np.uint8) * 255, mode="L").save(mdir / f"{t:05d}.png")
        else:
            write_mask(mdir / f"{t:05d}.png", masks[t])
    return fdir, mdir


def test_cli_writes_json(video: tuple, checkpoints: dict[str, Path], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    frames, masks = video
    fdir, mdir = _write_folders(tmp_path, frames, masks)
    out = tmp_path / "rec.json"
    argv = ["--frames", str(fdir), "--masks", str(mdir), "--history", "0,3",
            "--quality", str(checkpoints["quality"]), "--agent", str(checkpoints["agent"]), "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["source"] == "agent" and data["history"] == [0, 3] and data["n_frames"] == T
    assert len(data["quality"]) == T and len(data["q_values"]) == T
    assert data["frame"] == int(np.argmax(data["q_values"])) and data["frame_name"] == f"{data['frame']:05d}"
    assert f"next frame to annotate: {data['frame']}" in capsys.readouterr().out
    # the same recommendation as the Python API on the decoded files
    api = Recommender.from_checkpoints(quality=checkpoints["quality"], agent=checkpoints["agent"])
    decoded = np.stack([np.asarray(Image.open(fdir / f"{t:05d}.jpg").convert("RGB")) for t in range(T)])
    assert api.recommend(decoded, masks, [0, 3]).frame == data["frame"]


def test_cli_grayscale_masks_and_davis_root(video: tuple, tmp_path: Path) -> None:
    frames, masks = video
    fdir, mdir = _write_folders(tmp_path / "plain", frames, masks, grayscale=True)
    out = tmp_path / "plain.json"
    assert main(["--frames", str(fdir), "--masks", str(mdir), "--history", "0",
                 "--strategy", "farthest", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["frame"] == 5 and json.loads(out.read_text())["quality"] is None
    root = tmp_path / "davis"
    for t in range(T):
        write_jpeg(root / "JPEGImages" / "240p" / "box" / f"{t:05d}.jpg", frames[t])
        write_mask(root / "Annotations" / "240p" / "box" / f"{t:05d}.png", masks[t])
    out = tmp_path / "davis.json"
    assert main(["--frames", str(root), "--masks", str(root), "--sequence", "box", "--history", "5",
                 "--strategy", "farthest", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["frame"] == 0


def test_cli_errors_write_nothing(video: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames, masks = video
    fdir, mdir = _write_folders(tmp_path, frames, masks)
    (mdir / "00002.png").unlink()
    out = tmp_path / "rec.json"
    argv = ["--frames", str(fdir), "--masks", str(mdir), "--strategy", "farthest", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "frames without mask: ['00002']" in err
    assert not out.exists()
    fdir2, mdir2 = _write_folders(tmp_path / "ok", frames, masks)
    assert main(["--frames", str(fdir2), "--masks", str(mdir2), "--history", "9",
                 "--strategy", "farthest", "--out", str(out)]) == 1
    assert "history frame 9" in capsys.readouterr().err and not out.exists()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(mdir2 / "00001.png")  # an RGB "mask"
    assert main(["--frames", str(fdir2), "--masks", str(mdir2), "--strategy", "farthest",
                 "--out", str(out)]) == 1
    assert "mode 'RGB'" in capsys.readouterr().err and not out.exists()


def test_several_agent_files_recommend_with_their_mean_q(
    video: tuple, checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames, masks = video
    torch.manual_seed(1)
    qual = checkpoints["quality"]
    net = QNetwork("bilstm", hidden=8, decoder_hidden=4)
    other = save_policy(tmp_path / "o.pt", net, {"state_mode": "both"})
    one = [Recommender.from_checkpoints(quality=qual, agent=a).recommend(frames, masks, [0, 3])
           for a in (checkpoints["agent"], other)]
    both = Recommender.from_checkpoints(quality=qual, agent=[checkpoints["agent"], other])
    r = both.recommend(frames, masks, [0, 3])
    mean = (one[0].q_values + one[1].q_values) / 2
    np.testing.assert_allclose(r.q_values, mean, rtol=1e-5, atol=1e-6)
    assert r.frame == int(np.argmax(mean)) and r.source == "agent"
    # a one-file list is that policy, bit for bit
    alone = Recommender.from_checkpoints(quality=qual, agent=[other])
    assert np.array_equal(alone.recommend(frames, masks, [0, 3]).q_values, one[1].q_values)
    # the CLI takes several files after --agent and says which in the JSON
    fdir, mdir = _write_folders(tmp_path, frames, masks)
    out = tmp_path / "rec.json"
    base = ["--frames", str(fdir), "--masks", str(mdir), "--history", "0,3", "--quality", str(qual)]
    assert main([*base, "--agent", str(checkpoints["agent"]), str(other), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["agent_checkpoint"] == [str(checkpoints["agent"]), str(other)] and data["source"] == "agent"
    assert "2-member ensemble" in capsys.readouterr().out
    # the strategy's typed errors: a member trained on another observation, a missing member, no member
    mixed = [str(checkpoints["agent"]), str(checkpoints["q_only"])]
    assert main([*base, "--agent", *mixed, "--out", str(out)]) == 1
    assert "trained on different observations" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not found"):
        Recommender.from_checkpoints(quality=checkpoints["quality"], agent=[other, tmp_path / "nope.pt"])
    with pytest.raises(ConfigError, match="no policy file"):
        Recommender.from_checkpoints(quality=checkpoints["quality"], agent=[])
    with pytest.raises(ConfigError, match="pass agent=PATH"):
        Recommender.from_checkpoints(quality=checkpoints["quality"], strategy="agent_ensemble")
