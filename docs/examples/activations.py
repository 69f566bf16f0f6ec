"""How-to: noise on hidden activations, before or after the activation function."""

import torch
from torch import nn

import noisereg
from noisereg import noise

model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))

# Before every ReLU: noise on the linear output, which the ReLU then clips at 0.
before = noisereg.attach(model, noise.Gaussian(std=0.1), at="activations", select=nn.ReLU, where="before", seed=0)
# After the second ReLU, chosen by its qualified name (a glob): values may go below 0.
after = noisereg.attach(model, noise.Gaussian(std=0.1), at="activations", select="3", seed=1)
print(noisereg.describe(model))

x = torch.randn(8, 2)
model.train()
assert not torch.equal(model(x), model(x))  # a new draw every call in training
model.eval()
assert torch.equal(model(x), model(x))  # exactly off in eval mode
before.remove()
after.remove()
