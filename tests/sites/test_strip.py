"""strip(model): every noise off, the eval-mode function kept, no random op in exported graphs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisereg import bind_clock, describe, noise_layers, strip
from noisereg.layers import GaussianDropout, GaussianNoise
from noisereg.noise import Gaussian
from noisereg.seeding import set_noise_generator
from noisereg.sites import PNI, NEFTune, NoisyHardTanh, NoisyLinear, annealed_gaussian, attach, random_ops

from .models import assert_same, mlp, snapshot


class Mixed(nn.Module):
    """Noise of every form: layers among the modules, learned noise, and attach-placed noise."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.noise = GaussianNoise(0.3, seed=1)
        self.fc1 = NoisyLinear(3, 8, seed=2)
        self.act = NoisyHardTanh(0.5, seed=3)
        self.drop = GaussianDropout(0.2, seed=4)
        self.fc2 = PNI(nn.Linear(8, 2), seed=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(self.noise(x)))))


def _noisy_mixed() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = Mixed()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    attach(model, Gaussian(std=0.2), at="activations", select=model.fc1, seed=6)
    attach(model, Gaussian(std=0.1), at="weights", select=model.fc2.module, seed=7)
    attach(model, annealed_gaussian(0.3), at="gradients", optimizer=optimizer, seed=8)
    bind_clock(model)
    return model, optimizer


def test_strip_keeps_the_eval_function_in_train_mode_too():
    model, _ = _noisy_mixed()
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.eval()(x)
    returned = strip(model)
    assert returned is model
    assert noise_layers(model) == [] and len(describe(model)) == 0
    with torch.no_grad():
        assert torch.equal(model.train()(x), expected)
        assert torch.equal(model.eval()(x), expected)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert isinstance(model.fc1, nn.Linear) and isinstance(model.fc2, nn.Linear)


def test_strip_keeps_parameter_objects():
    model, optimizer = _noisy_mixed()
    mu = model.fc1.weight_mu
    inner = model.fc2.module.parametrizations.weight.original  # weight noise is attached there
    strip(model)
    assert model.fc1.weight is mu and model.fc2.weight is inner
    assert not optimizer._optimizer_step_pre_hooks


def test_strip_takes_off_attach_noise_after_the_handle_was_dropped():
    model = mlp()
    before = snapshot(model)
    attach(model, Gaussian(std=0.5), at="weights", seed=0)
    attach(model, Gaussian(std=0.5), at="input", seed=0)
    strip(model)
    assert_same(before, snapshot(model))


def test_a_handle_removed_by_strip_says_so():
    model = mlp()
    handle = attach(model, Gaussian(std=0.5), at="input", seed=0)
    strip(model)
    assert handle.removed
    with pytest.raises(ValueError, match="already removed"):
        handle.remove()


def test_strip_refuses_a_bare_noise_layer_and_non_modules():
    with pytest.raises(ValueError, match="itself is a noise layer"):
        strip(GaussianNoise(0.1))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        strip("model")


def test_torch_export_of_a_stripped_model_has_no_random_op():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    # A Stream's kernel cannot run on export's fake tensors; torch's generator traces as a random op.
    previous = set_noise_generator("torch")
    try:
        noisy = nn.Sequential(GaussianNoise(0.3, seed=1), nn.Linear(3, 2))
        noisy_graph = torch.export.export(noisy.train(), (x,)).graph
    finally:
        set_noise_generator(previous)
    assert random_ops(noisy_graph), "a noisy model should trace random ops: the check would be void"
    model, _ = _noisy_mixed()
    with torch.no_grad():
        expected = model.eval()(x)
    strip(model).train()
    program = torch.export.export(model, (x,))
    assert random_ops(program.graph) == []
    # The exported graph may run decomposed kernels: equal to float32 rounding, not bit for bit.
    torch.testing.assert_close(program.module()(x), expected)


def test_torch_export_of_stripped_embedding_noise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(12, 6, padding_idx=0), nn.Flatten(), nn.Linear(24, 3))
    attach(model, NEFTune(5.0), at="embeddings", seed=0)
    ids = torch.tensor([[3, 4, 5, 0], [7, 1, 2, 9]])
    with torch.no_grad():
        expected = model.eval()(ids)
    strip(model).train()
    program = torch.export.export(model, (ids,))
    assert random_ops(program.graph) == []
    # The exported graph may run decomposed kernels: equal to float32 rounding, not bit for bit.
    torch.testing.assert_close(program.module()(ids), expected)


_ONNX_RANDOM = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Bernoulli",
    "Multinomial",
    "Dropout",
}


@pytest.mark.filterwarnings("ignore:Exporting a model while it is in training mode")
def test_onnx_graph_of_a_stripped_model_has_no_random_op(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    model, _ = _noisy_mixed()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model.eval()(x)
    strip(model).train()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True)
    graph = onnx.load(str(path))
    ops = {node.op_type for node in graph.graph.node}
    assert ops and not ops & _ONNX_RANDOM
    (out,) = ReferenceEvaluator(graph).run(None, {graph.graph.input[0].name: x.numpy()})
    # The reference evaluator computes in numpy float32: agreement to float32 rounding of a 2-layer net.
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-5, atol=1e-6)


def test_select_by_module_object():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU())
    handle = attach(model, Gaussian(std=1.0), at="activations", select=model[3], seed=0)
    assert handle.places == ["after '3'"]
    handle.remove()
    weights = attach(model, Gaussian(std=1.0), at="weights", select=model[2], seed=0)
    assert weights.places == ["weight '2.weight'"]


def test_select_by_module_object_of_a_container_takes_its_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1)))
    handle = attach(model, Gaussian(std=1.0), at="weights", select=model[1], seed=0)
    assert handle.places == ["weight '1.0.weight'", "weight '1.1.weight'"]


def test_select_by_a_module_of_another_model_is_refused():
    model, other = mlp(), mlp()
    with pytest.raises(ValueError, match="not a module of the model"):
        attach(model, Gaussian(std=1.0), at="activations", select=other[1])
    with pytest.raises(ValueError, match="not a module of the model"):
        attach(model, Gaussian(std=1.0), at="weights", select=other[0])
