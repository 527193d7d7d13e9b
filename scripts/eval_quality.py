"""PCC, MSE of a quality checkpoint per backend: `python scripts/eval_quality.py checkpoint=.. samples=..`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.quality.assessment import assess_quality
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval_quality")
def main(cfg: DictConfig) -> None:
    setup_logging()
    assess_quality(cfg)


if __name__ == "__main__":
    main()
