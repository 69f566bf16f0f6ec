"""Tutorial, step 2: the same noise attached to a model you do not change, then removed."""

import torch
from sklearn.datasets import make_circles
from torch import nn

import noisereg
from noisereg import noise

x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)
x_train, y_train, x_test, y_test = x[:30], y[:30], x[30:], y[30:]

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(2, 500), nn.ReLU(), nn.Linear(500, 1))  # the plain model
before = {k: v.clone() for k, v in model.state_dict().items()}

# σ = 0.1 on the hidden layer's linear output, before the ReLU (the case study's best single run)
hidden = noisereg.attach(model, noise.Gaussian(std=0.1), at="activations", select=nn.ReLU, where="before", seed=0)
print(noisereg.describe(model))

opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(300):
    model.train()
    opt.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(model(x_train), y_train).backward()
    opt.step()

model.eval()
with torch.no_grad():
    clean = model(x_test)
    with noisereg.noise_enabled(model, True):  # test-time noise only when asked for
        noisy = model(x_test)
print(
    f"test accuracy {((clean > 0).float() == y_test).float().mean().item():.3f}, "
    f"with test-time noise {((noisy > 0).float() == y_test).float().mean().item():.3f}"
)

hidden.remove()  # the model is a plain nn.Sequential again, with no hook left behind
print(noisereg.describe(model))  # no noise attached
assert not noisereg.describe(model) and set(model.state_dict()) == set(before)
