"""The frame-recommendation environment (Gymnasium), its rewards and the random baseline.

Importing this package registers ``ivos_rl/FrameRecommendation-v0`` with Gymnasium, so
``gymnasium.make("ivos_rl/FrameRecommendation-v0", dataset=..., backend=..., robot=...)`` works.
The registration names the environment by entry-point string and the names below are resolved on
first access (:mod:`ivos_rl.utils.lazy`): importing e.g. :mod:`ivos_rl.envs.rewards` does not import
the backends or the quality net.
"""

from typing import TYPE_CHECKING

import gymnasium

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.envs.baseline import BaselineFit, RandomBaseline, build_random_baseline, fit_t
    from ivos_rl.envs.frame_recommendation import FrameRecommendationEnv, centered_start, valid_starts
    from ivos_rl.envs.rewards import RewardConfig, aux_reward, goal_reward, performance
    from ivos_rl.state import StateMode, build_state, history_counts

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
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
