"""Knob CV (issue 16): choices on the other folds only, held-out scores assembled, paired table."""

from __future__ import annotations

import pandas as pd
import pytest

from ivos_rl.errors import InputValidationError
from ivos_rl.knob_cv import cv_choice, cv_table

FOLDS = [["a", "b"], ["c", "d"]]


def _auc(values: dict[str, float]) -> pd.Series:
    return pd.Series({f"{v}/1": x for v, x in values.items()})


def test_choice_uses_only_the_other_folds() -> None:
    # "wide" is better on a, b (fold 0), "narrow" on c, d (fold 1): fold 0 must take narrow (chosen
    # on c, d) and fold 1 wide, so the cross-validated rule scores the worse run on every video
    wide = _auc({"a": 0.9, "b": 0.9, "c": 0.5, "d": 0.5})
    narrow = _auc({"a": 0.6, "b": 0.6, "c": 0.7, "d": 0.7})
    rule, chosen = cv_choice({"wide": wide, "narrow": narrow}, FOLDS)
    assert chosen == {0: "narrow", 1: "wide"}
    assert rule.to_dict() == {"a/1": 0.6, "b/1": 0.6, "c/1": 0.5, "d/1": 0.5}
    # ties go to the first label
    assert cv_choice({"x": wide, "y": wide.copy()}, FOLDS)[1] == {0: "x", 1: "x"}


def test_candidates_must_cover_every_video() -> None:
    with pytest.raises(InputValidationError, match="lacks videos \\['d'\\]"):
        cv_choice({"x": _auc({"a": 1.0, "b": 1.0, "c": 1.0})}, FOLDS)


def test_table_pairs_videos_and_counts_wins() -> None:
    rule = _auc({"a": 0.6, "b": 0.6, "c": 0.5, "d": 0.7})
    base = _auc({"a": 0.5, "b": 0.5, "c": 0.6, "d": 0.5})
    table = cv_table(rule, {"farthest": base}, n_boot=200)
    row = table.loc["farthest"]
    assert row["AUC x100"] == pytest.approx(52.5)
    assert row["rule minus it x100"] == pytest.approx(7.5)  # (.1 + .1 - .1 + .2) / 4
    assert row["95% lo"] <= 7.5 <= row["95% hi"]
    assert row["rule wins"] == 3 and row["videos"] == 4
    assert table.loc["cv rule", "AUC x100"] == pytest.approx(60.0)


def test_float_rounding_is_a_tie_not_a_win() -> None:
    # the same AUCs summed in another order differ in the last bits: no video may count as won
    rule = _auc({"a": 0.1 + 0.2, "b": 0.7})
    base = _auc({"a": 0.3, "b": 0.7})
    assert rule["a/1"] > base["a/1"]  # 0.30000000000000004 > 0.3
    assert cv_table(rule, {"same": base}, n_boot=50).loc["same", "rule wins"] == 0
