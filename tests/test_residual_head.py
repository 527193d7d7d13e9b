"""The residual Q-head on span-error's score, and the listwise distillation loss (issue 16).

Hand-checkable expectations: an untrained residual network's Q is exactly a times the prior
column with annotated frames pushed down by 2, so its argmax is span-error's pick; the inner
selection keeps the prior (0 epochs) when the prior already picks the best candidate; the
listwise loss of equal scores over two equal candidates is log 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ivos_rl.agents.checkpoint import load_policy, save_policy
from ivos_rl.agents.distill import DistillConfig, _listwise, build_rows, fit, offline_gain
from ivos_rl.agents.distill_cv import choose_knobs, offline_table, train_split
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.errors import ConfigError
from ivos_rl.state import build_state, history_counts
from ivos_rl.state_features import StateFeatures, span_columns
from ivos_rl.strategies.base import StrategyState
from ivos_rl.strategies.farthest import FarthestStrategy
from ivos_rl.strategies.span_error import SpanErrorStrategy
from ivos_rl.testing import lookahead_record

FEATURES = ("distance", "round", "span")


def _obs(q: np.ndarray, history: list[int], groups: tuple[str, ...] = FEATURES) -> np.ndarray:
    state = build_state(q, history_counts(history, q.size))
    return StateFeatures.parse(list(groups)).extend(state, history, 7)


def test_column_index_of_a_group() -> None:
    assert StateFeatures.parse(["span"]).column("span") == 2
    assert StateFeatures.parse(["distance", "round", "span"]).column("span") == 2 + 2 + 1
    assert StateFeatures.parse(["distance", "round", "span"]).column("round") == 4
    with pytest.raises(ConfigError, match="not selected"):
        StateFeatures.parse(["distance"]).column("span")


def test_untrained_residual_is_the_prior_by_hand() -> None:
    """5 frames, frame 0 annotated: the prior column is [0.9, 0.1, 0.3, 0.2, 0.0]; Q = 0.5 x
    (column - 2 [annotated]) = [-0.55, 0.05, 0.15, 0.1, 0] and the argmax is frame 2, not 0."""
    torch.manual_seed(0)
    net = QNetwork("bilstm", in_features=3, hidden=4, decoder_hidden=4, prior_column=2, prior_scale=0.5)
    x = torch.tensor([[1.0, 1, 0.9], [0.5, 0, 0.1], [0.5, 0, 0.3], [0.5, 0, 0.2], [0.5, 0, 0.0]])
    q = net(x)[0]
    torch.testing.assert_close(q, torch.tensor([-0.55, 0.05, 0.15, 0.1, 0.0]))
    assert int(q.argmax()) == 2
    assert net.prior_scale == pytest.approx(0.5)


@pytest.mark.parametrize("history", [[0], [3], [0, 9], [0, 4, 13], [19, 2, 10]])
def test_untrained_residual_picks_span_errors_frame(history: list[int]) -> None:
    rng = np.random.default_rng(len(history))
    q = rng.uniform(0.3, 1.0, 20).astype(np.float32)
    cfg = DistillConfig(state_features=FEATURES, residual=True, hidden=8, decoder_hidden=8)
    torch.manual_seed(1)
    net = cfg.network()
    obs = _obs(q, history)
    pick = int(net(torch.from_numpy(obs))[0].argmax())
    rule = SpanErrorStrategy(length=None, fusion=True)
    expected = rule.select(StrategyState(round=len(history), n_frames=20, history=tuple(history), quality=q))
    assert pick == expected
    assert pick not in history
    # the span column is span-error's score / N (the annotated frames are what the penalty removes)
    np.testing.assert_allclose(obs[:, cfg.features.column("span")], span_columns(q, history)[:, 0])


def test_paper_network_is_unchanged_when_the_option_is_off() -> None:
    net = QNetwork("bilstm", in_features=4)
    assert net.config() == {"recurrence": "bilstm", "in_features": 4, "hidden": 128, "decoder_hidden": 128}
    assert net.log_prior_scale is None and net.prior_scale is None
    assert "log_prior_scale" not in net.state_dict()
    assert DistillConfig().network().prior_column is None
    with pytest.raises(ConfigError, match="no prior column"):
        net.prior(torch.zeros(1, 3, 4))


def test_residual_refusals() -> None:
    with pytest.raises(ConfigError, match="prior_column"):
        QNetwork("bilstm", in_features=3, prior_column=1)  # column 1 is h, not a feature
    with pytest.raises(ConfigError, match="prior_column"):
        QNetwork("bilstm", in_features=3, prior_column=3)
    with pytest.raises(ConfigError, match="prior_scale"):
        QNetwork("bilstm", in_features=3, prior_column=2, prior_scale=0.0)
    with pytest.raises(ConfigError, match="span"):
        DistillConfig(state_features=("distance",), residual=True)
    with pytest.raises(ConfigError, match="epochs"):
        DistillConfig(state_features=FEATURES, epochs=0)  # only a residual head may train 0 epochs
    DistillConfig(state_features=FEATURES, epochs=0, residual=True)
    with pytest.raises(ConfigError, match="loss"):
        DistillConfig(loss="hinge")


def test_residual_policy_file_round_trip(tmp_path: Path) -> None:
    cfg = DistillConfig(state_features=FEATURES, residual=True, prior_scale=2.0, hidden=8, decoder_hidden=8)
    torch.manual_seed(0)
    net = cfg.network()
    with torch.no_grad():
        net.decoder[-1].weight.fill_(0.01)  # a trained-looking f
        net.log_prior_scale.fill_(math.log(3.0))  # type: ignore[union-attr]
    path = save_policy(tmp_path / "agent.pt", net, {"state_mode": "both"})
    again, _ = load_policy(path)
    x = torch.rand(2, 9, 2 + cfg.features.width)
    torch.testing.assert_close(again(x), net(x))
    assert again.prior_column == cfg.features.column("span") and again.prior_scale == pytest.approx(3.0)


def _span_best_data(n_videos: int = 6, n: int = 12) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Rows whose best candidate is exactly span-error's pick (a prior that cannot be improved)."""
    data = []
    history = np.array([[0, -1], [0, 6]])
    for v in range(n_videos):
        rng = np.random.default_rng(v)
        q = rng.uniform(0.3, 0.9, (2, n)).astype(np.float32)
        values = np.full((2, n), np.nan, np.float32)
        for r in range(2):
            h = [int(f) for f in history[r] if f >= 0]
            pick = SpanErrorStrategy().select(
                StrategyState(round=r + 1, n_frames=n, history=tuple(h), quality=q[r])
            )
            cand = sorted({1, 4, 8, 11, pick} - set(h))
            values[r, cand] = 0.5 + 0.01 * rng.random(len(cand))
            values[r, pick] = 0.7
        data.append((f"v{v}", lookahead_record(q, history, values, final=0.8)))
    return data


def test_residual_fit_starts_at_the_prior_and_selection_can_keep_it() -> None:
    cfg = DistillConfig(
        state_features=FEATURES, residual=True, epochs=3, hidden=8, decoder_hidden=8, flip=False
    )
    data = _span_best_data()
    rows = build_rows(data, cfg)
    _, curve = fit(rows, cfg, seed=0, validate=rows)
    assert [p["epoch"] for p in curve] == [0.0, 1.0, 2.0, 3.0]
    assert curve[0]["gain_agent"] == pytest.approx(0.2, abs=1e-6)  # the prior = the oracle here
    assert curve[0]["gain_agent"] == pytest.approx(curve[0]["gain_oracle"])
    chosen, sel = choose_knobs(data, [s for s, _ in data], cfg, [{}], [0], inner_folds=2)
    assert chosen.epochs == 0 and sel["chosen"]["epochs"] == 0  # ties go to the earliest: the prior
    net, _ = fit(rows, chosen, seed=0)
    assert offline_gain(net, rows)["gain_agent"] == pytest.approx(0.2, abs=1e-6)


def test_paper_recipe_curve_has_no_epoch_zero() -> None:
    cfg = DistillConfig(state_features=FEATURES, epochs=2, hidden=8, decoder_hidden=8, flip=False)
    rows = build_rows(_span_best_data(2), cfg)
    _, curve = fit(rows, cfg, seed=0, validate=rows)
    assert [p["epoch"] for p in curve] == [1.0, 2.0]


def test_train_split_reports_the_priors_gain(tmp_path: Path) -> None:
    cfg = DistillConfig(state_features=FEATURES, residual=True, epochs=2, hidden=8, decoder_hidden=8)
    data = _span_best_data()
    videos = [s for s, _ in data]
    res = train_split(data, videos[:5], videos[5:], cfg, [{}], [0], 2, tmp_path, {"backend_fingerprint": "x"})
    score = res["test_offline"][0]
    assert score["gain_prior"] == pytest.approx(0.2, abs=1e-6)
    assert score["per_video"]["v5"]["gain_prior"] == pytest.approx(0.2, abs=1e-6)
    table = offline_table({"fold0": res})
    assert "prior" in table.index and "agent" in table.index
    # span-error's pick scored on the same rows is the residual's prior: the same gain
    assert score["gain_span"] == pytest.approx(score["gain_prior"], abs=1e-9) and "span" in table.index
    # a fold that chose the plain head has no prior: the table keeps every video and drops the prior
    plain = {**res, "test_offline": [{k: v for k, v in score.items() if k != "gain_prior"}
                                     | {"per_video": {"v9": {k: v for k, v in score["per_video"]["v5"].items()
                                                             if k != "gain_prior"}}}]}
    table = offline_table({"fold0": res, "fold1": plain})
    assert "prior" not in table.index and int(table.loc["agent", "videos"]) == 2


def test_listwise_loss_by_hand() -> None:
    q = torch.tensor([[0.0, 0.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    equal = _listwise(q, torch.tensor([[1.0, 1.0, 9.0]]), mask, temperature=0.1)
    assert float(equal) == pytest.approx(math.log(2.0))  # the untried frame's Q and target are ignored
    # a sharp target on frame 1 and Q = [0, log 3]: p(frame 1) = 3/4, loss = -log 3/4
    sharp = _listwise(torch.tensor([[0.0, math.log(3.0), 0.0]]), torch.tensor([[0.0, 10.0, 0.0]]), mask, 0.01)
    assert float(sharp) == pytest.approx(-math.log(0.75), abs=1e-5)


def test_listwise_fit_learns_the_best_candidate() -> None:
    cfg = DistillConfig(
        state_features=FEATURES,
        loss="listwise",
        epochs=40,
        hidden=16,
        decoder_hidden=16,
        lr=3e-3,
        demo_weight=0.0,
        flip=False,
    )
    rows = build_rows(_span_best_data(), cfg)
    net, _ = fit(rows, cfg, seed=0)
    score = offline_gain(net, rows)
    assert score["gain_agent"] > score["gain_farthest"] + 0.05


def test_untrained_farthest_prior_by_hand() -> None:
    """7 frames, frames 0 and 6 annotated: distances to the nearest annotation [0, 1, 2, 3, 2, 1, 0];
    with q = [1, .2, 1, 1, .1, 1, 1] Farthest picks frame 3 (distance 3), and with quality weight 2
    the scores d x (1 + 2 (1 - q)) are [0, 2.6, 2, 3, 5.6, 1, 0]: frame 4."""
    q = np.array([1.0, 0.2, 1.0, 1.0, 0.1, 1.0, 1.0], dtype=np.float32)
    history = [0, 6]
    obs = torch.from_numpy(_obs(q, history, ("distance", "round")))
    for weight, expected in ((0.0, 3), (2.0, 4)):
        cfg = DistillConfig(state_features=("distance", "round"), residual=True, prior="farthest",
                            prior_quality_weight=weight, hidden=4, decoder_hidden=4)
        torch.manual_seed(0)
        net = cfg.network()
        assert net.prior_column == [2, 3]
        assert int(net(obs)[0].argmax()) == expected
        rule = FarthestStrategy(quality_weight=weight)
        state = StrategyState(round=2, n_frames=7, history=tuple(history), quality=q if weight else None)
        assert rule.select(state) == expected


@pytest.mark.parametrize("history", [[0], [3], [0, 9], [0, 4, 13], [19, 2, 10]])
@pytest.mark.parametrize("weight", [0.0, 0.5, 4.0])
def test_untrained_farthest_prior_picks_the_strategys_frame(history: list[int], weight: float) -> None:
    rng = np.random.default_rng(len(history))
    q = rng.uniform(0.3, 1.0, 20).astype(np.float32)
    cfg = DistillConfig(state_features=FEATURES, residual=True, prior="farthest", prior_quality_weight=weight,
                        hidden=8, decoder_hidden=8)
    torch.manual_seed(1)
    pick = int(cfg.network()(torch.from_numpy(_obs(q, history)))[0].argmax())
    state = StrategyState(round=len(history), n_frames=20, history=tuple(history), quality=q)
    assert pick == FarthestStrategy(quality_weight=weight).select(state)


def test_farthest_prior_refusals_and_file_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="distance"):
        DistillConfig(state_features=("round", "span"), residual=True, prior="farthest")
    with pytest.raises(ConfigError, match="prior"):
        DistillConfig(state_features=FEATURES, residual=True, prior="worst")
    with pytest.raises(ConfigError, match="prior_quality_weight"):
        DistillConfig(state_features=FEATURES, residual=True, prior="farthest", prior_quality_weight=-1.0)
    with pytest.raises(ConfigError, match="prior_quality_weight needs"):
        QNetwork("bilstm", in_features=4, prior_quality_weight=1.0)
    cfg = DistillConfig(state_features=FEATURES, residual=True, prior="farthest", prior_quality_weight=0.5,
                        hidden=8, decoder_hidden=8)
    torch.manual_seed(0)
    net = cfg.network()
    with torch.no_grad():
        net.decoder[-1].weight.fill_(0.01)
    again, _ = load_policy(save_policy(tmp_path / "agent.pt", net, {"state_mode": "both"}))
    x = torch.rand(2, 9, 2 + cfg.features.width)
    torch.testing.assert_close(again(x), net(x))
    assert again.config()["prior_quality_weight"] == 0.5 and again.prior_column == [2, 3]
