"""Backends of the benchmarks built from ``configs/backend/<name>.yaml``, composed as the scripts do, and
the command line the benchmarks on the shared DAVIS videos have in common."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ivos_rl.backends.propagation import PropagationBackend

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def davis_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser (``doc``, its module docstring, as help) with ``--root`` and ``--image-set``
    of the shared DAVIS-2016 videos."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--root", default="../shared/data/davis2016-train", help="DAVIS-layout dataset folder"
    )
    parser.add_argument("--image-set", default="2016/train")
    return parser


def backend_from_config(name: str, **overrides: Any) -> PropagationBackend:
    """The propagation backend of ``backend=<name>`` (its seg/prop knobs), with ``overrides`` of its
    constructor arguments (flow caches); SystemExit for another kind of backend. ``name`` may add
    Hydra overrides after colons, e.g. ``propagation_fast:+backend.prop.local_every=2``."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    config, *extra = name.split(":")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"backend={config}", *extra])
    backend = instantiate(cfg.backend, **overrides)
    if not isinstance(backend, PropagationBackend):
        raise SystemExit(f"backend config {name!r} is not a propagation backend")
    return backend
