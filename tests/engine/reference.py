"""A plain single-model training loop (nn.Sequential + torch.optim) that follows the engine's
documented semantics: the same initial weights, batch order and noise streams, each noise drawn by
the core kind itself. The engine must end where this loop ends."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from noisereg.engine import FoldData, Group, Replica, build_module, initial_state_dict
from noisereg.engine.specs import site_kinds
from noisereg.seeding import derive_seed, make_generator, noise_generator


def _optimizer(group: Group, model: torch.nn.Module) -> torch.optim.Optimizer:
    spec = group.optimizer
    if spec.name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
        )
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(model.parameters(), lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)


def _loss(group: Group, out: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    if group.loss == "bce":
        return F.binary_cross_entropy_with_logits(out[:, 0], q)
    if group.loss == "ce":
        return F.cross_entropy(out, q)
    return F.mse_loss(out, q)


def reference_training(group: Group, replica: Replica, fold: FoldData, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """Final state dict of ``replica`` trained alone by a plain loop."""
    model = build_module(group.model).to(dtype)
    model.load_state_dict(initial_state_dict(group.model, replica.seed))
    optimizer = _optimizer(group, model)
    kinds = site_kinds(group, replica)
    gens = [noise_generator(derive_seed(replica.seed, "noise", *group.stream_keys(i))) for i in range(len(group.sites))]
    batches = make_generator(derive_seed(replica.seed, "batches"))
    x_all, y_all = fold.x_train.to(dtype), fold.y_train
    n = x_all.shape[0]
    if group.loss == "ce":
        q_all = F.one_hot(y_all, group.model.out_features).to(dtype)
    else:
        q_all = y_all.to(dtype).reshape(n, -1) if group.loss == "mse" else y_all.to(dtype)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    act = model[1] if len(linears) > 1 else None
    step = 0
    for epoch in range(group.epochs):
        order = torch.randperm(n, generator=batches) if n > group.batch_size else torch.arange(n)
        for start in range(0, n, group.batch_size):
            idx = order[start : start + group.batch_size]

            def at(i: int) -> int:
                return epoch if group.sites[i].clock == "epoch" else step

            def noisy(x: torch.Tensor, where: str, layer: int | None = None) -> torch.Tensor:
                for i, site in enumerate(group.sites):
                    if site.site == where and (layer is None or site.layers is None or layer in site.layers):
                        if not kinds[i].is_off(at(i)):
                            x = kinds[i](x, step=at(i), generator=gens[i])
                return x

            x = noisy(x_all[idx].clone(), "input")
            q = q_all[idx].clone()
            if group.loss == "bce":
                q = noisy(torch.stack([1 - q, q], dim=-1), "targets")[..., 1]
            else:
                q = noisy(q, "targets")
            params = list(model.parameters())
            weights = [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1].startswith("weight")]
            clean = torch.nn.utils.parameters_to_vector(weights).detach().clone()
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(noisy(clean.clone(), "weights"), weights)
            h = x
            for layer, linear in enumerate(linears[:-1]):
                h = noisy(act(noisy(linear(h), "before", layer)), "after", layer)
            loss = _loss(group, linears[-1](h), q)
            optimizer.zero_grad()
            loss.backward()
            with torch.no_grad():  # the gradient at the noisy weights updates the clean ones
                torch.nn.utils.vector_to_parameters(clean, weights)
            g = torch.nn.utils.parameters_to_vector([p.grad for p in params])
            g = noisy(g, "gradients")
            torch.nn.utils.vector_to_parameters(g, [p.grad for p in params])
            if group.optimizer.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, group.optimizer.clip_grad_norm)
            optimizer.step()
            step += 1
    return {k: v.detach() for k, v in model.state_dict().items()}
