"""Lookahead-value data, its distillation into the Q-network, and agents with state features.

Hand-checkable cases: the recorded value of the committed frame is the J&F the next round starts
from (the lookahead equals committing), rows built from a 5-frame hand-made record hold the
expected columns, gains and picks, and a policy file with features is rebuilt exactly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ivos_rl.agents.checkpoint import load_policy, save_policy
from ivos_rl.agents.distill import DistillConfig, build_rows, fit, offline_gain
from ivos_rl.agents.distill_cv import train_split
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.agents.strategy import AgentStrategy, policy_state_options
from ivos_rl.backends import SimulatedBackend
from ivos_rl.backends.base import labels_from_probs
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError, MissingDataError
from ivos_rl.lookahead_data import (
    LookaheadDataConfig,
    choose_frame,
    load_rows,
    record_sample,
    rows_path,
    save_rows,
    start_folder,
)
from ivos_rl.provenance import ProvenanceError
from ivos_rl.recommend import Recommender
from ivos_rl.robot import ScribbleRobot
from ivos_rl.rounds import QualitySource, RoundEngine, load_sample
from ivos_rl.state import build_state, history_counts
from ivos_rl.state_features import StateFeatures
from ivos_rl.strategies.base import Strategy, StrategyState, sample_seed
from ivos_rl.testing import lookahead_record

FEATURES = ("distance", "entropy", "area_change", "round", "span")


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p")


def _hand_rows(n: int = 5) -> dict[str, np.ndarray]:
    """Two rounds on a 5-frame video: frame 4 is best in round 1, frame 2 in round 2."""
    nan = np.nan
    return {
        "quality": np.array([[0.9, 0.5, 0.4, 0.3, 0.2], [0.9, 0.6, 0.5, 0.7, 0.9]], np.float32),
        "oracle": np.zeros((2, n), np.float32),
        "entropy": np.full((2, n), 0.25, np.float32),
        "area_change": np.full((2, n), 0.5, np.float32),
        "history": np.array([[0, -1, -1], [0, 4, -1]]),
        "values": np.array([[nan, 0.6, nan, nan, 0.7], [nan, 0.75, 0.8, nan, 0.7]], np.float32),
        "current": np.array([0.5, 0.7], np.float32),
        "chosen": np.array([4, 2]),
        "final": np.asarray(0.8, np.float32),
    }


# ----------------------------------------------------------------------------- data


def test_record_sample_values_are_what_committing_gives(dataset: DavisDataset) -> None:
    engine = RoundEngine(SimulatedBackend(seed=0), ScribbleRobot(), QualitySource("oracle"))
    seq, idx = dataset.samples()[0]
    sample = load_sample(dataset, seq, idx)
    cfg = LookaheadDataConfig(max_rounds=3, n_grid=3, n_worst=1, explore=0.0)
    rows = record_sample(engine, sample, cfg)
    n = sample.n_frames
    assert rows["quality"].shape == rows["values"].shape == (2, n)
    np.testing.assert_array_equal(rows["quality"], rows["oracle"])  # Oracle source: q is the truth
    for r in range(2):
        tried = np.flatnonzero(np.isfinite(rows["values"][r]))
        assert 2 <= tried.size <= 3 + 1 + 1  # grid of 3, 1 worst, Farthest's (overlaps allowed)
        assert rows["chosen"][r] == tried[np.argmax(rows["values"][r, tried])]  # explore=0: the oracle
        history = rows["history"][r]
        assert list(history[: r + 1]) == [sample.initial_frame, *rows["chosen"][:r]]
        assert (history[r + 1 :] == -1).all()
        after = rows["current"][r + 1] if r < 1 else rows["final"]
        assert after == pytest.approx(rows["values"][r, rows["chosen"][r]], abs=1e-6)
    # the same sample gives the same rows (choices seeded by name)
    again = record_sample(
        RoundEngine(SimulatedBackend(seed=0), ScribbleRobot(), QualitySource("oracle")), sample, cfg
    )
    for key in rows:
        np.testing.assert_array_equal(rows[key], again[key])


def test_record_sample_tries_the_span_error_pick(dataset: DavisDataset) -> None:
    from ivos_rl.strategies.span_error import SpanErrorStrategy

    engine = RoundEngine(SimulatedBackend(seed=0), ScribbleRobot(), QualitySource("oracle"))
    sample = load_sample(dataset, *dataset.samples()[0])
    cfg = LookaheadDataConfig(max_rounds=3, n_grid=1, n_worst=0, include_span=True, explore=0.0)
    rows = record_sample(engine, sample, cfg)
    for r in range(2):
        history = tuple(int(f) for f in rows["history"][r] if f >= 0)
        truth = rows["oracle"][r]
        view = StrategyState(round=r + 1, n_frames=sample.n_frames, history=history, quality=truth)
        assert np.isfinite(rows["values"][r, SpanErrorStrategy().select(view)])
    assert LookaheadDataConfig(include_span=True) != LookaheadDataConfig()  # fingerprinted knob


class _Scripted(Strategy):
    """Picks ``frames[round - 1]``; records the views it was shown and the seeds it was reset with."""

    needs_quality = True

    def __init__(self, frames: list[int]) -> None:
        self.frames, self.views, self.seeds = frames, [], []  # type: ignore[var-annotated]

    def reset(self, seed: int | None = None) -> None:
        self.seeds.append(seed)

    def select(self, state: StrategyState) -> int:
        self.views.append(state)
        return self.frames[state.round - 1]


def test_record_sample_follows_a_policy_and_always_tries_its_pick(dataset: DavisDataset) -> None:
    engine = RoundEngine(SimulatedBackend(seed=0), ScribbleRobot(), QualitySource("oracle"))
    seq, idx = dataset.samples()[0]
    sample = load_sample(dataset, seq, idx)
    # frames 5 and 7 are in no grid of one frame (frame 0), and not the worst / Farthest every time
    policy = _Scripted([5, 7, 6])
    cfg = LookaheadDataConfig(max_rounds=4, n_grid=1, n_worst=0, explore=0.0)
    rows = record_sample(engine, sample, cfg, policy)
    np.testing.assert_array_equal(rows["chosen"], [5, 7, 6])  # explore 0: the policy, not the oracle
    assert np.isfinite(rows["values"][[0, 1, 2], [5, 7, 6]]).all()  # its pick was always tried
    assert policy.seeds == [sample_seed(seq, idx, 0)]  # reset once, with the evaluation's seed rule
    assert [v.round for v in policy.views] == [1, 2, 3] and {v.max_rounds for v in policy.views} == {4}
    assert [v.history for v in policy.views] == [(sample.initial_frame,), (sample.initial_frame, 5),
                                                 (sample.initial_frame, 5, 7)]
    for r, view in enumerate(policy.views):
        np.testing.assert_allclose(view.quality, rows["quality"][r])  # it saw the run's quality
        after = rows["current"][r + 1] if r < 2 else rows["final"]
        assert after == pytest.approx(rows["values"][r, rows["chosen"][r]], abs=1e-6)
    # explore 1: never the policy's frame committed blindly; u < 1/2 gives Farthest's pick
    assert choose_frame({0: 0.5, 5: 0.9}, [0], 10, explore=1.0, rng=_FixedRng(0.1), follow=5) == 9  # type: ignore[arg-type]
    assert choose_frame({0: 0.5, 5: 0.9}, [0], 10, explore=0.3, rng=_FixedRng(0.5), follow=0) == 0  # type: ignore[arg-type]


def test_rows_following_span_error_replay_its_evaluation(dataset: DavisDataset) -> None:
    from ivos_rl.evaluation import evaluate
    from ivos_rl.strategies.span_error import SpanErrorStrategy

    seq, idx = dataset.samples()[0]
    cfg = LookaheadDataConfig(max_rounds=5, n_grid=2, n_worst=1, explore=0.0)
    engine = RoundEngine(SimulatedBackend(seed=0), ScribbleRobot(), QualitySource("oracle"))
    rows = record_sample(engine, load_sample(dataset, seq, idx), cfg, SpanErrorStrategy())
    res = evaluate(dataset, SimulatedBackend(seed=0), SpanErrorStrategy(), setting="oracle", max_rounds=5,
                   max_samples=1, progress=False)
    (sample_result,) = res.samples
    assert (sample_result.sequence, sample_result.scribble_idx) == (seq, idx)
    assert sample_result.recommended_frames == rows["chosen"].tolist()
    # the recorded J&F before each choice and after the last round are the evaluation's curve
    assert res.curve_rounds[1:5] == pytest.approx(rows["current"].tolist(), abs=1e-6)  # [0] is round 0
    assert res.curve_rounds[5] == pytest.approx(float(rows["final"]), abs=1e-6)


def test_policy_record_is_fingerprinted_only_when_given() -> None:
    from ivos_rl.lookahead_data import _policy, data_fields

    cfg = LookaheadDataConfig()
    plain = data_fields(cfg, "b", "q", "r", [("clip", 1)])
    assert "policy" not in plain  # oracle runs: the session-6 manifests' fields, unchanged
    policy, record = _policy({"_target_": "ivos_rl.strategies.SpanErrorStrategy", "length": None})
    assert type(policy).__name__ == "SpanErrorStrategy" and record is not None
    assert data_fields(cfg, "b", "q", "r", [("clip", 1)], record)["policy"]["config"]["length"] is None
    assert _policy(None) == (None, None)
    with pytest.raises(ConfigError, match="_target_"):
        _policy({"length": 3})
    with pytest.raises(ConfigError, match="not a Strategy"):
        _policy({"_target_": "ivos_rl.lookahead_data.LookaheadDataConfig"})


class _FixedRng:
    """random() returns ``u``; integers() returns 3."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u

    def integers(self, n: int) -> int:
        return 3


def test_choose_follows_the_oracle_or_explores() -> None:
    values = {0: 0.5, 5: 0.9, 7: 0.9}
    # the oracle: best value, ties to the earliest frame
    assert choose_frame(values, [0], 10, explore=0.3, rng=_FixedRng(0.3)) == 5  # type: ignore[arg-type]
    # u < explore / 2: Farthest's pick (frame 9 is farthest from {0}); else a random frame
    assert choose_frame(values, [0], 10, explore=0.3, rng=_FixedRng(0.1)) == 9  # type: ignore[arg-type]
    assert choose_frame(values, [0], 10, explore=0.3, rng=_FixedRng(0.2)) == 3  # type: ignore[arg-type]


def test_rows_folder_round_trip_and_refusals(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError):
        load_rows(tmp_path)
    fields = {"backend": "b1", "samples": [["clip", 1]]}
    start_folder(tmp_path, fields)
    save_rows(rows_path(tmp_path, "clip", 1), _hand_rows())
    ((seq, rows),) = load_rows(tmp_path)
    assert seq == "clip"
    np.testing.assert_array_equal(rows["values"], _hand_rows()["values"])
    with pytest.raises(MissingDataError, match="other"):
        load_rows(tmp_path, ["other"])
    start_folder(tmp_path, fields)  # the same setup resumes
    with pytest.raises(ProvenanceError, match="another setup"):
        start_folder(tmp_path, {**fields, "backend": "b2"})
    with pytest.raises(ConfigError):
        save_rows(tmp_path / "x.npz", {"values": np.zeros(1)})
    with pytest.raises(ConfigError):
        LookaheadDataConfig(explore=1.5)


def test_data_folders_may_share_samples_only_when_they_follow_another_recommender(tmp_path: Path) -> None:
    from ivos_rl.agents.distill_cv import load_data

    oracle = {"backend": "b1", "quality": "q", "knobs": {"explore": 0.3},
              "samples": [["clip", 1], ["other", 1]]}
    follow = {**oracle, "knobs": {"explore": 0.0}, "policy": {"config": {"_target_": "span"}},
              "samples": [["clip", 1], ["third", 2]]}
    for name, fields in (("oracle", oracle), ("follow", follow), ("again", follow)):
        start_folder(tmp_path / name, fields)
        for seq, idx in fields["samples"]:
            save_rows(rows_path(tmp_path / name, seq, idx), _hand_rows())
    data, _, planned = load_data([tmp_path / "oracle", tmp_path / "follow"])
    assert [s for s, _ in data] == ["clip", "other", "clip", "third"]  # clip/1 twice: other states
    assert planned == ["clip", "other", "third"]  # each video once in the fold plan
    with pytest.raises(ConfigError, match=r"overlap on samples \['clip/1', 'third/2'\]"):
        load_data([tmp_path / "follow", tmp_path / "again"])  # the same rows twice


def test_inner_choice_is_measured_on_the_validation_rows(tmp_path: Path) -> None:
    from ivos_rl.agents.distill_cv import choose_knobs

    data = [(f"v{i}", _hand_rows()) for i in range(4)]
    shifted = {**_hand_rows(), "values": _hand_rows()["values"] + np.float32(0.1)}
    val = [(f"v{i}", shifted) for i in range(4)]
    cfg = DistillConfig(state_features=("distance", "round"), epochs=1, hidden=4, decoder_hidden=4,
                        flip=False)
    videos = [s for s, _ in data]
    _, sel = choose_knobs(data, videos, cfg, [{}], [0], inner_folds=2, val_data=val, inner_splits=2)
    # Farthest's gains on the validation rows: (.7 + .1 - .5) and (.8 + .1 - .7) -> mean .25 (data: .15)
    assert sel["chosen"]["inner_farthest"] == pytest.approx(0.25, abs=1e-6)
    vals = [set(split["val"]) for split in sel["inner_splits"]]
    assert len(vals) == 2 and not vals[0] & vals[1] and vals[0] | vals[1] == {"v0", "v1", "v2", "v3"}
    with pytest.raises(ConfigError, match="inner_splits"):
        choose_knobs(data, videos, cfg, [{}], [0], inner_folds=2, inner_splits=3)
    with pytest.raises(ConfigError, match="no validation rows"):
        choose_knobs(data, videos, cfg, [{}], [0], inner_folds=2, val_data=val[:0])


def test_inner_splits_shared_repeat_the_global_folds_own_are_drawn_per_outer_fold() -> None:
    from ivos_rl.agents.distill_cv import inner_fold_splits
    from ivos_rl.data.splits import fold_split, video_folds

    videos = [f"v{i:02d}" for i in range(30)]
    folds = video_folds(videos, 5, seed=0)
    shared, own = {}, {}
    for k in range(5):
        train, test = fold_split(videos, 5, k, seed=0)
        shared[k] = inner_fold_splits(train, 4, 2)  # default "shared": the recipe up to session 8
        own[k] = inner_fold_splits(train, 4, 2, "own")
        for splits in (shared[k], own[k]):
            vals = [set(v) for _, v in splits]
            assert len(vals[0]) == len(vals[1]) == 6 and not vals[0] & vals[1]
            assert not (vals[0] | vals[1]) & set(test)  # never a test video
            assert all(set(t) | set(v) == set(train) and not set(t) & set(v) for t, v in splits)
    # shared: the inner validation folds are global folds, and outer folds 2-4 validate on the same
    # 12 videos (global folds 0 and 1)
    for k in (2, 3, 4):
        assert [v for _, v in shared[k]] == [folds[0], folds[1]]
    # own: no inner validation fold is a global fold, and no two outer folds validate on the same videos
    assert not any(v in folds for k in own for _, v in own[k])
    val_sets = {frozenset(own[k][0][1] + own[k][1][1]) for k in own}
    assert len(val_sets) == 5
    assert own[0] == inner_fold_splits(list(reversed(fold_split(videos, 5, 0)[0])), 4, 2, "own")
    with pytest.raises(ConfigError, match="inner_seed"):
        inner_fold_splits(videos, 4, 2, "global")


def test_data_from_several_folders_joins_disjoint_videos(tmp_path: Path) -> None:
    from ivos_rl.agents.distill_cv import load_data

    for name, seq, quality in (("f0", "clip", "fold0.pt"), ("f1", "other", "fold1.pt")):
        start_folder(tmp_path / name, {"backend": "b1", "quality": quality, "samples": [[seq, 1]]})
        save_rows(rows_path(tmp_path / name, seq, 1), _hand_rows())
    data, meta, planned = load_data([tmp_path / "f0", tmp_path / "f1"])
    assert [s for s, _ in data] == ["clip", "other"] and planned == ["clip", "other"]
    assert meta["quality"] == ["fold0.pt", "fold1.pt"] and meta["backend_fingerprint"] == "b1"
    assert load_data(tmp_path / "f0")[1]["quality"] == "fold0.pt"  # one folder: as before
    start_folder(tmp_path / "dup", {"backend": "b1", "quality": "q", "samples": [["clip", 1]]})
    with pytest.raises(ConfigError, match="overlap"):
        load_data([tmp_path / "f0", tmp_path / "dup"])
    start_folder(tmp_path / "b2", {"backend": "b2", "quality": "q", "samples": [["third", 1]]})
    save_rows(rows_path(tmp_path / "b2", "third", 1), _hand_rows())
    with pytest.raises(ConfigError, match="backend"):
        load_data([tmp_path / "f0", tmp_path / "b2"])


# ----------------------------------------------------------------------------- distillation


def test_build_rows_by_hand() -> None:
    cfg = DistillConfig(state_features=("distance", "entropy", "area_change", "round"), horizon=7)
    rows = build_rows([("clip", _hand_rows())], cfg)
    assert len(rows) == 4  # 2 rounds + their time-reversed copies
    first, flipped = rows[0], rows[1]
    # columns: q, h, distance before/after (/N), entropy, area change, round (0 / 7)
    np.testing.assert_allclose(first.obs[1], [0.5, 0, 1 / 5, 1.0, 0.25, 0.5, 0.0])
    np.testing.assert_allclose(first.gains[[1, 4]], [0.1, 0.2], atol=1e-6)
    assert np.isnan(first.gains[[0, 2, 3]]).all()
    assert (first.expert, first.farthest) == (4, 4)
    # reversed in time: frame 1 becomes frame 3, before/after distances swap
    np.testing.assert_allclose(flipped.obs[3], [0.5, 0, 1.0, 1 / 5, 0.25, 0.5, 0.0])
    assert (flipped.expert, flipped.farthest) == (0, 0)
    second = rows[2]
    assert second.expert == 2 and second.farthest == 2  # annotated {0, 4}: frame 2 is farthest
    assert second.obs[0, -1] == pytest.approx(1 / 7)
    # span-error's pick on q = (.9 .5 .4 .3 .2), annotated {0}: errors .5 .6 .7 .8 on frames 1-4,
    # fusion share j/k before k and j/(j + |j - k|) after it (open end): k=2 .25+.6+.525+.533 = 1.908,
    # k=3 .167+.4+.7+.64 = 1.907, k=1 1.777, k=4 1.75 -> frame 2; reversed: the same sums, frame 2
    assert (first.span, flipped.span) == (2, 2)
    # annotated {0, 4}, q = (.9 .6 .5 .7 .9): k=2 .2+.5+.15 = .85 beats k=1 .833 and k=3 .767
    assert second.span == 2
    score = offline_gain(QNetwork("bilstm", in_features=first.obs.shape[1], hidden=4, decoder_hidden=4),
                         [replace(first, span=3)])
    assert score["gain_span"] == pytest.approx(0.2, abs=1e-6)  # frame 3 untried: nearest tried, frame 4
    score = offline_gain(QNetwork("bilstm", in_features=first.obs.shape[1], hidden=4, decoder_hidden=4),
                         [replace(first, span=2)])
    assert score["gain_span"] == pytest.approx(0.1, abs=1e-6)  # frame 2: nearer to 1 (ties: earlier)


def test_flipped_rows_carry_the_span_columns_of_the_reversed_video() -> None:
    from ivos_rl.state_features import span_columns

    rows = build_rows([("clip", _hand_rows())], DistillConfig(state_features=("span",), horizon=7))
    hand = _hand_rows()
    for r in range(2):
        history = [int(f) for f in hand["history"][r] if f >= 0]
        forward_cols = span_columns(hand["quality"][r], history)
        np.testing.assert_allclose(rows[2 * r].obs[:, 2:], forward_cols, rtol=1e-6)
        reversed_cols = span_columns(hand["quality"][r][::-1], [4 - f for f in history])
        np.testing.assert_allclose(rows[2 * r + 1].obs[:, 2:], reversed_cols, rtol=1e-6)


def _toy_data(n_videos: int = 6, n: int = 12) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Rows where the best frame is the one of lowest quality (not Farthest's), plus noise."""
    data = []
    for v in range(n_videos):
        rng = np.random.default_rng(v)
        rounds = 3
        q = rng.uniform(0.4, 0.9, (rounds, n)).astype(np.float32)
        values = np.full((rounds, n), np.nan, np.float32)
        tried = [0, 3, 6, 9, 11]
        for r in range(rounds):
            worst = int(np.argmin(q[r]))
            cand = sorted(set(tried) | {worst})
            values[r, cand] = 0.5 + 0.02 * rng.random(len(cand))
            values[r, worst] = 0.6
        history = np.array([[0, -1, -1, -1], [0, 5, -1, -1], [0, 5, 8, -1]])
        zeros = np.zeros((rounds, n), np.float32)
        record = lookahead_record(q, history, values, final=0.6, entropy=zeros, area_change=zeros)
        data.append((f"v{v}", record))
    return data


def test_build_rows_refuses_a_feature_the_data_does_not_record() -> None:
    """The lookahead data records entropy and area change, not the quality uncertainty."""
    cfg = DistillConfig(state_features=("uncertainty", "entropy"), horizon=7)
    with pytest.raises(InputValidationError, match="uncertainty"):
        build_rows([("clip", _hand_rows())], cfg)


def test_output_groups_are_the_columns_from_output_computes() -> None:
    groups = ("uncertainty", "entropy", "area_change", "disagreement")
    assert StateFeatures.parse("all").output_groups == groups
    assert StateFeatures.parse(["round", "area_change", "distance"]).output_groups == ("area_change",)
    assert StateFeatures.parse(None).output_groups == ()


def test_fit_learns_the_oracle_and_is_deterministic() -> None:
    cfg = DistillConfig(state_features=FEATURES, epochs=60, hidden=16, decoder_hidden=16, lr=3e-3)
    data = _toy_data()
    train, val = build_rows(data[:5], cfg), build_rows(data[5:], cfg, flip=False)
    qnet, curve = fit(train, cfg, seed=0, validate=val)
    score = offline_gain(qnet, train)
    assert score["gain_oracle"] == pytest.approx(0.1, abs=1e-6)
    assert score["gain_agent"] > score["gain_farthest"] + 0.05  # learned "lowest quality is best"
    assert len(curve) == 60 and "gap" in curve[-1]
    again, _ = fit(train, cfg, seed=0, validate=val)
    for a, b in zip(qnet.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_train_split_writes_loadable_policies(tmp_path: Path) -> None:
    cfg = DistillConfig(state_features=FEATURES, epochs=3, hidden=8, decoder_hidden=8)
    data = _toy_data()
    videos = [s for s, _ in data]
    res = train_split(
        data,
        videos[:5],
        videos[5:],
        cfg,
        [{"demo_weight": 0.0}, {"demo_weight": 1.0}],
        [0, 1],
        inner_folds=2,
        out=tmp_path,
        meta={"backend_fingerprint": "x"},
    )
    assert len(res["policies"]) == 2 and len(res["test_offline"]) == 2
    assert set(res["selection"]["inner_val"]) <= set(videos[:5])  # never the test video
    agent = AgentStrategy.from_checkpoint(res["policies"][0])
    assert agent.features.groups == FEATURES and agent.horizon == 7 and agent.needs_probs
    assert agent.split is not None and agent.split["held_out"] == ["v5"]


# ----------------------------------------------------------------------------- agent with features


def _policy(tmp_path: Path, features: list[str]) -> tuple[Path, QNetwork]:
    torch.manual_seed(0)
    qnet = QNetwork("bilstm", in_features=2 + StateFeatures.parse(features).width, hidden=8, decoder_hidden=8)
    meta = {"state_mode": "both", "state_features": features, "horizon": 3}
    return save_policy(tmp_path / "agent.pt", qnet, meta), qnet


def test_agent_strategy_rebuilds_the_training_observation(tmp_path: Path) -> None:
    path, qnet = _policy(tmp_path, list(FEATURES))
    agent = AgentStrategy.from_checkpoint(path)
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 256, (6, 1, 4, 4)).astype(np.uint8)
    q = rng.uniform(0, 1, 6)
    state = StrategyState(round=2, n_frames=6, history=(1, 4), quality=q, probs=probs)
    features = StateFeatures.parse(list(FEATURES))
    expected = features.extend(
        build_state(q, history_counts([1, 4], 6)),
        [1, 4],
        3,
        features.from_output(probs, labels_from_probs(probs)),
    )
    np.testing.assert_array_equal(agent.observation(state), expected)
    with torch.inference_mode():
        want = qnet(torch.from_numpy(expected).unsqueeze(0))[0].numpy()
    np.testing.assert_allclose(agent.q_values(state), want, rtol=1e-6)
    with pytest.raises(InputValidationError, match="probabilities"):
        agent.select(StrategyState(round=2, n_frames=6, history=(1, 4), quality=q))
    # the recommender, given the file's options, recommends the agent's argmax from the same inputs
    options = policy_state_options(load_policy(path)[1], path)
    assert options == {"state_mode": "both", "state_features": list(FEATURES), "horizon": 3}
    rec = Recommender(_FixedQuality(q), agent=qnet, **options)
    frames = np.zeros((6, 4, 4, 3), np.uint8)
    out = rec.recommend(frames, probs, history=[1, 4])
    assert out.frame == int(np.argmax(want))
    np.testing.assert_allclose(out.q_values, want, rtol=1e-6)


class _FixedQuality:
    def __init__(self, q: np.ndarray) -> None:
        self.q = q

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.q, self.q[:, None]


def test_agent_strategy_refusals(tmp_path: Path) -> None:
    path, qnet = _policy(tmp_path, ["distance"])
    with pytest.raises(ConfigError, match="columns"):
        AgentStrategy(qnet, state_features=["entropy"])  # 3 columns, the network reads 4
    unsure = AgentStrategy(QNetwork("bilstm", hidden=4, decoder_hidden=4, in_features=3),
                           state_features=["uncertainty"])  # read from StrategyState.uncertainty
    assert unsure.features.groups == ("uncertainty",)
    plain = AgentStrategy(QNetwork("bilstm", hidden=4, decoder_hidden=4))
    assert not plain.needs_probs and plain.features.groups == ()
    distance_only = AgentStrategy.from_checkpoint(path)
    assert not distance_only.needs_probs  # no output group: no probabilities needed


@pytest.mark.parametrize("inner_seed", [None, "own"])
def test_distill_script_config_runs_one_fold(tmp_path: Path, inner_seed: str | None) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ivos_rl.agents.distill_cv import inner_fold_splits, offline_table, run

    data = _toy_data(n_videos=6)
    start_folder(tmp_path / "data", {"backend": "b", "quality": "q", "samples": [[s, 1] for s, _ in data]})
    for seq, rows in data:
        save_rows(rows_path(tmp_path / "data", seq, 1), rows)
    GlobalHydra.instance().clear()
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose(
            config_name="distill_agent",
            overrides=[
                f"data_dir={tmp_path / 'data'}",
                f"out_dir={tmp_path / 'out'}",
                "n_folds=3",
                "folds=[1]",
                "inner_folds=2",
                "seeds=[0]",
                "distill.epochs=2",
                "distill.hidden=8",
                "distill.decoder_hidden=8",
            ]
            + ([] if inner_seed is None else [f"inner_seed={inner_seed}"]),
        )
    results = run(cfg)
    fold = results["fold1"]
    assert len(fold["test"]) == 2 and not set(fold["test"]) & set(fold["train"])
    seen = fold["selection"]["inner_seed"]
    assert seen == (inner_seed or "shared")  # the config's default is the recipe up to session 8
    assert fold["selection"]["inner_val"] == inner_fold_splits(fold["train"], 2, 1, seen)[0][1]
    agent = AgentStrategy.from_checkpoint(fold["policies"][0])
    assert agent.split is not None and agent.split["held_out"] == fold["test"]
    assert (tmp_path / "out" / "results-fold1.json").is_file()
    table = offline_table(results)  # one-step gains on the 2 test videos, Farthest to oracle
    assert table.loc["oracle", "gap closed"] == pytest.approx(1.0)
    assert table.loc["farthest", "gap closed"] == pytest.approx(0.0)
    assert int(table.loc["agent", "videos"]) == 2


def test_the_disagreement_group_is_recorded_and_seen_live_from_the_backend_diagnostics(
    dataset: DavisDataset,
) -> None:
    from ivos_rl.backends.propagation import PropagationBackend
    from ivos_rl.state_features import run_disagreement

    seq, idx = dataset.samples()[0]
    sample = load_sample(dataset, seq, idx)
    cfg = LookaheadDataConfig(max_rounds=3, n_grid=3, n_worst=1, explore=0.0)
    backend = PropagationBackend(working_height=None, flow_preset="ultrafast", diagnostics=True)
    engine = RoundEngine(backend, ScribbleRobot(), QualitySource("oracle"))
    rows = record_sample(engine, sample, cfg)
    assert rows["disagreement"].shape == (2, sample.n_frames)
    assert (rows["disagreement"][0] == 0).all()  # one annotated frame: every frame has one run only
    # The engine now holds the last round's output: the agent's view reads the same column from it.
    out = engine.state.output
    assert out is not None and out.diagnostics is not None
    agent = AgentStrategy(QNetwork("bilstm", hidden=4, decoder_hidden=4, in_features=3),
                          state_features=["disagreement"])
    view = engine.view(agent, 3, 4)
    obs = agent.observation(view)
    np.testing.assert_array_equal(obs[:, 2], run_disagreement(out.diagnostics, sample.n_frames))
    # A backend without diagnostics: the agent names what it needs.
    plain = RoundEngine(PropagationBackend(working_height=None, flow_preset="ultrafast"), ScribbleRobot(),
                        QualitySource("oracle"))
    plain.start(sample)
    plain.propagate()
    with pytest.raises(InputValidationError, match="diagnostics"):
        agent.observation(plain.view(agent, 1, 4))
    # Rows without the column cannot train the group.
    no_column = record_sample(RoundEngine(SimulatedBackend(seed=0), ScribbleRobot(), QualitySource("oracle")),
                              sample, cfg)
    with pytest.raises(InputValidationError, match="disagreement"):
        build_rows([(seq, no_column)], DistillConfig(state_features=("disagreement",), horizon=7))
