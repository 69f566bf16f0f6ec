"""``describe(model)``: what noise is attached where, how strong it is now, and whether it is really on."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from noisereg.layers import NoiseLayer, noise_layers, registry
from noisereg.sites.selectors import unwrap

__all__ = ["describe", "Entry", "Description"]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One noise of a model.

    ``site``: the attach site, or "module" for a noise layer that is part of the model;
    ``where``: the place; ``noise``: the config; ``strength``: its main strength at the current step
    (schedules resolved); ``step``: the step its schedules are at; ``applied``: how many times noise
    was drawn since it was attached (weight noise held across uses counts once per draw);
    ``state``: whether the next forward (or step) adds noise and why.
    """

    site: str
    where: str
    noise: str
    strength: float | str
    step: int
    applied: int
    state: str


class Description(list):
    """The entries of :func:`describe`; prints as a table."""

    def __str__(self) -> str:
        if not self:
            return "no noise attached"
        fields = [f.name for f in dataclasses.fields(Entry)]
        rows = [fields] + [[_cell(getattr(e, f)) for f in fields] for e in self]
        widths = [max(len(row[i]) for row in rows) for i in range(len(fields))]
        lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
        return "\n".join(lines)


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _strength(layer: NoiseLayer) -> float | str:
    value = layer.current_strength()
    if isinstance(value, Tensor):
        return f"per-sample tensor {list(value.shape)}" if value.dim() else float(value)
    return float(value) if isinstance(value, (int, float)) else str(value)


def _state(layer: NoiseLayer, host: nn.Module | None, gradient: bool) -> str:
    if layer.forced is not None:
        return "forced on (noise_enabled)" if layer.forced else "forced off (noise_enabled)"
    if gradient:
        return "on at optimizer.step()"
    training = layer.training if host is None else host.training
    return "on (training)" if training else "off (eval)"


def describe(model: nn.Module) -> Description:
    """Every noise of ``model``: placed by ``attach``, or noise layers among its modules.

    >>> from noisereg.layers import GaussianNoise
    >>> print(describe(nn.Sequential(GaussianNoise(0.1), nn.Linear(2, 1))))
    site    where  noise                         strength  step  applied  state
    module  '0'    Gaussian(std=0.1, clip=None)  0.1       0     0        on (training)

    Args:
        model: any ``nn.Module`` (DDP and ``torch.compile`` wrappers are looked through).

    Returns:
        A :class:`Description`: a list of :class:`Entry`, printed as a table ("no noise attached" when empty).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    root = unwrap(model)
    names = {id(m): n for n, m in root.named_modules()}
    entries = Description()
    for layer in noise_layers(root):
        info = registry.place(layer)
        if info is None:
            site, where, host = "module", repr(names.get(id(layer), "?")), None
        else:
            site, where, host = info.site, info.where, None if info.host is None else info.host()
        noise = repr(layer.kind)
        entries.append(
            Entry(
                site,
                where,
                noise,
                _strength(layer),
                layer.step,
                layer.applied,
                _state(layer, host, site == "gradients"),
            )
        )
    return entries
