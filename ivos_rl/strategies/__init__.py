"""Frame-selection strategies: one file each, one interface (:class:`Strategy`)."""

from ivos_rl.strategies import agent, farthest, linspace, oracle_lookahead, random, uncertainty, worst
from ivos_rl.strategies.agent import AgentStrategy
from ivos_rl.strategies.base import (
    Strategy,
    StrategyState,
    available_strategies,
    build_strategy,
    register_strategy,
)
from ivos_rl.strategies.farthest import FarthestStrategy
from ivos_rl.strategies.linspace import LinspaceStrategy, linspace_frames
from ivos_rl.strategies.oracle_lookahead import OracleLookaheadStrategy
from ivos_rl.strategies.random import RandomStrategy
from ivos_rl.strategies.uncertainty import UncertaintyStrategy
from ivos_rl.strategies.worst import WorstStrategy

__all__ = [
    "AgentStrategy",
    "FarthestStrategy",
    "LinspaceStrategy",
    "OracleLookaheadStrategy",
    "RandomStrategy",
    "Strategy",
    "StrategyState",
    "UncertaintyStrategy",
    "WorstStrategy",
    "agent",
    "available_strategies",
    "build_strategy",
    "farthest",
    "linspace",
    "linspace_frames",
    "oracle_lookahead",
    "random",
    "register_strategy",
    "uncertainty",
    "worst",
]
