import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from noisereg.noise import Gaussian, gaussian
from noisereg.seeding import NoiseGenerator, derive_seed, noise_generator
from noisereg.sites import attach

from .models import SeqNet, mlp


def _gen(seed: int, site: str, place: str) -> NoiseGenerator:
    return noise_generator(derive_seed(seed, site, place))


X = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))


def test_input_noise_is_the_kind_applied_to_the_input():
    model, reference = mlp(), mlp()
    attach(model, Gaussian(0.3), at="input", seed=4)
    expected = reference(gaussian(X, 0.3, generator=_gen(4, "input", "before:")))
    assert torch.equal(model(X), expected)
    assert torch.equal(X, torch.randn(5, 3, generator=torch.Generator().manual_seed(1)))


def test_noise_before_relu_is_rectified_and_after_relu_is_not():
    model = mlp()
    hidden: list[torch.Tensor] = []
    model[1].register_forward_hook(lambda m, a, out: hidden.append(out))
    before = attach(model, Gaussian(1.0), at="activations", select=nn.ReLU, where="before", seed=0)
    model(X)
    assert bool((hidden[-1] >= 0).all())
    before.remove()
    after = attach(model, Gaussian(1.0), at="activations", select=nn.ReLU, seed=0)
    hooked: list[torch.Tensor] = []
    model[2].register_forward_pre_hook(lambda m, a: hooked.append(a[0]))
    model(X)
    assert bool((hooked[-1] < 0).any())  # noise after ReLU can push values below zero
    after.remove()


def test_linear_output_and_relu_input_are_the_same_place_for_the_noise():
    a, b = mlp(), mlp()
    attach(a, Gaussian(0.1), at="activations", select="0", seed=3)
    attach(b, Gaussian(0.1), at="activations", select=nn.ReLU, where="before", seed=3)
    # Different places by name, so different streams; the same formula on the same tensor otherwise.
    ref = mlp()
    clean_hidden = ref[0](X)
    out_a = ref[2](torch.relu(gaussian(clean_hidden, 0.1, generator=_gen(3, "activations", "after:0"))))
    assert torch.equal(a(X), out_a)
    out_b = ref[2](torch.relu(gaussian(clean_hidden, 0.1, generator=_gen(3, "activations", "before:1"))))
    assert torch.equal(b(X), out_b)


def test_lstm_output_sequence_takes_noise_and_the_state_does_not():
    lstm = nn.LSTM(4, 6, batch_first=True)
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    (clean_out, (h, c)) = lstm(x)
    attach(lstm, Gaussian(0.5), at="activations", select="", seed=1)
    out, (h2, c2) = lstm(x)
    assert torch.equal(h, h2) and torch.equal(c, c2)
    assert torch.equal(out, gaussian(clean_out, 0.5, generator=_gen(1, "activations", "after:")))


def test_packed_sequences_take_noise_on_their_data():
    gru = nn.GRU(4, 6, batch_first=True)
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    packed = pack_padded_sequence(x, torch.tensor([5, 3, 2]), batch_first=True)
    clean, _ = gru(packed)
    attach(gru, Gaussian(0.5), at="activations", select="", seed=2)
    noisy, _ = gru(packed)
    assert torch.equal(noisy.batch_sizes, clean.batch_sizes)
    assert torch.equal(noisy.data, gaussian(clean.data, 0.5, generator=_gen(2, "activations", "after:")))


def test_input_noise_on_a_recurrent_model_with_padding_mask():
    lstm = nn.LSTM(4, 6, batch_first=True)
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    handle = attach(lstm, Gaussian(0.5), at="input", seed=0)
    seen: list[torch.Tensor] = []
    lstm.register_forward_pre_hook(lambda m, a: seen.append(a[0]))  # runs after the noise hook
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with handle.attention_mask(real):
        lstm(x)
    pad = ~real.bool().unsqueeze(-1)
    assert torch.equal(seen[-1], gaussian(x, 0.5, mask=pad, generator=_gen(0, "input", "before:")))
    assert torch.equal(seen[-1][0, 3:], x[0, 3:])


def test_attention_mask_leaves_padded_positions_untouched():
    model = nn.Sequential(nn.Linear(4, 4))
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    clean = model(x)
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    handle = attach(model, Gaussian(0.5), at="activations", select="0", seed=0)
    with handle.attention_mask(real):
        out = model(x)
    assert torch.equal(out[0, 3:], clean[0, 3:])
    assert not torch.equal(out[0, :3], clean[0, :3]) and not torch.equal(out[1], clean[1])
    assert not torch.equal(model(x)[0, 3:], clean[0, 3:])  # outside the block, no mask


def test_mask_read_from_the_models_forward_argument():
    model = SeqNet()
    ids = torch.tensor([[3, 4, 5, 6], [7, 1, 2, 9]])
    clean = model.emb(ids)
    attach(model, Gaussian(0.5), at="activations", select="emb", mask="attention_mask", seed=0)
    seen: list[torch.Tensor] = []
    model.emb.register_forward_hook(lambda m, a, out: seen.append(out))  # runs after the noise hook
    real = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    model(ids, attention_mask=real)
    model(ids, real)
    for noisy in seen:
        assert torch.equal(noisy[0, 2:], clean[0, 2:])
        assert not torch.equal(noisy[0, :2], clean[0, :2]) and not torch.equal(noisy[1], clean[1])
    model(ids)
    assert not torch.equal(seen[-1][0, 2:], clean[0, 2:])
    with pytest.raises(ValueError, match="mask='attn' is not an argument of SeqNet.forward"):
        attach(model, Gaussian(0.5), at="activations", select="head", mask="attn")


def test_integer_inputs_point_to_embedding_noise():
    model = SeqNet()
    attach(model, Gaussian(0.1), at="input")
    with pytest.raises(ValueError, match=r"integer tensor \(dtype=torch.int64\).*at='embeddings'"):
        model(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="at='input' on embedding 'emb'.*use at='embeddings'"):
        attach(SeqNet(), Gaussian(0.1), at="input", select="emb")


def test_input_by_keyword():
    class Keyword(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 1)

        def forward(self, features: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return self.fc(features) * scale

    model = Keyword()
    clean = model(X)
    attach(model, Gaussian(0.2), at="input", arg="features", seed=1)
    stream = _gen(1, "input", "before:")
    first, second = (model.fc(gaussian(X, 0.2, generator=stream)) for _ in range(2))
    assert torch.equal(model(features=X), first)
    assert torch.equal(model(X), second)
    assert torch.equal(model.eval()(features=X), clean)


def test_argument_errors_and_masks_skip_packed_sequences():
    with pytest.raises(ValueError, match=r"arg='inputs' is not an argument of Sequential.forward"):
        attach(mlp(), Gaussian(0.1), at="input", arg="inputs")
    gru = nn.GRU(4, 6, batch_first=True)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    handle = attach(gru, Gaussian(0.5), at="activations", select="", seed=2)
    packed = pack_padded_sequence(x, torch.tensor([3, 2]), batch_first=True)
    with handle.attention_mask(torch.tensor([[1, 1, 1], [1, 1, 0]])):
        noisy, _ = gru(packed)  # packed data has no padding: the mask is not applied to it
    assert noisy.data.shape == (5, 6)
