"""Sample generation: interactive loop on the synthetic dataset with the simulated backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, DatasetError
from ivos_rl.metrics import batched_j_and_f
from ivos_rl.quality.crop import crop_inputs
from ivos_rl.quality.samples import format_histogram, generate_samples, load_samples, read_manifest
from ivos_rl.robot import ScribbleRobot

OPTS = {
    "crop_size": 32,
    "n_rounds": 3,
    "max_initial": 1,
    "frames_per_round": 4,
    "shard_size": 50,
    "progress": False,
}


@pytest.fixture(scope="module")
def generated(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("qgen") / "samples"
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    manifest = generate_samples(ds, SimulatedBackend(seed=0), ScribbleRobot(), out, seed=5, **OPTS)
    return out, manifest


def test_manifest_shards_and_histogram(generated: tuple[Path, dict], synthetic_root: Path) -> None:
    out, manifest = generated
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    s = load_samples(out)
    assert read_manifest(out) == manifest
    assert manifest["n_samples"] == len(s) == sum(sh["n"] for sh in manifest["shards"])
    assert len(manifest["shards"]) == -(-len(s) // 50)  # ceil: shards of at most 50 rows
    # 2 strategies x 1 initial scribble x <= 3 rounds x 4 frames x K objects per sequence
    upper = sum(2 * 3 * 4 * ds.info(q).n_objects for q in ds.sequences)
    assert 0 < len(s) <= upper
    assert sum(manifest["histogram"]["counts"]) == len(s)
    assert len(format_histogram(manifest["histogram"]).splitlines()) == 10
    assert s.rgb.shape == (len(s), 3, 32, 32) and s.rgb.dtype == np.uint8
    assert s.prob.shape == (len(s), 32, 32) and s.prob.dtype == np.uint8
    assert ((s.jf >= 0) & (s.jf <= 1)).all()
    np.testing.assert_allclose(s.jf, 0.5 * (s.j + s.f), atol=1e-6)
    assert set(s.strategy.tolist()) == {"random", "worst"}
    assert set(s.sequence.tolist()) == set(ds.sequences)
    assert manifest["backend"] == "simulated" and manifest["backend_uses_ground_truth"] is True


def test_first_round_samples_match_a_direct_run(generated: tuple[Path, dict], synthetic_root: Path) -> None:
    out, _ = generated
    s = load_samples(out)
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    seq = ds.sequences[0]
    info = ds.info(seq)
    frames, gt = ds.load_frames(seq), ds.load_masks(seq)
    scr = ds.load_scribbles(seq, 1)
    first = next(t for t, st in enumerate(scr["scribbles"]) if any(len(x["path"]) for x in st))
    backend = SimulatedBackend(seed=0)
    backend.reset(frames, info.n_objects, sequence=seq, gt_masks=gt)
    result = backend.interact(first, scr)
    jf = batched_j_and_f(gt, result.masks, nb_objects=info.n_objects, average_over_objects=False)
    rows = np.flatnonzero((s.sequence == seq) & (s.round == 1) & (s.strategy == "random"))
    assert len(rows) == 4 * info.n_objects
    for r in rows:
        t, k = int(s.frame[r]), int(s.object_id[r])
        assert s.jf[r] == pytest.approx(jf[t, k - 1], abs=1e-6)
        rgb, prob, _ = crop_inputs(frames[[t]], result.probs[[t]], 32)
        np.testing.assert_array_equal(s.rgb[r], np.rint(rgb[0, k - 1].numpy() * 255).astype(np.uint8))
        np.testing.assert_array_equal(s.prob[r], np.rint(prob[0, k - 1, 0].numpy() * 255).astype(np.uint8))


def test_generation_is_deterministic_by_seed(
    generated: tuple[Path, dict], synthetic_root: Path, tmp_path: Path
) -> None:
    out, _ = generated
    ds = DavisDataset(synthetic_root, image_set="2017/train", sequences=None)
    again = generate_samples(ds, SimulatedBackend(seed=0), ScribbleRobot(), tmp_path / "a", seed=5, **OPTS)
    a, b = load_samples(out), load_samples(tmp_path / "a")
    assert again["histogram"] == read_manifest(out)["histogram"]
    for name in ("rgb", "prob", "jf", "frame", "object_id", "round", "strategy", "sequence"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    generate_samples(ds, SimulatedBackend(seed=0), ScribbleRobot(), tmp_path / "b", seed=6, **OPTS)
    assert not np.array_equal(load_samples(tmp_path / "b").frame, a.frame)


def test_generation_refuses_bad_options_and_existing_output(
    generated: tuple[Path, dict], synthetic_root: Path
) -> None:
    out, _ = generated
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    with pytest.raises(ConfigError, match="already holds"):
        generate_samples(ds, SimulatedBackend(), ScribbleRobot(), out, **OPTS)
    with pytest.raises(ConfigError, match="strategies"):
        generate_samples(ds, SimulatedBackend(), ScribbleRobot(), out.parent / "x", strategies=["best"])
    with pytest.raises(ConfigError, match="n_rounds"):
        generate_samples(ds, SimulatedBackend(), ScribbleRobot(), out.parent / "x", n_rounds=0)


def test_initial_indices_select_scribbles(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, image_set="2017/train", sequences=None)
    seq = ds.sequences[0]
    opts = {**OPTS, "n_rounds": 1, "max_initial": None, "strategies": ["random"]}
    generate_samples(
        ds, SimulatedBackend(), ScribbleRobot(), tmp_path / "i2", initial_indices=[2], sequences=[seq], **opts
    )
    s = load_samples(tmp_path / "i2")
    assert set(s.init.tolist()) == {2} and len(s) == 4 * ds.info(seq).n_objects
    with pytest.raises(DatasetError, match=r"no initial scribble \[9\]"):
        generate_samples(
            ds, SimulatedBackend(), ScribbleRobot(), tmp_path / "i9", initial_indices=[9], **opts
        )
    with pytest.raises(ConfigError, match="initial_indices"):
        generate_samples(
            ds, SimulatedBackend(), ScribbleRobot(), tmp_path / "i0", initial_indices=[0], **opts
        )


def test_robot_start_without_strokes_is_skipped_and_recorded(tiny_root: Path, tmp_path: Path) -> None:
    # sequence "b" (no scribble files) has a single-pixel object: the robot's error opening removes
    # it, so no initial scribble exists; the start is skipped and listed in the manifest.
    ds = DavisDataset(tiny_root, sequences=["b"])
    assert ds.scribble_indices("b") == []
    manifest = generate_samples(ds, SimulatedBackend(), ScribbleRobot(), tmp_path / "b", **OPTS)
    assert manifest["initial_skipped"] == [["b", 1]] and manifest["n_samples"] == 0
