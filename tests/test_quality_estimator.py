"""QualityEstimator (batched inference + change cache)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.errors import CheckpointError, InputValidationError
from ivos_rl.quality.checkpoint import save_checkpoint
from ivos_rl.quality.estimator import QualityEstimator
from ivos_rl.quality.model import QualityNet


def _video(t: int = 5, k: int = 2, h: int = 24, w: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    probs = np.zeros((t, k, h, w), np.uint8)
    for i in range(t):
        for j in range(k):
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
            probs[i, j, y : y + 8, x : x + 8] = rng.integers(128, 256)
    return frames, probs


class _Counter:
    """Counts the crops the network actually sees (a forward hook, independent of n_scored)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        model.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        self.rows += int(args[0].shape[0])


@pytest.fixture(scope="module")
def model() -> QualityNet:
    torch.manual_seed(0)
    net = QualityNet(backbone="mobilenet_v3_small", input_size=32)
    # Calibrate the BN statistics on random crops (cumulative average), so the untrained net's
    # outputs differ between inputs (default BN stats shrink every activation towards 0).
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.rand(8, 3, 32, 32), torch.rand(8, 1, 32, 32))
    return net.eval()


def test_predict_shapes_range_and_mean_over_objects(model: QualityNet) -> None:
    frames, probs = _video()
    q, qk = QualityEstimator(model, cache=False).predict(frames, probs)
    assert q.shape == (5,) and qk.shape == (5, 2)
    assert q.dtype == np.float32 and qk.dtype == np.float32
    assert ((qk >= 0) & (qk <= 1)).all()
    np.testing.assert_allclose(q, qk.mean(axis=1), rtol=1e-6)
    assert np.ptp(qk) > 0  # different crops, different scores


def test_batch_size_and_prob_dtype_do_not_change_results(model: QualityNet) -> None:
    frames, probs = _video()
    _, ref = QualityEstimator(model, batch_size=64, cache=False).predict(frames, probs)
    _, small = QualityEstimator(model, batch_size=3, cache=False).predict(frames, probs)
    np.testing.assert_allclose(small, ref, atol=1e-5)
    _, as_float = QualityEstimator(model, cache=False).predict(frames, probs.astype(np.float32) / 255.0)
    np.testing.assert_allclose(as_float, ref, atol=1e-5)


def test_cache_rescores_only_changed_frames(model: QualityNet) -> None:
    frames, probs = _video(t=6, k=2)
    probs2 = probs.copy()
    probs2[2, 1] = 0  # object 2 of frame 2 lost its mask
    probs2[4, 0, :4, :4] = 255  # object 1 of frame 4 grew
    _, fresh = QualityEstimator(model, cache=False).predict(frames, probs2)  # before counting starts
    est = QualityEstimator(model, batch_size=4)
    counter = _Counter(est.model)
    _, qk0 = est.predict(frames, probs)
    assert counter.rows == 12 and est.n_scored == 12

    _, qk1 = est.predict(frames.copy(), probs.copy())  # identical content, new arrays
    assert counter.rows == 12
    np.testing.assert_array_equal(qk1, qk0)

    _, qk2 = est.predict(frames, probs2)
    assert counter.rows == 14  # exactly the two changed (frame, object) pairs
    np.testing.assert_allclose(qk2, fresh, atol=1e-6)
    unchanged = np.ones((6, 2), bool)
    unchanged[2, 1] = unchanged[4, 0] = False
    np.testing.assert_array_equal(qk2[unchanged], qk0[unchanged])

    frames3 = frames.copy()
    frames3[5, 0, 0] += 1  # one pixel of frame 5 -> both of its objects are rescored
    est.predict(frames3, probs2)
    assert counter.rows == 16

    est.predict(frames3[:4], probs2[:4])  # another video: everything is rescored
    assert counter.rows == 24
    est.reset_cache()
    est.predict(frames3[:4], probs2[:4])
    assert counter.rows == 32


def test_from_checkpoint_and_missing_checkpoint(model: QualityNet, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "q.pt", model)
    frames, probs = _video()
    _, ref = QualityEstimator(model, cache=False).predict(frames, probs)
    _, got = QualityEstimator.from_checkpoint(path, cache=False).predict(frames, probs)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    with pytest.raises(CheckpointError, match="does not exist"):
        QualityEstimator.from_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="expected backbone 'resnet18'"):
        QualityEstimator.from_checkpoint(path, backbone="resnet18")


def test_estimator_rejects_bad_inputs(model: QualityNet) -> None:
    est = QualityEstimator(model)
    frames, probs = _video()
    with pytest.raises(InputValidationError, match="differ"):
        est.predict(frames[:, :20], probs)
    bad = probs.astype(np.float32)  # uint8 values as floats: outside [0, 1]
    with pytest.raises(InputValidationError, match=r"\[0, 1\]"):
        est.predict(frames, bad)
    nan = probs.astype(np.float32) / 255.0
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(InputValidationError, match="NaN"):
        est.predict(frames, nan)
    with pytest.raises(InputValidationError, match="batch_size"):
        QualityEstimator(model, batch_size=0)


SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "quality"


@pytest.mark.skipif(not list(SHIPPED.glob("*.pt")), reason="no shipped quality checkpoint")
def test_shipped_checkpoint_ranks_masks_sensibly(davis_excerpt_root: Path) -> None:
    """The shipped net scores the true mask above a 25-px shifted copy and far above no mask."""
    from ivos_rl.data import DavisDataset

    ds = DavisDataset(davis_excerpt_root, "240p", image_set="2016/train")
    for path in sorted(p for p in SHIPPED.glob("*.pt") if not p.name.endswith(".features.pt")):
        est = QualityEstimator.from_checkpoint(path, cache=False)
        for seq in ds.sequences:
            frames, gt = ds.load_frames(seq), ds.load_masks(seq)
            true = ((gt == 1) * 255).astype(np.uint8)[:, None]
            kw = {"history": [0]} if est.needs_history else {}  # a fusion net's signals need the history
            q_true, _ = est.predict(frames, true, **kw)
            q_shift, _ = est.predict(frames, np.roll(true, 25, axis=-1), **kw)
            q_empty, _ = est.predict(frames, np.zeros_like(true), **kw)
            assert q_true.mean() > q_shift.mean(), (path.name, seq)
            assert q_true.mean() > q_empty.mean() + 0.2, (path.name, seq)


MOBILENET = SHIPPED / "mobilenet_v3_small-128-davis2016-propagation.pt"


@pytest.mark.skipif(not MOBILENET.is_file(), reason="no shipped MobileNet quality net")
def test_shipped_mobilenet_matches_the_default_backend_and_warns_once_on_another() -> None:
    """The shipped MobileNet (the default Wild net until session 11) learned the default propagation
    backend's masks (issue 14): no warning with it, one warning naming both with another version; it
    is the all-videos fit (issue 15)."""
    est = QualityEstimator.from_checkpoint(MOBILENET)
    current = backend_fingerprint(PropagationBackend())
    other = current.replace('"version": "2"', '"version": "0-test"')
    assert other != current
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert est.check_backend(current)
        assert est.check_backend(backend_fingerprint(PropagationBackend(flow_cache_dir="/tmp/x")))
        assert not est.check_backend(other)
        assert not est.check_backend(other)
    msgs = [str(w.message) for w in caught]
    assert est.backends is not None and len(est.backends) == 1 and '"version": "2"' in est.backends[0]
    assert len(msgs) == 1 and est.backends[0] in msgs[0] and other in msgs[0] and MOBILENET.name in msgs[0]
    assert est.split is not None and len(est.split["train"]) == 30 and est.split["held_out"] == []
