import pytest
import torch
from scipy import stats

from noisereg.seeding import noise_generator
from noisereg.sites.mixing import CutMix, MixingLayer, Mixup, cutmix, mixup

from .helpers import gen


@pytest.mark.parametrize("batch", [1, 3, 7, 8])
@pytest.mark.parametrize("per_sample", [False, True])
def test_mixup_pairs_each_sample_with_a_permuted_one(batch, per_sample):
    x = torch.eye(batch)
    y = torch.arange(batch)
    x_before, y_before = x.clone(), y.clone()
    mx, my = mixup(x, y, 0.4, num_classes=batch, per_sample=per_sample, generator=gen(batch))
    assert torch.equal(x, x_before) and torch.equal(y, y_before)
    # With x the identity and y the ids, the mixed inputs *are* the soft targets.
    assert torch.allclose(mx, my)
    assert torch.allclose(my.sum(-1), torch.ones(batch))
    off = mx - torch.diag(mx.diagonal())
    moved = off.sum(-1) > 0
    partner = torch.where(moved, off.argmax(-1), torch.arange(batch))
    assert sorted(partner.tolist()) == list(range(batch))
    lam = mx.diagonal()
    rebuilt = torch.diag(lam) + (1 - lam)[:, None] * torch.eye(batch)[partner]
    assert torch.allclose(mx, rebuilt)
    if not per_sample and bool(moved.any()):
        assert torch.allclose(lam[moved], lam[moved][0].expand(int(moved.sum())))


def test_mixup_lambda_is_beta_distributed():
    n = 4000
    mx, _ = mixup(torch.eye(n), torch.zeros(n, 1), 0.4, per_sample=True, generator=gen(2))
    lam = mx.diagonal().double().numpy()
    assert stats.kstest(lam, stats.beta(0.4, 0.4).cdf).pvalue > 1e-4


def test_mixup_soft_and_regression_targets_and_identity():
    x = torch.randn(5, 3, generator=gen())
    soft = torch.softmax(torch.randn(5, 4, generator=gen(1)), -1)
    _, ms = mixup(x, soft, 1.0, generator=gen())
    assert torch.allclose(ms.sum(-1), torch.ones(5))
    reg = torch.randn(5, generator=gen(2))
    mx, mr = mixup(x, reg, 1.0, generator=gen(3))
    assert mr.shape == (5,)
    assert mixup(x, reg, 0.0) == (x, reg)
    with pytest.raises(ValueError, match="num_classes is required"):
        mixup(x, torch.arange(5), 0.2)
    with pytest.raises(ValueError, match="batch size 5"):
        mixup(x, torch.arange(4), 0.2, num_classes=5)
    with pytest.raises(ValueError, match="alpha=-1"):
        mixup(x, reg, -1)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("per_sample", [False, True])
def test_cutmix_box_area_sets_the_target_weights(batch, per_sample):
    x = torch.arange(batch, dtype=torch.float32).reshape(batch, 1, 1, 1).expand(batch, 2, 9, 11).clone()
    before = x.clone()
    y = torch.arange(batch)
    mx, my = cutmix(x, y, 1.0, num_classes=batch, per_sample=per_sample, generator=gen(batch))
    assert torch.equal(x, before)
    assert torch.allclose(my.sum(-1), torch.ones(batch))
    for i in range(batch):
        own = (mx[i] == i).float().mean()
        if my[i, i] < 1.0:
            assert torch.isclose(own, my[i, i]), (own, my[i])
            pasted = (mx[i, 0] != i).nonzero()
            rows, cols = pasted[:, 0], pasted[:, 1]
            box_area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert box_area == len(pasted)  # the pasted region is one rectangle


def test_cutmix_needs_images():
    with pytest.raises(ValueError, match="at least 3 dims"):
        cutmix(torch.zeros(4, 5), torch.arange(4), 1.0, num_classes=4)


def test_mixing_layer_is_train_only_and_seeded():
    x, y = torch.randn(6, 3, 4, 4, generator=gen()), torch.arange(6) % 3
    layer = MixingLayer(CutMix(1.0, num_classes=3), seed=4)
    a = layer(x, y)
    assert torch.equal(a[0], cutmix(x, y, 1.0, num_classes=3, generator=noise_generator(4))[0])
    layer.eval()
    assert layer(x, y) == (x, y)
    with pytest.raises(TypeError, match="Mixup or CutMix"):
        MixingLayer(object())
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=-0.5)
