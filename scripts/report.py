"""Table-1-style table, Figure-3 curves and overlay GIFs from evaluation outputs (configs/report.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.reporting import run_report
from ivos_rl.utils.logging import setup_logging


@hydra.main(config_path="../configs", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    setup_logging()
    run_report(cfg)


if __name__ == "__main__":
    main()
