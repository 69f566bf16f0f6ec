"""Training pairs (corrupted input, clean input) for denoising autoencoders (Vincent et al. 2010).

Any noise kind corrupts the input; the model learns to give back the clean one. Two wrappers, one
formula (the noise kind's):

- :class:`DenoisingDataset` wraps a map-style dataset; item i of epoch e is corrupted with the
  stream ``derive_seed(seed, e, i)``, so the noise does not depend on DataLoader workers, shuffling
  or batch size, and a new epoch (``set_epoch``) gives new noise.
- :class:`DenoisingCollate` corrupts whole batches in ``collate_fn`` (one noise call per batch,
  faster); its stream is ``derive_seed(seed, e, worker id)``, advancing batch by batch.

Schedules in the noise are evaluated at the epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate, get_worker_info

from noisereg._checks import check_int
from noisereg.noise.base import NoiseKind
from noisereg.seeding import check_seed, derive_seed, make_generator

__all__ = ["DenoisingDataset", "DenoisingCollate"]


def _check(noise: object, seed: object, item: object) -> None:
    if not isinstance(noise, NoiseKind):
        raise TypeError(f"noise must be a noise config such as Gaussian(std=0.3), got {type(noise).__name__}")
    if seed is not None:
        check_seed(seed)
    check_int(item, "item", low=0)  # the position of the input in an (input, target) item


def _input(value: Any, item: int) -> Tensor:
    if isinstance(value, (tuple, list)):
        value = value[item]
    tensor = torch.as_tensor(value)
    if not tensor.is_floating_point():
        raise ValueError(f"denoising needs floating-point inputs, got dtype={tensor.dtype}: convert with .float()")
    return tensor


class _Epochs:
    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the noise of ``epoch`` (call it at the start of every epoch for new noise each time)."""
        self.epoch = check_seed(epoch, name="epoch")


class DenoisingDataset(Dataset, _Epochs):
    """``dataset[i]`` -> ``(noise(x_i), x_i)``, x_i the item or its ``item``-th element.

    Args:
        dataset: a map-style dataset of tensors (or of tuples whose ``item``-th element is the input).
        noise: a config from :mod:`noisereg.noise`, e.g. ``Gaussian(std=0.3, clip=(0, 1))``.
        seed: root seed of the noise; None uses torch's global generator.

    Raises:
        TypeError: ``noise`` is not a noise config. TypeError, ValueError: ``seed`` or ``item`` out of range.

    >>> from noisereg.noise import Gaussian
    >>> data = DenoisingDataset([torch.zeros(3)], Gaussian(std=0.1), seed=0)
    >>> noisy, clean = data[0]
    >>> noisy.shape, clean.tolist()
    (torch.Size([3]), [0.0, 0.0, 0.0])
    """

    def __init__(self, dataset: Any, noise: NoiseKind, *, seed: int | None = None, item: int = 0) -> None:
        _check(noise, seed, item)
        _Epochs.__init__(self)
        self.dataset, self.noise, self.seed, self.item = dataset, noise, seed, item

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        clean = _input(self.dataset[index], self.item)
        generator = (
            None if self.seed is None else make_generator(derive_seed(self.seed, self.epoch, index), clean.device)
        )
        # One sample is a batch of one for the noise kinds (per-sample strengths, SNR per sample).
        noisy = self.noise(clean.unsqueeze(0), step=self.epoch, generator=generator).squeeze(0)
        return noisy, clean


class DenoisingCollate(_Epochs):
    """A ``collate_fn`` giving ``(noise(x), x)`` batches, as ``DataLoader(data, collate_fn=...)``.

    ``collate_fn`` (default ``torch.utils.data.default_collate``) builds the batch first; a batch of
    tuples keeps its ``item``-th element as the input.

    Args:
        noise: a config from :mod:`noisereg.noise`.
        seed: root seed of the noise; None uses torch's global generator.
        item: the input's position in a batch of tuples.
        collate_fn: builds the batch before the noise is added.

    Raises:
        TypeError: ``noise`` is not a noise config. TypeError, ValueError: ``seed`` or ``item`` out of range.

    >>> from noisereg.noise import Gaussian
    >>> noisy, clean = DenoisingCollate(Gaussian(std=0.1), seed=0)([torch.zeros(3), torch.zeros(3)])
    >>> noisy.shape, clean.shape
    (torch.Size([2, 3]), torch.Size([2, 3]))
    """

    def __init__(
        self,
        noise: NoiseKind,
        *,
        seed: int | None = None,
        item: int = 0,
        collate_fn: Callable[[list[Any]], Any] = default_collate,
    ) -> None:
        _check(noise, seed, item)
        _Epochs.__init__(self)
        self.noise, self.seed, self.item, self.collate_fn = noise, seed, item, collate_fn
        self._generators: dict[tuple[int, int, torch.device], torch.Generator] = {}

    def __call__(self, batch: list[Any]) -> tuple[Tensor, Tensor]:
        clean = _input(self.collate_fn(batch), self.item)
        generator = None
        if self.seed is not None:
            info = get_worker_info()
            worker = 0 if info is None else info.id + 1
            key = (self.epoch, worker, clean.device)
            if key not in self._generators:
                stream = derive_seed(self.seed, self.epoch, worker)
                self._generators[key] = make_generator(stream, clean.device)
            generator = self._generators[key]
        return self.noise(clean, step=self.epoch, generator=generator), clean
