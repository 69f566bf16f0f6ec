"""Benchmark tables rendered from the benchmarks' stored output, never typed into a page.

A mkdocs hook: a page holding ``<!-- benchmark: NAME -->`` gets, in its place, the table stored in
``benchmarks/results/NAME.json`` (written by the benchmark's ``--summary FILE``) and the lines that say
how it was measured: command, machine, load, date and noise generator. A marker naming no stored
file fails the build, so a page cannot show a table that nothing measured.

``python docs/hooks/benchmark_tables.py NAME`` prints the generated Markdown.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- benchmark: ([a-z0-9_]+) -->")

# Column titles of benchmarks/selection.py's COLUMNS, and how each number is written.
SELECTION_COLUMNS = {
    "procedure": ("procedure", "{}"),
    "problems": ("problems", "{}"),
    "mean_regret": ("mean regret", "{:.4f}"),
    "median_regret": ("median regret", "{:.4f}"),
    "max_regret": ("max regret", "{:.4f}"),
    "worse": ("sig. worse than no noise", "{}"),
    "better": ("sig. better", "{}"),
    "mean_delta": ("mean Δ vs no noise", "{:+.4f}"),
}
# benchmarks/sequential.py: per study, and the A/A comparisons.
SEQUENTIAL_COLUMNS = {
    "study": ("study", "{}"),
    "fixed_trainings": ("trainings, fixed", "{}"),
    "sequential_trainings": ("trainings, sequential (margin)", "{}"),
    "ratio": ("share (margin)", "{:.0%}"),
    "ratio_no_margin": ("share without a margin", "{:.0%}"),
    "ratio_raced_keep_cv": ("share (margin) if raced-out values kept their CV folds", "{:.0%}"),
    "agree": ("same verdict (margin)", "{}"),
    "agree_no_margin": ("same verdict without a margin", "{}"),
    "strict_verdicts": ("of fixed verdicts at Holm p < 0.01", "{}"),
}
SEQUENTIAL_AA_COLUMNS = {
    "source": ("A/A comparisons drawn from", "{}"),
    "comparisons": ("comparisons", "{}"),
    "sequential_fp": ("false positives, sequential", "{:.4f}"),
    "sequential_ci95": ("95% interval", "[{0[0]:.4f}, {0[1]:.4f}]"),
    "t_every_round_fp": ("t-test after every round", "{:.4f}"),
}
# benchmarks/noise_overhead.py: per build and model.
NOISE_OVERHEAD_COLUMNS = {
    "build": ("build", "{}"),
    "model": ("model", "{}"),
    "clean_ms": ("clean step (ms)", "{:.2f}"),
    "noisy_ms": ("noisy step (ms)", "{:.2f}"),
    "ratio": ("noisy / clean", "{:.3f}"),
    "draw_floor": ("draw floor", "{:.3f}"),
    "target": ("target", "≤ {:.2f}"),
    "ratio_torch": ("noisy / clean, torch's generator", "{:.3f}"),
    "draw_floor_torch": ("draw floor, torch's generator", "{:.3f}"),
}
# benchmarks/study_speed.py: per training path.
STUDY_SPEED_COLUMNS = {
    "path": ("path", "{}"),
    "wall_s": ("wall (s)", "{:.2f}"),
    "speedup": ("× the plain loop", "{:.2f}"),
    "accuracy": ("mean test accuracy per arm", "{}"),
}
# benchmarks/study_speed.py --generic --repeat N: per pair of runs.
STUDY_SPEED_GENERIC_COLUMNS = {
    "run": ("run", "{}"),
    "engine_s": ("built-in engine (s)", "{:.2f}"),
    "run_model_s": ("run_model, the user's nn.Sequential (s)", "{:.2f}"),
    "ratio": ("run_model / engine", "{:.3f}"),
    "target": ("target", "≤ {:.2f}"),
    "load": ("load average", "{:.2f}"),
}
# benchmarks/own_model_speed.py: per model.
OWN_MODEL_COLUMNS = {
    "model": ("model", "{}"),
    "replicas": ("replicas", "{}"),
    "plain_s": ("plain loop with attach (s)", "{:.1f}"),
    "noisereg_s": ("run_model (s)", "{:.1f}"),
    "speedup": ("× the plain loop", "{:.2f}"),
    "floor_s": ("floor (s)", "{:.1f}"),
    "over_floor": ("run_model / floor", "{:.3f}"),
    "target": ("target", "≤ {:.2f}"),
}
# benchmarks/lowering_speed.py: per case.
LOWERING_COLUMNS = {
    "case": ("case", "{}"),
    "replicas": ("replicas", "{}"),
    "epochs": ("epochs", "{}"),
    "kernels_s": ("on the MLP kernels (s)", "{:.2f}"),
    "other": ("the path before", "{}"),
    "other_s": ("on that path (s)", "{:.2f}"),
    "ratio": ("× faster on the kernels", "{:.2f}"),
    "accuracy": ("mean test accuracy (kernels / before)", "{}"),
}
# benchmarks/study_speed.py --generator-only: per thread count.
GENERATOR_COLUMNS = {
    "threads": ("threads", "{}"),
    "stream_m": ("Stream (M normals/s)", "{:.1f}"),
    "torch_m": ("torch.randn (M normals/s)", "{:.1f}"),
    "ratio": ("Stream / torch", "{:.2f}"),
}
COLUMNS = {
    "generator_speed": GENERATOR_COLUMNS,
    "own_model_speed": OWN_MODEL_COLUMNS,
    "own_model_speed_avx2": OWN_MODEL_COLUMNS,
    "lowering_speed": LOWERING_COLUMNS,
    "study_speed": STUDY_SPEED_COLUMNS,
    "study_speed_generic": STUDY_SPEED_GENERIC_COLUMNS,
    "study_speed_generic_avx2": STUDY_SPEED_GENERIC_COLUMNS,
    "study_speed_avx2": STUDY_SPEED_COLUMNS,
    "noise_overhead": NOISE_OVERHEAD_COLUMNS,
    "noise_overhead_avx2": NOISE_OVERHEAD_COLUMNS,
    "selection": SELECTION_COLUMNS,
    "selection_heldout": SELECTION_COLUMNS,
    "sequential": SEQUENTIAL_COLUMNS,
    "sequential_aa": SEQUENTIAL_AA_COLUMNS,
}
# benchmarks/selection.py's PROBLEM_COLUMNS: a record's "problems" (the default procedure, problem by
# problem) follow its table where present.
PROBLEM_COLUMNS = {
    "problem": ("problem", "{}"),
    "chosen": ("chosen σ", "{:g}"),
    "delta": ("Δ vs no noise (test)", "{:+.4f}"),
    "ci95": ("95% CI", "[{0[0]:+.4f}, {0[1]:+.4f}]"),
    "p": ("paired p", "{:.2g}"),
    "best": ("best σ (test)", "{:g}"),
    "regret": ("regret", "{:.4f}"),
    "check": ("gain check of the likelihood's choice (CV, over folds)", "{}"),
}


def _table(rows: list[dict[str, Any]], columns: dict[str, tuple[str, str]], name: str) -> list[str]:
    lines = []
    for row in rows:
        if set(row) != set(columns):
            raise ValueError(
                f"benchmarks/results/{name}.json: a row has keys {sorted(row)}, expected {sorted(columns)}"
            )
    lines.append("| " + " | ".join(title for title, _ in columns.values()) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = ("—" if row[key] is None else fmt.format(row[key]) for key, (_, fmt) in columns.items())
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def load(name: str) -> dict[str, Any]:
    """The stored output of benchmark ``name``; raises FileNotFoundError naming the file."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the benchmark with --summary {path}")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def render(name: str) -> str:
    """The provenance and the table of benchmark ``name``, as Markdown."""
    record = load(name)
    columns = COLUMNS[name]
    table = _table(record["rows"], columns, name)
    load_average = " ".join(f"{x:.2f}" for x in record["load_average"])
    lines = [
        f"Measured {record['date']} on {record['machine']} (load average {load_average}; "
        f"{record['minutes']} min), noise drawn by the `{record['noise_generator']}` generator:",
        "",
        "```bash",
        record["command"],
    ]
    if record.get("rescored_with"):
        lines.append(record["rescored_with"] + "    # the procedures scored again from the stored trainings")
    lines += ["```", "", record["setup"] + ".", ""]
    if record.get("note"):
        lines += [record["note"], ""]
    lines += table
    if record.get("problems"):
        lines += ["", f"The default procedure ({record['default']}), problem by problem:", ""]
        lines += _table(record["problems"], PROBLEM_COLUMNS, name)
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """mkdocs hook: replace every benchmark marker of a page with its stored table."""
    return MARKER.sub(lambda m: render(m.group(1)), markdown)


if __name__ == "__main__":
    print(render(sys.argv[1] if len(sys.argv) > 1 else "selection"))
