"""Video splits by name: disjoint, balanced, stable under subsets and list order."""

from __future__ import annotations

import pytest

from ivos_rl.data.splits import (
    check_disjoint,
    check_held_out_unseen,
    fold_split,
    read_split_record,
    split_record,
    split_sequences,
    video_folds,
)
from ivos_rl.errors import CheckpointError, ConfigError

NAMES = [f"video{i:02d}" for i in range(10)]


def test_folds_partition_and_balance() -> None:
    folds = video_folds(NAMES, 3, seed=0)
    assert sorted(s for f in folds for s in f) == NAMES
    assert sorted(len(f) for f in folds) == [3, 3, 4]
    assert video_folds(list(reversed(NAMES)), 3, seed=0) == folds  # order of the list is irrelevant
    assert video_folds(NAMES, 3, seed=1) != folds


def test_fold_split_and_held_out_by_name() -> None:
    train, test = fold_split(NAMES, 5, 2)
    assert len(test) == 2 and set(train) | set(test) == set(NAMES) and not set(train) & set(test)
    tr, val = split_sequences(NAMES, 3, seed=0)
    assert len(val) == 3 and sorted(tr + val) == NAMES
    # a held-out video stays held out when other videos are dropped from the list
    _, val2 = split_sequences([*val, *NAMES[:2]], 3, seed=0)
    assert val2 == val
    assert split_sequences(NAMES, ["video03"])[1] == ["video03"]


def test_bad_splits_are_refused() -> None:
    with pytest.raises(ConfigError, match="not in the dataset"):
        split_sequences(NAMES, ["nope"])
    with pytest.raises(ConfigError, match="n_folds"):
        video_folds(NAMES, 11)
    with pytest.raises(ConfigError, match=r"video01"):
        check_disjoint(["video01", "video02"], ["video01"], "agent")
    with pytest.raises(ConfigError, match="nothing is left to train on"):
        split_sequences(["a", "b"], ["a", "b"])


def test_split_record_round_trip_and_validation() -> None:
    record = split_record(["b", "a", "a"], ("c",), 3)
    assert record == {"train": ["a", "b"], "held_out": ["c"], "seed": 3}
    assert read_split_record(record, "q.pt") == record
    assert read_split_record(None, "old.pt") is None  # checkpoints written before split records
    assert split_record(["a"], ["c"], None)["seed"] is None  # explicit held-out names
    with pytest.raises(ConfigError, match=r"\['a'\]"):
        split_record(["a", "b"], ["a"], 0)
    # a record without a seed, with extra keys (a trainer's CV folds), is read as it is
    folds = {"train": ["b", "a"], "held_out": [], "cv_folds": [["a"], ["b"]]}
    assert read_split_record(folds, "f.pt") == {"train": ["a", "b"], "held_out": [], "seed": None,
                                                "cv_folds": [["a"], ["b"]]}
    bad_records = (
        {"train": ["a"]},
        {"train": "ab", "held_out": [], "seed": 0},
        {"train": [1], "held_out": [], "seed": 0},
    )
    for bad in bad_records:
        with pytest.raises(CheckpointError, match=r"q\.pt"):
            read_split_record(bad, "q.pt")


def test_held_out_videos_must_be_unseen_by_the_quality_net() -> None:
    quality = split_record(["a", "b", "c"], ["d", "e"], 0)
    check_held_out_unseen(["d"], quality, "quality.pt")  # held out by both: clean
    check_held_out_unseen(["a"], None, "old.pt")  # no record: nothing to check
    with pytest.raises(ConfigError, match=r"\['b', 'c'\] were used to train quality\.pt"):
        check_held_out_unseen(["e", "c", "b"], quality, "quality.pt")


def test_same_seed_nests_held_out_sets() -> None:
    """Every trainer ranks videos by the same name hash: with one seed, a smaller held-out set is
    inside a larger one, so an agent holding out fewer videos than its quality net stays clean."""
    _, small = split_sequences(NAMES, 2, seed=0)
    _, large = split_sequences(NAMES, 4, seed=0)
    assert set(small) < set(large)
