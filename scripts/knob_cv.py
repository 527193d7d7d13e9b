"""A rule's knobs chosen by CV over videos, held-out figures vs baselines (configs/knob_cv.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.knob_cv import run_knob_cv
from ivos_rl.utils.logging import setup_logging


@hydra.main(config_path="../configs", config_name="knob_cv", version_base="1.3")
def main(cfg: DictConfig) -> None:
    setup_logging()
    run_knob_cv(cfg)


if __name__ == "__main__":
    main()
