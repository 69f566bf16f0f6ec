"""Evaluation on noisy held-out data during training: the robustness curve beside the clean one.

With ``Group.eval_noise`` set, every replica gets one noisy copy of its test inputs,
x̃_r = eval_noise(x_test, generator=g_r) with g_r seeded by ``derive_seed(replica.seed, "noisy_eval")``,
drawn once before training and evaluated at every evaluation as one more data part, ``noisy_test``
(metrics ``noisy_test_loss`` and ``noisy_test_acc`` or ``noisy_test_r2``). Drawing it once makes the
curve over epochs a comparison on fixed inputs, not a new noise sample at each point; it costs one
more forward pass over the test part per evaluation and no training time. A replica's copy depends on
its own seed only, so replicas of equal seeds in different arms are evaluated on the same noisy
inputs (paired), whatever the grouping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from noisereg.seeding import derive_seed, noise_generator

__all__ = ["NOISY_PART", "noisy_copy", "with_noisy_part"]

NOISY_PART = "noisy_test"


def noisy_copy(
    eval_noise: Callable[..., Tensor], x: Tensor, input_view: Callable[[Tensor], Tensor], seeds: Sequence[int]
) -> Tensor:
    """A noisy copy of the network inputs ``x`` [R, n, ...]: replica r's data columns
    (``input_view``; an MLP's column of ones is left alone) replaced by
    ``eval_noise(columns_r, generator=noise_generator(derive_seed(seeds[r], "noisy_eval")))``."""
    noisy = x.clone()
    columns = input_view(noisy)
    for r, seed in enumerate(seeds):
        generator = noise_generator(derive_seed(seed, "noisy_eval"), x.device)
        out = eval_noise(columns[r], generator=generator)
        if not isinstance(out, Tensor) or out.shape != columns[r].shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"eval_noise must return a tensor shaped like its input {tuple(columns[r].shape)}, got {got}"
            )
        columns[r] = out
    return noisy


def with_noisy_part(
    eval_noise: Callable[..., Tensor] | None,
    x: dict[str, Tensor],
    y: dict[str, Tensor],
    input_view: Callable[[Tensor], Tensor],
    seeds: Sequence[int],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The evaluation parts: ``x``/``y`` as given, plus the ``noisy_test`` part when ``eval_noise`` is set."""
    if eval_noise is None:
        return x, y
    with torch.no_grad():
        noisy = noisy_copy(eval_noise, x["test"], input_view, seeds)
    return {**x, NOISY_PART: noisy}, {**y, NOISY_PART: y["test"]}
