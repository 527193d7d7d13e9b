"""A tiny feature-only quality model: a deep ensemble of MLPs with a mean and a variance head.

Inputs are the appearance-free signals of :mod:`ivos_rl.quality.features`, standardised with the
training rows' mean and standard deviation. Each member predicts J&F (sigmoid) and a log-variance;
the mean head is trained with MSE (it is what PCC/MAE measure), the variance head with the Gaussian
negative log-likelihood of the detached mean, so uncertainty never pulls the estimate (the recipe's
``loss`` may replace MSE by Huber or L1: MAE is a target of issue #15, and MSE's mean chases the
rare large errors). An opt-in ranking term (``rank_weight`` lambda > 0) adds lambda x the mean
pairwise logistic loss over pairs of rows of one (trajectory, round, object) group whose targets
differ by more than ``rank_margin`` (:func:`pairwise_rank_loss`): the Worst rule only needs the order
of one round's frames, which a pooled MSE barely rewards; batches then hold whole groups. The
ensemble's estimate is the members' mean; its uncertainty (a standard deviation in J&F units) is
``sqrt(mean variance + variance of the means)`` (aleatoric + epistemic, Lakshminarayanan et al.
2017), times ``sd_scale``: a factor set from out-of-sample residuals (:func:`uncertainty_scale`),
because variance heads fitted on training rows are overconfident on new videos. Training is
seeded through a private ``torch.Generator`` (no global RNG state is touched).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch import nn

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.context import DEFAULT_KINDS, KINDS, is_context, select_columns
from ivos_rl.quality.features import OPTIONAL_GROUPS, check_groups, group_columns
from ivos_rl.utils.seed import name_seed

LOSSES: tuple[str, ...] = ("mse", "huber", "l1")


@dataclass(frozen=True)
class FeatureModelConfig:
    """Architecture and training recipe (chosen by cross-validation on training folds)."""

    hidden: int = 64
    layers: int = 2
    members: int = 5
    epochs: int = 20
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.0
    context: bool = False  # also use the video-context columns (ivos_rl.quality.context)
    context_kinds: tuple[str, ...] = DEFAULT_KINDS  # which of them (subset of ivos_rl.quality.context.KINDS)
    signal_groups: tuple[str, ...] = ()  # optional signal groups it also uses (features.OPTIONAL_GROUPS)
    loss: str = "mse"  # the mean head's loss, one of LOSSES (huber: quadratic within huber_delta)
    huber_delta: float = 0.05
    rank_weight: float = 0.0  # lambda of the within-round ranking term (0: none; needs row groups)
    rank_margin: float = 0.01  # pairs whose targets differ by at most this are not ranked

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "members", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"feature model {name} must be an int >= 1, got {value!r}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"feature model lr/weight_decay/dropout out of range: {self}")
        kinds = tuple(self.context_kinds)
        if not kinds or set(kinds) - set(KINDS):
            raise ConfigError(f"feature model context_kinds must be a non-empty subset of {KINDS}: {kinds}")
        object.__setattr__(self, "context_kinds", kinds)  # lists from configs become tuples
        object.__setattr__(self, "signal_groups", recipe_groups(self.signal_groups))
        if self.loss not in LOSSES or not self.huber_delta > 0:
            raise ConfigError(
                f"feature model loss must be one of {LOSSES} with huber_delta > 0, got {self.loss!r}, "
                f"{self.huber_delta!r}"
            )
        if not self.rank_weight >= 0 or not self.rank_margin >= 0:
            raise ConfigError(
                f"feature model rank_weight and rank_margin must be >= 0, got {self.rank_weight!r}, "
                f"{self.rank_margin!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Member(nn.Module):
    """MLP: features -> (J&F logit, log-variance)."""

    def __init__(self, n_in: int, cfg: FeatureModelConfig) -> None:
        super().__init__()
        dims = [n_in] + [cfg.hidden] * cfg.layers
        body: list[nn.Module] = []
        for a, b in pairwise(dims):
            body += [nn.Linear(a, b), nn.SiLU()] + ([nn.Dropout(cfg.dropout)] if cfg.dropout else [])
        self.body = nn.Sequential(*body)
        self.head = nn.Linear(dims[-1], 2)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(J&F logit, log-variance): the ranking term compares logits (no sigmoid saturation)."""
        out = self.head(self.body(x))
        return out[:, 0], out[:, 1].clamp(-12.0, 2.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, log_var = self.logits(x)
        return torch.sigmoid(logit), log_var


class FeatureQualityModel(nn.Module):
    """Ensemble of :class:`_Member` with the input standardisation stored as buffers."""

    def __init__(self, names: tuple[str, ...], cfg: FeatureModelConfig) -> None:
        super().__init__()
        self.names = tuple(names)
        self.config = cfg
        self.members = nn.ModuleList(_Member(len(names), cfg) for _ in range(cfg.members))
        self.register_buffer("mean", torch.zeros(len(names)))
        self.register_buffer("std", torch.ones(len(names)))
        self.register_buffer("sd_scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(estimate (N,), uncertainty std (N,)) for raw feature rows ``x`` (N, F)."""
        z = (x - self.mean) / self.std
        mus, variances = zip(*(m(z) for m in self.members), strict=True)
        mu = torch.stack(mus)  # (M, N)
        var = torch.stack(variances).exp()
        total = var.mean(0) + mu.var(0, unbiased=False)
        return mu.mean(0), total.sqrt() * self.sd_scale

    @torch.inference_mode()
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NumPy convenience: (estimate, uncertainty), float32 (N,)."""
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise InputValidationError(f"feature rows must be (N, {len(self.names)}), got {x.shape}")
        self.eval()
        mu, sd = self(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return mu.numpy(), sd.numpy()

    def predict_rows(self, x: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` on the model's own columns of rows ``x`` whose columns are ``names``
        (rows may carry more columns, e.g. context columns a base-only model ignores)."""
        return self.predict(select_columns(x, names, self.names))


def recipe_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """A recipe's optional signal groups in column order (ConfigError for an unknown name)."""
    try:
        return check_groups(groups)
    except InputValidationError as exc:
        raise ConfigError(f"feature model recipe: {exc}") from exc


def signal_columns(names: Sequence[str], groups: Sequence[str]) -> tuple[str, ...]:
    """The per-frame signals of ``names`` (no context column), with the columns of the optional
    ``groups`` only (:class:`ConfigError` when a group is asked for but the rows lack it): rows
    written with a group train models with and without it."""
    wanted = set(group_columns(groups))
    missing = sorted(wanted - set(names))
    if missing:
        raise ConfigError(f"recipe asks for signal groups {list(groups)} but the feature rows lack {missing}")
    optional = set(group_columns(tuple(OPTIONAL_GROUPS)))
    return tuple(n for n in names if not is_context(n) and (n not in optional or n in wanted))


def model_columns(names: Sequence[str], cfg: FeatureModelConfig) -> tuple[str, ...]:
    """The columns of ``names`` a model with recipe ``cfg`` uses: the per-frame signals
    (:func:`signal_columns`), plus the context columns when ``cfg.context`` (:class:`ConfigError`
    when those are asked for but absent)."""
    if cfg.context and not any(is_context(n) for n in names):
        raise ConfigError("recipe asks for context columns but the feature rows have none")
    signals = set(signal_columns(names, cfg.signal_groups))
    return tuple(
        n for n in names
        if n in signals or (is_context(n) and cfg.context and n.rsplit("@", 1)[1] in cfg.context_kinds)
    )


def uncertainty_scale(pred: np.ndarray, sd: np.ndarray, target: np.ndarray) -> float:
    """Factor making held-out standardised residuals unit-variance: ``sqrt(mean(((y - mu) / sd)^2))``."""
    pred, sd, target = (np.asarray(a, np.float64).reshape(-1) for a in (pred, sd, target))
    if pred.size == 0 or not (pred.shape == sd.shape == target.shape) or (sd <= 0).any():
        raise InputValidationError("uncertainty_scale needs equally long, non-empty rows with sd > 0")
    return float(np.sqrt(np.mean(((target - pred) / sd) ** 2)))


def _init_member(member: nn.Module, gen: torch.Generator) -> None:
    """Default-style (uniform fan-in) initialisation drawn from ``gen`` instead of the global RNG."""
    for module in member.modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / float(np.sqrt(module.in_features))
            nn.init.uniform_(module.weight, -bound, bound, generator=gen)
            nn.init.uniform_(module.bias, -bound, bound, generator=gen)


def fit_feature_model(
    x: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    cfg: FeatureModelConfig | None = None,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> FeatureQualityModel:
    """Train the ensemble on rows ``x`` (N, F) with J&F targets ``y`` (N,); deterministic per seed.

    ``names`` are ``x``'s columns; the model keeps :func:`model_columns` of them. ``groups`` (N,) ints
    name each row's (trajectory, round, object) group (:meth:`FeatureRows.round_groups`); the ranking
    term (``cfg.rank_weight`` > 0) needs them, plain training ignores them."""
    cfg = cfg or FeatureModelConfig()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if x.ndim != 2 or x.shape != (len(y), len(names)) or len(y) < 2:
        raise InputValidationError(
            f"need >= 2 rows of {len(names)} features and targets, got {x.shape}, {y.shape}"
        )
    used = model_columns(names, cfg)
    if used != tuple(names):
        x = select_columns(x, names, used)
    names = used
    x = np.ascontiguousarray(x)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputValidationError("feature rows or targets hold NaN/inf")
    group_t = _check_groups(groups, len(y)) if cfg.rank_weight > 0 else None
    model = FeatureQualityModel(names, cfg)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.mean.copy_(xt.mean(0))
    model.std.copy_(xt.std(0).clamp_min(1e-6))
    z = (xt - model.mean) / model.std
    for i, member in enumerate(model.members):
        gen = torch.Generator().manual_seed(name_seed(seed, "feature-model", i))
        _init_member(member, gen)
        _train_member(member, z, yt, cfg, gen, group_t)
    return model.eval()


def _check_groups(groups: np.ndarray | None, n: int) -> torch.Tensor:
    """``groups`` as an int64 tensor (ConfigError when the ranking term has none to work with)."""
    if groups is None:
        raise ConfigError("feature model rank_weight > 0 needs row groups (fit_feature_model groups=...)")
    g = np.asarray(groups)
    if g.shape != (n,) or not np.issubdtype(g.dtype, np.integer):
        raise InputValidationError(f"row groups must be ({n},) integers, got {g.shape} {g.dtype}")
    return torch.from_numpy(g.astype(np.int64))


def pairwise_rank_loss(
    score: torch.Tensor, y: torch.Tensor, group: torch.Tensor, margin: float = 0.01
) -> torch.Tensor:
    """Mean over ordered pairs (i, j) of one group with ``y_i - y_j > margin`` of the logistic loss
    ``log(1 + exp(-(score_i - score_j)))`` (RankNet); 0 when the rows hold no such pair.

    Rows are laid out per group in a padded (groups, longest group) grid, so the pair matrices are
    per group (a batch of 8 rounds of 70 frames: 8 x 70 x 70 entries, not 560 x 560)."""
    _, inv = torch.unique(group, return_inverse=True)
    order = torch.argsort(inv, stable=True)
    counts = torch.bincount(inv)
    starts = torch.cumsum(counts, 0) - counts
    row, col = inv[order], torch.arange(len(order)) - starts[inv[order]]
    shape = (len(counts), int(counts.max()))
    s = score.new_zeros(shape).index_put((row, col), score[order])
    t = y.new_zeros(shape).index_put((row, col), y[order])
    valid = torch.zeros(shape, dtype=torch.bool)
    valid[row, col] = True
    better = (t[:, :, None] - t[:, None, :] > margin) & valid[:, :, None] & valid[:, None, :]
    if not bool(better.any()):
        return score.sum() * 0.0  # keeps the graph (and the dtype) without a pair
    diff = s[:, :, None] - s[:, None, :]
    return nn.functional.softplus(-diff[better]).mean()


def group_batches(group: torch.Tensor, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Row indices in batches of whole groups: groups in a random order (drawn from ``gen``), each
    batch closed once it holds ``batch_size`` rows or more (a group is never split, so every ranked
    pair can meet in a batch)."""
    ids, inverse = torch.unique(group, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=len(ids))
    starts = torch.cumsum(counts, 0) - counts
    batches, current, size = [], [], 0
    for g in torch.randperm(len(ids), generator=gen).tolist():
        current.append(order[starts[g] : starts[g] + counts[g]])
        size += int(counts[g])
        if size >= batch_size:
            batches.append(torch.cat(current))
            current, size = [], 0
    if current:
        batches.append(torch.cat(current))
    return batches


def point_loss(err: torch.Tensor, loss: str = "mse", delta: float = 0.05) -> torch.Tensor:
    """Per-row loss of the estimate's error ``err``: ``err^2`` (mse), ``|err|`` (l1), or Huber
    ``err^2 / (2 delta)`` within ``delta`` and ``|err| - delta / 2`` beyond (slope 1 like l1, so its
    scale matches l1's, not mse's)."""
    if loss == "mse":
        return err**2
    a = err.abs()
    if loss == "l1":
        return a
    if loss == "huber":
        return torch.where(a < delta, 0.5 * err**2 / delta, a - 0.5 * delta)
    raise ConfigError(f"unknown loss {loss!r} (have {LOSSES})")


def mean_variance_loss(
    mu: torch.Tensor, log_var: torch.Tensor, y: torch.Tensor, loss: str = "mse", delta: float = 0.05
) -> torch.Tensor:
    """Loss of the estimate (:func:`point_loss`, MSE by default) + 0.1 x Gaussian NLL of the variance
    head around the *detached* estimate (the uncertainty head never pulls the estimate; shared by the
    feature and the fusion models)."""
    err = y - mu
    nll = 0.5 * (log_var + err.detach() ** 2 / log_var.exp())
    return point_loss(err, loss, delta).mean() + 0.1 * nll.mean()


def _train_member(
    member: _Member,
    z: torch.Tensor,
    y: torch.Tensor,
    cfg: FeatureModelConfig,
    gen: torch.Generator,
    group: torch.Tensor | None = None,
) -> None:
    """AdamW with cosine decay; MSE on the mean head + Gaussian NLL on the variance head, plus the
    ranking term over batches of whole groups when ``group`` is given (``rank_weight`` > 0); without
    it the batches and every draw are those of plain training."""
    member.train()
    opt = torch.optim.AdamW(member.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(y)
    steps_per_epoch = max(1, (n + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    for _ in range(cfg.epochs):
        if group is None:
            order = torch.randperm(n, generator=gen)
            batches = [order[s : s + cfg.batch_size] for s in range(0, n, cfg.batch_size)]
        else:
            batches = group_batches(group, cfg.batch_size, gen)
        for idx in batches:
            logit, log_var = member.logits(z[idx])
            loss = mean_variance_loss(torch.sigmoid(logit), log_var, y[idx], cfg.loss, cfg.huber_delta)
            if group is not None:
                loss = loss + cfg.rank_weight * pairwise_rank_loss(logit, y[idx], group[idx], cfg.rank_margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    member.eval()


def model_state(model: FeatureQualityModel) -> dict[str, Any]:
    """Plain (weights_only-loadable) description of a model: names, config, tensors."""
    config = model.config.to_dict()
    if not config["context"]:  # files without context columns stay loadable by older code
        del config["context"], config["context_kinds"]
    else:
        config["context_kinds"] = list(config["context_kinds"])
    if not config["signal_groups"]:  # likewise without optional signal groups
        del config["signal_groups"]
    else:
        config["signal_groups"] = list(config["signal_groups"])
    if config["loss"] == "mse":  # likewise for the default loss
        del config["loss"], config["huber_delta"]
    if not config["rank_weight"]:  # and without the ranking term
        del config["rank_weight"], config["rank_margin"]
    return {
        "names": list(model.names),
        "config": config,
        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def model_from_state(state: dict[str, Any]) -> FeatureQualityModel:
    """Inverse of :func:`model_state` (``ConfigError`` for an unknown config field)."""
    try:
        cfg = FeatureModelConfig(**state["config"])
    except TypeError as exc:
        raise ConfigError(f"feature model config {state['config']!r} is not valid: {exc}") from exc
    model = FeatureQualityModel(tuple(state["names"]), cfg)
    model.load_state_dict(state["state"])
    return model.eval()
