"""The study-file keys of a sequential study: ``seeds = { max = 30, step = 5 }`` and ``[selection] racing``.

``seeds`` is either a number (every cell trains that many seeds: a fixed study) or a table
(:class:`SeedRounds`): seeds are trained in rounds of ``step``, and after each round every comparison
with the baseline that an anytime-valid confidence sequence has decided stops
(:mod:`noisereg.study.sequential`). What is checked here, with the key path the user wrote: the
table's keys, and the settings a sequential study cannot be combined with (a nested selection, a
search, the robustness suite, which measures every seed of every cell after training).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from noisereg.study.config.strict import Strict

__all__ = ["SeedRounds", "Seeds", "check_rounds", "max_seeds"]

SEEDS_MAX = 10_000


class SeedRounds(Strict):
    """Seeds in rounds. ``max``: the most seeds any cell trains (a fixed study's ``seeds``);
    ``step``: seeds per round (the first round trains ``step`` seeds of every cell); ``alpha``
    (default 0.05): the error rate of all the study's decisions on the test set together, split
    evenly over the comparisons (Bonferroni), each kept at every look; ``margin`` (optional, in the
    metric's units): a comparison whose confidence sequence lies inside (−margin, margin) stops as
    ``equivalent`` (without it, a comparison that shows no difference runs to ``max``)."""

    max: Annotated[int, Field(ge=2, le=SEEDS_MAX)]
    step: Annotated[int, Field(ge=1, le=SEEDS_MAX)]
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    margin: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _step_below_max(self) -> SeedRounds:
        if self.step >= self.max:
            raise ValueError(f"step={self.step} must be below max={self.max}: one round would be a fixed study")
        return self

    @property
    def looks(self) -> list[int]:
        """The seed counts after each round: step, 2·step, ..., max."""
        return [*range(self.step, self.max, self.step), self.max]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # TOML true is not a number of seeds
        raise ValueError(f"must be a number of seeds or a table {{ max = ..., step = ... }}, got {value!r}")
    return value


def _kind(value: Any) -> str:
    return "rounds" if isinstance(value, Mapping | SeedRounds) else "count"


Seeds = Annotated[
    Annotated[Annotated[int, Field(ge=1, le=SEEDS_MAX, strict=True)], Tag("count")]
    | Annotated[SeedRounds, Tag("rounds")],
    Discriminator(_kind),
    BeforeValidator(_not_bool),
]
"""The type of the study's ``seeds`` key."""


def max_seeds(seeds: Any) -> Any:
    """The most seeds a cell trains: ``seeds`` itself, or its ``max`` (also of a stored table)."""
    if isinstance(seeds, SeedRounds):
        return seeds.max
    return seeds.get("max") if isinstance(seeds, Mapping) else seeds


def check_rounds(config: Any) -> None:
    """Refuse what a sequential study (or ``selection.racing``) cannot do, naming the key
    (``config``: a :class:`~noisereg.study.config.StudyConfig` being validated)."""
    rounds = config.seeds if isinstance(config.seeds, SeedRounds) else None
    sel = config.selection
    if sel is not None and sel.racing and rounds is None:
        raise ValueError("selection.racing stops grid values between rounds: give seeds = { max = ..., step = ... }")
    if rounds is None:
        return
    if sel is not None and sel.nested:
        raise ValueError("seeds = { max, step } with selection.nested: a nested selection trains every seed at once")
    for i, arm in enumerate(config.arms):
        if arm.search is not None:
            raise ValueError(f"arms[{i}].search with seeds = {{ max, step }}: a search proposes its cells one by one")
    if config.robustness.enabled:
        raise ValueError(
            "robustness.enabled = true with seeds = { max, step }: the suite measures every seed of every cell; "
            "leave robustness.enabled out (a sequential study does not run it) or use a fixed number of seeds"
        )
