"""Studies of the user's own model: ``noisereg.study.run_model`` against a plain PyTorch loop with attach.

Two user-defined models, each 4 arms (no noise, input, activations, weights) x ``--seeds`` seeds:

- ``cnn``: a small ResNet-style CNN (examples/study_own_model.py) on scikit-learn's digits
  (first 1200 samples train, the rest test), pixels in [0, 1];
- ``transformer``: a one-layer transformer encoder on a generated sequence task (is the first
  feature's mean over the first half of the sequence above its mean over the second half?);
- ``dropout-transformer``: a one-layer transformer encoder with torch's default ``dropout=0.1`` (dropout
  modules and attention dropout, drawn per replica under vmap) on the digits, each image 8 rows of 8
  pixels as a sequence.

The plain loop trains the same replicas (fresh seeded model, ``noisereg.attach`` per site, Adam, the
same batches) in ``--workers`` processes, one torch thread each; noisereg trains them through
``run_model(workers=...)`` (store, curves, report data included): on the vectorized path, the replicas
stacked under ``torch.func.vmap`` in ``--workers`` groups (``--per-replica`` times the per-replica path
too; ``--floor`` times one model per process doing its share of the replicas' work in batches and
evaluations that many times as large, the same number of steps: what torch's kernels cost for that work,
a floor no stacking of the replicas can beat; its processes set glibc's allocator as noisereg's workers
do, ``noisereg._allocator``, and the plain loop's do not, as a user's would not). Prints for each model the load average (1 min) before and
after, the times, the path each arm took, the memory one replica holds (parameters, gradients and Adam's
two moments), and ``ratio: <plain / noisereg>`` last. Run by hand::

    python benchmarks/own_model_speed.py                       # 10 seeds, 20 epochs
    python benchmarks/own_model_speed.py --seeds 2 --epochs 2  # a quick look
    python benchmarks/own_model_speed.py --device cuda
    python benchmarks/own_model_speed.py --floor --repeat 7 --summary benchmarks/results/own_model_speed.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

from noisereg import attach, noise, study
from noisereg._allocator import keep_freed_memory
from noisereg.seeding import derive_seed

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cnn": 1.10, "transformer": 1.20}  # noisereg / floor, issue 23

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # provenance lives beside this file
from provenance import record  # noqa: E402


class TinyTransformer(nn.Module):
    def __init__(self, features: int = 4, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.act = nn.Identity()  # the named activation site: the encoder's output
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.encoder(self.embed(x))).mean(dim=1))


class DigitsEncoder(nn.Module):
    """A new user's transformer: torch's defaults, dropout 0.1 included."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        layer = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.act = nn.Identity()
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.encoder(self.embed(x.reshape(-1, 8, 8)))).mean(dim=1))


def _dropout_transformer_task() -> tuple[type[nn.Module], dict, dict]:
    _, data, _ = _cnn_task()
    arms = {
        "no noise": [],
        "input": [study.site(noise.Gaussian(std=0.1), at="input")],
        "activations": [study.site(noise.Gaussian(std=0.1), at="activations", select="act")],
        "weights": [study.site(noise.Gaussian(std=0.01), at="weights", select="head.weight")],
    }
    return DigitsEncoder, data, arms


def _cnn_task() -> tuple[type[nn.Module], dict, dict]:
    net = runpy.run_path(str(ROOT / "examples" / "study_own_model.py"), run_name="benchmark")["SmallResNet"]
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    data = {"train": (x[:1200], y[:1200]), "test": (x[1200:], y[1200:])}
    arms = {
        "no noise": [],
        "input": [study.site(noise.Gaussian(std=0.1), at="input")],
        "activations": [study.site(noise.Gaussian(std=0.1), at="activations", select="blocks.*.act", where="before")],
        "weights": [study.site(noise.Gaussian(std=0.01), at="weights", select="head.weight")],
    }
    return net, data, arms


def _transformer_task() -> tuple[type[nn.Module], dict, dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 12, 4, generator=g)
    y = (x[:, :6, 0].mean(1) > x[:, 6:, 0].mean(1)).long()
    data = {"train": (x[:700], y[:700]), "test": (x[700:], y[700:])}
    arms = {
        "no noise": [],
        "input": [study.site(noise.Gaussian(std=0.1), at="input")],
        "activations": [study.site(noise.Gaussian(std=0.1), at="activations", select="act")],
        "weights": [study.site(noise.Gaussian(std=0.01), at="weights", select="head.weight")],
    }
    return TinyTransformer, data, arms


_PLAIN: list = []


def _plain_replica(i: int) -> float:
    """One replica in a plain loop: the model, attach per site, Adam, shuffled batches, eval each epoch."""
    torch.set_num_threads(1)
    net, data, sites, seed, epochs, batch_size, device = _PLAIN[i]
    torch.manual_seed(derive_seed(seed, "init"))
    model = net().to(device)
    handles = [
        attach(model, s.noise, s.at, seed=derive_seed(seed, "site", j), **dict(s.options)) for j, s in enumerate(sites)
    ]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    (x, y), (xt, yt) = ((a.to(device), b.to(device)) for a, b in (data["train"], data["test"]))
    order = torch.Generator().manual_seed(derive_seed(seed, "batches"))
    acc = 0.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size].to(device)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            nn.functional.cross_entropy(model(x), y)
            acc = float((model(xt).argmax(1) == yt).float().mean())
    for h in handles:
        h.remove()
    return acc


def _plain(
    net: type[nn.Module], data: dict, arms: dict, seeds: int, epochs: int, batch_size: int, workers: int, device: str
) -> float:
    global _PLAIN
    _PLAIN = [
        (net, data, sites, derive_seed(0, "seed", s), epochs, batch_size, device)
        for sites in arms.values()
        for s in range(seeds)
    ]
    start = time.perf_counter()
    if workers == 1:
        for i in range(len(_PLAIN)):
            _plain_replica(i)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_plain_replica, range(len(_PLAIN)))
    return time.perf_counter() - start


_FLOOR: list = []


def _floor_process(i: int) -> None:
    """One model (no vmap) doing the work of ``share`` replicas: batches and evaluations ``share`` times
    as large, the same number of steps. Its allocator is set as noisereg sets its workers'
    (noisereg._allocator), so that the floor stays a floor."""
    torch.set_num_threads(1)
    keep_freed_memory()
    net, data, share, epochs, batch_size, device = _FLOOR[0]
    torch.manual_seed(i)
    model = net().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    (x, y), (xt, yt) = (
        (torch.cat([a] * share).to(device), torch.cat([b] * share).to(device)) for a, b in data.values()
    )
    size, chunk = batch_size * share, max(batch_size, 256) * share  # the engine evaluates 256 samples a replica
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for start in range(0, len(x), size):
            idx = perm[start : start + size].to(device)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for part in (x, xt):
                for start in range(0, len(part), chunk):
                    model(part[start : start + chunk])


def _floor(
    net: type[nn.Module], data: dict, replicas: int, epochs: int, batch_size: int, workers: int, device: str
) -> float:
    """Seconds ``workers`` processes take, each one model doing the work of its share of ``replicas``:
    what torch's kernels cost for that work, which stacking the replicas under vmap cannot beat."""
    _FLOOR[:] = [(net, data, -(-replicas // workers), epochs, batch_size, device)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_floor_process, range(workers))
    return time.perf_counter() - start


def _noisereg(
    net: type[nn.Module],
    data: dict,
    arms: dict,
    seeds: int,
    epochs: int,
    batch_size: int,
    workers: int,
    device: str,
    vectorize: bool = True,
) -> tuple[float, set[str]]:
    """Seconds ``run_model`` takes, and the paths its cells took."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = study.run_model(
            model=net,
            data=data,
            arms=arms,
            loss="ce",
            epochs=epochs,
            batch_size=batch_size,
            seeds=seeds,
            workers=workers,
            device=device,
            out=Path(out) / "run",
            save_models=False,
            vectorize=vectorize,
        )
        elapsed = time.perf_counter() - start
        return elapsed, {f"{p['path']} ({p['why']})" for p in result.summary["data"]["paths"].values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--models", nargs="+", default=["cnn", "transformer"], choices=["cnn", "transformer", "dropout-transformer"]
    )
    parser.add_argument("--per-replica", action="store_true", help="also time run_model(vectorize=False)")
    parser.add_argument(
        "--floor", action="store_true", help="also time one model per process doing its replicas' work in big batches"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run noisereg and the floor this many times each, alternating; medians"
    )
    parser.add_argument("--summary", type=Path, help="store the table and its provenance (JSON) in this file")
    args = parser.parse_args()
    started, rows = time.time(), []
    tasks = {"cnn": _cnn_task, "transformer": _transformer_task, "dropout-transformer": _dropout_transformer_task}
    for name in args.models:
        net, data, arms = tasks[name]()
        params = sum(p.numel() * p.element_size() for p in net().parameters())
        replicas = len(arms) * args.seeds
        load = os.getloadavg()[0]  # a shared machine: the ratio means little under a changing load
        plain = _plain(net, data, arms, args.seeds, args.epochs, args.batch_size, args.workers, args.device)
        # noisereg and the floor alternate, --repeat times each, and the medians are compared: on a shared
        # machine a load that changes between two single runs would decide their ratio
        ours_runs, floor_runs = [], []
        for _ in range(args.repeat):
            ours, paths = _noisereg(
                net, data, arms, args.seeds, args.epochs, args.batch_size, args.workers, args.device
            )
            ours_runs.append(ours)
            if args.floor:
                floor_runs.append(_floor(net, data, replicas, args.epochs, args.batch_size, args.workers, args.device))
        ours = statistics.median(ours_runs)
        print(
            f"{name}: {replicas} replicas x {args.epochs} epochs on {args.device}, {args.workers} processes, "
            f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
        )
        runs = f" (median of {', '.join(f'{t:.1f}' for t in ours_runs)})" if args.repeat > 1 else ""
        print(f"  plain loop with attach: {plain:.1f} s   noisereg run_model: {ours:.1f} s{runs}")
        print(f"  paths: {'; '.join(sorted(paths))}")
        if args.per_replica:
            alone, _ = _noisereg(
                net, data, arms, args.seeds, args.epochs, args.batch_size, args.workers, args.device, False
            )
            print(
                f"  noisereg run_model(vectorize=False), the per-replica path: {alone:.1f} s (ratio {plain / alone:.3f})"
            )
        floor = None
        if args.floor:
            floor = statistics.median(floor_runs)
            runs = f" (median of {', '.join(f'{t:.1f}' for t in floor_runs)})" if args.repeat > 1 else ""
            print(
                f"  floor, one model per process on batches {-(-replicas // args.workers)}x as large: {floor:.1f} s{runs} "
                f"(plain / floor {plain / floor:.3f}, noisereg / floor {ours / floor:.3f})"
            )
        print(f"  memory per replica (parameters, gradients, Adam moments): {4 * params / 1024:.1f} KiB")
        print(f"ratio: {plain / ours:.3f}")
        rows.append(
            {
                "model": name,
                "replicas": replicas,
                "plain_s": round(plain, 1),
                "noisereg_s": round(ours, 1),
                "speedup": round(plain / ours, 2),
                "floor_s": None if floor is None else round(floor, 1),
                "over_floor": None if floor is None else round(ours / floor, 3),
                "target": TARGETS.get(name),
            }
        )
    if args.summary:
        setup = (
            f"Each model with 4 arms (no noise, input, activations, weights) × {args.seeds} seeds, {args.epochs} epochs, "
            f"batch {args.batch_size}, Adam, {args.workers} processes of one thread on each side, run_model and the "
            f"floor alternating {args.repeat} time(s) each (medians); noisereg = "
            "study.run_model (store and report data included), floor = one model per process doing its share of the "
            "replicas' work in batches that many times as large"
        )
        out = record("own_model_speed.py", started=started, setup=setup, rows=rows)
        args.summary.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
