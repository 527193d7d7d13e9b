"""Cross-validated lookahead distillation: `python scripts/distill_agent.py [overrides]`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ivos_rl.agents.distill_cv import run
from ivos_rl.utils.logging import setup_logging


@hydra.main(version_base="1.3", config_path="../configs", config_name="distill_agent")
def main(cfg: DictConfig) -> None:
    setup_logging()
    results = run(cfg)
    for name, res in results.items():
        chosen = res["selection"]["chosen"]
        print(name, "chosen", chosen["knobs"], "epochs", chosen["epochs"])


if __name__ == "__main__":
    main()
