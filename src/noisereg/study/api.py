"""A study of the user's own model, data and loss, from Python: :func:`run_model` and :func:`site`.

>>> import tempfile, torch
>>> from torch import nn
>>> from noisereg import noise, study
>>> x, y = torch.randn(40, 2), (torch.arange(40) % 2)
>>> result = study.run_model(
...     model=lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)),
...     data=(x, y), folds=2, loss="ce", epochs=2, batch_size=10, seeds=2,
...     arms={"no noise": [], "input 0.1": [study.site(noise.Gaussian(std=0.1), at="input")]},
...     out=tempfile.mkdtemp(), threads=1)
>>> [a["name"] for a in result.summary["arms"]]
['no noise', 'input 0.1']

The same store, cells, statistics and report as ``noisereg study``: each (arm, grid value) is a cell,
stored in the Optuna store in ``out`` (a rerun resumes: finished cells are not trained again); seed
index i of every arm trains replica seed ``derive_seed(seed, "seed", i)`` on every fold, so arms are
paired (same initial weights and batch order; only the noise differs), and a seed's metric is its
mean over folds. Replicas train on the vectorized path (:mod:`noisereg.engine.vectorized`: the
replicas of a fold stacked under ``torch.func.vmap``, each with its own noise streams) where a trial
step shows it applies, else on the per-replica path (:mod:`noisereg.engine.loop`, a plain loop with
``noisereg.attach``), with the same results up to rounding; the run's metadata and the report say
which path trained each cell, and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast, get_args

import torch

from noisereg._checks import about, check_type
from noisereg.engine.loop import AttachSite, LoopTask
from noisereg.engine.vectorized import VECTORIZED, probe_arms
from noisereg.noise.base import NoiseKind
from noisereg.seeding import derive_seed, noise_generator_family
from noisereg.sites.attach import At
from noisereg.study.bridge.user import (
    as_factory,
    check_targets,
    describe_part,
    infer_task,
    make_loss,
    split_data,
    training_part,
)
from noisereg.study.model_plan import PlannedCell, check_arm_sites, check_count, check_one_batch, check_settings, plan
from noisereg.study.report import build_report, summarize, table_rows
from noisereg.study.report.documents import TERMINAL_HEADERS
from noisereg.study.run.dashboard import objective
from noisereg.study.run.jobs import Job, make_jobs, training
from noisereg.study.run.results import collect_results
from noisereg.study.rundir import explain, write_file
from noisereg.study.store import DB_NAME, Store, default_url, masked_url
from noisereg.study.store_base import StoreError, check_writable, quiet_optuna

__all__ = ["PER_REPLICA", "StudyResult", "run_model", "site"]

PER_REPLICA = "per-replica"
_SITES: tuple[str, ...] = get_args(At)  # attach's own list of sites
_OPTIONS = ("select", "where", "arg", "mask", "biases", "resample", "scale_by_lr")


def site(noise: NoiseKind, at: str = "input", **options: Any) -> AttachSite:
    """One site of an arm: the arguments of :func:`noisereg.attach` but the model, seed and optimizer.

    ``options``: ``select``, ``where``, ``arg``, ``mask``, ``biases``, ``resample``, ``scale_by_lr``
    as in ``attach``. Each replica attaches it with its own seed (see :mod:`noisereg.engine.loop`).

    >>> from noisereg.noise import Gaussian
    >>> site(Gaussian(std=0.1), at="activations", select="blocks.*.act", where="before").at
    'activations'

    Raises TypeError for a noise that is not a noise config, ValueError for an unknown site or option.
    """
    if not isinstance(noise, NoiseKind):
        raise TypeError(
            f"noise must be a noise config such as noisereg.noise.Gaussian(std=0.1), got {type(noise).__name__}"
        )
    if at not in _SITES:
        raise ValueError(f"at={at!r} must be one of {_SITES}")
    for key in options:
        if key not in _OPTIONS:
            raise ValueError(
                f"site option {key!r} is not one of {_OPTIONS} (the optimizer of at='gradients' is the replica's own)"
            )
    return AttachSite(noise, cast(At, at), tuple(sorted(options.items())))  # checked against _SITES above


class StudyResult:
    """What :func:`run_model` returns: ``summary`` (the schema of :mod:`noisereg.study.report.summary`),
    :meth:`table` and :meth:`report`."""

    def __init__(self, out: Path, name: str, summary: dict[str, Any]) -> None:
        self.out, self.name, self.summary = out, name, summary

    def table(self) -> str:
        """The evidence table of ``noisereg study`` as text: test metric over seeds, Δ vs the baseline
        with its bootstrap interval, P(better), the Holm-adjusted paired t-test and, where that is
        not significant, the minimum detectable effect (the columns of ``TERMINAL_HEADERS`` in
        :mod:`noisereg.study.report.documents`, from ``summary``)."""
        rows = table_rows(self.summary)
        heads = TERMINAL_HEADERS
        widths = {k: max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in heads.items()}
        lines = ["  ".join(h.ljust(widths[k]) for k, h in heads.items()).rstrip()]
        lines += ["  ".join(r[k].ljust(widths[k]) for k in heads).rstrip() for r in rows]
        title = (
            f"{self.summary['study']}: test {self.summary['metric']} over seeds (baseline: {self.summary['baseline']})"
        )
        return "\n".join([title, *lines, self.summary["verdict"]["text"]])

    def report(self) -> Path:
        """Write summary.json, summary.md, report.html and plots into ``out``; return report.html's path."""
        self.summary = build_report(self.out, study=self.name)
        return self.out / "report.html"


def _paths(tasks: list[LoopTask], vectorize: bool) -> list[tuple[str, str]]:
    """(path, why) for each arm whose first replica is in ``tasks``; the arms that may train together
    share one trial step (:func:`probe_arms`)."""
    if not vectorize:
        return [(PER_REPLICA, "vectorize=False: a plain training loop per replica with noisereg.attach")] * len(tasks)
    return [
        (VECTORIZED, "the replicas of a fold stacked under torch.func.vmap, each with its own noise streams")
        if reason is None
        else (PER_REPLICA, f"a plain training loop per replica with noisereg.attach: {reason}")
        for reason in probe_arms(tasks)
    ]


def _describe(fn: Any) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def run_model(
    *,
    model: Any,
    data: Any,
    arms: Mapping[str, Sequence[AttachSite]],
    out: str | Path,
    epochs: int,
    loss: Any = "auto",
    optimizer: Callable[[Any], torch.optim.Optimizer] | None = None,
    batch_size: int = 32,
    seeds: int = 10,
    folds: int | None = None,
    grid: Mapping[str, Any] | None = None,
    seed: int = 0,
    task: str = "auto",
    metric: str | None = None,
    metrics: Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]] | None = None,
    step: Callable[..., Any] | None = None,
    fit: Callable[..., Mapping[str, Any]] | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    eval_every: int = 1,
    workers: int = 1,
    threads: int = 1,
    name: str | None = None,
    description: str = "",
    claim: str = "",
    versus: Mapping[str, str] | None = None,
    storage: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    save_models: bool = True,
    study_file: Mapping[str, Any] | None = None,
    vectorize: bool = True,
) -> StudyResult:
    """Run (or resume) a study of the user's model into ``out``; return its :class:`StudyResult`.

    Args:
        model: a function returning a fresh ``nn.Module`` (called under a seeded generator per
            replica), or a module (deep-copied and re-initialized per replica with ``reset_parameters``).
        data: ``(x, y)`` tensors or arrays or a torch ``Dataset`` (with ``folds``), or
            ``{"train": ..., "test": ...}``; batches of a Dataset are ``(x, y)`` after ``collate``.
        arms: name -> list of :func:`site` (an empty list is no noise; the first such arm is the baseline).
        out: the run directory (store, report). epochs / batch_size / seeds: per replica.
        loss: ``"auto"`` (ce for classification, mse for regression), ``"ce"``, ``"bce"``, ``"mse"``,
            or the user's ``loss(outputs, targets)``. optimizer: ``params -> torch.optim.Optimizer``
            (default Adam, lr 1e-3).
        folds: k-fold over one data set (each seed trains once per fold). grid: arm -> strengths of
            its site's main strength (or ``{"site": i, "values": [...]}`` for an arm of several sites).
        task: ``auto`` | ``classification`` | ``regression``. metric: what the verdict compares
            (``accuracy``/``loss``/``r2``). metrics: more ``name -> fn(outputs, targets)`` recorded.
        step: ``step(model, batch, optimizer)`` instead of the default training step.
        fit: ``fit(model, {"train": ..., "test": ...}, seed) -> {"test_loss": ..., "test_acc": ...,
            optionally "epochs": [...], "curves": {...}}``: the whole loop is the user's; input,
            activation, embedding and weight noise are still attached and seeded per replica.
        workers: processes that train replicas side by side (forked; with a new SQLite store in ``out``
            they start training before this process has set the store up).
        threads: torch's threads per process while replicas train (restored afterwards); replicas
            run side by side through ``workers``, and small models are fastest on one thread each.
        claim: a published claim the study tests, shown in the report beside what it measured.
        versus: arm -> another arm it is also compared with, seed by seed (both without a grid), as
            a study file's ``versus``: the report's paired contrasts.
        storage: Optuna storage URL (default SQLite in ``out``). save_models: write the test folds'
            final weights to ``out/models`` (:mod:`noisereg.study.cell_models`).
        study_file: the validated study file this run comes from (stored with the configuration, so
            a changed file is told apart from a resume).
        vectorize: train the replicas of a fold together under ``torch.func.vmap`` where a trial step
            shows it applies (False: every replica on its own, the per-replica path).

    Raises:
        TypeError / ValueError: a bad argument, named, before anything is stored or trained.
        StoreError: ``out`` holds a study with other settings, or cannot be written (the message says
            which folder or file and why: read-only, permissions, a full disk).
    """
    check_type(claim, "claim", str, "a str (a published claim, or '')")
    seed, epochs, batch_size, seeds, workers, threads, eval_every = (
        check_count(value, arg, low)
        for arg, value, low in (
            ("seed", seed, 0),
            ("epochs", epochs, 1),
            ("batch_size", batch_size, 1),
            ("seeds", seeds, 1),
            ("workers", workers, 1),
            ("threads", threads, 1),
            ("eval_every", eval_every, 1),
        )
    )
    check_settings(locals())
    with about("model"):
        factory = as_factory(model)
    cells = plan(arms, grid or {})
    versus = dict(versus or {})
    with about("versus"):
        for arm, other in versus.items():
            for name in (arm, other):
                if name not in arms or name in (grid or {}):
                    raise ValueError(f"versus={{{arm!r}: {other!r}}}: {name!r} is not an arm without a grid")
            if arm == other:
                raise ValueError(f"versus={{{arm!r}: {other!r}}} compares an arm with itself")
    baseline = next((c.arm for c in cells if not c.sites), None)
    if baseline is None:
        with about("arms"):
            raise ValueError(f"arms need one arm without noise (an empty list) to compare against, got {list(arms)}")
    with about("data"):
        kind = task if task != "auto" else infer_task(loss, training_part(data))
        the_folds, whole = split_data(data, folds, kind, seed)
    with about("loss"):
        loss_name, loss_fn, threshold = make_loss(loss, kind)
        check_targets(whole, kind, loss_name, name="data['train']" if isinstance(data, Mapping) else "data")
    metric = metric or ("accuracy" if kind == "classification" else "r2")
    if (metric == "accuracy") != (kind == "classification") and metric != "loss":
        with about("metric"):
            raise ValueError(f"metric={metric!r} does not fit a {kind} task")
    extra = tuple((metrics or {}).items())
    for metric_name, fn in extra:
        if not isinstance(metric_name, str) or not callable(fn) or metric_name in ("loss", "acc", "r2"):
            with about("metrics"):
                raise ValueError(f"metrics[{metric_name!r}] must map a new name to fn(outputs, targets) -> float")
    with torch.random.fork_rng(devices=[]):
        probe = check_arm_sites(factory, cells, fit, step)
        if step is None and fit is None and isinstance(whole, tuple):
            check_one_batch(probe, whole, loss_fn, loss_name, dtype)
    make_optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
    replica_seeds = [derive_seed(seed, "seed", i) for i in range(seeds)]

    def template(cell: PlannedCell) -> LoopTask:
        return LoopTask(
            model=factory,
            sites=cell.sites,
            train=the_folds[0].train,
            test=the_folds[0].test,
            loss=loss_fn,
            optimizer=make_optimizer,
            epochs=epochs,
            batch_size=batch_size,
            task=kind,
            seed=replica_seeds[0],
            eval_every=eval_every,
            step=step,
            fit=fit,
            collate=collate,
            metrics=extra,
            threshold=threshold,
            dtype=dtype,
            device=device,
            threads=threads,
        )

    firsts: dict[str, PlannedCell] = {}  # one trial per arm: its grid cells differ in strength only
    for c in cells:
        firsts.setdefault(c.arm, c)
    by_arm = dict(zip(firsts, _paths([template(c) for c in firsts.values()], vectorize), strict=True))
    paths = {c.key: by_arm[c.arm] for c in cells}
    name = name or Path(out).name
    config = {
        "name": name,
        "description": description,
        "claim": claim,
        "seed": seed,
        "seeds": seeds,
        "noise_generator": noise_generator_family(),
        "metric": metric,
        "baseline": baseline,
        "curve_points": 200,
        "arms": [
            {"name": a, "noise": [s.describe() for s in sites], **({"versus": versus[a]} if a in versus else {})}
            for a, sites in arms.items()
        ],
        "grid": {a: list(v) if not isinstance(v, Mapping) else dict(v) for a, v in (grid or {}).items()},
        "model": {"factory": _describe(model) if not isinstance(model, torch.nn.Module) else type(model).__name__},
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "eval_every": eval_every,
            "loss": loss_name,
            "optimizer": _describe(optimizer),
            "step": _describe(step),
            "fit": _describe(fit),
        },
        "folds": folds,
        "task": kind,
        "selection": None,
        "study_file": dict(study_file) if study_file else None,
    }
    parts = [describe_part(f.train, kind) for f in the_folds], [describe_part(f.test, kind) for f in the_folds]
    meta = {
        "data": "user data",
        "task": kind,
        "classes": describe_part(whole, kind).get("classes", []),
        "features": parts[0][0].get("features"),
        "n_train": [p["n"] for p in parts[0]],
        "n_test": [p["n"] for p in parts[1]],
        "loss": loss_name,
        "seeds": seeds,
        "monitor": None,
        "paths": {key: {"path": path, "why": why} for key, (path, why) in paths.items()},
    }
    out = Path(out)
    fresh = storage is None and not (out / DB_NAME).exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission: nothing has been written yet
        raise StoreError(f"run directory {out} cannot be made: {explain(exc)}; choose another out") from None
    url = storage or default_url(out)
    check_writable(url)
    by_key = {c.key: c for c in cells}

    def jobs_of(keys: Sequence[str]) -> tuple[list[tuple[PlannedCell, int, int]], list[tuple[list[int], Job]]]:
        """The replicas of the cells ``keys`` (cell, seed index, fold index) and the jobs that train them."""
        rows = [(by_key[k], s, g) for k in keys for g in range(len(the_folds)) for s in range(seeds)]
        tasks = [
            dataclasses.replace(template(cell), train=the_folds[g].train, test=the_folds[g].test, seed=replica_seeds[s])
            for cell, s, g in rows
        ]
        vectorized = [paths[cell.key][0] == VECTORIZED for cell, _, _ in rows]
        return rows, make_jobs(tasks, vectorized, [g for *_, g in rows], workers)

    with contextlib.ExitStack() as started:
        ahead = None
        if fresh and workers > 1:
            # A new SQLite store claims every cell: the workers start training them now, while this
            # process sets up the store (imports, schema, a commit per cell).
            rows, jobs = jobs_of(list(by_key))
            ahead = rows, jobs, time.perf_counter(), started.enter_context(training([j for _, j in jobs], workers))
        with quiet_optuna(), Store(url, name) as store:
            # a run stored before the generator was recorded drew with torch's
            store.create(
                config,
                {c.key: c.meta(*paths[c.key]) for c in cells},
                meta,
                upgrade=lambda stored: {"noise_generator": "torch", **stored},
            )
            write_file(out / "run.json", json.dumps({"study": name, "storage": masked_url(url)}, indent=2) + "\n")
            store.requeue_failed()
            store.enqueue([c.key for c in cells])
            claims = store.claim(len(cells))
            if claims:
                if ahead is not None and sorted(c.cell for c in claims) == sorted(by_key):
                    rows, jobs, start, wait = ahead
                else:  # not a new store, or another process claimed some cells: train this one's claims
                    started.close()
                    rows, jobs = jobs_of([c.cell for c in claims])
                    start, wait = time.perf_counter(), started.enter_context(training([j for _, j in jobs], workers))
                with store.heartbeat(claims):
                    try:
                        results: list[Any] = [None] * len(rows)
                        for (members, _), trained in zip(jobs, wait(), strict=True):
                            for i, result in zip(members, trained, strict=True):
                                results[i] = result
                        stored = collect_results(claims, rows, results, out if save_models else None, config)
                    except BaseException as exc:
                        for held in claims:
                            store.fail(held, "".join(traceback.format_exception(exc)))
                        raise
                elapsed = time.perf_counter() - start
                for held in claims:
                    res = stored[held.cell]
                    res["elapsed_s"] = round(elapsed / len(claims), 3)
                    res["path"], res["path_reason"] = paths[held.cell]
                    store.complete(held, objective(res), res)
            failed = sorted(store.unfinished())
            if failed:
                raise RuntimeError(f"cells without a result: {failed}; rerun to retry them")
            summary = summarize(store.attrs(), store.completed())
    return StudyResult(out, name, summary)
