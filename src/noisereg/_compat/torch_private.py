"""Private torch functions behind public fallbacks (see :mod:`noisereg._compat`).

torch's private functions are faster or the only ones that take what we need (a generator, a flat
buffer), but they may change without notice. Each function here uses the private path when it exists
with the expected signature and falls back to public API otherwise; ``tests/test_compat.py`` forces
every fallback and compares its numbers with the private path. ``PRIVATE`` switches the private
paths off as a whole (the tests use it; a user hit by a torch change can too).

- :func:`adam_step_` / :func:`sgd_step_`: the fused optimizer kernels (``torch._fused_adam_``,
  ``_fused_adamw_``, ``_fused_sgd_``); fallback: ``torch.optim.Adam``/``AdamW``/``SGD`` stepping the
  same buffers (the same update rule; rounding may differ in the last place).
- :func:`beta_symmetric`: λ ~ Beta(α, α) from a ``torch.Generator`` (``torch._sample_dirichlet``);
  fallback: the inverse CDF (``scipy.special.betaincinv``) of uniforms from the same generator, the
  same distribution but other numbers.
- :func:`batch_rnn_rules`: ``vmap`` rules for ``nn.GRU``/``nn.LSTM``/``nn.RNN`` (torch has none), from
  torch's own decompositions of those ops (``torch._decomp``) registered for the batching key;
  fallback: none registered, so ``vmap`` over a recurrent model fails and the engine trains it
  replica by replica.
- :func:`batch_attention_rule`: a ``vmap`` rule for ``aten::_scaled_dot_product_flash_attention_for_cpu``
  (torch has none and loops over the replicas), the same attention written with batched matmuls,
  softmax and logsumexp; fallback: none registered (torch's slower loop).
- :func:`step_hooks`: an optimizer's step pre- and post-hooks (``Optimizer._optimizer_step_pre_hooks``),
  so that gradient noise attached to one replica's optimizer can act on its slice of stacked gradients;
  fallback: ValueError (the engine then trains that replica on its own).
- :func:`values_readable`: whether a tensor's values may be read, i.e. no vmap/grad transform is
  running (``torch._C._are_functorch_transforms_active``); fallback: try reading one value and treat
  torch's refusal as "not readable".
- :func:`is_batched`: whether a tensor is batched by ``torch.func.vmap`` at the level running now
  (``torch._C._functorch.is_batchedtensor``); fallback: whether any ``torch.func`` transform is running
  (:func:`values_readable`), which holds for every tensor a vmapped function computes.
- :func:`functional_names`: names of ``torch.nn.functional`` replaced while inside, so that its Python
  functions (``multi_head_attention_forward``, which looks up ``scaled_dot_product_attention`` and
  ``dropout`` at call time) call the replacements; fallback: nothing replaced (the engine then sees
  torch's refusal of the random call under ``vmap`` and trains the model per replica).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from noisereg._compat import PRIVATE

__all__ = [
    "adam_step_",
    "sgd_step_",
    "batch_attention_rule",
    "batch_rnn_rules",
    "beta_symmetric",
    "functional_names",
    "is_batched",
    "step_hooks",
    "values_readable",
]


def _private(name: str, owner: object = torch) -> Any:
    return getattr(owner, name, None) if PRIVATE["enabled"] else None


def adam_step_(
    params: Tensor,
    grads: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled: bool,
) -> None:
    """One Adam (``decoupled=False``) or AdamW step on flat buffers, in place; ``step`` (a 0-d float
    tensor) counts the steps and is incremented here."""
    fused = _private("_fused_adamw_" if decoupled else "_fused_adam_")
    if fused is not None:
        step.add_(1)
        fused(
            [params],
            [grads],
            [exp_avg],
            [exp_avg_sq],
            [],
            [step],
            lr=lr,
            beta1=betas[0],
            beta2=betas[1],
            weight_decay=weight_decay,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )
        return
    optimizer = (torch.optim.AdamW if decoupled else torch.optim.Adam)(
        [params], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False
    )
    optimizer.state[params] = {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    _step_public(optimizer, params, grads)


def sgd_step_(
    params: Tensor,
    grads: Tensor,
    momentum_buffer: Tensor | None,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    first_step: bool,
    nesterov: bool = False,
) -> None:
    """One SGD step (momentum without dampening, Nesterov's if asked) on flat buffers, in place. On the
    first step the momentum buffer becomes the gradient, as in ``torch.optim.SGD``."""
    fused = _private("_fused_sgd_")
    if fused is not None:
        fused(
            [params],
            [grads],
            [] if momentum_buffer is None else [momentum_buffer],
            weight_decay=weight_decay,
            momentum=momentum,
            lr=lr,
            dampening=0.0,
            nesterov=nesterov,
            maximize=False,
            is_first_step=first_step,
        )
        return
    optimizer = torch.optim.SGD(
        [params], lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, foreach=False
    )
    if momentum_buffer is not None and not first_step:
        optimizer.state[params] = {"momentum_buffer": momentum_buffer}
    _step_public(optimizer, params, grads)
    if momentum_buffer is not None and first_step:
        momentum_buffer.copy_(optimizer.state[params]["momentum_buffer"])


def _step_public(optimizer: torch.optim.Optimizer, params: Tensor, grads: Tensor) -> None:
    params.grad = grads
    try:
        with torch.no_grad():
            optimizer.step()
    finally:
        params.grad = None


def beta_symmetric(alpha: float, n: int, *, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    """``n`` draws of λ ~ Beta(α, α) in float64 from ``generator``.

    The private path draws a Dirichlet(α, α) and keeps its first coordinate, which stays finite for
    small α (the ratio of two gamma draws underflows to 0/0 there).
    """
    concentration = torch.full((n, 2), float(alpha), dtype=torch.float64, device=device)
    dirichlet = _private("_sample_dirichlet")
    if dirichlet is not None:
        return dirichlet(concentration, generator=generator)[:, 0]
    from scipy.special import betaincinv

    u = torch.rand(n, dtype=torch.float64, generator=generator, device=device)
    return torch.as_tensor(betaincinv(alpha, alpha, u.cpu().numpy()), dtype=torch.float64, device=device)


def values_readable(tensor: Tensor) -> bool:
    """Whether ``tensor``'s values may be read: not under a ``torch.func`` transform (vmap, grad),
    where torch refuses data-dependent reads (compiling is checked by the caller)."""
    active = _private("_are_functorch_transforms_active", torch._C)
    if active is not None:
        return not active()
    try:
        tensor.reshape(-1)[:1].sum().item()
    except RuntimeError:
        return False
    return True


def is_batched(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a value batched by ``torch.func.vmap`` (a replica stack's logical slice)."""
    check = _private("is_batchedtensor", getattr(torch._C, "_functorch", None))
    if check is not None:
        return bool(check(tensor))
    return not values_readable(tensor)


@contextlib.contextmanager
def functional_names(replacements: dict[str, Callable[..., Any]]) -> Iterator[None]:
    """``torch.nn.functional.<name>`` is ``replacements[name]`` inside (names it lacks are skipped)."""
    functional = torch.nn.functional
    saved = {n: getattr(functional, n) for n in replacements if hasattr(functional, n)} if PRIVATE["enabled"] else {}
    for name in saved:
        setattr(functional, name, replacements[name])
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(functional, name, value)


_RNN_RULES: list[object] = []  # the torch.library registration, held so that it stays in force


def batch_rnn_rules() -> bool:
    """Register (once) torch's decompositions of ``aten::gru``/``lstm``/``rnn_tanh``/``rnn_relu`` as their
    ``vmap`` rules, so that a stack of recurrent models runs under ``torch.func.vmap``. Returns whether
    the rules are in force. The decompositions compute the same cell equations with other kernels, so
    results agree with the native ones up to rounding."""
    if _RNN_RULES:
        return True
    if not PRIVATE["enabled"]:
        return False
    try:
        from torch._decomp import decomposition_table

        aten = torch.ops.aten
        ops = [aten.gru.input, aten.gru.data, aten.lstm.input, aten.lstm.data, aten.rnn_tanh.input, aten.rnn_relu.input]
        library = torch.library.Library("aten", "IMPL", "FuncTorchBatched")
        for op in ops:
            library.impl(op, decomposition_table[op])
    except (ImportError, KeyError, RuntimeError, AttributeError):
        return False
    _RNN_RULES.append(library)
    return True


def step_hooks(optimizer: torch.optim.Optimizer) -> tuple[list, list]:
    """The step pre-hooks and post-hooks registered on ``optimizer`` (each ``hook(opt, args, kwargs)``).

    Raises ValueError where they cannot be read (private paths off, or torch changed them)."""
    pre = getattr(optimizer, "_optimizer_step_pre_hooks", None) if PRIVATE["enabled"] else None
    post = getattr(optimizer, "_optimizer_step_post_hooks", None) if PRIVATE["enabled"] else None
    if not (isinstance(pre, dict) and isinstance(post, dict)):
        raise ValueError(
            "this torch does not expose an optimizer's step hooks: gradient noise needs the per-replica path"
        )
    return list(pre.values()), list(post.values())


_ATTENTION_RULE: list[object] = []


def _attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: Tensor | None = None,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(q·kᵀ·scale + mask)·v and the logsumexp of the scores (what the flash kernel returns)."""
    if dropout_p > 0.0:
        raise RuntimeError("vmap: attention dropout is a random operation (randomness='error')")
    scores = (q * (scale if scale is not None else q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
    if is_causal:
        causal = torch.ones(scores.shape[-2], scores.shape[-1], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    # softmax and logsumexp from one exp: torch's softmax kernel is slow over short rows (attention over
    # 12 positions: 9.4 ms against 1.7 ms for both by hand, benchmarks/own_model_speed.py's transformer).
    # The max is a constant for autograd: the result does not depend on it.
    top = scores.amax(-1, keepdim=True).detach()
    top = top.masked_fill(~torch.isfinite(top), 0.0)  # a row masked out entirely: exp(-inf) = 0 as torch's
    weights = (scores - top).exp()
    total = weights.sum(-1, keepdim=True)
    return (weights / total) @ v, (top + total.log()).squeeze(-1)


def batch_attention_rule() -> bool:
    """Register (once) :func:`_attention` as the ``vmap`` rule of torch's CPU flash attention, so that
    stacked attention layers run as one batched product instead of one call per replica. The same
    formula as the kernel's, rounded differently. Returns whether the rule is in force."""
    if _ATTENTION_RULE:
        return True
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or not PRIVATE["enabled"]:
        return False
    try:
        library = torch.library.Library("aten", "IMPL", "FuncTorchBatched")
        library.impl(op.default, _attention)
    except (RuntimeError, AttributeError):
        return False
    _ATTENTION_RULE.append(library)
    return True
