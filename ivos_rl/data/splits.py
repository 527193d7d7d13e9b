"""The one way to split videos: by name, so every trainer and every cross-validation agrees.

Held-out videos and cross-validation folds are derived from a hash of each sequence name and a
seed (never from list positions), so the agent, the quality net and the benchmarks that use the
same seed hold out the same videos, and a subset of sequences keeps each video in its fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.utils.seed import name_seed

__all__ = [
    "SPLIT_KEY",
    "check_disjoint",
    "check_held_out_unseen",
    "fold_split",
    "rank_by_name",
    "read_split_record",
    "split_record",
    "split_sequences",
    "video_folds",
]

SPLIT_KEY = "split"
"""Field under which every checkpoint (quality net, agent) records its :func:`split_record`."""


def rank_by_name(sequences: Iterable[str], seed: int = 0) -> list[str]:
    """``sequences`` in a seeded pseudo-random order that depends only on each name."""
    names = sorted(set(map(str, sequences)))
    return sorted(names, key=lambda s: (name_seed(int(seed), "split", s), s))


def split_sequences(
    sequences: Sequence[str], n_val: int | Sequence[str], seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train, held-out) sequences; ``n_val`` is a count (chosen by name hash) or explicit names."""
    names = sorted(set(map(str, sequences)))
    if isinstance(n_val, (list, tuple)) or (not isinstance(n_val, (int, str)) and n_val is not None):
        val = sorted(set(map(str, n_val)))  # type: ignore[arg-type]
        unknown = sorted(set(val) - set(names))
        if unknown:
            raise ConfigError(f"held-out sequences {unknown} are not in the dataset ({len(names)} sequences)")
    else:
        if isinstance(n_val, bool) or not isinstance(n_val, int) or not 0 <= n_val < len(names):
            raise ConfigError(f"n_val must be an int in [0, {len(names)}) or a list of names, got {n_val!r}")
        val = sorted(rank_by_name(names, seed)[:n_val])
    train = [s for s in names if s not in set(val)]
    if not train:
        raise ConfigError(f"every sequence is held out ({val}); nothing is left to train on")
    return train, val


def video_folds(sequences: Sequence[str], n_folds: int, seed: int = 0) -> list[list[str]]:
    """``n_folds`` disjoint folds of videos (sizes differ by at most one), assigned by name hash."""
    names = rank_by_name(sequences, seed)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or not 2 <= n_folds <= len(names):
        raise ConfigError(f"n_folds must be an int in [2, {len(names)}], got {n_folds!r}")
    return [sorted(names[i::n_folds]) for i in range(n_folds)]


def fold_split(
    sequences: Sequence[str], n_folds: int, fold: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train, test) sequences of cross-validation fold ``fold`` (0-based)."""
    folds = video_folds(sequences, n_folds, seed)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise ConfigError(f"fold must be an int in [0, {n_folds}), got {fold!r}")
    test = folds[fold]
    return sorted(s for f in folds if f is not test for s in f), test


def check_disjoint(train: Iterable[str], held_out: Iterable[str], what: str = "split") -> None:
    """Raise when a held-out video was also trained on (results on it would leak)."""
    leak = sorted(set(map(str, train)) & set(map(str, held_out)))
    if leak:
        raise ConfigError(f"{what}: held-out videos {leak} are also in the training videos")


def split_record(train: Iterable[str], held_out: Iterable[str], seed: int | None) -> dict[str, Any]:
    """The split a model was trained with, as stored in its checkpoint under :data:`SPLIT_KEY`.

    Plain lists and an int (loadable with ``torch.load(weights_only=True)`` and JSON), so a later
    run can prove that the videos it reports on were never trained on (:func:`check_held_out_unseen`).
    ``seed`` is the split seed, or None when the held-out videos were named explicitly.
    """
    train_names = sorted(set(map(str, train)))
    held_names = sorted(set(map(str, held_out)))
    check_disjoint(train_names, held_names, "split record")
    return {"train": train_names, "held_out": held_names, "seed": None if seed is None else int(seed)}


def read_split_record(record: Any, source: str) -> dict[str, Any] | None:
    """Validate a stored split record; None when ``source`` (a checkpoint) predates split records.

    ``train`` and ``held_out`` are required; ``seed`` may be absent (None) and further keys a
    trainer adds (e.g. its cross-validation folds) are kept as they are.
    """
    if record is None:
        return None
    ok = (
        isinstance(record, dict)
        and {"train", "held_out"} <= set(record)
        and all(isinstance(record[k], (list, tuple)) for k in ("train", "held_out"))
        and all(isinstance(s, str) for k in ("train", "held_out") for s in record[k])
        and (record.get("seed") is None or isinstance(record["seed"], int))
    )
    if not ok:
        raise CheckpointError(f"{source}: malformed {SPLIT_KEY!r} record {record!r}")
    return {**record, **split_record(record["train"], record["held_out"], record.get("seed"))}


def check_held_out_unseen(
    held_out: Iterable[str], trained_on: dict[str, Any] | None, source: str, what: str = "held-out"
) -> None:
    """Refuse ``held_out`` videos that the model of ``source`` was trained on (its split record).

    A Wild result on such a video leaks: the quality estimate there comes from a net that saw the
    video's ground truth. A model without a record (``trained_on=None``) cannot be checked.
    """
    if trained_on is None:
        return
    leak = sorted(set(map(str, held_out)) & set(trained_on["train"]))
    if leak:
        raise ConfigError(
            f"{what} videos {leak} were used to train {source}: results on them would leak; "
            f"hold out other videos or use a model trained without them"
        )
