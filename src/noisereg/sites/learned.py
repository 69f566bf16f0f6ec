"""Noise whose scale is learned: NoisyNet's factorised NoisyLinear and a PNI-style learnable weight noise.

Both are :class:`~noisereg.layers.NoiseLayer` subclasses: noise in training only (or when
``noise_enabled`` forces it), private seeded streams, an ``applied`` counter, and ``describe`` lists
them. They are modules to swap in: ``model.fc = NoisyLinear.from_linear(model.fc)`` or
``model.conv = PNI(model.conv)``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from noisereg._checks import check_int, check_real
from noisereg.layers import NoiseLayer
from noisereg.noise.additive import Gaussian
from noisereg.noise.base import randn

__all__ = ["NoisyLinear", "PNI"]


def _signed_sqrt(x: Tensor) -> Tensor:
    return x.sign() * x.abs().sqrt()


class NoisyLinear(NoiseLayer):
    """Factorised Gaussian NoisyLinear (Fortunato et al. 2018, "Noisy Networks for Exploration").

    Training: y = (μ_w + σ_w ⊙ ε_w)·x + μ_b + σ_b ⊙ ε_b with ε_w = f(ε_out) ⊗ f(ε_in), ε_b = f(ε_out),
    ε_in ~ N(0, I_p), ε_out ~ N(0, I_q), f(x) = sgn(x)·√|x|. Eval: y = μ_w·x + μ_b (the mean weights).
    Initialisation as in the paper: μ ~ U(−1/√p, 1/√p), σ = σ₀/√p with p = in_features.

    Args:
        sigma0: σ₀ > 0, default 0.5 as in the paper (some libraries use 0.1).
        resample: "forward" (new ε on every training forward, the default) or "manual" (ε held until
            :meth:`reset_noise`, the paper's explicit resampling).
        seed: private noise stream; None uses torch's global generator.

    Raises:
        TypeError, ValueError: a size, ``sigma0``, ``resample`` or ``seed`` out of range, naming it.

    >>> layer = NoisyLinear(3, 2, seed=0)
    >>> x = torch.ones(1, 3)
    >>> bool(torch.equal(layer.eval()(x), layer(x)))  # eval: the mean weights, the same every call
    True
    """

    # Registered as buffers in __init__; declared so that the checker knows them as tensors.
    eps_in: Tensor
    eps_out: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        sigma0: float = 0.5,
        resample: Literal["forward", "manual"] = "forward",
        seed: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(Gaussian(std=1.0), seed=seed)
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            check_int(value, name, low=1)
        check_real(sigma0, "sigma0", low=0.0, low_open=True)
        if resample not in ("forward", "manual"):
            raise ValueError(f"{resample=} must be 'forward' or 'manual'")
        self.in_features, self.out_features = in_features, out_features
        self.sigma0, self.resample = float(sigma0), resample
        factory = {"device": device, "dtype": dtype}
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias_mu = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.bias_sigma = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.register_buffer("eps_in", torch.zeros(in_features, **factory), persistent=False)
        self.register_buffer("eps_out", torch.zeros(out_features, **factory), persistent=False)
        self.reset_parameters()
        self._fresh = False

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        sigma = self.sigma0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for mu, sd in ((self.weight_mu, self.weight_sigma), (self.bias_mu, self.bias_sigma)):
                if mu is not None and sd is not None:  # the bias has both or neither
                    mu.uniform_(-bound, bound)
                    sd.fill_(sigma)

    @torch.no_grad()
    def reset_noise(self) -> None:
        """Draw new factorised noise ε_in, ε_out from the layer's stream."""
        generator = self.generator(self.eps_in.device)
        for buffer in (self.eps_in, self.eps_out):
            draw = randn(buffer.shape, generator, device=buffer.device, dtype=torch.float32)
            buffer.copy_(_signed_sqrt(draw))
        self._fresh = True

    def get_extra_state(self) -> dict[str, object]:
        """The layer's noise state plus the factorised noise it holds (``resample="manual"``)."""
        held = (self.eps_in.clone(), self.eps_out.clone()) if self._fresh else None
        return {**super().get_extra_state(), "held": held}

    def set_extra_state(self, state: object) -> None:
        super().set_extra_state(state)
        # A dict: super().set_extra_state refused anything else.
        held = cast(dict[str, Any], state).get("held")
        self._fresh = held is not None
        if held is not None:
            with torch.no_grad():
                self.eps_in.copy_(held[0])
                self.eps_out.copy_(held[1])

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if not self.active:
            return F.linear(x, self.weight_mu, self.bias_mu)
        self._advance()
        if self.resample == "forward" or not self._fresh:
            self.reset_noise()
        self._count()
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = None if self.bias_mu is None else self.bias_mu + cast(Tensor, self.bias_sigma) * self.eps_out
        return F.linear(x, weight, bias)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        sigma0: float = 0.5,
        seed: int | None = None,
        resample: Literal["forward", "manual"] = "forward",
    ) -> NoisyLinear:
        """A NoisyLinear whose means are ``linear``'s weights (copied) and σ = σ₀/√p."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            sigma0=sigma0,
            resample=resample,
            seed=seed,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            layer.weight_mu.copy_(w)
            if linear.bias is not None:
                cast(nn.Parameter, layer.bias_mu).copy_(linear.bias)
        return layer

    def current_strength(self) -> float:
        """The mean learned σ of the weights."""
        return float(self.weight_sigma.detach().abs().mean())

    def extra_repr(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, sigma0={self.sigma0}, resample={self.resample!r}{seed}"
        )


class PNI(NoiseLayer):
    """Parametric noise injection on a module's weight (He, Rakin & Fan 2019), α learned per layer.

    Training: W̃ = W + α·η, η ~ N(0, std(W)²) elementwise, std(W) the standard deviation of the
    current weight's entries (taken without gradient, so α alone learns the noise scale); the wrapped
    module runs with W̃ and gradients reach both W and α. Eval: the wrapped module as it is.
    The paper also keeps the noise at test time as a defence; here that is the explicit
    ``noise_enabled(model, True)``.

    Args:
        module: any module with a floating parameter ``name`` (Linear, Conv2d, ...).
        alpha: initial α, 0.25 as in the paper.
        seed: private noise stream; None uses torch's global generator.

    Raises:
        TypeError, ValueError: ``module`` has no floating parameter ``name``, or ``alpha``/``seed``
            out of range.

    >>> layer = PNI(nn.Linear(3, 2), seed=0)
    >>> x = torch.ones(1, 3)
    >>> bool(torch.equal(layer.eval()(x), layer.module(x)))
    True
    """

    def __init__(
        self, module: nn.Module, *, name: str = "weight", alpha: float = 0.25, seed: int | None = None
    ) -> None:
        super().__init__(Gaussian(std=1.0), seed=seed)
        weight = getattr(module, name, None) if isinstance(module, nn.Module) else None
        if not isinstance(weight, nn.Parameter) or not weight.is_floating_point():
            got = type(module).__name__
            raise ValueError(f"PNI needs a module with a floating parameter {name=}, got {got}")
        check_real(alpha, "alpha")
        self.module, self.name = module, name
        self.alpha = nn.Parameter(torch.tensor(float(alpha), device=weight.device, dtype=weight.dtype))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return self.module(*args, **kwargs)
        self._advance()
        self._count()
        weight = getattr(self.module, self.name)
        eta = randn(weight.shape, self.generator(weight.device), device=weight.device, dtype=weight.dtype)
        noisy = weight + self.alpha * weight.detach().std() * eta
        return functional_call(self.module, {self.name: noisy}, args, kwargs)

    def current_strength(self) -> float:
        """The learned α."""
        return float(self.alpha.detach())

    def extra_repr(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"name={self.name!r}, alpha={float(self.alpha.detach()):.4g}{seed}"
