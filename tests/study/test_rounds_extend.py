"""A stored sequential study whose ``seeds.max`` is raised continues from its stored rounds
(noisereg.study.run.rounds.extend_rounds), and what it refuses."""

from __future__ import annotations

import pytest

from noisereg.study.config import parse_config
from noisereg.study.rounds import EARLIER_MAX, Rounds, compare
from noisereg.study.run.runner import run_study
from noisereg.study.sequential import decide
from noisereg.study.store import Store, StoreError, default_url
from tests.study.fakes import tiny_raw


def test_a_verdict_of_the_t_test_at_an_earlier_maximum_stands() -> None:
    # mean 0.01, t = 3.6 on 8 seeds: the t-test decides (p = 0.009), the confidence sequence (c = 5.1) does not
    diffs = [0.01 + 0.006 * b for b in (-1, 1, -2, 2, 0, 1, -1, 0)]
    looks = [4, 8]
    at_old_max = decide(diffs, looks, alpha=0.025, max_n=8, final_alpha=0.025)
    assert (at_old_max.status, at_old_max.by) == ("better", "final")
    raised = decide(diffs, looks, alpha=0.025, max_n=16, final_alpha=0.025, tested_at=(8,))
    assert (raised.status, raised.by, raised.n) == ("better", "final", 8)
    # without the earlier maximum, the study would go on (a t-test at 8 seeds was never planned)
    assert decide(diffs, looks, alpha=0.025, max_n=16, final_alpha=0.025).status == "continue"
    assert Rounds.of({"max": 16, "step": 4}, [8, 16]) == Rounds(16, 4, 0.05, None, (8,))
    assert compare(diffs, looks, Rounds(16, 4, 0.05, None, (8,)), 0.05) == raised


def _trials(store: Store) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in store.study.get_trials():
        key = t.params.get("cell", t.user_attrs.get("cell"))
        out[key] = out.get(key, 0) + 1
    return out


def test_raising_max_continues_from_the_stored_rounds(tmp_path) -> None:
    raw = tiny_raw(name="grow", seeds={"max": 4, "step": 2})
    raw["selection"] = {"arm": "grid", "folds": 3, "racing": True}
    first = run_study(parse_config(raw), tmp_path / "grow", robustness=False)["sequential"]
    store = Store(default_url(tmp_path / "grow"), "grow")
    before = store.completed()
    assert set(_trials(store).values()) == {1} and all(k.endswith(("@round1", "@round2")) for k in before)
    grown = run_study(parse_config({**raw, "seeds": {"max": 8, "step": 2}}), tmp_path / "grow", robustness=False)
    seq = grown["sequential"]
    assert (seq["max"], seq["earlier_max"]) == (8, [4])
    after = Store(default_url(tmp_path / "grow"), "grow")
    assert after.attrs()[EARLIER_MAX] == [4] and after.attrs()["config"]["seeds"]["max"] == 8
    trials = _trials(after)
    for key, res in before.items():  # no stored round trained again
        assert trials[key] == 1 and after.completed()[key]["final"] == res["final"], key
    for name, cell in first["cells"].items():
        now = seq["cells"][name]
        if cell["status"] in ("better", "worse"):  # decided at the old maximum: stands, no more seeds
            assert (now["status"], now["seeds"]) == (cell["status"], 4), name
        elif cell["status"] == "max":  # open at the old maximum: continued
            assert now["seeds"] > 4, name
    assert any(c["seeds"] > 4 for c in seq["cells"].values())
    again = run_study(parse_config({**raw, "seeds": {"max": 8, "step": 2}}), tmp_path / "grow", robustness=False)
    assert again["sequential"] == seq and _trials(Store(default_url(tmp_path / "grow"), "grow")) == trials


@pytest.mark.parametrize(
    ("seeds", "grown", "text"),
    [
        ({"max": 6, "step": 2}, {"max": 4, "step": 2}, "can only be extended"),
        ({"max": 5, "step": 2}, {"max": 8, "step": 2}, "not a multiple of step = 2"),
        ({"max": 4, "step": 2}, {"max": 8, "step": 4}, "differs at: seeds.max, seeds.step"),
    ],
)
def test_what_cannot_be_extended_is_refused_with_what_to_do(tmp_path, seeds: dict, grown: dict, text: str) -> None:
    raw = tiny_raw(name="grow", seeds=seeds, training={"epochs": 2, "batch_size": 32, "eval_every": 1})
    run_study(parse_config(raw), tmp_path / "grow", robustness=False, report=False)
    with pytest.raises(StoreError, match=text) as err:
        run_study(parse_config({**raw, "seeds": grown}), tmp_path / "grow", robustness=False, report=False)
    assert "run directory (--out)" in str(err.value)
