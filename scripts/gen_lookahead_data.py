"""Lookahead-value data for supervised recommenders: `python scripts/gen_lookahead_data.py [overrides]`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.lookahead_data import generate
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="gen_lookahead_data")
def main(cfg: DictConfig) -> None:
    setup_logging()
    result = generate(cfg)
    print(f"{result['written']} of {result['samples']} samples written to {cfg.out_dir}")


if __name__ == "__main__":
    main()
