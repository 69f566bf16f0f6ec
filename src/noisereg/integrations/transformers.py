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
when ``train()`` returns or raises, its schedule driven by ``state.global_step``, its noise state
saved in each checkpoint folder so that ``resume_from_checkpoint`` continues the same noise.

>>> from transformers import GPT2Config, GPT2LMHeadModel
>>> model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=8, n_layer=1, n_head=2, n_positions=16))
>>> handle = embedding_noise(model, 5.0, seed=0)
>>> handle.places
["after 'transformer.wte'"]
>>> handle.remove()
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from noisereg._optional import require
from noisereg.integrations.spec import applied, warn_unused
from noisereg.layers import bind_clock, unbind_clock
from noisereg.schedules import Clock, Schedule
from noisereg.seeding import check_seed
from noisereg.sites.attach import MaskedHandle, attach
from noisereg.sites.embeddings import Length, NEFTune
from noisereg.sites.selectors import unwrap

if TYPE_CHECKING:
    import transformers
else:
    # the Trainer's module, imported now: transformers imports lazily, and a broken dependency
    # (a torchvision for another torch) would otherwise surface at the first attribute used
    require("transformers.trainer", "transformers")
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


# Why the embedding noise drew nothing in a whole epoch, as a Trainer user would meet it.
_CAUSES = {
    "embeddings": (
        "the input embeddings did not run in training: the batches carry inputs_embeds rather than "
        "input_ids, or the model computes its embeddings elsewhere"
    )
}
_PREFIX = transformers.trainer_utils.PREFIX_CHECKPOINT_DIR
STATE_FILE = "noisereg_noise.pt"
"""The file in each checkpoint folder that holds the callback's noise state (per process under DDP:
``noisereg_noise_<process index>.pt``, as transformers names its ``rng_state``)."""


def _calling_trainer() -> Any:
    """The ``transformers.Trainer`` whose method is running up the stack, or None.

    Callbacks are never handed their trainer; the trainer's ``__init__`` (for ``on_init_end``) and
    ``train`` (for ``on_train_begin``) are a few frames above the callback.
    """
    frame: FrameType | None = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, transformers.Trainer):
            return owner
        frame = frame.f_back
    return None


class NEFTuneCallback(transformers.TrainerCallback):
    """NEFTune in a transformers ``Trainer``, in place of its ``neftune_noise_alpha``.

    - ``on_train_begin`` attaches :func:`embedding_noise`; the clock follows ``state.global_step``
      (so ``alpha`` may be a schedule of the optimizer step).
    - Cleanup on any exit: transformers calls ``on_train_end`` only when training returns, so the
      callback also wraps ``trainer.train`` of the trainer it is given to (found at ``on_init_end``)
      in a ``finally`` that removes the noise: an exception or KeyboardInterrupt inside ``train()``
      leaves the model clean and the callback reusable. A callback added later with
      ``add_callback`` is wrapped in from its first ``train()`` on, for the calls after it; whatever
      an unwrapped ``train()`` left behind is removed when the next one begins.
    - Resume: ``on_save`` writes the noise state (stream position, counters, seed) as
      :data:`STATE_FILE` into the checkpoint folder beside transformers' ``rng_state.pth``;
      ``train(resume_from_checkpoint=...)`` reads it back, so a resumed run draws the same noise as
      an uninterrupted one. A resume that finds no such file warns; one with another seed is refused.
    - An epoch in which the embeddings drew no noise warns
      (:class:`~noisereg.integrations.spec.UnusedNoiseWarning`).

    Refuses to run beside ``TrainingArguments.neftune_noise_alpha`` (the noise would be added twice).

    >>> callback = NEFTuneCallback(alpha=5.0, seed=0)
    """

    def __init__(self, alpha: float | Schedule = 5.0, *, length: Length = "real", seed: int = 0) -> None:
        self.kind = NEFTune(alpha, length=length)
        self.seed = check_seed(seed)
        self.clock = Clock(auto=False)
        self.handle: MaskedHandle | None = None
        self._root: nn.Module | None = None
        self._guarded: weakref.WeakSet[Any] = weakref.WeakSet()
        self._resume: str | bool | None = None
        self._mark: dict[int, int] = {}
        self._steps = 0

    @staticmethod
    def _check_alone(args: Any) -> None:
        if getattr(args, "neftune_noise_alpha", None) is not None:
            raise ValueError(
                f"TrainingArguments.neftune_noise_alpha={args.neftune_noise_alpha} adds transformers' own "
                "NEFTune: set it to None when using NEFTuneCallback"
            )

    def _guard(self, trainer: Any) -> None:
        """Wrap ``trainer.train`` (on that instance only) so that any exit removes the noise."""
        if trainer is None or trainer in self._guarded:
            return
        self._guarded.add(trainer)
        inner = trainer.train

        @functools.wraps(inner)
        def train(*args: Any, **kwargs: Any) -> Any:
            self._resume = args[0] if args else kwargs.get("resume_from_checkpoint")
            try:
                return inner(*args, **kwargs)
            finally:
                self._resume = None
                self._detach()

        trainer.train = train

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_alone(args)
        self._guard(_calling_trainer())

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kwargs: Any
    ) -> None:
        self._check_alone(args)
        if model is None:
            raise ValueError("NEFTuneCallback needs the Trainer's model (on_train_begin got none)")
        # a train() that raised outside the wrapper, or auto_find_batch_size starting over
        self._detach()
        self._guard(_calling_trainer())
        # the kind was made from __init__'s alpha: a float or a schedule, never a tensor
        alpha = cast(float | Schedule, self.kind.alpha)
        self.handle = embedding_noise(model, alpha, length=self.kind.length, seed=self.seed)
        self._root = unwrap_model(model)
        self.clock.step = state.global_step
        bind_clock(self._root, self.clock)
        if state.global_step > 0:
            self._load(args, state)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mark = applied([self.handle] if self.handle is not None else [])
        self._steps = 0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.clock.step = state.global_step
        self._steps += 1

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.handle is not None and self._steps:
            warn_unused([self.handle], self._mark, _CAUSES)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.handle is None:
            return
        folder = _checkpoint_folder(args, state.global_step)
        if not os.path.isdir(folder):
            warnings.warn(
                f"NEFTuneCallback found no checkpoint folder {folder} (a hyperparameter search saves "
                "elsewhere): the noise state is not saved, and a resume from it will draw other noise",
                stacklevel=2,
            )
            return
        saved = {"seed": self.seed, "global_step": state.global_step, "noise": self.handle.state_dict()}
        torch.save(saved, os.path.join(folder, _state_file(args)))

    def _load(self, args: Any, state: Any) -> None:
        folder = self._resume
        if not isinstance(folder, str):  # True (the last checkpoint) or not known here
            folder = _checkpoint_folder(args, state.global_step)
        path = os.path.join(folder, _state_file(args))
        if not os.path.isfile(path):
            warnings.warn(
                f"resuming at step {state.global_step} without NEFTuneCallback's noise state (no {path}): "
                "the noise starts a fresh stream, so this run will differ from an uninterrupted one",
                stacklevel=2,
            )
            return
        saved = torch.load(path, weights_only=True)
        if saved["seed"] != self.seed:
            raise ValueError(
                f"the checkpoint's noise was drawn with seed={saved['seed']}, this callback has "
                f"seed={self.seed}: resume with the same seed"
            )
        cast(MaskedHandle, self.handle).load_state_dict(saved["noise"])

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._detach()

    def _detach(self) -> None:
        if self.handle is not None and not self.handle.removed:
            self.handle.remove()
        if self._root is not None:
            unbind_clock(self._root)
        self.handle, self._root = None, None


def _checkpoint_folder(args: Any, step: int) -> str:
    """The folder the Trainer saves the checkpoint of ``step`` in."""
    return os.path.join(args.output_dir, f"{_PREFIX}-{step}")


def _state_file(args: Any) -> str:
    if getattr(args, "world_size", 1) > 1:
        return STATE_FILE.replace(".pt", f"_{args.process_index}.pt")
    return STATE_FILE
