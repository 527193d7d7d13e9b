"""Training of the quality net: MSE to the true J&F (IVOS-W Eq. 8), split by sequence, resumable.

Determinism and resume: all randomness after model construction comes from generators derived
from ``(seed, epoch)`` (the shuffle) and ``(seed, step)`` (augmentation), and the LR schedule is a
function of the step, so a run restored from a checkpoint at step k continues exactly as the
uninterrupted run would (bit-identical weights on CPU). Checkpoints (``last.pt`` after every epoch
and when a run stops early, ``best.pt`` by validation MSE) hold model config, weights, optimizer
and scheduler state, step, epoch, RNG states and metrics; they are written atomically.

A late-fusion net (``quality.features``, :mod:`ivos_rl.quality.model`) trains on the crops and the
signal rows of the same (round, frame, object) (``features.npz`` of the sample folders), with the
mean + variance loss of the feature model (:func:`~ivos_rl.quality.feature_model.mean_variance_loss`);
its signal standardisation is fitted on the training rows. Every checkpoint records the backend
fingerprints of its training samples. After training, ``held_out_predictions.npz`` holds the
final model's estimates on the held-out videos (a cross-validation fold's out-of-fold rows).

Reference hyper-parameters (SGD, lr 5e-6, momentum 0.9, weight decay 5e-4, batch 32, 50 epochs)
assume an ImageNet-initialised ResNet-50; from scratch that LR barely moves the net, so the
shipped config uses AdamW with warmup + cosine decay (see ``configs/train_quality.yaml``).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from ivos_rl.data.splits import split_record, split_sequences
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.quality.assessment import check_geometry, predict_samples, quality_metrics, save_predictions
from ivos_rl.quality.checkpoint import load_checkpoint, load_weights, save_checkpoint
from ivos_rl.quality.feature_model import mean_variance_loss
from ivos_rl.quality.model import QualityNet
from ivos_rl.quality.samples import SampleSet, load_samples
from ivos_rl.utils.logging import get_logger
from ivos_rl.utils.seed import name_rng, seed_everything

log = get_logger(__name__)

_STEP_SEED = 1_000_003  # mixes (seed, step) / (seed, epoch) into distinct generator seeds


def split_samples(
    samples: SampleSet, val_sequences: list[str] | None = None, val_fraction: float = 0.2, seed: int = 0
) -> tuple[SampleSet, SampleSet, dict[str, Any]]:
    """Train/validation sets with no sequence in both (frames of one video are near-duplicates).

    ``val_sequences`` names the held-out videos; otherwise ``round(val_fraction * n_sequences)``
    (at least 1) are held out by :func:`ivos_rl.data.splits.split_sequences`, the split every
    trainer uses (by name hash: the agent with the same seed holds out a subset or superset of
    these videos). ``val_fraction=0`` holds out nothing (the shipped fit on every video, its recipe
    chosen by cross-validation): no validation, no ``best.pt``. Returns the sets and the split
    record the checkpoint stores.
    """
    names = sorted(set(samples.sequence.tolist()))
    if val_sequences:
        held: int | list[str] = [str(s) for s in val_sequences]
    elif val_fraction == 0:
        return samples, samples.subset(np.zeros(len(samples), bool)), split_record(names, [], None)
    else:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be 0 or in (0, 1), got {val_fraction!r}")
        held = max(1, round(val_fraction * len(names)))
        if held >= len(names):
            raise ConfigError(f"cannot hold out {held} of {len(names)} sequences and still train")
    train, val = split_sequences(names, held, seed)
    is_val = np.isin(samples.sequence, val)
    record = split_record(train, val, None if val_sequences else seed)
    return samples.subset(~is_val), samples.subset(is_val), record


def _keep_fraction(train_set: SampleSet, fraction: float, seed: int) -> SampleSet:
    """A name-seeded random ``fraction`` of the training rows (the same rows for every model with
    the same seed and folders; CPU budget). Held-out rows are never dropped."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"data.train_fraction must be in (0, 1], got {fraction!r}")
    if fraction == 1.0:
        return train_set
    keep = name_rng(seed, "quality-train-fraction").random(len(train_set)) < fraction
    return train_set.subset(keep)


@dataclass(frozen=True)
class Augment:
    """Label-preserving batch augmentation; every op keeps the true J&F of the crop unchanged.

    Geometric ops (flips, 90° rotations, zoom into the crop's margin) move RGB and probability
    together; photometric ops (brightness, contrast, saturation, grayscale) touch RGB only, so the
    network cannot identify a training video by its colours. The probability map is never changed
    on its own: that would change the target. ``zoom`` keeps a random ``s`` x ``s`` window with
    ``s ~ U(1 - zoom, 1)``: the 1.5x enlarged box leaves a margin of 1/6 on each side, so
    ``zoom <= 0.3`` only trims context.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    rot90: bool = False
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.0
    gray: float = 0.0
    zoom: float = 0.0

    def __call__(
        self, rgb: torch.Tensor, prob: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = rgb.shape[0]

        def u(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator)

        if self.zoom > 0:
            scale = 1.0 - self.zoom * u(n)
            shift = (1.0 - scale)[:, None] * (2.0 * u(n, 2) - 1.0)
            theta = torch.zeros(n, 2, 3)
            theta[:, 0, 0] = theta[:, 1, 1] = scale
            theta[:, :, 2] = shift
            grid = F.affine_grid(theta, [n, 4, rgb.shape[-2], rgb.shape[-1]], align_corners=False)
            both = F.grid_sample(torch.cat([rgb, prob], 1), grid, mode="bilinear", align_corners=False)
            rgb, prob = both[:, :3], both[:, 3:]
        if self.hflip > 0:
            flip = (u(n) < self.hflip).view(n, 1, 1, 1)
            rgb, prob = torch.where(flip, rgb.flip(-1), rgb), torch.where(flip, prob.flip(-1), prob)
        if self.vflip > 0:
            flip = (u(n) < self.vflip).view(n, 1, 1, 1)
            rgb, prob = torch.where(flip, rgb.flip(-2), rgb), torch.where(flip, prob.flip(-2), prob)
        if self.rot90:
            k = torch.randint(0, 4, (n,), generator=generator)
            rgb, prob = rgb.clone(), prob.clone()
            for turns in (1, 2, 3):
                sel = k == turns
                if sel.any():
                    rgb[sel] = torch.rot90(rgb[sel], turns, dims=(-2, -1))
                    prob[sel] = torch.rot90(prob[sel], turns, dims=(-2, -1))
        if self.saturation > 0 or self.gray > 0:
            luma = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).expand_as(rgb)
            sat = 1.0 + self.saturation * (2.0 * u(n, 1, 1, 1) - 1.0)
            sat = torch.where(u(n, 1, 1, 1) < self.gray, torch.zeros_like(sat), sat)
            rgb = (luma + (rgb - luma) * sat).clamp(0.0, 1.0)
        if self.brightness > 0 or self.contrast > 0:
            c = 1.0 + self.contrast * (2.0 * u(n, 1, 1, 1) - 1.0)
            b = self.brightness * (2.0 * u(n, 1, 1, 1) - 1.0)
            mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
            rgb = ((rgb - mean) * c + mean + b).clamp(0.0, 1.0)
        return rgb, prob


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base LR at ``step``: linear warmup, then constant or cosine to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ConfigError(f"schedule.name must be 'constant' or 'cosine', got {schedule!r}")


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 - third-party code may use the global RNG
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _resolve_resume(resume: Any, out_dir: Path) -> Path | None:
    if resume in (None, False, ""):
        return None
    if resume == "auto":
        last = out_dir / "last.pt"
        return last if last.is_file() else None
    path = Path(str(resume))
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint does not exist: {path}")
    return path


# Settings that must not change across a resume, or the continued run is not the interrupted one.
_RESUME_KEYS = ("seed", "data", "quality", "optimizer", "schedule", "augment", "batch_size", "epochs")


def _check_same_run(saved: Any, current: Any, path: Path) -> None:
    """Raise :class:`CheckpointError` naming the settings that differ from the checkpoint's run."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        raise CheckpointError(f"{path} holds no training config; it cannot be resumed")
    diff = [k for k in _RESUME_KEYS if saved.get(k) != current.get(k)]
    if diff:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)
        raise CheckpointError(f"cannot resume {path}: settings changed ({details})")


def _build_model(cfg: DictConfig) -> QualityNet:
    # `checkpoint` names the net's shipped weights (for evaluate.py quality=<name>), not an argument
    node = {k: v for k, v in cfg.quality.items() if k != "checkpoint"}
    model = instantiate(node) if "_target_" in node else QualityNet(**node)
    if not isinstance(model, QualityNet):
        raise ConfigError(f"cfg.quality must build a QualityNet, got {type(model).__name__}")
    return model


def _optimisation(
    cfg: DictConfig, model: QualityNet, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """``cfg.optimizer`` (a ``_target_`` partial) on the model and the step-indexed LR schedule."""
    optimizer = instantiate(cfg.optimizer, _partial_=True)(params=model.parameters())
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(f"cfg.optimizer must build a torch optimizer, got {type(optimizer).__name__}")
    sched_cfg = cfg.schedule
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(
            s,
            total_steps,
            str(sched_cfg.name),
            int(sched_cfg.get("warmup_steps", 0)),
            float(sched_cfg.get("min_ratio", 0.0)),
        ),
    )
    return optimizer, scheduler


def _augment(cfg: DictConfig) -> Augment:
    try:
        return Augment(**OmegaConf.to_container(cfg.augment, resolve=True))  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"invalid augment settings {cfg.augment}: {exc}") from exc


@dataclass
class _Progress:
    """The counters a checkpoint carries besides weights, optimiser and scheduler."""

    step: int = 0
    best_mse: float = math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    resumed: dict[str, Any] = field(default_factory=dict)  # the resumed checkpoint's metrics


def _resume_from(
    path: Path,
    model: QualityNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    train_cfg: Any,
) -> _Progress:
    """Restore weights, optimiser, scheduler and RNG states of a checkpoint of the same run."""
    payload = load_checkpoint(path)
    load_weights(model, payload, path)
    _check_same_run(payload.get("train_config"), train_cfg, path)
    if payload["optimizer"] is None or payload["scheduler"] is None:
        raise CheckpointError(f"{path} has no optimizer/scheduler state (an exported model?)")
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    metrics = payload["metrics"]
    progress = _Progress(
        step=int(payload["step"]),
        best_mse=float(metrics.get("best_val_mse", math.inf)),
        history=list(metrics.get("history", [])),
        running=[float(x) for x in metrics.get("running_losses", [])],
        resumed=metrics,
    )
    _set_rng_state(payload.get("rng"))
    log.info("resumed from %s at step %d", path, progress.step)
    return progress


@dataclass
class _Loop:
    """One training run's objects; :meth:`run` trains epoch by epoch from ``progress.step``."""

    cfg: DictConfig
    model: QualityNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    aug: Augment
    train_set: SampleSet
    val_set: SampleSet
    device: torch.device
    fmt: torch.memory_format
    steps_per_epoch: int
    stop_step: int
    train_cfg: Any
    split: dict[str, Any]  # the train/held-out record every trainer writes (ivos_rl.data.splits)
    progress: _Progress
    metrics: dict[str, Any]
    writer: SummaryWriter | None
    backends: list[str] | None = None  # fingerprints of the training samples' backends

    def checkpoint(self, name: str, epoch: int) -> Path:
        p = self.progress
        return save_checkpoint(
            Path(self.cfg.output_dir) / name,
            self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            step=p.step,
            epoch=epoch,
            metrics={
                **self.metrics, "best_val_mse": p.best_mse, "history": p.history, "running_losses": p.running
            },
            rng_state=_rng_state(),
            train_config=self.train_cfg,  # type: ignore[arg-type]
            split=self.split,
            backends=self.backends,
        )

    def run(self) -> None:
        t0 = time.perf_counter()
        while self.progress.step < self.stop_step:
            epoch, offset = divmod(self.progress.step, self.steps_per_epoch)
            self._train_epoch(epoch, offset)
            if self.progress.step % self.steps_per_epoch == 0:  # epoch finished: validate and checkpoint
                self._end_epoch(self.progress.step // self.steps_per_epoch, t0)
        if self.progress.step % self.steps_per_epoch != 0:  # stopped mid-epoch (max_steps): resumable
            self.checkpoint("last.pt", self.progress.step // self.steps_per_epoch)

    def _train_epoch(self, epoch: int, offset: int) -> None:
        """Batches ``offset..`` of ``epoch`` (shuffle seeded by epoch, augmentation by step)."""
        seed, batch_size, p = int(self.cfg.seed), int(self.cfg.batch_size), self.progress
        size = self.model.config.input_size
        log_every = int(self.cfg.get("log_every", 10))
        perm = torch.randperm(
            len(self.train_set), generator=torch.Generator().manual_seed(seed * _STEP_SEED + epoch)
        )
        self.model.train()
        for b in range(offset, self.steps_per_epoch):
            idx = perm[b * batch_size : (b + 1) * batch_size].numpy()
            rgb, prob, target = self.train_set.tensors(idx, size)
            # signals are per (frame, object): the label-preserving crop augmentation keeps them
            x = self.train_set.signals(idx, self.model.config.features) if self.model.fused else None
            gen = torch.Generator().manual_seed(seed * _STEP_SEED + 7 * p.step + 1)
            rgb, prob = self.aug(rgb, prob, gen)
            rgb = rgb.to(self.device, memory_format=self.fmt)
            prob = prob.to(self.device, memory_format=self.fmt)
            target = target.to(self.device)
            mu, log_var = self.model.head_out(
                self.model.embed(rgb, prob), None if x is None else x.to(self.device)
            )
            if log_var is None:
                loss = torch.mean((mu - target) ** 2)
            else:
                loss = mean_variance_loss(mu, log_var, target)
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"training diverged at step {p.step} (loss {loss.item()}); lower the learning rate"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            p.step += 1
            p.running.append(loss.item())
            if self.writer is not None and p.step % log_every == 0:
                self.writer.add_scalar("train/loss", float(np.mean(p.running[-log_every:])), p.step)
                self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], p.step)
            if p.step >= self.stop_step:
                break

    def _end_epoch(self, done_epoch: int, t0: float) -> None:
        """Validate, record, write ``last.pt`` (and ``best.pt`` when the validation MSE improved).

        With ``val_every`` > 1 only every ``val_every``-th and the last epoch are validated (CPU
        budget: cross-validation folds report the final model only)."""
        p = self.progress
        val_every = int(self.cfg.get("val_every") or 1)
        if not len(self.val_set) or (done_epoch % val_every and p.step < self.stop_step):
            self.checkpoint("last.pt", done_epoch)
            log.info("epoch %d step %d (%.0fs)", done_epoch, p.step, time.perf_counter() - t0)
            return
        val = quality_metrics(predict_samples(self.model, self.val_set, device=self.device), self.val_set.jf)
        train_loss = float(np.mean(p.running)) if p.running else float("nan")
        p.running = []
        p.history.append({"epoch": done_epoch, "step": p.step, "train_loss": train_loss, **val})
        self.metrics.update(train_loss=train_loss, val_mse=val["mse"], val_pcc=val["pcc"], epoch=done_epoch)
        if self.writer is not None:
            self.writer.add_scalar("val/mse", val["mse"], p.step)
            self.writer.add_scalar("val/pcc", val["pcc"], p.step)
        improved = val["mse"] < p.best_mse
        p.best_mse = min(p.best_mse, val["mse"])
        self.checkpoint("last.pt", done_epoch)
        if improved:
            self.metrics["best_epoch"] = done_epoch
            self.checkpoint("best.pt", done_epoch)
        log.info(
            "epoch %d step %d train_loss %.4f val_mse %.4f val_pcc %.3f (%.0fs)",
            done_epoch, p.step, train_loss, val["mse"], val["pcc"], time.perf_counter() - t0,
        )


def train(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """Train a quality net on sample folders; return final/best metrics and checkpoint paths.

    Main keys (see ``configs/train_quality.yaml``): ``data.dirs``, ``data.val_sequences`` or
    ``data.val_fraction``, ``quality`` (model config), ``optimizer`` (``_target_`` partial),
    ``schedule``, ``batch_size``, ``epochs``, ``max_steps`` (stop early, e.g. to test resume),
    ``augment``, ``seed``, ``output_dir``, ``resume`` (path, ``auto`` or null), ``tensorboard``.
    """
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.seed)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    seed_everything(seed)

    samples = load_samples(list(cfg.data.dirs))
    train_set, val_set, split = split_samples(
        samples, cfg.data.get("val_sequences"), float(cfg.data.get("val_fraction", 0.2)), seed
    )
    train_set = _keep_fraction(train_set, float(cfg.data.get("train_fraction") or 1.0), seed)
    device = torch.device(str(cfg.get("device", "cpu")))
    # NHWC is ~1.5x faster for these backbones on CPU (forward and backward).
    fmt = torch.channels_last if cfg.get("channels_last", True) else torch.contiguous_format
    model = _build_model(cfg).to(device, memory_format=fmt)
    check_geometry(model, samples)
    if model.fused:  # standardise the signals with the training rows (a resume restores the same)
        model.set_feature_stats(train_set.signals(slice(None), model.config.features).to(device))
    backends = None if samples.fingerprint is None else sorted(set(samples.fingerprint.tolist()))
    del samples  # the splits hold copies; keep peak memory at one copy of the crops
    batch_size = int(cfg.batch_size)
    steps_per_epoch = len(train_set) // batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"batch_size={batch_size} exceeds the {len(train_set)} training samples")
    total_steps = int(cfg.epochs) * steps_per_epoch
    stop_step = total_steps if cfg.get("max_steps") is None else min(total_steps, int(cfg.max_steps))
    optimizer, scheduler = _optimisation(cfg, model, total_steps)
    aug = _augment(cfg)
    train_cfg = OmegaConf.to_container(cfg, resolve=True)

    resume_path = _resolve_resume(cfg.get("resume"), out_dir)
    progress = (
        _Progress() if resume_path is None
        else _resume_from(resume_path, model, optimizer, scheduler, train_cfg)
    )
    writer = (
        SummaryWriter(str(out_dir / "tensorboard"), purge_step=progress.step)
        if cfg.get("tensorboard", True) else None
    )
    metrics: dict[str, Any] = {
        "n_train": len(train_set),
        "n_val": len(val_set),
        "val_sequences": split["held_out"],
    }
    if progress.step == 0 and int(cfg.get("val_every") or 1) == 1 and len(val_set):
        initial = quality_metrics(predict_samples(model, val_set, device=device), val_set.jf)
        metrics["initial_val_mse"], metrics["initial_val_pcc"] = initial["mse"], initial["pcc"]
    elif "initial_val_mse" in progress.resumed:
        metrics["initial_val_mse"] = progress.resumed["initial_val_mse"]
        metrics["initial_val_pcc"] = progress.resumed.get("initial_val_pcc")

    t0 = time.perf_counter()
    _Loop(
        cfg, model, optimizer, scheduler, aug, train_set, val_set, device, fmt, steps_per_epoch, stop_step,
        train_cfg, split, progress, metrics, writer, backends,
    ).run()
    if len(val_set):
        save_predictions(out_dir / "held_out_predictions.npz", model, val_set, device=device)
    if writer is not None:
        writer.close()
    metrics.update(
        steps=progress.step,
        best_val_mse=progress.best_mse,
        checkpoint=str(out_dir / "last.pt"),
        best_checkpoint=str(out_dir / "best.pt") if (out_dir / "best.pt").is_file() else None,
        seconds=time.perf_counter() - t0,
    )
    return metrics
