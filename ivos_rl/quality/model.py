"""Quality-assessment network: (RGB crop, probability crop[, signals]) -> estimated J&F in [0, 1].

IVOS-W §3.2 uses a ResNet-50 whose first layer sees RGB and the probability map, global average
pooling and a 2048 -> 1 linear layer (Eq. 7-8). The reference adds a separate convolution for the
probability map to the output of the RGB stem (``stem="separate"``); ``stem="concat"`` is the plain
4-channel first convolution. ResNet-18 and MobileNetV3-Small are light options for CPU use.

Late fusion (issue 15): with ``features`` (names of :mod:`ivos_rl.quality.features` signals) the
pooled CNN features are concatenated with the standardised signal vector of the same (frame,
object) and a small MLP head predicts the J&F and a log-variance (the per-frame uncertainty, as the
feature-only model). Appearance alone overfits the few training videos; the signals carry what
transfers, the crops what the signals miss. Without ``features`` the net is the paper's.

Inputs are normalised inside the model (ImageNet mean/std for RGB; the signals' training mean/std
are buffers), so a checkpoint is all that is needed to reproduce predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError
from ivos_rl.quality.features import feature_names

BACKBONES: tuple[str, ...] = ("resnet50", "resnet18", "mobilenet_v3_small")
STEMS: tuple[str, ...] = ("separate", "concat")
_FEATURES = {"resnet50": 2048, "resnet18": 512, "mobilenet_v3_small": 576}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class QualityNetConfig:
    """Everything needed to rebuild a :class:`QualityNet` and its input pipeline.

    ``enlarge`` and ``threshold`` belong to the crop op but are stored with the model: a net
    trained on 1.5x boxes is only meaningful on 1.5x boxes. ``features``: the signal columns of a
    late-fusion net, in order (``"all"``: every :func:`~ivos_rl.quality.features.feature_names`
    column without backend diagnostics; empty: the crop-only net); ``fusion_hidden``: width of its
    head.
    """

    backbone: str = "mobilenet_v3_small"
    input_size: int = 128
    stem: str = "separate"
    enlarge: float = 1.5
    threshold: float = 0.5
    features: tuple[str, ...] = ()
    fusion_hidden: int = 64

    def __post_init__(self) -> None:
        names = feature_names() if self.features == "all" else self.features
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"quality features must be 'all' or a list of signal names, got {names!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"quality features name a signal twice: {list(names)}")
        object.__setattr__(self, "features", tuple(names))
        hidden = self.fusion_hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"quality fusion_hidden must be an int >= 1, got {self.fusion_hidden!r}")
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
        return {**asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityNetConfig:
        """Build from a (checkpoint/config) mapping, rejecting unknown keys by name."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown quality model config keys: {sorted(unknown)}")
        return cls(**d)


class QualityNet(nn.Module):
    """Backbone over RGB + probability crops, global average pool, linear -> sigmoid quality.

    ``forward(rgb (N, 3, S, S) in [0, 1], prob (N, 1, S, S) in [0, 1][, x (N, F)]) -> (N,)`` in [0, 1];
    ``x`` (raw signal rows in ``config.features`` order) is required by a late-fusion net and
    refused by a crop-only one.
    """

    def __init__(
        self,
        backbone: str = "mobilenet_v3_small",
        input_size: int = 128,
        stem: str = "separate",
        enlarge: float = 1.5,
        threshold: float = 0.5,
        imagenet_weights_path: str | Path | None = None,
        features: str | tuple[str, ...] | list[str] = (),
        fusion_hidden: int = 64,
    ) -> None:
        super().__init__()
        self.config = QualityNetConfig(
            backbone=backbone,
            input_size=int(input_size),
            stem=stem,
            enlarge=float(enlarge),
            threshold=float(threshold),
            features=features if isinstance(features, str) else tuple(features),
            fusion_hidden=int(fusion_hidden),
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
        n_sig = len(self.config.features)
        if n_sig:
            hidden = self.config.fusion_hidden
            self.head: nn.Module = nn.Sequential(
                nn.Linear(_FEATURES[backbone] + n_sig, hidden), nn.SiLU(), nn.Linear(hidden, 2)
            )
            # the signals' standardisation (training rows) and the uncertainty scale: set by training
            self.register_buffer("feat_mean", torch.zeros(n_sig))
            self.register_buffer("feat_std", torch.ones(n_sig))
            self.register_buffer("sd_scale", torch.ones(()))
        else:
            self.head = nn.Linear(_FEATURES[backbone], 1)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        """Width of the pooled CNN features (:meth:`embed`)."""
        return _FEATURES[self.config.backbone]

    @property
    def fused(self) -> bool:
        """True for a late-fusion net (it needs the signal rows)."""
        return bool(self.config.features)

    def set_feature_stats(self, x: torch.Tensor) -> None:
        """Standardise the signals with the mean/std of the training rows ``x`` (N, F)."""
        if not self.fused or x.ndim != 2 or x.shape[1] != len(self.config.features) or x.shape[0] < 2:
            raise InputValidationError(
                f"feature statistics need (N >= 2, {len(self.config.features)}) rows of a fusion net, "
                f"got {tuple(x.shape)}"
            )
        self.feat_mean.copy_(x.mean(0))
        self.feat_std.copy_(x.std(0).clamp_min(1e-6))

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

    def head_out(
        self, emb: torch.Tensor, x: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(estimate (N,), log-variance (N,) or None for the crop-only net) from pooled features."""
        if not self.fused:
            if x is not None:
                raise InputValidationError("this quality net is crop-only: it takes no signal rows")
            return torch.sigmoid(self.head(emb)).squeeze(1), None
        n_sig = len(self.config.features)
        if x is None or x.ndim != 2 or x.shape != (emb.shape[0], n_sig):
            got = None if x is None else tuple(x.shape)
            raise InputValidationError(
                f"the fusion quality net needs signal rows ({emb.shape[0]}, {n_sig}), got {got}"
            )
        z = (x.to(emb.dtype) - self.feat_mean) / self.feat_std
        out = self.head(torch.cat([emb, z], dim=1))
        return torch.sigmoid(out[:, 0]), out[:, 1].clamp(-12.0, 2.0)

    def uncertainty(self, log_var: torch.Tensor) -> torch.Tensor:
        """Standard deviation (J&F units) of the estimate: the variance head times ``sd_scale``."""
        return (0.5 * log_var).exp() * self.sd_scale

    def forward(self, rgb: torch.Tensor, prob: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.head_out(self.embed(rgb, prob), x)[0]


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
