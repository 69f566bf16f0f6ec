"""From a study's noise tables to the engine's :class:`~noisereg.engine.SiteNoise`: each table's kind
is the config class of its :data:`~noisereg.noise.kinds.KINDS` entry, each schedule table the
:data:`~noisereg.schedules.NAMED` schedule."""

from __future__ import annotations

from typing import Any

from noisereg.engine import SiteNoise
from noisereg.engine.vocabulary import ClockUnit
from noisereg.noise.kinds import KINDS
from noisereg.schedules import NAMED, Schedule

__all__ = ["schedule_of", "site_noise"]


def schedule_of(table: Any) -> Schedule:
    """The :mod:`noisereg.schedules` object of a validated schedule table (without its ``per``)."""
    fields = table.model_dump(exclude={"schedule", "per"})
    for key in ("boundaries", "values"):
        if key in fields:
            fields[key] = tuple(fields[key])
    schedule: Schedule = NAMED[table.schedule](**fields)
    return schedule


def site_noise(table: Any, *, strength: float | None = None) -> SiteNoise:
    """The engine site of one validated noise table; ``strength`` replaces its main strength."""
    main = KINDS[table.kind].strength
    value = getattr(table, main)
    clock: ClockUnit = "step"
    if hasattr(value, "schedule"):
        clock = value.per
        value = schedule_of(value)
    if strength is not None:
        value = strength
    fields = table.model_dump(exclude={"at", "where", "select", "kind", "increments", main})
    if fields.get("clip") is not None:
        fields["clip"] = tuple(fields["clip"])
    elif "clip" in fields:
        del fields["clip"]
    kind = KINDS[table.kind].load()(**{main: value}, **fields)
    layers = None if table.layers is None else tuple(table.layers)
    return SiteNoise(site=table.site, kind=kind, layers=layers, clock=clock, increments=table.increments)
