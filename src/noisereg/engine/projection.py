"""Post-activation Gaussian noise on the last hidden layer, sampled through its projection.

With one output unit w, the noise h̃ = h + σε (ε ~ N(0, I_H) per sample) reaches the training step
only through two quantities: the outputs z_b = w·h̃_b + c, which need u_b = w·ε_b ~ N(0, ‖w‖²), and the
output weights' gradient Σ_b dz_b h̃_b, which needs s = Σ_b dz_b ε_b. (The hidden layers' gradients
do not see additive noise.) Given u, ε_b = ŵ·u_b/‖w‖ + (I − ŵŵᵀ)η_b with η_b ~ N(0, I) independent, so

    u_b = ‖w‖·ξ_b,   s = ŵ·(Σ_b dz_b ξ_b) + ‖dz‖·(ζ − ŵ(ŵ·ζ)),   ξ ~ N(0, I_B), ζ ~ N(0, I_H),

which has exactly the joint distribution of the direct sampling: a different sampling of the same
noise ("local reparameterization", Kingma et al. 2015), with B + H draws per replica and step instead
of B·H. Opt-in with ``SiteNoise(..., sampling="projected")``; the draws (ξ in the forward pass, then
ζ in the backward pass) come from the site's own stream, so results differ from ``"exact"`` sampling
draw by draw while agreeing in distribution.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from noisereg.engine.injection import SiteStream

__all__ = ["ProjectedPostNoise", "projected_noise_gradient"]


def projected_noise_gradient(w: Tensor, dz: Tensor, xi: Tensor, zeta: Tensor) -> Tensor:
    """s = ŵ·(dz·ξ) + ‖dz‖·(ζ − ŵ(ŵ·ζ)) for stacks w [R, 1, H], dz and ξ [R, 1, B], ζ [R, 1, H].

    Where w = 0, ŵ is taken as 0 (u carries no information and s = ‖dz‖·ζ).
    """
    # dot products as batched matmuls: they round each replica alike whatever the stack's size
    norm = torch.bmm(w, w.transpose(1, 2)).sqrt_()
    w_hat = torch.where(norm > 0, w / norm.clamp_min(torch.finfo(w.dtype).tiny), torch.zeros_like(w))
    along = torch.bmm(dz, xi.transpose(1, 2))
    dz_norm = torch.bmm(dz, dz.transpose(1, 2)).sqrt_()
    return w_hat * along + dz_norm * (zeta - w_hat * torch.bmm(w_hat, zeta.transpose(1, 2)))


class ProjectedPostNoise:
    """One projected site on the last hidden layer of a stack (see the module doc)."""

    def __init__(self, stream: SiteStream) -> None:
        if stream.form != "additive":
            raise ValueError(f"{stream.name}: projected sampling needs Gaussian noise without clip")
        self.stream = stream
        self._saved: tuple[Tensor, Tensor, int, int] | None = None

    def forward(self, zT: Tensor, w_out: Tensor, *, step: int, epoch: int) -> Tensor:
        """Add σ·‖w‖·ξ to the outputs zᵀ [R, 1, B] (in place)."""
        sigma, xi = self.stream.unit_normals(zT, step=step, epoch=epoch, slot="projected-xi")
        if xi is None:
            self._saved = None
            return zT
        self._saved = (sigma, xi.clone(), step, epoch)
        return zT.addcmul_(xi, sigma * torch.bmm(w_out, w_out.transpose(1, 2)).sqrt_())

    def backward(self, g_w: Tensor, dzT: Tensor, w_out: Tensor) -> None:
        """Add σ·s to the output weights' gradient g_w [R, 1, H] (in place)."""
        if self._saved is None:
            return
        sigma, xi, step, epoch = self._saved
        _, zeta = self.stream.unit_normals(g_w, step=step, epoch=epoch, slot="projected-zeta")
        # the same step drew ξ in forward, so some replica has σ > 0 and ζ is drawn
        g_w.addcmul_(projected_noise_gradient(w_out, dzT, xi, cast(Tensor, zeta)), sigma)
        self._saved = None
