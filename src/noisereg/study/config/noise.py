"""The noise vocabulary of study files: where (site), what kind, how strong (a number or a schedule).

One table per site::

    noise = { site = "before", kind = "gaussian", std = 0.1, layers = [0] }
    noise = { site = "gradients", kind = "gaussian", std = { schedule = "annealed", eta = 0.3 } }
    noise = { site = "targets", kind = "label_smoothing", epsilon = 0.1 }

Sites: ``input`` (the features), ``before`` / ``after`` (a hidden layer's linear output before its
activation / the activation's output, as ``attach``'s ``where``; ``layers`` picks hidden layers by
0-based index, default all: an MLP's layers, a CNN's convolutions then its hidden Linear, a GRU/LSTM's
output sequence, where ``before`` and ``after`` are one place; the earlier names ``pre`` / ``post``
are read as these, with a ``DeprecationWarning`` from :func:`~noisereg.study.parse_config`),
``weights`` (every parameter named ``weight*``, drawn once per optimizer step and held for its
minibatch; the gradient at the noisy weights updates the clean ones), ``gradients``, and ``targets``. The kinds, their main strength (the one a grid varies), its range and their other keys
are those of the registry :data:`noisereg.noise.kinds.KINDS` (for targets of classifiers the label
kinds ``label_smoothing`` and ``label_flip``); any strength may be a schedule table
(``schedule = "annealed"`` etc., with ``per = "step"`` or ``"epoch"``) of
:data:`noisereg.schedules.NAMED`. The tables are derived from those definitions here, so a kind or a
schedule is added in one place; this module validates and imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import BaseModel, BeforeValidator, Discriminator, Field, Tag, TypeAdapter, create_model, model_validator

from noisereg.engine.vocabulary import HIDDEN_SITES, RENAMED_SITES, ClockUnit, SiteName, current_site, renamed_site
from noisereg.noise.kinds import KINDS, Kind, Option
from noisereg.schedules import NAMED
from noisereg.study.config.strict import FiniteOrInf, Strict

__all__ = [
    "NoiseConfig",
    "ScheduleConfig",
    "STUDY_KINDS",
    "check_sites",
    "noise_strength_path",
    "warn_renamed_sites",
    "with_value",
]

STUDY_KINDS: dict[str, Kind] = {name: kind for name, kind in KINDS.items() if kind.in_studies}
"""The kinds study files may name, by name."""


# A schedule's numbers are strengths or counts: none is negative. Finer bounds (steps >= 1, a decay
# rate in (0, 1], piecewise lengths) are the schedule classes' own, checked by building one.
_FIELD_TYPES: dict[str, Any] = {
    "float": Annotated[float, Field(ge=0)],
    "int": Annotated[int, Field(ge=0)],
    "bool": bool,
    "tuple[float, ...]": list[Annotated[float, Field(ge=0)]],
    "tuple[int, ...]": list[Annotated[int, Field(ge=0)]],
}


class _Named(Strict):
    """A schedule table: checked by building the :data:`~noisereg.schedules.NAMED` schedule it names."""

    per: ClockUnit = "step"
    schedule: str

    @model_validator(mode="after")
    def _builds(self) -> _Named:
        fields = self.model_dump(exclude={"schedule", "per"})
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            NAMED[self.schedule](**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return self


def _schedule_table(name: str, cls: type) -> type[BaseModel]:
    fields: dict[str, Any] = {"schedule": (Literal[name], ...)}
    for f in dataclasses.fields(cls):
        default = ... if f.default is dataclasses.MISSING else f.default
        fields[f.name] = (_FIELD_TYPES[str(f.type)], default)
    return create_model(f"{cls.__name__}Schedule", __base__=_Named, __doc__=cls.__doc__, **fields)


_SCHEDULE_TABLES = tuple(_schedule_table(name, cls) for name, cls in NAMED.items())

ScheduleConfig = Annotated[Union[_SCHEDULE_TABLES], Field(discriminator="schedule")]  # type: ignore[valid-type]  # noqa: UP007


def _number_or_schedule(value: Any) -> str:
    return "schedule table" if isinstance(value, (Mapping, BaseModel)) else "number"


def _strength(kind: Kind) -> Any:
    """A strength in the kind's range: a number or a schedule table (errors from one only)."""
    bounds: dict[str, Any] = {}
    if kind.low > -math.inf:
        bounds["gt" if kind.low_open else "ge"] = kind.low
    if kind.high < math.inf:
        bounds["lt" if kind.high_open else "le"] = kind.high
    # inf is a strength where the kind allows it (no noise, for decibels); NaN never is
    number: Any = Annotated[FiniteOrInf if kind.allow_inf else float, Field(**bounds)]
    return Annotated[
        Annotated[number, Tag("number")] | Annotated[ScheduleConfig, Tag("schedule table")],
        Discriminator(_number_or_schedule),
    ]


def _option(option: Option) -> Any:
    if option.choices:
        return Literal[option.choices]
    bounds: dict[str, Any] = {"ge": option.low} if option.low > -math.inf else {}
    if option.high < math.inf:
        bounds["le"] = option.high
    return Annotated[float, Field(**bounds)]


class _Site(Strict):
    # the earlier names are read silently here (stored runs hold them); parse_config warns the user
    site: Annotated[SiteName, BeforeValidator(current_site)]
    layers: list[Annotated[int, Field(ge=0)]] | None = None
    # site = "weights" only: the noise goes into the weights (Anti-PGD, perturbed GD), as attach's option
    increments: Literal["none", "independent", "anticorrelated"] = "none"
    if TYPE_CHECKING:
        # every table that _noise_table makes narrows it to its kind's name
        kind: str

    @model_validator(mode="after")
    def _layers_for_hidden(self) -> _Site:
        if self.layers is not None and self.site not in HIDDEN_SITES:
            raise ValueError(f"layers selects hidden layers: only for site 'before' or 'after', not {self.site!r}")
        if self.increments != "none" and self.site != "weights":
            raise ValueError(f"increments = {self.increments!r} is only for site 'weights', not {self.site!r}")
        return self


def _noise_table(kind: Kind) -> type[BaseModel]:
    fields: dict[str, Any] = {"kind": (Literal[kind.name], ...), kind.strength: (_strength(kind), ...)}
    if kind.clip:
        fields["clip"] = (tuple[float, float] | None, None)
    for name, option in kind.options.items():
        fields[name] = (_option(option), option.default)
    camel = "".join(part.title() for part in kind.name.split("_"))
    return create_model(f"{camel}Table", __base__=_Site, __doc__=f"A site of {kind.name!r} noise.", **fields)


_NOISE_TABLES = tuple(_noise_table(kind) for kind in STUDY_KINDS.values())

if TYPE_CHECKING:
    # the tables are made from the registry at import time, out of the checker's sight: to it a site is a _Site
    NoiseConfig: TypeAlias = _Site
else:
    NoiseConfig = Annotated[Union[_NOISE_TABLES], Field(discriminator="kind")]  # noqa: UP007

_NOISE: TypeAdapter[Any] = TypeAdapter(NoiseConfig)


def warn_renamed_sites(raw: Mapping[str, Any], source: str) -> None:
    """A ``DeprecationWarning`` for each hidden site that the study ``raw`` (plain TOML data) names by
    its earlier name (``pre``, ``post``), naming the key path and the new spelling.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_renamed_sites({"arms": [{"name": "x", "noise": {"site": "post", "std": 0.1}}]}, "s.toml")
    >>> str(caught[0].message)
    "s.toml: arms[0].noise.site = 'post' is deprecated: write 'after'"
    """
    arms = raw.get("arms")
    for i, arm in enumerate(arms if isinstance(arms, list) else []):
        if not isinstance(arm, Mapping):
            continue
        noise, search = arm.get("noise"), arm.get("search")
        tables = (
            [("", noise)] if isinstance(noise, Mapping) else list(enumerate(noise)) if isinstance(noise, list) else []
        )
        for j, table in tables:
            site = table.get("site") if isinstance(table, Mapping) else None
            if isinstance(site, str) and site in RENAMED_SITES:
                index = "" if j == "" else f"[{j}]"
                renamed_site(site, f"{source}: arms[{i}].noise{index}.site")
        sites = search.get("sites") if isinstance(search, Mapping) else None
        for j, site in enumerate(sites if isinstance(sites, list) else []):
            if isinstance(site, str) and site in RENAMED_SITES:
                renamed_site(site, f"{source}: arms[{i}].search.sites[{j}]")


def check_sites(noise: list[Any]) -> None:
    """Refuse label noise away from the targets and a site given twice with the same layers."""
    seen = set()
    for i, n in enumerate(noise):
        if STUDY_KINDS[n.kind].labels and n.site != "targets":
            raise ValueError(f"noise[{i}]: kind {n.kind!r} is label noise: only for site 'targets'")
        key = (n.site, tuple(n.layers) if n.layers is not None else None)
        if key in seen:
            raise ValueError(f"noise[{i}]: site {n.site!r} appears twice; one kind per site and layers")
        seen.add(key)


def noise_strength_path(noise: list[Any], param: str | None) -> tuple[int, tuple[str, ...]]:
    """Resolve a grid's ``param`` to (site index, field path); raise ``ValueError`` if it names no
    numeric strength of ``noise``."""
    if param is None:
        if len(noise) != 1:
            raise ValueError(
                f"grid without 'param' needs exactly one noise site, this arm has {len(noise)}: "
                'write grid = { values = [...], param = "[1].std" }'
            )
        return 0, (STUDY_KINDS[noise[0].kind].strength,)
    index = 0
    rest = param
    if param.startswith("["):
        head, _, rest = param[1:].partition("]")
        if not head.isdigit() or int(head) >= len(noise):
            raise ValueError(f"grid.param={param!r}: site index must be in [0, {len(noise) - 1}]")
        index, rest = int(head), rest.removeprefix(".")
    elif len(noise) != 1:
        raise ValueError(f"grid.param={param!r} must start with the site index, e.g. '[1].{param}'")
    path = tuple(rest.split(".")) if rest else ()
    node: Any = noise[index]
    for key in path:
        if not isinstance(node, BaseModel) or key not in type(node).model_fields:
            raise ValueError(f"grid.param={param!r}: {key!r} is not a key of noise[{index}]")
        node = getattr(node, key)
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ValueError(f"grid.param={param!r} must name a number, it names {type(node).__name__}")
    return index, path


def with_value(noise: list[Any], param: str | None, value: float) -> list[Any]:
    """The arm's noise with the grid's strength set to ``value``, validated again (raises
    ``pydantic.ValidationError`` for a value out of range)."""
    index, path = noise_strength_path(noise, param)
    raw = noise[index].model_dump()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    site = _NOISE.validate_python(raw)
    return [site if i == index else n for i, n in enumerate(noise)]
