"""Speed of the replica engine on the reference case-study grid, against a plain PyTorch loop.

The grid: make_circles(100, noise=0.1, random_state=1), the first 30 samples train and the other 70
test; MLP 2→500→1 (ReLU), Adam lr 1e-3, binary cross-entropy, batch 32 (one batch per epoch), 4000
epochs, test accuracy every 10th epoch; 4 arms (no noise / input σ=0.01 / pre-ReLU σ=0.1 / post-ReLU
σ=0.1) × 30 seeds = 120 trainings.

Both sides get both cores: the plain loop runs its 120 trainings in 2 processes of one thread each
(an nn.Sequential, torch.optim.Adam, noise from noisereg.noise.gaussian); the engine trains one group
of 120 replicas with ``workers=2``. Printed: both times and mean test accuracies per arm (they
should agree within seed noise), first the generator alone (noisereg's Stream against ``torch.randn``
with a generator, normals per second on 1 and 2 threads), the engine's split into compute (the same grid with every strength
at 0, so nothing is drawn) and noise, a floor estimate, memory per replica for a few replica counts,
the same grid with the opt-in projected sampling of the post-ReLU noise, the load average (the
machine may be shared: a loaded machine slows the memory-bound engine more than the Python-bound
plain loop, so the CPU-time ratio is printed too), and as the last line
``ratio: <plain wall seconds / engine wall seconds>`` for the default (exact) sampling. Also the
same grid through the generic path: ``noisereg.study.run_model`` with the MLP as a user's
``nn.Sequential`` (``vmap`` over ``functional_call``, noise by hooks; store and report data included),
and the ratio generic / specialised (the engine's stacked MLP above).

Run by hand: ``PYTHONPATH=src python benchmarks/study_speed.py`` (``--epochs N`` for a quick look;
``--skip-plain`` skips the plain loop and prints no ratio; ``--generator-only`` the generator line only;
``--breakdown`` the generator line and the float32 kernel's cost split into its stages, one thread;
``--generic`` only the specialised engine and the generic path, side by side, ``--repeat N`` times
(with ``--summary FILE`` each pair is stored: ``benchmarks/results/study_speed_generic.json``);
``--repeat N`` without ``--generic``: the grid's paths and the plain loop in turn N times, medians
compared and stored (``--repeat 3`` for the stored tables);
``--profile`` one step of each on 60 replicas and the generic step's profile;
``--generator torch`` trains the grid's noise with torch's generator instead of noisereg's Philox
Stream, the library's default on a CPU; the plain loop draws with torch's generator, as a plain
PyTorch loop does).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch
from sklearn.datasets import make_circles

from noisereg import noise, philox
from noisereg.engine import (
    FoldData,
    Group,
    MLPSpec,
    OptimSpec,
    Replica,
    SiteNoise,
    estimate_replica_bytes,
    train_group,
)
from noisereg.seeding import derive_seed, make_generator, set_noise_generator
from noisereg.streams import Stream

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # provenance lives beside this file
from provenance import record  # noqa: E402

ARMS = {  # strengths of the sites (input, before, after)
    "none": (0.0, 0.0, 0.0),
    "input 0.01": (0.01, 0.0, 0.0),
    "before 0.1": (0.0, 0.1, 0.0),
    "after 0.1": (0.0, 0.0, 0.1),
}
SITES = ("input", "before", "after")
SEEDS = 30
WORKERS = 2


def case_study() -> FoldData:
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    return FoldData(x[:30], y[:30], x[30:], y[30:])


def grid(epochs: int, zero: bool = False, seeds: int = SEEDS, projected: bool = False) -> Group:
    replicas = tuple(
        Replica(seed=s, strengths=(0.0, 0.0, 0.0) if zero else arm) for arm in ARMS.values() for s in range(seeds)
    )
    sites = tuple(
        SiteNoise(site, noise.Gaussian(std=0.0), sampling="projected" if projected and site == "after" else "exact")
        for site in SITES
    )
    return Group(MLPSpec(2, (500,), 1), OptimSpec("adam", lr=1e-3), "bce", epochs, 32, sites, replicas)


# ---- the plain loop -------------------------------------------------------------------------------
def plain_training(args: tuple[int, tuple[float, float, float], int]) -> float:
    """One training as a user would write it; returns the final test accuracy."""
    seed, (s_in, s_pre, s_post), epochs = args
    torch.set_num_threads(1)
    fold = case_study()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 500), torch.nn.ReLU(), torch.nn.Linear(500, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = make_generator(derive_seed(seed, "plain"))
    n = fold.x_train.shape[0]
    accuracy = float("nan")
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, 32):
            idx = order[start : start + 32]
            x = noise.gaussian(fold.x_train[idx], s_in, generator=generator)
            h = noise.gaussian(model[0](x), s_pre, generator=generator)
            h = noise.gaussian(model[1](h), s_post, generator=generator)
            loss = loss_fn(model[2](h).squeeze(-1), fold.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            with torch.no_grad():
                accuracy = ((model(fold.x_test).squeeze(-1) > 0).float() == fold.y_test).float().mean().item()
    return accuracy


def timed(fn):
    """(wall seconds, CPU seconds of this process and its finished children, fn())."""

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    wall, used = time.perf_counter(), cpu()
    out = fn()
    return time.perf_counter() - wall, cpu() - used, out


def run_plain(epochs: int) -> tuple[float, float, dict[str, float]]:
    jobs = [(s, arm, epochs) for arm in ARMS.values() for s in range(SEEDS)]

    def work():
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            return pool.map(plain_training, jobs, chunksize=1)

    seconds, cpu, accuracies = timed(work)
    acc = np.asarray(accuracies).reshape(len(ARMS), SEEDS).mean(1)
    return seconds, cpu, dict(zip(ARMS, acc, strict=True))


# ---- the engine -----------------------------------------------------------------------------------
def run_engine(epochs: int, zero: bool = False, projected: bool = False) -> tuple[float, float, dict[str, float]]:
    fold, group = case_study(), grid(epochs, zero, projected=projected)
    seconds, cpu, result = timed(lambda: train_group(group, [fold], workers=WORKERS))
    acc = result.final["test_acc"].reshape(len(ARMS), SEEDS).mean(1)
    return seconds, cpu, dict(zip(ARMS, acc, strict=True))


def user_mlp() -> torch.nn.Module:
    """The grid's MLP as a user writes it."""
    return torch.nn.Sequential(torch.nn.Linear(2, 500), torch.nn.ReLU(), torch.nn.Linear(500, 1), torch.nn.Flatten(0))


def run_generic(epochs: int) -> tuple[float, float, dict[str, float]]:
    """The grid through ``study.run_model`` (the generic path) with the user's MLP, in ``WORKERS`` processes."""
    import tempfile

    from noisereg import study

    fold = case_study()
    sites = {
        "input": lambda s: study.site(noise.Gaussian(std=s), at="input"),
        "before": lambda s: study.site(noise.Gaussian(std=s), at="activations", select="1", where="before"),
        "after": lambda s: study.site(noise.Gaussian(std=s), at="activations", select="1", where="after"),
    }
    arms = {
        name: [sites[site](s) for site, s in zip(SITES, strengths, strict=True) if s > 0]
        for name, strengths in ARMS.items()
    }
    with tempfile.TemporaryDirectory() as out:
        seconds, cpu, result = timed(
            lambda: study.run_model(
                model=user_mlp,
                data={"train": (fold.x_train, fold.y_train), "test": (fold.x_test, fold.y_test)},
                arms=arms,
                out=Path(out) / "run",
                epochs=epochs,
                loss="bce",
                batch_size=32,
                seeds=SEEDS,
                eval_every=10,
                workers=WORKERS,
                save_models=False,
            )
        )
        acc = {a["name"]: float(np.mean(a["per_seed"])) for a in result.summary["arms"]}
    return seconds, cpu, acc


def profile_generic(steps: int = 200) -> None:
    """Where a generic step goes: the grid's 120 replicas as one worker's half (60: 15 seeds of each arm)
    stacked as one vectorized group, beside the specialised engine on the same 60 replicas; then the top
    entries of cProfile and of torch's profiler for the generic step. One thread."""
    import cProfile
    import io
    import pstats

    from noisereg.engine.loop import AttachSite, LoopTask
    from noisereg.engine.vectorized import VectorizedGroup

    torch.set_num_threads(1)
    fold, seeds = case_study(), SEEDS // WORKERS
    where = {
        "input": (),
        "before": (("select", "1"), ("where", "before")),
        "after": (("select", "1"), ("where", "after")),
    }
    tasks = [
        LoopTask(
            model=user_mlp,
            sites=tuple(
                AttachSite(noise.Gaussian(std=v), "input" if site == "input" else "activations", where[site])
                for site, v in zip(SITES, strengths, strict=True)
                if v > 0
            ),
            train=(fold.x_train, fold.y_train),
            test=(fold.x_test, fold.y_test),
            loss=LOSS,
            optimizer=adam,
            epochs=1,
            batch_size=32,
            task="classification",
            seed=derive_seed(0, "seed", s),
        )
        for strengths in ARMS.values()
        for s in range(seeds)
    ]
    group = VectorizedGroup(tasks)
    x, y = torch.stack([fold.x_train] * len(tasks)), torch.stack([fold.y_train] * len(tasks))
    for _ in range(10):
        group.train_step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        group.train_step(x, y)
    generic = (time.perf_counter() - start) / steps
    special = grid(steps, seeds=seeds)
    special_s, _, _ = timed(lambda: train_group(special, [fold], workers=1, chunk_size=len(special.replicas)))
    print(
        f"one step of {len(tasks)} replicas: generic {generic * 1e3:.2f} ms, specialised {special_s / steps * 1e3:.2f} ms "
        f"(its {steps} epochs with evaluations every 10th, one stack), load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        group.train_step(x, y)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
    print(text.getvalue())
    with torch.profiler.profile() as prof:
        for _ in range(steps // 4):
            group.train_step(x, y)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    group.close()


LOSS = torch.nn.BCEWithLogitsLoss()


def adam(params):  # one object for every task of the group
    return torch.optim.Adam(params, lr=1e-3)


def normal_ns() -> float:
    """Nanoseconds per N(0, 1) draw of torch's CPU generator on this machine (one thread)."""
    torch.set_num_threads(1)
    generator, out = torch.Generator().manual_seed(0), torch.empty(30, 500)
    for _ in range(100):
        torch.randn(30, 500, generator=generator, out=out)
    start = time.perf_counter()
    for _ in range(2000):
        torch.randn(30, 500, generator=generator, out=out)
    return (time.perf_counter() - start) / (2000 * out.numel()) * 1e9


def generator_rates(values: int = 1 << 20, repeats: int = 20, rows: list[dict] | None = None) -> list[str]:
    """Normals per second of noisereg's Stream alone against ``torch.randn`` with a generator (float32,
    ``values`` per call, the best of three rounds), on 1 and 2 threads, measured side by side; each
    thread count's figures also appended to ``rows`` when given (for ``--summary``)."""
    lines, threads = [], torch.get_num_threads()
    out, generator, stream = torch.empty(values), torch.Generator().manual_seed(0), Stream(0)
    stream.normal_(out)  # compiled or loaded from numba's cache before timing
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            rates = {}
            for name, draw in (
                ("torch", lambda: torch.randn(values, generator=generator, out=out)),
                ("stream", lambda: stream.normal_(out)),
            ):
                best = float("inf")
                for _ in range(3):
                    start = time.perf_counter()
                    for _ in range(repeats):
                        draw()
                    best = min(best, (time.perf_counter() - start) / repeats)
                rates[name] = values / best
            lines.append(
                f"  {count} thread(s): Stream {rates['stream'] / 1e6:7.1f} M normals/s "
                f"({1e9 / rates['stream']:.2f} ns), torch.randn {rates['torch'] / 1e6:7.1f} M/s "
                f"({1e9 / rates['torch']:.2f} ns); Stream / torch {rates['stream'] / rates['torch']:.2f}"
            )
            if rows is not None:
                rows.append(
                    {
                        "threads": count,
                        "stream_m": round(rates["stream"] / 1e6, 1),
                        "torch_m": round(rates["torch"] / 1e6, 1),
                        "ratio": round(rates["stream"] / rates["torch"], 2),
                    }
                )
    finally:
        torch.set_num_threads(threads)
    return lines


# ---- the generator's cost, stage by stage ---------------------------------------------------------
# Each stage runs over the same output positions as a whole draw, chunk by chunk, on the kernel's own
# L1-sized scratch; only the store touches the output. Stages are the kernel's own passes.
_BLOCKS = philox._CHUNK


@numba.njit(error_model="numpy")
def _stage_philox(values: int) -> int:
    evens, odds = np.empty(2 * _BLOCKS, np.uint32), np.empty(2 * _BLOCKS, np.uint32)
    for c in range(values // (4 * _BLOCKS)):
        philox._philox_pass(evens, odds, _BLOCKS, np.uint64(c * _BLOCKS), np.uint64(1), np.uint64(2))
    return int(evens[0] ^ odds[-1])  # a result, so the passes are not optimized away


@numba.njit(error_model="numpy")
def _stage_argument(words: np.ndarray, values: int) -> float:
    radii, scratch = np.empty(2 * _BLOCKS, np.float32), np.empty(2 * _BLOCKS, np.float32)
    total = np.float32(0.0)
    for _ in range(values // (4 * _BLOCKS)):
        philox._argument32_pass(words, radii, scratch, 2 * _BLOCKS)
        total += scratch[0]
    return total


@numba.njit(error_model="numpy")
def _stage_log(words: np.ndarray, values: int) -> float:
    radii, scratch = np.empty(2 * _BLOCKS, np.float32), np.empty(2 * _BLOCKS, np.float32)
    philox._argument32_pass(words, radii, scratch, 2 * _BLOCKS)
    arguments = radii.copy()
    total = np.float32(0.0)
    for _ in range(values // (4 * _BLOCKS)):
        radii[:] = arguments  # the log pass overwrites its input: restore it (a 8 KiB copy, in L1)
        philox._log32_pass(words, radii, scratch, 2 * _BLOCKS)
        total += radii[0]
    return total


@numba.njit(error_model="numpy")
def _stage_cos_sin(words: np.ndarray, values: int) -> float:
    cosines, sines = np.empty(2 * _BLOCKS, np.float32), np.empty(2 * _BLOCKS, np.float32)
    total = np.float32(0.0)
    for _ in range(values // (4 * _BLOCKS)):
        for i in range(2 * _BLOCKS):
            cosines[i], sines[i] = philox._cos_sin32(words[i])
        total += cosines[0] + sines[-1]
    return total


@numba.njit(error_model="numpy")
def _stage_store(out: np.ndarray, radii: np.ndarray, cosines: np.ndarray, sines: np.ndarray) -> None:
    for c in range(out.shape[0] // (4 * _BLOCKS)):
        values = out[4 * _BLOCKS * c : 4 * _BLOCKS * (c + 1)]
        for i in range(2 * _BLOCKS):
            values[2 * i] = radii[i] * cosines[i]
            values[2 * i + 1] = radii[i] * sines[i]


def _best_ns(fn, values: int, rounds: int = 7, repeats: int = 10) -> float:
    """Best of ``rounds`` of the mean ns per value over ``repeats`` calls (the machine may be shared)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / (repeats * values))
    return best * 1e9


def breakdown(values: int = 1 << 20) -> list[str]:
    """ns per float32 normal of each stage of the Stream kernel, the whole kernel, torch.randn, and the
    machine's copy and write bandwidth for the output's size (one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        words = Stream(3).uniform((2 * _BLOCKS,), torch.float64).mul_(2.0**32).numpy().astype(np.uint32)
        radii = np.ones(2 * _BLOCKS, np.float32)
        cosines, sines = np.full(2 * _BLOCKS, 0.6, np.float32), np.full(2 * _BLOCKS, 0.8, np.float32)
        out, source = torch.empty(values), torch.zeros(values)
        array = out.numpy()
        stream, generator = Stream(0), torch.Generator().manual_seed(0)
        stages = {
            "Philox4x32-10 block (4 words a block)": lambda: _stage_philox(values),
            "word -> float32 argument of the log": lambda: _stage_argument(words, values),
            "log and sqrt (the radius)": lambda: _stage_log(words, values),
            "cos and sin": lambda: _stage_cos_sin(words, values),
            "store r·cos, r·sin to the output": lambda: _stage_store(array, radii, cosines, sines),
        }
        for fn in stages.values():
            fn()  # compile
        stream.normal_(out)
        # Each stage covers half a word per value where it works on radii or angles (each radius or angle
        # makes two values): per value, as the kernel pays it.
        ns = {name: _best_ns(fn, values) for name, fn in stages.items()}
        whole = _best_ns(lambda: stream.normal_(out), values)
        randn = _best_ns(lambda: torch.randn(values, generator=generator, out=out), values)
        copy = _best_ns(lambda: out.copy_(source), values)
        fill = _best_ns(lambda: out.fill_(1.0), values)
    finally:
        torch.set_num_threads(threads)
    lines = [f"  {name:40s} {t:5.2f} ns/normal" for name, t in ns.items()]
    lines.append(f"  {'sum of the stages':40s} {sum(ns.values()):5.2f} ns/normal")
    lines.append(f"  {'Stream.normal_ (the fused kernel)':40s} {whole:5.2f} ns/normal")
    lines.append(f"  {'torch.randn with a generator':40s} {randn:5.2f} ns/normal")
    size = values * 4
    lines.append(
        f"  torch copy of {size / 2**20:.0f} MiB: {copy:.3f} ns/value ({2 * 4 / copy:.1f} GB/s read+write); "
        f"fill: {fill:.3f} ns/value ({4 / fill:.1f} GB/s write)"
    )
    return lines


def peak_rss_child(replicas: int) -> None:
    """In a fresh process: peak RSS growth while training ``replicas`` replicas as one stack."""
    torch.set_num_threads(1)
    fold = case_study()
    base = grid(20, seeds=1)
    noisy = tuple(Replica(seed=s, strengths=ARMS["before 0.1"]) for s in range(replicas))
    group = Group(base.model, base.optimizer, "bce", 20, 32, base.sites, noisy)
    train_group(grid(20, seeds=1), [fold])  # warm up torch's own allocations
    # the peak of the imports (numba's compiler) is above a stack's: reset the peak to the current RSS
    # (Linux: "5" to clear_refs), else ru_maxrss would not move
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = _status_kib("VmRSS")
    train_group(group, [fold], chunk_size=replicas)
    print(_status_kib("VmHWM") - before)


def _status_kib(field: str) -> int:
    """A size from /proc/self/status, KiB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1])


def memory_table() -> list[str]:
    lines, points = [], []
    estimate = estimate_replica_bytes(grid(20), [case_study()])
    for count in (16, 32, 64, 128):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(count)], capture_output=True, text=True, check=True
        )
        grown = int(out.stdout.strip().splitlines()[-1]) * 1024
        points.append((count, grown))
        per_replica = grown / count / 1024
        lines.append(f"  {count:4d} replicas: peak RSS +{grown / 2**20:7.1f} MiB = {per_replica:6.1f} KiB/replica")
    slope = np.polyfit([c for c, _ in points], [g for _, g in points], 1)[0]
    lines.append(f"  slope {slope / 1024:.1f} KiB per replica; estimate_replica_bytes: {estimate / 1024:.1f} KiB")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--generator-only", action="store_true", help="print the generator line only")
    parser.add_argument("--breakdown", action="store_true", help="the generator line and its cost by stage")
    parser.add_argument(
        "--generator",
        choices=("torch", "philox"),
        default="philox",
        help="what draws the engine's noise (philox, noisereg's Stream, is the library's default on a CPU)",
    )
    parser.add_argument("--generic", action="store_true", help="the specialised engine and the generic path only")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help=(
            "how many times, side by side (--generic: --summary stores each pair; the full grid: the plain "
            "loop and each path alternate, and the medians are compared and stored)"
        ),
    )
    parser.add_argument("--profile", action="store_true", help="where a step of the generic path goes")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--summary",
        type=Path,
        help="store the table and its provenance (JSON) in this file (with --generator-only: the generator's rates)",
    )
    args = parser.parse_args()
    started = time.time()
    set_noise_generator(args.generator)  # forked workers inherit the choice
    if args.rss_child:
        peak_rss_child(args.rss_child)
        return
    if args.profile:
        profile_generic()
        return
    print("generator alone (float32, 2^20 values a call; the machine may be shared):")
    rates: list[dict] = []
    for line in generator_rates(rows=rates):
        print(line)
    if args.generator_only and args.summary:
        setup = (
            "float32 normals, 2^20 a call, best of three rounds of 20 calls: noisereg's Stream (Philox4x32-10, "
            "Box-Muller) against torch.randn with a torch.Generator, side by side on 1 and 2 threads"
        )
        args.summary.write_text(
            json.dumps(record("study_speed.py", started=started, setup=setup, rows=rates), indent=1) + "\n"
        )
    if args.breakdown:
        print(
            "float32 kernel by stage, one thread, best of 7 (load average "
            + " ".join(f"{v:.2f}" for v in os.getloadavg())
            + "; the machine may be shared):"
        )
        for line in breakdown():
            print(line)
    if args.generator_only or args.breakdown:
        return
    epochs = args.epochs
    if args.generic:
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (the machine may be shared)")
        pairs = []
        for run in range(1, args.repeat + 1):
            special_s, _, special_acc = run_engine(epochs)
            generic_s, _, generic_acc = run_generic(epochs)
            print(
                f"specialised engine {special_s:.2f} s, generic path (run_model, the user's nn.Sequential) "
                f"{generic_s:.2f} s: generic / specialised {generic_s / special_s:.2f}"
            )
            print("  mean test accuracy, specialised: " + ", ".join(f"{k} {v:.3f}" for k, v in special_acc.items()))
            print("  mean test accuracy, generic: " + ", ".join(f"{k} {v:.3f}" for k, v in generic_acc.items()))
            pairs.append((run, special_s, generic_s, os.getloadavg()[0]))
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        if args.summary:
            _store_generic(args, started, pairs)
        return
    print(
        f"case-study grid: {len(ARMS)} arms x {SEEDS} seeds x {epochs} epochs, {WORKERS} processes each side, "
        f"engine noise from {args.generator}'s generator"
    )
    print("load average before: " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (the machine may be shared)")
    engine_s, engine_cpu, engine_acc = run_engine(epochs)
    engine_runs = [engine_s]
    compute_s, compute_cpu, _ = run_engine(epochs, zero=True)
    draws = SEEDS * epochs * 30 * (2 + 500 + 500)
    ns = normal_ns()
    noise_floor = draws * ns * 1e-9 / WORKERS
    print(f"engine: {engine_s:.2f} s wall, {engine_cpu:.1f} s CPU")
    print(
        f"  split: compute {compute_s:.2f} s (the same grid with every strength 0: nothing drawn), "
        f"noise {engine_s - compute_s:.2f} s"
    )
    print(
        f"  {draws / 1e9:.2f} G normals at {ns:.2f} ns each (torch's CPU generator; the engine draws "
        f"with {args.generator}'s, see the generator line) on {WORKERS} cores: "
        f"{noise_floor:.2f} s; floor estimate (compute + draws) {compute_s + noise_floor:.2f} s"
    )
    print("  mean test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in engine_acc.items()))
    # right after the engine: the ratio of the two should not depend on a load that changes during the run
    generic_s, _, generic_acc = run_generic(epochs)
    generic_runs = [generic_s]
    print(f"generic path (study.run_model, the user's nn.Sequential): {generic_s:.2f} s wall")
    print("  mean test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in generic_acc.items()))
    projected_s, projected_cpu, projected_acc = run_engine(epochs, projected=True)
    projected_runs = [projected_s]
    print(
        f"engine, post-ReLU noise sampled through its projection (opt-in): {projected_s:.2f} s wall, "
        f"{projected_cpu:.1f} s CPU"
    )
    print("  mean test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in projected_acc.items()))
    print("memory (one stack, 20 epochs):")
    for line in memory_table():
        print(line)
    if args.skip_plain:
        return
    plain_s, plain_cpu, plain_acc = run_plain(epochs)
    plain_runs = [plain_s]
    for _ in range(
        args.repeat - 1
    ):  # on a shared machine a load that changes between two single runs decides their ratio
        engine_runs.append(run_engine(epochs)[0])
        generic_runs.append(run_generic(epochs)[0])
        projected_runs.append(run_engine(epochs, projected=True)[0])
        plain_runs.append(run_plain(epochs)[0])
    if args.repeat > 1:
        for name, runs in (
            ("engine", engine_runs),
            ("generic", generic_runs),
            ("projected", projected_runs),
            ("plain", plain_runs),
        ):
            print(f"{name}: {', '.join(f'{t:.2f}' for t in runs)} s (median {statistics.median(runs):.2f})")
        engine_s, generic_s = statistics.median(engine_runs), statistics.median(generic_runs)
        projected_s, plain_s = statistics.median(projected_runs), statistics.median(plain_runs)
    print(f"plain loop: {plain_s:.2f} s wall, {plain_cpu:.1f} s CPU")
    print("  mean test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in plain_acc.items()))
    print("load average after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"generic / specialised: {generic_s / engine_s:.2f}")
    print(f"CPU-time ratio: {plain_cpu / engine_cpu:.2f}")
    print(f"ratio with projected post-ReLU sampling (opt-in): {plain_s / projected_s:.2f}")
    if args.summary:
        timings = {
            "plain PyTorch loop (nn.Sequential, torch.optim.Adam), 2 processes": (plain_s, plain_acc),
            "built-in engine (MLP family), workers=2": (engine_s, engine_acc),
            "built-in engine, post-ReLU noise by its projection (opt-in)": (projected_s, projected_acc),
            "study.run_model, the MLP as the user's nn.Sequential, workers=2": (generic_s, generic_acc),
        }
        _store(args, started, timings, generic_s / engine_s)
    print(f"ratio: {plain_s / engine_s:.2f}")


def _store(args: argparse.Namespace, started: float, timings: dict, generic_ratio: float) -> None:
    plain_s = next(iter(timings.values()))[0]
    rows = [
        {
            "path": path,
            "wall_s": round(seconds, 2),
            "speedup": round(plain_s / seconds, 2),
            "accuracy": " / ".join(f"{v:.3f}" for v in acc.values()),
        }
        for path, (seconds, acc) in timings.items()
    ]
    setup = (
        f"The reference case-study grid: {len(ARMS)} arms ({', '.join(ARMS)}) × {SEEDS} seeds × {args.epochs} epochs "
        "of an MLP 2→500→1 on 30 points of make_circles, Adam lr 1e-3, batch 32, test accuracy every 10th epoch; "
        "each path on both cores, one after the other in one run"
        + (f", {args.repeat} times in turn (medians)" if args.repeat > 1 else "")
    )
    note = (
        f"generic / specialised (study.run_model with the user's nn.Sequential, against the built-in engine): "
        f"{generic_ratio:.2f}. Mean test accuracy per arm in the order {', '.join(ARMS)}."
    )
    out = record("study_speed.py", started=started, setup=setup, noise_generator=args.generator, rows=rows, note=note)
    args.summary.write_text(json.dumps(out, indent=1) + "\n")


def _store_generic(args: argparse.Namespace, started: float, pairs: list[tuple[int, float, float, float]]) -> None:
    rows = [
        {
            "run": run,
            "engine_s": round(special_s, 2),
            "run_model_s": round(generic_s, 2),
            "ratio": round(generic_s / special_s, 3),
            "target": 1.25,
            "load": round(load, 2),
        }
        for run, special_s, generic_s, load in pairs
    ]
    ratios = sorted(generic_s / special_s for _, special_s, generic_s, _ in pairs)
    setup = (
        f"The reference case-study grid ({len(ARMS)} arms × {SEEDS} seeds × {args.epochs} epochs, workers=2) on "
        "the built-in engine and through study.run_model with the MLP as the user's nn.Sequential (store "
        "and summary included), one after the other, repeated; load = the 1-minute load average after the pair"
    )
    note = f"generic / specialised: median {ratios[len(ratios) // 2]:.2f}, range {ratios[0]:.2f}–{ratios[-1]:.2f}."
    out = record("study_speed.py", started=started, setup=setup, noise_generator=args.generator, rows=rows, note=note)
    args.summary.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
