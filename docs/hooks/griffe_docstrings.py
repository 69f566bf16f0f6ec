"""A griffe extension for the API page: docstrings written for the terminal, shown as Markdown.

The docstrings end with doctests that the tests run (``>>>`` lines and their output) but carry no
``Examples:`` header, so a Markdown renderer would read ``>>>`` as a quotation and an output such as
``[1.0, 0.5]`` as a link; and they name other objects with Sphinx roles (``:func:`x```), which
Markdown prints as they are. Each run of doctest lines is fenced as ``pycon`` and each role becomes
code before rendering; the source docstrings stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|mod|data|meth|attr|exc|obj):`~?([^`]+)`")


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


class TerminalDocstrings(griffe.Extension):
    """Fence the doctests and unwrap the roles of every object's docstring (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", fence_doctests(obj.docstring.value))
