"""NoisyTune (Wu et al., ACL 2022): perturb a pretrained model's weights once, before fine-tuning.

For each parameter tensor W (every weight matrix, bias and normalization vector, as the paper's code
does), W ← W + (U − ½)·λ·std(W), U ~ U(0, 1) elementwise: uniform noise in [−λ/2, λ/2] scaled by
W's own standard deviation (``torch.std``, the unbiased estimate), so that each tensor is perturbed
in proportion to the spread of its values. The paper uses λ = 0.15.

This is a one-shot operation on the model, not a noise site: :func:`noisereg.attach`'s noise is drawn
in training only and comes off cleanly, while NoisyTune changes the starting point of fine-tuning for
good (evaluation of the fine-tuned model sees the weights that started from the perturbed ones). So it
is a function, :func:`noisytune`, called once between loading the pretrained weights and building the
optimizer.
"""

from __future__ import annotations

import torch
from torch import nn

from noisereg._checks import check_real, check_type
from noisereg.seeding import check_seed, derive_seed

__all__ = ["noisytune"]


def noisytune(model: nn.Module, lam: float = 0.15, *, seed: int) -> list[str]:
    """Perturb every floating-point parameter of ``model`` in place, once (NoisyTune).

    W ← W + (u − ½)·λ·std(W) with u ~ U(0, 1) drawn elementwise, for each parameter W with at least
    two elements (the standard deviation of one number is undefined: such a parameter is left alone).

    Each parameter's noise comes from its own ``torch.Generator`` (CPU, float32 or W's dtype if wider)
    seeded by :func:`noisereg.seeding.derive_seed` ``(seed, "noisytune", name)`` with ``name`` its name
    in ``model.named_parameters()``: the same seed perturbs the same parameter the same way whatever
    else the model holds, and the global RNG is not touched.

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
            u = torch.rand(weight.shape, generator=generator, dtype=dtype)
            scale = lam * weight.detach().to(dtype).std()
            weight.add_(((u - 0.5) * scale.cpu()).to(device=weight.device, dtype=weight.dtype))
            done.append(name)
    return done
