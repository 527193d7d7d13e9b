"""Evaluate one strategy (see configs/evaluate.yaml); `-m` sweeps, `shard=i/n`, `merge=[...]`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.evaluation import run_evaluation
from ivos_rl.utils.logging import setup_logging


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float:
    setup_logging()
    return float(run_evaluation(cfg)["auc_rounds"])


if __name__ == "__main__":
    main()
