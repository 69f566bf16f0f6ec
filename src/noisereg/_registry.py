"""The one record of noise state kept outside a model's modules, every entry held weakly.

Noise that :func:`noisereg.attach` places beside a module (hooks) is no child of the model, yet
``noise_enabled``, ``bind_clock``, ``describe``, ``strip`` and ``seed_per_rank`` must find it without
the user's model being changed; so must the clock a model was given and the clean parameter order that
weight noise restores. :class:`NoiseRegistry` holds these four maps, each keyed weakly, so an entry
goes away with the module or layer it describes and the registry never keeps a model alive.
The package has one instance, :data:`noisereg.layers.registry`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from torch import nn
from torch.utils.hooks import RemovableHandle

from noisereg.schedules import Clock

__all__ = ["PlaceInfo", "NoiseRegistry"]

LayerT = TypeVar("LayerT", bound=nn.Module)


@dataclasses.dataclass(frozen=True)
class PlaceInfo:
    """What ``attach`` records about a placed noise, holding the model only weakly.

    ``site`` and ``where`` name the place for people; ``position``, ``anchor`` (the module, parameter
    or optimizer) and ``extra`` identify it, so that attaching twice at one place is caught; ``host``
    is the module whose train/eval mode switches the noise (None: on whenever it is called).
    """

    site: str
    where: str
    position: str
    anchor: weakref.ref
    extra: tuple[Any, ...]
    host: weakref.ref | None

    @classmethod
    def of(cls, site: str, where: str, key: tuple[Any, ...], host: nn.Module | None) -> PlaceInfo:
        """The record of a place whose key is ``(position, anchor, *extra)``."""
        position, anchor, *extra = key
        return cls(
            site, where, position, weakref.ref(anchor), tuple(extra), None if host is None else weakref.ref(host)
        )


class NoiseRegistry(Generic[LayerT]):
    """Noise beside modules, models' clocks, placed noise and clean parameter orders, keyed weakly.

    >>> registry: NoiseRegistry[nn.Module] = NoiseRegistry()
    >>> host, noise = nn.Linear(2, 2), nn.Identity()
    >>> registry.add_beside(host, noise)
    >>> registry.beside(host) == (noise,)
    True
    >>> registry.remove_beside(host, noise)
    >>> registry.beside(host)
    ()
    """

    def __init__(self) -> None:
        self._beside: weakref.WeakKeyDictionary[nn.Module, list[LayerT]] = weakref.WeakKeyDictionary()
        self._clocks: weakref.WeakKeyDictionary[nn.Module, tuple[Clock, RemovableHandle]] = weakref.WeakKeyDictionary()
        self._places: weakref.WeakKeyDictionary[LayerT, PlaceInfo] = weakref.WeakKeyDictionary()
        self._clean_orders: weakref.WeakKeyDictionary[nn.Module, tuple[list[str], list[str]]] = (
            weakref.WeakKeyDictionary()
        )

    def beside(self, module: nn.Module) -> tuple[LayerT, ...]:
        """The noise layers run beside ``module`` by hooks, in the order they were added."""
        return tuple(self._beside.get(module, ()))

    def add_beside(self, module: nn.Module, layer: LayerT) -> None:
        """Record ``layer`` as noise run beside ``module``."""
        self._beside.setdefault(module, []).append(layer)

    def remove_beside(self, module: nn.Module, layer: LayerT) -> None:
        """Forget ``layer`` beside ``module``; a module left with none is dropped from the map."""
        entries = self._beside.get(module, [])
        if layer in entries:
            entries.remove(layer)
        if not entries and module in self._beside:
            del self._beside[module]

    def clock(self, model: nn.Module) -> Clock | None:
        """The clock bound to ``model``, None if it has none."""
        entry = self._clocks.get(model)
        return None if entry is None else entry[0]

    def bind_clock(self, model: nn.Module, clock: Clock, hook: RemovableHandle) -> None:
        """Record ``clock`` as ``model``'s, advanced by ``hook``; the previous clock's hook is removed."""
        self.unbind_clock(model)
        self._clocks[model] = (clock, hook)

    def unbind_clock(self, model: nn.Module) -> None:
        """Remove the hook of ``model``'s clock and forget the clock (nothing if it has none)."""
        if model in self._clocks:
            self._clocks.pop(model)[1].remove()

    def place(self, layer: LayerT) -> PlaceInfo | None:
        """What ``attach`` recorded about ``layer``, None for a layer it did not place."""
        return self._places.get(layer)

    def places(self) -> list[PlaceInfo]:
        """The records of every noise placed and not yet removed."""
        return list(self._places.values())

    def record_place(self, layer: LayerT, info: PlaceInfo) -> None:
        """Record where ``layer`` was placed."""
        self._places[layer] = info

    def forget_place(self, layer: LayerT) -> None:
        """Forget where ``layer`` was placed (nothing if it was not recorded)."""
        self._places.pop(layer, None)

    def clean_order(
        self, owner: nn.Module, read: Callable[[nn.Module], tuple[list[str], list[str]]]
    ) -> tuple[list[str], list[str]]:
        """``owner``'s clean (parameter names, state-dict keys), taken with ``read`` on the first call."""
        if owner not in self._clean_orders:
            self._clean_orders[owner] = read(owner)
        return self._clean_orders[owner]

    def forget_clean_order(self, owner: nn.Module) -> None:
        """Forget ``owner``'s clean order (its last weight noise is gone)."""
        self._clean_orders.pop(owner, None)
