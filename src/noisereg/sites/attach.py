"""One entry point to put noise on a model users already have, a handle to take it off, and describe.

>>> import torch
>>> from torch import nn
>>> from noisereg.noise import Gaussian
>>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
>>> handle = attach(model, Gaussian(std=0.1), at="activations", select=nn.ReLU, seed=0)
>>> _ = model(torch.zeros(4, 2))
>>> handle.layers[0].applied
1
>>> handle.remove()
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from noisereg._registry import PlaceInfo
from noisereg.layers import NoiseLayer, registry
from noisereg.noise.base import NoiseKind
from noisereg.seeding import check_seed
from noisereg.sites.activations import Where, place_activations, place_input
from noisereg.sites.embeddings import place_embeddings
from noisereg.sites.gradients import place_gradients
from noisereg.sites.mixing import MixingKind, MixingLayer
from noisereg.sites.noisytune import NoisyTune, place_noisytune
from noisereg.sites.placement import MaskSource, Placement, run_beside, stream_seed
from noisereg.sites.recurrent import place_state
from noisereg.sites.selectors import Selector, unwrap
from noisereg.sites.targets import DisturbLabel, LabelFlip, LabelSmoothing
from noisereg.sites.weights import Increments, Resample, place_weights

__all__ = ["attach", "Handle", "MaskedHandle", "WeightsHandle", "TargetsHandle"]

At = Literal["input", "activations", "embeddings", "weights", "gradients", "targets"]

_LABEL_KINDS = (LabelSmoothing, LabelFlip, DisturbLabel)
_DEFAULTS: dict[str, Any] = {
    "select": None,
    "where": "after",
    "arg": 0,
    "mask": None,
    "biases": False,
    "resample": "step",
    "increments": "none",
    "optimizer": None,
    "scale_by_lr": False,
    "packed": False,
}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "input": ("select", "arg", "mask"),
    "activations": ("select", "where", "mask"),
    "embeddings": ("select", "mask", "packed"),
    "weights": ("select", "biases", "resample", "increments"),
    "gradients": ("select", "optimizer", "scale_by_lr"),
    "targets": (),
}


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


def _check_kind(noise: object, at: str) -> None:
    if not isinstance(noise, NoiseKind):
        raise TypeError(
            f"noise must be a noise config such as noisereg.noise.Gaussian(std=0.1), got {type(noise).__name__}"
        )
    name = type(noise).__name__
    if isinstance(noise, (MixingKind, *_LABEL_KINDS)) and at != "targets":
        raise ValueError(f"{name} is target noise: use at='targets' (got {at=})")


def _check_options(at: str, given: dict[str, Any]) -> None:
    if at not in _OPTIONS:
        raise ValueError(f"{at=} must be one of {tuple(_OPTIONS)}")
    for option, value in given.items():
        default = _DEFAULTS[option]
        if option not in _OPTIONS[at] and (value is not default and value != default):
            sites = [s for s, opts in _OPTIONS.items() if option in opts]
            raise ValueError(f"{option}={value!r} does not apply to {at=} (it is an option of at={sites})")
    if at == "gradients" and given["optimizer"] is None:
        raise ValueError("at='gradients' needs optimizer=: the torch.optim optimizer that trains the model")


def _check_free(placements: list[Placement], stack: bool, at: str) -> None:
    if stack:
        return
    for placement in placements:
        position, target, *extra = placement.key
        for info in registry.places():
            if info.position == position and info.anchor() is target and info.extra == tuple(extra):
                raise ValueError(
                    f"{at} noise is already attached {info.where} (at={info.site!r}); remove that handle "
                    "first, or pass stack=True to add this noise on top of it"
                )


def attach(
    model: nn.Module,
    noise: NoiseKind,
    at: At,
    *,
    select: Selector | None = None,
    where: Where = "after",
    arg: int | str = 0,
    mask: str | None = None,
    biases: bool = False,
    resample: Resample = "step",
    increments: Increments = "none",
    optimizer: torch.optim.Optimizer | None = None,
    scale_by_lr: bool = False,
    packed: bool = False,
    seed: int | None = None,
    stack: bool = False,
) -> Handle:
    """Put ``noise`` at one site of ``model``, unchanged otherwise; returns a :class:`Handle`.

    Noise is on in training mode only (``model.eval()`` gives exactly the clean model) unless
    :func:`noisereg.noise_enabled` forces it. DDP and ``torch.compile`` wrappers are unwrapped first,
    and names are those of the unwrapped model.

    Args:
        model: the network; changed only by the noise put on it.
        noise: a config from :mod:`noisereg.noise` (any strength may be a schedule).
        at: the site.

            - ``"input"``: the model's input (argument ``arg`` of its forward), or the input of the
              modules ``select`` names. Integer inputs (token ids) are refused: use ``"embeddings"``.
            - ``"activations"``: the output or input (``where``) of the modules ``select`` names.
              LSTM/GRU outputs take noise on the output sequence.
            - ``"embeddings"``: the output of the token embedding (``get_input_embeddings()`` of a
              transformers model, else every ``nn.Embedding``; or ``select``), never on padding;
              ``NEFTune(alpha)`` is the usual noise.
            - ``"weights"``: W̃ = noise(W) on the parameters ``select`` names (default: every
              ``weight*``). Gradients are taken at W̃ and applied to W; ``state_dict()`` stays clean.
            - ``"gradients"``: g̃ = noise(g) before each ``optimizer.step()``; see
              :func:`noisereg.sites.annealed_gaussian`.
            - ``"targets"``: label or target noise and mixing; call the returned handle on the targets.
        select: which modules or parameters: a qualified-name glob (``"layers.*.fc1"``), a type
            (``nn.ReLU``) or the module object itself (``model.encoder.layer[0]``); None for the
            site's default.
        where: ``"after"`` (the output) or ``"before"`` (the input) of the selected modules, or
            ``"state"``: the hidden state h_t of the selected ``nn.RNN``/``nn.GRU``/``nn.LSTM`` layers
            (default: all of them) at every time step, inside the recurrence (noisy RNN, Lim et al.
            2021; see :mod:`noisereg.sites.recurrent`); for ``"activations"``.
        arg: the forward argument that takes input noise, by position or name; for ``"input"``.
        mask: the forward argument holding an attention mask (1 = real token) that marks padding;
            for ``"embeddings"`` (padding also comes from ``padding_idx`` or
            ``handle.attention_mask(m)``).
        biases: also put weight noise on biases; for ``"weights"``.
        resample: when weight noise is redrawn: ``"step"``, ``"forward"`` or ``"manual"``; for
            ``"weights"``.
        increments: ``"none"`` (default: W̃ = noise(W) in the forward only), or the noise goes into the
            stored weights before each training forward: ``"independent"`` W ← W + ξ_t (perturbed
            gradient descent), ``"anticorrelated"`` W ← W + ξ_t − ξ_{t−1} (Anti-PGD, Orvieto et al.
            2022), ξ_t = noise(W) − W; for ``"weights"`` (see :mod:`noisereg.sites.weights`).
        optimizer: the optimizer whose ``step()`` takes gradient noise; for ``"gradients"``.
        scale_by_lr: multiply the gradient perturbation by the learning rate; for ``"gradients"``.
        packed: read packed rows' documents from the forward's ``cu_seq_lens_q`` or ``position_ids``
            (restarting at 0), so that NEFTune scales by each document's length; for ``"embeddings"``.
        seed: int >= 0 gives each place its own stream, ``derive_seed(seed, site, place)``; None uses
            torch's global generator.
        stack: allow noise at a place that already has noise from ``attach``.

    Returns:
        A :class:`Handle`: ``places`` names where the noise went, ``remove()`` takes it off exactly,
        ``state_dict()``/``load_state_dict()`` carry its noise state in a checkpoint.

    Raises:
        ValueError: a selector that matches nothing (with close names), an option that does not apply
            to the site, a place that already has noise from ``attach`` (unless ``stack=True``), weight
            noise on a non-float or tied parameter. TypeError: a noise that is not a noise config.

    >>> from noisereg.noise import Gaussian
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> handle = attach(model, Gaussian(std=0.1), at="activations", select="1", seed=0)
    >>> handle.places
    ["after '1'"]
    >>> handle.remove()
    """
    root = unwrap(model)
    _check_kind(noise, at)
    given = {
        "select": select,
        "where": where,
        "arg": arg,
        "mask": mask,
        "biases": biases,
        "resample": resample,
        "increments": increments,
        "optimizer": optimizer,
        "scale_by_lr": scale_by_lr,
        "packed": packed,
    }
    _check_options(at, given)
    if seed is not None:
        check_seed(seed)
    if packed is not False and (packed is not True or "documents" not in noise._function_params()):
        raise ValueError(
            f"packed={packed!r} must be True or False, and True needs a noise that scales by document "
            f"length (NEFTune), got {type(noise).__name__}"
        )
    if at in ("input", "activations", "embeddings"):
        masks = MaskSource(root, mask, packed=packed)
        try:
            if at == "input":
                placements = place_input(root, noise, select=select, arg=arg, seed=seed, masks=masks)
            elif at == "activations" and where == "state":
                if mask is not None:
                    raise ValueError(f"mask={mask!r} does not apply to where='state' (a recurrence runs every step)")
                placements = place_state(root, noise, select=select, seed=seed)
            elif at == "activations":
                placements = place_activations(root, noise, select=select, where=where, seed=seed, masks=masks)
            else:
                placements = place_embeddings(root, noise, select=select, seed=seed, masks=masks)
        except Exception:
            masks.remove()
            raise
        handle: Handle = MaskedHandle(at, placements, masks)
    elif at == "weights" and isinstance(noise, NoisyTune):
        if select is not None or biases or resample != "step":
            raise ValueError("NoisyTune perturbs every parameter once: it takes no select, biases or resample")
        handle = Handle(at, place_noisytune(root, noise, seed=seed), [])
    elif at == "weights":
        handle = WeightsHandle(
            at,
            place_weights(
                root, noise, select=select, biases=biases, resample=resample, seed=seed, increments=increments
            ),
            [],
        )
    elif at == "gradients":
        # _check_options refused optimizer=None for this site.
        handle = Handle(
            at,
            place_gradients(
                root,
                noise,
                optimizer=cast(torch.optim.Optimizer, optimizer),
                select=select,
                scale_by_lr=scale_by_lr,
                seed=seed,
            ),
            [],
        )
    else:
        handle = TargetsHandle(at, _place_targets(root, noise, seed), root)
    try:
        _check_free(handle._placements, stack, at)
    except ValueError:
        handle.remove()
        raise
    for p in handle._placements:
        registry.record_place(p.layer, PlaceInfo.of(p.site, p.where, p.key, p.host))
        # The layer keeps its handle alive (a reference cycle, not a global one), so that
        # noisereg.strip can take the noise off after the user dropped the handle.
        p.layer._attach_handle = handle
    return handle


def _place_targets(root: nn.Module, noise: NoiseKind, seed: int | None) -> list[Placement]:
    layer_seed = stream_seed(seed, "targets", type(noise).__name__)
    layer = MixingLayer(noise, seed=layer_seed) if isinstance(noise, MixingKind) else NoiseLayer(noise, seed=layer_seed)
    registry.add_beside(root, layer)
    undo = lambda: registry.remove_beside(root, layer)  # noqa: E731
    return [
        Placement("targets", f"targets ({type(noise).__name__})", ("targets", root, type(noise)), layer, root, undo)
    ]
