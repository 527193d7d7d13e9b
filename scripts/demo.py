"""Default job: compare frame-selection strategies on the embedded data (see configs/demo.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.compare import compare_strategies
from ivos_rl.utils.logging import setup_logging


@hydra.main(config_path="../configs", config_name="demo", version_base="1.3")
def main(cfg: DictConfig) -> float:
    setup_logging()
    results = compare_strategies(cfg)
    return max(r["auc_rounds"] for r in results.values())


if __name__ == "__main__":
    main()
