"""How-to: study your own model with `noisereg.study.run_model` — any nn.Module, your data, your loss.

Small enough to run in seconds (3 seeds x 3 folds, 5 epochs); use 10 or more seeds for evidence.
"""

import torch
from torch import nn

from noisereg import noise, study


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act, self.head = nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc(x)))


x = torch.randn(120, 2, generator=torch.Generator().manual_seed(0))
y = (x[:, 0] * x[:, 1] > 0).long()
result = study.run_model(
    model=Net,  # a fresh, seeded model per replica
    data=(x, y),  # or {"train": (x, y), "test": ...}, or a Dataset
    folds=3,
    loss=nn.CrossEntropyLoss(),
    optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2),
    epochs=5,
    batch_size=32,
    seeds=3,
    arms={
        "no noise": [],  # the baseline: every other arm is compared with it, seed by seed
        "input": [study.site(noise.Gaussian(std=0.3), at="input")],
        "hidden": [study.site(noise.Gaussian(std=0.1), at="activations", select="act", where="before")],
        "weights": [study.site(noise.Gaussian(std=0.01), at="weights", select="head.weight")],
    },
    grid={"hidden": [0.1, 0.3]},  # one cell per strength of the arm's site
    out="runs/my-net",  # the store: run again to resume
)
print(result.table())  # the evidence of `noisereg study`
print("report:", result.report())  # summary.json, summary.md, report.html, plots
