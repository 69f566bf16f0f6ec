"""The ``[optimizer]`` table of a study file (built-in models and the user's own alike)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from noisereg.study.config.strict import Strict

__all__ = ["OptimizerConfig"]


class OptimizerConfig(Strict):
    """SGD (with ``momentum``, and ``nesterov`` momentum if asked), Adam or AdamW; ``clip_grad_norm`` clips each replica's gradient norm
    before every update, gradient noise included (the noise is added, then the sum is clipped; for
    built-in models and your own alike); ``sam_rho`` > 0 makes every step SAM's (two gradients, the
    second at w + ρ·g/‖g‖; built-in models only).

    The keys, defaults and ranges are those of :class:`noisereg.engine.OptimSpec`, which the bridge
    builds from them one to one (``tests/study/test_bridge.py`` keeps the two the same schema).
    """

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: Annotated[float, Field(gt=0)] = 1e-3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None
    sam_rho: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _momentum_is_sgd(self) -> OptimizerConfig:
        if self.momentum and self.name != "sgd":
            raise ValueError(f"momentum is for name = 'sgd'; {self.name!r} uses betas")
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov = true needs name = 'sgd' and a momentum > 0")
        return self
