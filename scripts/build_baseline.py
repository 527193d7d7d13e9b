"""Build (or check) the cached random-policy baseline: `python scripts/build_baseline.py [overrides]`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.envs.factory import build_baseline
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="build_baseline")
def main(cfg: DictConfig) -> None:
    setup_logging()
    print(build_baseline(cfg))


if __name__ == "__main__":
    main()
