"""The ``search`` table of study files: a sampler proposes an arm's strength (and place) within bounds.

::

    [[arms]]
    name = "hidden sigma"
    noise = { at = "activations", where = "before", kind = "gaussian", std = 0.1 }
    search = { sampler = "tpe", trials = 16, low = 0.001, high = 3.0, log = true }

    [selection]
    arm = "hidden sigma"     # required: proposals are ranked by cross-validation

Torch-free and Optuna-free, like the rest of the study file's schema; :mod:`noisereg.study.run.search`
makes the proposals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from noisereg.engine.vocabulary import current_site
from noisereg.study.config.keypaths import message
from noisereg.study.config.noise import (
    PlaceConfig,
    check_sites,
    key_error,
    noise_strength_path,
    place,
    spelled,
    with_value,
)
from noisereg.study.config.strict import Strict

__all__ = ["SearchConfig", "check_search"]


class SearchConfig(Strict):
    """Let Optuna's sampler propose one strength of an arm (and where its noise goes) instead of a grid.

    The arm gets ``trials`` cells, ``arm[trial=1]`` ... ``arm[trial=N]``; each trains like a grid
    cell (every seed, and the CV folds of ``[selection]``, which must name this arm). A cell's
    strength is proposed when a worker takes it, from the cells finished before: the sampler
    minimizes the selection's cross-validated criterion (mean validation loss for ``likelihood``,
    minus mean validation accuracy for ``accuracy``), never a test metric, so that the chosen value's
    test result stays honest. Each cell's proposal is seeded (``derive_seed(seed, "search", arm, i)``):
    one worker proposes the same values on every run and on every resume; several workers propose
    from whatever has finished, so their values depend on timing (cells in training count as bad
    ones, Optuna's "constant liar", so that simultaneous proposals spread out).

    Keys: ``sampler``: ``tpe`` (Optuna's TPESampler; its first ``startup`` proposals are drawn at
    random, default ``max(1, min(10, trials // 3))``) or ``random``. ``trials``: how many cells
    (1–1000). ``low`` < ``high``: bounds of the strength, both valid values of it. ``log``: sample
    on a log scale (needs ``low > 0``). ``param``: the strength's path inside ``noise``, as for grids
    (default: the main strength of the arm's single site). ``places``: also propose where the arm's
    single noise table goes, among these tables of ``at`` (``input`` or ``activations``) and
    ``where``, e.g. ``places = [{ at = "input" }, { at = "activations", where = "before" }]``. The
    earlier spelling ``sites = ["input", "before", "after"]`` is read as these places, with a
    ``DeprecationWarning``.
    """

    sampler: Literal["tpe", "random"] = "tpe"
    trials: Annotated[int, Field(ge=1, le=1000)]
    low: Annotated[float, Field(allow_inf_nan=False)]
    high: Annotated[float, Field(allow_inf_nan=False)]
    log: bool = False
    param: str | None = None
    places: Annotated[list[PlaceConfig], Field(min_length=1)] | None = None
    startup: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_sites(cls, data: Any) -> Any:
        # silent: parse_config warns with the key path
        if isinstance(data, Mapping) and "sites" in data:
            data = dict(data)
            sites = data.pop("sites")
            if "places" in data:
                raise key_error("sites", "write places, not sites as well: sites is the earlier spelling")
            if not isinstance(sites, list):
                raise key_error("sites", f"must be a list of 'input', 'before', 'after' (write places), got {sites!r}")
            for j, site in enumerate(sites):
                if current_site(site) not in ("input", "before", "after"):
                    raise key_error(("sites", j), f"must be one of 'input', 'before', 'after', got {site!r}")
            data["places"] = [place(s) for s in sites]
        return data

    @model_validator(mode="after")
    def _bounds(self) -> SearchConfig:
        if not self.low < self.high:
            raise ValueError(f"low={self.low} must be < high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log = true needs low > 0, got low={self.low}")
        if self.places is not None:
            for i, where in enumerate(self.places):
                if where.at not in ("input", "activations"):
                    raise ValueError(
                        f"places[{i}]: a search moves noise between input and activations, not {where.at!r}"
                    )
            if len(set(self.sites or ())) != len(self.places):
                raise ValueError(
                    f"places must be distinct, got {[p.model_dump(exclude_none=True) for p in self.places]}"
                )
        return self

    @property
    def sites(self) -> list[str] | None:
        """The engine's names of ``places`` (``input``, ``before``, ``after``), what the sampler proposes."""
        return None if self.places is None else [p.site for p in self.places]

    @property
    def n_startup(self) -> int:
        """How many proposals are drawn at random before TPE models the finished cells."""
        return self.startup if self.startup is not None else max(1, min(10, self.trials // 3))

    def noise_at(self, noise: list[Any], value: float, site: str | None = None) -> list[Any]:
        """``noise`` with the searched strength set to ``value`` and, if ``site`` is given, its single
        table moved there; validated again (raises ``ValueError``, pydantic's for a bad value)."""
        if site is not None:
            table = noise[0]
            noise = [type(table).model_validate({**table.model_dump(), "where": None, **place(site)})]
            check_sites(noise)
        return with_value(noise, self.param, value)


def check_search(noise: list[Any], search: SearchConfig, has_grid: bool) -> None:
    """Raise ``ValueError`` unless ``search`` fits an arm with this ``noise``: a strength to vary,
    both bounds valid for it at every site searched."""
    if has_grid:
        raise ValueError("an arm has a grid or a search, not both")
    if not noise:
        raise ValueError("search needs noise to vary: this arm has no 'noise'")
    if search.places is not None and len(noise) != 1:
        raise ValueError(f"search.places moves the arm's single noise table; this arm has {len(noise)}")
    noise_strength_path(noise, search.param)
    field = search.param or noise_strength_path(noise, None)[1][0]
    sites: list[str | None] = list(search.sites) if search.sites else [None]
    for site in sites:
        for bound in ("low", "high"):
            try:
                search.noise_at(noise, getattr(search, bound), site)
            except ValidationError as exc:
                where = f" with {spelled(site)}" if site else ""
                raise ValueError(f"search.{bound} sets {field}{where}: {message(exc.errors()[0])}") from None
