"""Pydantic's validation errors as the key paths and plain messages of the user's study file.

``arms[2].noise.std: must be >= 0, got -0.1``: the path walks the raw TOML data beside pydantic's
location, so union tags and the list a single table stands for never show.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

__all__ = ["StudyConfigError", "problems", "message", "EARLIER_SPELLINGS"]

EARLIER_SPELLINGS: dict[str, tuple[str, ...]] = {
    "at": ("site",),
    "where": ("site",),
    "select": ("layers",),
    "places": ("sites",),
    "family": ("kind",),
}
"""Keys of today's study files and how built-in study files wrote them before (read with a
``DeprecationWarning``): an error is reported under the key the file holds."""


class StudyConfigError(ValueError):
    """A study file that cannot run; ``problems`` lists ``(key path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "study") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        super().__init__(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(lines))


def _user_path(loc: tuple[int | str, ...], raw: Any, *, missing: bool = False) -> str:
    """The key path as the user wrote it, walking the raw TOML data beside pydantic's location.

    Pydantic's location also holds union tags and list indices the user did not write (a single
    ``noise`` table is validated as a list of one); those are dropped. Only a missing key is named
    although it is absent from the data.
    """
    parts: list[int | str] = []
    node = raw
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and isinstance(part, str) and part not in node:
            part = next((e for e in EARLIER_SPELLINGS.get(part, ()) if e in node), part)
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            parts.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            parts.append(part)
            node = node[part]
        elif missing and i == len(loc) - 1 and isinstance(node, Mapping):
            parts.append(part)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_pattern_mismatch": "must match {pattern}",
}


def message(err: Mapping[str, Any]) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind in _MESSAGES:
        ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return _MESSAGES[kind].format(**ctx) + f", got {value!r}"
    if kind in ("literal_error", "union_tag_invalid"):
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", ctx.get("expected", ""))))
        got = value if kind == "literal_error" else ctx.get("tag")
        close = difflib.get_close_matches(str(got), expected, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"must be one of {', '.join(repr(e) for e in expected)}, got {got!r}{hint}"
    if kind == "union_tag_not_found":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg if kind == "value_error" else f"{msg}, got {value!r}"


def problems(exc: ValidationError, raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(user key path, message) for every error of ``exc`` raised while validating ``raw``."""
    out = []
    for e in exc.errors():
        loc = e["loc"]
        missing = e["type"] in ("missing", "union_tag_not_found")
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, e["ctx"]["discriminator"].strip("'"))
        elif isinstance(e.get("ctx", {}).get("key"), (str, tuple)):  # a table's check about one of its keys
            key = e["ctx"]["key"]
            loc = (*loc, *(key if isinstance(key, tuple) else (key,)))
        out.append((_user_path(loc, raw, missing=missing), message(e)))
    return out
