"""How-to: annealed gradient noise (Neelakantan et al. 2015) on any torch optimizer."""

import torch
from torch import nn

import noisereg

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
# g̃ = g + N(0, σ_t²), σ_t² = η / (1 + t)^0.55, before the optimizer's own scaling (Adam sees g̃)
noise = noisereg.annealed_gaussian(eta=0.3)
handle = noisereg.attach(model, noise, at="gradients", optimizer=opt, seed=0)
print(noise.std(0), noise.std(100))  # σ_0 = √0.3, σ_100 = √(0.3 / 101^0.55)

x, y = torch.randn(64, 4), torch.randn(64, 1)
for step in range(20):
    model.train()
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()  # the noise is added here, once per step, after any clipping
print(noisereg.describe(model))
handle.remove()
