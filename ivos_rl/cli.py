"""`ivos-rl <command>`: the non-Hydra command-line tools.

Each command is a ``main(argv) -> int`` function in the module that owns the concept; this file
only dispatches, importing the module lazily so that `ivos-rl --help` stays fast. Experiment
jobs (evaluate, train-agent, train-quality...) are Hydra scripts under ``scripts/``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from ivos_rl.errors import IvosError

#: command -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "make-synthetic": ("ivos_rl.data.synthetic:main", "write a synthetic DAVIS-layout dataset"),
    "make-excerpt": ("ivos_rl.data.excerpt:main", "copy some sequences/frames of a DAVIS folder"),
    "make-metadata": ("ivos_rl.data.metadata:main", "write davis.json-style metadata for a DAVIS folder"),
    "init-scribbles": ("ivos_rl.data.init_scribbles:main", "generate initial scribbles with the robot"),
    "convert-youtube-vos": ("ivos_rl.data.youtube_vos:main", "convert YouTube-VOS to a DAVIS-like folder"),
    "export-quality": ("ivos_rl.quality.checkpoint:main", "export a quality checkpoint in half precision"),
    "recommend": ("ivos_rl.recommend:main", "recommend the next frame to annotate for any segmenter"),
}


def _resolve(spec: str) -> Callable[[list[str]], int]:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: ivos-rl <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Hydra jobs: python scripts/{demo,evaluate,train_agent,train_quality,...}.py [overrides]"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ivos-rl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        return int(_resolve(COMMANDS[name][0])(rest) or 0)
    except IvosError as err:
        print(f"ivos-rl {name}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
