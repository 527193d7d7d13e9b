"""Small shared utilities: seeding, logging, atomic file writes, lazy exports.

Names are resolved on first access (:mod:`ivos_rl.utils.lazy`), so importing one utility does not
import the others.
"""

from ivos_rl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "io": ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"],
        "lazy": ["import_submodules", "lazy_exports"],
        "logging": ["get_logger", "setup_logging"],
        "seed": ["name_rng", "name_seed", "seed_everything"],
    },
)
