"""Sequential studies against fixed-seed studies (issue 24): trainings used, verdicts, A/A error rate.

For each built-in study named: the study with ``seeds = MAX`` (fixed) is trained once (into
``--runs``, reused when there), its robustness suite off; then the sequential rule of
:mod:`noisereg.study.rounds` (``seeds = { max = MAX, step = STEP }``, racing where the study has a
``[selection]``) is replayed on its per-seed results in seed order. The replay is what a sequential run
decides, because each seed's result does not depend on which other seeds train beside it (the
engine's guarantee) and a decision uses only the seeds up to its round: ``--verify STUDY ...`` checks
that claim by a real sequential run of each study named, seed by seed and decision by decision (and
each cell's trainings, CV seeds and racing round).

Printed and stored (``--summary FILE``): per study the trainings of the fixed study and of the
sequential one (replicas: seeds × folds, CV folds included; a grid value raced out of the selection
trains its test folds only from then on, and, for comparison, the share if it kept its CV folds
too), and each cell's trainings and why it stopped, and the verdicts: every comparison
whose fixed verdict is significant at Holm p < 0.01 must get the same verdict sequentially. Then
A/A comparisons (no true difference) looked at after every round, with the false-positive rate of the
sequential rule and its 95% Clopper–Pearson interval: simulated normal and 70-point-accuracy seeds,
and pairs of independent bootstrap resamples of each study's baseline per-seed results; beside it,
the rate of a t-test looked at as often. And the coverage of the paired bootstrap interval
(:func:`noisereg.study.stats.bootstrap_paired`) on resampled real per-seed pairs whose population
mean difference is known (the mean over all MAX seeds).

Run by hand: ``python benchmarks/sequential.py --summary benchmarks/results/sequential.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from noisereg.study.bridge.prepare import prepare
from noisereg.study.config import StudyConfig, parse_config, resolve_study
from noisereg.study.report.sequential import sequential_section
from noisereg.study.report.summary import metric_of
from noisereg.study.rounds import Rounds, compare, due, first_seeds, round_key
from noisereg.study.run.runner import run_study
from noisereg.study.stats import bootstrap_paired
from noisereg.study.store import Store, default_url

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # provenance lives beside this file
from provenance import machine  # noqa: E402

STUDIES = ["case-study", "breast-cancer", "diabetes", "digits", "moons", "moons-sites", "label-smoothing-calibration"]
STRICT = 0.01  # fixed verdicts at Holm p below this must be reproduced


def fixed_config(name: str, max_seeds: int) -> StudyConfig:
    """The built-in study ``name`` with ``max_seeds`` seeds and no robustness suite."""
    raw = resolve_study(name).model_dump(mode="json")
    raw["seeds"] = max_seeds
    raw["robustness"] = {**raw.get("robustness", {}), "enabled": False}
    return parse_config(raw)


def sequential_config(name: str, max_seeds: int, step: int, margin: float | None = None) -> StudyConfig:
    raw = fixed_config(name, max_seeds).model_dump(mode="json")
    raw["seeds"] = {"max": max_seeds, "step": step, "margin": margin}
    raw["robustness"]["enabled"] = None
    if raw.get("selection"):
        raw["selection"]["racing"] = True
    raw["name"] = f"{raw['name']}-sequential"
    return parse_config(raw)


def train_fixed(name: str, runs: Path, max_seeds: int) -> None:
    """Train the fixed study, unless a finished run of it is there (its summary.json written)."""
    if not (runs / name / "summary.json").is_file():
        run_study(fixed_config(name, max_seeds), runs / name, robustness=False)


def replicas_per_seed(config: StudyConfig) -> dict[str, tuple[list[int], list[int]]]:
    """Per cell, the replicas each seed index trains on its test folds and on its CV folds."""
    prep = prepare(config)
    out = {}
    for cell in prep.cells:
        test, cv = [0] * config.max_seeds, [0] * config.max_seeds
        for g in prep.folds_of(cell):
            for s in prep.seeds_on(g):
                (test if prep.folds[g].role == "test" else cv)[s] += 1
        out[cell.key] = (test, cv)
    return out


def replay(
    name: str, runs: Path, max_seeds: int, step: int, margin: float | None, keep_cv: bool = False
) -> dict[str, Any]:
    """The sequential rule on the fixed study's stored per-seed results: the runner's own
    :func:`~noisereg.study.rounds.due`, round after round, on each cell's first seeds. A raced-out
    cell's rounds train no CV folds, as in a real run; ``keep_cv``: they would (the alternative that
    keeps a raced-out cell training whole while its comparison is open), for its trainings share."""
    config = sequential_config(name, max_seeds, step, margin)
    summary = json.loads((runs / name / "summary.json").read_text())
    done = Store(default_url(runs / name), fixed_config(name, max_seeds).name).completed()
    rounds = Rounds.of(config.seeds)
    assert rounds is not None
    key, higher = metric_of(config.metric, summary["task"])
    cells = [a["name"] for a in summary["arms"]]
    base = summary["baseline"]
    keys = {c: [round_key(c, k) for k in range(1, len(rounds.looks) + 1)] for c in cells}
    of = {k: (c, i) for c, ks in keys.items() for i, k in enumerate(ks)}
    sel = config.selection
    racing = None
    if sel is not None:
        racing = ([a["name"] for a in summary["arms"] if a["arm"] == sel.arm], sel.criterion, sel.rule, sel.screen)
    n = dict.fromkeys(cells, 0)
    n_cv = dict.fromkeys(cells, 0)  # seeds trained on the CV folds (a raced-out cell's stop there)
    while True:
        have = {c: first_seeds(done[c], n[c], n_cv[c]) for c in cells if n[c]}
        todo = due(rounds, keys, have, base, key, higher, racing)
        if not todo.keys:
            break
        for k in todo.keys:
            c, i = of[k]
            n[c] = rounds.looks[i]
            if keep_cv or k not in todo.without_cv:
                n_cv[c] = rounds.looks[i]
    per_seed = replicas_per_seed(fixed_config(name, max_seeds))
    for c, res in have.items():  # what the rounds trained, as a real run's merged result counts it
        res["replicas"] = sum(per_seed[c][0][: n[c]]) + sum(per_seed[c][1][: n_cv[c]])
        res["rounds"] = rounds.looks.index(n[c]) + 1
    meta = {c: {"arm": a["arm"]} for c, a in zip(cells, summary["arms"], strict=True)}
    section = sequential_section(config.model_dump(mode="json"), meta, have, base, key, higher)
    assert section is not None
    fixed_trainings = sum(sum(per_seed[c][0]) + sum(per_seed[c][1]) for c in cells)
    seq_trainings = sum(have[c]["replicas"] for c in have)
    rows, agree, strict = [], 0, 0
    for a in summary["arms"]:
        if a["name"] == base or not a["paired"]:
            continue
        p = a["paired"]["p_holm"]
        d = a["paired"]["mean_diff"] * (1 if higher else -1)
        fixed = "—"
        if p is not None and p < STRICT:
            fixed = "better" if d > 0 else "worse"
        entry = section["cells"][a["name"]]
        status = entry["status"]
        if fixed != "—":
            strict += 1
            agree += status == fixed
        rows.append(
            {
                "cell": a["name"],
                "fixed": fixed,
                "p_holm": p,
                "sequential": status,
                "seeds": n[a["name"]],
                "cv_seeds": entry["cv_seeds"],
                "raced_at": entry["raced_at"],
                "trainings": entry["trainings"],
                "text": entry["text"],
            }
        )
    return {
        "study": name,
        "fixed_trainings": fixed_trainings,
        "sequential_trainings": seq_trainings,
        "ratio": seq_trainings / fixed_trainings,
        "strict_verdicts": strict,
        "agree": agree,
        "cells": rows,
        "seeds_used": n,
        "cv_seeds_used": n_cv,
        "section": section,
        "values": {c: done[c]["final"][key] for c in cells},
        "baseline": base,
        "higher": higher,
    }


def clopper_pearson(hits: int, trials: int) -> list[float]:
    ci = sps.binomtest(hits, trials).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def _rejects(diffs: np.ndarray, looks: list[int]) -> tuple[bool, bool]:
    """(the sequential rule calls it different at some look, a t-test at 0.05 at some look does)."""
    rule = Rounds(looks[-1], looks[0], 0.05, None)
    seq = compare(list(diffs), looks, rule, 0.05).status in ("better", "worse")
    naive = False
    for n in looks:
        d = diffs[:n]
        if np.ptp(d) > 0 and sps.ttest_1samp(d, 0.0).pvalue < 0.05:
            naive = True
            break
    return seq, naive


def aa_rates(rng: np.random.Generator, sims: int, looks: list[int], reps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """False-positive rates of A/A comparisons: simulated seeds, and resampled real baselines."""
    n = looks[-1]
    sources: dict[str, Any] = {
        "normal seeds (paired, seed effect 0.03, noise 0.01)": lambda: (
            lambda e: (e + rng.normal(0, 0.01, n), e + rng.normal(0, 0.01, n))
        )(rng.normal(0.8, 0.03, n)),
        "accuracy on 70 test points (binomial around a per-seed rate)": lambda: (
            lambda p: (rng.binomial(70, p) / 70, rng.binomial(70, p) / 70)
        )(np.clip(rng.normal(0.8, 0.03, n), 0, 1)),
    }
    for rep in reps:
        values = np.asarray(rep["values"][rep["baseline"]], dtype=float)
        sources[f"{rep['study']}: two bootstrap resamples of the baseline's {len(values)} seeds"] = lambda v=values: (
            rng.choice(v, n),
            rng.choice(v, n),
        )
    out = []
    all_seq = all_naive = 0
    for label, draw in sources.items():
        seq = naive = 0
        for _ in range(sims):
            a, b = draw()
            s, t = _rejects(a - b, looks)
            seq += s
            naive += t
        out.append(
            {
                "source": label,
                "comparisons": sims,
                "sequential_fp": seq / sims,
                "sequential_ci95": clopper_pearson(seq, sims),
                "t_every_round_fp": naive / sims,
                "t_every_round_ci95": clopper_pearson(naive, sims),
            }
        )
        all_seq, all_naive = all_seq + seq, all_naive + naive
    total = sims * len(sources)
    out.append(
        {
            "source": "all of the above",
            "comparisons": total,
            "sequential_fp": all_seq / total,
            "sequential_ci95": clopper_pearson(all_seq, total),
            "t_every_round_fp": all_naive / total,
            "t_every_round_ci95": clopper_pearson(all_naive, total),
        }
    )
    return out


def bootstrap_coverage(rng: np.random.Generator, sims: int, n: int, reps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Coverage of bootstrap_paired's 95% interval of the mean difference: ``n`` seed pairs drawn
    with replacement from a study's stored pairs, whose mean difference is then the true value."""
    out = []
    for rep in reps:
        for cell, arm in rep["values"].items():
            if cell == rep["baseline"]:
                continue
            a, b = np.asarray(arm, dtype=float), np.asarray(rep["values"][rep["baseline"]], dtype=float)
            truth = float(np.mean(a - b))
            if np.ptp(a - b) == 0:
                continue
            hits = tried = 0
            for i in range(sims):
                idx = rng.integers(0, len(a), n)
                ci = bootstrap_paired(list(a[idx]), list(b[idx]), higher=rep["higher"], seed=i)["ci95_diff"]
                if ci[0] is None:
                    continue
                tried += 1
                hits += ci[0] <= truth <= ci[1]
            out.append(
                {
                    "study": rep["study"],
                    "cell": cell,
                    "n": n,
                    "resamples": tried,
                    "coverage": hits / max(1, tried),
                    "ci95": clopper_pearson(hits, max(1, tried)),
                }
            )
            break  # one comparison per study keeps it cheap
    return out


def verify(
    name: str, runs: Path, max_seeds: int, step: int, margin: float | None, rep: dict[str, Any]
) -> dict[str, Any]:
    """A real sequential run of ``name``: its per-seed results and decisions against the replay's."""
    config = sequential_config(name, max_seeds, step, margin)
    summary = run_study(config, runs / f"{name}-sequential-margin{margin}", robustness=False)
    section = summary["sequential"]
    values = {a["name"]: a["per_seed"] for a in summary["arms"]}
    worst = max(
        float(np.max(np.abs(np.asarray(v) - np.asarray(rep["values"][c][: len(v)])))) for c, v in values.items()
    )
    fields = ("status", "seeds", "cv_seeds", "raced_at", "trainings", "look")
    same_decisions = all(
        section["cells"][c][f] == rep["section"]["cells"][c][f] for c in section["cells"] for f in fields
    )
    return {
        "study": name,
        "largest_per_seed_difference": worst,
        "same_decisions": same_decisions,
        "trainings": section["trainings"],
        "replayed_trainings": rep["sequential_trainings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="+", default=STUDIES)
    parser.add_argument("--max", type=int, default=30, dest="max_seeds")
    parser.add_argument("--step", type=int, default=5)
    parser.add_argument("--runs", type=Path, default=Path("runs/sequential"))
    parser.add_argument(
        "--verify", nargs="*", default=["moons-sites"], help="studies to run sequentially for real ('' for none)"
    )
    parser.add_argument("--aa", type=int, default=1000, help="A/A comparisons per source")
    parser.add_argument("--coverage", type=int, default=200, help="bootstrap intervals per study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=0.005, help="equivalence margin in the metric's units")
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args()
    start = time.time()
    reps = []
    for name in args.studies:
        train_fixed(name, args.runs, args.max_seeds)
        rep = replay(name, args.runs, args.max_seeds, args.step, args.margin)
        plain = replay(name, args.runs, args.max_seeds, args.step, None)
        rep["ratio_no_margin"] = plain["ratio"]
        rep["agree_no_margin"] = plain["agree"]
        rep["ratio_raced_keep_cv"] = replay(name, args.runs, args.max_seeds, args.step, args.margin, keep_cv=True)[
            "ratio"
        ]
        reps.append(rep)
        print(
            f"{name:30s} trainings fixed {rep['fixed_trainings']:6d}  sequential {rep['sequential_trainings']:6d}  "
            f"({rep['ratio']:.0%}; without a margin {plain['ratio']:.0%}; raced-out cells keeping their CV folds "
            f"{rep['ratio_raced_keep_cv']:.0%})  verdicts at Holm p < {STRICT}: "
            f"{rep['agree']}/{rep['strict_verdicts']} the same ({plain['agree']} without a margin)"
        )
        for row in rep["cells"]:
            print(f"    {row['cell']:40s} fixed {row['fixed']:7s} {row['trainings']:4d} trainings: {row['text']}")
    mean_ratio = float(np.mean([r["ratio"] for r in reps]))
    mean_plain = float(np.mean([r["ratio_no_margin"] for r in reps]))
    mean_keep_cv = float(np.mean([r["ratio_raced_keep_cv"] for r in reps]))
    agree, strict = sum(r["agree"] for r in reps), sum(r["strict_verdicts"] for r in reps)
    agree_plain = sum(r["agree_no_margin"] for r in reps)
    print(
        f"mean share of the fixed studies' trainings: {mean_ratio:.1%} with margin {args.margin} ({mean_plain:.1%} "
        f"without; {mean_keep_cv:.1%} if raced-out cells kept their CV folds; target <= 60%); verdicts "
        f"{agree}/{strict} the same ({agree_plain} without a margin)"
    )
    checked = []
    for name in [v for v in args.verify if v]:
        rep = next(r for r in reps if r["study"] == name)
        checked.append(verify(name, args.runs, args.max_seeds, args.step, args.margin, rep))
        print(
            f"real sequential run of {name}: largest per-seed difference from the fixed run "
            f"{checked[-1]['largest_per_seed_difference']:.3g}; decisions and seeds the same as the replay: "
            f"{checked[-1]['same_decisions']}; trainings {checked[-1]['trainings']} "
            f"(replay {checked[-1]['replayed_trainings']})"
        )
    rng = np.random.default_rng(args.seed)
    looks = Rounds(args.max_seeds, args.step, 0.05, None).looks
    aa = aa_rates(rng, args.aa, looks, reps)
    for row in aa:
        lo, hi = row["sequential_ci95"]
        print(
            f"A/A {row['source']}: sequential {row['sequential_fp']:.4f} [{lo:.4f}, {hi:.4f}]; "
            f"t-test every round {row['t_every_round_fp']:.4f}"
        )
    coverage = bootstrap_coverage(rng, args.coverage, 10, reps)
    for row in coverage:
        print(
            f"bootstrap 95% interval, {row['study']} / {row['cell']}, 10 seeds: coverage {row['coverage']:.3f} {row['ci95']}"
        )
    minutes = round((time.time() - start) / 60, 1)
    if args.summary:
        common = {
            "command": "PYTHONPATH=src python benchmarks/sequential.py " + " ".join(sys.argv[1:]),
            "machine": f"{machine()}, shared with other sessions' jobs",
            "noise_generator": "philox",
            "load_average": list(os.getloadavg()),
            "minutes": minutes,
            "date": time.strftime("%Y-%m-%d"),
        }
        verified = ""
        for check in checked:
            verified += (
                f" A real sequential run of {check['study']} gave per-seed results within "
                f"{check['largest_per_seed_difference']:.3g} of the fixed run's and "
                f"{'the same' if check['same_decisions'] else 'DIFFERENT'} decisions, seeds and trainings "
                f"({check['trainings']}) as the replay."
            )
        columns = (
            "study",
            "fixed_trainings",
            "sequential_trainings",
            "ratio",
            "ratio_no_margin",
            "ratio_raced_keep_cv",
            "agree",
            "agree_no_margin",
            "strict_verdicts",
        )
        record = {
            **common,
            "setup": (
                f"Built-in studies with max {args.max_seeds} seeds, rounds of {args.step}, margin {args.margin} "
                "(the metric's units), alpha 0.05 over all "
                "comparisons of a study, racing where the study has a [selection]; the sequential rule replayed on "
                "each fixed study's per-seed results in seed order"
            ),
            "note": f"Mean share of the fixed studies' trainings: {mean_ratio:.1%} ({mean_plain:.1%} without a margin, "
            f"where comparisons that show no difference run to max; {mean_keep_cv:.1%} if a grid value raced out of "
            f"the selection kept training its CV folds while its comparison is open, instead of its test folds "
            f"only); verdicts at Holm p < {STRICT} reproduced: {agree} of {strict} ({agree_plain} without a "
            f"margin).{verified}",
            "mean_ratio": mean_ratio,
            "mean_ratio_no_margin": mean_plain,
            "mean_ratio_raced_keep_cv": mean_keep_cv,
            "rows": [{k: r[k] for k in columns} for r in reps],
            "cells": {r["study"]: r["cells"] for r in reps},
            "verify": checked,
            "coverage": coverage,
        }
        args.summary.write_text(json.dumps(record, indent=1) + "\n")
        aa_columns = ("source", "comparisons", "sequential_fp", "sequential_ci95", "t_every_round_fp")
        cover = "; ".join(f"{c['study']}: {c['coverage']:.3f}" for c in coverage)
        aa_record = {
            **common,
            "setup": (
                f"A/A comparisons (no true difference) looked at after every round of {args.step} seeds up to "
                f"{args.max_seeds}, alpha 0.05 for the one comparison; 95% Clopper-Pearson intervals"
            ),
            "note": f"Coverage of the paired bootstrap's 95% interval of the mean difference, 10 seeds resampled "
            f"from a study's stored pairs ({args.coverage} intervals each): {cover}.",
            "rows": [{k: r[k] for k in aa_columns} for r in aa],
        }
        args.summary.with_name(args.summary.stem + "_aa.json").write_text(json.dumps(aa_record, indent=1) + "\n")


if __name__ == "__main__":
    main()
