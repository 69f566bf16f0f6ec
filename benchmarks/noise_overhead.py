"""Cost of Gaussian noise in a training step, measured side by side in one run.

Two models, each with and without Gaussian noise on the input and after every hidden layer:
an MLP 784→1024→1024→10 and a small CNN on 1×28×28, batch 256, Adam. Steps of the noisy and the
clean model are interleaved so that both see the same machine load; the ratio of the medians of
noisy to clean step times is printed last (target: <= 1.08 for the MLP, <= 1.20 for the CNN), for
noise drawn by noisereg's Philox ``Stream`` (the default on a CPU); the same ratio with torch's
generator (``set_noise_generator("torch")``) is printed beside it. Also printed: the time of the noise
draws alone by each and the draw floor beside each ratio ((clean + draws) / clean: what the step would
cost if applying the noise cost nothing beyond drawing it), so a ratio above target can be attributed.
``ATEN_CPU_CAPABILITY=avx2`` (torch's kernels) and ``NUMBA_CPU_NAME=haswell`` (the Stream's kernel)
measure an AVX2 machine's code paths on an AVX-512 one.

Run by hand: ``python benchmarks/noise_overhead.py [--steps 60] [--threads N] [--summary FILE]``;
``--summary`` stores the table with its provenance as JSON (``benchmarks/results/noise_overhead.json``
is what the docs show; a second run with ``--build avx2`` under the two variables above adds its rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from noisereg.layers import GaussianNoise
from noisereg.seeding import set_noise_generator
from noisereg.streams import Stream

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # provenance lives beside this file
from provenance import record  # noqa: E402

TARGETS = {"mlp": 1.08, "cnn": 1.20}


def mlp(noisy: bool) -> nn.Sequential:
    def site(seed: int) -> list[nn.Module]:
        return [GaussianNoise(0.1, seed=seed)] if noisy else []

    return nn.Sequential(
        *site(0),
        nn.Linear(784, 1024),
        nn.ReLU(),
        *site(1),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        *site(2),
        nn.Linear(1024, 10),
    )


def cnn(noisy: bool) -> nn.Sequential:
    def site(seed: int) -> list[nn.Module]:
        return [GaussianNoise(0.1, seed=seed)] if noisy else []

    return nn.Sequential(
        *site(0),
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        *site(1),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        *site(2),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        *site(3),
        nn.Linear(128, 10),
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


def compare(name: str, build, x: torch.Tensor, steps: int) -> dict[str, float]:
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    clean = build(False)
    runs = {"clean": step_timer(clean, x, y)}
    for family in ("philox", "torch"):
        previous = set_noise_generator(family)
        try:
            torch.manual_seed(0)
            noisy = build(True)  # noise layers hold no parameters: the same initial weights
            runs[family] = step_timer(noisy, x, y)
            runs[family]()  # the layers make their generators on first use, under this family
        finally:
            set_noise_generator(previous)
    for _ in range(5):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(steps):
        for k, run in runs.items():
            times[k].append(run())
    with torch.no_grad():
        sizes = [m.numel() for m in _site_inputs(noisy, x)]
    draws: dict[str, list[float]] = {"philox": [], "torch": []}
    gen, stream = torch.Generator().manual_seed(1), Stream(1)
    for _ in range(steps):
        for k, draw in (("torch", lambda n: torch.randn(n, generator=gen)), ("philox", lambda n: stream.normal((n,)))):
            start = time.perf_counter()
            for n in sizes:
                draw(n)
            draws[k].append(time.perf_counter() - start)
    c, p, t = (statistics.median(times[k]) for k in ("clean", "philox", "torch"))
    dp, dt = statistics.median(draws["philox"]), statistics.median(draws["torch"])
    print(
        f"{name}: clean {c * 1e3:.2f} ms, noisy {p * 1e3:.2f} ms (Stream) / {t * 1e3:.2f} ms (torch), "
        f"draws alone {dp * 1e3:.2f} / {dt * 1e3:.2f} ms ({sum(sizes) / 1e6:.2f} M normals), "
        f"ratio {p / c:.3f} (Stream) / {t / c:.3f} (torch generator), "
        f"draw floor (clean + draws) / clean {(c + dp) / c:.3f} / {(c + dt) / c:.3f}"
    )
    return {
        "clean_ms": c * 1e3,
        "noisy_ms": p * 1e3,
        "ratio": p / c,
        "draw_floor": (c + dp) / c,
        "ratio_torch": t / c,
        "draw_floor_torch": (c + dt) / c,
    }


def _site_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in model if isinstance(m, GaussianNoise)
    ]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--summary", type=Path, help="store the rows and their provenance (JSON) in this file")
    parser.add_argument(
        "--build",
        default="default",
        help="the label of this run's rows (e.g. avx2 under ATEN_CPU_CAPABILITY=avx2 NUMBA_CPU_NAME=haswell); "
        "rows of other builds already in --summary are kept",
    )
    args = parser.parse_args()
    started = time.time()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each", flush=True)
    gen = torch.Generator().manual_seed(0)
    figures = {
        "mlp": compare("mlp 784-1024-1024-10", mlp, torch.randn(256, 784, generator=gen), args.steps),
        "cnn": compare("cnn 1x28x28", cnn, torch.randn(256, 1, 28, 28, generator=gen), args.steps),
    }
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (the machine may be shared)")
    if args.summary:
        _store(args, started, figures)
    print(f"ratio: {max(f['ratio'] for f in figures.values()):.4f}")


def _store(args: argparse.Namespace, started: float, figures: dict[str, dict[str, float]]) -> None:
    rows = [
        {"build": args.build, "model": name, "target": TARGETS[name], **{k: round(v, 3) for k, v in f.items()}}
        for name, f in figures.items()
    ]
    commands: list[str] = []
    if args.summary.is_file():  # keep the other builds' rows and the commands that measured them
        earlier = json.loads(args.summary.read_text())
        rows = [r for r in earlier["rows"] if r["build"] != args.build] + rows
        kept = {r["build"] for r in rows}
        commands = [c for c in earlier["command"].splitlines() if _build_of(c) in kept and _build_of(c) != args.build]
    setup = (
        f"One training step (Adam, batch 256) with Gaussian noise σ = 0.1 on the input and after every hidden "
        f"layer against the same step without noise, interleaved, median of {args.steps} steps each, "
        f"{torch.get_num_threads()} thread(s); ratio = noisy / clean, draw floor = (clean + draws alone) / clean"
    )
    out = record("noise_overhead.py", started=started, setup=setup, rows=rows)
    out["command"] = "\n".join([*commands, out["command"]])
    args.summary.write_text(json.dumps(out, indent=1) + "\n")


def _build_of(command: str) -> str:
    words = command.split()
    return words[words.index("--build") + 1] if "--build" in words else "default"


if __name__ == "__main__":
    main()
