"""Train the frame-recommendation agent: `python scripts/train_agent.py [hydra overrides]`."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from ivos_rl.agents.train import train
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_agent")
def main(cfg: DictConfig) -> None:
    setup_logging()
    result = train(cfg)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
