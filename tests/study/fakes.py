"""Small studies and synthetic stored results for tests that need no training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from noisereg.study.cells import plan_cells
from noisereg.study.config import StudyConfig, parse_config
from noisereg.study.store import Store, default_url


def tiny_raw(**overrides: Any) -> dict[str, Any]:
    """A tiny circles study as plain data: 3 seeds, 5 epochs, 4 arms, a 3-value CV grid."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "seeds": 3,
        "data": {"source": "circles", "n_samples": 60, "noise": 0.1, "random_state": 1},
        "split": {"kind": "holdout", "n_train": 30},
        "model": {"family": "mlp", "widths": [8]},
        "training": {"epochs": 5, "batch_size": 32, "eval_every": 1},
        "arms": [
            {"name": "none"},
            {"name": "input", "noise": {"at": "input", "kind": "gaussian", "std": 0.1}},
            {"name": "before", "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1}},
            {
                "name": "grid",
                "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1},
                "grid": [0.0, 0.1, 1.0],
            },
        ],
        "selection": {"arm": "grid", "folds": 3},
    }
    raw.update(overrides)
    return raw


def tiny_config(**overrides: Any) -> StudyConfig:
    return parse_config(tiny_raw(**overrides))


def fake_results(key: str, seeds: int, shift: float, *, cv: bool, epochs: int = 5, folds: int = 3) -> dict[str, Any]:
    """Results shaped like the runner's, with test accuracy 0.7 + shift + 0.01·seed."""
    acc = [0.7 + shift + 0.01 * s for s in range(seeds)]
    curve = [[min(1.0, a * (e + 1) / epochs) for e in range(epochs)] for a in acc]
    out: dict[str, Any] = {
        "cell": key,
        "seeds": list(range(seeds)),
        "final": {
            "test_acc": acc,
            "train_acc": [1.0] * seeds,
            "test_loss": [1.0 - a for a in acc],
            "train_loss": [0.1] * seeds,
        },
        "epochs": list(range(1, epochs + 1)),
        "replicas": seeds * (1 + folds * cv),
        "elapsed_s": 0.1,
        "curve:test_acc": curve,
        "curve:train_acc": [[1.0] * epochs for _ in acc],
        "cv": None,
    }
    if cv:
        out["cv"] = {
            "val_loss": [[0.5 - shift + 0.01 * f for f in range(folds)] for _ in range(seeds)],
            "val_acc": [[0.8 + shift] * folds for _ in range(seeds)],
            "val_loss_curve": [
                [[0.9 - shift - 0.1 * e + 0.01 * f for e in range(2)] for f in range(folds)] for _ in range(seeds)
            ],
            "val_epochs": [1, epochs],
        }
    return out


def populate(run_dir: Path, config: StudyConfig, shifts: dict[str, float], *, skip: tuple[str, ...] = ()) -> Store:
    """A store in ``run_dir`` with every cell of ``config`` completed with :func:`fake_results`."""
    cells = plan_cells(config)
    store = Store(default_url(run_dir), config.name)
    meta = {"data": "circles", "task": "classification", "classes": ["0", "1"], "n_train": [30], "n_test": [30]}
    store.create(config.model_dump(mode="json"), {c.key: c.meta() for c in cells}, meta)
    (run_dir / "run.json").write_text(f'{{"study": "{config.name}", "storage": "{default_url(run_dir)}"}}')
    store.enqueue([c.key for c in cells])
    by_key = {c.key: c for c in cells}
    for claim in store.claim(len(cells)):
        if claim.cell in skip:
            continue
        res = fake_results(claim.cell, config.seeds, shifts.get(claim.cell, 0.0), cv=by_key[claim.cell].selection)
        store.complete(claim, float(np.mean(res["final"]["test_loss"])), res)
    return store


def fake_robustness(
    seeds: list[int], certified: list[list[float]], radii: list[float], settings: dict[str, Any]
) -> dict[str, Any]:
    """A cell's stored robustness measurements (``robustness:<cell>``), as the runner writes them:
    only what the summary and the export read, with ``certified`` [[per radius] per seed]."""
    per_seed = [0.1] * len(seeds)
    return {
        "settings": settings,
        "seeds": seeds,
        "calibration": {
            "accuracy": per_seed,
            "ece": per_seed,
            "adaptive_ece": per_seed,
            "nll": per_seed,
            "brier": per_seed,
            "bins": 15,
            "reliability": None,
        },
        "corruptions": None,
        "smoothing": {
            "sigma": 0.5,
            "n0": 10,
            "n": 100,
            "alpha": 0.001,
            "radii": radii,
            "seeds": seeds,
            "inputs": [20] * len(seeds),
            "certified": certified,
            "abstained": [0.0] * len(seeds),
        },
    }


STORED_RTOL = 1e-5
"""Results are stored to 6 significant digits: half a unit there is at most 5e-6 relative."""


def assert_stored_close(a: Any, b: Any, path: str = "") -> None:
    """Nested stored results agree to their stored precision. Cells trained in stacks of other sizes
    agree to rounding only (see noisereg.engine), which 6-digit rounding can turn into one unit of the
    last stored digit; anything else (a different noise stream, another seed) moves them far more."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_stored_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_stored_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert abs(a - b) <= STORED_RTOL * max(abs(a), abs(b)), (path, a, b)
    else:
        assert a == b, (path, a, b)
