"""The vectorized generic path: replicas of any ``nn.Module`` that ``torch.func`` can batch, trained as one.

The replicas of a group share one model's code (``base``) and data split; each has its own seed, so its
own initial weights, batch order and noise streams, exactly as :mod:`noisereg.engine.loop` builds them:

- parameters and buffers of the replicas are stacked into ``[R, ...]`` tensors
  (``torch.func.stack_module_state`` semantics); the forward is ``torch.func.vmap`` over
  ``torch.func.functional_call(base, ...)``, with replica r's batch ``x[r]`` (its own shuffle);
- the loss is ``Σ_r loss(out_r, y_r)`` (each term the mean of its own batch), so one backward gives
  each replica the gradient of its own loss, exactly: ∂(Σ_q L_q)/∂θ_r = ∂L_r/∂θ_r;
- the optimizer is the user's (``torch.optim.SGD``, ``Adam`` or ``AdamW``) over the stacked tensors:
  their updates are elementwise, so each replica's update reads only its own slice and state;
- noise: every replica gets a model of its own (never run) with its arm's sites attached by
  :func:`noisereg.attach` under the per-replica path's seeds, and slice r of each place takes replica
  r's own noise layer: activations, inputs and embeddings through hooks on ``base`` (outside
  ``vmap``'s batching, :mod:`noisereg.engine.replica_slices`), weights on the stacked weights before the
  forward, gradients by replica r's optimizer hooks on its slice of the stacked gradient, targets on its
  batch. A replica's draws have the shapes of a lone replica's, so its noise is the per-replica path's
  noise, whatever its group.

Evaluation (eval mode, noise off, the same inputs for every replica) runs under ``vmap`` too, except
on the CPU for a model with convolutions: there it runs replica by replica (faster than a grouped
convolution). torch's fused transformer encoder layer (its evaluation fast path) has no ``vmap`` rule:
torch runs it once per replica, which measured faster than its unfused path batched.

BatchNorm: each replica has its own running statistics (stacked buffers updated in place under
``vmap``); training uses batch statistics, evaluation the replica's running ones, as ``model.train()``
/ ``model.eval()`` do. The model's own random calls in ``forward`` (dropout modules, functional dropout,
the attention dropout of ``nn.MultiheadAttention``/``nn.TransformerEncoderLayer``; on the CPU):
replica r draws from torch's global generator in the state where replica r's lone training starts
(seeded ``derive_seed(seed, "train")``), advanced by its own draws only, so a replica equals the same
model trained alone (:mod:`noisereg.engine.model_randomness`). A draw with a generator of the model's
own cannot be given per replica: such a model goes to the per-replica path (the probe finds it), as do
a user's ``step``/``fit``, ``Dataset`` data, noise that reads an attention mask or packed positions, and
weight noise not redrawn per step. An
``nn.LSTM`` in float32 on the CPU stays vectorized but gains little: torch has no vmap rule for its kernel
``mkldnn_rnn_layer`` and runs it once per replica inside ``vmap`` (its own fallback, with a warning).
:func:`refusal` and :func:`~noisereg.engine.vectorized_training.probe` say why, for the run's metadata;
:mod:`noisereg.engine.vectorized_training` trains a group.

Equal to the per-replica path up to floating-point rounding (batched kernels round differently, about
one unit in the last place per operation); ``tests/engine/test_vectorized.py`` checks it in float64.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from noisereg._compat.torch_private import batch_attention_rule, batch_rnn_rules, step_hooks
from noisereg.engine.loop import LoopTask, attach_sites, seeded_model
from noisereg.engine.model_randomness import ModelRandomness, user_reason
from noisereg.engine.optim import clip_grad_norm
from noisereg.engine.replica_slices import EmbeddingPlace, Place, on_replicas
from noisereg.engine.vectorizable import group_key, refusal, same_setting
from noisereg.layers import NoiseLayer
from noisereg.sites.activations import _apply, _argument_slot, _input_hook
from noisereg.sites.attach import TargetsHandle
from noisereg.sites.mixing import MixingLayer
from noisereg.sites.placement import MaskSource
from noisereg.sites.weights import WeightNoise

__all__ = [
    "VECTORIZED",
    "VectorizedGroup",
    "group_key",
    "on_replicas",
    "refusal",
]

VECTORIZED = "vectorized"
_OPTIMIZERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclasses.dataclass
class _Replica:
    """One replica's own objects: its (never run) model with the arm's noise attached, its optimizer
    over that model (gradient noise only), its parameters and initial buffers by name, weight noise by
    parameter name."""

    module: nn.Module
    handles: list[Any]
    targets: list[TargetsHandle]
    optimizer: torch.optim.Optimizer | None
    params: dict[str, nn.Parameter]
    buffers: dict[str, Tensor]
    weights: dict[str, list[WeightNoise]]
    rng: Tensor


def _weight_noise(module: nn.Module) -> dict[str, list[WeightNoise]]:
    found: dict[str, list[WeightNoise]] = {}
    for prefix, owner in module.named_modules():
        plist = getattr(owner, "parametrizations", None)
        if not isinstance(plist, nn.ModuleDict):
            continue
        for local, entries in plist.items():
            # torch types a ModuleDict's values as Module; parametrizations' are ParametrizationLists
            noisy = [p for p in cast(nn.ModuleList, entries) if isinstance(p, WeightNoise)]
            if noisy:
                found[f"{prefix}.{local}" if prefix else local] = noisy
    return found


class VectorizedGroup:
    """The replicas of ``tasks`` (one split, one model, one training setting; seeds and sites vary).

    Raises ValueError when the tasks differ in anything but seed and sites, or the optimizer is not
    SGD, Adam or AdamW with one parameter group; torch's own errors when the model cannot be batched.
    """

    def __init__(self, tasks: Sequence[LoopTask]) -> None:
        first = tasks[0]
        fields = [f.name for f in dataclasses.fields(LoopTask) if f.name not in ("seed", "sites")]
        for task in tasks[1:]:
            if not all(same_setting(getattr(task, f), getattr(first, f)) for f in fields) or group_key(
                task
            ) != group_key(first):
                raise ValueError(
                    "a vectorized group's tasks must differ in seed and sites only, with the same target noise kinds"
                )
        reason = refusal(first) or next((refusal(t) for t in tasks if refusal(t)), None)
        if reason is not None:
            raise ValueError(reason)
        self.tasks, self.task = list(tasks), first
        with seeded_model(first) as base:
            self.base = base
        if any(isinstance(m, nn.RNNBase) for m in self.base.modules()):
            batch_rnn_rules()
        if any(isinstance(m, nn.MultiheadAttention) for m in self.base.modules()):
            batch_attention_rule()
        self.names = [name for name, _ in self.base.named_parameters()]
        self.buffer_names = [name for name, _ in self.base.named_buffers()]
        self.replicas = [self._replica(task) for task in tasks]
        with torch.no_grad():
            self.params = {
                n: torch.stack([r.params[n].detach() for r in self.replicas]).requires_grad_(True) for n in self.names
            }
            self.buffers = {n: torch.stack([r.buffers.pop(n) for r in self.replicas]) for n in self.buffer_names}
        self.optimizer = first.optimizer(list(self.params.values()))
        if type(self.optimizer) not in _OPTIMIZERS or len(self.optimizer.param_groups) != 1:
            raise ValueError(
                f"the optimizer is {type(self.optimizer).__name__} with {len(self.optimizer.param_groups)} "
                "parameter groups: the vectorized path steps torch.optim.SGD/Adam/AdamW with one group"
            )
        # torch's vmap rule of embedding backward offsets each replica's ids into one stacked table and
        # keeps only the first replica's padding row free of gradient: the others are zeroed by hand.
        self._padding_rows = [
            (f"{name}.weight" if name else "weight", m.padding_idx)
            for name, m in self.base.named_modules()
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.padding_idx is not None
        ]
        self._forward = vmap(self._one, in_dims=(0, 0, 0), randomness="error")
        # the model's own random calls draw per replica from the CPU generator's states (elsewhere torch
        # refuses them under vmap and the probe sends the model per replica); a model that draws nothing
        # does not pay for the mode, which sees every torch call of the forward (5% of a small MLP's step)
        on_cpu = torch.device(first.device).type == "cpu"
        self.randomness: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if on_cpu and self._draws_in_forward():
            self.randomness = ModelRandomness([r.rng for r in self.replicas])
        self._hooks = self._place_hooks()
        # On the CPU torch's convolution runs faster replica by replica than as the grouped convolution
        # vmap makes of it, without gradients (20 replicas of examples/study_own_model.py's CNN on
        # 1797 digits: 0.96-1.14 s against 1.68-1.82 s); a transformer's evaluation is faster batched.
        self._evaluate_each = torch.device(first.device).type == "cpu" and any(
            isinstance(m, _CONVOLUTIONS) for m in self.base.modules()
        )
        self._shared = vmap(self._one, in_dims=(0, 0, None), randomness="error")
        self._vmapped_loss: bool | None = None

    def _draws_in_forward(self) -> bool:
        """Whether the model draws random numbers in a training forward: one trial forward of two
        samples per replica without gradients (before any noise is placed; buffers copied, so
        BatchNorm's running statistics are left alone), thrown away."""
        x = self.task.train[0][:2]
        x = x.to(device=self.task.device, dtype=self.task.dtype) if x.is_floating_point() else x.to(self.task.device)
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                self._forward(self.params, buffers, x.expand(len(self.replicas), *x.shape))
        except RuntimeError as exc:
            if user_reason(exc) is None:
                raise
            return True
        return False

    def _replica(self, task: LoopTask) -> _Replica:
        with seeded_model(task) as module:
            params = dict(module.named_parameters())
            buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
            if list(params) != self.names or list(buffers) != self.buffer_names:
                raise ValueError("the model factory built modules with different parameters or buffers per seed")
            handles, targets = attach_sites(module, task, None)
            optimizer = None
            if any(s.at == "gradients" for s in task.sites):
                optimizer = task.optimizer(module.parameters())
                step_hooks(optimizer)  # refuses here, before training, where torch lacks them
                more, _ = attach_sites(module, task, optimizer)
                handles += more
            rng = torch.get_rng_state()  # where the lone replica's training starts drawing (its dropout)
        return _Replica(module, handles, targets, optimizer, params, buffers, _weight_noise(module), rng)

    def _place_hooks(self) -> list[Any]:
        """One hook on ``base`` per place where some replica has input or activation noise."""
        places: dict[tuple[Any, ...], tuple[str, list[list[NoiseLayer]]]] = {}
        embeddings: dict[str, list[list[NoiseLayer]]] = {}
        count = len(self.replicas)
        for r, replica in enumerate(self.replicas):
            names = {id(m): n for n, m in replica.module.named_modules()}
            for handle in replica.handles:
                if handle.site not in ("input", "activations", "embeddings"):
                    continue
                for placement in handle._placements:
                    position, module, *extra = placement.key
                    if handle.site == "embeddings":
                        embeddings.setdefault(names[id(module)], [[] for _ in range(count)])[r].append(placement.layer)
                        continue
                    key = (position, names[id(module)], *extra)
                    label, layers = places.setdefault(key, (placement.where, [[] for _ in range(count)]))
                    layers[r].append(placement.layer)
        masks = MaskSource(self.base, None)
        hooks = []
        for name, layers in embeddings.items():
            module = self.base.get_submodule(name)
            hooks.append(
                module.register_forward_hook(EmbeddingPlace(layers, getattr(module, "padding_idx", None)).hook)
            )
        for (position, name, *extra), (label, layers) in places.items():
            module, place = self.base.get_submodule(name), Place(layers)
            if position == "after":

                def after(mod: nn.Module, args: tuple, output: Any, place: Place = place, label: str = label) -> Any:
                    return _apply(place, mod, masks, output, label)  # type: ignore[arg-type]

                hooks.append(module.register_forward_hook(after))
            else:
                arg = extra[0]
                hook = _input_hook(place, masks, arg, label, _argument_slot(module, arg))  # type: ignore[arg-type]
                hooks.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        return hooks

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def _noisy_params(self) -> dict[str, Tensor]:
        """The stacked weights, with replica r's weight noise on slice r (drawn once per step)."""
        params = dict(self.params)
        for name in self.names:
            if not any(name in r.weights for r in self.replicas):
                continue
            rows = []
            for value, replica in zip(self.params[name].unbind(0), self.replicas, strict=True):
                for noise in replica.weights.get(name, ()):
                    noise.stale = True
                    value = noise(value)
                rows.append(value)
            params[name] = torch.stack(rows)
        return params

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Σ_r loss(out_r, y_r): under vmap where the loss allows it, else replica by replica."""
        if self._vmapped_loss is not False:
            try:
                total = vmap(self.task.loss)(out, y).sum()
                self._vmapped_loss = True
                return total
            except RuntimeError:
                if self._vmapped_loss:
                    raise
                self._vmapped_loss = False
        return torch.stack([self.task.loss(out[r], y[r]) for r in range(len(self.replicas))]).sum()

    def _targets(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if not any(r.targets for r in self.replicas):
            return x, y
        xs, ys = [], []
        for r, replica in enumerate(self.replicas):
            xr, yr = x[r], y[r]
            for handle in replica.targets:
                if isinstance(handle.layers[0], MixingLayer):
                    xr, yr = handle(xr, yr)
                else:
                    yr = handle(yr)
            xs.append(xr)
            ys.append(yr)
        return torch.stack(xs), torch.stack(ys)

    def _gradient_noise(self) -> None:
        for r, replica in enumerate(self.replicas):
            if replica.optimizer is None:
                continue
            for name, param in replica.params.items():
                grad = self.params[name].grad
                param.grad = None if grad is None else grad[r]
            pre, _ = step_hooks(replica.optimizer)
            for hook in pre:
                hook(replica.optimizer, (replica.optimizer,), {})

    def _tick(self) -> None:
        for replica in self.replicas:
            if replica.optimizer is not None:
                for hook in step_hooks(replica.optimizer)[1]:
                    hook(replica.optimizer, (replica.optimizer,), {})

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One step of every replica on its batch ``x[r]``, ``y[r]``; returns the per-replica losses."""
        if not self.base.training or not all(r.module.training for r in self.replicas):
            self.base.train()
            for replica in self.replicas:
                replica.module.train()
        x, y = self._targets(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        with self.randomness:
            out = self._forward(self._noisy_params(), self.buffers, x)
        total = self._loss(out, y)
        total.backward()
        for name, row in self._padding_rows:
            grad = self.params[name].grad
            if grad is not None:
                grad[:, row] = 0
        self._gradient_noise()
        if self.task.clip_grad_norm is not None:
            grads = [p.grad for p in self.params.values() if p.grad is not None]
            clip_grad_norm(grads, self.task.clip_grad_norm)
        self.optimizer.step()
        self._tick()
        return total.detach()

    @torch.no_grad()
    def outputs(self, x: Tensor) -> Tensor:
        """Every replica's eval-mode outputs ``[R, n, ...]`` on the same inputs ``x`` (noise is off in
        eval mode: the hooks pass values through)."""
        self.base.eval()
        try:
            if self._evaluate_each:
                return torch.stack(
                    [
                        self._one(
                            {n: p[r] for n, p in self.params.items()}, {n: b[r] for n, b in self.buffers.items()}, x
                        )
                        for r in range(len(self.replicas))
                    ]
                )
            with warnings.catch_warnings():
                # torch's fused transformer layer has no vmap rule and runs once per replica, on purpose:
                # that is faster than its unfused path batched (20 replicas of a one-layer encoder on
                # 256 samples: 145-164 ms against 205-225 ms, benchmarks/own_model_speed.py's models)
                warnings.filterwarnings("ignore", message=".*batching rule for aten::_transformer_encoder_layer_fwd")
                return self._shared(self.params, self.buffers, x)
        finally:
            self.base.train()

    def state(self, r: int) -> dict[str, Tensor]:
        """Replica r's state dict (clean names), on the CPU."""
        own = {**self.params, **self.buffers}
        return {k: (own[k][r] if k in own else v).detach().to("cpu").clone() for k, v in self.base.state_dict().items()}

    def close(self) -> None:
        """Take every hook and every replica's noise off."""
        for hook in self._hooks:
            hook.remove()
        for replica in self.replicas:
            for handle in replica.handles:
                handle.remove()
