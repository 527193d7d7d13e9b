"""Video splits by name: disjoint, balanced, stable under subsets and list order."""

from __future__ import annotations

import pytest

from ivos_rl.data.splits import check_disjoint, fold_split, split_sequences, video_folds
from ivos_rl.errors import ConfigError

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
