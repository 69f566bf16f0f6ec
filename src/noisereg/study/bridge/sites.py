"""From a study's noise tables to the engine's :class:`~noisereg.engine.SiteNoise` with
:mod:`noisereg.noise` kinds (and the engine's label-noise kinds for targets) and
:mod:`noisereg.schedules` schedules."""

from __future__ import annotations

from typing import Any

from noisereg import noise, schedules
from noisereg.engine import LabelFlip, LabelSmoothing, SiteNoise
from noisereg.study.config.noise import MAIN_STRENGTH

__all__ = ["schedule_of", "site_noise"]

_KINDS: dict[str, Any] = {
    "gaussian": noise.Gaussian,
    "uniform": noise.Uniform,
    "multiplicative_gaussian": noise.MultiplicativeGaussian,
    "gaussian_dropout": noise.GaussianDropout,
    "alpha_dropout": noise.AlphaDropout,
    "impulse": noise.Impulse,
    "snr_gaussian": noise.SNRGaussian,
    "label_smoothing": LabelSmoothing,
    "label_flip": LabelFlip,
}

_SCHEDULES: dict[str, Any] = {
    "constant": schedules.Constant,
    "linear": schedules.Linear,
    "cosine": schedules.Cosine,
    "exponential_decay": schedules.ExponentialDecay,
    "annealed": schedules.Annealed,
    "piecewise": schedules.Piecewise,
    "interval": schedules.Interval,
    "warmup": schedules.WarmUp,
}


def schedule_of(table: Any) -> schedules.Schedule:
    """The :mod:`noisereg.schedules` object of a validated schedule table (without its ``per``)."""
    fields = table.model_dump(exclude={"schedule", "per"})
    for key in ("boundaries", "values"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return _SCHEDULES[table.schedule](**fields)


def site_noise(table: Any, *, strength: float | None = None) -> SiteNoise:
    """The engine site of one validated noise table; ``strength`` replaces its main strength."""
    main = MAIN_STRENGTH[table.kind]
    value = getattr(table, main)
    clock = "step"
    if hasattr(value, "schedule"):
        clock = value.per
        value = schedule_of(value)
    if strength is not None:
        value = strength
    fields = table.model_dump(exclude={"site", "kind", "layers", main})
    if fields.get("clip") is not None:
        fields["clip"] = tuple(fields["clip"])
    elif "clip" in fields:
        del fields["clip"]
    kind = _KINDS[table.kind](**{main: value}, **fields)
    layers = None if table.layers is None else tuple(table.layers)
    return SiteNoise(site=table.site, kind=kind, layers=layers, clock=clock)
