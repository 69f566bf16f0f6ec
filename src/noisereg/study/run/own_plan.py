"""The plan of a study of the user's own model (:class:`ModelPlan`) and the checks that build it
(:func:`plan_model`, :func:`~noisereg.study.api.run_model`'s arguments): each (arm, grid value) is a
cell; a batch of claimed cells trains as jobs (:mod:`noisereg.study.run.jobs`), one per replica on
the per-replica path, or the replicas of a fold stacked on the vectorized path. The one life cycle
(:mod:`noisereg.study.run.lifecycle`) runs it; nothing here touches the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from noisereg._checks import about, check_type
from noisereg.engine.loop import AttachSite, LoopResult, LoopTask
from noisereg.engine.lowering import LOWERED, on_kernels
from noisereg.engine.vectorized import VECTORIZED
from noisereg.engine.vectorized_training import probe_arms
from noisereg.seeding import Family, derive_seed, noise_generator_family
from noisereg.study.bridge.user import (
    UserFold,
    as_factory,
    check_targets,
    describe_part,
    infer_task,
    make_loss,
    split_data,
    training_part,
)
from noisereg.study.config.sequential import SEEDS_MAX
from noisereg.study.model_plan import PlannedCell, check_arm_sites, check_count, check_one_batch, check_settings, plan
from noisereg.study.run.dashboard import objective
from noisereg.study.run.jobs import make_jobs, training
from noisereg.study.run.lifecycle import Trained
from noisereg.study.run.results import collect_results, save_results_models
from noisereg.study.store import Claim, Store

__all__ = ["OWN_MODEL", "PER_REPLICA", "ModelPlan", "describe_function", "paths", "plan_model"]

PER_REPLICA = "per-replica"
OWN_MODEL = "study_file"
"""The key of a stored configuration that marks a study of the user's own model: its study file, or
None for a study defined in Python."""


def paths(tasks: list[LoopTask], vectorize: bool) -> list[tuple[str, str]]:
    """(path, why) for each arm whose first replica is in ``tasks``; the arms that may train together
    share one trial step (:func:`probe_arms`)."""
    if not vectorize:
        return [(PER_REPLICA, "vectorize=False: a plain training loop per replica with noisereg.attach")] * len(tasks)
    kernels = on_kernels(tasks)  # an arm on the built-in engine's MLP kernels needs no vmap trial
    reasons = iter(probe_arms([task for task, k in zip(tasks, kernels, strict=True) if not k]))
    out = []
    for kernel in kernels:
        if kernel:
            out.append((VECTORIZED, LOWERED))
            continue
        reason = next(reasons)
        out.append(
            (VECTORIZED, "the replicas of a fold stacked under torch.func.vmap, each with its own noise streams")
            if reason is None
            else (PER_REPLICA, f"a plain training loop per replica with noisereg.attach: {reason}")
        )
    return out


@dataclasses.dataclass
class ModelPlan:
    """A checked study of the user's model, ready to run; nothing stored yet (see :func:`plan_model`
    in :mod:`noisereg.study.api`). ``template(cell)`` is a replica's task on the first fold and seed;
    ``config``, ``cell_meta`` and ``meta`` are what the store keeps."""

    name: str
    cells: list[PlannedCell]
    folds: list[UserFold]
    replica_seeds: list[int]
    template: Callable[[PlannedCell], LoopTask]
    cell_paths: dict[str, tuple[str, str]]
    config: dict[str, Any]
    meta: dict[str, Any]
    workers: int
    models_dir: Path | None
    noise_generator: Family = dataclasses.field(default_factory=noise_generator_family)

    def __post_init__(self) -> None:
        self.keys = [c.key for c in self.cells]
        self.by_key = {c.key: c for c in self.cells}
        self.cell_meta = {c.key: c.meta(*self.cell_paths[c.key]) for c in self.cells}

    def replicas(self, key: str) -> int:
        return len(self.replica_seeds) * len(self.folds)

    def units(self, key: str) -> int:
        return self.replicas(key) * int(self.config["training"]["epochs"])

    def signature(self, key: str) -> Hashable:
        return ()  # any cells train together: the jobs group the replicas that can stack

    def claimed(self, store: Store, claim: Claim) -> None:
        return None

    def due(self, store: Store) -> int:
        return 0  # every cell is enqueued at the start: no rounds

    def show(self, store: Store, claim: Claim, result: dict[str, Any]) -> float | None:
        result["path"], result["path_reason"] = self.cell_paths[claim.cell]
        return objective(result)

    @contextlib.contextmanager
    def training(self, keys: Sequence[str], advance: Callable[[int], None]) -> Iterator[Callable[[], Trained]]:
        """Start the jobs of the cells ``keys`` (in forked processes with ``workers`` > 1, training
        while the caller goes on); yield what waits for them and collects each cell's results."""
        rows = [
            (self.by_key[k], s, g) for k in keys for g in range(len(self.folds)) for s in range(len(self.replica_seeds))
        ]
        tasks = [
            dataclasses.replace(
                self.template(cell), train=self.folds[g].train, test=self.folds[g].test, seed=self.replica_seeds[s]
            )
            for cell, s, g in rows
        ]
        vectorized = [self.cell_paths[cell.key][0] == VECTORIZED for cell, _, _ in rows]
        jobs = make_jobs(tasks, vectorized, [g for *_, g in rows], self.workers)
        with training([j for _, j in jobs], self.workers) as wait:

            def collect() -> Trained:
                results: list[LoopResult | None] = [None] * len(rows)
                for (members, _), trained in zip(jobs, wait(), strict=True):
                    for i, result in zip(members, trained, strict=True):
                        results[i] = result
                done = [r for r in results if r is not None]
                advance(sum(self.units(k) for k in keys))
                stored = collect_results(keys, rows, done, self.config)
                return Trained(stored, lambda: self._save(keys, rows, done))

            yield collect

    def _save(self, keys: Sequence[str], rows: Sequence[tuple[PlannedCell, int, int]], done: list[LoopResult]) -> None:
        if self.models_dir is not None:
            save_results_models(keys, rows, done, self.models_dir, self.config)


MAX_PARALLEL = 1024
"""The most ``workers`` and ``threads`` that :func:`plan_model` accepts."""


def plan_model(
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
    clip_grad_norm: float | None = None,
    eval_every: int = 1,
    workers: int = 1,
    threads: int = 1,
    name: str | None = None,
    description: str = "",
    claim: str = "",
    versus: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    save_models: bool = True,
    study_file: Mapping[str, Any] | None = None,
    vectorize: bool = True,
) -> ModelPlan:
    """Check :func:`~noisereg.study.api.run_model`'s arguments (as named there) and build its plan:
    nothing is stored or trained. Raises TypeError / ValueError naming the argument."""
    seed, epochs, batch_size, seeds, workers, threads, eval_every = (
        check_count(value, arg, low, high)
        for arg, value, low, high in (
            ("seed", seed, 0, None),
            ("epochs", epochs, 1, None),
            ("batch_size", batch_size, 1, None),
            # a study file's bound; the plan lists every seed before anything is stored
            ("seeds", seeds, 1, SEEDS_MAX),
            # far above any CPU's core count: torch starts every intra-op thread asked for (10**5 of
            # them exhaust the memory in the vmap trial, before anything is stored)
            ("workers", workers, 1, MAX_PARALLEL),
            ("threads", threads, 1, MAX_PARALLEL),
            ("eval_every", eval_every, 1, None),
        )
    )
    check_settings({**locals(), "storage": None})
    check_type(claim, "claim", str, "a str (a published claim, or '')")
    with about("model"):
        factory = as_factory(model)
    cells = plan(arms, grid or {})
    versus = dict(versus or {})
    with about("versus"):
        for arm, other in versus.items():
            for compared in (arm, other):
                if compared not in arms or compared in (grid or {}):
                    raise ValueError(f"versus={{{arm!r}: {other!r}}}: {compared!r} is not an arm without a grid")
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
            clip_grad_norm=None if clip_grad_norm is None else float(clip_grad_norm),
        )

    firsts: dict[str, PlannedCell] = {}  # one trial per arm: its grid cells differ in strength only
    for c in cells:
        firsts.setdefault(c.arm, c)
    by_arm = dict(zip(firsts, paths([template(c) for c in firsts.values()], vectorize), strict=True))
    cell_paths = {c.key: by_arm[c.arm] for c in cells}
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
        "model": {
            "factory": describe_function(model) if not isinstance(model, torch.nn.Module) else type(model).__name__
        },
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "eval_every": eval_every,
            "loss": loss_name,
            "optimizer": describe_function(optimizer),
            "step": describe_function(step),
            "fit": describe_function(fit),
            # only when set: a study stored before the option existed is the same study on resume
            **({} if clip_grad_norm is None else {"clip_grad_norm": float(clip_grad_norm)}),
        },
        "folds": folds,
        "task": kind,
        "selection": None,
        OWN_MODEL: dict(study_file) if study_file else None,
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
        "paths": {key: {"path": path, "why": why} for key, (path, why) in cell_paths.items()},
    }
    return ModelPlan(
        name=name,
        cells=cells,
        folds=the_folds,
        replica_seeds=replica_seeds,
        template=template,
        cell_paths=cell_paths,
        config=config,
        meta=meta,
        workers=workers,
        models_dir=Path(out) / "models" if save_models else None,
    )


def describe_function(fn: Any) -> str | None:
    """``module:qualname`` of a function the user gave (stored with the configuration), or None."""
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"
