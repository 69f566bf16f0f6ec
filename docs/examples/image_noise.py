"""How-to: noise in a data pipeline — on the images of a sample only, the same with any number of workers."""

import torch

from noisereg.integrations.vision import ImageNoise
from noisereg.noise import Gaussian

noise = ImageNoise(Gaussian(std=0.1), seed=0)
image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
noisy = noise(image, index=7)  # in Dataset.__getitem__(7); uint8 stays uint8
assert noisy.dtype == torch.uint8 and noisy.shape == image.shape
assert torch.equal(noisy, noise(image, index=7))  # item 7 of epoch 0 has its own stream
noise.set_epoch(1)  # new noise every epoch
assert not torch.equal(noisy, noise(image, index=7))
# with torchvision: v2.Compose([v2.ToImage(), noise]) noises Image/Video only, masks and boxes pass
