"""Farthest-Wild: Farthest weighted by the estimated error of each frame.

Farthest alone ignores how good the masks are; Worst alone ignores where the annotations already are
(and, in the Wild, a round's worst frame is hard to estimate: within-round PCC ~0.3). Their product,
distance to the nearest annotated frame x (1 + w (1 - q)), keeps Farthest's coverage and leans
toward the poorer side of a gap. ``w = 0.5`` was chosen per outer fold on the 30 shared DAVIS-2016
videos (default backend, Wild q from each fold's feature model) among {0, 0.5, 1, 2, 4}: 0.5 in all
five folds, and held out it is ahead of Farthest (docs/results.md, session 20).
"""

from __future__ import annotations

from ivos_rl.errors import ConfigError
from ivos_rl.strategies.base import register_strategy
from ivos_rl.strategies.farthest import FarthestStrategy


@register_strategy("farthest_wild")
class FarthestWildStrategy(FarthestStrategy):
    """:class:`FarthestStrategy` with a quality weight > 0 (it needs quality: the Wild estimate or,
    in the Oracle setting, the true J&F)."""

    def __init__(self, quality_weight: float = 0.5) -> None:
        if not quality_weight > 0:
            raise ConfigError(
                f"farthest_wild needs quality_weight > 0 (0 is plain farthest), got {quality_weight!r}"
            )
        super().__init__(quality_weight=quality_weight)
