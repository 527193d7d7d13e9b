"""SAM2 adapter: configuration errors without the package, and a tiny random-weight run (slow)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.backends import Sam2Backend, check_backend, sam2_available
from ivos_rl.errors import BackendError, CheckpointError, ConfigError

needs_sam2 = pytest.mark.skipif(not sam2_available(), reason="optional extra `sam2` not installed")


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nothere\.pt"):
        Sam2Backend(ckpt_path=tmp_path / "nothere.pt")


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="prompt"):
        Sam2Backend(ckpt_path=None, prompt="boxes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_negative"):
        Sam2Backend(ckpt_path=None, n_negative=-1)
    with pytest.raises(ConfigError, match="image_size"):
        Sam2Backend(ckpt_path=None, image_size=100)


def test_without_the_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sam2.sam2_video_predictor", None)  # import now raises ImportError
    with pytest.raises(BackendError, match=r"pip install ivos-rl\[sam2\]"):
        Sam2Backend(ckpt_path=None)


@needs_sam2
def test_unknown_model_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"no_such\.yaml"):
        Sam2Backend(ckpt_path=None, model_cfg="configs/no_such.yaml")


@needs_sam2
def test_corrupt_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        Sam2Backend(ckpt_path=bad, image_size=128)


T, H, W = 3, 48, 64


def clip() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 100, size=(1, H, W, 3), dtype=np.uint8), T, axis=0)
    gt = np.zeros((T, H, W), np.uint8)
    for i in range(T):
        gt[i, 10:30, 8 + 2 * i : 26 + 2 * i] = 1
        gt[i, 32:44, 40:56] = 2
    frames[gt == 1] = (220, 40, 40)
    frames[gt == 2] = (40, 200, 40)
    return frames, gt


def rounds() -> list[tuple[int, dict[str, Any]]]:
    def s(obj: int, pts: list[tuple[int, int]]) -> dict[str, Any]:
        return {"path": [[x / (W - 1), y / (H - 1)] for x, y in pts], "object_id": obj}

    first = [s(1, [(12, 15), (20, 25)]), s(0, [(2, 2), (60, 4)])]
    second = [s(2, [(44, 36), (52, 40)]), s(1, [(14, 20), (24, 20)])]
    return [
        (0, {"scribbles": [first, [], []], "sequence": "c"}),
        (2, {"scribbles": [[], [], second], "sequence": "c"}),
    ]


@pytest.mark.slow
@needs_sam2
@pytest.mark.parametrize("prompt", ["points", "mask"])
def test_random_weight_tiny_model_runs_and_passes_the_check(prompt: str) -> None:
    frames, gt = clip()
    backend = Sam2Backend(ckpt_path=None, device="cpu", prompt=prompt, image_size=256, n_positive=4)
    outs = check_backend(backend, frames, gt, 2, interactions=rounds())
    assert outs[0].probs.shape == (T, 2, H, W)
    # object 2 has no positive stroke in round 1: untracked, probability 0 everywhere
    assert outs[0].probs[:, 1].max() == 0
    assert backend._registered == {1, 2}  # both objects prompted after round 2
    # the round-1 prompts of object 1 are points along its stroke plus negatives from the background
    state = backend._state
    assert state is not None
    if prompt == "points":
        pts = state["point_inputs_per_obj"][0][0]
        labels = pts["point_labels"][0].tolist()
        assert labels == [1] * 4 + [0] * 8
    else:
        assert 0 in state["mask_inputs_per_obj"][0]


@needs_sam2
def test_building_leaves_hydra_global_state_alone(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    Sam2Backend(ckpt_path=None, image_size=128)
    assert not GlobalHydra.instance().is_initialized()
    (tmp_path / "app.yaml").write_text("x: 1\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):  # would fail if sam2 held it
        assert compose(config_name="app").x == 1
