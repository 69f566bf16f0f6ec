"""Cost of Gaussian noise in a training step, measured side by side in one run.

Two models, each with and without Gaussian noise on the input and after every hidden layer:
an MLP 784→1024→1024→10 and a small CNN on 1×28×28, batch 256, Adam. Steps of the noisy and the
clean model are interleaved so that both see the same machine load; the ratio of the medians of
noisy to clean step times is printed last (target: <= 1.05). Also printed: the time of the noise
draws alone, so a ratio above target can be attributed.

Run by hand: ``python benchmarks/noise_overhead.py [--steps 60] [--threads N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from noisereg.layers import GaussianNoise


def mlp(noisy: bool) -> nn.Sequential:
    def site(seed: int) -> list[nn.Module]:
        return [GaussianNoise(0.1, seed=seed)] if noisy else []

    return nn.Sequential(
        *site(0), nn.Linear(784, 1024), nn.ReLU(), *site(1),
        nn.Linear(1024, 1024), nn.ReLU(), *site(2), nn.Linear(1024, 10),
    )


def cnn(noisy: bool) -> nn.Sequential:
    def site(seed: int) -> list[nn.Module]:
        return [GaussianNoise(0.1, seed=seed)] if noisy else []

    return nn.Sequential(
        *site(0), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), *site(1), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), *site(2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), *site(3), nn.Linear(128, 10),
    )


def step_timer(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    return step


def compare(name: str, build, x: torch.Tensor, steps: int) -> float:
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    clean = build(False)
    torch.manual_seed(0)
    noisy = build(True)  # noise layers hold no parameters: the same initial weights
    run_clean, run_noisy = step_timer(clean, x, y), step_timer(noisy, x, y)
    for _ in range(5):
        run_clean(), run_noisy()
    t_clean, t_noisy = [], []
    for _ in range(steps):
        t_clean.append(run_clean())
        t_noisy.append(run_noisy())
    with torch.no_grad():
        sizes = [m.numel() for m in _site_inputs(noisy, x)]
    gen = torch.Generator().manual_seed(1)
    draws = []
    for _ in range(steps):
        start = time.perf_counter()
        for n in sizes:
            torch.randn(n, generator=gen)
        draws.append(time.perf_counter() - start)
    c, n, d = (statistics.median(t) for t in (t_clean, t_noisy, draws))
    print(f"{name}: clean {c * 1e3:.2f} ms, noisy {n * 1e3:.2f} ms, draws alone {d * 1e3:.2f} ms "
          f"({sum(sizes) / 1e6:.2f} M normals), ratio {n / c:.3f}")
    return n / c


def _site_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out))
             for m in model if isinstance(m, GaussianNoise)]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each", flush=True)
    gen = torch.Generator().manual_seed(0)
    ratios = [
        compare("mlp 784-1024-1024-10", mlp, torch.randn(256, 784, generator=gen), args.steps),
        compare("cnn 1x28x28", cnn, torch.randn(256, 1, 28, 28, generator=gen), args.steps),
    ]
    print(f"ratio: {max(ratios):.4f}")


if __name__ == "__main__":
    main()
