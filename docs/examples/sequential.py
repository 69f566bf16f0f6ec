"""How-to: a sequential study — seeds in rounds, each comparison stopped once it is decided.

Small enough to run in seconds (rounds of 4 seeds up to 12, 150 epochs); use max = 30, step = 5 for
evidence. The same keys go in a study file: seeds = { max = 12, step = 4 } and [selection] racing = true.
"""

import tempfile

from noisereg.study import parse_config, run_study

study = parse_config(
    {
        "name": "sequential-moons",
        "seeds": {"max": 12, "step": 4},  # rounds of 4 seeds; no comparison gets more than 12
        "data": {"source": "moons", "n_samples": 40, "noise": 0.3, "random_state": 0, "test_samples": 500},
        "split": {"kind": "holdout", "n_train": 40},
        "model": {"family": "mlp", "widths": [32]},
        "training": {"epochs": 150, "batch_size": 40, "eval_every": 10},
        "arms": [
            {"name": "no noise"},
            {"name": "heavy input noise", "noise": {"at": "input", "kind": "gaussian", "std": 3.0}},
            {"name": "input sigma", "noise": {"at": "input", "kind": "gaussian", "std": 0.1}, "grid": [0.1, 3.0]},
        ],
        "selection": {"arm": "input sigma", "folds": 3, "racing": True},  # CV losers stop early too
    }
)

with tempfile.TemporaryDirectory() as run_dir:
    summary = run_study(study, run_dir)

rounds = summary["sequential"]  # None for a study with a fixed number of seeds
print(
    f"trainings: {rounds['trainings']} of the {rounds['trainings_fixed']} a fixed study of {rounds['max']} seeds takes"
)
for name, cell in rounds["cells"].items():
    # status (of the comparison with the baseline): baseline | better | worse | equivalent | max;
    # raced_at: the round after which a grid value was raced out of the selection; cs: cell − baseline
    print(f"  {name:<22} {cell['trainings']:3d} trainings  {cell['text']}")

# A comparison stopped early has no fixed-n interval (it would not keep its coverage after stopping):
# its interval of the difference is the confidence sequence where it stopped, valid at any stopping time.
for arm in summary["arms"]:
    p = arm["paired"]
    if p and p.get("stopped_early"):
        lo, hi = p["anytime"]["ci"]  # a null end is infinite
        low, high = "−∞" if lo is None else f"{lo:+.3f}", "∞" if hi is None else f"{hi:+.3f}"
        level = p["anytime"]["confidence"]
        print(f"  {arm['name']}: Δ {p['mean_diff']:+.3f}, anytime-valid {level:.2%} CI [{low}, {high}]")
