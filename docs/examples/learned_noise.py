"""How-to: learned noise — NoisyNet's factorised NoisyLinear and PNI's learned scale per layer."""

import torch
from torch import nn

import noisereg

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
# NoisyNet (Fortunato et al. 2018): W = μ + σ ⊙ f(ε_out) f(ε_in)ᵀ, f(x) = sgn(x)·√|x|, σ learned,
# σ₀ = 0.5; from_linear keeps the layer's trained weights as the means μ.
model[0] = noisereg.NoisyLinear.from_linear(model[0], sigma0=0.5, seed=0)
# PNI (He, Rakin & Fan 2019): W + α·N(0, std(W)²), α learned per layer from 0.25.
model[2] = noisereg.PNI(model[2], seed=1)

opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
for step in range(20):
    model.train()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

print(noisereg.describe(model))
model.eval()  # NoisyLinear uses its mean weights, PNI adds nothing
assert torch.equal(model(x), model(x))
