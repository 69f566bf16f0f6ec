"""summary.md and report.html from a summary (plain text and a jinja2 template; no torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from noisereg.study.report.curvature import curvature_tables
from noisereg.study.report.formatting import Table, bracket, fmt
from noisereg.study.report.robustness_tables import robustness_tables
from noisereg.study.report.selection_text import selection_lines, selection_texts, selection_value
from noisereg.study.report.sequential import sequential_tables

__all__ = [
    "to_markdown",
    "to_html",
    "table_rows",
    "contrast_rows",
    "CONTRAST_HEADERS",
    "weight_tables",
    "estimate_table",
    "selection_texts",
    "selection_value",
    "robustness_tables",
    "fmt",
    "HEADERS",
    "COLUMNS",
    "TERMINAL_HEADERS",
]


def table_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row of display strings per arm: the table that the CLI, summary.md and the HTML show."""
    rows = []
    for a in summary["arms"]:
        p = a.get("paired") or {}
        lo, hi = a["ci95"]
        mark = ""
        if p.get("better"):
            mark = "better"
        elif p.get("worse"):
            mark = "worse"
        rows.append(
            {
                "arm": _label(a),
                "n": str(a["n"]),
                "train": fmt(a["train"]["mean"]) if a.get("train") else "—",
                "mean": f"{fmt(a['mean'])} ± {fmt(a['std'])}",
                "ci95": f"[{fmt(lo)}, {fmt(hi)}]",
                "diff": "baseline"
                if a["name"] == summary["baseline"]
                else (f"{p['mean_diff']:+.4f}" if p.get("n") else "—"),
                "p_ttest": fmt(p.get("p_ttest"), 3),
                "p_wilcoxon": fmt(p.get("p_wilcoxon"), 3),
                "p_holm": fmt(p.get("p_holm"), 3),
                "dz": fmt(p.get("cohen_dz"), 3),
                "diff_ci": _diff_interval(a, summary),
                "p_better": _improvement(p),
                "mde": _detectable(p, d_z=False),
                "verdict": mark,
            }
        )
    return rows


def _diff_interval(arm: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """The bootstrap 95% interval of Δ vs baseline as shown ('—' for a summary stored before it); for a
    sequential comparison stopped early, its confidence sequence, marked "CS" (the bootstrap's is dropped)."""
    if arm["name"] == summary["baseline"]:
        return "baseline"
    p = arm.get("paired") or {}
    if p.get("stopped_early"):
        lo, hi = p["anytime"]["ci"]  # a null end of a confidence sequence is infinite
        return f"[{'−∞' if lo is None else fmt(lo, 3)}, {'∞' if hi is None else fmt(hi, 3)}] CS"
    return bracket((p.get("bootstrap") or {}).get("ci95_diff"), 3)


def _improvement(paired: Mapping[str, Any]) -> str:
    """P(better) and its bootstrap 95% interval as shown (none after stopping early)."""
    b = paired.get("bootstrap") or {}
    if b.get("p_improvement") is None:
        return "—"
    if paired.get("stopped_early"):
        return f"{fmt(b['p_improvement'], 3)} (no interval: stopped early)"
    return f"{fmt(b['p_improvement'], 3)} {bracket(b.get('ci95_improvement'))}"


def _detectable(paired: Mapping[str, Any], *, d_z: bool = True) -> str:
    """The minimum detectable effect at 80% power where the comparison is not significant ("" where
    it is: ``power`` is null then; '—' without a comparison or a spread)."""
    if not paired.get("n"):
        return "—"
    pw = paired.get("power")
    if not pw:
        return "" if "power" in paired else "—"
    if pw.get("mde") is None:
        return "—"
    return f"{fmt(pw['mde'], 3)} (d_z {fmt(pw['mde_dz'], 3)})" if d_z else fmt(pw["mde"], 3)


def _label(arm: Mapping[str, Any]) -> str:
    """A cell's name; for a search cell with the value (and site) the sampler proposed."""
    if not arm.get("search"):
        return arm["name"]
    site = f"{arm['site']} " if arm.get("site") else ""
    return f"{arm['name']}: {site}{arm['param']}={fmt(arm['grid_value'])}"


COLUMNS = {
    "arm": "arm",
    "n": "n",
    "train": "train",
    "mean": "test mean ± sd",
    "ci95": "95% CI",
    "diff": "Δ vs base",
    "diff_ci": "Δ boot 95% CI",
    "p_better": "P(better) [95% CI]",
    "p_ttest": "p (t)",
    "p_wilcoxon": "p (Wilcoxon)",
    "p_holm": "p Holm",
    "dz": "d_z",
    "mde": "MDE",
    "verdict": "",
}
"""Every column of the evidence table (:func:`table_rows`), by key, with its header: the one definition
that the report, the terminal table of ``noisereg study`` and :meth:`noisereg.study.StudyResult.table`
take their headers from."""

HEADERS = {
    k: COLUMNS[k]
    for k in ("arm", "n", "train", "mean", "ci95", "diff", "p_ttest", "p_wilcoxon", "p_holm", "dz", "verdict")
}
"""The report's evidence table (summary.md, report.html): both tests' p-values, the training metric, d_z."""

#: The table printed by ``noisereg study`` and :meth:`noisereg.study.StudyResult.table`: the tests'
#: verdict with the interval estimates beside it, narrow enough for a terminal of 150 columns. The
#: two unadjusted p-values, the training metric and d_z are in the report only.
TERMINAL_HEADERS = {
    k: COLUMNS[k] for k in ("arm", "n", "mean", "ci95", "diff", "diff_ci", "p_better", "p_holm", "mde", "verdict")
}


def estimate_table(summary: Mapping[str, Any]) -> list[Table]:
    """Interval estimates and effect sizes beside the tests: per arm the interquartile mean, the
    bootstrap interval of the difference from the baseline, the probability of improvement, and for
    comparisons that are not significant the minimum detectable effect and the seeds that would
    detect the observed one. Empty for summaries stored before these existed."""
    arms = [a for a in summary["arms"] if a.get("iqm")]
    if not arms:
        return []
    rows, boot, alpha = [], None, None
    for a in arms:
        p = a.get("paired") or {}
        b, pw = p.get("bootstrap") or {}, p.get("power") or {}
        boot = boot or (b or None)
        alpha = alpha or pw.get("alpha")
        detectable = _detectable(p) or "significant"
        needed = "—" if not p.get("n") else fmt(pw.get("seeds_needed")) if pw else ""
        rows.append(
            [
                a["name"],
                f"{fmt(a['iqm']['iqm'])} {bracket(a['iqm']['ci95'], 4)}",
                _diff_interval(a, summary),
                _improvement(p),
                detectable,
                needed,
            ]
        )
    better = "higher" if summary["higher_is_better"] else "lower"
    method = (boot or {}).get("method", "percentile")  # summaries stored before schema 3 have percentile ones
    how = "the percentile interval at the level that gives a mean the t-interval's coverage, Hesterberg 2015; "
    note = (
        f"95% {method} bootstrap intervals over seeds"
        + (
            f" ({how if method == 'expanded percentile' else ''}{boot['resamples']} resamples, generator seeded by "
            f"the study seed {boot['seed']})"
            if boot
            else ""
        )
        + "; each seed's value is already its mean over outer folds where the split has them, so seeds are "
        "resampled, the pairs together. IQM: the interquartile mean over seeds (the middle half; Agarwal et al. 2021). "
        f"P(better): the share of seeds on which the arm beats the baseline ({better} is better), ties ½: the "
        "probability that it does on a new seed. MDE: the smallest difference that a two-sided paired t-test at "
        f"α = {fmt(alpha or 0.05)}, uncorrected (Holm over every comparison needs more), detects with 80% power on "
        "these seeds, the observed sd of the differences taken as true; shown where the comparison is not "
        "significant, with the seeds that would detect the observed difference."
        + (
            " CS: a comparison that the sequential study stopped before its maximum number of seeds shows its "
            "anytime-valid confidence sequence (see Rounds); fixed-n intervals do not keep their coverage after stopping."
            if any((a.get("paired") or {}).get("stopped_early") for a in arms)
            else ""
        )
    )
    headers = [
        COLUMNS["arm"],
        "IQM [95% CI]",
        COLUMNS["diff_ci"],
        COLUMNS["p_better"],
        "MDE at 80% power",
        "seeds to detect Δ",
    ]
    return [("Interval estimates and effect sizes", note, headers, rows)]


def contrast_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per arm compared with another (``versus``): arm, other, Δ, 95% CI, p (t), p (Holm), verdict."""
    rows = []
    for a in summary["arms"]:
        v = a.get("versus")
        if not v or not v.get("n"):
            continue
        lo, hi = v["ci95_diff"]
        mark = "better" if v.get("better") else ("worse" if v.get("worse") else "no significant difference")
        rows.append(
            [
                a["name"],
                v["arm"],
                f"{v['mean_diff']:+.4f}",
                f"[{fmt(lo)}, {fmt(hi)}]",
                fmt(v.get("p_ttest"), 3),
                fmt(v.get("p_holm"), 3),
                mark,
            ]
        )
    return rows


CONTRAST_HEADERS = [
    COLUMNS["arm"],
    "versus",
    "Δ (arm − versus)",
    COLUMNS["ci95"],
    COLUMNS["p_ttest"],
    COLUMNS["p_holm"],
    "",
]


def weight_tables(summary: Mapping[str, Any]) -> list[Table]:
    """A linear model's fitted weights per arm side by side, and the distance between each arm's and
    the arm it names with ``versus``; none for other models."""
    fitted = [a for a in summary["arms"] if a.get("coef")]
    if not fitted:
        return []
    names = fitted[0]["coef"]["names"]
    rows = []
    for i, name in enumerate(names):
        cells = []
        for a in fitted:
            c = a["coef"]
            cells.append(f"{fmt(c['mean'][i], 4)} ± {fmt(c['std'][i], 2)}" if c["std"] else fmt(c["mean"][i], 4))
        rows.append([name, *cells])
    rows.append(["‖w̄‖₂", *(fmt(a["coef"]["norm"], 4) for a in fitted)])
    note = "Fitted weights of the linear model (bias left out), mean ± sd over seeds."
    tables: list[Table] = [("Fitted weights", note, ["feature", *(a["name"] for a in fitted)], rows)]
    pairs = []
    for a in fitted:
        d = (a.get("versus") or {}).get("distance")
        if d:
            per = d["per_seed"] or {}
            pairs.append(
                [
                    a["name"],
                    a["versus"]["arm"],
                    fmt(d["means"], 3),
                    fmt(d["relative"], 3),
                    f"{fmt(per.get('mean'), 3)} ± {fmt(per.get('std'), 2)}",
                    fmt(d["other_from_baseline"], 3),
                ]
            )
    if pairs:
        note = (
            f"‖w̄_arm − w̄_versus‖₂ between the mean weight vectors, relative to ‖w̄_versus‖₂, the same seed by seed, "
            f"and for scale how far the versus arm's mean weights are from the baseline's ({summary['baseline']})."
        )
        headers = [
            "arm",
            "versus",
            "‖w̄_arm − w̄_versus‖₂",
            "relative",
            "per seed (mean ± sd)",
            "‖w̄_versus − w̄_baseline‖₂",
        ]
        tables.append(("Distance between weight vectors", note, headers, pairs))
    return tables


def _recommendation_lines(rec: Mapping[str, Any] | None) -> list[str]:
    if not rec:
        return []
    lines = ["## Recommendation", "", f"**{rec['text']}**", ""]
    lines += [f"- Evidence: {e}." for e in rec["evidence"]]
    lines += [f"- {c}" for c in rec["caveats"]]
    return lines + ([""] if rec["evidence"] or rec["caveats"] else [])


def path_lines(summary: Mapping[str, Any]) -> list[str]:
    """One sentence per training path of the run (which engine path trained which cells, and why);
    none for studies that do not record paths."""
    paths = (summary.get("data") or {}).get("paths") or {}
    groups: dict[tuple[str, str], list[str]] = {}
    for cell, info in paths.items():
        groups.setdefault((info["path"], info["why"]), []).append(cell)
    return [f"Trained by the {path} path ({why}): {', '.join(cells)}." for (path, why), cells in groups.items()]


def to_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: the verdict, the table, the selection, missing cells."""
    rows = table_rows(summary)
    keys = list(HEADERS)
    lines = [
        f"# Study {summary['study']}",
        "",
        *([summary["description"], ""] if summary.get("description") else []),
        *([f"**Published claim.** {summary['claim']}", ""] if summary.get("claim") else []),
        f"**{'Measured here' if summary.get('claim') else 'Verdict'}.** {summary['verdict']['text']}",
        "",
        *_recommendation_lines(summary.get("recommendation")),
        f"Metric: test {summary['metric']} ({'higher' if summary['higher_is_better'] else 'lower'} is better), "
        f"{'at most ' if summary.get('sequential') else ''}{summary['seeds']} seeds per arm, paired with the baseline **{summary['baseline']}** on the same seeds.",
        "",
        *[line for text in path_lines(summary) for line in (text, "")],
        "| " + " | ".join(HEADERS[k] for k in keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in rows]
    for title, note, headers, cells in estimate_table(summary):
        lines += ["", f"## {title}", "", note, "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
    contrasts = contrast_rows(summary)
    if contrasts:
        lines += [
            "",
            "## Paired contrasts",
            "",
            "Each arm against the arm it names (same seeds); Holm over these comparisons.",
            "",
            "| " + " | ".join(CONTRAST_HEADERS) + " |",
            "|" + "---|" * len(CONTRAST_HEADERS),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in contrasts]
    lines += selection_lines(summary.get("selection"))
    for title, note, headers, cells in (
        weight_tables(summary) + curvature_tables(summary) + robustness_tables(summary) + sequential_tables(summary)
    ):
        lines += ["", f"## {title}", "", note, "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
    if summary["missing"]:
        lines += [
            "",
            f"**Incomplete:** {len(summary['missing'])} cell(s) without results: {', '.join(summary['missing'])}.",
        ]
    return "\n".join(lines) + "\n"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("noisereg.study.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def to_html(summary: Mapping[str, Any], plots: Sequence[tuple[str, str]]) -> str:
    """report.html: the Markdown's content as HTML with the PNG ``plots`` ((title, file name) pairs)."""
    template = _ENV.get_template("report.html.j2")
    return template.render(
        s=summary,
        rows=table_rows(summary),
        headers=HEADERS,
        plots=plots,
        selection=selection_texts(summary["selection"]) if summary.get("selection") else [],
        fmt=fmt,
        value=selection_value,
        tables=estimate_table(summary)
        + _contrast_table(summary)
        + weight_tables(summary)
        + curvature_tables(summary)
        + robustness_tables(summary)
        + sequential_tables(summary),
        paths=path_lines(summary),
    )


def _contrast_table(summary: Mapping[str, Any]) -> list[Table]:
    rows = contrast_rows(summary)
    note = "Each arm against the arm it names (same seeds); Holm over these comparisons."
    return [("Paired contrasts", note, CONTRAST_HEADERS, rows)] if rows else []
