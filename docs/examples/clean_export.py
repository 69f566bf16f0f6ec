"""How-to: export a model without its noise — `strip` removes every noise, the graph holds no random op."""

import torch
from torch import nn

import noisereg
from noisereg.noise import Gaussian

model = nn.Sequential(noisereg.GaussianNoise(0.1), nn.Linear(2, 1))
noisereg.attach(model, Gaussian(std=0.1), at="weights", seed=0)
program = torch.export.export(noisereg.strip(model), (torch.zeros(1, 2),))
assert noisereg.sites.random_ops(program.graph) == []
