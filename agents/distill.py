"""Distil the one-step lookahead oracle into the Bi-LSTM Q-network (supervised one-step targets).

Live DQN on the real backend runs a few steps per second on a CPU; the lookahead data
(:mod:`ivos_rl.lookahead_data`) already holds, for every recorded round, the mean J&F each
candidate frame would give. The paper's network (:class:`~ivos_rl.agents.qnet.QNetwork`, with the
extra per-frame state features of :mod:`ivos_rl.state_features`) is trained on it with

* a regression of Q(s, a) on ``gain_scale * (J&F after annotating a - J&F now)`` over the candidate
  frames only (the others have no target: masked), and
* the DQfD large-margin loss (:func:`~ivos_rl.agents.ddqn.large_margin_loss`) toward the oracle's
  pick, over every frame, weighted by ``demo_weight``: it also pushes the untried frames below it.

Two options, off by default (the session-6 recipe is unchanged then):

* ``residual``: the network's head is residual on span-error's score (the ``span`` feature group's
  first column, :class:`~ivos_rl.agents.qnet.QNetwork` ``prior_column``): untrained, it picks
  span-error's frame, and ``epochs = 0`` (the prior alone) is one of the choices the inner split
  can make, so the selected recipe is not expected to do worse than the rule it starts from.
  ``prior = "farthest"`` makes it residual on Farthest's score instead (the ``distance`` group's two
  columns), times ``1 + prior_quality_weight * (1 - q)``: untrained, it picks
  ``FarthestStrategy(quality_weight=prior_quality_weight)``'s frame.
* ``loss = "listwise"``: instead of the regression, the cross-entropy between the softmax of Q over
  the tried frames and the softmax of their scaled gains / ``listwise_temperature`` (it learns the
  ranking of the candidates, which is all an argmax policy uses).

This is a one-step (gamma = 0) value; no bootstrap. Rows of one video share N, so a minibatch is
the rounds of one video. ``flip`` adds the time-reversed copy of every row (distance columns
swapped): the propagation treats both directions alike.

Selection without test videos: :func:`offline_gain` scores a policy on held-out rows by the gain
of the candidate nearest to its argmax, against Farthest's pick (always a candidate) and the best
candidate, so epochs and knobs are chosen on an inner split of the training videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ivos_rl.agents.ddqn import large_margin_loss
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.state import StateMode, build_state, history_counts
from ivos_rl.state_features import StateFeatures
from ivos_rl.strategies.base import StrategyState
from ivos_rl.strategies.farthest import distance_to_annotations
from ivos_rl.strategies.span_error import SpanErrorStrategy

__all__ = ["LOSSES", "PRIORS", "DistillConfig", "Row", "build_rows", "fit", "offline_gain"]

LOSSES: tuple[str, ...] = ("regression", "listwise")
PRIORS: dict[str, str] = {"span": "span", "farthest": "distance"}
"""The residual head's training-free rules and the state group each reads."""
_LATER_KNOBS: tuple[str, ...] = ("prior", "prior_quality_weight")
_SPAN = SpanErrorStrategy()


@dataclass(frozen=True)
class DistillConfig:
    """Knobs of one distillation run (see the module docstring)."""

    state_features: tuple[str, ...] = ("distance", "entropy", "area_change", "round")
    horizon: int = 7
    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-4
    gain_scale: float = 10.0
    demo_margin: float = 0.1
    demo_weight: float = 1.0
    flip: bool = True
    recurrence: str = "bilstm"
    hidden: int = 128
    decoder_hidden: int = 128
    grad_clip_value: float = 1.0
    residual: bool = False
    prior_scale: float = 1.0
    learn_prior_scale: bool = True
    loss: str = "regression"
    listwise_temperature: float = 0.05
    prior: str = "span"
    prior_quality_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "horizon", "hidden", "decoder_hidden"):
            v = getattr(self, name)
            low = 0 if name == "epochs" and self.residual else 1  # 0 epochs: the residual's prior alone
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"distill.{name} must be an int >= {low}, got {v!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"distill.loss must be one of {LOSSES}, got {self.loss!r}")
        if self.prior not in PRIORS:
            raise ConfigError(f"distill.prior must be one of {sorted(PRIORS)}, got {self.prior!r}")
        group = PRIORS[self.prior]
        if self.residual and group not in self.state_features:
            raise ConfigError(
                f"distill.residual with prior {self.prior!r} needs the {group!r} state feature "
                "(its prior columns)"
            )
        if not self.prior_quality_weight >= 0:
            raise ConfigError(f"distill.prior_quality_weight must be >= 0, got {self.prior_quality_weight!r}")
        for name in ("lr", "gain_scale", "prior_scale", "listwise_temperature"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"distill.{name} must be > 0, got {getattr(self, name)!r}")
        if min(self.weight_decay, self.demo_margin, self.demo_weight) < 0:
            raise ConfigError("distill weight_decay, demo_margin and demo_weight must be >= 0")
        StateFeatures.parse(list(self.state_features))  # refuses unknown groups

    @property
    def features(self) -> StateFeatures:
        return StateFeatures.parse(list(self.state_features))

    def network(self) -> QNetwork:
        return QNetwork(
            self.recurrence,  # type: ignore[arg-type]
            in_features=2 + self.features.width,
            hidden=self.hidden,
            decoder_hidden=self.decoder_hidden,
            prior_column=self._prior_columns() if self.residual else None,
            prior_scale=float(self.prior_scale),
            prior_learn_scale=bool(self.learn_prior_scale),
            prior_quality_weight=float(self.prior_quality_weight) if self.residual else 0.0,
        )

    def _prior_columns(self) -> int | list[int]:
        """span: span-error's score column; farthest: the two distance columns (their minimum)."""
        first = self.features.column(PRIORS[self.prior])
        return first if self.prior == "span" else [first, first + 1]

    def record(self) -> dict[str, Any]:
        """The knobs as recorded in run folders and manifests. Knobs added after the shipped agent
        (the residual's ``prior`` and its quality weight) appear only when set, so records written
        before them still compare equal to the same recipe."""
        out = asdict(self)
        for name in _LATER_KNOBS:
            if out[name] == DistillConfig.__dataclass_fields__[name].default:
                del out[name]
        return out


@dataclass(frozen=True)
class Row:
    """One recorded round: observation (N, w), candidate gains (N,; NaN off candidates), the
    oracle's pick, Farthest's pick, span-error's pick (default knobs, on the quality the
    recommender saw: span_error-Wild's frame in Wild data), and the video it came from."""

    sequence: str
    obs: np.ndarray
    gains: np.ndarray
    expert: int
    farthest: int
    span: int


def _observation(rows: dict[str, np.ndarray], r: int, features: StateFeatures, horizon: int) -> np.ndarray:
    history = [int(f) for f in rows["history"][r] if f >= 0]
    n = rows["quality"].shape[1]
    state = build_state(rows["quality"][r], history_counts(history, n), StateMode.BOTH)
    missing = [g for g in features.output_groups if g not in rows]
    if missing:
        raise InputValidationError(f"state features {missing} are not recorded in the lookahead data")
    columns = [rows[g][r] for g in features.output_groups]
    output = np.stack(columns, axis=1) if columns else None
    return features.extend(state, history, horizon, output)


def _span_pick(quality: np.ndarray, history: list[int]) -> int:
    """Span-error's frame (default knobs) for this quality and annotation history."""
    view = StrategyState(round=len(history), n_frames=len(quality), history=tuple(history), quality=quality)
    return _SPAN.select(view)


def build_rows(
    data: Sequence[tuple[str, dict[str, np.ndarray]]], cfg: DistillConfig, flip: bool | None = None
) -> list[Row]:
    """Training rows of the lookahead data's samples (plus time-reversed copies when ``flip``)."""
    features = cfg.features
    flip = cfg.flip if flip is None else flip
    out: list[Row] = []
    for seq, rows in data:
        n = rows["quality"].shape[1]
        for r in range(rows["quality"].shape[0]):
            values = rows["values"][r].astype(np.float64)
            gains = values - float(rows["current"][r])
            tried = np.flatnonzero(np.isfinite(values))
            expert = int(tried[np.argmax(values[tried])])  # ties: the earliest frame, as the oracle
            history = [int(f) for f in rows["history"][r] if f >= 0]
            farthest = int(np.argmax(distance_to_annotations(n, history)))
            obs = _observation(rows, r, features, cfg.horizon)
            out.append(Row(seq, obs, gains, expert, farthest, _span_pick(rows["quality"][r], history)))
            if flip:
                rev = obs[::-1].copy()
                if "distance" in features.groups:
                    rev[:, [2, 3]] = rev[:, [3, 2]]  # before <-> after
                span = _span_pick(rows["quality"][r][::-1], [n - 1 - f for f in history])
                out.append(Row(seq, rev, gains[::-1].copy(), n - 1 - expert, n - 1 - farthest, span))
    return out


def _batches(rows: Sequence[Row], rng: np.random.Generator) -> list[list[Row]]:
    """Rows grouped by (video, length) in a random order: one minibatch each (N differs by video)."""
    groups: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.sequence, row.obs.shape[0]), []).append(row)
    batches = list(groups.values())
    return [batches[i] for i in rng.permutation(len(batches))]


def _loss(qnet: QNetwork, batch: Sequence[Row], cfg: DistillConfig) -> torch.Tensor:
    obs = torch.from_numpy(np.stack([r.obs for r in batch]).astype(np.float32))
    gains = np.stack([r.gains for r in batch])
    mask = torch.from_numpy(np.isfinite(gains))
    target = torch.from_numpy(np.nan_to_num(gains * cfg.gain_scale).astype(np.float32))
    q = qnet(obs)
    if cfg.loss == "listwise":
        main = _listwise(q, target, mask, float(cfg.listwise_temperature))
    else:
        main = ((q - target).pow(2) * mask).sum() / mask.sum().clamp(min=1)
    if cfg.demo_weight <= 0:
        return main
    experts = torch.tensor([r.expert for r in batch], dtype=torch.int64)
    return main + cfg.demo_weight * large_margin_loss(q, experts, cfg.demo_margin).mean()


def _listwise(q: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over rows of the cross-entropy between softmax(target / T) and softmax(Q), tried frames only."""
    low = torch.finfo(q.dtype).min
    want = torch.softmax((target / temperature).masked_fill(~mask, low), dim=1)
    log_p = torch.log_softmax(q.masked_fill(~mask, low), dim=1)
    return -(want * log_p.masked_fill(~mask, 0.0)).sum(dim=1).mean()


def fit(
    train: Sequence[Row],
    cfg: DistillConfig,
    seed: int,
    validate: Sequence[Row] | None = None,
) -> tuple[QNetwork, list[dict[str, float]]]:
    """Train a fresh network for ``cfg.epochs`` epochs; per-epoch offline gains on ``validate``.

    Deterministic on CPU for a fixed seed (network init and batch order from ``seed``). With
    ``cfg.residual`` the curve starts with the untrained network (epoch 0: span-error's picks).
    """
    if not train:
        raise ConfigError("distillation needs at least one training row")
    torch.manual_seed(int(seed))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    qnet = cfg.network()
    opt = torch.optim.Adam(qnet.parameters(), lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    curve: list[dict[str, float]] = []
    if cfg.residual and validate:
        curve.append({"epoch": 0.0, "loss": float("nan"), **offline_gain(qnet, validate)})
    for epoch in range(cfg.epochs):
        qnet.train()
        losses = []
        for batch in _batches(train, rng):
            loss = _loss(qnet, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_value_(qnet.parameters(), cfg.grad_clip_value)
            opt.step()
            losses.append(float(loss.item()))
        point = {"epoch": float(epoch + 1), "loss": float(np.mean(losses))}
        if validate:
            point.update(offline_gain(qnet, validate))
        curve.append(point)
    qnet.eval()
    return qnet, curve


def _nearest_candidate(gains: np.ndarray, frame: int) -> float:
    """Gain of ``frame`` if it was tried, else of the tried frame nearest to it (earlier on ties)."""
    tried = np.flatnonzero(np.isfinite(gains))
    return float(gains[tried[np.argmin(np.abs(tried - frame))]])


def offline_gain(qnet: QNetwork, rows: Sequence[Row]) -> dict[str, float]:
    """Mean one-step J&F gain of the policy's argmax on ``rows`` (nearest tried frame's gain), with
    Farthest's, span-error's and the oracle's on the same rows, and the fraction of the policy's
    picks among the tried frames (1 for span-error on rows that follow it: its gain is then exact).

    ``gap`` = (policy - Farthest) / (oracle - Farthest) of the means (one-step gap closed).
    """
    qnet.eval()
    agent, far, span_pick, best, exact = [], [], [], [], []
    with torch.inference_mode():
        for row in rows:
            a = int(qnet(torch.from_numpy(row.obs.astype(np.float32)))[0].argmax())
            agent.append(_nearest_candidate(row.gains, a))
            far.append(_nearest_candidate(row.gains, row.farthest))  # a candidate in lookahead data
            span_pick.append(_nearest_candidate(row.gains, row.span))
            best.append(float(np.nanmax(row.gains)))
            exact.append(float(np.isfinite(row.gains[a])))
    m_agent, m_far, m_best = float(np.mean(agent)), float(np.mean(far)), float(np.mean(best))
    span = m_best - m_far
    return {
        "gain_agent": m_agent,
        "gain_farthest": m_far,
        "gain_span": float(np.mean(span_pick)),
        "gain_oracle": m_best,
        "gap": (m_agent - m_far) / span if span > 0 else float("nan"),
        "tried_fraction": float(np.mean(exact)),
    }
