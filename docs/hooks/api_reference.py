"""The Python API page, generated from the public modules' ``__all__``.

A mkdocs hook: ``<!-- api: MODULE -->`` on ``reference/api.md`` becomes one mkdocstrings directive per
name of ``MODULE.__all__``, in that order, so a name added to the public surface appears on the page
without anyone remembering to add it. The directive names the object where it is defined (its
``__module__``, or the module a lazy package loads it from): the public packages load their names on
first use (PEP 562), which a static reader of the source cannot follow. An object already rendered
higher up the page is linked to, not rendered twice.

``python docs/hooks/api_reference.py`` prints the generated Markdown.
"""

from __future__ import annotations

import importlib
import re
import types
from typing import Any

PAGE = "reference/api.md"
MARKER = re.compile(r"<!-- api: ([\w.]+) -->")


def target(module_name: str, name: str) -> str:
    """The dotted path of the object ``module_name.name`` where it is defined."""
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    defined_in = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(defined_in, str) and isinstance(qualname, str) and defined_in.startswith("noisereg"):
        return f"{defined_in}.{qualname}"
    # a constant or a type alias: the module that the package loads it from, or the package itself
    lazy = getattr(module, "_PUBLIC", {})
    return f"{lazy.get(name, module_name)}.{name}"


def directives(module_name: str, seen: dict[str, str], sections: dict[str, str]) -> str:
    """The Markdown for every public name of ``module_name``; ``seen`` maps rendered paths to the
    names they were rendered under, ``sections`` a module with a section of its own to its anchor."""
    module = importlib.import_module(module_name)
    # the module's own docstring first: what its names have in common
    out = [f"::: {module_name}\n    options:\n      show_root_heading: false\n      members: false\n"]
    for name in module.__all__:
        if f"{module_name}.{name}" in sections:
            out.append(f"`{module_name}.{name}`: [its own section](#{sections[f'{module_name}.{name}']}).\n")
            continue
        if name.startswith("__"):
            value = getattr(module, name)
            out.append(f"`{module_name}.{name}` = `{value!r}`\n")
            continue
        path = target(module_name, name)
        if path in seen:
            out.append(f"`{module_name}.{name}`: the same object as [`{seen[path]}`](#{path}).\n")
            continue
        seen[path] = f"{module_name}.{name}"
        options = ["show_if_no_docstring: true", "heading_level: 3"]
        if isinstance(getattr(module, name), types.ModuleType):
            options.append("members: false")
        else:  # the heading names it as users import it, not by its private module
            options.append("show_root_full_path: false")
        out.append(f"::: {path}\n    options:\n" + "".join(f"      {o}\n" for o in options))
    return "\n".join(out)


# a section's heading anchor, then its marker: ``## Title {#anchor}`` ... ``<!-- api: module -->``
SECTION = re.compile(r"\{#([\w-]+)\}[^#]*?<!-- api: ([\w.]+) -->", re.S)


def api_markdown(markdown: str) -> str:
    seen: dict[str, str] = {}
    sections = {module: anchor for anchor, module in SECTION.findall(markdown)}
    return MARKER.sub(lambda m: directives(m.group(1), seen, sections), markdown)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """mkdocs hook: expand the API page's markers into directives."""
    if page.file.src_uri != PAGE:
        return markdown
    return api_markdown(markdown)


if __name__ == "__main__":
    import pathlib

    print(api_markdown((pathlib.Path(__file__).resolve().parents[1] / PAGE).read_text()))
