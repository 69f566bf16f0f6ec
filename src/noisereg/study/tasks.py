"""Generated tasks and models of the built-in studies of fine-tuning noise (no download).

- NoisyTune (``noisytune.toml``): :func:`pretrained_mlp` is an MLP "pretrained" on one generated
  classification task (task A); :func:`finetune_data` is a second task (task B) with few labelled
  samples, on the same inputs and the same hidden features but another labelling. Every replica
  starts from the same pretrained weights (as every fine-tuning run of a paper starts from one
  checkpoint); the seed varies the batches and, in the NoisyTune arm, its noise.
- SymNoise vs NEFTune (``symnoise.toml``): :func:`token_data` is a token-classification task (a
  sequence's label is the sign of a sum of hidden per-token polarities, sequences of 4 to 24 real
  tokens, padded with id 0), :func:`token_classifier` an embedding model that averages the real
  tokens' embeddings (padding_idx 0, so NEFTune and SymNoise scale by each sequence's real length and
  leave the padding alone).

Pretraining is deterministic (its own seed, under ``torch.random.fork_rng`` so the caller's global
generator is left as it was) and done once per process and setting (cached).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

__all__ = ["finetune_data", "pretrained_mlp", "token_classifier", "token_data"]

_INPUTS, _FEATURES, _CLASSES = 16, 32, 8


def _features(x: Tensor, seed: int) -> Tensor:
    """The hidden features both tasks share: tanh(A x) with a fixed random A."""
    a = torch.randn(_FEATURES, _INPUTS, generator=torch.Generator().manual_seed(seed)) / _INPUTS**0.5
    return torch.tanh(x @ a.T * 2.0)


def _task(n: int, task: int, seed: int, data_seed: int) -> tuple[Tensor, Tensor]:
    """n samples of task ``task`` (0 = A, 1 = B): labels argmax(B_task φ(x)) over 8 classes."""
    x = torch.randn(n, _INPUTS, generator=torch.Generator().manual_seed(data_seed))
    head = torch.randn(_CLASSES, _FEATURES, generator=torch.Generator().manual_seed(seed + 1 + task))
    return x, (_features(x, seed) @ head.T).argmax(dim=1)


def finetune_data(n_train: int = 200, n_test: int = 4000, seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """Task B: ``n_train`` training and ``n_test`` test samples (16 features, 8 classes)."""
    return {"train": _task(n_train, 1, seed, seed + 100), "test": _task(n_test, 1, seed, seed + 101)}


def _mlp(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(_INPUTS, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, _CLASSES)
    )


@functools.lru_cache(maxsize=4)
def _pretrained_state(width: int, samples: int, epochs: int, seed: int) -> dict[str, Tensor]:
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)  # a tiny model: one thread is fastest, and shares a loaded machine best
        torch.manual_seed(seed)
        model = _mlp(width)
        x, y = _task(samples, 0, seed, seed + 200)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(seed + 300)
        for _ in range(epochs):
            for batch in torch.randperm(samples, generator=order).split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
    torch.set_num_threads(threads)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def pretrained_mlp(width: int = 64, samples: int = 4000, epochs: int = 20, seed: int = 0) -> nn.Module:
    """A fresh copy of the MLP 16-width-width-8 (ReLU) pretrained on task A with Adam (lr 1e-3,
    batch 64, ``epochs`` over ``samples`` samples); every call returns the same weights."""
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten at once
        model = _mlp(width)
    model.load_state_dict(_pretrained_state(width, samples, epochs, seed))
    return model


_VOCAB = 64


def token_data(n_train: int = 300, n_test: int = 4000, seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """Token sequences (ids 1..63, 4 to 24 real tokens, padded to 24 with id 0) labelled 1 where the
    sum of their tokens' hidden polarities (N(0, 1) per token id) is positive."""
    polarity = torch.randn(_VOCAB, generator=torch.Generator().manual_seed(seed))
    polarity[0] = 0.0

    def part(n: int, data_seed: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(data_seed)
        ids = torch.randint(1, _VOCAB, (n, 24), generator=g)
        lengths = torch.randint(4, 25, (n, 1), generator=g)
        ids = ids.masked_fill(torch.arange(24).unsqueeze(0) >= lengths, 0)
        return ids, (polarity[ids].sum(dim=1) > 0).long()

    return {"train": part(n_train, seed + 1), "test": part(n_test, seed + 2)}


class TokenClassifier(nn.Module):
    """Embedding (padding_idx 0) -> mean over the real tokens -> Linear -> ReLU -> Linear (2 classes)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(_VOCAB, dim, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 2))

    def forward(self, ids: Tensor) -> Tensor:
        real = (ids != 0).unsqueeze(-1).to(self.embed.weight.dtype)
        pooled = (self.embed(ids) * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


def token_classifier(dim: int = 32) -> nn.Module:
    """A fresh :class:`TokenClassifier` with ``dim``-dimensional embeddings."""
    return TokenClassifier(dim)
