"""Cross-validate and ship the feature-only quality model:
`python scripts/train_quality_features.py data.dirs=[<sample folders with features.npz>]`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.quality.feature_train import train_features
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_quality_features")
def main(cfg: DictConfig) -> None:
    setup_logging()
    train_features(cfg)


if __name__ == "__main__":
    main()
