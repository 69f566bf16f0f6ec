"""A griffe extension for the API page: doctest examples in docstrings shown as code.

The docstrings end with doctests that the tests run (``>>>`` lines and their output) but carry no
``Examples:`` header, so a Markdown renderer would read ``>>>`` as a quotation and an output such as
``[1.0, 0.5]`` as a link. Each run of doctest lines is fenced as ``pycon`` before rendering; the
source docstrings stay as they are.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every doctest run (``>>>`` up to the next blank line) inside a ``pycon`` fence."""
    out: list[str] = []
    in_run = in_fence = False
    indent = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_run and not stripped:
            out.append(indent + "```")
            in_run = False
        if not in_run and not in_fence and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + "```pycon")
            in_run = True
        out.append(line)
    if in_run:
        out.append(indent + "```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctests of every object's docstring (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
