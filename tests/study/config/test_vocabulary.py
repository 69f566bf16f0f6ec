"""One vocabulary for every study file: attach's ``at`` / ``where`` / ``select``.

The earlier spelling of built-in study files (``site``, ``layers``, a search's ``sites``) still loads,
with a DeprecationWarning naming the key path and what to write, and gives the same study: the same
configuration, cells, cell keys, seeds, engine sites and training groups.
"""

from __future__ import annotations

import copy
import tomllib
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisereg.study.bridge.sites import site_noise
from noisereg.study.cells import plan_cells, signature
from noisereg.study.config import StudyConfigError, builtin_studies, parse_config
from noisereg.study.config.user import is_user_study
from tests.study.fakes import tiny_raw

_SITE = {("activations", "before"): "before", ("activations", "after"): "after"}


def earlier(table: dict[str, Any]) -> dict[str, Any]:
    """A noise table of today's spelling in the earlier one (``site``, ``layers``)."""
    out = {k: v for k, v in table.items() if k not in ("at", "where", "select")}
    at = table.get("at", "input")
    out["site"] = _SITE[(at, table.get("where", "after"))] if at == "activations" else at
    if "select" in table:
        out["layers"] = table["select"]
    return out


def earlier_study(raw: dict[str, Any]) -> dict[str, Any]:
    """A study of today's spelling in the earlier one: noise tables, a search's places, ``[model] kind``."""
    old = copy.deepcopy(raw)
    if "family" in old.get("model", {}):
        old["model"] = {("kind" if k == "family" else k): v for k, v in old["model"].items()}
    for arm in old["arms"]:
        noise = arm.get("noise")
        if isinstance(noise, dict):
            arm["noise"] = earlier(noise)
        elif isinstance(noise, list):
            arm["noise"] = [earlier(t) for t in noise]
        places = (arm.get("search") or {}).pop("places", None)
        if places is not None:
            arm["search"]["sites"] = [earlier(p)["site"] for p in places]
    return old


def plan(raw: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a study trains, cell by cell: key, value, seeds, engine sites and training group."""
    config = parse_config(raw)
    cells = plan_cells(config)
    groups: dict[Any, int] = {}
    return [
        (
            c.key,
            c.value,
            c.param,
            c.selection,
            config.seed,
            config.seeds,
            [repr(site_noise(t)) for t in c.noise],
            groups.setdefault(signature(c), len(groups)),
        )
        for c in cells
    ]


def _quiet(raw: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return parse_config(raw)


# the built-in files of a built-in model family (an own-model file, [model] factory, never had site keys)
FAMILY_FILES = sorted(n for n, p in builtin_studies().items() if not is_user_study(tomllib.loads(p.read_text())))


@pytest.mark.parametrize("name", FAMILY_FILES)
def test_every_builtin_file_is_written_in_todays_words_and_reads_the_same_in_the_earlier(name) -> None:
    raw = tomllib.loads(builtin_studies()[name].read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the shipped files use today's spelling
        new = parse_config(raw, source=name)
    old = earlier_study(raw)
    tables = sum(len(a["noise"]) if isinstance(a.get("noise"), list) else "noise" in a for a in raw["arms"])
    with pytest.warns(DeprecationWarning) as caught:
        assert parse_config(old, source=name) == new
    messages = [str(w.message) for w in caught]
    assert len(messages) == tables + 1
    assert all(f"{name}: arms[" in m and "is deprecated: write at = " in m for m in messages[:-1])
    family = raw["model"]["family"]
    assert messages[-1] == f"{name}: model.kind = {family!r} is deprecated: write family = {family!r}"
    assert plan(raw) == _plan_quiet(old)


def _plan_quiet(raw: dict[str, Any]) -> list[tuple[Any, ...]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return plan(raw)


def test_each_earlier_key_warns_with_its_key_path_and_what_to_write() -> None:
    raw = tiny_raw(
        arms=[
            {"name": "none"},
            {
                "name": "both",
                "noise": [
                    {"site": "input", "kind": "gaussian", "std": 0.1},
                    {"site": "post", "kind": "gaussian", "std": 0.1, "layers": [0]},
                ],
            },
            {
                "name": "tpe",
                "noise": {"site": "before", "kind": "gaussian", "std": 0.1},
                "search": {"trials": 2, "low": 0.01, "high": 1.0, "sites": ["input", "pre"]},
            },
        ],
        selection={"arm": "tpe", "folds": 2},
    )
    with pytest.warns(DeprecationWarning) as caught:
        config = parse_config(raw, source="old.toml")
    assert [str(w.message) for w in caught] == [
        "old.toml: arms[1].noise[0].site = 'input' is deprecated: write at = 'input'",
        "old.toml: arms[1].noise[1].site = 'post' is deprecated: write at = 'activations', where = 'after'",
        "old.toml: arms[1].noise[1].layers = [0] is deprecated: write select = [0]",
        "old.toml: arms[2].noise.site = 'before' is deprecated: write at = 'activations', where = 'before'",
        "old.toml: arms[2].search.sites = ['input', 'pre'] is deprecated: "
        "write places = [{ at = 'input' }, { at = 'activations', where = 'before' }]",
    ]
    new = tiny_raw(
        arms=[
            {"name": "none"},
            {
                "name": "both",
                "noise": [
                    {"at": "input", "kind": "gaussian", "std": 0.1},
                    {"at": "activations", "where": "after", "select": [0], "kind": "gaussian", "std": 0.1},
                ],
            },
            {
                "name": "tpe",
                "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1},
                "search": {
                    "trials": 2,
                    "low": 0.01,
                    "high": 1.0,
                    "places": [{"at": "input"}, {"at": "activations", "where": "before"}],
                },
            },
        ],
        selection={"arm": "tpe", "folds": 2},
    )
    assert config == parse_config(new)
    assert config.arms[2].search is not None and config.arms[2].search.sites == ["input", "before"]
    assert plan(new) == _plan_quiet(raw)


def test_where_defaults_to_after_as_in_attach() -> None:
    bare = _arm({"at": "activations", "kind": "gaussian", "std": 0.1})
    after = copy.deepcopy(bare)
    after["arms"][1]["noise"]["where"] = "after"
    assert parse_config(bare) == parse_config(after)
    assert parse_config(bare).arms[1].noise[0].site == "after"


def _arm(noise: Any) -> dict[str, Any]:
    return tiny_raw(arms=[{"name": "none"}, {"name": "x", "noise": noise}], selection=None)


BAD = [
    # (noise table, key path, words of the message) in today's spelling and the earlier one
    ({"at": "hidden", "kind": "gaussian", "std": 0.1}, "arms[1].noise.at", ("'activations'", "'hidden'")),
    ({"site": "hidden", "kind": "gaussian", "std": 0.1}, "arms[1].noise.site", ("'before'", "'hidden'")),
    ({"at": "input", "where": "before", "kind": "gaussian", "std": 0.1}, "arms[1].noise.where", ("at = 'input'",)),
    ({"at": "input", "where": "inside", "kind": "gaussian", "std": 0.1}, "arms[1].noise.where", ("'inside'",)),
    ({"at": "weights", "select": [0], "kind": "gaussian", "std": 0.1}, "arms[1].noise.select", ("at = 'weights'",)),
    ({"site": "weights", "layers": [0], "kind": "gaussian", "std": 0.1}, "arms[1].noise.layers", ("'weights'",)),
    ({"at": "activations", "select": [-1], "kind": "gaussian", "std": 0.1}, "arms[1].noise.select[0]", (">= 0",)),
    ({"site": "before", "layers": [-1], "kind": "gaussian", "std": 0.1}, "arms[1].noise.layers[0]", (">= 0",)),
    ({"site": "input", "at": "input", "kind": "gaussian", "std": 0.1}, "arms[1].noise.site", ("earlier spelling",)),
    ({"site": "input", "kind": "gaussian", "std": -1.0}, "arms[1].noise.std", ("-1",)),
    ({"at": "input", "kind": "label_smoothing", "epsilon": 0.1}, "arms[1]", ("noise[0]", "only for at = 'targets'")),
]


@pytest.mark.parametrize(("noise", "path", "words"), BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_an_error_in_either_spelling_names_the_key_the_user_wrote(noise, path, words) -> None:
    with pytest.raises(StudyConfigError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parse_config(_arm(noise))
    [(got, message)] = info.value.problems
    assert got == path, info.value
    for word in words:
        assert word in message, message


def test_a_search_in_either_spelling_names_its_key() -> None:
    search = {"trials": 2, "low": 0.01, "high": 1.0}
    for key, value, path in [
        ("sites", ["input", "inside"], "arms[2].search.sites[1]"),
        ("places", [{"at": "weights"}], "arms[2].search"),
        ("places", [{"at": "input"}, {"at": "input"}], "arms[2].search"),
    ]:
        raw = tiny_raw()
        raw["arms"][2]["search"] = {**search, key: value}
        raw["arms"][2].pop("grid", None)
        with pytest.raises(StudyConfigError) as info:
            parse_config(raw)
        assert [p for p, _ in info.value.problems] == [path], info.value


# ---- generated arms: today's spelling and the earlier one give the same study ---------------------

_PLACES = st.sampled_from(
    [
        {"at": "input"},
        {"at": "activations"},
        {"at": "activations", "where": "before"},
        {"at": "activations", "where": "after"},
        {"at": "weights"},
        {"at": "gradients"},
        {"at": "targets"},
    ]
)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    table: dict[str, Any] = dict(draw(_PLACES))
    if table["at"] == "targets" and draw(st.booleans()):
        table.update(kind="label_smoothing", epsilon=draw(st.sampled_from([0.0, 0.05, 0.1])))
    else:
        table.update(kind="gaussian", std=draw(st.sampled_from([0.0, 0.01, 0.1, 0.3])))
    if table["at"] == "activations" and draw(st.booleans()):
        table["select"] = draw(st.lists(st.integers(0, 0), min_size=1, max_size=1))
    return table


@st.composite
def studies(draw: st.DrawFn) -> dict[str, Any]:
    arms: list[dict[str, Any]] = [{"name": "none"}]
    for i in range(draw(st.integers(1, 3))):
        noise = draw(st.lists(tables(), min_size=1, max_size=3))
        arm: dict[str, Any] = {"name": f"arm{i}", "noise": noise[0] if len(noise) == 1 else noise}
        if draw(st.booleans()):
            values = draw(st.lists(st.sampled_from([0.0, 0.02, 0.1, 0.2]), min_size=1, max_size=3, unique=True))
            arm["grid"] = values if len(noise) == 1 else {"values": values, "param": f"[{len(noise) - 1}]"}
            key = "epsilon" if noise[-1]["kind"] == "label_smoothing" else "std"
            if len(noise) > 1:
                arm["grid"]["param"] += f".{key}"
        arms.append(arm)
    return tiny_raw(arms=arms, selection=None, seed=draw(st.integers(0, 2**32)), seeds=draw(st.integers(1, 4)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(studies())
def test_generated_studies_plan_the_same_in_either_spelling(raw) -> None:
    old = earlier_study(raw)
    try:
        new_config = parse_config(raw)
    except StudyConfigError as exc:
        with pytest.raises(StudyConfigError) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            parse_config(old)
        assert info.value.problems == exc.problems  # e.g. a place given twice: the same words, the same arm
        return
    assert _quiet(old) == new_config
    assert _plan_quiet(old) == plan(raw)


def test_a_run_stored_in_the_earlier_spelling_resumes_from_a_file_in_todays(tmp_path) -> None:
    from noisereg.cli import main
    from noisereg.study.store import Store, default_url
    from noisereg.study.store.base import fingerprint
    from tests.study.test_bad_study_files import write_study

    raw = tiny_raw(selection=None)
    study = write_study(tmp_path / "tiny.toml", raw)
    run = tmp_path / "run"
    assert main(["study", str(study), "--out", str(run), "--no-train", "--quiet"]) == 0
    store = Store(default_url(run), "tiny")
    stored = store.attrs()["config"]
    old = {**stored, "arms": [{**a, "noise": [earlier(t) for t in a["noise"]]} for a in stored["arms"]]}
    old["model"] = {("kind" if k == "family" else k): v for k, v in stored["model"].items()}
    assert any(t.get("site") == "before" for a in old["arms"] for t in a["noise"]) and old["model"]["kind"] == "mlp"
    store.study.set_user_attr("config", old)  # as the version before the renames wrote it
    store.study.set_user_attr("fingerprint", fingerprint(old))
    assert main(["study", str(study), "--out", str(run), "--no-train", "--quiet"]) == 0  # the same study
    assert store.attrs()["config"] == old  # the run keeps the configuration it was made with
    changed = write_study(
        tmp_path / "other.toml", _arm({"at": "activations", "where": "after", "kind": "gaussian", "std": 0.1})
    )
    assert main(["study", str(changed), "--out", str(run), "--no-train", "--quiet"]) == 2  # a different one is not
