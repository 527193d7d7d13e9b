"""Frame-selection strategies: one file each, one interface (:class:`Strategy`).

Importing a strategy costs NumPy and its base class only: the names below are resolved on first
access, and :func:`build_strategy` imports the built-in strategy files when a name is looked up.
The trained agent's strategy is :class:`ivos_rl.agents.strategy.AgentStrategy`: it depends on the
agent package, which itself uses these strategies as validation references.
"""

from ivos_rl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "base": ["Strategy", "StrategyState", "available_strategies", "build_strategy", "register_strategy"],
        "farthest": ["FarthestStrategy"],
        "linspace": ["LinspaceStrategy", "linspace_frames"],
        "random": ["RandomStrategy"],
        "uncertainty": ["UncertaintyStrategy"],
        "worst": ["WorstStrategy"],
    },
)
