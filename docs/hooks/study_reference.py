"""The study-file reference, generated from the pydantic models of :mod:`noisereg.study.config`.

A mkdocs hook: the page ``reference/study-file.md`` holds the marker ``<!-- study-file-tables -->``,
replaced at build time by one section per table of a study file. Each section lists every key with
its type, default and bounds, read from the models themselves, and an example: the table as a
built-in study writes it, or else a written example that the build validates through the model, so
the page cannot drift from the code.

The marker ``<!-- study-file-user-tables -->`` gets the same for a study of the user's own model
(:mod:`noisereg.study.config.user`: ``[model] factory``, ``[data] loader``), with its examples taken
from ``docs/examples/own_model_study.toml``, which the build validates and the tests run.

``python docs/hooks/study_reference.py`` prints the generated Markdown.
"""

from __future__ import annotations

import itertools
import pathlib
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from noisereg.study.config import StudyConfig, builtin_studies
from noisereg.study.config.user import UserStudyConfig, parse_user_config

MARKER = "<!-- study-file-tables -->"
USER_MARKER = "<!-- study-file-user-tables -->"
PAGE = "reference/study-file.md"
USER_EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "own_model_study.toml"
USER_EXAMPLE_NAME = "docs/examples/own_model_study.toml"

# What the user-study models' docstrings do not say in a study file's terms.
USER_DESCRIPTIONS = {
    "UserStudyConfig": (
        "A study file whose `[model]` table has a `factory` key studies your own model: "
        "`noisereg study FILE` runs it through `noisereg.study.run_model`. Its arms use the vocabulary "
        "of `noisereg.attach` (`at`, `select`, `where`); the optimizer table is "
        "[OptimizerConfig](#optimizerconfig), as in every study file."
    ),
    "UserTrainingConfig": (
        "`loss` is `auto` (cross-entropy for classification, mean squared error for regression), `ce`, "
        "`bce`, `mse` or the import path of your loss; `task` is read from the targets when `auto`."
    ),
    "UserGridConfig": "For an arm of several sites: which site's main strength the grid varies (0-based).",
}
# Tables of a user study that its example file does not write: validated through their model.
USER_WRITTEN_EXAMPLES: dict[str, Any] = {
    "UserGridConfig": {"site": 1, "values": [0.03, 0.1, 0.3]},
}

# Tables that no built-in study writes: examples validated through their model at build time.
WRITTEN_EXAMPLES: dict[str, Any] = {
    "LinearConfig": {"family": "linear", "init": "normal", "init_std": 0.01},
    "CNNConfig": {"family": "cnn", "input_shape": [1, 8, 8], "channels": [16, 32], "hidden": 64},
    "RecurrentConfig": {"family": "lstm", "input_shape": [20, 3], "hidden": 64, "layers": 1},
    "SearchConfig": {"sampler": "tpe", "trials": 16, "low": 0.001, "high": 3.0, "log": True},
    "UniformTable": {"at": "input", "kind": "uniform", "half_width": 0.05},
    "MultiplicativeGaussianTable": {
        "at": "activations",
        "where": "after",
        "kind": "multiplicative_gaussian",
        "std": 0.2,
    },
    "GaussianDropoutTable": {"at": "activations", "where": "after", "kind": "gaussian_dropout", "rate": 0.2},
    "AlphaDropoutTable": {"at": "activations", "where": "after", "kind": "alpha_dropout", "rate": 0.05},
    "ImpulseTable": {"at": "input", "kind": "impulse", "amount": 0.02, "low": -3.0, "high": 3.0},
    "SnrGaussianTable": {"at": "input", "kind": "snr_gaussian", "snr_db": 20.0},
    "LabelSmoothingTable": {"at": "targets", "kind": "label_smoothing", "epsilon": 0.1, "spread": "others"},
    "LabelFlipTable": {"at": "targets", "kind": "label_flip", "rate": 0.1, "pattern": "uniform"},
    "RademacherTable": {"at": "targets", "kind": "rademacher", "std": 0.5},
    "FilterGaussianTable": {"at": "weights", "kind": "filter_gaussian", "std": 0.01},
    "ConstantSchedule": {"schedule": "constant", "value": 0.1},
    "LinearSchedule": {"schedule": "linear", "start": 0.0, "end": 0.1, "steps": 500},
    "CosineSchedule": {"schedule": "cosine", "start": 0.1, "end": 0.0, "steps": 1000},
    "ExponentialDecaySchedule": {"schedule": "exponential_decay", "init": 0.3, "rate": 0.5, "decay_steps": 1000},
    "AnnealedSchedule": {"schedule": "annealed", "eta": 0.3},
    "PiecewiseSchedule": {"schedule": "piecewise", "boundaries": [100, 200], "values": [0.0, 0.1, 0.05]},
    "IntervalSchedule": {"schedule": "interval", "value": 0.1, "on": 5, "off": 5, "per": "epoch"},
    "WarmUpSchedule": {"schedule": "warmup", "value": 0.1, "delay": 1000, "ramp": 500},
    "GridConfig": {"values": [0.0, 0.1, 0.3], "param": "[1].std"},
    "PlaceConfig": {"at": "activations", "where": "before"},
    "MonitorConfig": {"corruption": "gaussian", "severity": 3},
    "SmoothingConfig": {"sigma": 0.25, "n0": 100, "n": 1000, "alpha": 0.001, "inputs": 50},
    "SeedRounds": {"max": 30, "step": 5, "margin": 0.01},
}


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """The bare type and the constraints written on it with ``Annotated``."""
    meta: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        for m in extra:
            meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return tp, meta


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def models_in(tp: Any) -> Iterator[type[BaseModel]]:
    """Every pydantic model named inside a type annotation, in order."""
    tp, _ = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield tp
        return
    for arg in typing.get_args(tp):
        if not isinstance(arg, (str, int, float)):
            yield from models_in(arg)


def tables(
    root: type[BaseModel] = StudyConfig, skip: frozenset[type[BaseModel]] = frozenset()
) -> list[tuple[str, type[BaseModel]]]:
    """(key path, model) for every table a study file can hold, depth first from ``root``; models in
    ``skip`` (documented elsewhere on the page) are left out with everything under them."""
    found: dict[type[BaseModel], str] = {}

    def walk(model: type[BaseModel], path: str) -> None:
        if model in found or model in skip:
            return
        found[model] = path
        for key, field in model.model_fields.items():
            tp = field.annotation
            # a model is listed (``[]``) where the key may hold a list of it, not just beside a list
            listed = {
                m for a in (_union_args(tp) or (tp,)) if typing.get_origin(_unwrap(a)[0]) is list for m in models_in(a)
            }
            sub = f"{path}.{key}" if path else key
            for inner in models_in(tp):
                walk(inner, sub + ("[]" if inner in listed else ""))

    walk(root, "")
    return [(path, model) for model, path in found.items()]


def _constraints(meta: list[Any]) -> list[str]:
    out = []
    for m in meta:
        if isinstance(m, at.Ge):
            out.append(f"≥ {m.ge}")
        elif isinstance(m, at.Gt):
            out.append(f"> {m.gt}")
        elif isinstance(m, at.Le):
            out.append(f"≤ {m.le}")
        elif isinstance(m, at.Lt):
            out.append(f"< {m.lt}")
        elif isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item(s)" if m.min_length > 1 else "not empty")
        elif isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} long")
        elif getattr(m, "pattern", None):
            out.append(f"matches `{m.pattern}`")
        elif getattr(m, "allow_inf_nan", None) is False:
            out.append("finite")
    return out


def render_type(tp: Any, links: Mapping[type[BaseModel], str]) -> tuple[str, list[str]]:
    """A readable type and the constraints found inside it (``each`` for list items)."""
    tp, meta = _unwrap(tp)
    bounds = _constraints(meta)
    args = _union_args(tp)
    if args is not None:
        parts = [render_type(a, links) for a in args if a is not type(None)]
        text = " or ".join(p[0] for p in parts)
        inner = [b for p in parts for b in p[1]]
        return text, bounds + inner
    origin = typing.get_origin(tp)
    if origin is Literal:
        values = (f"`{v!r}`" if isinstance(v, str) else f"`{v}`" for v in typing.get_args(tp))
        return "one of " + ", ".join(values), bounds
    if origin in (list, tuple):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        rendered = [render_type(a, links) for a in items]
        if origin is tuple:
            text = "[" + ", ".join(r[0] for r in rendered) + "]"
        else:
            text = f"list of {rendered[0][0]}"
        inner = [f"each {b}" for r in rendered for b in r[1]]
        return text, bounds + list(dict.fromkeys(inner))
    if origin is dict:
        return "table", bounds
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{links[tp]})", bounds
    names = {int: "integer", float: "number", str: "string", bool: "boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp))), bounds


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "its defaults"
    return f"`{_toml_value(value)}`"


_PYTHON_SECTION = re.compile(r"\s*(Args:|Returns:|Raises:|>>>)")


def _describe(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    if model.__doc__ == BaseModel.__doc__ or not doc:
        return ""
    doc = re.sub(r":(?:class|func|mod|data|meth):`~?([^`]+)`", r"`\1`", doc)
    doc = doc.replace("``", "`")
    # A library class's Python sections (arguments, raises, doctests) are not the study file's.
    lines = list(itertools.takewhile(lambda line: not _PYTHON_SECTION.match(line), doc.splitlines()))
    body = "\n".join(line[4:] if line.startswith("    ") else line for line in lines).rstrip()
    return re.sub(r"::\n", ":\n", body)


def _builtin_example(path: str) -> tuple[str, Any] | None:
    """(study name, value) of the first built-in study that writes the table at ``path``."""
    keys = [k for k in path.split(".") if k]
    for name, file in builtin_studies().items():
        node: Any = tomllib.loads(file.read_text())
        for key in keys:
            listed = key.endswith("[]")
            key = key.removesuffix("[]")
            if isinstance(node, list):
                node = next((n[key] for n in node if isinstance(n, Mapping) and key in n), None)
            elif isinstance(node, Mapping):
                node = node.get(key)
            if node is None:
                break
            if listed and isinstance(node, Mapping):
                node = [node]
        if node is not None:
            return name, node
    return None


def _matches(model: type[BaseModel], value: Any) -> Any:
    """The fullest entry of ``value`` (a table or a list of tables) that validates as ``model``."""
    valid = []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, Mapping):
            continue
        try:
            model.model_validate(item)
        except ValueError:
            continue
        valid.append(item)
    return max(valid, key=len, default=None)


def example(path: str, model: type[BaseModel]) -> tuple[str, str]:
    """(where it comes from, TOML text) of an example of this table, validated through ``model``."""
    if model is StudyConfig:
        name = "case-study"
        return f"the built-in study `{name}`", builtin_studies()[name].read_text()
    found = _builtin_example(path)
    if found is not None and model.__name__ not in WRITTEN_EXAMPLES:
        item = _matches(model, found[1])
        if item is not None:
            return f"the built-in study `{found[0]}`", _toml_snippet(path, item)
    item = WRITTEN_EXAMPLES[model.__name__]
    model.model_validate(item)  # a written example that no longer validates fails the build
    return "this page (validated through the model when the site is built)", _toml_snippet(path, item)


def _toml_snippet(path: str, item: Mapping[str, Any]) -> str:
    keys = [k.removesuffix("[]") for k in path.split(".")]
    if path.startswith("arms[]") and len(keys) > 1:
        field = keys[1]
        rest = ".".join(keys[2:])
        value = dict(item) if not rest else _nest(keys[2:], item)
        head = '[[arms]]\nname = "my arm"\n'
        if field == "noise":
            return head + f"noise = {_toml_value(value)}\n"
        if field == "grid":
            two_sites = '[{ at = "input", kind = "gaussian", std = 0.1 }, { at = "activations", where = "before", kind = "gaussian", std = 0.1 }]'
            return head + f"noise = {two_sites}\ngrid = {_toml_value(value)}\n"
        return head + f"{field} = {_toml_value(value)}\n"
    if path == "arms[]":
        return "[[arms]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in item.items())
    scalars = {k: v for k, v in item.items() if not isinstance(v, Mapping)}
    out = f"[{path}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in scalars.items())
    for k, v in item.items():
        if isinstance(v, Mapping):
            out += f"\n[{path}.{k}]\n" + "".join(f"{kk} = {_toml_value(vv)}\n" for kk, vv in v.items())
    return out


def _nest(keys: list[str], item: Mapping[str, Any]) -> Any:
    # a schedule table under arms[].noise[].<strength>: show it inside a noise table
    return {"at": "gradients", "kind": "gaussian", keys[-1]: dict(item)}


def _title(path: str, model: type[BaseModel]) -> str:
    if not path:
        return "the top level"
    if "schedule" in model.model_fields:
        return "any strength, as a schedule table"
    if "[]" in path:
        return f"`{path}`"
    return f"`[{path}]`"


def user_tables() -> list[tuple[str, type[BaseModel]]]:
    """(key path, model) for every table of a study of the user's own model that the built-in
    study file does not share (the optimizer table is the same model, documented once)."""
    shared = {model for _, model in tables()}
    return tables(UserStudyConfig, skip=frozenset(shared))


def _user_file() -> dict[str, Any]:
    raw = tomllib.loads(USER_EXAMPLE.read_text())
    parse_user_config(raw, source=USER_EXAMPLE_NAME)  # an example that no longer validates fails the build
    return raw


def _nodes_at(raw: Mapping[str, Any], path: str) -> list[Any]:
    """Every value at ``path`` (``arms[].noise[]``) of a parsed file, lists flattened."""
    nodes: list[Any] = [raw]
    for key in (k.removesuffix("[]") for k in path.split(".") if k):
        found = []
        for node in nodes:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, Mapping) and key in item:
                    value = item[key]
                    found.extend(value if isinstance(value, list) else [value])
        nodes = found
    return nodes


def user_example(path: str, model: type[BaseModel]) -> tuple[str, str]:
    """(where it comes from, TOML text) of an example of a user-study table, validated through ``model``."""
    raw = _user_file()
    if model is UserStudyConfig:
        return f"`{USER_EXAMPLE_NAME}`, which the tests run", USER_EXAMPLE.read_text()
    if model.__name__ in USER_WRITTEN_EXAMPLES:
        item = USER_WRITTEN_EXAMPLES[model.__name__]
        model.model_validate(item)
        source = "this page (validated through the model when the site is built)"
    else:
        item = _matches(model, _nodes_at(raw, path))
        if item is None:
            raise ValueError(f"{USER_EXAMPLE_NAME} writes no table {path!r}: add one or a written example")
        source = f"`{USER_EXAMPLE_NAME}`"
    if path == "arms[].grid":
        two_sites = [
            {"kind": "gaussian", "std": 0.1, "at": "input"},
            {"kind": "gaussian", "std": 0.1, "at": "activations", "select": "act", "where": "before"},
        ]
        return source, f'[[arms]]\nname = "my arm"\nnoise = {_toml_value(two_sites)}\ngrid = {_toml_value(item)}\n'
    return source, _toml_snippet(path, item)


def _section(
    path: str, model: type[BaseModel], links: Mapping[type[BaseModel], str], text: str, source: str, snippet: str
) -> str:
    parts = [f"## {model.__name__}: {_title(path, model)} {{#{links[model]}}}\n"]
    if text:
        parts.append(text + "\n")
    parts.append("| key | type | default | bounds |\n|---|---|---|---|")
    for key, field in model.model_fields.items():
        tp, inner = render_type(field.annotation, links)
        bounds = _constraints(field.metadata) + inner
        parts.append(f"| `{key}` | {tp} | {_default(field)} | {'; '.join(bounds) or '—'} |")
    if model.model_config.get("extra") == "allow":
        parts.append("| *any other key* | the kind's own parameter | — | checked when the kind is built |")
    parts.append(f"\nExample, from {source}:\n\n```toml\n{snippet.rstrip()}\n```\n")
    return "\n".join(parts)


def _links() -> dict[type[BaseModel], str]:
    return {model: model.__name__.lower() for _, model in tables() + user_tables()}


def reference_markdown() -> str:
    """The generated sections: one per table, every key with type, default and bounds, an example."""
    links = _links()
    return "\n".join(_section(path, model, links, _describe(model), *example(path, model)) for path, model in tables())


def user_reference_markdown() -> str:
    """The same for a study of the user's own model: its tables that built-in study files do not have."""
    links = _links()
    return "\n".join(
        _section(
            path, model, links, USER_DESCRIPTIONS.get(model.__name__) or _describe(model), *user_example(path, model)
        )
        for path, model in user_tables()
    )


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """mkdocs hook: fill the reference page's markers with the generated tables."""
    if page.file.src_uri != PAGE:
        return markdown
    for marker in (MARKER, USER_MARKER):
        if marker not in markdown:
            raise ValueError(f"{PAGE} lost its marker {marker}")
    return markdown.replace(MARKER, reference_markdown()).replace(USER_MARKER, user_reference_markdown())


if __name__ == "__main__":
    print(reference_markdown())
    print(user_reference_markdown())
