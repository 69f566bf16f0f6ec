"""Image noise in data pipelines: :class:`ImageNoise`, per-item seeded, and :class:`MixupOrCutMix`.

:class:`ImageNoise` applies any noise kind of :mod:`noisereg.noise` (Gaussian, shot, impulse,
speckle, ...) to the images and videos of a sample, and to nothing else:

- with torchvision installed it is a torchvision v2 ``Transform``: ``tv_tensors.Image`` and
  ``tv_tensors.Video`` take noise; masks, bounding boxes, labels and other values pass through;
  plain tensors follow torchvision's rule (the first plain tensor is the image when the sample holds
  no ``Image``/``Video``);
- without torchvision it is a plain callable on tensors [..., C, H, W] with the same rule;
- with a torchvision that is installed but fails to import (a build for another torch), this module
  still imports, ``HAS_TORCHVISION`` is False and ``ImageNoise(...)`` raises ImportError naming the
  error and the fix, rather than quietly behaving as the plain callable.

dtype and value range are kept: uint8 images are noised as x/255 in [0, 1], clipped, rounded and
stored back as uint8; float images are clipped to ``value_range`` (default [0, 1]; None: no clip).

Randomness (torchvision's own v2 transforms draw from the global generator, pytorch/vision #7027):
``transform(sample, index=i)`` draws from ``derive_seed(seed, epoch, i)``, so item i's noise
depends neither on DataLoader workers nor on shuffling; without ``index`` the stream is
``derive_seed(seed, epoch, "worker", w)`` advancing call by call in each worker (reproducible for
the same DataLoader settings). ``set_epoch(e)`` gives each epoch new noise; schedules in the noise
are evaluated at the epoch.

>>> from noisereg.noise import Gaussian
>>> noise = ImageNoise(Gaussian(std=0.1), seed=0)
>>> image = torch.full((3, 4, 4), 128, dtype=torch.uint8)
>>> noisy = noise(image, index=0)
>>> noisy.dtype, bool(torch.equal(noisy, noise(image, index=0)))
(torch.uint8, True)
"""

from __future__ import annotations

import numbers
from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from noisereg._checks import check_int, check_real
from noisereg._optional import OptionalImportError, try_import
from noisereg.noise.base import NoiseKind, draw_dtype
from noisereg.seeding import check_seed, derive_seed, make_generator
from noisereg.sites.mixing import CutMix, Mixup
from noisereg.sites.targets import as_soft, class_count

__all__ = ["ImageNoise", "MixupOrCutMix", "HAS_TORCHVISION"]

# imported, not merely found: an installed torchvision can fail to import beside this torch
_TORCHVISION = try_import("torchvision.transforms.v2")
HAS_TORCHVISION = isinstance(_TORCHVISION, ModuleType)


def _noise_image(
    kind: NoiseKind,
    image: Tensor,
    value_range: tuple[float, float] | None,
    step: int,
    generator: torch.Generator | None,
) -> Tensor:
    if image.dim() < 3:
        raise ValueError(f"an image must have shape [..., C, H, W], got {list(image.shape)}")
    if image.dtype == torch.uint8:
        scaled = image.to(torch.float32) / 255.0
        noisy = kind(scaled.unsqueeze(0), step=step, generator=generator).squeeze(0)
        return (noisy.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    if not image.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, got dtype={image.dtype}")
    # One sample is a batch of one for the noise kinds (per-sample strengths, SNR per sample).
    noisy = kind(image.unsqueeze(0), step=step, generator=generator).squeeze(0)
    return noisy if value_range is None else noisy.clamp(*value_range)


class _Streams:
    """The per-item (or per-worker) generators and the epoch."""

    def __init__(self, seed: int | None) -> None:
        self.seed = None if seed is None else check_seed(seed)
        self.epoch = 0
        self._workers: dict[tuple[int, int], torch.Generator] = {}

    def set_epoch(self, epoch: int) -> None:
        """Use the noise of ``epoch`` (call it at the start of every epoch for new noise each time)."""
        self.epoch = check_seed(epoch, name="epoch")

    def generator(self, index: int | None, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if index is not None:
            check_int(index, "index", low=0)  # the item's index
            return make_generator(derive_seed(self.seed, self.epoch, int(index)), device)
        info = get_worker_info()
        worker = 0 if info is None else info.id + 1
        key = (self.epoch, worker)
        if key not in self._workers:
            self._workers[key] = make_generator(derive_seed(self.seed, self.epoch, "worker", worker), device)
        return self._workers[key]


def _check_range(value_range: object) -> tuple[float, float] | None:
    if value_range is None:
        return None
    if not (
        isinstance(value_range, (tuple, list))
        and len(value_range) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value_range)
        and value_range[0] < value_range[1]
    ):
        raise ValueError(f"{value_range=} must be None or (low, high) with low < high")
    return float(value_range[0]), float(value_range[1])


def _check_kind(noise: object) -> NoiseKind:
    if not isinstance(noise, NoiseKind) or isinstance(noise, (Mixup, CutMix)):
        raise TypeError(
            f"noise must be an image noise config such as noisereg.noise.Gaussian(std=0.1), got {type(noise).__name__}"
        )
    return noise


class _PlainImageNoise:
    """The torchvision-free form: the first tensor of dim >= 3 in the sample is the image."""

    def __init__(
        self, noise: NoiseKind, *, seed: int | None = None, value_range: tuple[float, float] | None = (0.0, 1.0)
    ) -> None:
        self.noise = _check_kind(noise)
        self.value_range = _check_range(value_range)
        self.streams = _Streams(seed)

    def set_epoch(self, epoch: int) -> None:
        self.streams.set_epoch(epoch)

    def __call__(self, *inputs: Any, index: int | None = None) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        done = [False]

        def visit(value: Any) -> Any:
            if isinstance(value, Tensor) and value.dim() >= 3 and not done[0]:
                done[0] = True
                generator = self.streams.generator(index, value.device)
                return _noise_image(self.noise, value, self.value_range, self.streams.epoch, generator)
            if isinstance(value, (tuple, list)):
                return type(value)(visit(v) for v in value)
            if isinstance(value, dict):
                return {k: visit(v) for k, v in value.items()}
            return value

        return visit(sample)

    def __repr__(self) -> str:
        return f"ImageNoise({self.noise!r}, seed={self.streams.seed}, value_range={self.value_range})"


if HAS_TORCHVISION:
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    class ImageNoise(v2.Transform):
        """Noise on the images and videos of a sample; see the module docstring.

        Args:
            noise: a config from :mod:`noisereg.noise`, e.g. ``Gaussian(std=0.1)``.
            seed: root seed; None uses torch's global generator.
            value_range: the float images' range, clipped to (default (0, 1)); None: no clip.
        """

        def __init__(
            self, noise: NoiseKind, *, seed: int | None = None, value_range: tuple[float, float] | None = (0.0, 1.0)
        ) -> None:
            super().__init__()
            self.noise = _check_kind(noise)
            self.value_range = _check_range(value_range)
            self.streams = _Streams(seed)
            self._index: int | None = None

        def set_epoch(self, epoch: int) -> None:
            self.streams.set_epoch(epoch)

        def forward(self, *inputs: Any, index: int | None = None) -> Any:
            self._index = index
            try:
                return super().forward(*inputs)
            finally:
                self._index = None

        def _needs_transform_list(self, flat_inputs: list[Any]) -> list[bool]:
            # torchvision's rule: Image/Video always; a plain tensor only as the sample's image.
            needs = super()._needs_transform_list(flat_inputs)
            return [
                need
                and isinstance(inpt, (Tensor,))
                and not isinstance(inpt, (tv_tensors.Mask, tv_tensors.BoundingBoxes))
                for need, inpt in zip(needs, flat_inputs, strict=True)
            ]

        def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
            if not isinstance(inpt, Tensor):
                raise TypeError(f"ImageNoise takes tensor images, got {type(inpt).__name__}: use v2.ToImage()")
            generator = self.streams.generator(self._index, inpt.device)
            noisy = _noise_image(self.noise, inpt.as_subclass(Tensor), self.value_range, self.streams.epoch, generator)
            return tv_tensors.wrap(noisy, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else noisy

        def extra_repr(self) -> str:
            return f"{self.noise!r}, seed={self.streams.seed}, value_range={self.value_range}"

else:

    class ImageNoise(_PlainImageNoise):  # type: ignore[no-redef]
        """Noise on the image of a sample (torchvision not installed); see the module docstring.

        Args:
            noise: a config from :mod:`noisereg.noise`, e.g. ``Gaussian(std=0.1)``.
            seed: root seed; None uses torch's global generator.
            value_range: the float images' range, clipped to (default (0, 1)); None: no clip.

        Raises ImportError when torchvision is installed but fails to import.
        """

        def __init__(
            self, noise: NoiseKind, *, seed: int | None = None, value_range: tuple[float, float] | None = (0.0, 1.0)
        ) -> None:
            if isinstance(_TORCHVISION, OptionalImportError) and _TORCHVISION.installed:
                raise _TORCHVISION.with_traceback(None)
            super().__init__(noise, seed=seed, value_range=value_range)


class MixupOrCutMix:
    """A batch transform (``collate_fn`` or training loop): mixup or CutMix, chosen per batch.

    With probability ``p`` the batch is mixed, then by CutMix with probability ``switch``, else by
    mixup, as timm's ``Mixup(switch_prob=...)`` and torchvision's ``RandomChoice([MixUp(), CutMix()])``
    do; otherwise x passes unchanged and class ids become one-hot targets, as mixed batches have.
    Each choice and λ comes from the stream ``derive_seed(seed, "batches")``, advancing batch by batch.

    Args:
        mixup, cutmix: the configs, e.g. ``Mixup(alpha=0.2, num_classes=10)``, ``CutMix(alpha=1.0, ...)``.
        switch: probability of CutMix among mixed batches, in [0, 1] (default 0.5).
        p: probability that a batch is mixed at all, in [0, 1] (default 1).
        seed: root seed; None uses torch's global generator.

    >>> mix = MixupOrCutMix(Mixup(alpha=0.2, num_classes=3), CutMix(alpha=1.0, num_classes=3), seed=0)
    >>> x, y = mix(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
    >>> tuple(y.shape)
    (4, 3)
    """

    def __init__(
        self, mixup: Mixup, cutmix: CutMix, *, switch: float = 0.5, p: float = 1.0, seed: int | None = None
    ) -> None:
        if not isinstance(mixup, Mixup) or not isinstance(cutmix, CutMix):
            raise TypeError(
                f"mixup and cutmix must be Mixup(...) and CutMix(...), got {type(mixup).__name__} and "
                f"{type(cutmix).__name__}"
            )
        for name, value in (("switch", switch), ("p", p)):
            check_real(value, name, low=0.0, high=1.0)  # a probability
        self.mixup, self.cutmix, self.switch, self.p = mixup, cutmix, float(switch), float(p)
        self.seed = None if seed is None else check_seed(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self.step = 0

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        generator = None
        if self.seed is not None:
            if x.device not in self._generators:
                self._generators[x.device] = make_generator(derive_seed(self.seed, "batches"), x.device)
            generator = self._generators[x.device]
        mixed, cut = torch.rand(2, generator=generator, device=x.device).tolist()
        kind = (self.cutmix if cut < self.switch else self.mixup) if mixed < self.p else None
        step, self.step = self.step, self.step + 1
        if kind is None:
            # Unmixed batches give targets of the same form as mixed ones: floats, one-hot for class ids.
            dtype = draw_dtype(x)
            soft = y.to(dtype) if y.is_floating_point() else as_soft(y, class_count(y, self.mixup.num_classes), dtype)
            return x, soft
        return kind(x, y, step=step, generator=generator)

    def __repr__(self) -> str:
        return f"MixupOrCutMix({self.mixup!r}, {self.cutmix!r}, switch={self.switch}, p={self.p})"
