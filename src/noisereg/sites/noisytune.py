"""NoisyTune (Wu et al., ACL 2022): perturb a pretrained model's weights once, before fine-tuning.

For each parameter tensor W (every weight matrix, bias and normalization vector, as the paper's code
does), W ← W + (U − ½)·λ·std(W), U ~ U(0, 1) elementwise: uniform noise in [−λ/2, λ/2] scaled by
W's own standard deviation (``torch.std``, the unbiased estimate), so that each tensor is perturbed
in proportion to the spread of its values. The paper uses λ = 0.15.

This is a one-shot operation on the model, not a noise site: :func:`noisereg.attach`'s noise is drawn
in training only and comes off cleanly, while NoisyTune changes the starting point of fine-tuning for
good (evaluation of the fine-tuned model sees the weights that started from the perturbed ones). So it
is a function, :func:`noisytune`, called once between loading the pretrained weights and building the
optimizer. Where the library trains the model (a study of one's own model, ``run_model``),
``attach(model, NoisyTune(lam=0.15), at="weights", seed=s)`` does the same through a hook: the
parameters are perturbed once, just before the model's first forward in training mode, and stay so;
removing the handle removes the hook, not the perturbation (the model has been fine-tuned from the
perturbed weights by then). A model attached and removed without a training forward is unchanged.
The tensor formula itself is :func:`noisytune_tensor`, the kind's pure function.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from noisereg._checks import check_real, check_type
from noisereg.layers import NoiseLayer, registry
from noisereg.noise.base import NoiseKind, check_generator, check_input, check_strength, is_identity, rand_like
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator, check_seed, derive_seed
from noisereg.sites.placement import Placement

__all__ = ["noisytune", "noisytune_tensor", "NoisyTune", "place_noisytune"]


def noisytune_tensor(x: Tensor, lam: float | Tensor, *, generator: NoiseGenerator | None = None) -> Tensor:
    """One tensor perturbed as NoisyTune does: x̃ = x + (u − ½)·λ·std(x), u ~ U(0, 1) elementwise.

    ``std(x)`` is ``torch.std`` of all of x's elements (unbiased); a tensor of fewer than two elements
    is returned unchanged (its standard deviation is undefined).

    Args:
        x: a floating-point tensor (a weight). lam: λ >= 0. generator: a noisereg Stream (CPU) or a
            torch.Generator on x's device; None: torch's global one.

    >>> noisytune_tensor(torch.ones(3), 0.5).tolist()  # std 0: nothing moves
    [1.0, 1.0, 1.0]
    """
    check_input(x, kind="noisytune")
    lam = check_strength(lam, name="lam", x=x)
    generator = check_generator(generator, x)
    if is_identity(lam, 0.0) or x.numel() < 2:
        return x
    u = rand_like(x, generator)
    return x + (u - 0.5) * (lam * x.detach().to(u.dtype).std()).to(u.dtype)


def noisytune(model: nn.Module, lam: float = 0.15, *, seed: int) -> list[str]:
    """Perturb every floating-point parameter of ``model`` in place, once (NoisyTune).

    W ← W + (u − ½)·λ·std(W) with u ~ U(0, 1) drawn elementwise (:func:`noisytune_tensor`), for each
    parameter W with at least two elements (the standard deviation of one number is undefined: such
    a parameter is left alone).

    Each parameter's noise comes from its own ``torch.Generator`` (on the CPU, drawing in W's dtype,
    float32 at least) seeded by :func:`noisereg.seeding.derive_seed` ``(seed, "noisytune", name)``
    with ``name`` its name in ``model.named_parameters()``: the same seed perturbs the same parameter
    the same way whatever else the model holds and whatever device it is on, and the global RNG is
    not touched.

    Args:
        model: the pretrained model (or the part of it to perturb).
        lam: λ >= 0, the relative noise intensity (0.15 in the paper); 0 leaves the model untouched.
        seed: seeds the noise; an int in [0, 2**64 − 1].

    Returns:
        The names of the parameters perturbed, in ``named_parameters()`` order.

    Raises:
        TypeError: ``model`` is no ``nn.Module``; ``lam`` or ``seed`` of the wrong type.
        ValueError: ``lam`` negative, NaN or infinite; ``seed`` out of range.

    >>> layer = nn.Linear(3, 2)
    >>> noisytune(layer, 0.15, seed=0)
    ['weight', 'bias']
    """
    check_type(model, "model", nn.Module, "an nn.Module (the pretrained model)")
    lam = check_real(lam, "lam", low=0.0)
    seed = check_seed(seed)
    done: list[str] = []
    if lam == 0.0:
        return done
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if not weight.is_floating_point() or weight.numel() < 2:
                continue
            dtype = torch.promote_types(weight.dtype, torch.float32)
            generator = torch.Generator().manual_seed(derive_seed(seed, "noisytune", name))
            new = noisytune_tensor(weight.detach().to("cpu", dtype), lam, generator=generator)
            weight.copy_(new.to(device=weight.device, dtype=weight.dtype))
            done.append(name)
    return done


@dataclasses.dataclass(frozen=True)
class NoisyTune(NoiseKind, kind="noisytune"):
    """Config of NoisyTune: ``NoisyTune(lam=0.15)``, for ``attach(model, NoisyTune(...), at="weights")``
    (once, before the first training forward; see the module docstring) or :func:`noisytune_tensor`.

    >>> NoisyTune(lam=0.0)(torch.arange(4.0)).tolist()
    [0.0, 1.0, 2.0, 3.0]
    """

    lam: float | Schedule | Tensor = 0.15

    function = staticmethod(noisytune_tensor)
    one_shot = True  # the engine trains it per replica: a perturbation of the model, not noise per step


def place_noisytune(root: nn.Module, kind: NoisyTune, *, seed: int | None) -> list[Placement]:
    """A forward pre-hook on ``root`` that runs :func:`noisytune` once, at the first forward in
    training mode; with ``seed=None`` its seed is drawn then from torch's global generator."""
    lam = kind.lam
    if not isinstance(lam, (int, float)):
        raise TypeError(f"NoisyTune(lam={lam!r}) at='weights' takes a number: it is applied once")
    layer = NoiseLayer(kind, seed=seed)

    def hook(module: nn.Module, args: Any) -> None:
        # applied counts the perturbation: a checkpoint restores it, so a resumed run does not redo it
        layer.training = module.training
        if layer.active and layer.applied == 0:
            chosen = seed if seed is not None else int(torch.randint(0, 2**62, ()))
            noisytune(root, float(lam), seed=derive_seed(chosen, "weights"))
            layer.applied += 1

    handle = root.register_forward_pre_hook(hook)
    registry.add_beside(root, layer)

    def undo() -> None:
        handle.remove()
        registry.remove_beside(root, layer)

    return [Placement("weights", "all parameters, once (NoisyTune)", ("noisytune", root), layer, root, undo)]
