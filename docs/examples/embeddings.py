"""How-to: NEFTune noise on token embeddings, with padding left untouched."""

import torch
from torch import nn

import noisereg


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 32, padding_idx=0)
        self.head = nn.Linear(32, 2)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        real = attention_mask.unsqueeze(-1).float()
        return self.head((self.embed(ids) * real).sum(1) / real.sum(1))


model = Classifier()
# α = 5 (the paper tries 5, 10, 15); L is each sequence's count of real tokens, read from the
# forward argument named attention_mask (1 = real token, 0 = padding).
handle = noisereg.attach(model, noisereg.NEFTune(alpha=5.0), at="embeddings", mask="attention_mask", seed=0)

ids = torch.tensor([[5, 7, 9, 0, 0], [3, 4, 0, 0, 0]])  # 0 is padding
mask = (ids != 0).long()
model.eval()
clean = model.embed(ids).detach()  # eval mode: the clean embeddings
seen = []
hook = model.embed.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
model.train()
model(ids, attention_mask=mask)  # the hook registered after attach sees the noisy embeddings
hook.remove()

change = seen[0] - clean
lengths = mask.sum(1)  # L counts real tokens: 3 and 2, not the padded 5
bound = 5.0 / (lengths * 32).sqrt()  # |noise| <= α/√(L·d)
assert torch.equal(change[mask == 0], torch.zeros_like(change[mask == 0]))  # padding untouched
assert (change.abs().amax(dim=(1, 2)) <= bound).all()
print(f"largest change per sequence {change.abs().amax(dim=(1, 2)).tolist()}, bound {bound.tolist()}")
handle.remove()
