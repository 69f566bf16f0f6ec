import dataclasses
import multiprocessing
from collections.abc import Callable

import pytest
import torch
from torch import nn

from noisereg.layers import noise_enabled, noise_layers
from noisereg.noise import Gaussian, Uniform
from noisereg.sites import NEFTune, annealed_gaussian, attach, describe
from noisereg.sites.targets import LabelSmoothing

from .models import SeqNet, assert_same, mlp, snapshot


@dataclasses.dataclass
class Case:
    name: str
    model: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    options: dict
    changes_forward: bool = True


def _floats():
    return (torch.randn(5, 3, generator=torch.Generator().manual_seed(1)),)


def _ids():
    return (torch.tensor([[3, 4, 5, 0], [7, 1, 2, 9]]),)


CASES = [
    Case("input", mlp, _floats, {"at": "input"}),
    Case("after_relu", mlp, _floats, {"at": "activations", "select": nn.ReLU}),
    Case("before_relu", mlp, _floats, {"at": "activations", "select": nn.ReLU, "where": "before"}),
    Case("linear_output", mlp, _floats, {"at": "activations", "select": "0"}),
    Case("weights", mlp, _floats, {"at": "weights", "biases": True}),
    Case("weights_manual", mlp, _floats, {"at": "weights", "resample": "manual"}),
    Case("embeddings", SeqNet, _ids, {"at": "embeddings", "noise": NEFTune(5.0)}),
    Case("after_lstm", SeqNet, _ids, {"at": "activations", "select": "lstm"}),
    Case("lstm_weights", SeqNet, _ids, {"at": "weights", "select": "lstm.*"}),
    Case("targets", mlp, _floats, {"at": "targets", "noise": LabelSmoothing(0.1, num_classes=2)}, False),
]


def _attach(case: Case, model: nn.Module):
    options = dict(case.options)
    noise = options.pop("noise", Gaussian(std=0.5))
    return attach(model, noise, seed=0, **options)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_eval_identity_noise_in_training_and_exact_restore(case):
    model = case.model()
    inputs = case.inputs()
    clean_train = model(*inputs)
    # Each reference is computed in the mode and grad mode it is compared in: torch may take another
    # kernel for inference (an LSTM does), so eval under no_grad is only bitwise comparable with itself.
    with torch.no_grad():
        clean_eval = model.eval()(*inputs)
    model.train()
    before = snapshot(model)
    handle = _attach(case, model)
    assert len(noise_layers(model)) == len(handle.layers) > 0
    noisy = model(*inputs)
    assert not torch.equal(noisy, clean_train) or not case.changes_forward
    with torch.no_grad():
        assert torch.equal(model.eval()(*inputs), clean_eval)
    with noise_enabled(model, False):
        assert torch.equal(model.train()(*inputs), clean_train)
    noisy.sum().backward()
    model.zero_grad(set_to_none=True)
    handle.remove()
    assert_same(snapshot(model), before)
    assert torch.equal(model(*inputs), clean_train)
    assert noise_layers(model) == [] and describe(model) == []
    with pytest.raises(ValueError, match="already removed"):
        handle.remove()


def test_gradient_site_restores_the_optimizer():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hooks_before = dict(opt._optimizer_step_pre_hooks)
    with attach(model, annealed_gaussian(0.3), at="gradients", optimizer=opt, seed=0) as handle:
        assert len(opt._optimizer_step_pre_hooks) == len(hooks_before) + 1
    assert handle.removed and dict(opt._optimizer_step_pre_hooks) == hooks_before
    assert noise_layers(model) == []


def test_several_attachments_compose_and_remove_in_any_order():
    model = mlp()
    x = _floats()[0]
    clean = model(x)
    before = snapshot(model)
    handles = [
        attach(model, Gaussian(0.1), at="input", seed=1),
        attach(model, Gaussian(0.1), at="weights", seed=2),
        attach(model, Uniform(half_width=0.1), at="activations", select=nn.ReLU, seed=3),
        attach(model, Gaussian(0.01), at="weights", select="2.bias", biases=True, seed=4),
    ]
    model(x)
    assert [e.applied for e in describe(model)] == [1, 1, 1, 1, 1]
    for i in (1, 3, 0, 2):
        handles[i].remove()
    assert_same(snapshot(model), before)
    assert torch.equal(model(x), clean)


def test_same_place_twice_needs_stack():
    model = mlp()
    attach(model, Gaussian(0.1), at="activations", select="1")
    with pytest.raises(ValueError, match=r"already attached after '1'.*stack=True"):
        attach(model, Gaussian(0.2), at="activations", select=nn.ReLU)
    with pytest.raises(ValueError, match="already attached"):
        attach(model, Gaussian(0.1), at="weights", select="0.weight") and attach(
            model, Gaussian(0.1), at="weights", select="0.*"
        )
    layers = len(noise_layers(model))
    stacked = attach(model, Gaussian(0.2), at="activations", select=nn.ReLU, stack=True)
    assert len(noise_layers(model)) == layers + 1
    stacked.remove()
    # A failed double attachment leaves nothing behind.
    assert len(noise_layers(model)) == layers


def test_selector_errors_show_close_names_and_types():
    model = SeqNet()
    with pytest.raises(ValueError, match=r"select='lstmm' matches no module.*close names: 'lstm'"):
        attach(model, Gaussian(0.1), at="activations", select="lstmm")
    with pytest.raises(ValueError, match=r"select=ReLU matches no module.*types: .*LSTM"):
        attach(model, Gaussian(0.1), at="activations", select=nn.ReLU)
    with pytest.raises(ValueError, match=r"select='head.wieght' matches no parameter.*'head.weight'"):
        attach(model, Gaussian(0.1), at="weights", select="head.wieght")
    with pytest.raises(ValueError, match="matches only biases: pass biases=True"):
        attach(model, Gaussian(0.1), at="weights", select="head.bias")
    with pytest.raises(ValueError, match="needs select="):
        attach(model, Gaussian(0.1), at="activations")


def test_glob_star_stays_within_a_segment():
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2))))
    one = attach(model, Gaussian(0.1), at="activations", select="0.*")
    assert one.places == ["after '0.0'", "after '0.1'"]
    one.remove()
    deep = attach(model, Gaussian(0.1), at="activations", select="0.**", where="before")
    assert deep.places == ["before '0.0'", "before '0.1'", "before '0.1.0'"]


def test_option_and_kind_errors_name_what_was_written():
    model = mlp()
    with pytest.raises(ValueError, match=r"resample='manual' does not apply to at='input'.*\['weights'\]"):
        attach(model, Gaussian(0.1), at="input", resample="manual")
    with pytest.raises(ValueError, match="at='inputs' must be one of"):
        attach(model, Gaussian(0.1), at="inputs")
    with pytest.raises(ValueError, match="needs optimizer="):
        attach(model, Gaussian(0.1), at="gradients")
    with pytest.raises(ValueError, match="LabelSmoothing is target noise: use at='targets'"):
        attach(model, LabelSmoothing(0.1, num_classes=2), at="input")
    with pytest.raises(TypeError, match="noise config"):
        attach(model, 0.1, at="input")
    with pytest.raises(ValueError, match="where='inside'"):
        attach(model, Gaussian(0.1), at="activations", select="0", where="inside")


def test_wrappers_are_unwrapped():
    model = mlp()
    x = _floats()[0]
    wrapped = nn.DataParallel(model)
    handle = attach(wrapped, Gaussian(0.1), at="activations", select="1", seed=0)
    assert handle.places == ["after '1'"]
    assert len(describe(wrapped)) == 1
    compiled = torch.compile(model)
    with pytest.raises(ValueError, match="already attached after '1'"):
        attach(compiled, Gaussian(0.1), at="activations", select="1")
    handle.remove()
    assert torch.equal(wrapped(x), model(x))


def test_each_distributed_rank_gets_its_own_stream(monkeypatch):
    from noisereg.sites.placement import stream_seed

    single = stream_seed(3, "input", "before:")
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    seeds = set()
    for rank in range(4):
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        seeds.add(stream_seed(3, "input", "before:"))
    assert len(seeds) == 4 and single not in seeds


def _attach_to_ddp() -> None:
    dist = torch.distributed
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        model = mlp()
        ddp = nn.parallel.DistributedDataParallel(model)
        handle = attach(ddp, Gaussian(0.1), at="activations", select="1", seed=0)
        assert handle.places == ["after '1'"] and len(model[1]._forward_hooks) == 1
        ddp(_floats()[0]).sum().backward()
        assert handle.layers[0].applied == 1
        handle.remove()
    finally:
        dist.destroy_process_group()


def test_distributed_data_parallel_is_unwrapped():
    # In a process of its own: the process group is global state, and gloo's teardown once hung the
    # whole suite (joining its threads in ~ProcessGroupGloo) after other tests had run in the process.
    child = multiprocessing.get_context("spawn").Process(target=_attach_to_ddp)
    child.start()
    child.join(timeout=300)
    if child.is_alive():
        child.kill()
        pytest.fail("attaching to a DistributedDataParallel model did not finish in 300 s")
    assert child.exitcode == 0
