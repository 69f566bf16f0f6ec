"""The noise vocabulary of study files: where (attach's ``at`` / ``where`` / ``select``), what kind,
how strong (a number or a schedule).

One table per place, in the words of :func:`noisereg.attach` (the same as study files of one's own model)::

    noise = { at = "activations", where = "before", select = [0], kind = "gaussian", std = 0.1 }
    noise = { at = "gradients", kind = "gaussian", std = { schedule = "annealed", eta = 0.3 } }
    noise = { at = "targets", kind = "label_smoothing", epsilon = 0.1 }

``at``: ``input`` (the features; the default), ``activations`` (a hidden layer: ``where = "before"``
its activation, on the linear output, or ``"after"`` it, the default; ``select`` picks hidden layers
by 0-based index, default all: an MLP's layers, a CNN's convolutions then its hidden Linear, a
GRU/LSTM's output sequence, where before and after are one place), ``weights`` (every parameter named
``weight*``, drawn once per optimizer step and held for its minibatch; the gradient at the noisy
weights updates the clean ones), ``gradients``, and ``targets``. The earlier spelling of built-in
study files (``site = "before"``, ``layers = [0]``; ``site = "pre"`` / ``"post"`` before that) is
read as the same tables, with a ``DeprecationWarning`` from :func:`~noisereg.study.parse_config`
that names the key path and what to write. The kinds, their main strength (the one a grid varies),
its range and their other keys are those of the table of kinds :data:`noisereg.noise.kinds.KINDS` (for
targets of classifiers the label kinds ``label_smoothing`` and ``label_flip``); any strength may be a
schedule table (``schedule = "annealed"`` etc., with ``per = "step"`` or ``"epoch"``) of
:data:`noisereg.schedules.NAMED`. The tables are derived from those definitions here, so a kind or a
schedule is added in one place; this module validates and imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter, create_model, model_validator
from pydantic_core import PydanticCustomError

from noisereg._checks import warn_deprecated
from noisereg.engine.vocabulary import ClockUnit, SiteName, current_site
from noisereg.noise.kinds import KINDS, Kind, Option
from noisereg.schedules import NAMED
from noisereg.study.config.strict import FiniteOrInf, Strict

__all__ = [
    "NoiseConfig",
    "ScheduleConfig",
    "STUDY_KINDS",
    "check_sites",
    "noise_strength_path",
    "warn_earlier_spellings",
    "PlaceConfig",
    "place",
    "spelled",
    "site_of",
    "modern_table",
    "key_error",
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


_At = Literal["input", "activations", "weights", "gradients", "targets"]
"""Where a built-in model's noise goes (``attach``'s ``at``; built-in models have no embeddings)."""

_Where = Literal["before", "after"]
"""For ``at = "activations"``: a hidden layer's linear output before its activation, or the
activation's output after it (``attach``'s ``where``, default ``"after"``)."""

_PLACES: dict[SiteName, dict[str, str]] = {
    "input": {"at": "input"},
    "before": {"at": "activations", "where": "before"},
    "after": {"at": "activations", "where": "after"},
    "weights": {"at": "weights"},
    "gradients": {"at": "gradients"},
    "targets": {"at": "targets"},
}


def place(site: str) -> dict[str, str]:
    """The ``at`` / ``where`` keys of an engine site name (``"before"`` -> at activations, where before);
    the earlier names ``pre`` / ``post`` are read as ``before`` / ``after``.

    >>> place("before"), place("input")
    ({'at': 'activations', 'where': 'before'}, {'at': 'input'})
    """
    return dict(_PLACES[current_site(site)])  # type: ignore[index]


def spelled(site: str) -> str:
    """How a study file writes the place of ``site`` today: ``at = 'activations', where = 'before'``."""
    return ", ".join(f"{k} = {v!r}" for k, v in place(site).items())


def site_of(table: Mapping[str, Any]) -> str | None:
    """The engine's site name of a noise table stored as plain data, in either spelling (``at`` /
    ``where``, or a run stored before: ``site``, maybe ``pre`` / ``post``); None if it names none.

    >>> site_of({"at": "activations", "where": "before"}), site_of({"site": "post"}), site_of({"at": "input"})
    ('before', 'after', 'input')
    """
    if "site" in table:
        site = current_site(table["site"])
        return site if site in _PLACES else None
    at, where = table.get("at", "input"), table.get("where")
    return (where or "after") if at == "activations" else at if at in _PLACES else None


def key_error(key: str | tuple[str | int, ...], message: str) -> PydanticCustomError:
    """A table validator's error about one of its keys: :func:`~noisereg.study.config.keypaths.problems`
    names the key in the path (``arms[1].noise.where``, or ``arms[1].noise.site`` where the file
    wrote the earlier spelling), not only the table."""
    return PydanticCustomError("value_error", "{message}", {"key": key, "message": message})


def modern_table(data: Any) -> Any:
    """A noise table written with the earlier keys (``site``, ``layers``) in today's (``at``, ``where``,
    ``select``); silent (:func:`warn_renamed_sites` warns the user with the key path). Anything else
    is returned as it is. Raises the error of :func:`key_error` for a ``site`` that names no place, or
    a table that writes both spellings."""
    if not isinstance(data, Mapping) or not ("site" in data or "layers" in data):
        return data
    out = dict(data)
    if "site" in out:
        site = out.pop("site")
        if "at" in out or "where" in out:
            raise key_error("site", "write at (and where), not site as well: site is the earlier spelling")
        if not isinstance(site, str) or current_site(site) not in _PLACES:
            names = ", ".join(repr(n) for n in _PLACES)
            raise key_error("site", f"must be one of {names} (the earlier spelling of at / where), got {site!r}")
        out.update(place(site))
    if "layers" in out:
        if "select" in out:
            raise key_error("layers", "write select, not layers as well: layers is the earlier spelling")
        out["select"] = out.pop("layers")
    return out


class PlaceConfig(Strict):
    """Where noise goes, in the vocabulary of :func:`noisereg.attach`: ``at`` (``input``,
    ``activations``, ``weights``, ``gradients``, ``targets``) and, for activations, ``where``
    (``before`` the activation or ``after`` it, default ``after``)."""

    at: _At = "input"
    where: _Where | None = None

    @model_validator(mode="before")
    @classmethod
    def _today(cls, data: Any) -> Any:
        data = modern_table(data)
        if isinstance(data, Mapping) and data.get("at") == "activations" and data.get("where") is None:
            data = {**data, "where": "after"}  # attach's default, written out so both spellings are equal
        return data

    @model_validator(mode="after")
    def _where_for_activations(self) -> PlaceConfig:
        if self.where is not None and self.at != "activations":
            raise key_error("where", f"where is only for at = 'activations', not at = {self.at!r}")
        return self

    @property
    def site(self) -> SiteName:
        """The engine's name of this place (:data:`~noisereg.engine.vocabulary.SiteName`)."""
        return self.where if self.at == "activations" and self.where is not None else self.at  # type: ignore[return-value]


class _Site(PlaceConfig):
    select: list[Annotated[int, Field(ge=0)]] | None = None
    # at = "weights" only: the noise goes into the weights (Anti-PGD, perturbed GD), as attach's option
    increments: Literal["none", "independent", "anticorrelated"] = "none"
    if TYPE_CHECKING:
        # every table that _noise_table makes narrows it to its kind's name
        kind: str

    @model_validator(mode="after")
    def _select_for_activations(self) -> _Site:
        if self.select is not None and self.at != "activations":
            raise key_error("select", f"select picks hidden layers: only for at = 'activations', not at = {self.at!r}")
        if self.increments != "none" and self.at != "weights":
            raise key_error(
                "increments", f"increments = {self.increments!r} is only for at = 'weights', not at = {self.at!r}"
            )
        return self

    @property
    def layers(self) -> list[int] | None:
        """The hidden layers (0-based) that ``select`` picks; None: all."""
        return self.select


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
    # the tables are made from the table of kinds at import time, out of the checker's sight: to it a site is a _Site
    NoiseConfig: TypeAlias = _Site
else:
    NoiseConfig = Annotated[Union[_NOISE_TABLES], Field(discriminator="kind")]  # noqa: UP007

_NOISE: TypeAdapter[Any] = TypeAdapter(NoiseConfig)


def warn_earlier_spellings(raw: Mapping[str, Any], source: str) -> None:
    """A ``DeprecationWarning`` for each key of the study ``raw`` (plain TOML data) written in the
    earlier spelling of built-in study files (a noise table's ``site`` and ``layers``, a search's
    ``sites``), naming its key path and what to write instead. The tables are read the same either way.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_earlier_spellings({"arms": [{"name": "x", "noise": {"site": "post", "std": 0.1}}]}, "s.toml")
    >>> str(caught[0].message)
    "s.toml: arms[0].noise.site = 'post' is deprecated: write at = 'activations', where = 'after'"
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
            if not isinstance(table, Mapping):
                continue
            path = f"{source}: arms[{i}].noise{'' if j == '' else f'[{j}]'}"
            site = table.get("site")
            if isinstance(site, str) and current_site(site) in _PLACES:
                warn_deprecated(f"{path}.site = {site!r} is deprecated: write {spelled(site)}")
            if table.get("layers") is not None:  # a run stored before wrote layers = None too
                warn_deprecated(
                    f"{path}.layers = {table['layers']!r} is deprecated: write select = {table['layers']!r}"
                )
        sites = search.get("sites") if isinstance(search, Mapping) else None
        if isinstance(sites, list) and all(isinstance(s, str) and current_site(s) in _PLACES for s in sites):
            places = ", ".join(f"{{ {spelled(s)} }}" for s in sites)
            warn_deprecated(f"{source}: arms[{i}].search.sites = {sites!r} is deprecated: write places = [{places}]")


def check_sites(noise: list[Any]) -> None:
    """Refuse label noise away from the targets and a place given twice with the same ``select``."""
    seen = set()
    for i, n in enumerate(noise):
        if STUDY_KINDS[n.kind].labels and n.at != "targets":
            raise ValueError(f"noise[{i}]: kind {n.kind!r} is label noise: only for at = 'targets'")
        key = (n.site, tuple(n.select) if n.select is not None else None)
        if key in seen:
            raise ValueError(f"noise[{i}]: {spelled(n.site)} appears twice; one kind per place and select")
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
