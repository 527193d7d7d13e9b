"""Provenance of results: run manifests and fingerprints of what determines a number.

Every evaluation or training run writes ``manifest.json`` (atomically) before any compute: the
resolved config, a ``fingerprint`` (hash of the fields that determine results: dataset and its
sequences/scribbles, backend fingerprint, strategy, setting, checkpoint hashes, rounds, seed...),
the package version and the git commit when there is one. Resume and merge compare fingerprints
and refuse to mix runs that differ (:class:`ProvenanceError` names both values and the folder),
so a table never averages samples produced by different setups.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ivos_rl.errors import ConfigError
from ivos_rl.utils.io import atomic_write_json

__all__ = [
    "MANIFEST_NAME",
    "ProvenanceError",
    "check_fingerprint",
    "describe_difference",
    "file_sha256",
    "files_sha256",
    "fingerprint",
    "git_commit",
    "hydra_job_record",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
_SHORT = 16  # hex characters kept of a sha256: collisions are irrelevant at this scale


class ProvenanceError(ConfigError):
    """Results of different setups would be mixed (resume, merge, load): names both fingerprints."""


def _canonical(obj: Any) -> Any:
    """JSON-ready copy with sorted keys; tuples become lists, Paths strings, numpy scalars Python."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, (str, bytes)):
        return obj.item()  # numpy scalar
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"cannot fingerprint a value of type {type(obj).__name__}: {obj!r}")


def fingerprint(fields: Mapping[str, Any]) -> str:
    """Short, stable hash of ``fields`` (order of keys does not matter)."""
    blob = json.dumps(_canonical(fields), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:_SHORT]


def file_sha256(path: str | Path | None) -> str | None:
    """Content hash of a file (e.g. a checkpoint), so a retrained file with the same name differs."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"cannot hash {p}: not a file")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:_SHORT]


def files_sha256(paths: str | Path | Sequence[str | Path] | None) -> str | list[str] | None:
    """:func:`file_sha256` of one path, or the list of hashes of a list of paths (a seed ensemble's
    policy files); one path hashes exactly as before, so existing fingerprints are unchanged."""
    if paths is None or isinstance(paths, (str, Path)):
        return file_sha256(paths)
    return [str(file_sha256(p)) for p in paths]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The git commit of the source tree (with ``-dirty`` when modified), or None outside git."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def write_manifest(
    out_dir: str | Path,
    *,
    kind: str,
    fields: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/manifest.json`` atomically and return it.

    ``kind`` says what produced the folder ("evaluation", "train_agent", ...); ``fields`` are the
    result-determining values whose :func:`fingerprint` is stored; ``config`` is the resolved
    config for the record (not fingerprinted: log paths and progress bars must not matter).
    """
    from ivos_rl import __version__

    manifest = {
        "kind": kind,
        "fingerprint": fingerprint(fields),
        "fields": _canonical(fields),
        "config": _canonical(config) if config is not None else None,
        "package_version": __version__,
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hydra_job": hydra_job_record(),
        **(_canonical(extra) if extra else {}),
    }
    atomic_write_json(Path(out_dir) / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of ``out_dir``, or None when the folder has none."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ProvenanceError(f"{path} is not valid JSON ({err}); remove it or use a new folder") from err
    if not isinstance(data, dict) or "fingerprint" not in data:
        raise ProvenanceError(f"{path} is not an ivos-rl run manifest (no 'fingerprint')")
    return data


def check_fingerprint(expected: str, found: str | None, *, where: str | Path, what: str = "run") -> None:
    """Raise :class:`ProvenanceError` when ``found`` differs from ``expected`` (None = unknown)."""
    if found != expected:
        raise ProvenanceError(
            f"{what} in {where} has fingerprint {found!r} but this run's is {expected!r}: "
            "they were produced by different setups and cannot be mixed; use a new output folder"
        )


def describe_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """Human-readable list of the fields that differ between two manifests' ``fields``."""
    keys = sorted(set(a) | set(b))
    diffs = [
        f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if _canonical(a.get(k)) != _canonical(b.get(k))
    ]
    return "; ".join(diffs) if diffs else "no field differs"





def hydra_job_record() -> dict[str, Any] | None:
    """The Hydra job this process runs as (name, number, overrides, output folder), None outside Hydra.

    Multirun folders are named by job number only (configs/hydra/default.yaml), so the overrides
    that distinguish the jobs live here, in every run's manifest.
    """
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:  # Hydra is a dependency, but the package stays importable without it
        return None
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    num = hc.job.get("num")
    return {
        "name": str(hc.job.name),
        "num": None if num is None else int(num),
        "mode": str(getattr(hc.mode, "name", hc.mode)),
        "overrides": [str(o) for o in hc.overrides.task],
        "output_dir": str(hc.runtime.output_dir),
    }
