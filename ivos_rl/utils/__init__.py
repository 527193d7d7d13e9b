"""Small shared utilities: seeding, logging, atomic file writes."""

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
