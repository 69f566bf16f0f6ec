"""Which generator draws the noise: a Philox Stream on a CPU by default, torch's on request."""

import torch

import noisereg
from noisereg.seeding import noise_generator, use_noise_generator
from noisereg.streams import Stream

x = torch.zeros(2, 3)

# The default: the counter-based Philox4x32-10 stream keyed by the layer's seed.
layer = noisereg.GaussianNoise(0.1, seed=7).train()
assert torch.equal(layer(x), Stream(7).normal((2, 3)).mul_(0.1))
assert isinstance(noise_generator(7), Stream)

# torch's generator instead, torch's own numbers: choose it before the noise is built.
with use_noise_generator("torch"):
    layer = noisereg.GaussianNoise(0.1, seed=7).train()
    assert torch.equal(layer(x), torch.randn(2, 3, generator=torch.Generator().manual_seed(7)).mul_(0.1))

# A stream is its key and counter: resume it anywhere without replaying it.
stream = Stream(7)
first, second = stream.normal((4,)), stream.normal((4,))  # 4 values = 1 block each
assert torch.equal(Stream(7, counter=1).normal((4,)), second)
print("ok")
