"""Public names loaded on first use (PEP 562), so importing a package does not import what it names.

``noisereg.study.report`` must not import torch, and ``import noisereg`` should stay cheap: a package
lists its public names with the modules that define them, and :func:`lazy_names` gives it the module
``__getattr__`` and ``__dir__`` that import each on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, public: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``public[name]`` is the module that defines ``name``
    (or, when it is ``package + "." + name``, the subpackage ``name`` itself); a loaded value is kept in
    ``namespace`` (the package's globals), so each is imported once."""

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(public[name])
        value = module if public[name] == f"{package}.{name}" else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
