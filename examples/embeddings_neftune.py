"""NEFTune embedding noise on a token model, padding untouched: digits read as token sequences.

Each 8x8 digit image becomes a sequence of pixel-intensity tokens (1..17; 0 is padding), cut to a
random length of 24 to 64 tokens and padded, so sequences have real padding. The model embeds the
tokens, averages the real ones and classifies. NEFTune(alpha=5) is attached to the embedding; the
attention mask is read from the model's ``attention_mask`` argument, so padded positions never take
noise and L is each sequence's real length.

Run: PYTHONPATH=src python examples/embeddings_neftune.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from noisereg.sites import NEFTune, attach, describe


class TokenClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(18, 32, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(32 + 64, 64), nn.ReLU(), nn.Linear(64, 10))
        self.position = nn.Parameter(torch.zeros(64, 64))

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        real = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(ids) * real).sum(1) / real.sum(1)
        # Which token sits where, as a bag of positions weighted by intensity.
        where = (ids.float() / 17.0) @ self.position
        return self.head(torch.cat([pooled, where], dim=1))


def tokens(seed: int = 0) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    ids = torch.tensor(digits.data, dtype=torch.long) + 1
    lengths = torch.randint(24, 65, (len(ids),), generator=torch.Generator().manual_seed(seed))
    mask = (torch.arange(64) < lengths[:, None]).long()
    ids = ids * mask
    split = train_test_split(ids, mask, torch.tensor(digits.target), test_size=0.5, random_state=seed)
    return tuple(split)


def train(alpha: float | None, data: tuple[torch.Tensor, ...], epochs: int = 30) -> float:
    ids_tr, ids_te, mask_tr, mask_te, y_tr, y_te = data
    torch.manual_seed(0)
    model = TokenClassifier()
    if alpha is not None:
        attach(model, NEFTune(alpha=alpha), at="embeddings", mask="attention_mask", seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(1)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(y_tr), generator=order).split(64):
            opt.zero_grad()
            logits = model(ids_tr[batch], attention_mask=mask_tr[batch])
            nn.functional.cross_entropy(logits, y_tr[batch]).backward()
            opt.step()
    if alpha is not None:
        print(describe(model))
    model.eval()
    with torch.no_grad():
        return (model(ids_te, attention_mask=mask_te).argmax(1) == y_te).float().mean().item()


if __name__ == "__main__":
    torch.set_num_threads(2)
    data = tokens()
    for alpha in (None, 5.0, 15.0):
        print(f"NEFTune alpha={alpha}: test accuracy {train(alpha, data):.3f}")
