"""Small shared utilities: seeding, logging, atomic file writes.

Names are resolved on first access (:mod:`ivos_rl.utils.lazy`), so importing one utility
does not import the others.
"""

from typing import TYPE_CHECKING

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.utils.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
    from ivos_rl.utils.logging import get_logger, setup_logging
    from ivos_rl.utils.seed import name_rng, name_seed, seed_everything

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "get_logger",
    "name_rng",
    "name_seed",
    "seed_everything",
    "setup_logging",
]
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
