"""Optional dependencies, imported one way everywhere: :func:`require` and :func:`try_import`.

An optional package can be missing, or installed and broken (a torchvision built for another torch
raises ``RuntimeError: operator torchvision::nms does not exist`` while importing). Either way
noisereg itself stays importable: a module that merely adapts to the package calls :func:`try_import`,
a feature that cannot work without it calls :func:`require` when it is used, and the user reads one
:class:`OptionalImportError` that names the package, what went wrong and the fix.

Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback
from types import ModuleType
from typing import cast

__all__ = ["OptionalImportError", "require", "try_import"]


class OptionalImportError(ImportError):
    """An optional package is not installed (``installed=False``) or fails to import (``installed=True``).

    The original error is the ``__cause__``; the message repeats it and says how to fix it.
    """

    def __init__(self, message: str, *, name: str, installed: bool) -> None:
        super().__init__(message, name=name)
        self.installed = installed


def _fix(package: str, extra: str | None) -> str:
    return f'pip install "noisereg[{extra}]"' if extra else f"pip install {package}"


def try_import(
    module: str, extra: str | None = None, *, package: str | None = None
) -> ModuleType | OptionalImportError:
    """``module`` imported, or the :class:`OptionalImportError` that :func:`require` would raise.

    ``extra`` is the noisereg extra that installs it (None: the package is named on its own);
    ``package`` the package (its import name) the user lacks when it is not the module's top-level name (e.g.
    ``torch.utils.tensorboard`` needs ``tensorboard``). Any exception raised while importing counts:
    a broken build raises RuntimeError, OSError, ...
    """
    package = package or module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        # a missing dependency of an installed package is a broken install, not a missing package
        # (a submodule missing from an installed package is a broken install too)
        named = error.name or ""
        missing = named in (module.split(".")[0], package) or not _installed(package)
        if not missing:
            return _broken(module, package, extra, error)
        reason = OptionalImportError(
            f"this part of noisereg needs {package!r}, which is not installed: {_fix(package, extra)}",
            name=module,
            installed=False,
        )
        reason.__cause__ = error
        return reason
    except Exception as error:
        return _broken(module, package, extra, error)


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a parent that fails to import; a module without a spec
        return False


def _root(error: BaseException) -> BaseException:
    """The first error of a chain: lazy importers (transformers') re-raise it as their own."""
    seen = [error]
    while len(seen) < 20 and (seen[-1].__cause__ or seen[-1].__context__) is not None:
        seen.append(cast(BaseException, seen[-1].__cause__ or seen[-1].__context__))
    return seen[-1]


def _culprit(root: BaseException, package: str) -> str:
    """The package whose code failed: the last top-level module on the root error's traceback other
    than torch itself (whose ops a broken extension fails to register) and the import machinery."""
    found = package
    for frame, _ in traceback.walk_tb(root.__traceback__):
        top = str(frame.f_globals.get("__name__", "")).split(".")[0]
        if top and top not in ("torch", "importlib", "noisereg"):
            found = top
    return found


def _broken(module: str, package: str, extra: str | None, error: Exception) -> OptionalImportError:
    what = f"{type(error).__name__}: {error}"
    root = _root(error)
    if root is not error:
        what += f", from {type(root).__name__}: {root}"
    culprit = _culprit(root, package)
    cause = "" if culprit == package else f", in {culprit!r}"
    reason = OptionalImportError(
        f"this part of noisereg needs {package!r}, which is installed but fails to import ({what}{cause}): "
        f"reinstall a build of {culprit} that matches this environment (a package built against torch needs "
        f"one for the installed torch version and CPU/CUDA variant), or uninstall it (pip uninstall {culprit}) "
        f"where nothing needs it",
        name=module,
        installed=True,
    )
    reason.__cause__ = error
    return reason


def require(module: str, extra: str | None = None, *, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`OptionalImportError` (an ImportError) naming the package,
    the original error and the fix.

    >>> require("noisereg_no_such_package", "lightning")
    Traceback (most recent call last):
    ...
    noisereg._optional.OptionalImportError: this part of noisereg needs 'noisereg_no_such_package', which is not installed: pip install "noisereg[lightning]"
    """
    found = try_import(module, extra, package=package)
    if isinstance(found, OptionalImportError):
        raise found.with_traceback(None)
    return found
