"""Quality-net training on tiny hand-made samples: learning, split by sequence, exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ivos_rl.data.splits import split_sequences
from ivos_rl.errors import CheckpointError, ConfigError, CorruptFileError, MissingDataError
from ivos_rl.quality.assessment import assess_quality, mse, pearson, quality_metrics
from ivos_rl.quality.checkpoint import export_half, load_checkpoint
from ivos_rl.quality.estimator import QualityEstimator
from ivos_rl.quality.samples import SampleWriter, load_samples
from ivos_rl.quality.train import Augment, lr_factor, split_samples, train

SIZE = 32


def _rows(seq: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Crops of a bright square (the object) and a probability map of the same square shifted by
    (dy, dx); the target is the IoU of the two squares, (s-|dy|)(s-|dx|) / (2 s² - overlap)."""
    s = 12
    rgb = rng.integers(0, 60, (n, 3, SIZE, SIZE), dtype=np.uint8)
    prob = np.zeros((n, SIZE, SIZE), np.uint8)
    jf = np.zeros(n, np.float32)
    for i in range(n):
        y, x = 10, 10
        rgb[i, :, y : y + s, x : x + s] = 220
        dy, dx = rng.integers(-2, 3, 2) if i % 4 else rng.integers(-8, 9, 2)
        prob[i, y + dy : y + dy + s, x + dx : x + dx + s] = 255
        inter = max(0, s - abs(dy)) * max(0, s - abs(dx))
        jf[i] = inter / (2 * s * s - inter)
    return {
        "rgb": rgb,
        "prob": prob,
        "jf": jf,
        "j": jf,
        "f": jf,
        "sequence": np.full(n, seq),
        "frame": np.arange(n, dtype=np.int32),
        "object_id": np.ones(n, np.int16),
        "round": np.ones(n, np.int16),
        "strategy": np.full(n, "random"),
        "init": np.ones(n, np.int16),
        "box": np.zeros((n, 4), np.float32),
    }


def _write(folder: Path, seqs: list[str], n: int, seed: int = 0, backend: str = "toy") -> Path:
    rng = np.random.default_rng(seed)
    writer = SampleWriter(folder, crop_size=SIZE, shard_size=50)
    for seq in seqs:
        writer.add(_rows(seq, n, rng))
    writer.finish(backend=backend, enlarge=1.5, threshold=0.5)
    return folder


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("qsamples"), ["a", "b", "c", "d"], 24)


def _cfg(samples_dir: Path, out: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "seed": 3,
        "data": {"dirs": [str(samples_dir)], "val_sequences": ["d"], "val_fraction": 0.2},
        "quality": {"backbone": "mobilenet_v3_small", "input_size": SIZE, "stem": "separate"},
        "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"name": "cosine", "warmup_steps": 2, "min_ratio": 0.1},
        "augment": {"hflip": 0.5, "brightness": 0.1, "contrast": 0.1},
        "batch_size": 16,
        "epochs": 3,
        "max_steps": None,
        "log_every": 2,
        "tensorboard": True,
        "resume": None,
        "output_dir": str(out),
    }
    for key, value in over.items():
        cfg[key] = value
    return cfg


def test_samples_round_trip_and_split(samples_dir: Path) -> None:
    s = load_samples(samples_dir)
    assert len(s) == 96 and s.crop_size == SIZE
    assert set(s.backend.tolist()) == {"toy"}
    train_set, val_set, split = split_samples(s, ["d"])
    assert split == {"train": ["a", "b", "c"], "held_out": ["d"], "seed": None}
    assert len(val_set) == 24 and len(train_set) == 72
    assert not set(train_set.sequence.tolist()) & set(val_set.sequence.tolist())
    # a fraction holds out round(0.5 * 4) = 2 videos, chosen by the one split function of every trainer
    _, drawn_set, drawn = split_samples(s, None, 0.5, seed=1)
    assert (drawn["train"], drawn["held_out"]) == split_sequences(["a", "b", "c", "d"], 2, seed=1)
    assert drawn["seed"] == 1 and sorted(set(drawn_set.sequence.tolist())) == drawn["held_out"]
    with pytest.raises(ConfigError, match="zz"):
        split_samples(s, ["zz"])
    rgb, prob, target = s.tensors(np.array([0, 1]), input_size=48)
    assert rgb.shape == (2, 3, 48, 48) and prob.shape == (2, 1, 48, 48) and target.shape == (2,)


def test_bad_sample_folders(tmp_path: Path, samples_dir: Path) -> None:
    with pytest.raises(MissingDataError, match="manifest"):
        load_samples(tmp_path / "nothing")
    broken = _write(tmp_path / "broken", ["a"], 10)
    (broken / "shard_00000.npz").write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match="shard_00000"):
        load_samples(broken)
    with pytest.raises(ConfigError, match="already holds"):
        SampleWriter(samples_dir, crop_size=SIZE)


def test_metrics_by_hand() -> None:
    assert mse([0.0, 1.0], [0.5, 0.5]) == pytest.approx(0.25)
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert np.isnan(pearson([1.0, 1.0], [0.0, 1.0]))
    m = quality_metrics(np.array([0.2, 0.4]), np.array([0.0, 0.4]))
    assert m["mse"] == pytest.approx(0.02) and m["mae"] == pytest.approx(0.1) and m["n"] == 2


def test_augmentation_moves_rgb_and_prob_together() -> None:
    rgb = torch.zeros(64, 3, 16, 16)
    prob = torch.zeros(64, 1, 16, 16)
    rgb[:, :, 2:5, 3:9] = 1.0  # an asymmetric bar, in both inputs
    prob[:, :, 2:5, 3:9] = 1.0
    aug = Augment(hflip=0.5, vflip=0.5, rot90=True, brightness=0.0, contrast=0.0)
    out_rgb, out_prob = aug(rgb, prob, torch.Generator().manual_seed(0))
    assert torch.equal(out_rgb[:, :1], out_prob)  # same geometry applied to both
    assert out_prob.sum() == prob.sum()  # flips and rotations keep every pixel
    assert len({tuple(p.nonzero()[0].tolist()) for p in out_prob}) > 4  # several distinct poses
    again, _ = aug(rgb, prob, torch.Generator().manual_seed(0))
    assert torch.equal(again, out_rgb)  # deterministic by generator

    photo = Augment(hflip=0.0, brightness=0.2, contrast=0.2, saturation=0.5, gray=0.5)
    p_rgb, p_prob = photo(torch.rand(32, 3, 8, 8), prob[:32, :, :8, :8], torch.Generator().manual_seed(1))
    assert torch.equal(p_prob, prob[:32, :, :8, :8])  # photometric ops never touch the probability map
    assert float(p_rgb.min()) >= 0.0 and float(p_rgb.max()) <= 1.0

    zoom = Augment(hflip=0.0, brightness=0.0, contrast=0.0, zoom=0.3)
    z_rgb, z_prob = zoom(rgb, prob, torch.Generator().manual_seed(2))
    assert z_rgb.shape == rgb.shape and z_prob.shape == prob.shape
    assert torch.allclose(z_rgb[:, :1], z_prob, atol=1e-6)


def test_lr_schedule() -> None:
    assert lr_factor(0, 100, "cosine", 10, 0.0) == pytest.approx(0.1)
    assert lr_factor(10, 100, "cosine", 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, "cosine", 10, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine", 10, 0.2) == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="schedule"):
        lr_factor(50, 100, "linear", 0, 0.0)


def test_training_reduces_validation_mse(samples_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    # ResNet-18 here: MobileNetV3's BN momentum (0.01) needs more steps than a test can afford
    # before its eval-mode statistics are meaningful.
    cfg = _cfg(samples_dir, tmp_path / "run", epochs=6, batch_size=8)
    cfg["quality"]["backbone"] = "resnet18"
    cfg["optimizer"]["lr"] = 5e-4
    result = train(cfg)
    assert result["n_train"] == 72 and result["n_val"] == 24 and result["val_sequences"] == ["d"]
    assert result["steps"] == 6 * (72 // 8)
    assert result["val_mse"] < 0.5 * result["initial_val_mse"]
    assert result["val_pcc"] > 0.5
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["epoch"] == 6 and payload["step"] == result["steps"]
    assert payload["optimizer"] is not None and payload["rng"] is not None
    assert [h["epoch"] for h in payload["metrics"]["history"]] == [1, 2, 3, 4, 5, 6]
    # the split travels with the weights (and survives the float16 export) for Wild leak checks
    assert payload["split"] == {"train": ["a", "b", "c"], "held_out": ["d"], "seed": None}
    export_half(tmp_path / "run" / "last.pt", tmp_path / "half.pt")
    estimator = QualityEstimator.from_checkpoint(tmp_path / "half.pt")
    assert estimator.split == payload["split"] and estimator.checkpoint_path == tmp_path / "half.pt"
    # evaluation entry point on the same folder, restricted to the held-out sequence
    ev = assess_quality(
        {
            "checkpoint": str(tmp_path / "run" / "last.pt"),
            "samples": [str(samples_dir)],
            "sequences": ["d"],
            "output": str(tmp_path / "eval.json"),
        }
    )
    assert ev["all"]["n"] == 24 and ev["all"]["mse"] == pytest.approx(result["val_mse"], rel=1e-5)
    assert ev["backend/toy"]["n"] == 24 and (tmp_path / "eval.json").is_file()


def test_resume_gives_the_same_weights(samples_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    n = 10  # 4 steps per epoch: interrupted mid-epoch 1, resumed across two epoch boundaries
    train(_cfg(samples_dir, tmp_path / "full", max_steps=n, tensorboard=False))
    train(_cfg(samples_dir, tmp_path / "part", max_steps=3, tensorboard=False))
    first = load_checkpoint(tmp_path / "part" / "last.pt")
    assert first["step"] == 3 and first["epoch"] == 0
    # a new call builds new model/optimizer objects and continues from the file
    train(_cfg(samples_dir, tmp_path / "part", max_steps=n, tensorboard=False, resume="auto"))
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    resumed = load_checkpoint(tmp_path / "part" / "last.pt")
    assert full["step"] == resumed["step"] == n
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for key, st in full["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg"], resumed["optimizer"]["state"][key]["exp_avg"])


def test_bad_resume_and_config(samples_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        train(_cfg(samples_dir, tmp_path / "r", resume=str(tmp_path / "nope.pt"), tensorboard=False))
    with pytest.raises(ConfigError, match="batch_size"):
        train(_cfg(samples_dir, tmp_path / "r", batch_size=500, tensorboard=False))
    train(_cfg(samples_dir, tmp_path / "one", max_steps=1, tensorboard=False))
    with pytest.raises(CheckpointError, match="batch_size"):
        train(_cfg(samples_dir, tmp_path / "one", batch_size=8, resume="auto", tensorboard=False))
    bad_geo = dict(_cfg(samples_dir, tmp_path / "r", tensorboard=False))
    bad_geo["quality"] = {"backbone": "mobilenet_v3_small", "input_size": SIZE, "enlarge": 2.0}
    with pytest.raises(ConfigError, match="enlarge"):
        train(bad_geo)
