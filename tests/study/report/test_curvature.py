"""The Hessian-trace table: per-arm statistics and the direction of a significant difference."""

from __future__ import annotations

from noisereg.study.report.curvature import annotate_curvature, curvature_tables
from noisereg.study.stats import holm, paired


def _res(values: list[float | None]) -> dict:
    return {"seeds": list(range(len(values))), "final": {"hessian_trace": values}}


def test_flatter_and_sharper_follow_the_sign_and_holm() -> None:
    base = [10.0 + 0.1 * s for s in range(8)]
    done = {
        "none": _res(base),
        "flat": _res([b - 5.0 + 0.01 * (s % 3) for s, b in enumerate(base)]),
        "sharp": _res([b + 3.0 + 0.02 * (s % 2) for s, b in enumerate(base)]),
        "same": _res([b + (0.5 if s % 2 else -0.5) for s, b in enumerate(base)]),
    }
    arms = [{"name": n} for n in done]
    annotate_curvature(arms, done, "none")
    by = {a["name"]: a["hessian_trace"] for a in arms}
    assert by["none"]["paired"] is None and by["none"]["n"] == 8
    expected = holm([paired(done[n]["final"]["hessian_trace"], base)["p_ttest"] for n in ("flat", "sharp", "same")])
    assert [by[n]["paired"]["p_holm"] for n in ("flat", "sharp", "same")] == expected
    assert by["flat"]["paired"]["flatter"] and not by["flat"]["paired"]["sharper"]
    assert by["sharp"]["paired"]["sharper"] and not by["sharp"]["paired"]["flatter"]
    assert not by["same"]["paired"]["flatter"] and not by["same"]["paired"]["sharper"]
    [(title, _, headers, rows)] = curvature_tables({"arms": arms, "baseline": "none"})
    assert title == "Hessian trace (sharpness)" and "vs baseline" in headers
    said = headers.index("vs baseline")
    assert [r[said] for r in rows] == ["baseline", "flatter", "sharper", "no significant difference"]
    assert [r[-1] for r in rows] == ["", "", "", ""]  # no arm names another with versus


def test_no_table_without_measurements_and_non_finite_seeds_are_left_out() -> None:
    arms = [{"name": "none"}, {"name": "x"}]
    done = {"none": {"seeds": [0, 1], "final": {}}, "x": {"seeds": [0, 1], "final": {}}}
    annotate_curvature(arms, done, "none")
    assert curvature_tables({"arms": arms, "baseline": "none"}) == []
    done = {"none": _res([1.0, float("nan"), 2.0]), "x": _res([0.5, 0.4, None])}
    arms = [{"name": "none"}, {"name": "x"}]
    annotate_curvature(arms, done, "none")
    assert arms[0]["hessian_trace"]["n"] == 2 and arms[1]["hessian_trace"]["paired"]["n"] == 1
