"""The base of every study-file table: frozen, and unknown keys refused with the closest allowed names."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = ["Strict", "FiniteOrInf"]


def _not_nan(value: float) -> float:
    if math.isnan(value):
        raise ValueError("must be a number, got nan")
    return value


FiniteOrInf = Annotated[float, Field(allow_inf_nan=True), AfterValidator(_not_nan)]
"""A float key where ±inf is a value (snr_db = inf is no noise) and NaN is refused."""


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
                    close = (
                        difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.6)
                        or [a for a in allowed if len(a) > 1 and (a in str(key) or str(key) in a)][:3]
                    )
                    hint = (
                        f"did you mean {' or '.join(repr(c) for c in close)}?"
                        if close
                        else f"allowed: {', '.join(allowed)}"
                    )
                    raise ValueError(f"unknown key {key!r}; {hint}")
        return data
