"""``strip(model)``: the model with every noise taken off, ready for ``torch.export`` and ONNX.

What goes, in this order:

- noise placed by :func:`~noisereg.sites.attach` (hooks, weight parametrizations, optimizer hooks,
  target noise), through its handle, also when the handle itself was dropped;
- the clock :func:`~noisereg.bind_clock` gave the model;
- noise layers that are modules of the model, each replaced by what it computes in eval mode:
  a generic :class:`~noisereg.NoiseLayer` (``GaussianNoise``, ``GaussianDropout``, ...) by
  ``nn.Identity``, :class:`~noisereg.sites.NoisyLinear` by an ``nn.Linear`` holding its mean weights,
  :class:`~noisereg.sites.PNI` by the module it wraps, a noisy hard activation by its expectation
  (the eval-mode formula, with the learned slope p).

The stripped model computes in training and in eval mode exactly what the noisy model computes in
eval mode, and contains no random operation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from noisereg.layers import NoiseLayer, noise_layers, unbind_clock
from noisereg.sites.learned import PNI, NoisyLinear
from noisereg.sites.noisy_activations import _NoisyHard, noisy_hard_activation
from noisereg.sites.selectors import unwrap

__all__ = ["strip", "random_ops"]


class HardActivationMean(nn.Module):
    """A noisy hard activation's eval-mode output: φ(x) with ξ replaced by E[ξ], the slope p kept."""

    def __init__(self, layer: _NoisyHard) -> None:
        super().__init__()
        resolved = layer.kind.resolved(layer.step)
        self.c = float(resolved.pop("c"))
        self.options = resolved
        self.p = layer.p

    def forward(self, x: Tensor) -> Tensor:
        return noisy_hard_activation(x, self.c, p=self.p, expected=True, **self.options)

    def extra_repr(self) -> str:
        return f"c={self.c}, " + ", ".join(f"{k}={v!r}" for k, v in self.options.items())


def _mean_linear(layer: NoisyLinear) -> nn.Linear:
    w = layer.weight_mu
    linear = nn.Linear(layer.in_features, layer.out_features, layer.bias_mu is not None, device=w.device, dtype=w.dtype)
    linear.weight = layer.weight_mu
    if layer.bias_mu is not None:
        linear.bias = layer.bias_mu
    return linear


def _clean(layer: NoiseLayer) -> nn.Module:
    if isinstance(layer, NoisyLinear):
        return _mean_linear(layer)
    if isinstance(layer, PNI):
        return layer.module
    if isinstance(layer, _NoisyHard):
        return HardActivationMean(layer)
    return nn.Identity()


def strip(model: nn.Module) -> nn.Module:
    """Take every noise off ``model`` in place and return it (see the module docstring).

    Parameters are kept as the same objects (NoisyLinear's μ become the Linear's weight and bias),
    so an optimizer over them still works; handles of the removed noise report ``removed``.
    A model without noise is returned unchanged. DDP and ``torch.compile`` wrappers are looked
    through; the wrapper is returned.

    >>> from noisereg.layers import GaussianNoise
    >>> net = nn.Sequential(GaussianNoise(0.1), nn.Linear(2, 1))
    >>> [type(m).__name__ for m in strip(net)]
    ['Identity', 'Linear']

    Raises TypeError when ``model`` is not an ``nn.Module``, ValueError when it is itself a noise layer.

    Args:
        model: any ``nn.Module``.

    Returns:
        ``model`` itself, without noise.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    root = unwrap(model)
    if isinstance(root, NoiseLayer):
        raise ValueError(f"the model itself is a noise layer ({type(root).__name__}): strip the model that holds it")
    for layer in noise_layers(root):
        handle = getattr(layer, "_attach_handle", None)
        if handle is not None and not handle.removed:
            handle.remove()
    unbind_clock(root)
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, NoiseLayer):
                setattr(parent, name, _clean(child))
    return model


# aten operations that draw random numbers. Not torch's ``nondeterministic_seeded`` tag: it also marks
# aten.lstm/gru, which draw only with inter-layer dropout in training.
_RANDOM = frozenset(
    {
        "rand",
        "rand_like",
        "randn",
        "randn_like",
        "randint",
        "randint_like",
        "randperm",
        "uniform",
        "uniform_",
        "normal",
        "normal_",
        "bernoulli",
        "bernoulli_",
        "poisson",
        "multinomial",
        "exponential_",
        "geometric_",
        "cauchy_",
        "log_normal_",
        "random_",
        "native_dropout",
        "dropout",
        "feature_dropout",
        "alpha_dropout",
        "feature_alpha_dropout",
        "rrelu",
        "rrelu_with_noise",
    }
)


def random_ops(graph: torch.fx.Graph) -> list[str]:
    """The random operations among a traced graph's nodes (``torch.export(...).graph``, FX graphs).

    >>> from noisereg.layers import GaussianNoise
    >>> model = strip(nn.Sequential(GaussianNoise(0.1), nn.Linear(2, 1)))
    >>> random_ops(torch.export.export(model, (torch.zeros(1, 2),)).graph)
    []

    Args:
        graph: an FX graph (``torch.fx.Graph``, or an exported program's ``.graph``).

    Returns:
        The targets of its random calls (``aten.randn.default`` and the like), empty for a clean model.
    """
    found = []
    for node in graph.nodes:
        packet = getattr(node.target, "overloadpacket", None)
        name = getattr(packet, "__name__", None)
        if node.op == "call_function" and name in _RANDOM:
            found.append(str(node.target))
    return found
