"""Strategies over a population of simulated annotators (see configs/robustness.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.robustness import run_robustness
from ivos_rl.utils.logging import setup_logging


@hydra.main(config_path="../configs", config_name="robustness", version_base="1.3")
def main(cfg: DictConfig) -> float:
    setup_logging()
    result = run_robustness(cfg)
    return float(result["rank_stability"]["kendalls_w"])


if __name__ == "__main__":
    main()
