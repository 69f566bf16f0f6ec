"""How-to: noise on the input — standardize first, then one σ means the same for every feature."""

import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

import noisereg
from noisereg import noise

x, y = load_breast_cancer(return_X_y=True)
x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)
train, test = slice(0, 400), slice(400, None)
mean, std = x[train].mean(0), x[train].std(0)  # statistics of the training part only
x = (x - mean) / std

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 1))
handle = noisereg.attach(model, noise.Gaussian(std=0.3), at="input", seed=0)  # x̃ = x + 0.3·ε

opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(50):
    model.train()
    for batch in torch.arange(400).split(64):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(x[batch]), y[batch]).backward()
        opt.step()

model.eval()
with torch.no_grad():
    accuracy = ((model(x[test]) > 0).float() == y[test]).float().mean().item()
print(f"test accuracy with input noise σ = 0.3: {accuracy:.3f}")
handle.remove()
