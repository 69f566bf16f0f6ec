"""How-to: study your own model — the same seeds with and without noise, then paired evidence.

noisereg's statistics take plain lists of one number per seed, so any training loop can use them.
"""

import torch
from sklearn.datasets import load_wine
from torch import nn

import noisereg
from noisereg import noise
from noisereg.study import stats

x, y = load_wine(return_X_y=True)
order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
x, y = torch.tensor(x, dtype=torch.float32)[order], torch.tensor(y)[order]
x = (x - x[:60].mean(0)) / x[:60].std(0)  # standardize with the training part's statistics
x_train, y_train, x_test, y_test = x[:60], y[:60], x[60:], y[60:]


class MyModel(nn.Module):  # any nn.Module: noisereg does not need to know it
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def run(seed: int, sigma: float) -> float:
    """Test accuracy of one training; the seed fixes the initialisation, the batches and the noise."""
    torch.manual_seed(seed)
    model = MyModel()
    if sigma:
        noisereg.attach(model, noise.Gaussian(std=sigma), at="input", seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(30):
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_train), y_train).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return (model(x_test).argmax(1) == y_test).float().mean().item()


seeds = range(8)  # use 30 or more for a real study
baseline = [run(s, 0.0) for s in seeds]
arms = {f"input σ={sigma}": [run(s, sigma) for s in seeds] for sigma in (0.1, 0.5)}

summary = stats.summary_statistics(baseline)  # mean, sd and the 95% t-interval over seeds
print(f"no noise: {summary['mean']:.3f}, 95% CI [{summary['ci95'][0]:.3f}, {summary['ci95'][1]:.3f}]")
comparisons = {name: stats.paired(values, baseline) for name, values in arms.items()}
adjusted = stats.holm([c["p_ttest"] for c in comparisons.values()])  # one family of comparisons
for (name, c), p in zip(comparisons.items(), adjusted):
    low, high = c["ci95_diff"]
    print(f"{name}: Δ {c['mean_diff']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}], Holm p {p:.3g}")
