"""Tutorial, step 4: read a study's summary.json — per arm the interval, the paired test, the verdict.

Run after `noisereg study`: python docs/examples/read_summary.py [RUN_DIR] (default runs/case-study).
"""

import json
import pathlib
import sys

run = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/case-study")
summary = json.loads((run / "summary.json").read_text())

print(f"{summary['study']}: test {summary['metric']} over {summary['seeds']} seeds; baseline {summary['baseline']!r}")
for arm in summary["arms"]:
    low, high = arm["ci95"]  # the 95% t-interval of the mean over seeds (None with a single seed)
    line = f"  {arm['name']:<26} mean {arm['mean']:.3f}"
    if low is not None:
        line += f"  95% CI [{low:.3f}, {high:.3f}]"
    paired = arm["paired"]  # None for the baseline itself
    if paired is not None:
        # the same seeds with and without noise: difference, paired t-test, Holm over all arms
        p = paired["p_holm"]
        line += f"  Δ {paired['mean_diff']:+.3f}"
        line += f"  wins/ties/losses {paired['wins']}/{paired['ties']}/{paired['losses']}"
        line += f"  p Holm {p:.3g}" if p is not None else "  p Holm undefined"
    print(line)

print(summary["verdict"]["text"])
selection = summary["selection"]
if selection is not None:
    print(
        f"cross-validation chose {selection['param']} = {selection['chosen']} by {selection['criterion']}"
        + (f" (at the {selection['at_edge']} end of the grid: extend it)" if selection["at_edge"] else "")
    )
