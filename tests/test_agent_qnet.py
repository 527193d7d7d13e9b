"""Q-network shapes and information flow for both recurrences."""

from __future__ import annotations

import pytest
import torch

from ivos_rl.agents.qnet import QNetwork
from ivos_rl.errors import ConfigError, InputValidationError


@pytest.mark.parametrize("recurrence", ["shared_cell", "bilstm"])
@pytest.mark.parametrize("n", [25, 80])
def test_shapes_any_length(recurrence: str, n: int) -> None:
    torch.manual_seed(0)
    net = QNetwork(recurrence=recurrence)  # type: ignore[arg-type]
    out = net(torch.rand(4, n, 2))
    assert out.shape == (4, n)
    assert net(torch.rand(n, 2)).shape == (1, n)


@pytest.mark.parametrize("recurrence", ["shared_cell", "bilstm"])
def test_batch_rows_are_independent(recurrence: str) -> None:
    torch.manual_seed(0)
    net = QNetwork(recurrence=recurrence)  # type: ignore[arg-type]
    x = torch.rand(3, 10, 2)
    batched = net(x)
    for i in range(3):
        torch.testing.assert_close(batched[i], net(x[i : i + 1])[0])


@pytest.mark.parametrize("recurrence", ["shared_cell", "bilstm"])
def test_both_directions_reach_every_frame(recurrence: str) -> None:
    """Changing the last frame must change frame 0's Q (backward pass) and vice versa."""
    torch.manual_seed(0)
    net = QNetwork(recurrence=recurrence)  # type: ignore[arg-type]
    x = torch.rand(1, 6, 2)
    base = net(x)
    y = x.clone()
    y[0, -1] += 1.0
    assert net(y)[0, 0].item() != base[0, 0].item()
    z = x.clone()
    z[0, 0] += 1.0
    assert net(z)[0, -1].item() != base[0, -1].item()


def test_parameter_layout_matches_paper() -> None:
    net = QNetwork("shared_cell")
    shapes = [tuple(p.shape) for p in net.encoder.parameters()]
    assert shapes == [(128, 2), (128,), (128, 128), (128,)]
    dec = [tuple(p.shape) for p in net.decoder.parameters()]
    assert dec == [(128, 256), (128,), (1, 128), (1,)]
    assert net.cell is not None and net.cell.hidden_size == 128
    bi = QNetwork("bilstm")
    assert bi.lstm is not None and bi.lstm.bidirectional


def test_bad_config_and_input() -> None:
    with pytest.raises(ConfigError, match="recurrence"):
        QNetwork("gru")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match=r"\(B, N, 2\)"):
        QNetwork()(torch.rand(2, 5, 3))
