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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast, get_args

import torch

from noisereg._checks import about, check_int, check_real, check_type
from noisereg.engine.loop import AttachSite
from noisereg.noise.base import NoiseKind
from noisereg.sites.attach import At
from noisereg.study.report import build_report, table_rows
from noisereg.study.report.documents import TERMINAL_HEADERS
from noisereg.study.run.own_model import run_plan
from noisereg.study.run.own_plan import PER_REPLICA, plan_model

__all__ = ["PER_REPLICA", "StudyResult", "run_model", "site"]

_SITES: tuple[str, ...] = get_args(At)  # attach's own list of sites
_OPTIONS = ("select", "where", "arg", "mask", "biases", "resample", "increments", "scale_by_lr")  # a study file's too


def site(noise: NoiseKind, at: str = "input", **options: Any) -> AttachSite:
    """One site of an arm: the arguments of :func:`noisereg.attach` but the model, seed and optimizer.

    ``options``: ``select``, ``where``, ``arg``, ``mask``, ``biases``, ``resample``, ``increments``,
    ``scale_by_lr`` as in ``attach``. Each replica attaches it with its own seed (see :mod:`noisereg.engine.loop`).

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
    clip_grad_norm: float | None = None,
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
    heartbeat_interval: int = 10,
    retry_for: float = 60.0,
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
        clip_grad_norm: rescale each replica's gradient, gradient noise included, to at most this
            norm before every optimizer update (as ``torch.nn.utils.clip_grad_norm_`` over all the
            optimizer's parameters, and as a study file's ``optimizer.clip_grad_norm`` for built-in
            models); with ``step=`` too, it clips inside ``optimizer.step()``. None: no clipping.
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
        heartbeat_interval / retry_for: seconds between heartbeats of the cells in training (a cell
            silent for 3x this is taken for dead and retried), and seconds to keep retrying a database
            server that cannot be reached, as for ``noisereg study``.

    Other processes may train the same study at the same time (the same call with the same
    ``storage``); ``noisereg worker`` can train it only when it comes from a study file, whose
    ``model.factory`` and ``data.loader`` it imports by path (a function or module given here has no
    path another process could import: the worker says so).

    Raises:
        TypeError / ValueError: a bad argument, named, before anything is stored or trained.
        StoreError: ``out`` holds a study with other settings, or cannot be written (the message says
            which folder or file and why: read-only, permissions, a full disk).
    """
    with about("heartbeat_interval"):
        check_int(heartbeat_interval, "heartbeat_interval", low=1)
    with about("retry_for"):
        check_real(retry_for, "retry_for", low=0.0)
    with about("storage"):
        check_type(storage, "storage", (str, type(None)), "an SQLAlchemy URL (str) or None")
    arguments = {k: v for k, v in locals().items() if k not in ("storage", "heartbeat_interval", "retry_for")}
    plan = plan_model(**arguments)
    summary = run_plan(plan, out, storage=storage, heartbeat_interval=heartbeat_interval, retry_for=retry_for)
    return StudyResult(Path(out), plan.name, summary)
