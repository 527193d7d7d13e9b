"""Random-policy baseline: fits by hand, cache round trip, refusal of stale caches, determinism."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data.davis import DavisDataset
from ivos_rl.envs import FrameRecommendationEnv, RandomBaseline, build_random_baseline, fit_t
from ivos_rl.errors import CheckpointError, ConfigError, CorruptFileError


def test_sample_mode_matches_hand_computation() -> None:
    fit = fit_t([0.5, 0.6, 0.7], sigma_mode="sample")
    assert fit.mu == pytest.approx(0.6) and fit.sigma == pytest.approx(0.1)  # ddof = 1
    assert not fit.clamped and fit.n == 3


def test_t_fit_modes() -> None:
    values = np.random.default_rng(0).normal(0.7, 0.05, size=200)
    fit = fit_t(values, "t_scale")
    assert fit.mu == fit.loc and fit.sigma == fit.scale
    assert fit.loc == pytest.approx(values.mean(), abs=0.01)
    assert fit.scale == pytest.approx(0.05, rel=0.25)
    std = fit_t(values, "t_std")
    assert std.sigma == pytest.approx(fit.scale * math.sqrt(fit.df / (fit.df - 2)))


def test_degenerate_values_are_clamped() -> None:
    fit = fit_t([0.8] * 30, min_sigma=0.02)
    assert fit.mu == pytest.approx(0.8) and fit.sigma == 0.02 and fit.clamped
    with pytest.raises(ConfigError, match="sigma_mode"):
        fit_t([0.1, 0.2], sigma_mode="mad")  # type: ignore[arg-type]


def _tiny(values: list[float]) -> RandomBaseline:
    runs = {m: [values, [v + 0.1 for v in values]] for m in ("J", "F", "J_AND_F")}
    return RandomBaseline({"seq|1|0": runs}, horizon=2, sigma_mode="sample", meta={"backend": "sim"})


def test_lookup_and_errors() -> None:
    bl = _tiny([0.5, 0.6, 0.7])
    assert bl.stats("seq", 1, 0, 1, "J") == pytest.approx((0.6, 0.1))
    assert bl.stats("seq", 1, 0, 2, "J_AND_F") == pytest.approx((0.7, 0.1))
    with pytest.raises(ConfigError, match="start=3"):
        bl.stats("seq", 1, 3, 1, "J")
    with pytest.raises(ConfigError, match=r"horizons 1\.\.2"):
        bl.stats("seq", 1, 0, 3, "J")
    with pytest.raises(ConfigError, match="metric"):
        bl.stats("seq", 1, 0, 1, "IoU")
    runs = {m: [[0.5, 0.6, 0.7]] for m in ("J", "F", "J_AND_F")}
    only_j = RandomBaseline({"seq|1|0": runs}, horizon=1, sigma_mode="sample", fit_metrics=["J"])
    assert only_j.stats("seq", 1, 0, 1, "J") == pytest.approx((0.6, 0.1))
    with pytest.raises(ConfigError, match="no fit for metric 'F'"):
        only_j.stats("seq", 1, 0, 1, "F")


def test_cache_round_trip_and_stale_cache(tmp_path: Path) -> None:
    path = _tiny([0.5, 0.6, 0.7]).save(tmp_path / "bl.json")
    assert [p.name for p in tmp_path.iterdir()] == ["bl.json"]  # atomic write leaves no temp file
    loaded = RandomBaseline.load(path, expected_meta={"backend": "sim"})
    assert loaded.stats("seq", 1, 0, 2, "F") == pytest.approx((0.7, 0.1))
    with pytest.raises(CheckpointError, match="backend: cached 'sim' vs requested 'propagation'"):
        RandomBaseline.load(path, expected_meta={"backend": "propagation"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CorruptFileError, match=r"bad\.json"):
        RandomBaseline.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something"}))
    with pytest.raises(CheckpointError, match="not a random baseline"):
        RandomBaseline.load(other)
    with pytest.raises(CheckpointError, match="not found"):
        RandomBaseline.load(tmp_path / "missing.json")


def test_build_is_deterministic_and_covers_every_horizon(synthetic_root: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p", image_set="2017/train")

    def build(seed: int) -> RandomBaseline:
        env = FrameRecommendationEnv(
            ds, SimulatedBackend(seed=0), interaction="fast", reward={"use_goal": False},
            horizon=2, subsequence_length=8, transition_cache=2000,
        )
        return build_random_baseline(env, n_episodes=30, seed=seed, samples=ds.samples()[:1], progress=False)

    a, b, c = build(0), build(0), build(1)
    assert a.values == b.values and a.values != c.values
    (key, runs), = a.values.items()
    assert len(runs["J_AND_F"]) == 2 and all(len(r) == 30 for r in runs["J_AND_F"])
    # every stored P is a mean J&F in [0, 1] and J&F is the mean of J and F run by run
    jf, j, f = (np.array(runs[m]) for m in ("J_AND_F", "J", "F"))
    np.testing.assert_allclose(jf, (j + f) / 2, atol=1e-12)
    seq, idx, start = key.split("|")
    mu, sigma = a.stats(seq, int(idx), int(start), 2, "J_AND_F")
    assert 0.0 < mu <= 1.0 and sigma >= 0.01


def test_too_few_episodes(synthetic_root: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p", image_set="2017/train")
    env = FrameRecommendationEnv(ds, SimulatedBackend(), interaction="fast", reward={"use_goal": False},
                                 horizon=1, subsequence_length=8)
    with pytest.raises(ConfigError, match=">= 30"):
        build_random_baseline(env, n_episodes=5, progress=False)


def test_baseline_setup_ignores_speed_only_cache_settings_at_any_depth() -> None:
    from ivos_rl.envs.factory import _without_cache_settings

    plain = {"_target_": "B", "flow_cache_size": 2,
             "prop": {"warp_cache": 1, "warp_cache_mb": 256.0, "span_power": 1.0}}
    other = {"_target_": "B", "flow_cache_dir": "x", "prop": {"warp_cache": 0, "span_power": 1.0}}
    want = {"_target_": "B", "prop": {"span_power": 1.0}}
    assert _without_cache_settings(plain) == _without_cache_settings(other) == want
    changed = {"_target_": "B", "prop": {"warp_cache": 0, "span_power": 2.0}}  # an output knob still counts
    assert _without_cache_settings(changed) != _without_cache_settings(plain)


def test_baselines_of_disjoint_samples_merge_into_the_baseline_of_their_union(synthetic_root: Path) -> None:
    """Each entry is seeded by its own sample, so cross-validation folds can share one cache exactly."""
    ds = DavisDataset(synthetic_root, resolution="480p", image_set="2017/train")
    env = FrameRecommendationEnv(
        ds, SimulatedBackend(seed=0), interaction="fast", reward={"use_goal": False},
        horizon=2, subsequence_length=8, transition_cache=2000,
    )
    first, second = ds.samples()[:1], ds.samples()[1:2]

    def build(samples: list[tuple[str, int]]) -> RandomBaseline:
        meta = {"backend": "sim", "samples": [[s, i] for s, i in samples]}
        return build_random_baseline(env, n_episodes=30, samples=samples, meta=meta, progress=False)

    union, a, b = build(first + second), build(first), build(second)
    merged = a.merged(b)
    assert merged.values == union.values and merged.fits == union.fits
    assert merged.samples == first + second and merged.meta == union.meta
    assert a.missing(first + second) == second and merged.missing(first + second) == []
    with pytest.raises(ConfigError, match="different setups"):
        a.merged(RandomBaseline(b.values, b.horizon, b.sigma_mode, b.min_sigma, {**b.meta, "backend": "x"}))


def test_a_cache_may_hold_more_samples_than_asked_for_but_not_fewer(tmp_path: Path) -> None:
    runs = {m: [[0.5, 0.6, 0.7]] for m in ("J", "F", "J_AND_F")}
    two = {"backend": "sim", "samples": [["a", 1], ["b", 1]]}
    path = RandomBaseline({"a|1|0": runs, "b|1|0": runs}, 1, "sample", meta=two).save(tmp_path / "bl.json")
    sub = RandomBaseline.load(path, expected_meta={"backend": "sim", "samples": [["b", 1]]})
    assert sub.stats("b", 1, 0, 1, "J") == pytest.approx((0.6, 0.1))
    more = {"backend": "sim", "samples": [["a", 1], ["c", 2]]}
    with pytest.raises(CheckpointError, match=r"lacks 1 of the requested samples \(e\.g\. \[\('c', 2\)\]\)"):
        RandomBaseline.load(path, expected_meta=more)
    partial = RandomBaseline.load(path, expected_meta=more, partial=True)
    assert partial.missing(more["samples"]) == [("c", 2)]
    with pytest.raises(CheckpointError, match="backend: cached 'sim' vs requested 'x'"):
        RandomBaseline.load(path, expected_meta={"backend": "x", "samples": [["a", 1]]}, partial=True)
