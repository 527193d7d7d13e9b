"""The training output folder: never overwrite finished work, never mix two setups in one folder.

Before any compute a run checks that ``train.output_dir`` is writable and decides what the
folder may hold: an empty folder (or one holding only Hydra's ``.hydra/`` and log) starts a
fresh run; a folder with training outputs is refused unless the run resumes (its manifest's
fingerprint must equal this run's, otherwise :class:`~ivos_rl.provenance.ProvenanceError` names
both values and the folder) or ``train.overwrite=true`` (which deletes only what training writes).
The manifest (:func:`ivos_rl.provenance.write_manifest`) is written at the start of every run.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ivos_rl.errors import ConfigError
from ivos_rl.provenance import MANIFEST_NAME, ProvenanceError, describe_difference, fingerprint, read_manifest
from ivos_rl.sweeps import HELDOUT_DIR
from ivos_rl.utils.io import ensure_writable_dir

__all__ = [
    "CHECKPOINT_NAME",
    "HELDOUT_DIR",
    "POLICY_NAME",
    "TENSORBOARD_DIR",
    "check_resumable",
    "prepare_output_dir",
]

CHECKPOINT_NAME = "checkpoint.pt"
POLICY_NAME = "agent.pt"
TENSORBOARD_DIR = "tensorboard"
# Everything a training run writes into its folder (``overwrite`` deletes these and nothing else).
_TRAINING_OUTPUTS = (MANIFEST_NAME, CHECKPOINT_NAME, POLICY_NAME, TENSORBOARD_DIR, HELDOUT_DIR)
# What Hydra itself puts into its job folder (the default output_dir) before the run starts.
_HYDRA_ENTRIES = (".hydra",)


def _foreign_entries(folder: Path) -> list[str]:
    """Entries that are neither Hydra's nor a log file: a folder with any of them is not empty."""
    return sorted(
        p.name for p in folder.iterdir() if p.name not in _HYDRA_ENTRIES and p.suffix != ".log"
    )


def prepare_output_dir(folder: Path, *, resume: str | None, overwrite: bool) -> None:
    """Check ``folder`` is writable (:class:`~ivos_rl.errors.OutputError` otherwise) and may receive
    this run (module docstring); clear its training outputs if told to overwrite."""
    ensure_writable_dir(folder)
    present = _foreign_entries(folder)
    if not present or resume is not None:
        return
    if not overwrite:
        raise ConfigError(
            f"train.output_dir {folder} is not empty ({', '.join(present[:5])}"
            f"{'...' if len(present) > 5 else ''}): resume it with train.resume=auto, replace the "
            "training outputs with train.overwrite=true, or choose another folder"
        )
    for name in _TRAINING_OUTPUTS:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_resumable(folder: Path, fields: Mapping[str, Any], checkpoint: Path | None) -> None:
    """Refuse to resume into ``folder`` when its manifest was written for another setup.

    A folder holding a checkpoint but no manifest cannot be checked and is refused as well.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        if checkpoint is not None and checkpoint.is_file():
            raise ProvenanceError(
                f"{folder} holds {checkpoint.name} but no {MANIFEST_NAME}: its setup is unknown, "
                "so it cannot be resumed safely; use a new folder or train.overwrite=true"
            )
        return
    expected = fingerprint(fields)
    if manifest["fingerprint"] != expected:
        raise ProvenanceError(
            f"cannot resume {folder}: its manifest has fingerprint {manifest['fingerprint']!r} but this "
            f"run's is {expected!r} ({describe_difference(manifest.get('fields', {}), fields)}); "
            "use a new output folder or train.overwrite=true"
        )
