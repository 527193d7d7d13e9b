"""The frame-recommendation environment (Gymnasium), its rewards and the random baseline.

Importing this package registers ``ivos_rl/FrameRecommendation-v0`` with Gymnasium (by entry-point
string: the environment module is imported by ``gymnasium.make``), so
``gymnasium.make("ivos_rl/FrameRecommendation-v0", dataset=..., backend=..., robot=...)`` works.
The names below are resolved on first access: importing e.g. :mod:`ivos_rl.envs.rewards` does not
import the backends or the quality net.
"""

import gymnasium

from ivos_rl.utils.lazy import lazy_exports

ENV_ID = "ivos_rl/FrameRecommendation-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="ivos_rl.envs.frame_recommendation:FrameRecommendationEnv")

__getattr__, __dir__, _lazy_all = lazy_exports(
    __name__,
    {
        "baseline": ["BaselineFit", "RandomBaseline", "build_random_baseline", "fit_t"],
        "frame_recommendation": ["FrameRecommendationEnv", "centered_start", "valid_starts"],
        "rewards": ["RewardConfig", "aux_reward", "goal_reward", "performance"],
        "state": ["StateMode", "build_state", "history_counts"],
    },
)
__all__ = ["ENV_ID", *_lazy_all]
