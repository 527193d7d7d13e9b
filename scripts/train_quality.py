"""Train the segmentation-quality net: `python scripts/train_quality.py data.dirs=[<samples>] [overrides]`."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from ivos_rl.quality.train import train
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_quality")
def main(cfg: DictConfig) -> None:
    setup_logging()
    result = train(cfg)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
