"""Held-out table of distillation variants: `python scripts/distill_report.py runs_dir=OUT`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.agents.distill_table import report
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="distill_report")
def main(cfg: DictConfig) -> None:
    setup_logging()
    report(cfg)


if __name__ == "__main__":
    main()
