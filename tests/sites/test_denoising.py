import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from noisereg.noise import Gaussian, Impulse
from noisereg.seeding import derive_seed, make_generator
from noisereg.sites.denoising import DenoisingCollate, DenoisingDataset

DATA = torch.rand(10, 4, generator=torch.Generator().manual_seed(0))


def test_dataset_pairs_are_seeded_per_epoch_and_item():
    pairs = DenoisingDataset(TensorDataset(DATA, torch.arange(10)), Gaussian(0.3, clip=(0.0, 1.0)), seed=1)
    noisy, clean = pairs[3]
    assert torch.equal(clean, DATA[3])
    expected = Gaussian(0.3, clip=(0.0, 1.0))(DATA[3:4], generator=make_generator(derive_seed(1, 0, 3)))[0]
    assert torch.equal(noisy, expected) and bool((noisy >= 0).all() & (noisy <= 1).all())
    batches = [torch.cat([b[0] for b in DataLoader(pairs, batch_size=3, shuffle=s)]) for s in (False, False)]
    assert torch.equal(batches[0], batches[1])
    shuffled = DataLoader(pairs, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3))
    for noisy_batch, clean_batch in shuffled:
        for n, c in zip(noisy_batch, clean_batch, strict=True):
            index = int((DATA == c).all(1).nonzero())
            assert torch.equal(n, pairs[index][0])  # noise depends on the item, not on the order
    pairs.set_epoch(1)
    assert not torch.equal(pairs[3][0], noisy)
    assert torch.equal(DATA, torch.rand(10, 4, generator=torch.Generator().manual_seed(0)))


def test_collate_corrupts_whole_batches():
    collate = DenoisingCollate(Impulse(amount=0.5), seed=2)
    loader = DataLoader(DATA, batch_size=5, collate_fn=collate)
    (n1, c1), (n2, c2) = list(loader)
    stream = make_generator(derive_seed(2, 0, 0))
    assert torch.equal(n1, Impulse(amount=0.5)(c1, generator=stream))
    assert torch.equal(n2, Impulse(amount=0.5)(c2, generator=stream))
    assert torch.equal(torch.cat([c1, c2]), DATA)


def test_denoising_errors():
    with pytest.raises(TypeError, match="noise config"):
        DenoisingDataset(DATA, "gaussian")
    with pytest.raises(ValueError, match="floating-point inputs"):
        DenoisingDataset(torch.arange(4), Gaussian(0.1))[0]
    with pytest.raises(ValueError, match="item=-1"):
        DenoisingCollate(Gaussian(0.1), item=-1)
