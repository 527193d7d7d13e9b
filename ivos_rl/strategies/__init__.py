"""Frame-selection strategies: one file each, one interface (:class:`Strategy`).

Importing a strategy costs NumPy and its base class only: the names below are resolved on first
access (:mod:`ivos_rl.utils.lazy`), and :func:`build_strategy` imports the built-in strategy files
when a name is looked up. The trained agent's strategy is
:class:`ivos_rl.agents.strategy.AgentStrategy`: it depends on the agent package, which itself uses
these strategies as validation references.
"""

from typing import TYPE_CHECKING

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.strategies.base import (
        Strategy,
        StrategyState,
        available_strategies,
        build_strategy,
        register_strategy,
    )
    from ivos_rl.strategies.farthest import FarthestStrategy
    from ivos_rl.strategies.farthest_wild import FarthestWildStrategy
    from ivos_rl.strategies.linspace import LinspaceStrategy, linspace_frames
    from ivos_rl.strategies.oracle_lookahead import OracleLookaheadStrategy
    from ivos_rl.strategies.random import RandomStrategy
    from ivos_rl.strategies.span_error import SpanErrorStrategy
    from ivos_rl.strategies.uncertainty import UncertaintyStrategy
    from ivos_rl.strategies.worst import WorstStrategy

__all__ = [
    "FarthestStrategy",
    "FarthestWildStrategy",
    "LinspaceStrategy",
    "OracleLookaheadStrategy",
    "RandomStrategy",
    "SpanErrorStrategy",
    "Strategy",
    "StrategyState",
    "UncertaintyStrategy",
    "WorstStrategy",
    "available_strategies",
    "build_strategy",
    "linspace_frames",
    "register_strategy",
]
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
