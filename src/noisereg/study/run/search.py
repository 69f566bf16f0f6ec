"""Proposals for search cells: Optuna's sampler picks a cell's strength (and site) when a worker takes it.

A search arm's cells (``arm[trial=i]``, see :class:`~noisereg.study.config.search.SearchConfig`) are
planned, enqueued, claimed, retried and stored like grid cells; only their value is open. When a
worker claims one, :func:`propose_cell` asks the sampler for it, records the proposal on the trial
(user attribute ``proposal``: ``{"value": float, "site": str | None}``) before training, and returns
the cell to train. A cell retried after its worker died keeps its proposal (Optuna's retry copies
the user attributes); a cell enqueued again after an error gets a new one.

The sampler sees only this arm's search cells, on a throw-away in-memory Optuna study: grid cells of
the same storage never enter its model, and a proposal is a pure function of the seed, the finished
cells and the cells in training (:func:`propose`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from noisereg.seeding import derive_seed
from noisereg.study.bridge.prepare import Prepared
from noisereg.study.cells import Cell
from noisereg.study.config.search import SearchConfig
from noisereg.study.config.study import SelectionConfig
from noisereg.study.store import PROPOSAL, Claim, Store
from noisereg.study.store.base import quiet_optuna

__all__ = ["propose", "propose_cell", "cv_score", "PROPOSAL"]


def cv_score(results: Mapping[str, Any], criterion: str) -> float:
    """What the sampler minimizes for a finished cell: its mean cross-validated loss over seeds ×
    folds for ``criterion = 'likelihood'`` (Holmstrom & Koistinen 1992), minus its mean validation
    accuracy for ``'accuracy'`` (the loss where no accuracy is stored, as for regression)."""
    cv = results.get("cv") or {}
    if criterion == "accuracy" and cv.get("val_acc"):
        return -float(np.mean(cv["val_acc"]))
    return float(np.mean(cv["val_loss"]))


def propose(
    search: SearchConfig,
    finished: Sequence[tuple[Mapping[str, Any], float]],
    running: Sequence[Mapping[str, Any]],
    *,
    seed: int,
) -> dict[str, Any]:
    """The sampler's next proposal, ``{"value": float, "site": str | None}``; the same arguments give
    the same proposal.

    Args:
        search: the arm's search table (sampler, bounds, sites, startup).
        finished: ``(proposal, objective)`` of finished cells, lower objective better; a cell whose
            objective is not finite (a diverged training) is left out, as Optuna fails such trials.
        running: proposals of cells in training; TPE treats them as bad ones (constant liar) so
            that workers proposing at the same time spread out.
        seed: the sampler's seed, an int in [0, 2**32).
    """
    space: dict[str, Any] = {"value": FloatDistribution(search.low, search.high, log=search.log)}
    if search.sites is not None:
        space["site"] = CategoricalDistribution(search.sites)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if search.sampler == "tpe":
            sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=search.n_startup, constant_liar=True
            )
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
        with quiet_optuna():  # one in-memory study per proposal: no log line
            study = optuna.create_study(sampler=sampler, direction="minimize")
        for proposal, value in finished:
            if math.isfinite(value):
                study.add_trial(
                    optuna.trial.create_trial(params=_params(proposal, space), distributions=space, value=value)
                )
        for proposal in running:
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.RUNNING, params=_params(proposal, space), distributions=space
                )
            )
        params = study.ask(space).params
    return {"value": float(params["value"]), "site": params.get("site")}


def _params(proposal: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any]:
    return {name: proposal[name] for name in space}


def propose_cell(prep: Prepared, store: Store, claim: Claim) -> Cell:
    """The search cell of ``claim`` with its proposed value (and site), proposed now unless the trial
    already holds one; ``prep`` is the worker's :class:`~noisereg.study.bridge.prepare.Prepared` study.

    The sampler's seed is ``derive_seed(study seed, "search", arm, i) mod 2**32`` (numpy's legacy
    seeding, which Optuna's samplers use, takes 32 bits) for the arm's i-th cell, counted from 1.
    """
    planned: Cell = prep.by_key[claim.cell]
    arm = next(a for a in prep.config.arms if a.name == planned.arm)
    # a claim's cell is a search cell, planned only for an arm with a search
    search = cast(SearchConfig, arm.search)
    proposal = store.storage.get_trial(claim.trial_id).user_attrs.get(PROPOSAL)
    if proposal is None:
        keys = [c.key for c in prep.cells if c.search and c.arm == planned.arm]
        # StudyConfig refuses a search arm without [selection] naming it
        criterion = cast(SelectionConfig, prep.config.selection).criterion
        finished = [
            (r[PROPOSAL], cv_score(r, criterion)) for k, r in store.completed().items() if k in keys and PROPOSAL in r
        ]
        running = [
            t.user_attrs[PROPOSAL]
            for t in store.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.params.get("cell") in keys and PROPOSAL in t.user_attrs and t.number != claim.number
        ]
        seed = derive_seed(prep.config.seed, "search", planned.arm, keys.index(claim.cell) + 1) % 2**32
        proposal = propose(search, finished, running, seed=seed)
        store.storage.set_trial_user_attr(claim.trial_id, PROPOSAL, proposal)
    noise = search.noise_at(list(arm.noise), proposal["value"], proposal["site"])
    return dataclasses.replace(planned, value=proposal["value"], noise=tuple(noise))
