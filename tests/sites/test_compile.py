import torch
from torch import nn

from noisereg.noise import Gaussian
from noisereg.sites import NEFTune, attach, describe

from .models import SeqNet, mlp


def test_attached_model_runs_under_torch_compile():
    torch._dynamo.reset()
    model = mlp()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    clean = model(x)
    compiled = torch.compile(model)
    handles = [
        attach(compiled, Gaussian(0.1), at="input", seed=0),
        attach(compiled, Gaussian(0.1), at="activations", select=nn.ReLU, seed=1),
        attach(compiled, Gaussian(0.05), at="weights", seed=2),
    ]
    out = compiled(x)
    out.sum().backward()
    assert not torch.allclose(out, clean) and model[0].parametrizations.weight.original.grad is not None
    assert [e.applied for e in describe(compiled)] == [1, 1, 1, 1]
    compiled.eval()
    with torch.no_grad():
        assert torch.allclose(compiled(x), clean, atol=1e-6)
    compiled.train()
    for handle in handles:
        handle.remove()
    assert torch.allclose(compiled(x), clean, atol=1e-6)


def test_embedding_noise_under_torch_compile():
    torch._dynamo.reset()
    model = SeqNet()
    ids = torch.tensor([[3, 4, 0, 0], [7, 1, 2, 9]])
    compiled = torch.compile(model, backend="aot_eager")
    attach(model, NEFTune(5.0), at="embeddings", mask="attention_mask", seed=0)
    seen: list[torch.Tensor] = []
    model.emb.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    compiled(ids, attention_mask=(ids != 0).long()).sum().backward()
    assert torch.equal(seen[-1][0, 2:], model.emb.weight[0].expand(2, 6))
