"""Compatibility path: the (q, h) state of Eq. 1 lives in :mod:`ivos_rl.state` (the core package).

Strategies, the recommender and the environment all build the agent's observation; keeping it
out of the environment package lets them do so without importing Gymnasium's environment stack.
"""

from ivos_rl.state import StateMode, build_state, history_counts

__all__ = ["StateMode", "build_state", "history_counts"]
