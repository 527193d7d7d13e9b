"""QualityNet outputs, ImageNet-weight loading and checkpoint round trips / bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.quality.checkpoint import export_half, load_checkpoint, load_model, load_weights, save_checkpoint
from ivos_rl.quality.model import QualityNet, QualityNetConfig


def _inputs(n: int = 3, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.rand(n, 1, size, size, generator=g)


@pytest.mark.parametrize(
    ("backbone", "stem"),
    [
        ("mobilenet_v3_small", "separate"),
        ("resnet18", "separate"),
        ("resnet18", "concat"),
        ("resnet50", "separate"),
    ],
)
def test_output_shape_and_range(backbone: str, stem: str) -> None:
    torch.manual_seed(0)
    model = QualityNet(backbone=backbone, input_size=32, stem=stem).eval()
    rgb, prob = _inputs()
    with torch.inference_mode():
        q = model(rgb, prob)
    assert q.shape == (3,)
    assert bool(((q >= 0) & (q <= 1)).all())
    # the probability map is an input, not decoration: the quality has a gradient w.r.t. it
    # (train mode: an untrained net in eval mode has BN statistics that shrink activations to ~0)
    model.train()
    prob.requires_grad_(True)
    model(rgb, prob).sum().backward()
    assert prob.grad is not None and float(prob.grad.abs().sum()) > 0


def test_resnet50_head_is_2048_to_1() -> None:
    model = QualityNet(backbone="resnet50", input_size=32)
    assert (model.head.in_features, model.head.out_features) == (2048, 1)
    assert model.prob_stem is not None and model.prob_stem.out_channels == model.backbone.conv1.out_channels


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="vgg16"):
        QualityNet(backbone="vgg16")
    with pytest.raises(ConfigError, match="stem"):
        QualityNet(stem="sum")
    with pytest.raises(ConfigError, match="input_size"):
        QualityNetConfig(input_size=8)
    with pytest.raises(ConfigError, match="unknown"):
        QualityNetConfig.from_dict({"backbone": "resnet18", "depth": 3})


def test_imagenet_weights_are_loaded_from_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(123)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(ref.state_dict(), path)
    torch.manual_seed(7)  # a different init, so equality can only come from the file
    model = QualityNet(backbone="resnet18", input_size=32, imagenet_weights_path=path)
    assert torch.equal(model.backbone.conv1.weight, ref.conv1.weight)
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)
    concat = QualityNet(backbone="resnet18", input_size=32, stem="concat", imagenet_weights_path=path)
    assert torch.equal(concat.backbone.conv1.weight[:, :3], ref.conv1.weight)
    assert torch.count_nonzero(concat.backbone.conv1.weight[:, 3]) == 0


def test_imagenet_weights_for_another_architecture_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match="do not fit"):
        QualityNet(backbone="resnet18", imagenet_weights_path=path)
    with pytest.raises(CheckpointError, match="does not exist"):
        QualityNet(backbone="resnet18", imagenet_weights_path=tmp_path / "nope.pth")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = QualityNet(backbone="mobilenet_v3_small", input_size=32).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    metrics = {"val_mse": 0.02}
    path = save_checkpoint(tmp_path / "q.pt", model, optimizer=opt, step=5, epoch=2, metrics=metrics)
    loaded, payload = load_model(path)
    assert payload["step"] == 5 and payload["epoch"] == 2 and payload["metrics"] == {"val_mse": 0.02}
    assert payload["optimizer"] is not None
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    rgb, prob = _inputs()
    with torch.inference_mode():
        assert torch.equal(model(rgb, prob), loaded.eval()(rgb, prob))


def test_half_export_is_smaller_and_close(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = QualityNet(backbone="resnet18", input_size=32).eval()
    full = save_checkpoint(tmp_path / "full.pt", model)
    half = export_half(full, tmp_path / "half.pt")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, payload = load_model(half)
    assert payload["optimizer"] is None
    assert loaded.head.weight.dtype == torch.float32  # loaded back as float32
    rgb, prob = _inputs()
    with torch.inference_mode():
        assert torch.allclose(model(rgb, prob), loaded.eval()(rgb, prob), atol=5e-3)


def test_checkpoint_for_another_backbone_is_rejected(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", QualityNet(backbone="mobilenet_v3_small", input_size=32))
    with pytest.raises(CheckpointError, match="mobilenet_v3_small"):
        load_model(path, backbone="resnet18")
    with pytest.raises(CheckpointError, match="resnet18"):
        load_weights(QualityNet(backbone="resnet18", input_size=32), load_checkpoint(path), path)
    with pytest.raises(CheckpointError, match="differs"):
        load_weights(QualityNet(backbone="mobilenet_v3_small", input_size=64), load_checkpoint(path), path)


def test_missing_truncated_or_foreign_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "absent.pt")
    good = save_checkpoint(tmp_path / "good.pt", QualityNet(backbone="mobilenet_v3_small", input_size=32))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an ivos_rl quality checkpoint"):
        load_model(foreign)
