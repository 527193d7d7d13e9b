"""Make quality-net samples with a backend: `python scripts/gen_quality_data.py backend=.. dataset=..`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.quality.samples import generate
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="gen_quality_data")
def main(cfg: DictConfig) -> None:
    setup_logging()
    generate(cfg)


if __name__ == "__main__":
    main()
