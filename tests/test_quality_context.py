"""Video-context columns of the quality signals (ivos_rl/quality/context.py) and models that use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.context import (
    CONTEXT_BASE,
    CONTEXT_NAMES,
    add_context,
    rows_with_context,
    select_columns,
)
from ivos_rl.quality.feature_estimator import FeatureQualityEstimator, save_feature_checkpoint
from ivos_rl.quality.feature_model import FeatureModelConfig, fit_feature_model, model_columns, model_state
from ivos_rl.quality.feature_rows import FeatureRows
from ivos_rl.quality.features import FEATURE_NAMES, quality_features
from ivos_rl.quality.stop import StopRule

C = len(CONTEXT_BASE)


def _col(kind: str, signal: str) -> int:
    return len(FEATURE_NAMES) + CONTEXT_NAMES.index(f"{signal}@{kind}")


def test_context_columns_by_hand() -> None:
    x = np.zeros((3, 2, len(FEATURE_NAMES)), np.float32)
    x[:, 0, FEATURE_NAMES.index("p_in")] = [1.0, 2.0, 4.0]
    x[:, 1, FEATURE_NAMES.index("p_in")] = [1.0, 1.0, 3.0]  # a tie
    out, names = add_context(x, FEATURE_NAMES)
    assert out.shape == (3, 2, len(FEATURE_NAMES) + 5 * C) and names == FEATURE_NAMES + CONTEXT_NAMES
    np.testing.assert_array_equal(out[:, :, : len(FEATURE_NAMES)], x)  # base columns unchanged
    obj0 = out[:, 0]
    assert obj0[:, _col("nb", "p_in")].tolist() == [1.5, 2.5, 3.0]  # ends repeat themselves
    assert obj0[:, _col("dev", "p_in")].tolist() == [-1.0, 0.0, 2.0]  # minus the median 2
    assert obj0[:, _col("rank", "p_in")].tolist() == [0.0, 0.5, 1.0]
    assert obj0[:, _col("med", "p_in")].tolist() == [2.0, 2.0, 2.0]
    assert np.allclose(obj0[:, _col("cen", "p_in")], [-4 / 3, -1 / 3, 5 / 3])  # minus the mean 7/3
    assert np.allclose(out[:, 1, _col("cen", "p_in")], [-2 / 3, -2 / 3, 4 / 3])  # mean 5/3
    assert out[:, 1, _col("rank", "p_in")].tolist() == [0.25, 0.25, 1.0]  # tied frames share rank 0.5/2
    # a constant signal: every frame ties, rank 0.5
    assert out[:, 0, _col("rank", "entropy_box")].tolist() == [0.5, 0.5, 0.5]
    single, _ = add_context(x[:1], FEATURE_NAMES)
    assert single[0, 0, _col("rank", "p_in")] == 0.5 and single[0, 0, _col("nb", "p_in")] == 1.0
    with pytest.raises(InputValidationError, match="base signals"):
        add_context(x[:, :, :3], FEATURE_NAMES[:3])


def _rows(t: int, rounds: int, seed: int) -> FeatureRows:
    """Rows of one 2-object trajectory (every frame of every round), shuffled."""
    rng = np.random.default_rng(seed)
    n = t * 2 * rounds
    frame = np.tile(np.repeat(np.arange(t), 2), rounds).astype(np.int32)
    obj = np.tile(np.arange(1, 3), t * rounds).astype(np.int16)
    rnd = np.repeat(np.arange(1, rounds + 1), t * 2).astype(np.int16)
    x = rng.random((n, len(FEATURE_NAMES))).astype(np.float32)
    rows = FeatureRows(
        x=x, jf=rng.random(n).astype(np.float32), j=np.zeros(n, np.float32), f=np.zeros(n, np.float32),
        sequence=np.full(n, "v"), frame=frame, object_id=obj, round=rnd, strategy=np.full(n, "worst"),
        init=np.ones(n, np.int16), backend=np.full(n, "b"), names=FEATURE_NAMES,
    )
    return rows.subset(rng.permutation(n))


def test_rows_with_context_equals_the_per_round_computation() -> None:
    rows = _rows(t=5, rounds=2, seed=0)
    ctx = rows_with_context(rows)
    assert ctx.names == FEATURE_NAMES + CONTEXT_NAMES and len(ctx) == len(rows)
    np.testing.assert_array_equal(ctx.x[:, : len(FEATURE_NAMES)], rows.x)
    for r in (1, 2):
        grid = np.zeros((5, 2, len(FEATURE_NAMES)), np.float32)
        sel = np.flatnonzero(rows.round == r)
        grid[rows.frame[sel], rows.object_id[sel] - 1] = rows.x[sel]
        want, _ = add_context(grid, FEATURE_NAMES)
        np.testing.assert_allclose(ctx.x[sel], want[rows.frame[sel], rows.object_id[sel] - 1], atol=1e-6)
    with pytest.raises(InputValidationError, match="already"):
        rows_with_context(ctx)
    with pytest.raises(InputValidationError, match="do not cover"):
        rows_with_context(rows.subset(np.arange(len(rows) - 1)))


def test_context_model_and_estimator_agree(tmp_path: Path) -> None:
    rows = rows_with_context(_rows(t=6, rounds=20, seed=1))
    cfg = FeatureModelConfig(hidden=8, members=2, epochs=2, batch_size=64, context=True)
    model = fit_feature_model(rows.x, rows.jf, rows.names, cfg, seed=0)
    # no kinds named: the session-6 four (files of that time keep their columns), not `cen`
    assert model.names == FEATURE_NAMES + tuple(n for n in CONTEXT_NAMES if not n.endswith("@cen"))
    base = fit_feature_model(rows.x, rows.jf, rows.names, FeatureModelConfig(members=1, epochs=1), seed=0)
    assert base.names == FEATURE_NAMES  # a base recipe ignores the context columns
    # files of base models carry no context field (older code loads them); context models say so
    assert "context" not in model_state(base)["config"] and model_state(model)["config"]["context"]
    with pytest.raises(ConfigError, match="context"):
        fit_feature_model(rows.x[:, : len(FEATURE_NAMES)], rows.jf, FEATURE_NAMES, cfg)
    ranks = FeatureModelConfig(members=1, epochs=1, context=True, context_kinds=["rank", "dev"])
    assert model_columns(rows.names, ranks) == FEATURE_NAMES + tuple(
        n for n in CONTEXT_NAMES if n.endswith(("@dev", "@rank"))
    )
    with pytest.raises(ConfigError, match="context_kinds"):
        FeatureModelConfig(context=True, context_kinds=["mean"])
    path = save_feature_checkpoint(
        tmp_path / "c.features.pt", model, stop_rule=StopRule(), backends=["b"],
        split={"train": ["v"], "held_out": []},
    )
    est = FeatureQualityEstimator.from_checkpoint(path)
    frames = np.zeros((4, 10, 10, 3), np.uint8)
    probs = np.zeros((4, 1, 10, 10), np.uint8)
    probs[:, 0, 2 : 4 + np.arange(4).max(), 2:6] = 200
    probs[2, 0, :, :] = 0  # one empty frame: its context differs from its neighbours'
    _, qk = est.predict(frames, probs, history=[0])
    x, names = add_context(quality_features(frames, probs, [0]), FEATURE_NAMES)
    direct, _ = model.predict_rows(x.reshape(4, -1), names)
    np.testing.assert_allclose(qk[:, 0], np.clip(direct, 0, 1), atol=1e-6)
    picked = select_columns(x, names, ["p_in@rank"])[..., 0]
    np.testing.assert_array_equal(picked, x[..., _col("rank", "p_in")])
    with pytest.raises(InputValidationError, match="missing"):
        select_columns(x, names, ["nope"])
