"""The test-fold score of a cross-validated training run (``train.fold``), written next to its weights.

A table of the paper (Tables 4-7) compares training recipes on videos none of them was trained on.
With ``train.fold=k`` the trainer holds out fold k of the shared video folds; after training, this
module scores the final policy on those videos exactly as ``scripts/evaluate.py strategy=agent
strategy.path=<run>/agent.pt`` would (the same :func:`ivos_rl.evaluation.evaluate`, the run's own
dataset, backend, robot and ``setting``), into ``<run>/heldout/``. So one Hydra multirun over the
variants with ``+cv=folds`` (``train.fold=0..4``) produces the whole table's raw results, and
``scripts/report.py heldout.sweep=<its folder>`` pools the folds (and seeds) per variant with paired
intervals over videos (:mod:`ivos_rl.sweeps`). Nothing is selected on the test fold: validation on it is
refused (:class:`~ivos_rl.agents.config.TrainConfig`) and the final weights are scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ivos_rl.agents.run_dir import HELDOUT_DIR
from ivos_rl.agents.strategy import AgentStrategy
from ivos_rl.envs.factory import Components
from ivos_rl.errors import ConfigError
from ivos_rl.evaluation import EvaluationConfig, checkpoint_provenance, evaluate
from ivos_rl.utils.seed import seed_everything

__all__ = ["HELDOUT_DIR", "score_held_out"]


def _config(cfg: DictConfig, sequences: list[str], seed: int) -> EvaluationConfig:
    """The evaluation of the ``heldout`` config block on ``sequences``, in the run's ``setting``."""
    node = OmegaConf.select(cfg, "heldout")
    if node is None:
        raise ConfigError("train.fold needs a `heldout` config block (see configs/train_agent.yaml)")
    # the evaluation's own reader: the same checks and conversions as scripts/evaluate.py's keys
    return EvaluationConfig.from_cfg({
        **OmegaConf.to_container(node, resolve=True),  # type: ignore[dict-item]
        "setting": str(OmegaConf.select(cfg, "setting.name")),
        "sequences": list(sequences),
        "seed": seed,
        "progress": False,
        "mask_ap": False,
    })


def score_held_out(
    cfg: DictConfig, comps: Components, policy_path: Path, held_out: list[str], out_dir: Path
) -> dict[str, Any]:
    """Round-AUC of the policy at ``policy_path`` on the ``held_out`` videos (its evaluation in
    ``out_dir``, resumable like any evaluation); the summary's headline numbers."""
    config = _config(cfg, held_out, int(cfg.seed))
    strategy = AgentStrategy.from_checkpoint(policy_path)
    quality = comps.quality.estimator if config.setting == "wild" else None
    record = {"train_run": str(policy_path.parent), "heldout": OmegaConf.to_container(cfg.heldout)}
    seed_everything(config.seed)  # as scripts/evaluate.py does before evaluating
    result = evaluate(
        comps.dataset,
        comps.backend,
        strategy,
        config,
        quality=quality,
        robot=comps.robot,
        out_dir=out_dir,
        provenance=checkpoint_provenance(None, policy_path),
        record=record,
    )
    return {
        "auc_rounds": result.auc_rounds,
        "samples": len(result.samples),
        "sequences": sorted({s.sequence for s in result.samples}),
        "output_dir": str(out_dir),
    }
