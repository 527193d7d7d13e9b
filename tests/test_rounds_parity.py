"""Parity: the same actions through the Gymnasium env and through ``evaluate`` give the same rounds.

Both run on :class:`ivos_rl.rounds.RoundEngine`; this test pins that down end to end: per-round,
per-frame J&F and the Oracle state (q of Eq. 1) agree exactly, on multi-object synthetic data (the
case where thresholding probabilities and the scored argmax masks used to differ) and on the real
DAVIS excerpt with the real propagation backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ivos_rl.backends import PropagationBackend, SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.data.init_scribbles import write_initial_scribbles
from ivos_rl.envs import FrameRecommendationEnv
from ivos_rl.evaluation import evaluate
from ivos_rl.robot import ScribbleRobot
from ivos_rl.strategies.base import Strategy, StrategyState


class ScriptedStrategy(Strategy):
    """Plays a fixed list of frames and keeps every Oracle state it was shown."""

    name: ClassVar[str] = "scripted"
    needs_quality: ClassVar[bool] = True

    def __init__(self, actions: list[int]) -> None:
        self.actions = list(actions)
        self.seen: list[np.ndarray] = []

    def select(self, state: StrategyState) -> int:
        assert state.quality is not None
        self.seen.append(np.asarray(state.quality).copy())
        return self.actions[state.round - 1]


def _env_rounds(env: FrameRecommendationEnv, sample: tuple[str, int], actions: list[int]) -> dict[str, Any]:
    obs, info = env.reset(options={"sample": sample})
    states, jf = [obs[:, 0].copy()], [info["jf"].copy()]
    for a in actions:
        obs, _, _, _, info = env.step(a)
        states.append(obs[:, 0].copy())
        jf.append(info["jf"].copy())
    return {"states": states, "jf": jf, "frames": info["annotated_frames"]}


def _eval_rounds(
    ds: DavisDataset, backend: Any, sample: tuple[str, int], actions: list[int]
) -> dict[str, Any]:
    strategy = ScriptedStrategy(actions)
    res = evaluate(
        ds, backend, strategy, setting="oracle", robot=ScribbleRobot(), max_rounds=len(actions) + 1,
        sequences=(sample[0],), scribbles=(sample[1],), progress=False,
    )
    (s,) = res.samples
    df = res.report
    jf = [
        df[df["interaction"] == r].groupby("frame")["j_and_f"].mean().to_numpy()
        for r in range(1, len(actions) + 2)
    ]
    return {"states": strategy.seen, "jf": jf, "frames": s.annotated_frames}


def _check_parity(ds: DavisDataset, make_backend: Any, sample: tuple[str, int], actions: list[int]) -> None:
    env = FrameRecommendationEnv(
        ds, make_backend(), robot=ScribbleRobot(), quality="oracle", reward={"use_goal": False},
        horizon=len(actions), subsequence_length=None, samples=[sample],
    )
    via_env = _env_rounds(env, sample, actions)
    via_eval = _eval_rounds(ds, make_backend(), sample, actions)
    assert via_env["frames"] == via_eval["frames"]
    assert via_env["frames"][1:] == actions
    assert len(via_eval["jf"]) == len(via_env["jf"]) == len(actions) + 1
    for r, (a, b) in enumerate(zip(via_env["jf"], via_eval["jf"], strict=True), start=1):
        np.testing.assert_array_equal(a, b.astype(np.float32), err_msg=f"J&F of round {r}")
    # the Oracle state an agent sees: the env's q channel == what evaluate shows strategies
    assert len(via_eval["states"]) == len(actions)
    for r, (a, b) in enumerate(zip(via_env["states"], via_eval["states"], strict=False), start=1):
        np.testing.assert_array_equal(a, b.astype(np.float32), err_msg=f"Oracle state after round {r}")
    # and that state is the J&F of the masks that were scored
    for r in range(len(actions)):
        np.testing.assert_array_equal(via_env["states"][r], via_env["jf"][r])


def test_env_and_evaluate_agree_on_multi_object_synthetic_data(synthetic_root: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p")
    two = [s for s in ds.sequences if ds.info(s).n_objects == 2]
    assert two, "the shared synthetic dataset has a 2-object sequence"
    _check_parity(ds, lambda: SimulatedBackend(seed=4), (two[0], 2), [9, 3, 3, 6])


def test_env_and_evaluate_agree_on_the_real_excerpt(davis_excerpt_root: Path, tmp_path: Path) -> None:
    scribbles = tmp_path / "scribbles"
    write_initial_scribbles(davis_excerpt_root, "240p", n_variants=1, sequences=["bear"], out_dir=scribbles)
    ds = DavisDataset(davis_excerpt_root, resolution="240p", scribbles_root=scribbles)
    _check_parity(ds, PropagationBackend, ("bear", 1), [8, 2])
