"""Tutorial, step 1: one GaussianNoise layer in a plain PyTorch loop (the reference case study's data)."""

import torch
from sklearn.datasets import make_circles
from torch import nn

import noisereg

# The reference case study: 100 points on two circles, the first 30 train, the other 70 test.
x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)
x_train, y_train, x_test, y_test = x[:30], y[:30], x[30:], y[30:]

torch.manual_seed(0)
model = nn.Sequential(
    noisereg.GaussianNoise(0.01, seed=0),  # x + 0.01·ε on the input, in training only
    nn.Linear(2, 500),
    nn.ReLU(),
    nn.Linear(500, 1),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(300):  # the article trains 4000 epochs; 300 keep this page fast
    model.train()  # noise on: a new draw every batch
    opt.zero_grad()
    loss = nn.functional.binary_cross_entropy_with_logits(model(x_train), y_train)
    loss.backward()
    opt.step()

model.eval()  # noise off, exactly: the layer returns its input
with torch.no_grad():
    assert torch.equal(model[0](x_test), x_test)
    accuracy = ((model(x_test) > 0).float() == y_test).float().mean().item()
print(f"test accuracy after 300 epochs: {accuracy:.3f}")
