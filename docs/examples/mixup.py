"""How-to: mixup and CutMix as target noise — x̃ = λx_i + (1 − λ)x_j, ỹ likewise, λ ~ Beta(α, α)."""

import torch
from torch import nn

import noisereg

model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
mix = noisereg.attach(model, noisereg.Mixup(0.4, num_classes=10), at="targets", seed=0)
cut = noisereg.CutMix(1.0, num_classes=10)  # the same interface, patches instead of blends

x, y = torch.rand(33, 1, 8, 8), torch.randint(0, 10, (33,))  # an odd batch is fine
original = x.clone()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
model.train()
inputs, targets = mix(x, y)  # mixed inputs and soft targets [33, 10]
assert torch.equal(x, original)  # the batch is not changed in place
assert torch.allclose(targets.sum(1), torch.ones(33))
opt.zero_grad()
nn.functional.cross_entropy(model(inputs), targets).backward()
opt.step()

model.eval()
inputs, targets = mix(x, y)
assert inputs is x and targets is y  # eval: no mixing
mix.remove()
print(cut)
