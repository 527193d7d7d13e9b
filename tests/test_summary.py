"""Summaries checked against values computed by hand (see the comments next to each number)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ivos_rl.errors import InputValidationError
from ivos_rl.summary import REPORT_COLUMNS, auc_rounds, ivosw_summary, round_curve, summarize_report


def _rows(seq: str, sidx: int, interaction: int, timing: float, per_frame: list[list[float]]) -> list[dict]:
    """Report rows of one submission; per_frame[t][k] is the J&F (= J = F) of object k+1 on frame t."""
    out = []
    for t, objs in enumerate(per_frame):
        for k, v in enumerate(objs):
            out.append(
                {
                    "session_id": "s",
                    "sequence": seq,
                    "scribble_idx": sidx,
                    "interaction": interaction,
                    "object_id": k + 1,
                    "frame": t,
                    "jaccard": v,
                    "contour": v,
                    "j_and_f": v,
                    "timing": timing,
                }
            )
    return out


@pytest.fixture
def two_samples() -> pd.DataFrame:
    """Sample a/1: 3 rounds (frame means 0.3, 0.6, 0.8; timings 1, 2, 3 s).
    Sample b/1: 2 rounds (0.1, 0.4; timings 2, 4 s), round 3 timed out."""
    rows = (
        _rows("a", 1, 1, 1.0, [[0.2], [0.4]])
        + _rows("a", 1, 2, 2.0, [[0.5], [0.7]])
        + _rows("a", 1, 3, 3.0, [[0.8], [0.8]])
        + _rows("b", 1, 1, 2.0, [[0.1], [0.1]])
        + _rows("b", 1, 2, 4.0, [[0.4], [0.4]])
    )
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def test_round_curve_reconstructs_missing_round(two_samples: pd.DataFrame) -> None:
    # r1 = (0.3 + 0.1)/2, r2 = (0.6 + 0.4)/2, r3 = (0.8 + 0.4 repeated)/2
    assert round_curve(two_samples, max_nb_interactions=3) == pytest.approx([0.0, 0.2, 0.5, 0.6])


def test_summarize_report_hand_example(two_samples: pd.DataFrame) -> None:
    s = summarize_report(two_samples, max_nb_interactions=3, time_threshold=3.0)
    # mean time per round: (1+2)/2=1.5, (2+4)/2=3, (3+0)/2=1.5 -> cumulative 1.5, 4.5, 6
    # no max_time: timeout = 3 rounds x largest timing 4 s = 12
    assert s["curve_time"]["time"] == pytest.approx([0.0, 1.5, 4.5, 6.0, 12.0])
    assert s["curve_time"]["J_AND_F"] == pytest.approx([0.0, 0.2, 0.5, 0.6, 0.6])
    # trapezoid: 0.15 + 1.05 + 0.825 + 3.6 = 5.625, divided by 12
    assert s["auc_time"] == pytest.approx(0.46875)
    # at 3 s: between (1.5, 0.2) and (4.5, 0.5) -> 0.35
    assert s["jf_at_60s"] == pytest.approx(0.35)
    # rounds: (1/3) * (0.1 + 0.35 + 0.55) = 1/3
    assert s["auc_rounds"] == pytest.approx(1.0 / 3.0)
    assert s["curve_rounds"] == {"round": [0, 1, 2, 3], "J_AND_F": pytest.approx([0.0, 0.2, 0.5, 0.6])}
    assert s["global_timeout"] == pytest.approx(12.0)
    assert s["n_samples"] == 2
    assert ivosw_summary(s) == {"auc": s["auc_rounds"], "curve": {"J_AND_F": s["curve_rounds"]["J_AND_F"]}}


def test_summarize_report_with_max_time_and_default_threshold(two_samples: pd.DataFrame) -> None:
    s = summarize_report(two_samples, max_nb_interactions=3, max_time=10.0)
    # timeout = 1 object per sequence x 10 s; last segment 0.6 x 4 = 2.4 -> (0.15+1.05+0.825+2.4)/10
    assert s["curve_time"]["time"][-1] == pytest.approx(10.0)
    assert s["auc_time"] == pytest.approx(0.4425)
    assert s["jf_at_60s"] == pytest.approx(0.6)  # beyond the curve: last value


def test_unevaluated_sample_counts_as_zero(two_samples: pd.DataFrame) -> None:
    samples = [("a", 1, 1), ("b", 1, 1), ("c", 1, 1)]
    curve = round_curve(two_samples, max_nb_interactions=3, samples=samples)
    assert curve == pytest.approx([0.0, 0.4 / 3, 1.0 / 3, 1.2 / 3])
    s = summarize_report(two_samples, max_nb_interactions=3, samples=samples)
    assert s["curve_time"]["time"][:4] == pytest.approx([0.0, 1.0, 3.0, 4.0])  # 3/3, 6/3, 3/3 per round


def test_means_are_over_objects_and_a_partial_round_is_replaced() -> None:
    rows = (
        _rows("x", 1, 1, 1.0, [[1.0, 0.0]])
        + _rows("y", 1, 1, 1.0, [[0.8]])
        + _rows("x", 1, 2, 1.0, [[0.5, 0.5]])[:1]  # object 2 missing in round 2
        + _rows("y", 1, 2, 1.0, [[0.9]])
    )
    df = pd.DataFrame(rows)
    # round 1: (1 + 0 + 0.8) / 3 objects = 0.6 (a per-sample mean would give 0.65)
    # round 2: x repeats round 1 (1, 0) -> (1 + 0 + 0.9) / 3
    assert round_curve(df) == pytest.approx([0.0, 0.6, 1.9 / 3])


def test_metric_selects_the_column() -> None:
    rows = _rows("a", 1, 1, 1.0, [[0.5]])
    rows[0].update(jaccard=0.2, contour=0.8)
    df = pd.DataFrame(rows)
    assert round_curve(df, metric="J") == pytest.approx([0.0, 0.2])
    assert round_curve(df, metric="F") == pytest.approx([0.0, 0.8])
    s = summarize_report(df, metric="J")
    assert s["metric"] == "J" and s["curve_time"]["J"] == pytest.approx([0.0, 0.2, 0.2])


def test_zero_timing_gives_zero_auc_time() -> None:
    df = pd.DataFrame(_rows("a", 1, 1, 0.0, [[1.0]]) + _rows("a", 1, 2, 0.0, [[1.0]]))
    s = summarize_report(df)
    assert s["auc_time"] == 0.0
    assert s["auc_rounds"] == pytest.approx(0.75)  # [0, 1, 1] over x = 0, 0.5, 1


def test_empty_report_with_max_time_is_all_zero() -> None:
    df = pd.DataFrame(columns=list(REPORT_COLUMNS))
    s = summarize_report(df, max_nb_interactions=2, max_time=5.0, samples=[("a", 1, 2)])
    assert s["auc_time"] == 0.0 and s["auc_rounds"] == 0.0
    assert s["curve_time"]["time"] == [0.0, 0.0, 0.0, 10.0]  # timeout = 2 objects x 5 s


def test_auc_rounds_values() -> None:
    assert auc_rounds([0.0, 1.0]) == pytest.approx(0.5)
    assert auc_rounds([0, 1, 1, 1]) == pytest.approx(2.5 / 3)
    assert auc_rounds(np.array([0.0, 0.25, 0.5, 0.75])) == pytest.approx(0.375)


@pytest.mark.parametrize(
    "curve, match",
    [([0.5, 0.6], "round-0"), ([0.0], "N >= 1"), ([0.0, float("nan")], "NaN"), ([[0.0, 1.0]], "1-D")],
)
def test_auc_rounds_rejects(curve: list, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        auc_rounds(curve)


def test_bad_reports_are_refused(two_samples: pd.DataFrame) -> None:
    nan = two_samples.copy()
    nan.loc[3, "contour"] = np.nan
    with pytest.raises(InputValidationError, match=r"'contour'.*row 3"):
        summarize_report(nan)
    with pytest.raises(InputValidationError, match=r"lacks columns.*timing"):
        summarize_report(two_samples.drop(columns="timing"))
    bad_round = two_samples.copy()
    bad_round.loc[0, "interaction"] = 0
    with pytest.raises(InputValidationError, match="'interaction'"):
        summarize_report(bad_round)
    with pytest.raises(InputValidationError, match="metric must be one of"):
        summarize_report(two_samples, metric="IoU")
    with pytest.raises(InputValidationError, match="empty report"):
        summarize_report(pd.DataFrame(columns=list(REPORT_COLUMNS)), samples=[("a", 1, 1)])
    with pytest.raises(InputValidationError, match="max_time"):
        summarize_report(two_samples, max_time=float("nan"))


def test_spread_over_robot_seeds_by_hand() -> None:
    from ivos_rl.summary import spread

    runs = [
        {"auc_time": 0.5, "jf_at_60s": 0.6, "auc_rounds": 0.4},
        {"auc_time": 0.7, "jf_at_60s": 0.6, "auc_rounds": 0.5},
        {"auc_time": 0.6, "jf_at_60s": 0.6, "auc_rounds": 0.6},
    ]
    out = spread(runs)
    # auc_time: mean .6, deviations -.1, .1, 0 -> std (ddof 1) = sqrt(.02 / 2) = .1
    assert out["auc_time"] == pytest.approx({"mean": 0.6, "std": 0.1, "n": 3})
    assert out["jf_at_60s"] == pytest.approx({"mean": 0.6, "std": 0.0, "n": 3})
    assert spread(runs[:1])["auc_rounds"] == {"mean": 0.4, "std": 0.0, "n": 1}
    with pytest.raises(InputValidationError, match="auc_time"):
        spread([{"jf_at_60s": 0.1, "auc_rounds": 0.1}])
    with pytest.raises(InputValidationError, match="at least one"):
        spread([])


def test_variance_and_mask_ap_tables() -> None:
    from ivos_rl.evaluation import EvaluationResult
    from ivos_rl.reporting import mask_ap_table, variance_table

    def run(seed: int, auc: float) -> tuple[dict[str, object], EvaluationResult]:
        summary = {
            "metric": "J_AND_F", "auc_time": auc, "jf_at_60s": auc, "auc_rounds": auc,
            "curve_rounds": {"round": [0, 1, 2], "J_AND_F": [0.0, 0.5, auc]},
            "recommender_seconds_per_round": 0.25, "backend_seconds_per_round": 1.0,
            "mask_ap": {"AP": [0.3, -1.0], "AP50": [0.5, -1.0], "AP75": [0.2, -1.0]},
        }  # fmt: skip
        meta = {"strategy": "agent", "setting": "wild", "backend": "b", "dataset": "d",
                "robot": "ScribbleRobot", "robot_seed": seed}  # fmt: skip
        return meta, EvaluationResult(report=pd.DataFrame(), summary=summary, samples=[])

    runs = [run(0, 0.5), run(1, 0.7), run(2, 0.6)]
    table = variance_table(runs)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["auc_time"] == "60.00 ± 10.00 (3)" and row["auc_rounds"] == "60.00 ± 10.00 (3)"
    assert row["recommender s/round"] == "0.250" and row["user"] == "ScribbleRobot"
    ap = mask_ap_table({"seed 0": runs[0][1]})
    assert ap is not None
    assert ap.loc["seed 0", "AP 1"] == pytest.approx(30.0) and np.isnan(ap.loc["seed 0", "AP 2"])
    assert ap.loc["seed 0", "J&F 2"] == pytest.approx(50.0)
