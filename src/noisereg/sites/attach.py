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

from typing import Any, Literal, cast

import torch
from torch import nn

from noisereg._registry import PlaceInfo
from noisereg.layers import NoiseLayer, registry
from noisereg.noise.base import NoiseKind
from noisereg.seeding import check_seed
from noisereg.sites.activations import Where, place_activations, place_input
from noisereg.sites.embeddings import place_embeddings
from noisereg.sites.gradients import place_gradients
from noisereg.sites.handles import Handle, MaskedHandle, TargetsHandle, WeightsHandle
from noisereg.sites.mixing import MixingKind, MixingLayer
from noisereg.sites.noisytune import NoisyTune, place_noisytune
from noisereg.sites.placement import MaskSource, Placement, stream_seed
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
