"""NEFTune for Hugging Face Transformers models (``pip install "noisereg[transformers]"``).

:func:`embedding_noise` puts NEFTune noise on a model's input embeddings only
(``get_input_embeddings()``: not the position or token-type embeddings), with

- L = each sequence's real tokens, read from the forward's ``attention_mask``; padding untouched;
- packed rows (several documents in one row, as ``DataCollatorWithFlattening`` makes them): the
  documents come from ``cu_seq_lens_q`` or from ``position_ids`` restarting at 0, and each
  document is scaled by its own length, α/√(L_doc·d);
- ``length="padded"``: transformers' own ``neftune_noise_alpha`` numbers (L = padded length,
  padding noised), for comparison;
- no noise in ``generate`` (it runs without gradients) nor in eval mode.

:class:`NEFTuneCallback` does the same inside a ``Trainer``: attached at ``on_train_begin``, removed
at ``on_train_end``, its schedule driven by ``state.global_step``.

>>> from transformers import GPT2Config, GPT2LMHeadModel
>>> model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=8, n_layer=1, n_head=2, n_positions=16))
>>> handle = embedding_noise(model, 5.0, seed=0)
>>> handle.places
["after 'transformer.wte'"]
>>> handle.remove()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from noisereg._optional import require
from noisereg.layers import bind_clock, unbind_clock
from noisereg.schedules import Clock, Schedule
from noisereg.seeding import check_seed
from noisereg.sites.attach import MaskedHandle, attach
from noisereg.sites.embeddings import Length, NEFTune
from noisereg.sites.selectors import unwrap

if TYPE_CHECKING:
    import transformers
else:
    transformers = require("transformers", "transformers")

__all__ = ["embedding_noise", "unwrap_model", "NEFTuneCallback"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model inside DDP, ``torch.compile`` and PEFT wrappers (``get_base_model()``)."""
    model = unwrap(model)
    # get_base_model is PEFT's method, checked callable first; nn.Module's typing cannot see it
    while callable(getattr(model, "get_base_model", None)) and cast(Any, model).get_base_model() is not model:
        model = unwrap(cast(Any, model).get_base_model())
    return model


def _off_without_gradients(root: nn.Module, handle: MaskedHandle) -> None:
    """Forwards run without gradients (``generate``, evaluation) draw no noise, unless forced on."""
    switched: list[Any] = []

    def before(module: nn.Module, args: tuple) -> None:
        if not torch.is_grad_enabled():
            for layer in handle.layers:
                if layer.forced is None:
                    layer.forced = False
                    switched.append(layer)

    def after(module: nn.Module, args: tuple, output: Any) -> None:
        for layer in switched:
            layer.forced = None
        switched.clear()

    handle._cleanup.append(root.register_forward_pre_hook(before))
    handle._cleanup.append(root.register_forward_hook(after, always_call=True))


def embedding_noise(
    model: nn.Module,
    alpha: float | Schedule = 5.0,
    *,
    length: Length = "real",
    seed: int | None = None,
) -> MaskedHandle:
    """NEFTune on ``model``'s input embeddings; returns the handle (``remove()``, ``layers``).

    x̃ = x + (α/√(L·d))·u, u ~ U(−1, 1), L per sequence or per packed document (module docstring).

    Args:
        model: a ``PreTrainedModel``, possibly inside PEFT, DDP or ``torch.compile`` wrappers.
        alpha: α >= 0 or a schedule (the paper uses 5, 10, 15).
        length: "real" (default) or "padded" (transformers' ``neftune_noise_alpha`` numbers).
        seed: a private stream; None draws from torch's global generator, as transformers does.

    Raises TypeError for a model without ``get_input_embeddings()``; ValueError for a bad alpha or
    length, or noise already attached there.
    """
    root = unwrap_model(model)
    getter = getattr(root, "get_input_embeddings", None)
    embeddings = getter() if callable(getter) else None
    if not isinstance(embeddings, nn.Module):
        raise TypeError(
            f"model must be a transformers PreTrainedModel with get_input_embeddings(), got "
            f"{type(root).__name__}: use noisereg.attach(model, NEFTune(alpha), at='embeddings') otherwise"
        )
    # attach gives a MaskedHandle at "input", "activations" and "embeddings"
    handle = cast(
        MaskedHandle,
        attach(
            root,
            NEFTune(alpha, length=length),
            at="embeddings",
            select=embeddings,
            mask="attention_mask",
            packed=True,
            seed=seed,
        ),
    )
    _off_without_gradients(root, handle)
    return handle


class NEFTuneCallback(transformers.TrainerCallback):
    """NEFTune in a transformers ``Trainer``, in place of its ``neftune_noise_alpha``.

    Attaches :func:`embedding_noise` at ``on_train_begin``, sets its clock to ``state.global_step``
    before each step (so ``alpha`` may be a schedule of the optimizer step), removes it at
    ``on_train_end``. Refuses to run beside ``TrainingArguments.neftune_noise_alpha`` (the noise
    would be added twice).

    >>> callback = NEFTuneCallback(alpha=5.0, seed=0)
    """

    def __init__(self, alpha: float | Schedule = 5.0, *, length: Length = "real", seed: int = 0) -> None:
        self.kind = NEFTune(alpha, length=length)
        self.seed = check_seed(seed)
        self.clock = Clock(auto=False)
        self.handle: MaskedHandle | None = None
        self._root: nn.Module | None = None

    @staticmethod
    def _check_alone(args: Any) -> None:
        if getattr(args, "neftune_noise_alpha", None) is not None:
            raise ValueError(
                f"TrainingArguments.neftune_noise_alpha={args.neftune_noise_alpha} adds transformers' own "
                "NEFTune: set it to None when using NEFTuneCallback"
            )

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_alone(args)

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kwargs: Any
    ) -> None:
        self._check_alone(args)
        if model is None:
            raise ValueError("NEFTuneCallback needs the Trainer's model (on_train_begin got none)")
        if self.handle is not None:
            raise ValueError("NEFTuneCallback is already attached: one callback serves one training at a time")
        # the kind was made from __init__'s alpha: a float or a schedule, never a tensor
        alpha = cast(float | Schedule, self.kind.alpha)
        self.handle = embedding_noise(model, alpha, length=self.kind.length, seed=self.seed)
        self._root = unwrap_model(model)
        self.clock.step = state.global_step
        bind_clock(self._root, self.clock)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.clock.step = state.global_step

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.handle is not None and not self.handle.removed:
            self.handle.remove()
        if self._root is not None:
            unbind_clock(self._root)
        self.handle, self._root = None, None
