"""Small models the sites tests attach noise to, and a snapshot of everything attach may change."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))


class SeqNet(nn.Module):
    """Embedding -> LSTM -> Linear, batch first; ids 0 are padding."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(12, 6, padding_idx=0)
        self.lstm = nn.LSTM(6, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.lstm(self.emb(ids))
        return self.head(out[:, -1])


class CellNet(nn.Module):
    """An LSTMCell unrolled in Python: its weights are used once per time step within one forward."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.cell = nn.LSTMCell(3, 5)
        self.head = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = x.new_zeros(x.shape[0], 5)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.head(h)


def snapshot(model: nn.Module) -> dict:
    """Everything that must come back exactly after ``remove()``."""
    return {
        "state": [(k, v.detach().clone()) for k, v in model.state_dict().items()],
        "params": [(n, id(p)) for n, p in model.named_parameters()],
        "types": [type(m) for m in model.modules()],
        "hooks": [
            (
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._state_dict_hooks),
                len(getattr(m, "_state_dict_pre_hooks", {})),
                len(m._load_state_dict_pre_hooks),
                len(m._load_state_dict_post_hooks),
                parametrize.is_parametrized(m),
            )
            for m in model.modules()
        ],
    }


def assert_same(a: dict, b: dict) -> None:
    assert [k for k, _ in a["state"]] == [k for k, _ in b["state"]]
    for (_, x), (_, y) in zip(a["state"], b["state"], strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)
    assert a["params"] == b["params"]
    assert a["types"] == b["types"]
    assert a["hooks"] == b["hooks"]
