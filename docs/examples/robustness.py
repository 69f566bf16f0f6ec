"""How-to: robustness — the noise corruptions with mCE, calibration, and certification by smoothing."""

import torch
from sklearn.datasets import load_digits
from torch import nn

import noisereg
from noisereg import metrics, noise, robustness

x, y = load_digits(return_X_y=True)
x = torch.tensor(x / 16.0, dtype=torch.float32)  # images in [0, 1]: the corruption constants' range
y = torch.tensor(y)
x_train, y_train, x_test, y_test = x[:1000], y[:1000], x[1000:1300], y[1000:1300]


def train(sigma: float) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    if sigma:
        noisereg.attach(model, noise.Gaussian(std=sigma, clip=(0.0, 1.0)), at="input", seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(15):
        model.train()
        for batch in torch.randperm(1000, generator=torch.Generator().manual_seed(epoch)).split(100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            opt.step()
    return model.eval()


plain, noisy = train(0.0), train(0.25)
# CIFAR-10-C constants for gaussian, shot, impulse and speckle noise, at severities 1-5
suite = dict(constants="cifar10", corruptions=["gaussian", "shot", "impulse", "speckle"], seed=0)
base = robustness.evaluate_corruptions(plain, x_test, y_test, **suite)
trained = robustness.evaluate_corruptions(noisy, x_test, y_test, **suite)
print(f"clean accuracy {base.clean_accuracy:.3f} -> {trained.clean_accuracy:.3f}")
print(f"mean corruption accuracy {base.mean_corruption_accuracy:.3f} -> {trained.mean_corruption_accuracy:.3f}")
print(f"mCE of the noisy model against the plain one: {trained.mce(base):.3f}")  # below 1: fewer errors

with torch.no_grad():
    logits = noisy(x_test)
print(
    f"ECE (15 bins) {metrics.ece(logits, y_test, from_logits=True):.3f}, "
    f"NLL {metrics.nll(logits, y_test, from_logits=True):.3f}, "
    f"Brier {metrics.brier_score(logits, y_test, from_logits=True):.3f}"
)

# Randomized smoothing (Cohen et al. 2019): certified L2 radius σ·Φ⁻¹(p̲_A) per input, or abstain.
certificate = robustness.certify(noisy, x_test[:20], sigma=0.25, n0=20, n=200, alpha=0.001, seed=0)
radii = [0.0, 0.25, 0.5]
print("certified accuracy at radii", radii, robustness.certified_accuracy(certificate, y_test[:20], radii))
