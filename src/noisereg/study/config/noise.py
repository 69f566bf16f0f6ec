"""The noise vocabulary of study files: where (site), what kind, how strong (a number or a schedule).

One table per site::

    noise = { site = "pre", kind = "gaussian", std = 0.1, layers = [0] }
    noise = { site = "gradients", kind = "gaussian", std = { schedule = "annealed", eta = 0.3 } }
    noise = { site = "targets", kind = "label_smoothing", epsilon = 0.1 }

Sites: ``input`` (the features), ``pre`` / ``post`` (a hidden layer's linear output before / after
its activation; ``layers`` picks hidden layers by 0-based index, default all), ``gradients``, and
``targets``. Kinds and their main strength (the one a grid varies): gaussian ``std``, uniform
``half_width``, multiplicative_gaussian ``std``, gaussian_dropout ``rate``, alpha_dropout ``rate``,
impulse ``amount``, snr_gaussian ``snr_db``; for targets of classifiers label_smoothing ``epsilon``
and label_flip ``rate``. Any strength may be a schedule table (``schedule = "annealed"`` etc., with
``per = "step"`` or ``"epoch"``). Formulas are those of :mod:`noisereg.noise` and
:mod:`noisereg.schedules`; this module only validates and imports neither torch nor them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

__all__ = [
    "Strict",
    "FiniteOrInf",
    "NoiseConfig",
    "ScheduleConfig",
    "MAIN_STRENGTH",
    "IDENTITY",
    "check_sites",
    "noise_strength_path",
    "with_value",
]

Site = Literal["input", "pre", "post", "gradients", "targets"]


class Strict(BaseModel):
    """Base of every study-file table: unknown keys are refused with the closest allowed names."""

    # NaN and infinity are refused in every float key (pydantic accepts them by default); the few
    # keys where inf means something (decibels: no noise) say so with FiniteOrInf.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.6) or [
                        a for a in allowed if len(a) > 1 and (a in str(key) or str(key) in a)
                    ][:3]
                    hint = (
                        f"did you mean {' or '.join(repr(c) for c in close)}?"
                        if close
                        else f"allowed: {', '.join(allowed)}"
                    )
                    raise ValueError(f"unknown key {key!r}; {hint}")
        return data


_Strict = Strict


class _Per(_Strict):
    per: Literal["step", "epoch"] = "step"


class ConstantSchedule(_Per):
    schedule: Literal["constant"]
    value: Annotated[float, Field(ge=0)]


class LinearSchedule(_Per):
    schedule: Literal["linear", "cosine"]
    start: Annotated[float, Field(ge=0)]
    end: Annotated[float, Field(ge=0)]
    steps: Annotated[int, Field(ge=1)]
    begin: Annotated[int, Field(ge=0)] = 0


class ExponentialDecaySchedule(_Per):
    schedule: Literal["exponential_decay"]
    init: Annotated[float, Field(ge=0)]
    rate: Annotated[float, Field(gt=0, le=1)]
    decay_steps: Annotated[int, Field(ge=1)] = 1
    staircase: bool = False


class AnnealedSchedule(_Per):
    """Neelakantan et al. 2015: σ_t = √(eta / (1 + t)^gamma)."""

    schedule: Literal["annealed"]
    eta: Annotated[float, Field(ge=0)]
    gamma: Annotated[float, Field(ge=0)] = 0.55


class PiecewiseSchedule(_Per):
    schedule: Literal["piecewise"]
    boundaries: list[Annotated[int, Field(ge=0)]]
    values: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _lengths(self) -> PiecewiseSchedule:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"values needs len(boundaries) + 1 = {len(self.boundaries) + 1} entries")
        if self.boundaries != sorted(set(self.boundaries)):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries}")
        return self


class IntervalSchedule(_Per):
    schedule: Literal["interval"]
    value: Annotated[float, Field(ge=0)]
    on: Annotated[int, Field(ge=1)]
    off: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)] = 0
    off_value: Annotated[float, Field(ge=0)] = 0.0


class WarmUpSchedule(_Per):
    schedule: Literal["warmup"]
    value: Annotated[float, Field(ge=0)]
    delay: Annotated[int, Field(ge=0)]
    ramp: Annotated[int, Field(ge=0)] = 0


ScheduleConfig = Annotated[
    Union[
        ConstantSchedule,
        LinearSchedule,
        ExponentialDecaySchedule,
        AnnealedSchedule,
        PiecewiseSchedule,
        IntervalSchedule,
        WarmUpSchedule,
    ],
    Field(discriminator="schedule"),
]



def _number_or_schedule(value: Any) -> str:
    return "schedule table" if isinstance(value, (Mapping, BaseModel)) else "number"


def _not_nan(value: float) -> float:
    if math.isnan(value):
        raise ValueError("must be a number, got nan")
    return value


FiniteOrInf = Annotated[float, Field(allow_inf_nan=True), AfterValidator(_not_nan)]
"""A float key where ±inf is a value (snr_db = inf is no noise) and NaN is refused."""


def _strength(number: Any) -> Any:
    """A strength: a number with the given constraints, or a schedule table (errors from one only)."""
    return Annotated[
        Union[Annotated[number, Tag("number")], Annotated[ScheduleConfig, Tag("schedule table")]],
        Discriminator(_number_or_schedule),
    ]


NonNegative = _strength(Annotated[float, Field(ge=0, allow_inf_nan=False)])
Rate = _strength(Annotated[float, Field(ge=0, lt=1)])
Probability = _strength(Annotated[float, Field(ge=0, le=1)])
Decibels = _strength(FiniteOrInf)


class _Site(_Strict):
    site: Site
    layers: list[Annotated[int, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _layers_for_hidden(self) -> _Site:
        if self.layers is not None and self.site not in ("pre", "post"):
            raise ValueError(f"layers selects hidden layers: only for site 'pre' or 'post', not {self.site!r}")
        return self


class _Clip(_Site):
    clip: tuple[float, float] | None = None


class GaussianNoise(_Clip):
    kind: Literal["gaussian"]
    std: NonNegative


class UniformNoise(_Clip):
    kind: Literal["uniform"]
    half_width: NonNegative


class MultiplicativeGaussianNoise(_Clip):
    kind: Literal["multiplicative_gaussian"]
    std: NonNegative


class GaussianDropoutNoise(_Clip):
    kind: Literal["gaussian_dropout"]
    rate: Rate


class AlphaDropoutNoise(_Site):
    kind: Literal["alpha_dropout"]
    rate: Rate


class ImpulseNoise(_Site):
    kind: Literal["impulse"]
    amount: Probability
    salt_vs_pepper: Annotated[float, Field(ge=0, le=1)] = 0.5
    low: float = 0.0
    high: float = 1.0


class SNRGaussianNoise(_Clip):
    kind: Literal["snr_gaussian"]
    snr_db: Decibels


class LabelSmoothing(_Site):
    """Soft targets. ``spread = 'all'``: (1−ε)·onehot + ε/K (torch's); ``'others'``: ε spread
    as ε/(K−1) over the wrong classes only."""

    kind: Literal["label_smoothing"]
    epsilon: Probability
    spread: Literal["all", "others"] = "all"


class LabelFlip(_Site):
    """Label noise. ``mode = 'symmetric'``: flip to one of the K−1 other classes with probability
    rate (the realized flip rate is rate); ``'disturb'`` (DisturbLabel): redraw over all K classes."""

    kind: Literal["label_flip"]
    rate: Probability
    mode: Literal["symmetric", "disturb"] = "symmetric"


NoiseConfig = Annotated[
    Union[
        GaussianNoise,
        UniformNoise,
        MultiplicativeGaussianNoise,
        GaussianDropoutNoise,
        AlphaDropoutNoise,
        ImpulseNoise,
        SNRGaussianNoise,
        LabelSmoothing,
        LabelFlip,
    ],
    Field(discriminator="kind"),
]

MAIN_STRENGTH = {
    "gaussian": "std",
    "uniform": "half_width",
    "multiplicative_gaussian": "std",
    "gaussian_dropout": "rate",
    "alpha_dropout": "rate",
    "impulse": "amount",
    "snr_gaussian": "snr_db",
    "label_smoothing": "epsilon",
    "label_flip": "rate",
}
"""The field each kind's grid varies by default; its identity (no noise) is 0, or inf for snr_db."""

_NOISE: TypeAdapter[Any] = TypeAdapter(NoiseConfig)

IDENTITY = {kind: (math.inf if field == "snr_db" else 0.0) for kind, field in MAIN_STRENGTH.items()}

_LABEL_KINDS = ("label_smoothing", "label_flip")


def check_sites(noise: list[Any]) -> None:
    """Refuse label noise away from the targets and a site given twice with the same layers."""
    seen = set()
    for i, n in enumerate(noise):
        if n.kind in _LABEL_KINDS and n.site != "targets":
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
                "write grid = { values = [...], param = \"[1].std\" }"
            )
        return 0, (MAIN_STRENGTH[noise[0].kind],)
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
