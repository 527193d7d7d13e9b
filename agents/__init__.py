"""The frame-recommendation agent: Q-network, replay buffer, double-DQN learner, actor, training.

Acting (:class:`EpsilonGreedyActor`), learning (:class:`DDQNLearner`), the network
(:class:`QNetwork`) and the buffer (:class:`ReplayBuffer`) are separate classes; the one training
loop is :func:`ivos_rl.agents.train.train`.

The names below are resolved on first access (:mod:`ivos_rl.utils.lazy`).
"""

from typing import TYPE_CHECKING

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.agents.actor import EpsilonGreedyActor, EpsilonSchedule
    from ivos_rl.agents.buffer import Batch, PrioritizedReplayBuffer, ReplayBuffer, build_buffer
    from ivos_rl.agents.checkpoint import load_policy, save_policy
    from ivos_rl.agents.ddqn import DDQNLearner
    from ivos_rl.agents.decomposition import StepRecord, Transition, decompose_episode, transitions_for_step
    from ivos_rl.agents.qnet import QNetwork
    from ivos_rl.agents.strategy import AgentStrategy

__all__ = [
    "AgentStrategy",
    "Batch",
    "DDQNLearner",
    "EpsilonGreedyActor",
    "EpsilonSchedule",
    "PrioritizedReplayBuffer",
    "QNetwork",
    "ReplayBuffer",
    "StepRecord",
    "Transition",
    "build_buffer",
    "decompose_episode",
    "load_policy",
    "save_policy",
    "transitions_for_step",
]
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
