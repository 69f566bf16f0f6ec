"""R replicas of one MLP as stacked parameters, with a hand-written batched forward and backward.

Layout (chosen by measurement on CPU, see ``benchmarks/study_speed.py``): all parameters of all
replicas live in one flat buffer, so an optimizer step is a few elementwise ops over it. Inside it,
each parameter is a contiguous ``[R, ...]`` block:

- hidden layer l: weight ``[R, in, out]`` (transposed from torch's ``[out, in]``, so the forward
  ``h @ W`` and the gradient ``hᵀ @ δ`` are batched matmuls in their fast orientation); layer 0 keeps
  its bias as an extra last input row (the batch carries a column of ones), which saves a pass;
- the output layer: weight ``[R, out, in]`` (torch's layout) and bias ``[R, out, 1]``; outputs are
  computed transposed, ``zᵀ = W @ hᵀ`` of shape ``[R, out, B]``, which for a narrow output is an
  order of magnitude faster than ``h @ Wᵀ``.

Torch's view of the same numbers (``nn.Sequential(Linear, act, ..., Linear)`` state-dict order) is
given by :meth:`StackedMLP.torch_views`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisereg.engine.injection import HiddenStream
from noisereg.engine.losses import output_grad, per_replica
from noisereg.engine.projection import ProjectedPostNoise
from noisereg.engine.specs import MLPSpec
from noisereg.noise.multiplicative import SELU_ALPHA, SELU_SCALE
from noisereg.seeding import derive_seed, make_generator

__all__ = ["StackedMLP", "build_module", "initial_state_dict"]

ACTIVATION_MODULES = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,  # torch's default slope, 0.01
    "softplus": nn.Softplus,  # torch's defaults: beta 1, threshold 20
    "identity": nn.Identity,
}
# per hidden layer: the noise streams before and after its activation
HiddenNoise = Sequence[tuple[Sequence[HiddenStream], Sequence[HiddenStream]]]
# d output / d input of a hidden layer's noise and activation: a tensor (closed form), the autograd
# leaf and output to differentiate (tuple), or None where it is 1
Local = Tensor | tuple[Tensor, Tensor] | None


def build_module(spec: MLPSpec) -> nn.Sequential:
    """The plain ``nn.Sequential(Linear, act, ..., Linear)`` of ``spec`` (float32, torch's init)."""
    sizes = spec.layer_sizes
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATION_MODULES[spec.activation]())
    return nn.Sequential(*layers)


def initial_state_dict(spec: MLPSpec, seed: int) -> dict[str, Tensor]:
    """The initial weights of the replica with root ``seed``, as a float32 state dict of
    :func:`build_module` (keys ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...).

    Drawn from the stream ``derive_seed(seed, "init")``, layer by layer, weight before bias, with
    ``torch.nn.init`` and the rules of :class:`MLPSpec`. The engine starts every replica from these
    weights (cast to its dtype).
    """
    generator = make_generator(derive_seed(seed, "init"))
    sizes = spec.layer_sizes
    state: dict[str, Tensor] = {}
    for i in range(len(sizes) - 1):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        weight, bias = torch.empty(fan_out, fan_in), torch.zeros(fan_out)
        if spec.init == "default":
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5.0), generator=generator)
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(bias, -bound, bound, generator=generator)
        elif spec.init == "he":
            nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
        elif spec.init == "glorot":
            nn.init.xavier_uniform_(weight, generator=generator)
        else:
            nn.init.normal_(weight, 0.0, spec.init_std, generator=generator)
        state[f"{2 * i}.weight"], state[f"{2 * i}.bias"] = weight, bias
    return state


def _activate(name: str, pre: Tensor, deriv: Tensor) -> tuple[Tensor, Tensor | None]:
    """act(pre) computed in place, and act'(pre) written into ``deriv`` (None for identity)."""
    if name == "relu":
        a = pre.relu_()
        return a, torch.sign(a, out=deriv)
    if name == "tanh":
        a = pre.tanh_()
        return a, torch.mul(a, a, out=deriv).neg_().add_(1.0)
    if name == "sigmoid":
        a = pre.copy_(per_replica(torch.sigmoid, pre))
        return a, torch.mul(a, a, out=deriv).neg_().add_(a)
    if name == "gelu":
        cdf = torch.special.ndtr(pre)
        deriv.copy_(pre).square_().mul_(-0.5).exp_().mul_(pre).mul_(1.0 / math.sqrt(2.0 * math.pi)).add_(cdf)
        return pre.mul_(cdf), deriv
    if name == "elu":
        torch.clamp(pre, max=0.0, out=deriv).exp_()
        return pre.copy_(per_replica(F.elu, pre)), deriv
    if name == "selu":
        torch.clamp(pre, max=0.0, out=deriv).exp_().mul_(SELU_SCALE * SELU_ALPHA).masked_fill_(pre > 0, SELU_SCALE)
        return pre.copy_(per_replica(F.selu, pre)), deriv
    if name == "silu":  # x·σ(x); σ(x)·(1 + x·(1 − σ(x))), torch's backward
        s = per_replica(torch.sigmoid, pre)
        torch.neg(s, out=deriv).add_(1.0).mul_(pre).add_(1.0).mul_(s)
        return pre.copy_(per_replica(F.silu, pre)), deriv
    if name == "leaky_relu":  # slope 0.01 below 0, also at 0 (torch's backward takes x > 0)
        deriv.fill_(0.01).masked_fill_(pre > 0, 1.0)
        return F.leaky_relu(pre, inplace=True), deriv
    if name == "softplus":  # e^x / (e^x + 1) up to x = 20, then 1: torch's backward (beta 1, threshold 20)
        torch.clamp(pre, max=20.0, out=deriv).exp_()
        deriv.div_(deriv + 1.0).masked_fill_(pre > 20.0, 1.0)
        return pre.copy_(per_replica(F.softplus, pre)), deriv
    return pre, None


def _activate_autograd(name: str, pre: Tensor) -> Tensor:
    if name in ("identity", "relu"):
        return pre if name == "identity" else F.relu(pre)
    return per_replica(getattr(F, name), pre)


class StackedMLP:
    """Parameters of R replicas of one MLP in one flat buffer, and their batched forward/backward.

    ``forward_train`` puts the replicas' noise on the way (streams before and after each hidden layer's
    activation) and keeps what ``backward`` needs; ``backward`` writes the mean-loss gradient into a flat
    buffer laid out like ``params``.
    """

    def __init__(self, spec: MLPSpec, replicas: int, *, device: torch.device | str, dtype: torch.dtype) -> None:
        self.spec, self.replicas, self.device, self.dtype = spec, replicas, torch.device(device), dtype
        sizes = spec.layer_sizes
        self.n_layers = len(sizes) - 1
        self.augmented = self.n_layers > 1
        self._blocks: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
        for i in range(self.n_layers):
            fan_in, fan_out = sizes[i], sizes[i + 1]
            if i == self.n_layers - 1:
                self._blocks.append(((replicas, fan_out, fan_in), (replicas, fan_out, 1)))
            elif i == 0:
                self._blocks.append(((replicas, fan_in + 1, fan_out), None))
            else:
                self._blocks.append(((replicas, fan_in, fan_out), (replicas, 1, fan_out)))
        self.numel = sum(math.prod(w) + (math.prod(b) if b else 0) for w, b in self._blocks)
        # The buffer is padded to whole vector blocks (the padding stays 0): elementwise kernels then
        # never fall back to their scalar tail, which may round differently (see losses.per_replica),
        # so an optimizer step rounds each replica alike whatever the stack's size.
        self.params = torch.zeros(self.numel + -self.numel % 64, device=self.device, dtype=dtype)
        self.param_views = self.views(self.params)
        self._buffers: dict[object, Tensor] = {}
        # x, then (local, h) per hidden layer: even positions hold the layers' inputs (tensors)
        self._saved: list[Tensor | Local] = []
        self.projected: list[ProjectedPostNoise] = []
        self._grad_views: tuple[Tensor, list[tuple[Tensor, Tensor | None]]] | None = None

    # ---- layout -------------------------------------------------------------------------------
    def views(self, flat: Tensor) -> list[tuple[Tensor, Tensor | None]]:
        """(weight, bias) views of each layer into a flat buffer laid out like ``params``."""
        out, offset = [], 0
        for w_shape, b_shape in self._blocks:
            w = flat[offset : offset + math.prod(w_shape)].view(w_shape)
            offset += w.numel()
            b = None
            if b_shape is not None:
                b = flat[offset : offset + math.prod(b_shape)].view(b_shape)
                offset += b.numel()
            out.append((w, b))
        return out

    def torch_views(self, flat: Tensor) -> list[Tensor]:
        """Views [R, ...] of ``flat`` in torch's layout and state-dict order (weight, bias per layer)."""
        out = []
        for i, (w, b) in enumerate(self.views(flat)):
            # only layer 0 of a deeper network keeps its bias inside w; every other layer has a bias block
            if i == self.n_layers - 1:
                out += [w, cast(Tensor, b)[..., 0]]
            elif i == 0:
                out += [w[:, :-1].transpose(1, 2), w[:, -1]]
            else:
                out += [w.transpose(1, 2), cast(Tensor, b)[:, 0]]
        return out

    def state_keys(self) -> list[str]:
        return [f"{2 * i}.{name}" for i in range(self.n_layers) for name in ("weight", "bias")]

    def torch_index(self) -> Tensor:
        """[R, P]: position in ``params`` of each replica's parameters in torch (state-dict) order."""
        positions = torch.arange(self.params.numel(), device=self.device)
        return torch.cat([v.reshape(self.replicas, -1) for v in self.torch_views(positions)], dim=1)

    def blocks(self, flat: Tensor) -> list[Tensor]:
        """Per-parameter [R, k] views of a flat buffer laid out like ``params``."""
        return [t.reshape(self.replicas, -1) for w, b in self.views(flat) for t in (w, b) if t is not None]

    def load_state(self, states: Sequence[dict[str, Tensor]]) -> None:
        """Set replica r's weights from ``states[r]`` (a state dict of :func:`build_module`)."""
        for key, view in zip(self.state_keys(), self.torch_views(self.params), strict=True):
            view.copy_(torch.stack([s[key] for s in states]))

    def export_state(self) -> dict[str, Tensor]:
        """Stacked copies [R, ...] of the weights in torch's layout, keyed like a state dict."""
        return {k: v.clone() for k, v in zip(self.state_keys(), self.torch_views(self.params), strict=True)}

    def _buffer(self, key: object, shape: tuple[int, ...]) -> Tensor:
        buffer = self._buffers.get(key)
        if buffer is None or buffer.shape != shape:
            buffer = torch.empty(shape, device=self.device, dtype=self.dtype)
            self._buffers[key] = buffer
        return buffer

    def _ones(self, n: int) -> Tensor:
        """Ones [R, 1, n]."""
        ones = self._buffers.get("ones")
        if ones is None or ones.shape[-1] != n:
            ones = torch.ones(self.replicas, 1, n, device=self.device, dtype=self.dtype)
            self._buffers["ones"] = ones
        return ones

    # ---- forward and backward ------------------------------------------------------------------
    def augment(self, x: Tensor) -> Tensor:
        """The network's input for data [R, n, in]: with a column of ones when layer 0 carries its bias."""
        if not self.augmented:
            return x
        return torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], dim=-1)

    def input_view(self, x: Tensor) -> Tensor:
        """The data columns of a network input (without the column of ones)."""
        return x[..., : self.spec.in_features]

    def compute_grads(
        self, loss: str, x: Tensor, q: Tensor, hidden_noise: HiddenNoise, *, step: int, epoch: int, grads: Tensor
    ) -> Tensor:
        """Forward with noise, then write d(mean loss)/d params into ``grads``; return the outputs zᵀ."""
        zT = self.forward_train(x, hidden_noise, step=step, epoch=epoch)
        self.backward(output_grad(loss, zT, q), grads)
        return zT

    def _linear(self, i: int, h: Tensor, out: Tensor | None = None) -> Tensor:
        w, b = self.param_views[i]
        if i == 0 and self.augmented:
            return torch.bmm(h, w, out=out)
        # every layer but an augmented layer 0 has a bias block (see __init__)
        bias = cast(Tensor, b)
        if i == self.n_layers - 1:
            return torch.baddbmm(bias, w, h.transpose(1, 2), out=out)
        return torch.baddbmm(bias, h, w, out=out)

    def forward_eval(self, x: Tensor, rows: int | None = None) -> Tensor:
        """Outputs zᵀ [R, out, n] without noise, for network input ``x`` [R, n, in(+1)].

        With ``rows``, samples go through in blocks of that many, in reused buffers: the hidden
        activations of a whole evaluation set would push the training step's buffers out of cache.
        """
        if rows is None or rows >= x.shape[1]:
            return self._forward_clean(x, None)
        rows = math.ceil(x.shape[1] / math.ceil(x.shape[1] / rows))  # equal blocks, one buffer
        blocks = [self._forward_clean(x[:, a : a + rows], "eval") for a in range(0, x.shape[1], rows)]
        return torch.cat(blocks, dim=-1)

    def _forward_clean(self, x: Tensor, key: object) -> Tensor:
        h = x
        for i in range(self.n_layers - 1):
            out = None if key is None else self._buffer((key, i, x.shape[1]), h.shape[:2] + (self.spec.widths[i],))
            pre = self._linear(i, h, out=out)
            h = pre.relu_() if self.spec.activation == "relu" else _activate_autograd(self.spec.activation, pre)
        return self._linear(self.n_layers - 1, h)

    def forward_train(self, x: Tensor, hidden_noise: HiddenNoise, *, step: int, epoch: int) -> Tensor:
        """Outputs zᵀ [R, out, B] of a training batch, with noise before and after each hidden activation."""
        self._saved = [x]
        h = x
        for i in range(self.n_layers - 1):
            pre = self._linear(i, h, out=self._buffer(("linear", i), h.shape[:2] + (self.spec.widths[i],)))
            before_streams, after_streams = hidden_noise[i]
            streams = list(before_streams) + list(after_streams)
            local: Local
            if all(s.closed_form for s in streams):
                h, local = self._hidden_closed_form(i, pre, before_streams, after_streams, step, epoch)
            else:
                h, local = self._hidden_autograd(i, pre, before_streams, after_streams, step, epoch)
            self._saved += [local, h]
        zT = self._linear(self.n_layers - 1, h)
        for site in self.projected:
            zT = site.forward(zT, self.param_views[-1][0], step=step, epoch=epoch)
        return zT

    def _hidden_closed_form(
        self,
        i: int,
        pre: Tensor,
        before_streams: Sequence[HiddenStream],
        after_streams: Sequence[HiddenStream],
        step: int,
        epoch: int,
    ) -> tuple[Tensor, Tensor | None]:
        """Noise, activation, noise; returns the output and d output / d pre (None when it is 1)."""
        drawn: list[Tensor | None] = []
        for stream in before_streams:
            pre, m = stream.apply(pre, step=step, epoch=epoch, slot=("before", i))
            drawn.append(m)
        a, deriv = _activate(self.spec.activation, pre, self._buffer(("deriv", i), pre.shape))
        for stream in after_streams:
            a, m = stream.apply(a, step=step, epoch=epoch, slot=("after", i))
            drawn.append(m)
        multipliers = [m for m in drawn if m is not None]
        if multipliers:
            deriv = self._buffer(("deriv", i), pre.shape).fill_(1.0) if deriv is None else deriv
            for m in multipliers:
                deriv.mul_(m)
        return a, deriv

    def _hidden_autograd(
        self,
        i: int,
        pre: Tensor,
        before_streams: Sequence[HiddenStream],
        after_streams: Sequence[HiddenStream],
        step: int,
        epoch: int,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        leaf = pre.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            h = leaf.clone()
            for stream in before_streams:
                h, _ = stream.apply(h, step=step, epoch=epoch, slot=("before", i))
            h = _activate_autograd(self.spec.activation, h)
            for stream in after_streams:
                h, _ = stream.apply(h if stream.form is None else h.clone(), step=step, epoch=epoch, slot=("after", i))
        return h.detach(), (leaf, h)

    def backward(self, dzT: Tensor, grads: Tensor) -> None:
        """Write d(mean loss)/d params into ``grads`` (flat, laid out like ``params``) from dL/dzᵀ."""
        if self._grad_views is None or self._grad_views[0] is not grads:
            self._grad_views = (grads, self.views(grads))
        views = self._grad_views[1]
        last = self.n_layers - 1
        g_w, g_b = views[last]
        # the layers' inputs, at even positions of _saved, are tensors (see __init__)
        h_last = cast(Tensor, self._saved[-1])
        torch.bmm(dzT, h_last, out=g_w)
        for site in self.projected:
            site.backward(g_w, dzT, self.param_views[-1][0])
        # Sums over the batch as matmuls with ones: a batched matmul rounds each replica alike
        # whatever the stack's size, a torch.sum over a stack need not.
        torch.bmm(dzT, self._ones(dzT.shape[-1]).transpose(1, 2), out=g_b)
        if last == 0:
            return
        w_out = self.param_views[last][0]
        local = self._saved[1]
        if last == 1 and w_out.shape[1] == 1 and isinstance(local, Tensor):
            # One hidden layer and one output: δ_bj = dz_b·w_j·D_bj, so the first layer's gradient
            # Σ_b x_bi·δ_bj = w_j·Σ_b (x_bi·dz_b)·D_bj is one matmul against D, without building δ.
            h_in = cast(Tensor, self._saved[0])
            shape = (h_in.shape[0], h_in.shape[2], h_in.shape[1])
            weighted = torch.mul(h_in.transpose(1, 2), dzT, out=self._buffer("weighted", shape))
            torch.bmm(weighted, local, out=views[0][0]).mul_(w_out)
            self._saved = []
            return
        delta = torch.bmm(dzT.transpose(1, 2), w_out, out=self._buffer("delta", h_last.shape))
        for i in range(last - 1, -1, -1):
            local = self._saved[2 * i + 1]
            if isinstance(local, tuple):
                leaf, h = local
                (delta,) = torch.autograd.grad(h, leaf, delta)
            elif local is not None:
                delta = delta.mul_(local)
            h_in = cast(Tensor, self._saved[2 * i])
            g_w, g_b = views[i]
            torch.bmm(h_in.transpose(1, 2), delta, out=g_w)
            if g_b is not None:
                torch.bmm(self._ones(delta.shape[1]), delta, out=g_b)
            if i > 0:
                delta = torch.bmm(delta, self.param_views[i][0].transpose(1, 2))
        self._saved = []
