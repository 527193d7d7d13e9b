"""The frame-recommendation agent: Q-network, replay buffer, double-DQN learner, actor, training.

Acting (:class:`EpsilonGreedyActor`), learning (:class:`DDQNLearner`), the network
(:class:`QNetwork`) and the buffer (:class:`ReplayBuffer`) are separate classes; the one training
loop is :func:`ivos_rl.agents.train.train`; :class:`AgentStrategy` plays a trained policy as a
frame-selection strategy. The names below are resolved on first access.
"""

from ivos_rl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "actor": ["EpsilonGreedyActor", "EpsilonSchedule"],
        "buffer": ["Batch", "PrioritizedReplayBuffer", "ReplayBuffer", "build_buffer"],
        "checkpoint": ["load_policy", "save_policy"],
        "ddqn": ["DDQNLearner"],
        "decomposition": ["StepRecord", "Transition", "decompose_episode", "transitions_for_step"],
        "qnet": ["QNetwork"],
        "strategy": ["AgentStrategy"],
    },
)
