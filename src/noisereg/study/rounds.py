"""Rounds of a sequential study (``seeds = { max, step }``): the round cells, what each comparison
has decided, and a cell's rounds merged back into one result. Torch-free: the runner, the report and
``benchmarks/sequential.py`` share it.

Each cell of the study (arm × grid value) is planned as rounds: round k trains the seed indices
[(k−1)·step, min(k·step, max)) and is a cell of its own in the store, keyed ``<cell>@round<k>``, so
that the store keeps every round and a resumed study continues where it stopped. After each round,
:func:`decisions` compares every cell with the baseline on the seeds both have. Each comparison gets
alpha/m (m comparisons, Bonferroni), spent half on the confidence sequence of
:mod:`noisereg.study.sequential`, looked at after every round, and half on a paired t-test at the
planned maximum of ``max`` seeds, for a comparison the sequence has not decided by then: a test at
one fixed n, which keeps the verdicts of a fixed study of ``max`` seeds within reach (a confidence
sequence pays for its freedom to look with a wider interval; at 30 seeds its critical value is about
3.4 against the t-test's 2.05). By the union bound the two err together with probability at most
alpha/m per comparison, alpha in all. A stored study whose ``max`` is raised keeps its rounds and the
verdicts its t-test gave at the earlier maximum (``Rounds.earlier``); a comparison open there goes on
to the new maximum and its t-test, which adds alpha/2m to its error rate for each raise.
:func:`due` names the rounds to train next: the next round of
every cell whose comparison is still open, and of the baseline while any is.
With ``[selection] racing``, a grid value of the selection arm is *raced out* once its per-seed CV
score (mean over folds, by the selection's criterion; ``early`` races on the final held-out loss) is
worse than another value's by a confidence sequence at level alpha/(K·(K−1)) (all ordered pairs of
the K values) and, under the ``one_se`` rule, its mean is more than one standard error from the
best's: the selection could not choose it. Racing is about the selection only, so a raced-out value
stops its CV folds (most of its cost: seeds × folds), while its comparison with the baseline on the
test folds goes on, on its own confidence sequence, until it decides or reaches ``max``: its later
rounds train their test folds only (:attr:`Next.without_cv`).

A decision depends only on the seeds up to the look at which it is made, and every seed's result
does not depend on which others train beside it (the engine's guarantee), so these decisions replayed
on a fixed study's per-seed results in seed order are what a sequential run decides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from noisereg.study.cells import Cell
from noisereg.study.selection import SCORES, fold_scores, screened
from noisereg.study.sequential import Decision, decide

__all__ = [
    "EARLIER_MAX",
    "round_key",
    "plan_rounds",
    "rounds_of",
    "compare",
    "decisions",
    "race",
    "raced_at",
    "first_seeds",
    "due",
    "Next",
    "merge_rounds",
    "Rounds",
]


EARLIER_MAX = "rounds:earlier_max"
"""Study attribute of a stored sequential study whose ``max`` was raised: the earlier maxima, in order."""


@dataclasses.dataclass(frozen=True)
class Rounds:
    """The plain settings of a sequential study (from ``seeds = { max, step, alpha, margin }``), and
    ``earlier``: the maxima it had before ``max`` was raised (the final t-test was made there too)."""

    max: int
    step: int
    alpha: float
    margin: float | None
    earlier: tuple[int, ...] = ()

    @classmethod
    def of(cls, seeds: Any, earlier: Sequence[int] | None = None) -> Rounds | None:
        """From a config's ``seeds`` (a number: None, a fixed study; a table or its model: the rounds)
        and the study's :data:`EARLIER_MAX` attribute, if any."""
        if isinstance(seeds, int) or seeds is None:
            return None
        table: Mapping[str, Any] = seeds if isinstance(seeds, Mapping) else seeds.model_dump()
        margin = table.get("margin")
        before = tuple(int(m) for m in earlier or () if int(m) < int(table["max"]))
        return cls(int(table["max"]), int(table["step"]), float(table.get("alpha", 0.05)), margin, before)

    @property
    def looks(self) -> list[int]:
        return [*range(self.step, self.max, self.step), self.max]


def round_key(key: str, k: int) -> str:
    """The store key of round ``k`` (1-based) of the cell ``key``."""
    return f"{key}@round{k}"


def plan_rounds(config: Any, cells: Sequence[Cell]) -> list[Cell]:
    """``cells`` unchanged in a fixed study; in a sequential one, every round of every cell."""
    rounds = Rounds.of(config.seeds)
    if rounds is None:
        return list(cells)
    out = []
    for cell in cells:
        for k, (start, stop) in enumerate(zip([0, *rounds.looks], rounds.looks, strict=False), start=1):
            out.append(dataclasses.replace(cell, key=round_key(cell.key, k), seeds=(start, stop), of=cell.key))
    return out


def rounds_of(cells: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Stored cell metadata -> {cell: its round keys in order} (empty for a fixed study)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for key, meta in cells.items():
        if meta.get("of") is not None:
            out.setdefault(meta["of"], []).append((int(meta["seeds"][0]), key))
    return {cell: [k for _, k in sorted(keys)] for cell, keys in out.items()}


def _values(res: Mapping[str, Any], metric_key: str) -> list[float]:
    return [float(v) if v is not None else math.nan for v in res["final"].get(metric_key, [])]


def compare(diffs: Sequence[float], looks: Sequence[int], rounds: Rounds, alpha: float) -> Decision:
    """One comparison's decision at error rate ``alpha``: half on the confidence sequence at every look,
    half on the t-test at ``rounds.max`` seeds (module docstring)."""
    return decide(
        diffs,
        looks,
        alpha=alpha / 2,
        margin=rounds.margin,
        max_n=rounds.max,
        final_alpha=alpha / 2,
        tested_at=rounds.earlier,
    )


def decisions(
    rounds: Rounds,
    results: Mapping[str, Mapping[str, Any]],
    cells: Sequence[str],
    baseline: str,
    metric_key: str,
    higher: bool,
) -> dict[str, Decision]:
    """The decision of each cell in ``cells`` but the baseline, from the merged ``results`` so far (a
    cell without results, or without a full round beside the baseline's, is ``continue`` at look 0)."""
    compared = [c for c in cells if c != baseline]
    alpha = rounds.alpha / max(1, len(compared))
    base = _values(results[baseline], metric_key) if baseline in results else []
    out = {}
    for cell in compared:
        arm = _values(results[cell], metric_key) if cell in results else []
        n = min(len(arm), len(base))
        looks = [k for k in rounds.looks if k <= n]
        diffs = [(a - b) * (1 if higher else -1) for a, b in zip(arm[:n], base[:n], strict=True)]
        if not looks or not all(math.isfinite(d) for d in diffs):  # a diverged seed: no decision, run to max
            out[cell] = Decision("max" if n >= rounds.max else "continue", n, len(looks), -math.inf, math.inf)
            continue
        out[cell] = compare(diffs, looks, rounds, alpha)
    return out


def race(
    rounds: Rounds,
    results: Mapping[str, Mapping[str, Any]],
    values: Sequence[str],
    criterion: str,
    rule: str = "best",
    screen: bool = False,
) -> dict[str, str]:
    """Grid cells ``values`` of the selection arm raced out: {cell: the cell whose CV score beats it}.

    With the ``one_se`` rule a value within one standard error of the best mean (over seeds × folds,
    on the seeds the value has) is never raced out: the rule may choose it even where another value is
    better seed by seed. With ``screen`` (the selection's accuracy screen,
    :func:`noisereg.study.selection.screened`), only a value the screen keeps on the seeds ``v`` has can
    race ``v`` out, and the best mean is that of the values it keeps: a value the screen drops
    (heavy noise, whose held-out loss is low because it predicts little) is not what the selection
    would choose instead."""
    key, key_higher = SCORES["likelihood" if criterion == "early" else criterion]
    folds: dict[str, np.ndarray] = {}
    cvs: dict[str, Any] = {}
    for cell in values:
        cv = results.get(cell, {}).get("cv") or {}
        if cv.get(key):
            cvs[cell] = cv
            folds[cell] = np.asarray(cv[key], dtype=float) * (-1 if key_higher else 1)  # [seeds, folds], lower better
    pairs = max(1, len(values) * (len(values) - 1))
    out: dict[str, str] = {}
    for v, fv in folds.items():
        # everything about v is judged on the first len(fv) seeds of every value: once v is raced out
        # its CV stops, so the verdict stands at every later round (its CV seeds stay a prefix)
        kept = set(cvs)
        if screen and criterion != "accuracy":
            keep = screened([0.0] * len(cvs), list(cvs.values()), len(fv))
            kept = {c for c, k in zip(cvs, keep, strict=True) if k}
        if rule == "one_se" and _within_one_se(v, cvs, criterion, len(fv), kept):
            continue
        sv = fv.mean(axis=1)
        for w, fw in folds.items():
            sw = fw.mean(axis=1)
            n = min(len(sv), len(sw))
            looks = [k for k in rounds.looks if k <= n]
            if w == v or w not in kept or not looks or not np.all(np.isfinite(sv[:n] - sw[:n])):
                continue
            if decide(list(sw[:n] - sv[:n]), looks, alpha=rounds.alpha / pairs).status == "worse":
                out[v] = w
                break
    return out


def _within_one_se(v: str, cvs: Mapping[str, Any], criterion: str, n: int, kept: set[str]) -> bool:
    """Whether ``v``'s mean CV score is within one standard error of the best ``kept`` value's, on the
    first ``n`` seeds of every value, as :func:`noisereg.study.selection.choose` computes them (over folds)."""
    per_fold = {c: fold_scores(cv, criterion, n) for c, cv in cvs.items()}
    means = {c: float(f.mean()) for c, f in per_fold.items() if f is not None and np.all(np.isfinite(f))}
    if v not in means or not kept & set(means):
        return True
    best = min(kept & set(means), key=means.__getitem__)
    f = per_fold[best]
    assert f is not None
    se = float(f.std(ddof=1) / math.sqrt(f.size)) if f.size > 1 else 0.0
    return means[v] <= means[best] + se


@dataclasses.dataclass(frozen=True)
class Next:
    """What :func:`due` calls for: ``keys``, the round keys to train next; ``without_cv``, those of
    them whose cell is raced out of the selection, which train their test folds only."""

    keys: list[str]
    without_cv: list[str]


def due(
    rounds: Rounds,
    round_keys: Mapping[str, Sequence[str]],
    results: Mapping[str, Mapping[str, Any]],
    baseline: str,
    metric_key: str,
    higher: bool,
    racing: tuple[Sequence[str], str, str, bool] | None = None,
) -> Next:
    """The round keys to train next, given the merged ``results`` of the rounds completed so far:
    round 1 of every cell at the start; then the next round of every open comparison's cell and of
    the baseline. ``racing``: (the selection arm's grid cells, its criterion, rule and screen); a raced-out
    cell's next round is in ``without_cv``."""
    done = {cell: len(results[cell]["seeds"]) if cell in results else 0 for cell in round_keys}
    if any(n == 0 for n in done.values()):
        return Next([keys[0] for cell, keys in round_keys.items() if done[cell] == 0], [])
    decided = decisions(rounds, results, list(round_keys), baseline, metric_key, higher)
    out_raced = race(rounds, results, *racing) if racing else {}
    open_cells = [c for c, d in decided.items() if d.status == "continue"]
    wanted = [*open_cells, baseline] if open_cells else []
    nxt, without_cv = [], []
    for cell in wanted:
        k = rounds.looks.index(done[cell]) + 1 if done[cell] in rounds.looks else None
        if k is not None and k < len(rounds.looks):
            nxt.append(round_keys[cell][k])
            if cell in out_raced:
                without_cv.append(round_keys[cell][k])
    return Next(nxt, without_cv)


def first_seeds(res: Mapping[str, Any], n: int, cv: int | None = None) -> dict[str, Any]:
    """A merged result cut to its first ``n`` seeds on the test folds and its first ``cv`` (default
    ``n``) on the CV folds: what a sequential run had after the round that reached ``n`` seeds."""
    cv = n if cv is None else cv
    out = dict(res)
    out["seeds"] = res["seeds"][:n]
    out["final"] = {k: v[:n] for k, v in res["final"].items()}
    if res.get("cv"):
        out["cv"] = {k: (v[:cv] if isinstance(v, list) and k != "val_epochs" else v) for k, v in res["cv"].items()}
    return out


def raced_at(
    rounds: Rounds,
    results: Mapping[str, Mapping[str, Any]],
    values: Sequence[str],
    criterion: str,
    rule: str = "best",
    screen: bool = False,
) -> dict[str, tuple[str, int]]:
    """Grid cells ``values`` raced out, with the round after which :func:`due` first found each
    raced out (its later rounds train no CV folds): {cell: (the cell whose CV score beats it, round)}.
    Each round's look is :func:`race` on every cell's first seeds up to that round."""
    out: dict[str, tuple[str, int]] = {}
    most = max((len(results[c]["seeds"]) for c in values if c in results), default=0)
    for k, n in enumerate(rounds.looks, start=1):
        if n > most:
            break
        cut = {c: first_seeds(results[c], n) for c in values if c in results}
        for cell, by in race(rounds, cut, values, criterion, rule, screen).items():
            out.setdefault(cell, (by, k))
    return out


def merge_rounds(
    cells: Mapping[str, Mapping[str, Any]], done: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stored cells and completed results with each cell's rounds merged into one (its leading run of
    completed rounds, seeds in order); a fixed study's come back unchanged."""
    by_cell = rounds_of(cells)
    if not by_cell:
        return dict(cells), dict(done)
    merged_cells: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    for key, meta in cells.items():
        if meta.get("of") is None:
            merged_cells[key] = meta
            continue
        cell = meta["of"]
        if cell in merged_cells:
            continue
        merged_cells[cell] = {k: v for k, v in meta.items() if k not in ("of", "seeds")}
        parts = []
        for k in by_cell[cell]:
            if k not in done:
                break
            parts.append(done[k])
        if parts:
            merged[cell] = _merge(parts)
    return merged_cells, merged


def _concat_curves(parts: Sequence[Mapping[str, Any]], name: str, epochs_key: str, get: Any) -> list[Any]:
    """Per-seed curves of every part on the first part's epochs (a part thinned otherwise is interpolated)."""
    epochs = np.asarray(get(parts[0])[epochs_key], dtype=float)
    out: list[Any] = []
    for part in parts:
        mine = np.asarray(get(part)[epochs_key], dtype=float)
        for row in get(part)[name]:
            if mine.shape == epochs.shape and np.array_equal(mine, epochs):
                out.append(row)
            else:
                arr = np.asarray([math.nan if v is None else v for v in np.ravel(row)], dtype=float)
                out.append(np.interp(epochs, mine, arr).tolist())
    return out


def _merge(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    first = parts[0]
    out = dict(first)
    out["seeds"] = [s for p in parts for s in p["seeds"]]
    out["final"] = {k: [v for p in parts for v in p["final"][k]] for k in first["final"]}
    out["replicas"] = sum(int(p.get("replicas", 0)) for p in parts)
    out["rounds"] = len(parts)
    if all(p.get("elapsed_s") is not None for p in parts):
        out["elapsed_s"] = sum(float(p["elapsed_s"]) for p in parts)
    for name in first:
        if name.startswith("curve:"):
            out[name] = _concat_curves(parts, name, "epochs", lambda p: p)
    if first.get("cv"):  # rounds past selection.seeds train no CV folds
        with_cv = [p["cv"] for p in parts if p.get("cv")]
        cv = dict(first["cv"])
        for name, value in first["cv"].items():
            if name == "val_loss_curve":
                cv[name] = [seed for c in with_cv for seed in _cv_curves_on(c, first["cv"]["val_epochs"])]
            elif name.startswith("val_") and isinstance(value, list) and name != "val_epochs":
                cv[name] = [row for c in with_cv for row in c[name]]
        out["cv"] = cv
    if first.get("coef"):
        coef = dict(first["coef"])
        for name in ("seeds", "weight", "bias"):
            coef[name] = [v for p in parts for v in p["coef"][name]]
        out["coef"] = coef
    return out


def _cv_curves_on(cv: Mapping[str, Any], epochs: Sequence[int]) -> list[list[list[float]]]:
    mine = np.asarray(cv["val_epochs"], dtype=float)
    target = np.asarray(epochs, dtype=float)
    if mine.shape == target.shape and np.array_equal(mine, target):
        return cv["val_loss_curve"]
    return [
        [np.interp(target, mine, [math.nan if v is None else v for v in fold]).tolist() for fold in seed]
        for seed in cv["val_loss_curve"]
    ]
