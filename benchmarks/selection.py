"""Which way of choosing the noise strength by cross-validation holds up? A benchmark of small-data
problems (none of them a built-in study), in two families (``--family``): ``tuning`` — the 24
generated problems below and issue 24's failure (``selection_families.issue_failure``), on which the
default procedure (:data:`DEFAULT`, with its gain check) was chosen — and ``heldout`` —
``selection_families.heldout``: shipped and generated tables written down before any was trained,
and run once with the procedure fixed.

Each problem of the 24: a generated training set (circles, moons, blobs, XOR, a 1-D sine and Friedman #1
regression; 30 or 60 training points; with and without label noise), a fresh test sample of 2000
points from the same distribution, features (and regression targets) standardized with training
statistics, an MLP (one layer of 100 or two of 50; ReLU or tanh), Adam lr 1e-3, batch 32, EPOCHS
epochs, and Gaussian noise at one site (input, or the first hidden layer before its activation) with
strength in GRID. The grid is trained ONCE per problem, as one engine group: every value with
TEST_SEEDS seeds on the whole training set (its test result) and CV_SEEDS seeds on each of FOLDS
stratified cross-validation folds of the training set. Every selection procedure of
:mod:`noisereg.study.selection` is then a function of the stored held-out predictions, so all are
compared on the same trainings.

A procedure's choice is scored on the test sample: regret = best grid value's mean test metric −
chosen value's (accuracy for classifiers, R² for regression; over the TEST_SEEDS seeds), and whether
the chosen value is significantly worse (or better) than no noise (paired t-test over the test seeds,
p < 0.05). Printed: one table (Markdown) with the command, the machine and the load average, then the
default procedure's choice problem by problem (test difference against no noise with its paired
t-interval and p, the best value, the regret, and the gain check of the criterion's choice).

Run: ``PYTHONPATH=src python benchmarks/selection.py --cv-seeds 10 --test-seeds 20 [--family heldout]``
(the stored tables' settings; the defaults are TEST_SEEDS and CV_SEEDS; ``--quick`` for every sixth
problem and 300 epochs;
``--out FILE`` also writes the per-problem results, held-out scores included, as JSON; ``--rescore FILE``
scores the procedures again from such a file without training; ``--summary FILE`` writes the table
with its provenance as JSON: ``benchmarks/results/selection.json`` (tuning) and
``selection_heldout.json`` are the stored ones the docs show).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import optimize
from scipy import stats as sps
from sklearn.datasets import make_blobs, make_circles, make_friedman1, make_moons
from sklearn.model_selection import KFold, StratifiedKFold

from noisereg import noise
from noisereg.engine import (
    FoldData,
    Group,
    MLPSpec,
    OptimSpec,
    Replica,
    SiteNoise,
    build_module,
    train_group,
)
from noisereg.seeding import noise_generator_family, set_noise_generator
from noisereg.study.selection import choose, gain_check, procedure_name

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the families and provenance live beside this file
from provenance import machine  # noqa: E402
from selection_families import heldout, issue_failure  # noqa: E402

GRID = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)
TEST_SEEDS = 10
CV_SEEDS = 3
FOLDS = 5
EPOCHS = 1000
EVAL_EVERY = 50
TEST_SAMPLES = 2000
PROCEDURES = [
    (score, rule, seeds, screen, guard)
    for score in ("likelihood", "accuracy", "brier", "calibrated", "early")
    for rule in ("best", "one_se")
    for seeds in (None, 1)
    for screen, guard in ((True, False), (True, True)) + (((False, False),) if score == "likelihood" else ())
]
"""(score, rule, seeds, screen, guard) of every procedure compared; seeds None: all the CV seeds."""
DEFAULT = ("likelihood", "one_se", None, True, True)
"""The study's default procedure ([selection]'s defaults): the per-problem table shows its choices."""


@dataclass(frozen=True)
class Problem:
    kind: str
    n_train: int
    label_noise: float
    widths: tuple[int, ...]
    activation: str
    site: str
    seed: int

    @property
    def name(self) -> str:
        arch = "x".join(map(str, self.widths))
        flip = f", flip {self.label_noise:g}" if self.label_noise else ""
        return f"{self.kind} n={self.n_train}{flip}, {arch} {self.activation}, {self.site}"

    @property
    def regression(self) -> bool:
        return self.kind in ("sine", "friedman")

    @property
    def classes(self) -> int:
        """0 for regression."""
        return 0 if self.regression else 3 if self.kind == "blobs" else 2

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return data(self)


def problems() -> list[Problem]:
    kinds = ("circles", "moons", "blobs", "xor", "sine", "friedman")
    out = []
    for i, kind in enumerate(kinds):
        for j, n in enumerate((30, 60)):
            for k, flip in enumerate((0.0, 0.1)):
                if kind in ("sine", "friedman") and flip:
                    flip = 0.0  # regression: the second variant has more target noise instead (see _draw)
                index = 4 * i + 2 * j + k
                widths = (100,) if index % 2 == 0 else (50, 50)
                activation = "relu" if (index // 2) % 2 == 0 else "tanh"
                site = "input" if (index // 4 + j) % 2 == 0 else "before"
                out.append(Problem(kind, n, flip if k else 0.0, widths, activation, site, seed=100 + index))
    return out


FAMILIES = ("tuning", "heldout")


def family(name: str) -> list[Any]:
    """The problems of a family: ``tuning`` (the 24 generated ones and issue 24's failure, on which the
    default procedure was chosen) or ``heldout`` (:mod:`selection_families`, run once with it)."""
    if name == "tuning":
        return [*problems(), issue_failure()]
    if name == "heldout":
        return heldout()
    raise ValueError(f"family={name!r} must be one of {FAMILIES}")


def _draw(p: Problem, n: int, rng: np.random.Generator, variant: int) -> tuple[np.ndarray, np.ndarray]:
    seed = int(rng.integers(2**31))
    if p.kind == "circles":
        x, y = make_circles(n, noise=0.15, factor=0.5, random_state=seed)
    elif p.kind == "moons":
        x, y = make_moons(n, noise=0.25, random_state=seed)
    elif p.kind == "blobs":
        x, y = make_blobs(n, centers=[[0, 0], [2, 1], [0, 2.5]], cluster_std=1.0, random_state=seed)
    elif p.kind == "xor":
        x = rng.uniform(-1, 1, size=(n, 2))
        y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    elif p.kind == "sine":
        x = rng.uniform(-2, 2, size=(n, 1))
        y = np.sin(2 * x[:, 0]) + rng.normal(0, 0.2 + 0.3 * variant, size=n)
    else:
        x, y = make_friedman1(n, n_features=6, noise=1.0 + 2.0 * variant, random_state=seed)
    if not p.regression and p.label_noise:
        classes = int(y.max()) + 1
        flip = rng.random(n) < p.label_noise
        y = np.where(flip, (y + rng.integers(1, classes, size=n)) % classes, y)
    return x.astype(np.float64), y


def data(p: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), standardized with training statistics. The test sample
    has no label noise flipped in, so that test accuracy measures the true rule."""
    rng = np.random.default_rng(p.seed)
    variant = int(p.label_noise > 0 or (p.regression and p.seed % 2 == 1))
    x, y = _draw(p, p.n_train, rng, variant)
    clean = Problem(p.kind, p.n_train, 0.0, p.widths, p.activation, p.site, p.seed)
    xt, yt = _draw(clean, TEST_SAMPLES, rng, variant)
    mean, std = x.mean(0), x.std(0)
    x, xt = (x - mean) / std, (xt - mean) / std
    if p.regression:
        ym, ys = y.mean(), y.std()
        y, yt = (y - ym) / ys, (yt - ym) / ys
    return x, y, xt, yt


def _tensors(p: Any, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    ty = torch.as_tensor(y, dtype=torch.long if p.classes > 2 else torch.float32)
    return torch.as_tensor(x, dtype=torch.float32), ty


def _loss(p: Any) -> str:
    return "mse" if p.regression else ("ce" if p.classes > 2 else "bce")


def _scores(loss: str, logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Held-out loss, accuracy and Brier score of one replica (logits [n, out])."""
    if loss == "mse":
        return {"loss": float(np.mean((logits[:, 0] - y) ** 2))}
    probs = _probs(loss, logits, 1.0)
    onehot = np.eye(probs.shape[1])[y.astype(int)]
    return {
        "loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y.astype(int)], 1e-12, None)))),
        "acc": float(np.mean(probs.argmax(1) == y)),
        "brier": float(np.mean(((probs - onehot) ** 2).sum(1))),
    }


def _probs(loss: str, logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    if loss == "bce":
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1 - p1, p1], axis=1)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _calibrated(loss: str, parts: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Per-fold log-loss after one temperature fitted on the pooled held-out predictions."""
    logits = np.concatenate([z for z, _ in parts])
    y = np.concatenate([t for _, t in parts]).astype(int)

    def nll(log_t: float) -> float:
        probs = _probs(loss, logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))

    t = float(np.exp(optimize.minimize_scalar(nll, bounds=(-5, 8), method="bounded").x))
    return [_scores(loss, z / t, yy)["loss"] for z, yy in parts]


def run_problem(p: Any, epochs: int, workers: int, test_seeds: int = TEST_SEEDS, cv_seeds: int = CV_SEEDS) -> dict:
    """Train ``p``'s grid once (``p``: a :class:`Problem` or a ``selection_families.TableProblem``)."""
    x, y, xt, yt = p.arrays()
    loss = _loss(p)
    strat = None if p.regression else y
    splitter = (KFold if p.regression else StratifiedKFold)(FOLDS, shuffle=True, random_state=p.seed)
    cv_splits = list(splitter.split(x, strat))
    folds = [FoldData(*_tensors(p, x, y), *_tensors(p, xt, yt))]
    for tr, va in cv_splits:
        folds.append(FoldData(*_tensors(p, x[tr], y[tr]), *_tensors(p, x[va], y[va])))
    rows = [(v, s, 0) for v in GRID for s in range(test_seeds)]
    rows += [(v, s, f + 1) for v in GRID for f in range(FOLDS) for s in range(cv_seeds)]
    out_features = p.classes if p.classes > 2 else 1
    spec = MLPSpec(x.shape[1], p.widths, out_features, activation=p.activation)
    group = Group(
        spec,
        OptimSpec("adam", lr=1e-3),
        loss,
        epochs,
        32,
        (SiteNoise(p.site, noise.Gaussian(std=0.0)),),
        tuple(Replica(seed=1000 * p.seed + s, fold=f, strengths=(v,)) for v, s, f in rows),
        eval_every=EVAL_EVERY,
    )
    result = train_group(group, folds, workers=workers)
    metric = "test_r2" if p.regression else "test_acc"
    test = {v: np.zeros(test_seeds) for v in GRID}
    cv = {
        v: {
            "val_loss": np.zeros((cv_seeds, FOLDS)),
            "val_acc": np.zeros((cv_seeds, FOLDS)),
            "val_brier": np.zeros((cv_seeds, FOLDS)),
            "val_loss_calibrated": np.zeros((cv_seeds, FOLDS)),
            "val_loss_curve": np.zeros((cv_seeds, FOLDS, len(result.epochs))),
        }
        for v in GRID
    }
    held: dict[tuple[float, int], list[tuple[np.ndarray, np.ndarray]]] = {}
    module = build_module(spec)
    for r, (v, s, f) in enumerate(rows):
        if f == 0:
            test[v][s] = result.final[metric][r]
            continue
        module.load_state_dict(result.state_dict(r))
        va = cv_splits[f - 1][1]
        with torch.no_grad():
            logits = module(torch.as_tensor(x[va], dtype=torch.float32)).double().numpy()
        scores = _scores(loss, logits, y[va])
        for name, value in scores.items():
            cv[v][f"val_{name}"][s, f - 1] = value
        cv[v]["val_loss_curve"][s, f - 1] = result.curves["test_loss"][r]
        held.setdefault((v, s), []).append((logits, y[va]))
    for (v, s), parts in held.items():
        cv[v]["val_loss_calibrated"][s] = _calibrated(loss, parts) if loss != "mse" else cv[v]["val_loss"][s]
    if loss == "mse":
        for v in GRID:
            cv[v]["val_acc"] = None
            cv[v]["val_brier"] = None
    stored = {str(v): {k: (None if a is None else np.asarray(a).tolist()) for k, a in cv[v].items()} for v in GRID}
    return {
        "problem": p.name,
        "regression": p.regression,
        "test": {str(v): t.tolist() for v, t in test.items()},
        "cv": stored,
        "choices": _choices(cv),
    }


def _choices(cv: dict) -> dict[str, float | None]:
    out = {}
    for score, rule, seeds, screen, guard in PROCEDURES:
        i = choose(GRID, [cv[v] for v in GRID], score=score, rule=rule, seeds=seeds, screen=screen, guard=guard)
        out[procedure_name(score, rule, seeds, screen, guard)] = None if i is None else GRID[i]
    return out


COLUMNS = {
    "procedure": "procedure",
    "problems": "problems",
    "mean_regret": "mean regret",
    "median_regret": "median regret",
    "max_regret": "max regret",
    "worse": "sig. worse than no noise",
    "better": "sig. better",
    "mean_delta": "mean Δ vs no noise",
}
"""Keys of a row of the summary (``--summary FILE``) and their column titles: the docs' table reads the
stored file through the same keys (docs/hooks/benchmark_tables.py)."""


def rows(results: list[dict]) -> list[dict]:
    """One row per procedure (keys of :data:`COLUMNS`), lowest mean regret first."""
    names = list(results[0]["choices"]) + ["always no noise", "oracle (best on test)"]
    out = []
    for name in names:
        regrets, worse, better, deltas = [], 0, 0, []
        for res in results:
            test = {float(v): np.asarray(t) for v, t in res["test"].items()}
            means = {v: t.mean() for v, t in test.items()}
            best = max(means.values())
            if name == "always no noise":
                chosen = 0.0
            elif name.startswith("oracle"):
                chosen = max(means, key=means.get)
            else:
                chosen = res["choices"][name]
            if chosen is None:
                continue
            regrets.append(best - means[chosen])
            d = test[chosen] - test[0.0]
            deltas.append(d.mean())
            if chosen != 0.0 and np.any(d != 0):
                p = sps.ttest_rel(test[chosen], test[0.0]).pvalue
                worse += int(p < 0.05 and d.mean() < 0)
                better += int(p < 0.05 and d.mean() > 0)
        if regrets:
            out.append(
                {
                    "procedure": name,
                    "problems": len(regrets),
                    "mean_regret": round(float(np.mean(regrets)), 4),
                    "median_regret": round(float(np.median(regrets)), 4),
                    "max_regret": round(float(np.max(regrets)), 4),
                    "worse": worse,
                    "better": better,
                    "mean_delta": round(float(np.mean(deltas)), 4),
                }
            )
    return sorted(out, key=lambda r: r["mean_regret"])


PROBLEM_COLUMNS = {
    "problem": "problem",
    "chosen": "chosen σ",
    "delta": "Δ vs no noise (test)",
    "ci95": "95% CI",
    "p": "paired p",
    "best": "best σ (test)",
    "regret": "regret",
    "check": "gain check of the likelihood's choice (CV, over folds)",
}
"""Keys of a per-problem row of the default procedure (:data:`DEFAULT`) and their column titles."""


def problem_rows(results: list[dict]) -> list[dict]:
    """Per problem, the default procedure's choice and its test result against no noise (paired over the
    test seeds: mean difference, t-interval, t-test p), the best value on test, the regret, and the
    gain check of the value the procedure chose before it (None where that value is no noise)."""
    score, rule, seeds, screen, _ = DEFAULT
    out = []
    for res in results:
        if "cv" not in res:
            continue
        test = {float(v): np.asarray(t) for v, t in res["test"].items()}
        values = sorted(test)
        cvs = [res["cv"][str(v)] for v in values]
        means = {v: t.mean() for v, t in test.items()}
        picked = choose(values, cvs, score=score, rule=rule, seeds=seeds, screen=screen)
        chosen = values[choose(values, cvs, score=score, rule=rule, seeds=seeds, screen=screen, guard=True)]
        check = gain_check(values, cvs, picked, seeds=seeds) if picked is not None else None
        d = test[chosen] - test[0.0]
        differ = chosen != 0.0 and bool(np.any(d != 0))
        half = float(sps.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)) if differ else 0.0
        best = max(means, key=means.get)
        said = None
        if check is not None:
            lo, hi = check["ci"]
            said = (
                f"σ = {check['value']:g}: {check['metric']} gain {check['gain']:+.3f}, "
                f"{check['confidence']:.0%} CI [{lo:+.3f}, {hi:+.3f}]: " + ("kept" if check["passed"] else "no noise")
            )
        out.append(
            {
                "problem": res["problem"],
                "chosen": chosen,
                "delta": round(float(d.mean()), 4),
                "ci95": [round(float(d.mean()) - half, 4), round(float(d.mean()) + half, 4)],
                "p": float(sps.ttest_rel(test[chosen], test[0.0]).pvalue) if differ else None,
                "best": best,
                "regret": round(float(means[best] - means[chosen]), 4),
                "check": said,
            }
        )
    return out


def problem_table(results: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(PROBLEM_COLUMNS.values()) + " |", "|" + "---|" * len(PROBLEM_COLUMNS)]
    for r in problem_rows(results):
        p = "—" if r["p"] is None else f"{r['p']:.2g}"
        lines.append(
            f"| {r['problem']} | {r['chosen']:g} | {r['delta']:+.4f} | [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] | "
            f"{p} | {r['best']:g} | {r['regret']:.4f} | {r['check'] or '—'} |"
        )
    return lines


def table(results: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows(results):
        lines.append(
            f"| {r['procedure']} | {r['problems']} | {r['mean_regret']:.4f} | {r['median_regret']:.4f} | "
            f"{r['max_regret']:.4f} | {r['worse']} | {r['better']} | {r['mean_delta']:+.4f} |"
        )
    return lines


def write_summary(path: str, results: list[dict], provenance: dict) -> None:
    """The table as data, with how it was measured: what the docs render (benchmarks/results/)."""
    record = {**provenance, "date": time.strftime("%Y-%m-%d", time.gmtime()), "rows": rows(results)}
    record["default"] = procedure_name(*DEFAULT)
    record["problems"] = problem_rows(results)
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1, ensure_ascii=False)
        fh.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 problems, 300 epochs (a smoke run)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--family", choices=FAMILIES, default="tuning", help="which problems (module docstring)")
    parser.add_argument("--test-seeds", type=int, default=TEST_SEEDS, help="seeds on the whole training set")
    parser.add_argument("--cv-seeds", type=int, default=CV_SEEDS, help="seeds on each CV fold")
    parser.add_argument("--out", default=None, help="also write the per-problem results here (JSON)")
    parser.add_argument(
        "--summary",
        default=None,
        metavar="FILE",
        help="also write the table and its provenance as JSON (benchmarks/results/selection.json)",
    )
    parser.add_argument(
        "--rescore",
        default=None,
        metavar="FILE",
        help="score the procedures again on the held-out results an --out FILE stored; train nothing",
    )
    parser.add_argument(
        "--noise-generator",
        choices=("philox", "torch"),
        default=noise_generator_family(),
        help="what draws the noise (the stored tables, benchmarks/results/selection*.json, were measured with philox)",
    )
    args = parser.parse_args()
    set_noise_generator(args.noise_generator)
    if args.rescore:
        with open(args.rescore) as fh:
            stored = json.load(fh)
        results = [{**r, "choices": _choices({float(v): cv for v, cv in r["cv"].items()})} for r in stored["results"]]
        command = f"PYTHONPATH=src python benchmarks/selection.py {' '.join(sys.argv[1:])}"
        print(f"command: {command}")
        print(f"{len(results)} problems, {stored['epochs']} epochs, rescored from {args.rescore}")
        print("\n".join(table(results)))
        print(f"\nThe default procedure ({procedure_name(*DEFAULT)}), problem by problem:")
        print("\n".join(problem_table(results)))
        if args.summary:
            provenance = {**stored.get("provenance", {}), "rescored_with": command}
            write_summary(args.summary, results, provenance)
        return
    todo = family(args.family)
    todo = todo[::6] if args.quick else todo
    epochs = args.epochs or (300 if args.quick else EPOCHS)
    start = time.perf_counter()
    results = []
    for i, p in enumerate(todo):
        t0 = time.perf_counter()
        results.append(run_problem(p, epochs, args.workers, args.test_seeds, args.cv_seeds))
        print(f"[{i + 1}/{len(todo)}] {p.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, "w") as fh:
                json.dump({"epochs": epochs, "results": results}, fh)
    elapsed = time.perf_counter() - start
    provenance = {
        "command": f"PYTHONPATH=src python benchmarks/selection.py {' '.join(sys.argv[1:])}".rstrip(),
        "machine": machine(),
        "noise_generator": args.noise_generator,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "minutes": round(elapsed / 60, 1),
        "setup": (
            f"{args.family} family, {len(todo)} problems, grid {list(GRID)}, {epochs} epochs, {args.test_seeds} test "
            f"seeds, {FOLDS}-fold CV x {args.cv_seeds} seeds; regret in test accuracy (R^2 for the "
            f"{sum(r['regression'] for r in results)} regression problems)"
        ),
    }
    if args.out:  # the provenance travels with the held-out results, for --rescore
        with open(args.out, "w") as fh:
            json.dump({"epochs": epochs, "results": results, "provenance": provenance}, fh)
    print(f"command: {provenance['command']}")
    load = " ".join(f"{x:.2f}" for x in provenance["load_average"])
    print(
        f"machine: {provenance['machine']}, noise generator {args.noise_generator}; "
        f"load average {load}; {provenance['minutes']} min"
    )
    print(provenance["setup"])
    print("\n".join(table(results)))
    print(f"\nThe default procedure ({procedure_name(*DEFAULT)}), problem by problem:")
    print("\n".join(problem_table(results)))
    if args.summary:
        write_summary(args.summary, results, provenance)


if __name__ == "__main__":
    main()
