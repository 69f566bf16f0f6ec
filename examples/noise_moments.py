"""Measured moments of every noise kind against its formula (one million draws each, seed 0).

    python examples/noise_moments.py

Prints, for each kind, the quantity its formula fixes, the expected value, the measured one, and the
measured value's standard error, so a reader can check each formula at a glance.
"""

from __future__ import annotations

import math

import torch

from noisereg import noise

N = 1_000_000


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def se_std(sample: torch.Tensor) -> float:
    c = sample - sample.mean()
    var = c.square().mean()
    return math.sqrt(((c.pow(4).mean() - var**2) / sample.numel()).item()) / (2 * math.sqrt(var.item()))


def row(kind: str, formula: str, quantity: str, expected: float, measured: float, se: float) -> None:
    print(f"{kind:<24}{formula:<36}{quantity:<22}{expected:>10.4f}{measured:>10.4f}{se:>10.4f}")


def main() -> None:
    print(f"{'kind':<24}{'formula':<36}{'quantity':<22}{'expected':>10}{'measured':>10}{'s.e.':>10}")
    zero = torch.zeros(N, dtype=torch.float64)
    one = torch.ones(N, dtype=torch.float64)

    e = noise.gaussian(zero, 0.3, generator=gen())
    row("gaussian", "x + σε, σ=0.3", "std of x̃ − x", 0.3, e.std().item(), se_std(e))
    row("", "", "mean of x̃ − x", 0.0, e.mean().item(), e.std().item() / math.sqrt(N))
    e = noise.uniform(zero, 0.5, generator=gen())
    row("uniform", "x + U(−a, a), a=0.5", "std (a/√3)", 0.5 / math.sqrt(3), e.std().item(), se_std(e))
    f = noise.multiplicative_gaussian(-2 * one, 0.2, generator=gen()) / -2
    row("multiplicative/speckle", "x(1 + σε), σ=0.2", "std of factor", 0.2, f.std().item(), se_std(f))
    row("", "", "mean of factor", 1.0, f.mean().item(), f.std().item() / math.sqrt(N))
    f = noise.gaussian_dropout(one, 0.3, generator=gen())
    row(
        "gaussian_dropout",
        "x(1 + σε), σ=√(p/(1−p)), p=0.3",
        "std of factor",
        math.sqrt(0.3 / 0.7),
        f.std().item(),
        se_std(f),
    )
    x = torch.randn(N, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = noise.alpha_dropout(x, 0.2, generator=gen())
    row("alpha_dropout", "Keras 3, p=0.2, x ~ N(0, 1)", "std of x̃", 1.0, y.std().item(), se_std(y))
    row("", "", "mean of x̃", 0.0, y.mean().item(), y.std().item() / math.sqrt(N))
    sig = torch.randn(10, N // 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3
    e = noise.snr_gaussian(sig, 12.0, generator=gen()) - sig
    achieved = 10 * torch.log10(sig.square().mean(1) / e.square().mean(1))
    row(
        "snr_gaussian",
        "σᵢ = rms(xᵢ)/10^(snr/20), 12 dB",
        "SNR dB (mean of 10)",
        12.0,
        achieved.mean().item(),
        achieved.std().item() / math.sqrt(10),
    )
    y = noise.impulse(0.5 * one.float(), 0.1, salt_vs_pepper=0.3, generator=gen())
    frac = (y != 0.5).double().mean().item()
    row("impulse", "replace w.p. 0.1 (salt 30%)", "replaced fraction", 0.1, frac, math.sqrt(0.09 / N))
    row("", "", "salt fraction", 0.03, (y == 1).double().mean().item(), math.sqrt(0.03 * 0.97 / N))
    y = noise.shot(0.4 * one, 25.0, generator=gen())
    row("shot", "Poisson(25x)/25, x=0.4", "std (√(x/25))", math.sqrt(0.4 / 25), y.std().item(), se_std(y))
    row("", "", "mean", 0.4, y.mean().item(), y.std().item() / math.sqrt(N))
    for beta in (0.0, 1.0, 2.0):
        e = noise.colored(torch.zeros(1000, 1000, dtype=torch.float64), 0.3, beta=beta, generator=gen())
        col = e[:, 500]
        row(
            "colored" if beta == 0 else "",
            f"1/f^β noise, β={beta:g}, σ=0.3",
            "std at one position",
            0.3,
            col.std().item(),
            se_std(col),
        )
    e = noise.spatial(torch.zeros(1000, 32, 32, dtype=torch.float64), 0.3, length=2.0, generator=gen())
    px = e[:, 16, 16]
    row("spatial", "Gaussian-smoothed, ℓ=2 px, σ=0.3", "std at one pixel", 0.3, px.std().item(), se_std(px))


if __name__ == "__main__":
    main()
