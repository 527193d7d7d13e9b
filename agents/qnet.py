"""The Bi-LSTM Q-network: one Q value per frame from the (N, 2) quality/history state.

Architecture (IVOS-W supplementary, and the reference implementation): a per-frame encoder MLP
2 -> 128 -> 128, a bidirectional recurrence over the frame axis so each frame's value depends on
the whole video, and a per-frame decoder 256 -> 128 -> 1. The recurrence runs over frames, not
time steps, so the same weights score a 25-frame training subsequence and an 80-frame test video.

Two recurrences are offered (``recurrence``):

* ``"shared_cell"``: the reference's form, one ``nn.LSTMCell`` run forward and then backward over
  the frames (the two directions share weights, so the net is symmetric under time reversal up to
  the concatenation order);
* ``"bilstm"``: ``nn.LSTM(bidirectional=True)`` with separate weights per direction (fused kernel,
  faster for long videos).

One extra option, off by default (the paper's network and its checkpoints are unchanged then):
``prior_column`` makes the head *residual* on a training-free score that the observation already
holds (the ``span`` state feature: span-error's score / N, in [0, 1])::

    Q(k) = a * (x[k, c] - 2 * [h_k > 0]) + f(x)_k

with ``a = exp(log_a)`` > 0 (learned unless ``prior_learn_scale`` is false) and f the network above,
whose last layer starts at zero. The penalty puts every annotated frame (history count h > 0,
column 1) below every other frame, as span-error skips them; so an untrained residual network
picks exactly span-error's frame, and training can only move away from it where the data says so.

Several columns (``prior_column=[c1, c2]``) give their minimum: on the two ``distance`` columns that
is Farthest's score (the distance to the nearest annotated frame / N). ``prior_quality_weight`` w
multiplies the score by ``1 + w * (1 - q_k)`` (q: column 0), as
:class:`~ivos_rl.strategies.farthest.FarthestStrategy`'s ``quality_weight`` does, so an untrained
network on that prior picks exactly that strategy's frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ivos_rl.errors import ConfigError, InputValidationError

Recurrence = Literal["shared_cell", "bilstm"]
RECURRENCES: tuple[str, ...] = ("shared_cell", "bilstm")


class QNetwork(nn.Module):
    """Maps states (B, N, 2) to Q values (B, N) for any N >= 1."""

    def __init__(
        self,
        recurrence: Recurrence = "shared_cell",
        in_features: int = 2,
        hidden: int = 128,
        decoder_hidden: int = 128,
        prior_column: int | Sequence[int] | None = None,
        prior_scale: float = 1.0,
        prior_learn_scale: bool = True,
        prior_quality_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if recurrence not in RECURRENCES:
            raise ConfigError(f"recurrence must be one of {RECURRENCES}, got {recurrence!r}")
        if hidden < 1 or decoder_hidden < 1 or in_features < 1:
            raise ConfigError(
                f"QNetwork sizes must be >= 1, got in={in_features} hidden={hidden} "
                f"decoder_hidden={decoder_hidden}"
            )
        self.recurrence = recurrence
        self.in_features = in_features
        self.hidden = hidden
        self.decoder_hidden = decoder_hidden
        self.encoder = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )
        self.cell: nn.LSTMCell | None = None
        self.lstm: nn.LSTM | None = None
        if recurrence == "shared_cell":
            self.cell = nn.LSTMCell(hidden, hidden)
        else:
            self.lstm = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.Linear(2 * hidden, decoder_hidden), nn.ReLU(), nn.Linear(decoder_hidden, 1)
        )
        self.prior_column: int | list[int] | None = (
            None if prior_column is None
            else int(prior_column) if isinstance(prior_column, int) else [int(c) for c in prior_column]
        )
        # the columns the prior reads, normalised once (prior_column keeps the form checkpoints record)
        self._prior_cols: list[int] = (
            [] if self.prior_column is None
            else [self.prior_column] if isinstance(self.prior_column, int) else self.prior_column
        )
        self.prior_learn_scale = bool(prior_learn_scale)
        self.prior_quality_weight = float(prior_quality_weight)
        self.log_prior_scale: nn.Parameter | None = None
        if self.prior_column is not None:
            self._init_residual(float(prior_scale))
        elif self.prior_quality_weight != 0.0:
            raise ConfigError("prior_quality_weight needs a prior_column")

    def _init_residual(self, scale: float) -> None:
        """Zero the last layer (f = 0 at the start) and hold a = ``scale`` as log a."""
        columns = self._prior_cols
        if not columns or any(isinstance(c, bool) or not 2 <= c < self.in_features for c in columns):
            raise ConfigError(
                f"prior_column must index feature columns in [2, {self.in_features}), "
                f"got {self.prior_column!r}"
            )
        if not scale > 0 or not math.isfinite(scale):
            raise ConfigError(f"prior_scale must be a finite number > 0, got {scale!r}")
        weight = self.prior_quality_weight
        if not weight >= 0 or not math.isfinite(weight):
            raise ConfigError(f"prior_quality_weight must be a finite number >= 0, got {weight!r}")
        last = self.decoder[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.log_prior_scale = nn.Parameter(
            torch.tensor(math.log(scale)), requires_grad=self.prior_learn_scale
        )

    def config(self) -> dict[str, object]:
        """Constructor arguments, stored in checkpoints so the right network is rebuilt."""
        out: dict[str, object] = {
            "recurrence": self.recurrence,
            "in_features": self.in_features,
            "hidden": self.hidden,
            "decoder_hidden": self.decoder_hidden,
        }
        if self.prior_column is not None:  # absent for the paper's network: its configs stay as they were
            out.update(prior_column=self.prior_column, prior_learn_scale=self.prior_learn_scale)
            if self.prior_quality_weight:  # absent when 0: the span-error residual files stay as they were
                out.update(prior_quality_weight=self.prior_quality_weight)
        return out

    @property
    def prior_scale(self) -> float | None:
        """The residual head's current a (None without a prior)."""
        return None if self.log_prior_scale is None else float(self.log_prior_scale.detach().exp())

    def prior(self, state: torch.Tensor) -> torch.Tensor:
        """(B, N) prior score min_c x[..., c] (x (1 + w (1 - q))) - 2 * [h > 0] of (B, N, in_features)
        states (module doc)."""
        if self.prior_column is None:
            raise ConfigError("this Q-network has no prior column")
        score = state[..., self._prior_cols].amin(dim=-1)
        if self.prior_quality_weight:
            score = score * (1.0 + self.prior_quality_weight * (1.0 - state[..., 0]))
        return score - 2.0 * (state[..., 1] > 0).to(state.dtype)

    def _shared_cell(self, feats: torch.Tensor) -> torch.Tensor:
        """Run the one LSTMCell forward and backward over frames; concat per frame -> (B, N, 2H)."""
        assert self.cell is not None
        n = feats.shape[1]
        fw: list[torch.Tensor] = []
        bw: list[torch.Tensor] = []
        state_fw: tuple[torch.Tensor, torch.Tensor] | None = None
        state_bw: tuple[torch.Tensor, torch.Tensor] | None = None
        for i in range(n):
            state_fw = self.cell(feats[:, i], state_fw)
            state_bw = self.cell(feats[:, n - 1 - i], state_bw)
            fw.append(state_fw[0])
            bw.append(state_bw[0])
        bw.reverse()
        return torch.cat([torch.stack(fw, dim=1), torch.stack(bw, dim=1)], dim=2)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Q values (B, N) for states (B, N, in_features); a single (N, in_features) state gets B=1."""
        if state.ndim == 2:
            state = state.unsqueeze(0)
        if state.ndim != 3 or state.shape[-1] != self.in_features or state.shape[1] < 1:
            raise InputValidationError(
                f"QNetwork expects (B, N, {self.in_features}) with N >= 1, got {tuple(state.shape)}"
            )
        feats = self.encoder(state)
        if self.cell is not None:
            seq = self._shared_cell(feats)
        else:
            assert self.lstm is not None
            seq, _ = self.lstm(feats)
        q = self.decoder(seq).squeeze(-1)
        if self.log_prior_scale is not None:
            q = q + self.log_prior_scale.exp() * self.prior(state)
        return q
