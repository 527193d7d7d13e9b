"""FrameRecommendationEnv on synthetic data with the simulated backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data.davis import DavisDataset
from ivos_rl.envs import (
    ENV_ID,
    FrameRecommendationEnv,
    RandomBaseline,
    build_random_baseline,
    centered_start,
    valid_starts,
)
from ivos_rl.errors import ConfigError, InputValidationError

N_SUB = 8
HORIZON = 3


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p", image_set="2017/train")


def make_env(dataset: Any, **kw: Any) -> FrameRecommendationEnv:
    args: dict[str, Any] = {
        "backend": SimulatedBackend(seed=0),
        "interaction": "fast",
        "reward": {"use_goal": False},
        "horizon": HORIZON,
        "subsequence_length": N_SUB,
    }
    args.update(kw)
    return FrameRecommendationEnv(dataset, **args)


@pytest.fixture(scope="module")
def baseline(dataset: DavisDataset) -> RandomBaseline:
    env = make_env(dataset, transition_cache=5000)
    return build_random_baseline(env, n_episodes=30, seed=0, samples=dataset.samples()[:2], progress=False)


def test_subsequence_start_by_hand() -> None:
    # first annotated frame 5 in a 12-frame video, N' = 8: starts 0..4 contain it; centre = 2.
    assert valid_starts(5, 12, 8) == (0, 4)
    assert centered_start(5, 12, 8) == 2
    assert valid_starts(0, 12, 8) == (0, 0)
    assert valid_starts(11, 12, 8) == (4, 4)
    with pytest.raises(InputValidationError, match="exceeds"):
        valid_starts(3, 5, 8)


def test_check_env_passes(dataset: DavisDataset, baseline: RandomBaseline) -> None:
    env = make_env(dataset, reward={"use_goal": True}, baseline=baseline, samples=dataset.samples()[:2])
    check_env(env, skip_render_check=True)


def test_registered_id(dataset: DavisDataset) -> None:
    env = gym.make(ENV_ID, dataset=dataset, backend=SimulatedBackend(), interaction="fast",
                   reward={"use_goal": False}, horizon=2, subsequence_length=N_SUB)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (N_SUB, 2)
    env.close()


def test_episode_state_info_and_rewards(dataset: DavisDataset, baseline: RandomBaseline) -> None:
    samples = dataset.samples()[:2]
    env = make_env(dataset, reward={"use_goal": True}, baseline=baseline, samples=samples)
    obs, info = env.reset(seed=3, options={"sample": samples[0]})
    first = info["annotated_frames"][0]
    seq_first = dataset.load_scribbles(*samples[0])
    assert info["start"] <= first + info["start"] < info["start"] + N_SUB
    assert len(seq_first["scribbles"][info["start"] + first]) > 0  # the initial frame is inside
    assert obs.shape == (N_SUB, 2) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, 1], np.eye(N_SUB)[first])  # h_0: initial frame once
    np.testing.assert_allclose(obs[:, 0], info["jf"], rtol=1e-6)  # Oracle q = true J&F
    np.testing.assert_allclose(info["jf"], (info["j"] + info["f"]) / 2, rtol=1e-6)
    assert info["performance"]["J_AND_F"] == pytest.approx(float(info["jf"].mean()), rel=1e-6)

    actions = [first, (first + 1) % N_SUB, (first + 1) % N_SUB]
    expected_aux = [-1.0, 1.0, -1.0]  # re-annotating the initial frame / a fresh one / a repeat
    for t, (a, aux) in enumerate(zip(actions, expected_aux, strict=True), start=1):
        obs, reward, terminated, truncated, info = env.step(a)
        assert info["t"] == t and info["r_aux"] == aux and not truncated
        mu, sigma = baseline.stats(samples[0][0], samples[0][1], info["start"], t, "J_AND_F")
        p = info["performance"]["J_AND_F"]
        assert info["r_goal"] == pytest.approx((p - (mu + sigma)) / sigma)  # Eq. 3 for sub-task t
        if t < HORIZON:
            assert not terminated and reward == aux  # no goal reward before T
        else:
            assert terminated and reward == pytest.approx(info["r_goal"])
    assert info["annotated_frames"] == [first, *actions]
    assert obs[first, 1] == 2.0 and obs[(first + 1) % N_SUB, 1] == 2.0
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)


def test_eq2_and_aux_only_rewards(dataset: DavisDataset, baseline: RandomBaseline) -> None:
    samples = dataset.samples()[:1]
    env = make_env(dataset, reward={"goal_form": "eq2", "metric": "J"}, baseline=baseline, samples=samples)
    _, info = env.reset(seed=0)
    for a in range(HORIZON):
        _, reward, _, _, info = env.step(a)
    mu, sigma = baseline.stats(samples[0][0], samples[0][1], info["start"], HORIZON, "J")
    assert reward == pytest.approx((info["performance"]["J"] - mu) / sigma)
    aux_only = make_env(dataset, reward={"use_goal": False}, samples=samples)
    aux_only.reset(seed=0)
    rewards = [aux_only.step(a)[1] for a in range(HORIZON)]
    assert set(rewards) <= {-1.0, 1.0}


def test_state_modes_zero_the_hidden_channel(dataset: DavisDataset) -> None:
    for mode, zero_col in (("q_only", 1), ("h_only", 0)):
        env = make_env(dataset, state_mode=mode)
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(1)
        assert np.all(obs[:, zero_col] == 0.0)
        assert np.any(obs[:, 1 - zero_col] != 0.0)


def test_seeding_is_reproducible(dataset: DavisDataset) -> None:
    env_a = make_env(dataset, subsequence_start="random")
    env_b = make_env(dataset, subsequence_start="random")
    seen = set()
    for seed in range(6):
        oa, ia = env_a.reset(seed=seed)
        ob, ib = env_b.reset(seed=seed)
        np.testing.assert_array_equal(oa, ob)
        key_a = (ia["sequence"], ia["scribble_idx"], ia["start"])
        assert key_a == (ib["sequence"], ib["scribble_idx"], ib["start"])
        seen.add(key_a)
        np.testing.assert_array_equal(env_a.step(2)[0], env_b.step(2)[0])
    assert len(seen) > 1


PLANS = [[1, 2, 3], [1, 2, 5], [1, 4, 3], [1, 2, 3]]


def _same_episodes(a: FrameRecommendationEnv, b: FrameRecommendationEnv, plans: list[list[int]]) -> None:
    for plan in plans:
        oa, _ = a.reset(seed=1)
        ob, _ = b.reset(seed=1)
        np.testing.assert_array_equal(oa, ob)
        for action in plan:
            oa, ra, *_, ia = a.step(action)
            ob, rb, *_, ib = b.step(action)
            np.testing.assert_array_equal(oa, ob)
            np.testing.assert_array_equal(ia["jf"], ib["jf"])
            assert ra == rb


def test_transition_cache_gives_identical_results(dataset: DavisDataset) -> None:
    cached = make_env(dataset, transition_cache=100)
    _same_episodes(make_env(dataset), cached, PLANS + PLANS)
    # every history of the second pass (and shared prefixes of the first) were hits
    assert cached.cache_hits >= len(PLANS) * (HORIZON + 1) and cached.cache_misses > 0


@pytest.mark.parametrize(("cache", "restored"), [(0, 20), (100, 5)])
def test_snapshots_restore_prefixes_with_identical_results(
    dataset: DavisDataset, cache: int, restored: int
) -> None:
    # Snapshots only (cache 0), plans A..D twice, the same sample; terminal states (3 steps) are
    # not kept. A restores nothing; B restores the reset, (1) and (1, 2) = 3; C the reset and
    # (1) = 2; D 3; the second pass 4 x 3 = 12: 20. With the cache, hits skip the engine and a miss
    # restores its longest prefix: B's last step restores 3 entries, C's third step 2: 5.
    plain = make_env(dataset)
    snap = make_env(dataset, transition_cache=cache, snapshots=50)
    _same_episodes(plain, snap, PLANS + PLANS)
    assert snap.rounds_restored == restored
    assert snap.backend is not plain.backend and len(snap._snapshots) == 4  # the non-terminal histories
    small = make_env(dataset, snapshots=2)
    _same_episodes(plain, small, PLANS)
    # Full at 2: every deeper state is dropped first, so the reset and (1) stay.
    assert sorted(len(key[-1]) for key in small._snapshots) == [1, 2]


def test_snapshot_eviction_drops_the_least_recent_of_the_deepest() -> None:
    from collections import OrderedDict

    from ivos_rl.envs.frame_recommendation import _deepest_least_recent

    keys = [("a", 1, 0, (5,)), ("a", 1, 0, (5, 1)), ("a", 1, 0, (5, 2)), ("b", 1, 0, (3,))]
    lru = OrderedDict.fromkeys(keys)  # oldest first
    assert _deepest_least_recent(lru) == ("a", 1, 0, (5, 1))
    lru.move_to_end(("a", 1, 0, (5, 1)))
    assert _deepest_least_recent(lru) == ("a", 1, 0, (5, 2))
    del lru[("a", 1, 0, (5, 2))], lru[("a", 1, 0, (5, 1))]
    assert _deepest_least_recent(lru) == ("a", 1, 0, (5,))  # all resets: plain LRU


def test_snapshots_on_the_propagation_backend_with_the_robot(dataset: DavisDataset) -> None:
    from ivos_rl.backends.propagation import PropagationBackend
    from ivos_rl.robot import ScribbleRobot

    def env(**kw: Any) -> FrameRecommendationEnv:
        robot = ScribbleRobot()
        return make_env(dataset, backend=PropagationBackend(), interaction="robot", robot=robot, **kw)

    snap = env(transition_cache=100, snapshots=50)
    _same_episodes(env(), snap, PLANS)
    assert snap.rounds_restored == 5
    # Without the cache, (1, 2) is restored and continued twice (frames 7, then 6): a restore that
    # let the engine write into the snapshot would hand the second one the first one's strokes.
    snap = env(snapshots=50)
    _same_episodes(env(), snap, [[1, 2, 3], [1, 2, 7], [1, 2, 6]])
    assert snap.rounds_restored == 6
    with pytest.raises(ConfigError, match="snapshots"):
        env(snapshots=-1)


def test_robot_interaction(dataset: DavisDataset) -> None:
    from ivos_rl.robot import ScribbleRobot

    env = make_env(dataset, interaction="robot", robot=ScribbleRobot())
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(4)
    assert env.last_timings.robot > 0.0 and info["annotated_frames"][1:] == [4]
    # the simulator's error level on a just-annotated frame is 0.05: its J&F must be high
    assert info["jf"][4] > 0.8


class _ConstantQuality:
    """A stand-in "Wild" quality estimator: q = 0.25 everywhere."""

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, k = probs.shape[:2]
        return np.full(t, 0.25, np.float32), np.full((t, k), 0.25, np.float32)


def test_wild_quality_source(dataset: DavisDataset) -> None:
    env = make_env(dataset, quality=_ConstantQuality())
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs[:, 0], 0.25)
    assert not np.allclose(info["jf"], 0.25)  # info keeps the true J&F


class _Shortened:
    """A dataset view in which one sequence keeps only its first ``n`` frames (variable N)."""

    def __init__(self, base: DavisDataset, seq: str, n: int) -> None:
        self.base, self.seq, self.n = base, seq, n

    def samples(self) -> list[tuple[str, int]]:
        return [(s, i) for s, i in self.base.samples() if s != self.seq or self._first(i) < self.n]

    def _first(self, idx: int) -> int:
        sc = self.base.load_scribbles(self.seq, idx)["scribbles"]
        return next(t for t, s in enumerate(sc) if s)

    def info(self, seq: str) -> Any:
        info = self.base.info(seq)
        if seq != self.seq:
            return info
        return type(info)(**{**info.__dict__, "n_frames": self.n})

    def load_frames(self, seq: str) -> np.ndarray:
        out = self.base.load_frames(seq)
        return out[: self.n] if seq == self.seq else out

    def load_masks(self, seq: str) -> np.ndarray:
        out = self.base.load_masks(seq)
        return out[: self.n] if seq == self.seq else out

    def load_scribbles(self, seq: str, idx: int) -> dict[str, Any]:
        sc = self.base.load_scribbles(seq, idx)
        if seq == self.seq:
            sc = {**sc, "scribbles": sc["scribbles"][: self.n]}
        return sc


def test_whole_video_mode_rebuilds_spaces_per_episode(dataset: DavisDataset) -> None:
    seqs = dataset.sequences
    short = _Shortened(dataset, seqs[0], 10)
    env = make_env(short, subsequence_length=None, horizon=2)
    lengths = {}
    for s, i in short.samples():
        obs, info = env.reset(seed=0, options={"sample": (s, i)})
        assert obs.shape == (info["jf"].shape[0], 2)
        assert env.observation_space.contains(obs) and env.action_space.n == obs.shape[0]
        obs, *_ = env.step(obs.shape[0] - 1)
        assert env.observation_space.contains(obs)
        lengths[s] = obs.shape[0]
    assert lengths[seqs[0]] == 10 and lengths[seqs[1]] == 12


def test_bad_configuration_and_actions(dataset: DavisDataset) -> None:
    with pytest.raises(ConfigError, match="RandomBaseline"):
        make_env(dataset, reward={"use_goal": True})
    with pytest.raises(ConfigError, match="simulators"):
        from ivos_rl.backends.propagation import PropagationBackend

        make_env(dataset, backend=PropagationBackend())
    with pytest.raises(ConfigError, match="shorter than subsequence_length=25"):
        make_env(dataset, subsequence_length=25)
    with pytest.raises(ConfigError, match="horizon"):
        make_env(dataset, horizon=0)
    env = make_env(dataset)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(InputValidationError, match=f"action {N_SUB}"):
        env.step(N_SUB)
    with pytest.raises(InputValidationError, match="integer"):
        env.step(1.5)
    with pytest.raises(InputValidationError, match="not one of"):
        env.reset(options={"sample": ("nope", 1)})


def test_samples_of_keeps_the_requested_scribbles(synthetic_root: Path) -> None:
    from ivos_rl.envs.factory import samples_of

    ds = DavisDataset(synthetic_root, "480p", image_set="2017/train")
    seqs = ds.sequences[:2]
    assert samples_of(ds, seqs) == [(s, i) for s in seqs for i in (1, 2, 3)]
    assert samples_of(ds, seqs, [2]) == [(seqs[0], 2), (seqs[1], 2)]
    with pytest.raises(ConfigError, match="none of the scribbles"):
        samples_of(ds, seqs, [7])
