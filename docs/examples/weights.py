"""How-to: noise on weights — W̃ = W + σ·ε, gradients taken at W̃ and applied to W."""

import torch
from torch import nn

import noisereg
from noisereg import noise

torch.manual_seed(0)
model = nn.LSTM(input_size=3, hidden_size=8, batch_first=True)
clean = {k: v.clone() for k, v in model.state_dict().items()}
# Every weight matrix of the LSTM (not the biases), redrawn once per optimizer step, as Graves
# (2011) did once per training sequence: with one sequence per step that is the same.
opt = torch.optim.SGD(model.parameters(), lr=0.1)
handle = noisereg.attach(model, noise.Gaussian(std=0.05), at="weights", select="weight_*", resample="step", seed=0)

x = torch.randn(4, 10, 3)
for step in range(3):
    model.train()
    opt.zero_grad()
    model(x)[0].square().mean().backward()
    opt.step()

state = model.state_dict()  # always the clean weights: safe to save or export
assert set(state) == set(clean)
model.eval()
with torch.no_grad():
    out, _ = model(x)  # eval: the clean weights, exactly
print(noisereg.describe(model))
handle.remove()
