"""The runs of a cross-validated training sweep, labelled by what varies between them.

``scripts/train_agent.py -m <variants> +cv=folds`` writes one training run per (variant, fold, seed), each
with its test-fold evaluation in ``<run>/heldout/`` (:mod:`ivos_rl.agents.heldout`) and its Hydra overrides
in ``<run>/manifest.json``. A table needs them grouped by variant, folds and seeds pooled: the variant is
the overrides that differ between the runs, leaving out the fold, the seed and where outputs go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ivos_rl.errors import InputValidationError
from ivos_rl.provenance import MANIFEST_NAME, read_manifest

__all__ = ["HELDOUT_DIR", "POOLED_KEYS", "heldout_fold", "sweep_labels"]

HELDOUT_DIR = "heldout"  # in a training run's folder: its test-fold evaluation (ivos_rl.agents.heldout)

# Override keys that never name a variant: a table pools over them (folds, seeds) or they move outputs.
POOLED_KEYS = ("train.fold", "seed", "train.output_dir", "train.resume", "train.overwrite", "train.progress",
               "baseline.path", "baseline.progress")


def _training_run(folder: Path) -> tuple[dict[str, str], str] | None:
    """(``key=value`` overrides of the Hydra job, keys as typed; "fold<k>" or "run") of the training run
    in ``folder``; None for another kind of run (an evaluation)."""
    record = read_manifest(folder)
    if record is None or record.get("kind") != "train_agent":
        return None
    job = record.get("hydra_job") or {}
    pairs = (str(o).split("=", 1) for o in job.get("overrides", []))
    overrides = {p[0]: p[1] if len(p) == 2 else "" for p in pairs}
    fold = ((record.get("fields") or {}).get("train") or {}).get("fold")  # set by an override or a config
    return overrides, "run" if fold is None else f"fold{fold}"


def heldout_fold(folder: str | Path) -> str | None:
    """"fold<k>" when ``folder`` is the held-out evaluation (``<run>/heldout``) of a training run with
    ``train.fold=k``; None for any other folder. Per-run tables key on it: the same relative folder
    (``0/heldout``) in two multirun sweeps can hold different folds (a sweep over folds 3, 4 numbers
    them 0, 1).
    """
    path = Path(folder)
    if path.name != HELDOUT_DIR:
        return None
    run = _training_run(path.parent)
    return None if run is None or run[1] == "run" else run[1]


def sweep_labels(
    folders: str | Sequence[str], pooled: Iterable[str] = POOLED_KEYS
) -> dict[str, dict[str, list[str]]]:
    """``{variant label: {"fold<k>": [heldout folders, one per seed]}}`` of every training run under
    ``folders`` that has a held-out evaluation. The label joins the overrides whose values differ between
    the runs (``pooled`` keys left out), e.g. ``env.state_mode=q_only``; one variant only: ``"runs"``.
    """
    roots = [folders] if isinstance(folders, str) else list(folders)
    runs: list[tuple[dict[str, str], str, Path]] = []
    for root in roots:
        for manifest in sorted(Path(root).rglob(MANIFEST_NAME)):
            heldout = manifest.parent / HELDOUT_DIR
            run = _training_run(manifest.parent)
            if run is not None and (heldout / "summary.json").is_file():
                runs.append((*run, heldout))
    if not runs:
        raise InputValidationError(
            f"no training run with a held-out evaluation ({HELDOUT_DIR}/) under {roots}"
        )
    skip = {k.lstrip("+") for k in pooled}
    keys = sorted({k for o, _, _ in runs for k in o if k.lstrip("+") not in skip})
    varying = [k for k in keys if len({o.get(k) for o, _, _ in runs}) > 1]
    out: dict[str, dict[str, list[str]]] = {}
    for overrides, fold, heldout in runs:
        label = " ".join(f"{k}={overrides.get(k, '(unset)')}" for k in varying) or "runs"
        out.setdefault(label, {}).setdefault(fold, []).append(str(heldout))
    return out
