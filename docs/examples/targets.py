"""How-to: noise on targets — label smoothing (both conventions), label flips, regression targets."""

import torch
from torch import nn

import noisereg
from noisereg import noise
from noisereg.sites import flip_labels, label_smoothing

y = torch.tensor([0, 2, 1])
# torch's convention, (1 − ε)·onehot + ε/C: the true class keeps 1 − ε + ε/C
print([round(v, 4) for v in label_smoothing(y, 0.3, num_classes=3)[0].tolist()])  # [0.8, 0.1, 0.1]
# the other convention, ε/(C − 1) on the wrong classes only: the true class keeps exactly 1 − ε
others = label_smoothing(y, 0.3, num_classes=3, spread="others")
print([round(v, 4) for v in others[0].tolist()])  # [0.7, 0.15, 0.15]

# A stated flip rate is the realized one: each flipped label moves to one of the C − 1 others.
labels = torch.randint(0, 10, (100_000,), generator=torch.Generator().manual_seed(0))
flipped = flip_labels(labels, 0.2, num_classes=10, generator=torch.Generator().manual_seed(1))
print(f"realized flip rate {(flipped != labels).float().mean().item():.3f}")  # 0.200 ± 0.003

# In a loop: attach target noise to the model, call the handle on each batch's targets.
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
smooth = noisereg.attach(model, noisereg.LabelSmoothing(0.1, num_classes=3), at="targets", seed=0)
x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
model.train()
soft = smooth(y)  # [32, 3] soft targets in training mode
nn.functional.cross_entropy(model(x), soft).backward()
model.eval()
assert torch.equal(smooth(y), y)  # eval: the targets untouched
smooth.remove()

# Regression targets: ỹ = y + σ·ε, much like input noise.
regressor = nn.Linear(4, 1)
jitter = noisereg.attach(regressor, noise.Gaussian(std=0.1), at="targets", seed=0)
regressor.train()
print([round(v, 4) for v in jitter(torch.zeros(3, 1)).flatten().tolist()])  # 0 + 0.1·ε
jitter.remove()
