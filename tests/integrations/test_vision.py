"""ImageNoise: images only, dtype and range kept, per-item streams; MixupOrCutMix's switch."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from noisereg._optional import OptionalImportError, try_import
from noisereg.integrations.vision import HAS_TORCHVISION, ImageNoise, MixupOrCutMix
from noisereg.noise import Gaussian, gaussian
from noisereg.seeding import derive_seed, make_generator
from noisereg.sites import CutMix, Mixup

TORCHVISION = try_import("torchvision.transforms.v2")
# A torchvision that is installed but fails to import makes ImageNoise refuse (tested in
# tests/test_optional.py with a fake one); its own tests cannot run then.
image_noise = pytest.mark.skipif(
    isinstance(TORCHVISION, OptionalImportError) and TORCHVISION.installed,
    reason=f"ImageNoise refuses a broken torchvision: {TORCHVISION}",
)


def _image(dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 8, 8, generator=g)
    return (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)


@image_noise
def test_float_image_noise_is_the_kind_on_the_items_stream_clipped():
    noise = ImageNoise(Gaussian(std=0.2), seed=5)
    noise.set_epoch(2)
    image = _image()
    expected = gaussian(image.unsqueeze(0), 0.2, generator=make_generator(derive_seed(5, 2, 7))).squeeze(0)
    assert torch.equal(noise(image, index=7), expected.clamp(0.0, 1.0))


@image_noise
def test_uint8_images_stay_uint8_in_range():
    image = _image(torch.uint8)
    noisy = ImageNoise(Gaussian(std=0.5), seed=0)(image, index=0)
    assert noisy.dtype == torch.uint8 and noisy.shape == image.shape
    scaled = gaussian(image.float().unsqueeze(0) / 255, 0.5, generator=make_generator(derive_seed(0, 0, 0)))
    assert torch.equal(noisy, (scaled.squeeze(0).clamp(0, 1) * 255).round().to(torch.uint8))
    assert not torch.equal(noisy, image)


@image_noise
def test_only_the_image_of_a_sample_takes_noise():
    image, mask, label = _image(), torch.ones(1, 8, 8), 3
    noisy, mask_out, label_out = ImageNoise(Gaussian(std=0.2), seed=0)((image, mask, label), index=0)
    assert not torch.equal(noisy, image)
    assert mask_out is mask and label_out == 3


@image_noise
def test_items_epochs_differ_and_repeat():
    noise = ImageNoise(Gaussian(std=0.2), seed=0)
    image = _image()
    a, b = noise(image, index=0), noise(image, index=1)
    assert not torch.equal(a, b) and torch.equal(a, noise(image, index=0))
    noise.set_epoch(1)
    assert not torch.equal(a, noise(image, index=0))


class _Images(Dataset):
    def __init__(self, transform: ImageNoise) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(torch.full((1, 4, 4), 0.5), index=i)


@image_noise
def test_per_item_noise_does_not_depend_on_workers_or_order():
    noise = ImageNoise(Gaussian(std=0.1), seed=3)
    serial = torch.cat(list(DataLoader(_Images(noise), batch_size=2)))
    workers = torch.cat(list(DataLoader(_Images(noise), batch_size=2, num_workers=2)))
    assert torch.equal(serial, workers)
    reverse = torch.stack([_Images(noise)[i] for i in reversed(range(6))])
    assert torch.equal(reverse.flip(0), serial)


@image_noise
def test_bad_arguments():
    with pytest.raises(TypeError, match="image noise config"):
        ImageNoise(Mixup(alpha=0.2))
    with pytest.raises(ValueError, match="value_range"):
        ImageNoise(Gaussian(std=0.1), value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="index"):
        ImageNoise(Gaussian(std=0.1), seed=0)(_image(), index=-1)
    with pytest.raises(ValueError, match="switch"):
        MixupOrCutMix(Mixup(0.2, num_classes=3), CutMix(1.0, num_classes=3), switch=1.5)


def test_mixup_or_cutmix_choices_follow_the_probabilities():
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    only_cut = MixupOrCutMix(Mixup(0.2, num_classes=3), CutMix(1.0, num_classes=3), switch=1.0, seed=0)
    mixed_x, _ = only_cut(x, y)
    # CutMix pastes boxes: every pixel is the same pixel of some image of the batch, never a blend
    assert all(bool((mixed_x[i].unsqueeze(0) == x).any(dim=0).all()) for i in range(4))
    only_mix = MixupOrCutMix(Mixup(0.2, num_classes=3), CutMix(1.0, num_classes=3), switch=0.0, seed=0)
    blended, _ = only_mix(x, y)
    assert not all(bool((blended[i].unsqueeze(0) == x).any(dim=0).all()) for i in range(4))
    never = MixupOrCutMix(Mixup(0.2, num_classes=3), CutMix(1.0, num_classes=3), p=0.0, seed=0)
    same_x, soft = never(x, y)
    assert same_x is x and torch.equal(soft, torch.eye(3)[y])
    again = MixupOrCutMix(Mixup(0.2, num_classes=3), CutMix(1.0, num_classes=3), seed=4)
    other = MixupOrCutMix(Mixup(0.2, num_classes=3), CutMix(1.0, num_classes=3), seed=4)
    for _ in range(3):
        a, b = again(x, y), other(x, y)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.skipif(not HAS_TORCHVISION, reason=f"torchvision does not import here: {TORCHVISION}")
def test_a_torchvision_v2_pipeline_noises_images_only():
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    noise = ImageNoise(Gaussian(std=0.2), seed=0)
    assert isinstance(noise, v2.Transform)
    image = tv_tensors.Image(_image(torch.uint8))
    mask = tv_tensors.Mask(torch.zeros(8, 8, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))
    out = v2.Compose([v2.RandomHorizontalFlip(p=0.0), noise])({"image": image, "mask": mask, "boxes": boxes})
    assert isinstance(out["image"], tv_tensors.Image) and out["image"].dtype == torch.uint8
    assert not torch.equal(out["image"], image)
    assert torch.equal(out["mask"], mask) and torch.equal(out["boxes"], boxes)
