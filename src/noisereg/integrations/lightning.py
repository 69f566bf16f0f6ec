"""Noise in a Lightning ``Trainer``: :class:`NoiseCallback` (``pip install "noisereg[lightning]"``).

>>> from noisereg.noise import Gaussian
>>> callback = NoiseCallback(Attach(Gaussian(std=0.1), at="activations", select=nn.ReLU), seed=0)

- ``setup`` (fit only) attaches each :class:`~noisereg.integrations.Attach` to the LightningModule;
  gradient noise waits for ``on_fit_start``, when the trainer's optimizer exists.
- Every schedule reads ``trainer.global_step`` (one :class:`~noisereg.Clock` with ``auto=False``,
  set before each training batch), so a resumed fit continues the schedules where it stopped.
- Noise is on in training batches only: Lightning's validation, test and predict loops run the model
  in eval mode, where noisereg's noise is exactly off.
- ``teardown`` (also ``on_exception``, so an interrupted or early-stopped fit leaves nothing behind)
  removes what it attached; checkpoints hold the clean weights (weight noise keeps ``state_dict``
  clean).
- The callback's ``state_dict`` holds each attach handle's ``state_dict()`` (every place's schedule
  step, counters, stream position and, for weight noise, the noise it holds: the one definition of
  noise state, :meth:`noisereg.sites.handles.Handle.state_dict`), per rank under DDP, so a fit resumed
  from a checkpoint draws the same noise as an uninterrupted one.
- Each strength is logged per step under :func:`~noisereg.integrations.spec.metric_name`, e.g.
  ``noise/activations_after_net.1`` (plain characters, which every logger accepts).
- A place whose noise no training batch of an epoch reached gives an
  :class:`~noisereg.integrations.spec.UnusedNoiseWarning` naming it and the likely cause; the classic
  one is input noise (a hook on the LightningModule's own forward) with a ``training_step`` that
  calls ``self.model(x)`` rather than ``self(x)``.

Under DDP, ``setup`` runs after the process group exists, so each rank draws from its own stream
(``derive_seed(seed, site, place, "rank", rank)``), except gradient noise: it lands on the gradients
DDP has averaged, so it is one stream on every rank and the replicas stay identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from noisereg._checks import check_type
from noisereg._optional import require
from noisereg.integrations.spec import Attach, applied, metric_name, warn_unused
from noisereg.layers import NoiseLayer, bind_clock, unbind_clock
from noisereg.schedules import Clock
from noisereg.seeding import check_seed
from noisereg.sites.attach import Handle
from noisereg.sites.describe import describe

if TYPE_CHECKING:
    import lightning.pytorch as pl
else:
    pl = require("lightning.pytorch", "lightning")

__all__ = ["NoiseCallback"]

# Why a place drew nothing in a whole epoch of training, by site, as a Lightning user would meet it.
_CAUSES = {
    "input": (
        "input noise sits on the LightningModule's own forward, and training_step called a submodule "
        "(e.g. self.model(x)) rather than self(x); call self(x), or attach at='activations', "
        "select=<that submodule>, where='before'"
    ),
    "activations": "the selected module did not run in training_step's forwards",
    "embeddings": "the selected embedding did not run in training_step's forwards",
    "weights": "no forward in training_step used this parameter",
    "gradients": "no optimizer step ran (manual optimization without optimizer.step(), or every step skipped)",
    "targets": "target noise acts only where training_step calls the handle on the targets",
}


def _rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class NoiseCallback(pl.Callback):
    """Attach noise for ``Trainer.fit`` and take it off afterwards (see the module docstring).

    Args:
        *noises: one :class:`~noisereg.integrations.Attach` per site, at least one.
        seed: int >= 0; each place draws from ``derive_seed(seed, site, place)`` (and the rank).
        log: log each strength per step to the trainer's logger (default True).

    Raises TypeError for anything but ``Attach`` items, ValueError for none; at ``setup``, what
    ``noisereg.attach`` raises, and ValueError for gradient noise with several optimizers.
    """

    def __init__(self, *noises: Attach, seed: int = 0, log: bool = True) -> None:
        if not noises:
            raise ValueError("NoiseCallback needs at least one Attach(noise, at=...)")
        for item in noises:
            if not isinstance(item, Attach):
                raise TypeError(
                    f"each noise must be noisereg.integrations.Attach(noise, at=...), got {type(item).__name__}"
                )
        check_type(log, "log", bool, "True or False")
        self.noises = noises
        self.seed = check_seed(seed)
        self.log = log
        self.clock = Clock(auto=False)
        self.handles: list[Handle] = []
        self._model: nn.Module | None = None
        self._pending: list[dict[str, Any]] | None = None
        self._mark: dict[int, int] = {}
        self._batches = 0

    @property
    def layers(self) -> list[NoiseLayer]:
        """The noise layers attached now, in the order of the ``Attach`` items."""
        return [layer for handle in self.handles for layer in handle.layers]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self.handles:
            raise ValueError("NoiseCallback is already attached: one callback serves one fit at a time")
        self._model = pl_module
        try:
            for item in self.noises:
                if item.at != "gradients":
                    self.handles.append(item.apply(pl_module, seed=self.seed))
        except Exception:
            self._remove()
            raise
        self._bind()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        gradient = [item for item in self.noises if item.at == "gradients"]
        if not gradient:
            return
        if len(trainer.optimizers) != 1:
            raise ValueError(f"gradient noise needs exactly one optimizer, the trainer has {len(trainer.optimizers)}")
        optimizer = trainer.optimizers[0]
        try:
            for item in gradient:
                self.handles.append(item.apply(pl_module, seed=self.seed, optimizer=optimizer))
        except Exception:
            self._remove()
            raise
        self._bind()

    def _bind(self) -> None:
        # setup sets the model before any handle exists, and _bind runs only after a handle is added
        bind_clock(cast(nn.Module, self._model), self.clock)
        # gradient noise is attached at on_fit_start, after Lightning restores callbacks: wait for all
        if self._pending is not None and len(self._pending) == len(self.handles):
            for handle, state in zip(self.handles, self._pending, strict=True):
                handle.load_state_dict(state)
            self._pending = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark, self._batches = applied(self.handles), 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.clock.step = trainer.global_step
        self._batches += 1
        if not self.log:
            return
        for entry in describe(pl_module):
            if isinstance(entry.strength, float):
                name = metric_name(entry.site, entry.where)
                pl_module.log(name, entry.strength, on_step=True, on_epoch=False, batch_size=1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._batches:
            warn_unused(self.handles, self._mark, _CAUSES)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._remove()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._remove()

    def _remove(self) -> None:
        for handle in reversed(self.handles):
            if not handle.removed:
                handle.remove()
        self.handles = []
        if self._model is not None:
            unbind_clock(self._model)
            self._model = None

    def state_dict(self) -> dict[str, Any]:
        """Every attach handle's ``state_dict()``, one list per rank."""
        mine = [handle.state_dict() for handle in self.handles]
        rank, world = _rank_and_world()
        ranks: list[Any] = [mine]
        if world > 1:
            ranks = [None] * world
            torch.distributed.all_gather_object(ranks, mine)
        return {"seed": self.seed, "ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the streams saved by :meth:`state_dict` (now, or when the noise is attached).

        Raises ValueError for a checkpoint of another seed or another number of ranks.
        """
        rank, world = _rank_and_world()
        ranks = state_dict["ranks"]
        if state_dict["seed"] != self.seed:
            raise ValueError(
                f"the checkpoint's noise was drawn with seed={state_dict['seed']}, this callback has "
                f"seed={self.seed}: resume with the same seed"
            )
        if len(ranks) != world:
            raise ValueError(f"the checkpoint holds noise streams of {len(ranks)} ranks, this run has {world}")
        self._pending = ranks[rank]
        if self.handles:
            self._bind()
