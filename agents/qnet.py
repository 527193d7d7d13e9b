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
"""

from __future__ import annotations

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

    def config(self) -> dict[str, object]:
        """Constructor arguments, stored in checkpoints so the right network is rebuilt."""
        return {
            "recurrence": self.recurrence,
            "in_features": self.in_features,
            "hidden": self.hidden,
            "decoder_hidden": self.decoder_hidden,
        }

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
        return self.decoder(seq).squeeze(-1)
