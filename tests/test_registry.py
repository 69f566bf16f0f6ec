"""The registry of noise state kept outside a model: weak keys, one clock per model, records once."""

from __future__ import annotations

import gc
import weakref

from torch import nn

from noisereg._registry import NoiseRegistry, PlaceInfo
from noisereg.layers import GaussianNoise, bind_clock, registry, unbind_clock
from noisereg.schedules import Clock


def test_the_registry_keeps_no_model_alive():
    reg: NoiseRegistry[nn.Module] = NoiseRegistry()
    host, noise = nn.Linear(2, 2), nn.Identity()
    reg.add_beside(host, noise)
    reg.bind_clock(host, Clock(), host.register_forward_hook(lambda *args: None))
    reg.record_place(noise, PlaceInfo.of("activations", "after ''", ("output", host), host))
    reg.clean_order(host, lambda m: (list(m._parameters), []))
    hosts, noises = weakref.ref(host), weakref.ref(noise)
    del host, noise
    gc.collect()
    assert hosts() is None and noises() is None
    assert reg.places() == []


def test_binding_a_clock_again_removes_the_previous_hook():
    model = nn.Sequential(GaussianNoise(0.1, seed=0))
    first = bind_clock(model)
    second = bind_clock(model, Clock())
    assert len(model._forward_hooks) == 1
    assert registry.clock(model) is second and second is not first
    unbind_clock(model)
    assert registry.clock(model) is None and len(model._forward_hooks) == 0


def test_a_clean_order_is_read_once_until_forgotten():
    reg: NoiseRegistry[nn.Module] = NoiseRegistry()
    owner, reads = nn.Linear(2, 2), []

    def read(module: nn.Module) -> tuple[list[str], list[str]]:
        reads.append(module)
        return list(module._parameters), []

    assert reg.clean_order(owner, read) == reg.clean_order(owner, read) == (["weight", "bias"], [])
    assert len(reads) == 1
    reg.forget_clean_order(owner)
    reg.clean_order(owner, read)
    assert len(reads) == 2


def test_removing_the_last_noise_beside_a_module_forgets_the_module():
    reg: NoiseRegistry[nn.Module] = NoiseRegistry()
    host, a, b = nn.Linear(2, 2), nn.Identity(), nn.Identity()
    reg.add_beside(host, a)
    reg.add_beside(host, b)
    assert reg.beside(host) == (a, b)
    reg.remove_beside(host, a)
    reg.remove_beside(host, a)  # a second time is a no-op
    assert reg.beside(host) == (b,)
    reg.remove_beside(host, b)
    assert reg.beside(host) == ()
