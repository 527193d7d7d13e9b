"""The frame-recommendation environment (Gymnasium), its rewards and the random baseline.

Importing this package registers ``ivos_rl/FrameRecommendation-v0`` with Gymnasium, so
``gymnasium.make("ivos_rl/FrameRecommendation-v0", dataset=..., backend=..., robot=...)`` works.
"""

import gymnasium

from ivos_rl.envs.baseline import BaselineFit, RandomBaseline, build_random_baseline, fit_t
from ivos_rl.envs.frame_recommendation import FrameRecommendationEnv, centered_start, valid_starts
from ivos_rl.envs.rewards import RewardConfig, aux_reward, goal_reward, performance
from ivos_rl.envs.state import StateMode, build_state, history_counts

ENV_ID = "ivos_rl/FrameRecommendation-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="ivos_rl.envs.frame_recommendation:FrameRecommendationEnv")

__all__ = [
    "ENV_ID",
    "BaselineFit",
    "FrameRecommendationEnv",
    "RandomBaseline",
    "RewardConfig",
    "StateMode",
    "aux_reward",
    "build_random_baseline",
    "build_state",
    "centered_start",
    "fit_t",
    "goal_reward",
    "history_counts",
    "performance",
    "valid_starts",
]
