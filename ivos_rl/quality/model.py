"""Quality-assessment network: (RGB crop, probability crop) -> estimated J&F in [0, 1].

IVOS-W §3.2 uses a ResNet-50 whose first layer sees RGB and the probability map, global average
pooling and a 2048 -> 1 linear layer (Eq. 7-8). The reference adds a separate convolution for the
probability map to the output of the RGB stem (``stem="separate"``); ``stem="concat"`` is the plain
4-channel first convolution. ResNet-18 and MobileNetV3-Small are light options for CPU use.

Inputs are normalised inside the model (ImageNet mean/std for RGB), so a checkpoint is all that is
needed to reproduce predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from ivos_rl.errors import CheckpointError, ConfigError

BACKBONES: tuple[str, ...] = ("resnet50", "resnet18", "mobilenet_v3_small")
STEMS: tuple[str, ...] = ("separate", "concat")
_FEATURES = {"resnet50": 2048, "resnet18": 512, "mobilenet_v3_small": 576}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class QualityNetConfig:
    """Everything needed to rebuild a :class:`QualityNet` and its input pipeline.

    ``enlarge`` and ``threshold`` belong to the crop op but are stored with the model: a net
    trained on 1.5x boxes is only meaningful on 1.5x boxes.
    """

    backbone: str = "mobilenet_v3_small"
    input_size: int = 128
    stem: str = "separate"
    enlarge: float = 1.5
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"quality backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.stem not in STEMS:
            raise ConfigError(f"quality stem must be one of {STEMS}, got {self.stem!r}")
        if not isinstance(self.input_size, int) or self.input_size < 32:
            raise ConfigError(f"quality input_size must be an int >= 32, got {self.input_size!r}")
        if not self.enlarge > 0:
            raise ConfigError(f"quality enlarge must be > 0, got {self.enlarge!r}")
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"quality threshold must be in [0, 1), got {self.threshold!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityNetConfig:
        """Build from a (checkpoint/config) mapping, rejecting unknown keys by name."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown quality model config keys: {sorted(unknown)}")
        return cls(**d)


class QualityNet(nn.Module):
    """Backbone over RGB + probability crops, global average pool, linear -> sigmoid quality.

    ``forward(rgb (N, 3, S, S) in [0, 1], prob (N, 1, S, S) in [0, 1]) -> (N,)`` in [0, 1].
    """

    def __init__(
        self,
        backbone: str = "mobilenet_v3_small",
        input_size: int = 128,
        stem: str = "separate",
        enlarge: float = 1.5,
        threshold: float = 0.5,
        imagenet_weights_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.config = QualityNetConfig(
            backbone=backbone,
            input_size=int(input_size),
            stem=stem,
            enlarge=float(enlarge),
            threshold=float(threshold),
        )
        net = getattr(torchvision.models, backbone)(weights=None)
        if backbone.startswith("resnet"):
            net.fc = nn.Identity()
            first = net.conv1
        else:
            net.classifier = nn.Identity()
            first = net.features[0][0]
        self.backbone = net
        if imagenet_weights_path is not None:
            load_imagenet_weights(self.backbone, imagenet_weights_path)
        if stem == "separate":
            self.prob_stem: nn.Conv2d | None = nn.Conv2d(
                1,
                first.out_channels,
                kernel_size=first.kernel_size,
                stride=first.stride,
                padding=first.padding,
                bias=False,
            )
            nn.init.kaiming_normal_(self.prob_stem.weight, mode="fan_out", nonlinearity="relu")
        else:
            self.prob_stem = None
            conv4 = nn.Conv2d(
                4,
                first.out_channels,
                kernel_size=first.kernel_size,
                stride=first.stride,
                padding=first.padding,
                bias=False,
            )
            with torch.no_grad():
                nn.init.kaiming_normal_(conv4.weight, mode="fan_out", nonlinearity="relu")
                if imagenet_weights_path is not None:
                    # Keep the pretrained RGB filters; the probability channel starts at zero.
                    conv4.weight[:, :3] = first.weight
                    conv4.weight[:, 3:] = 0.0
            self._set_first_conv(conv4)
        self.head = nn.Linear(_FEATURES[backbone], 1)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: QualityNetConfig | dict[str, Any]) -> QualityNet:
        cfg = config if isinstance(config, QualityNetConfig) else QualityNetConfig.from_dict(dict(config))
        return cls(**cfg.to_dict())

    def _set_first_conv(self, conv: nn.Conv2d) -> None:
        if self.config.backbone.startswith("resnet"):
            self.backbone.conv1 = conv
        else:
            self.backbone.features[0][0] = conv

    def _stem(self, x: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """First conv (+ probability conv) of the backbone, before its normalisation."""
        b = self.backbone
        first = b.conv1 if self.config.backbone.startswith("resnet") else b.features[0][0]
        if self.prob_stem is not None:
            return first(x) + self.prob_stem(prob)
        return first(torch.cat([x, prob], dim=1))

    def embed(self, rgb: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, C)`` of the crops."""
        x = (rgb - self.mean) / self.std
        x = self._stem(x, prob)
        b = self.backbone
        if self.config.backbone.startswith("resnet"):
            x = b.maxpool(b.relu(b.bn1(x)))
            x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        else:
            x = b.features[0][2](b.features[0][1](x))
            x = b.features[1:](x)
        return torch.flatten(b.avgpool(x), 1)

    def forward(self, rgb: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.embed(rgb, prob))).squeeze(1)


def load_imagenet_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a torchvision classification state dict (a local ``.pth``) into ``backbone``.

    The classifier (``fc.*`` / ``classifier.*``) is dropped; every other tensor must match by name
    and shape, otherwise the file is for another architecture and a :class:`CheckpointError` names it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ImageNet weights file does not exist: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read ImageNet weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"ImageNet weights {path} hold no state dict (got {type(state).__name__})")
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad_shape:
        raise CheckpointError(
            f"ImageNet weights {path} do not fit the {type(backbone).__name__} backbone: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]}"
        )
    backbone.load_state_dict(state, strict=True)
