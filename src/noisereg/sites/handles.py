"""What :func:`noisereg.attach` returns: handles that take the noise off exactly, and the site-specific
extras (an attention mask for input/activation/embedding noise, resampling for weight noise, a callable
for target noise).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

from torch import Tensor, nn

from noisereg.layers import NoiseLayer, registry
from noisereg.sites.mixing import MixingLayer
from noisereg.sites.placement import MaskSource, Placement, run_beside

__all__ = ["Handle", "MaskedHandle", "TargetsHandle", "WeightsHandle"]


class Handle:
    """What :func:`attach` returns: the noise it placed, and :meth:`remove` to take it off exactly.

    Also a context manager: ``with attach(...):`` removes the noise at the end of the block. Made by
    :func:`attach` only; ``removed`` says whether :meth:`remove` ran.

    Args:
        site: the site's name (``"input"``, ``"activations"``, ...), kept as ``handle.site``.
        placements: the noise placed, one :class:`~noisereg.sites.placement.Placement` per place, undone
            in reverse order by :meth:`remove`.
        cleanup: further hooks (anything with a ``remove()``) that :meth:`remove` takes off after the
            placements.

    >>> from noisereg.noise import Gaussian
    >>> model = nn.Linear(2, 2)
    >>> with attach(model, Gaussian(std=0.1), at="weights", seed=0) as handle:
    ...     handle.places
    ["weight 'weight'"]
    >>> handle.removed
    True
    """

    def __init__(self, site: str, placements: list[Placement], cleanup: list[Any]) -> None:
        self.site = site
        self._placements = placements
        self._cleanup = cleanup
        self.removed = False

    @property
    def places(self) -> list[str]:
        """Where the noise sits, one entry per place (e.g. ``"after '0'"``, ``"weight '0.weight'"``)."""
        return [p.where for p in self._placements]

    @property
    def layers(self) -> list[NoiseLayer]:
        """The noise layers placed (their ``applied`` counters, ``step``, ``reseed``)."""
        return [p.layer for p in self._placements]

    def state_dict(self) -> dict[str, Any]:
        """The noise state of every place, for a checkpoint beside the model's and optimizer's.

        Per place: the schedule step, the ``applied`` count, the seed, the position of its streams and,
        for weight noise, the noise it holds. The model's own ``state_dict()`` never holds it (attached
        noise leaves it clean), so save this too to resume the noise rather than replay it:
        ``torch.save({"model": model.state_dict(), "noise": handle.state_dict()}, path)``.
        """
        return {"site": self.site, "places": [{"where": p.where, "state": p.noise_state()} for p in self._placements]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the noise from :meth:`state_dict` of a handle placed the same way (same site, places).

        Raises ValueError when the checkpoint holds another site or other places (e.g. a checkpoint
        made before this noise was attached has none: it cannot resume it).
        """
        if self.removed:
            raise ValueError(f"this handle's {self.site} noise was removed: nothing to load into")
        if not isinstance(state, dict) or "site" not in state or "places" not in state:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a handle's state_dict() with 'site' and 'places', got {got}")
        saved = [entry["where"] for entry in state["places"]]
        if state["site"] != self.site or saved != self.places:
            raise ValueError(
                f"the state holds {state['site']} noise at {saved}, this handle {self.site} noise at "
                f"{self.places}: load the state saved from a handle attached the same way"
            )
        for placement, entry in zip(self._placements, state["places"], strict=True):
            placement.load_noise_state(entry["state"])

    def remove(self) -> None:
        """Take the noise off: hooks, parametrizations and registrations go; the model is as before.

        Raises ValueError when called a second time.
        """
        if self.removed:
            places = ", ".join(self.places)
            raise ValueError(f"this handle's {self.site} noise ({places}) was already removed")
        for placement in reversed(self._placements):
            placement.undo()
            registry.forget_place(placement.layer)
        for item in self._cleanup:
            item.remove()
        self.removed = True

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.removed:
            self.remove()

    def __repr__(self) -> str:
        state = "removed" if self.removed else ", ".join(self.places)
        return f"{type(self).__name__}(at={self.site!r}: {state})"


class MaskedHandle(Handle):
    """Handle of input, activation and embedding noise: also registers an attention mask."""

    def __init__(self, site: str, placements: list[Placement], masks: MaskSource) -> None:
        super().__init__(site, placements, [masks])
        self._masks = masks

    @contextlib.contextmanager
    def attention_mask(self, mask: Tensor) -> Iterator[None]:
        """Within the block, positions where ``mask`` is 0/False (padding) take no noise."""
        with self._masks.use(mask):
            yield


class WeightsHandle(Handle):
    """Handle of weight noise: also :meth:`resample`."""

    def resample(self) -> None:
        """Draw new weight noise at the next training use of each weight (``resample="manual"``)."""
        if self.removed:
            raise ValueError("this handle's weight noise was removed: nothing to resample")
        for placement in self._placements:
            # Every weight placement is made with a refresh (sites/weights.py).
            cast(Callable[[], None], placement.refresh)()


class TargetsHandle(Handle):
    """Handle of target noise: call it on the targets, ``y = handle(y)``, or ``x, y = handle(x, y)``
    for mixup and CutMix. Noise is applied while the model is in training mode."""

    def __init__(self, site: str, placements: list[Placement], root: nn.Module) -> None:
        super().__init__(site, placements, [])
        self._root = weakref.ref(root)

    def __call__(self, *tensors: Tensor) -> Any:
        if self.removed:
            raise ValueError("this target noise handle was removed")
        root = self._root()
        layer = self._placements[0].layer
        expected = 2 if isinstance(layer, MixingLayer) else 1
        if len(tensors) != expected:
            shape = "handle(x, y)" if expected == 2 else "handle(y)"
            name = type(layer.kind).__name__
            raise TypeError(f"call this {name} handle as {shape}, got {len(tensors)} tensors")
        # The placement holds the root as its host, so the weak reference is alive while the handle is.
        return run_beside(layer, cast(nn.Module, root), *tensors)
