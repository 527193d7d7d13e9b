"""The one place where global random state is seeded."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def seed_everything(seed: int, deterministic: bool = True) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh ``np.random.Generator`` for the caller.

    Components that need randomness should take their own ``np.random.Generator`` (derived from
    this seed) instead of relying on global state; global seeding is for third-party code.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    import torch  # imported here so that seeding helpers do not make every import pay for torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - third-party code reads the legacy global state
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def name_seed(*parts: object) -> int:
    """A 32-bit seed derived from names (sequence, scribble index, base seed...), not positions.

    Items seeded this way reproduce exactly whether they run alone or within any larger list
    (a subset of sequences, one shard), unlike a stream drawn in list order.
    """
    if not parts:
        raise ValueError("name_seed needs at least one part")
    key = "\x1f".join(str(p) for p in parts)
    # a cryptographic hash, not crc32: crc32 is linear, so names ranked by it barely reorder
    # when the base seed changes
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "little")


def name_rng(*parts: object) -> np.random.Generator:
    """``np.random.Generator`` seeded by :func:`name_seed` of ``parts``."""
    return np.random.default_rng(name_seed(*parts))
