"""Finding the modules and parameters a site names: unwrapping, glob patterns, types, close names.

A selector is a qualified-name pattern (``"layers.*.fc1"``), a module type (``nn.ReLU``), a module
object of the model itself (``model.encoder.embed_tokens``) or a list of them. In a pattern ``*`` matches within one dotted segment, ``**`` across segments and ``?`` one
character, so ``"layers.*.fc1"`` matches ``layers.0.fc1`` but not ``layers.0.block.fc1``. Names are
those of the unwrapped model (no ``module.`` or ``_orig_mod.`` prefix).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import cast

from torch import nn

__all__ = ["Selector", "unwrap", "select_modules", "select_parameters", "clean_name", "parameter"]

Selector = str | type | nn.Module | Sequence[str | type | nn.Module]

# A parametrized tensor's Parameter lives at "<owner>.parametrizations.<name>.original".
_PARAMETRIZED = re.compile(r"(^|\.)parametrizations\.([^.]+)\.original\d*$")


def unwrap(model: object) -> nn.Module:
    """The module holding the layers: ``torch.compile``'s ``_orig_mod``, DDP's/DataParallel's ``module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    module: nn.Module = model
    while True:
        inner = getattr(module, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            module = inner
        elif isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        else:
            return module


def clean_name(name: str) -> str:
    """A parameter's name as in the clean model: ``0.parametrizations.weight.original`` -> ``0.weight``."""
    return _PARAMETRIZED.sub(r"\1\2", name)


def _pattern(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        out.append("[^.]*" if c == "*" else "[^.]" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out))


def _as_list(select: Selector, argument: str) -> list[str | type | nn.Module]:
    if not isinstance(select, (str, type, nn.Module, Sequence)):
        raise TypeError(
            f"{argument}={select!r} must be a name pattern (str), a module type (e.g. nn.ReLU), a module of "
            f"the model or a list of them, got {type(select).__name__}; to pick layers by position use a "
            "pattern such as '0' or '2'"
        )
    # A module is one selector even when it is iterable (nn.Sequential, nn.ModuleList).
    items = [select] if isinstance(select, (str, type, nn.Module)) else list(select)
    if not items:
        raise ValueError(f"{argument}={select!r} is empty: name at least one pattern or module type")
    for item in items:
        if not isinstance(item, (str, type, nn.Module)):
            raise TypeError(
                f"{argument}={select!r}: each selector must be a name pattern (str), a module type or a "
                f"module of the model, got {type(item).__name__}"
            )
    return items


def _no_match(argument: str, item: str | type | nn.Module, root: nn.Module, names: list[str], what: str) -> ValueError:
    if isinstance(item, nn.Module):
        return ValueError(
            f"{argument}=<{type(item).__name__} object> is not a module of the model (a copy, or a module "
            "of another model?): pass one of model.modules(), or a name pattern"
        )
    if isinstance(item, type):
        types = sorted({type(m).__name__ for m in root.modules()})
        return ValueError(
            f"{argument}={item.__name__} matches no {what} of the model (its module types: {', '.join(types)})"
        )
    close = difflib.get_close_matches(item, names, n=5, cutoff=0.5)
    hint = f"; close names: {', '.join(repr(c) for c in close)}" if close else ""
    shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
    return ValueError(f"{argument}={item!r} matches no {what} of the model{hint} (names: {shown})")


def select_modules(root: nn.Module, select: Selector, *, argument: str = "select") -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every module a selector matches, in the model's order, each once.

    Raises ValueError naming the selector that matched nothing, with the closest names.
    """
    modules = list(root.named_modules())
    chosen: dict[int, tuple[str, nn.Module]] = {}
    for item in _as_list(select, argument):
        hits: list[tuple[str, nn.Module]]
        if isinstance(item, nn.Module):
            hits = [(n, m) for n, m in modules if m is item][:1]
        elif isinstance(item, type):
            hits = [pair for pair in modules if isinstance(pair[1], item)]
        else:
            regex = _pattern(item)
            hits = [(n, m) for n, m in modules if regex.fullmatch(n)]
        if not hits:
            raise _no_match(argument, item, root, [n for n, _ in modules if n], "module")
        for name, module in hits:
            chosen.setdefault(id(module), (name, module))
    order = {id(m): i for i, (_, m) in enumerate(modules)}
    return sorted(chosen.values(), key=lambda nm: order[id(nm[1])])


def select_parameters(
    root: nn.Module, select: Selector | None, *, biases: bool, argument: str = "select"
) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, owner module, local name)`` of the parameters a weight site names.

    Default (``select=None``): every parameter whose own name starts with "weight" (``weight``,
    ``weight_ih_l0``, ...). A pattern matches qualified parameter names; a module type selects the
    parameters of its modules; a module object selects its parameters and those of its submodules. Biases (own name starting with "bias") are kept only with
    ``biases=True``. Raises ValueError for a selector matching nothing, or only biases.
    """
    owned = []
    for owner_name, owner in root.named_modules():
        if owner_name.endswith("parametrizations") or ".parametrizations." in f".{owner_name}.":
            continue
        for local in _local_parameters(owner):
            owned.append((f"{owner_name}.{local}" if owner_name else local, owner, local))
    is_bias = [local.startswith("bias") for _, _, local in owned]
    if select is None:
        pairs = zip(owned, is_bias, strict=True)
        picked = [p for p, bias in pairs if p[2].startswith("weight") or (bias and biases)]
        if not picked:
            raise ValueError("the model has no parameter named weight*: name parameters with select=")
        return picked
    picked_ids: set[int] = set()
    for item in _as_list(select, argument):
        if isinstance(item, nn.Module):
            inside = {id(m) for m in item.modules()}
            hits = [i for i, (_, owner, _) in enumerate(owned) if id(owner) in inside]
        elif isinstance(item, type):
            hits = [i for i, (_, owner, _) in enumerate(owned) if isinstance(owner, item)]
        else:
            regex = _pattern(item)
            hits = [i for i, (name, _, _) in enumerate(owned) if regex.fullmatch(name)]
        if not hits:
            raise _no_match(argument, item, root, [n for n, _, _ in owned], "parameter")
        kept = [i for i in hits if biases or not is_bias[i]]
        if not kept:
            raise ValueError(f"{argument}={item!r} matches only biases: pass biases=True to put noise on them")
        picked_ids.update(kept)
    return [owned[i] for i in sorted(picked_ids)]


def _local_parameters(module: nn.Module) -> list[str]:
    """Names of the module's own parameters, parametrized ones under their clean name."""
    names = [n for n, p in module._parameters.items() if p is not None]
    plist = getattr(module, "parametrizations", None)
    if isinstance(plist, nn.ModuleDict):
        names.extend(plist.keys())
    return names


def parameter(owner: nn.Module, local: str) -> nn.Parameter:
    """The Parameter object behind ``owner.<local>``, the original one when it is parametrized."""
    plist = getattr(owner, "parametrizations", None)
    if isinstance(plist, nn.ModuleDict) and local in plist:
        return cast(nn.Parameter, plist[local].original)
    return cast(nn.Parameter, owner._parameters[local])
