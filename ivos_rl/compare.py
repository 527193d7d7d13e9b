"""Compare several frame-selection strategies on one dataset and backend (the demo's main job).

Each run is one :func:`~ivos_rl.evaluation.evaluate` call with its own strategy and setting; the
comparison prints J&F per round and the round-AUC of every run, writes the table as Markdown and
CSV and the Figure-3-style curve plot.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ivos_rl.errors import ConfigError
from ivos_rl.evaluation import EvaluationConfig, EvaluationResult, checkpoint_provenance, evaluate
from ivos_rl.reporting import curves_table, plot_curves, to_markdown
from ivos_rl.utils import seed_everything
from ivos_rl.utils.io import atomic_write_text, ensure_writable_dir
from ivos_rl.utils.logging import get_logger

_log = get_logger(__name__)


def default_title(dataset: Any, cfg: DictConfig, results: dict[str, EvaluationResult]) -> str:
    """Plot title from what actually ran: data folder, videos and samples, backend, rounds."""
    root = getattr(dataset, "root", None)
    name = Path(str(root)).name if root is not None else type(dataset).__name__
    seqs = {s.sequence for r in results.values() for s in r.samples}
    n_samples = max((len(r.samples) for r in results.values()), default=0)
    target = str(OmegaConf.select(cfg, "backend._target_", default="") or "")
    backend = target.rsplit(".", 1)[-1] if target else "backend"
    return (
        f"{name}: {len(seqs)} video(s), {n_samples} sample(s), {backend}, {int(cfg.max_rounds)} rounds"
    )


def compare_strategies(cfg: DictConfig) -> dict[str, Any]:
    """Run every entry of ``cfg.runs`` and report; returns ``{label: {"auc_rounds", "curve"}}``.

    Each run is ``{strategy, setting[, estimator]}``; a run without ``estimator`` uses ``cfg.estimator``.
    """
    seed_everything(int(cfg.seed))
    if not cfg.get("runs"):
        raise ConfigError("compare: cfg.runs is empty; give at least one {strategy, setting} entry")
    config = EvaluationConfig.from_cfg(cfg)  # rounds, samples, seed: shared by every run
    out_dir = ensure_writable_dir(Path(cfg.output_dir))  # fail before any compute
    dataset = instantiate(cfg.dataset)
    robot = instantiate(cfg.robot) if cfg.get("robot") is not None else None
    estimator = instantiate(cfg.estimator) if cfg.get("estimator") is not None else None
    results: dict[str, EvaluationResult] = {}
    for label, run in cfg.runs.items():
        if run is None:
            continue
        setting = str(run.get("setting", "wild"))
        strategy = instantiate(run.strategy)
        # a run may bring its own estimator (the one its strategy was tuned with); else the shared one
        own = run.get("estimator") is not None
        run_estimator = instantiate(run.estimator) if own else estimator
        estimator_cfg = run.estimator if own else cfg.get("estimator")
        uses_quality = setting == "wild" and strategy.needs_quality
        if uses_quality and run_estimator is None:
            _log.warning("skipping %s: strategy %r needs a quality estimator in the wild setting",
                         label, strategy.name)
            continue
        provenance = checkpoint_provenance(
            OmegaConf.select(estimator_cfg, "path") if uses_quality and estimator_cfg is not None else None,
            OmegaConf.select(run, "strategy.path"),
        )
        backend = instantiate(cfg.backend)  # fresh backend per run: no state shared between runs
        results[str(label)] = evaluate(
            dataset,
            backend,
            strategy,
            replace(config, setting=setting),  # type: ignore[arg-type]
            quality=run_estimator,
            robot=robot,
            out_dir=out_dir / str(label),
            provenance=provenance,  # the checkpoints' hashes: a retrained file is another run
        )
    table = curves_table(results)
    table.index.name = "strategy (setting)"
    md = to_markdown(table)
    print(f"\nJ&F after each round and round-AUC ({cfg.max_rounds} rounds):\n{md}\n")
    atomic_write_text(out_dir / "table.md", md + "\n")
    atomic_write_text(out_dir / "table.csv", table.to_csv())
    title = str(cfg.get("title") or default_title(dataset, cfg, results))
    plot = plot_curves(results, out_dir / "curves.png", title=title)
    print(f"table: {out_dir / 'table.md'}  curves: {plot}")
    atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    return {k: {"auc_rounds": r.auc_rounds, "curve": r.curve_rounds} for k, r in results.items()}
